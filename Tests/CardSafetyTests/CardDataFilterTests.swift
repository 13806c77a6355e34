import Testing
import CardSafety
import Timebase
import Glibc

/// Seeds: fixed ones for CI; CARD_SEED replays one.
enum Seeds {
    static func sample(_ n: Int) -> [UInt64] {
        if let p = getenv("CARD_SEED"), let s = UInt64(String(cString: p)) { return [s] }
        return (0..<UInt64(n)).map { 0xCA4D_0000 + $0 }
    }
}

extension SeededGenerator {
    /// A Luhn-valid number of `length` digits starting with a card-brand digit (2–6).
    mutating func pan(_ length: Int) -> [UInt8] {
        var d: [UInt8] = [UInt8.random(in: 2...6, using: &self)]
        while d.count < length - 1 { d.append(UInt8.random(in: 0...9, using: &self)) }
        for check in UInt8(0)...9 where CardDataFilter.luhn(d + [check]) { return d + [check] }
        fatalError("no Luhn check digit")
    }
}

func text(_ digits: [UInt8]) -> String { String(decoding: digits.map { $0 + 0x30 }, as: UTF8.self) }

/// BCD, F-padded to whole bytes.
func bcd(_ digits: [UInt8]) -> [UInt8] {
    let n = digits.count % 2 == 0 ? digits : digits + [0xF]
    return stride(from: 0, to: n.count, by: 2).map { n[$0] << 4 | n[$0 + 1] }
}

/// The longest run of the number's own digits, in order, that survives in `output` unbroken by
/// a mask character (separators ignored).
func longestSurvivingRun(of digits: [UInt8], in output: String) -> Int {
    let out: [UInt8] = output.unicodeScalars.compactMap {
        if $0.value >= 0x30 && $0.value <= 0x39 { return UInt8($0.value - 0x30) }
        return $0 == "*" ? 0xFF : nil
    }
    var best = 0
    for i in out.indices {
        for j in digits.indices {
            var k = 0
            while i + k < out.count, j + k < digits.count, out[i + k] == digits[j + k] { k += 1 }
            best = max(best, k)
        }
    }
    return best
}

@Suite struct CardDataFilterTests {
    @Test func luhn() {
        #expect(CardDataFilter.luhn(Array("4111111111111111".utf8).map { $0 - 0x30 }))
        #expect(CardDataFilter.luhn(Array("378282246310005".utf8).map { $0 - 0x30 }))
        #expect(!CardDataFilter.luhn(Array("4111111111111112".utf8).map { $0 - 0x30 }))
        #expect(!CardDataFilter.luhn([]))
    }

    /// The review's case: a brand with the whole number after it.
    @Test func aCardNumberInTextIsMaskedAndReported() {
        let (t, f) = CardDataFilter.scrub("VISA 4111111111111111")
        #expect(t == "VISA 411111******1111" && f == .cardNumber)
        #expect(CardDataFilter.scrub("4111 1111 1111 1111").text == "4111 11** **** 1111")
        #expect(CardDataFilter.scrub("4111-1111-1111-1111").text == "4111-11**-****-1111")
        #expect(CardDataFilter.scrub("4111.1111.1111.1111").text == "4111.11**.****.1111")
        // Grouped with a fifth group after it (expiry): the first four groups are the number.
        #expect(CardDataFilter.scrub("4111 1111 1111 1111 2512").text == "4111 11** **** 1111 2512")
        // Fullwidth digits come out masked, the kept ones as ASCII.
        #expect(CardDataFilter.scrub("ref ４１１１１１１１１１１１１１１１").text == "ref 411111******1111")
    }

    @Test func textWithoutACardNumberIsLeftAlone() {
        for s in ["VISA", "PSPREF12345678", "4111111111111112", "P68-1.4.2", "00:1a:2b:3c:4d:5e",
                  "12345678901234567890123",       // 23 digits: no card number is that long
                  "476173******0119", "2026-12-04 15:04:46"] {
            let (t, f) = CardDataFilter.scrub(s)
            #expect(t == s && f == nil, "\(s) -> \(t)")
        }
    }

    @Test func trackDataInTextIsRemovedWhole() {
        for s in [";4111111111111111=25121010000000000?", "%B4111111111111111^DOE/JOHN^2512101000000?",
                  "4111111111111112=2512"] {       // a track is a track even when the number fails Luhn
            let (t, f) = CardDataFilter.scrub(s)
            #expect(t == CardDataFilter.removed && f == .trackData, "\(s) -> \(t)")
        }
    }

    @Test func cardNumbersInBCDAndTrack2EquivalentData() {
        // EMV 5A: 4111111111111111; an odd-length Amex, F-padded.
        #expect(CardDataFilter.find(in: [0x41, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11]) == .cardNumber)
        #expect(CardDataFilter.find(in: [0x37, 0x82, 0x82, 0x24, 0x63, 0x10, 0x00, 0x5F]) == .cardNumber)
        // EMV 57: PAN D YYMM service code discretionary, F-padded.
        #expect(CardDataFilter.find(in: [0x41, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0xD2, 0x51, 0x22, 0x01, 0x00, 0x00, 0x0F]) == .trackData)
        // A BCD number inside a larger binary TLV list (5A 08 …) is found at its byte offset.
        #expect(CardDataFilter.find(in: [0x9F, 0x36, 0x02, 0x00, 0x01, 0x5A, 0x08, 0x41, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x5F, 0x24]) == .cardNumber)
        // The same number as ASCII text.
        #expect(CardDataFilter.find(in: Array("4111111111111111".utf8)) == .cardNumber)
        // Printable references are read as text only.
        #expect(CardDataFilter.find(in: Array("PSPREF12345678".utf8)) == nil)
    }

    @Test func aHashIsCardDataOnlyWhenItIsACardNumber() {
        #expect(CardDataFilter.isCardData(wholeValue: [0x41, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11]))
        #expect(CardDataFilter.isCardData(wholeValue: Array("4111111111111111".utf8)))
        #expect(!CardDataFilter.isCardData(wholeValue: [0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0xF6, 0x07, 0x18]))
        // Random hashes are kept: the strict reading needs the whole value to be a number. A
        // 32-byte hash (SHA-256) never is; an 8-byte one is when all 16 nibbles are decimal and
        // pass Luhn, (10/16)^16 / 10 ≈ 1 in 18,000, and is then dropped like a card number would be.
        var g = SeededGenerator(seed: 0x4A54)
        var flagged8 = 0
        for i in 0..<20_000 {
            if i % 10 == 0 {
                let h32 = (0..<32).map { _ in UInt8.random(in: 0...255, using: &g) }
                #expect(!CardDataFilter.isCardData(wholeValue: h32), "\(h32)")
            }
            if CardDataFilter.isCardData(wholeValue: (0..<8).map { _ in UInt8.random(in: 0...255, using: &g) }) { flagged8 += 1 }
        }
        #expect(flagged8 <= 6, "\(flagged8) of 20,000 random 8-byte hashes read as card numbers")
    }

    @Test func iccidsAreInventory() {
        #expect(CardDataFilter.isICCID("8944110012345678901"))
        #expect(CardDataFilter.isICCID("89314404000123456789F"))
        #expect(!CardDataFilter.isICCID("4111111111111111"))
        #expect(!CardDataFilter.isICCID("89ab"))
    }

    /// Any Luhn-valid 13–19 digit number, written with or without separators inside random
    /// text, leaves at most its first 6 or last 4 digits behind.
    @Test(arguments: Seeds.sample(8))
    func everyNumberInTextIsMasked(seed: UInt64) {
        var g = SeededGenerator(seed: seed)
        for _ in 0..<500 {
            let digits = g.pan(Int.random(in: 13...19, using: &g))
            let groups = [4, 5, 6].randomElement(using: &g)!
            let sep = ["", " ", "-", ".", "\u{00A0}"].randomElement(using: &g)!
            var number = ""
            for (i, d) in digits.enumerated() {
                if i > 0, i % groups == 0 { number += sep }
                number += String(d)
            }
            let before = String((0..<Int.random(in: 0...8, using: &g)).map { _ in "ABCXYZ:#/ ".randomElement(using: &g)! })
            let after = String((0..<Int.random(in: 0...8, using: &g)).map { _ in "ABCXYZ:#/ ".randomElement(using: &g)! })
            let input = before + number + after
            let (out, found) = CardDataFilter.scrub(input)
            #expect(found == .cardNumber, "seed \(seed): \(input)")
            #expect(longestSurvivingRun(of: digits, in: out) <= 6, "seed \(seed): \(input) -> \(out)")
        }
    }

    /// Any Luhn-valid number in BCD at any byte offset of a binary value is found.
    @Test(arguments: Seeds.sample(8))
    func everyNumberInBCDIsFound(seed: UInt64) {
        var g = SeededGenerator(seed: seed)
        for _ in 0..<500 {
            let digits = g.pan(Int.random(in: 13...19, using: &g))
            // Binary around it: never printable text, and non-decimal next to the number.
            let before = (0..<Int.random(in: 0...6, using: &g)).map { _ in UInt8.random(in: 0...255, using: &g) } + [0x0E]
            let after: [UInt8] = [0xEE] + (0..<Int.random(in: 0...6, using: &g)).map { _ in UInt8.random(in: 0...255, using: &g) }
            let value = before + bcd(digits) + after
            #expect(CardDataFilter.find(in: value) != nil, "seed \(seed): \(value)")
        }
    }
}
