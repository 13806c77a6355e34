import Testing
import PSPCodec
import CardSafety

/// A card number written with digits other than ASCII's (fullwidth, another script's, or
/// each followed by a combining mark) is still a card number: it is masked and redacted.
@Suite struct PANMaskUnicode {
    static let pan = "4111111111111111"

    /// `pan` with each ASCII digit rewritten by `f`.
    static func rewrite(_ f: (UInt32) -> String) -> String {
        Self.pan.unicodeScalars.map { f($0.value - 0x30) }.joined()
    }

    static let disguised: [(String, String)] = [
        ("fullwidth", rewrite { String(Unicode.Scalar(0xFF10 + $0)!) }),
        ("arabic-indic", rewrite { String(Unicode.Scalar(0x0660 + $0)!) }),
        ("devanagari", rewrite { String(Unicode.Scalar(0x0966 + $0)!) }),
        ("mathematical bold", rewrite { String(Unicode.Scalar(0x1D7CE + $0)!) }),
        ("combining acute after each", rewrite { String(Unicode.Scalar(0x30 + $0)!) + "\u{0301}" }),
        ("keycaps", rewrite { String(Unicode.Scalar(0x30 + $0)!) + "\u{FE0F}\u{20E3}" }),
        ("fullwidth with combining marks", rewrite { String(Unicode.Scalar(0xFF10 + $0)!) + "\u{0308}\u{0323}" }),
        ("half fullwidth", "41111111１１１１１１１１"),
    ]

    /// Numeric scalars in `s` that are not ASCII digits, and the ASCII digits.
    static func digits(_ s: String) -> (other: Int, ascii: Int) {
        let numeric = s.unicodeScalars.filter { $0.properties.numericType != nil }
        return (numeric.filter { !$0.isASCII }.count, numeric.filter(\.isASCII).count)
    }

    @Test func disguisedDigitsAreMaskedToFirstSixLastFourInASCII() {
        for (name, text) in Self.disguised {
            let masked = PANMask.mask(text)
            #expect(masked == "411111******1111", "\(name): \(masked)")
            let d = Self.digits(masked)
            #expect(d.other == 0 && d.ascii == 10, "\(name): \(masked) shows \(d)")
            #expect(PANMask.containsPANLikeRun(text), "\(name) not recognised as a card number")
            let card = CardData(maskedPAN: text)
            #expect(card.maskedPAN == "411111******1111" && card.bin == "411111" && card.last4 == "1111", "\(name): \(String(describing: card.maskedPAN))")
        }
    }

    @Test func separatorsWithinARunDoNotHideIt() {
        let spaced = "４１１１\u{00A0}１１１１\u{200B}１１１１\u{2013}１１１１"
        #expect(PANMask.containsPANLikeRun(spaced))
        #expect(PANMask.mask(spaced) == "4111\u{00A0}11**\u{200B}****\u{2013}1111")
        // Twelve digits, then a letter: not a card number.
        #expect(!PANMask.containsPANLikeRun("４１１１１１１１１１１１x4"))
    }

    @Test func shortAndAlreadyMaskedValuesKeepTheirRules() {
        #expect(PANMask.mask("１２３４５６７８９０１２") == "********9012")
        #expect(PANMask.mask("４１１１１１******１１１１") == "411111******1111")
        #expect(PANMask.mask("VISA ０１１９") == "VISA *119")
    }
}
