/// PAN masking: the terminal is meant to send a masked number already; this makes
/// sure a full number (a misconfigured terminal, a test card) never goes further.
///
/// Digits are judged by Unicode scalar, not by Character: every scalar with a numeric value in
/// any script (fullwidth ４, Arabic-Indic ٤, mathematical 𝟒, …) is a digit, and combining marks
/// are dropped, since a digit followed by a mark is one Character that is neither ASCII nor a
/// plain digit, which would otherwise let a whole number through unmasked.
public enum PANMask {
    /// Keeps the first 6 and last 4 digits and replaces every other digit with '*'.
    /// An all-digit string of 12 digits or fewer keeps only its last 4: it might be a short PAN.
    /// A string already masked by the terminal keeps its visible digits up to 6 + 4.
    /// Kept digits come out as ASCII digits (a numeric scalar that is not a digit 0…9, such as ½,
    /// as '*'); combining marks are removed.
    public static func mask(_ s: String) -> String {
        let scalars = s.unicodeScalars.filter { !isMark($0) }.map { $0 }
        let digitPositions = scalars.indices.filter { isDigit(scalars[$0]) }
        let n = digitPositions.count
        var keep = Set<Int>()
        let alreadyMasked: Bool = {
            guard let a = digitPositions.first, let b = digitPositions.last, a < b else { return false }
            return scalars[a...b].contains { $0 == "*" || $0 == "X" || $0 == "x" || $0 == "#" }
        }()
        if n >= 13 || (alreadyMasked && n >= 4) {
            keep.formUnion(digitPositions.prefix(6))
            keep.formUnion(digitPositions.suffix(4))
        } else {
            keep.formUnion(digitPositions.suffix(min(4, max(0, n - 1))))
        }
        var out = String.UnicodeScalarView()
        for (i, c) in scalars.enumerated() {
            out.append(isDigit(c) ? (keep.contains(i) ? asciiDigit(c) : "*") : c)
        }
        return String(out)
    }

    /// True when `s` contains a run of 13 or more digits (a possible full card number): digits as
    /// `mask` counts them, in any script; spaces, dashes, combining marks and invisible format
    /// characters between them do not end a run.
    public static func containsPANLikeRun(_ s: String) -> Bool {
        var run = 0
        for c in s.unicodeScalars {
            if isDigit(c) {
                run += 1
                if run >= 13 { return true }
            } else if !continuesRun(c) {
                run = 0
            }
        }
        return false
    }

    /// A scalar with a numeric value, in any script.
    static func isDigit(_ c: Unicode.Scalar) -> Bool {
        if c.isASCII { return c.value >= 0x30 && c.value <= 0x39 }
        return c.properties.numericType != nil
    }

    static func isMark(_ c: Unicode.Scalar) -> Bool {
        switch c.properties.generalCategory {
        case .nonspacingMark, .spacingMark, .enclosingMark: return true
        default: return false
        }
    }

    /// Separators a number may be written with: they neither count as digits nor end a run.
    static func continuesRun(_ c: Unicode.Scalar) -> Bool {
        if c == " " || c == "-" { return true }
        if c.isASCII { return false }
        switch c.properties.generalCategory {
        case .nonspacingMark, .spacingMark, .enclosingMark, .format, .spaceSeparator, .dashPunctuation: return true
        default: return false
        }
    }

    /// The ASCII digit of a digit scalar (its numeric value 0…9), or '*' for any other numeric value.
    static func asciiDigit(_ c: Unicode.Scalar) -> Unicode.Scalar {
        if c.isASCII { return c }
        guard let v = c.properties.numericValue, v >= 0, v <= 9, v == v.rounded(.towardZero),
              let digit = Unicode.Scalar(0x30 + UInt32(v)) else { return "*" }
        return digit
    }
}
