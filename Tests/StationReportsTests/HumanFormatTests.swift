import Testing
import StationReports

/// Ages, amounts and aligned tables for the technicians' terminal.
@Suite struct HumanFormatTests {
    @Test(arguments: [
        (0, "0s"), (-5, "0s"), (1, "1s"), (59, "59s"), (60, "1m00s"), (192, "3m12s"), (3_599, "59m59s"),
        (3_600, "1h00m"), (7_500, "2h05m"), (86_399, "23h59m"), (86_400, "1d00h"),
        (4 * 86_400 + 3 * 3_600 + 59 * 60 + 59, "4d03h"), (400 * 86_400 + 23 * 3_600, "400d23h"),
    ] as [(Int64, String)])
    func ages(_ seconds: Int64, _ text: String) {
        #expect(HumanFormat.age(seconds: seconds) == text)
    }

    @Test func amountsUseTheCurrencysExponent() {
        #expect(HumanFormat.amount(minor: 1234, currency: "EUR") == "12.34 EUR")
        #expect(HumanFormat.amount(minor: 5, currency: "EUR") == "0.05 EUR")
        #expect(HumanFormat.amount(minor: -5, currency: "EUR") == "-0.05 EUR")
        #expect(HumanFormat.amount(minor: 0, currency: "CHF") == "0.00 CHF")
        #expect(HumanFormat.amount(minor: 1234, currency: "JPY") == "1234 JPY")
        #expect(HumanFormat.amount(minor: 1, currency: "KWD") == "0.001 KWD")
        #expect(HumanFormat.amount(minor: 1234, currency: "") == "12.34")
    }

    @Test func tablesAlignTextLeftAndNumbersRight() {
        let t = TextTable(header: ["SESSION", "STATE", "CAPTURED", "ENERGY", "AGE"],
                          rows: [["7", "settled", "12.34 EUR", "1234", "3m12s"],
                                 ["12", "needs-reconciliation", "0.00 EUR", "5", "2h05m"],
                                 ["104", "charging", "", "-1,5", "0s"]])
        #expect(t.render() == """
            SESSION  STATE                  CAPTURED  ENERGY  AGE
                  7  settled               12.34 EUR    1234  3m12s
                 12  needs-reconciliation   0.00 EUR       5  2h05m
                104  charging                           -1,5  0s

            """)
    }

    @Test func tablesTakeRaggedRowsAndGivenAlignments() {
        let t = TextTable(header: ["A", "B"], rows: [["x"], ["yy", "1", "extra"]], alignments: [.right, .left])
        #expect(t.render() == " A  B\n x\nyy  1  extra\n", "no trailing spaces; a short row is padded, a long one widens the table")
        #expect(TextTable(header: [], rows: []).render() == "\n")
        // A column with no value is text; so is one that mixes numbers and words.
        #expect(TextTable(header: ["N"], rows: [["1"], ["one"]]).render() == "N\n1\none\n")
        #expect(TextTable(header: ["N"], rows: [["1"], ["10"]]).render() == " N\n 1\n10\n")
        #expect(TextTable(header: ["W"], rows: [["ü"], ["abc"]]).render() == "W\nü\nabc\n", "widths count characters, not bytes")
    }
}
