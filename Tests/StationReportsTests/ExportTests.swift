import Testing
import JSONLines
import PaymentEngine
import StationReports

/// The reconciliation export: the sessions it lists, its columns, RFC 4180 quoting, formula
/// injection, exact amounts, and JSON lines with the same keys.
@Suite struct ExportTests {
    static let header = "station_id,session_id,connector,start_utc,end_utc,masked_card,brand,terminal_reference,payment_reference,"
        + "authorised,captured,currency,energy_wh,final_state,note,meter_serial,meter_start_wh,meter_end_wh"

    static func row(_ k: SessionKey, _ state: SessionState, note: String = "", brand: String = "VISA", currency: String = "EUR", exponent: Int = 2,
                    captured: Int64? = 1234) -> SessionRow {
        var r = SessionRow(session: k, state: state)
        r.outcome = SessionOutcome.allCases.first { SessionState($0) == state }
        r.connector = 1
        r.startedAt = 1_796_450_462_000
        r.endedAt = state.isOpen ? nil : 1_796_450_522_999
        r.maskedPAN = "476173******0119"
        r.brand = brand
        r.terminalReference = "7004"
        r.paymentReference = "PSP-\(k)"
        r.authorised = 5_000
        r.captured = captured
        r.currency = currency
        r.currencyExponent = exponent
        r.energyWh = 1_234
        r.note = note
        return r
    }

    @Test func onlySettledVoidedDeclinedAndReconciliationNeededSessionsWithExactlyTheColumns() {
        let rows = SessionState.allCases.enumerated().map { Self.row(SessionKey($0.offset), $0.element) }
        let csv = ReconciliationExport.csv(rows, stationId: "CP-7")
        let lines = csv.split(separator: "\r\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines.first == Self.header)
        #expect(lines.last == "", "every record ends in CRLF")
        let states = lines.dropFirst().dropLast().map { $0.split(separator: ",", omittingEmptySubsequences: false)[13] }
        #expect(states == ["settled", "voided", "declined", "needs-reconciliation"])
        let settled = lines[1]
        let k = rows.first { $0.state == .settled }!.session
        #expect(settled == "CP-7,CP-7-\(k),1,2026-12-05T06:01:02Z,2026-12-05T06:02:02Z,476173******0119,VISA,7004,PSP-\(k),50.00,12.34,EUR,1234,settled,,,,")
        #expect(ReconciliationExport.columns.joined(separator: ",") == Self.header)
    }

    @Test func testTransactionsAreExportedByWhatTheyDidWithTheMoney() {
        var settled = Self.row(1, .test, note: "after storage"), voided = Self.row(2, .test), abandoned = Self.row(3, .test)
        settled.outcome = .captured; voided.outcome = .voided; abandoned.outcome = .abandoned
        let unknown = Self.row(4, .test)   // a closed row without an outcome is not guessed at
        let records = Self.parseCSV(ReconciliationExport.csv([settled, voided, abandoned, unknown], stationId: "S")).dropFirst()
        #expect(records.map { $0[1] } == ["S-1", "S-2"])
        #expect(records.map { $0[13] } == ["settled", "voided"])
        #expect(records.map { $0[14] } == ["test transaction; after storage", "test transaction"])
        // An open session is never exported, whatever outcome a caller left on it.
        var open = Self.row(5, .settling)
        open.outcome = .captured
        #expect(ReconciliationExport.exported([open]).isEmpty)
    }

    @Test func amountsAreExactInTheCurrencysMajorUnits() {
        let rows = [Self.row(1, .settled, currency: "EUR", exponent: 2, captured: 5),
                    Self.row(2, .settled, currency: "JPY", exponent: 0, captured: 1234),
                    Self.row(3, .settled, currency: "KWD", exponent: 3, captured: 1),
                    Self.row(4, .voided, captured: 0),
                    Self.row(5, .declined, captured: nil),
                    Self.row(6, .settled, captured: 9_223_372_036_854_775_807)]
        let fields = ReconciliationExport.csv(rows, stationId: "S").split(separator: "\r\n").dropFirst()
            .map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        #expect(fields.map { $0[10] } == ["0.05", "1234", "0.001", "0.00", "", "92233720368547758.07"])
        #expect(fields.map { $0[9] } == ["50.00", "5000", "5.000", "50.00", "50.00", "50.00"])
    }

    @Test func csvQuotesFieldsWithCommasQuotesAndLineBreaks() {
        let rows = [Self.row(1, .needsReconciliation, note: "capture unanswered, retried"),
                    Self.row(2, .needsReconciliation, note: "terminal said \"busy\""),
                    Self.row(3, .needsReconciliation, note: "line one\nline two"),
                    Self.row(4, .needsReconciliation, note: "cr\rhere"),
                    Self.row(5, .needsReconciliation, note: "plain")]
        let csv = ReconciliationExport.csv(rows, stationId: "S")
        let notes = Self.parseCSV(csv).dropFirst().map { $0[14] }
        #expect(notes == ["capture unanswered, retried", "terminal said \"busy\"", "line one\nline two", "cr\rhere", "plain"])
        #expect(ReconciliationExport.csvField("a,b") == "\"a,b\"")
        #expect(ReconciliationExport.csvField("say \"hi\"") == "\"say \"\"hi\"\"\"")
        #expect(ReconciliationExport.csvField("a\nb") == "\"a\nb\"")
        #expect(ReconciliationExport.csvField("a\rb") == "\"a\rb\"")
        #expect(ReconciliationExport.csvField("plain text") == "plain text")
        #expect(ReconciliationExport.csvField("") == "")
    }

    @Test func formulaInjectionIsNeutralisedButNumbersStayNumbers() {
        for evil in ["=HYPERLINK(\"http://x\")", "+1+1", "-1+cmd|' /C calc'!A0", "@SUM(A1)", "\tTAB", "\rCR"] {
            let csv = ReconciliationExport.csv([Self.row(1, .declined, note: evil, brand: evil)], stationId: "S")
            let fields = Self.parseCSV(csv)[1]
            #expect(fields[6] == "'" + evil && fields[14] == "'" + evil, "\(evil)")
        }
        #expect(ReconciliationExport.neutralised("-0.05") == "-0.05")
        #expect(ReconciliationExport.neutralised("-12") == "-12")
        #expect(ReconciliationExport.neutralised("-1.2.3") == "'-1.2.3")
        #expect(ReconciliationExport.neutralised("-") == "'-")
        #expect(ReconciliationExport.neutralised("a=b") == "a=b")
        // A negative amount (a refund, should one ever be exported) stays a number.
        let csv = ReconciliationExport.csv([Self.row(1, .settled, captured: -5)], stationId: "S")
        #expect(Self.parseCSV(csv)[1][10] == "-0.05")
        // A station id is a configured value, but it is neutralised like any other field.
        #expect(Self.parseCSV(ReconciliationExport.csv([Self.row(1, .settled)], stationId: "=1"))[1][0] == "'=1")
    }

    @Test func missingValuesAreEmptyFieldsAndNull() throws {
        var r = SessionRow(session: 9, state: .declined)
        r.outcome = .declined
        r.endedAt = 1_000
        let csv = ReconciliationExport.csv([r], stationId: "S")
        #expect(Self.parseCSV(csv)[1] == ["S", "S-9", "", "", "1970-01-01T00:00:01Z", "", "", "", "", "", "", "", "", "declined", "", "", "", ""])
        let json = try JSON.parse(ReconciliationExport.json([r], stationId: "S").split(separator: "\n")[0].description)
        #expect(json["connector"] == .null && json["authorised"] == .null && json["start_utc"] == .null && json["energy_wh"] == .null)
        #expect(json["end_utc"] == .string("1970-01-01T00:00:01Z") && json["final_state"] == .string("declined"))
        #expect(json["meter_serial"] == .null && json["meter_start_wh"] == .null && json["meter_end_wh"] == .null)
    }

    /// Issue 16: the meter's serial and registers explain the energy billed.
    @Test func theMetersSerialAndRegistersAreExported() throws {
        var r = Self.row(3, .settled)
        r.meterSerial = "B23-4711"
        r.meterStartWh = 1_000_000
        r.meterEndWh = 1_001_234
        let fields = Self.parseCSV(ReconciliationExport.csv([r], stationId: "S"))[1]
        #expect(Array(fields.suffix(3)) == ["B23-4711", "1000000", "1001234"])
        let json = try JSON.parse(ReconciliationExport.json([r], stationId: "S").split(separator: "\n")[0].description)
        #expect(json["meter_serial"] == .string("B23-4711") && json["meter_start_wh"] == .int(1_000_000) && json["meter_end_wh"] == .int(1_001_234))
        // The socket's row carries them too, and an older daemon's row without them still reads.
        let back = try SessionRow(json: r.json)
        #expect(back.meterSerial == "B23-4711" && back.meterStartWh == 1_000_000 && back.meterEndWh == 1_001_234)
    }

    @Test func jsonLinesCarryTheSameColumnsAndExactAmounts() throws {
        let rows = [Self.row(1, .settled, note: "=not a formula in JSON\n"), Self.row(2, .charging), Self.row(3, .voided, currency: "JPY", exponent: 0, captured: 0)]
        let text = ReconciliationExport.json(rows, stationId: "CP-7")
        #expect(text.last == "\n")
        let lines = text.split(separator: "\n")
        #expect(lines.count == 2, "the charging session is not exported")
        let first = try JSON.parse(String(lines[0]))
        guard case .object(let fields) = first else { Issue.record("not an object"); return }
        #expect(fields.map(\.0) == ReconciliationExport.columns)
        #expect(first["captured"] == .decimal("12.34") && first["authorised"] == .decimal("50.00"))
        #expect(lines[0].hasPrefix("{\"station_id\":\"CP-7\",\"session_id\":\"CP-7-1\",\"connector\":1,\"start_utc\":\"2026-12-05T06:01:02Z\""))
        #expect(first["note"] == .string("=not a formula in JSON\n"), "JSON values are not neutralised")
        #expect(first["energy_wh"] == .int(1_234))
        let second = try JSON.parse(String(lines[1]))
        #expect(second["captured"] == .int(0) || second["captured"] == .decimal("0"))
        #expect(lines[1].contains("\"captured\":0,"))
    }

    /// A small RFC 4180 reader, to check that what is written reads back.
    static func parseCSV(_ text: String) -> [[String]] {
        var records: [[String]] = [], record: [String] = [], field = "", quoted = false, i = text.unicodeScalars.startIndex
        let s = text.unicodeScalars
        while i < s.endIndex {
            let c = s[i]
            if quoted {
                if c == "\"" {
                    let n = s.index(after: i)
                    if n < s.endIndex && s[n] == "\"" { field.unicodeScalars.append("\""); i = n } else { quoted = false }
                } else { field.unicodeScalars.append(c) }
            } else if c == "\"" && field.isEmpty {
                quoted = true
            } else if c == "," {
                record.append(field); field = ""
            } else if c == "\r" && s.index(after: i) < s.endIndex && s[s.index(after: i)] == "\n" {
                record.append(field); records.append(record); record = []; field = ""
                i = s.index(after: i)
            } else {
                field.unicodeScalars.append(c)
            }
            i = s.index(after: i)
        }
        if !field.isEmpty || !record.isEmpty { record.append(field); records.append(record) }
        return records
    }
}
