/// The one card-data filter (PCI DSS: no full card number, track data or CVV is ever logged,
/// stored, reported or shown). Every string and byte field that comes from a terminal passes
/// through it before it leaves the codec; `PANMask` then shapes the one field that is meant to
/// hold a card number.
///
/// What counts as card data:
/// - **A card number in text**: a run of 13 to 19 digits (any script; spaces, dashes, dots and
///   slashes between groups allowed) that passes the Luhn check. Inside a longer run of groups,
///   every stretch of whole groups with 13–19 digits is tried, so `4111 1111 1111 1111 2512`
///   is caught; an unbroken run of 20 or more digits is not a card number (ISO/IEC 7812 allows
///   19 at most), and testing every window of it would mask most long references.
/// - **Track data in text**: 12–19 digits followed by `=` (track 2) or `^` (track 1), Luhn or not.
/// - **A card number in BCD** (EMV tag 5A and the like): 13–19 decimal nibbles starting at a byte
///   boundary, ending at a byte boundary or with `F` padding, Luhn-valid. Bytes that are ASCII
///   digits are left to the text view (their nibbles `3x3x…` would otherwise make every numeric
///   text look like BCD).
/// - **Track 2 equivalent data in BCD** (tags 57, 9F6B): 12–19 decimal nibbles, the separator
///   nibble `D`, then at least four more digits (expiry).
///
/// A random 13–19 digit number passes the Luhn check one time in ten, so a numeric reference of
/// that length is masked one time in ten: the filter errs towards masking, never towards keeping.
/// The one exception is an ICCID in the SIM-serial field (`isICCID`): telecom numbers (issuer
/// prefix 89) are Luhn-valid by construction and are inventory, not card data.
public enum CardDataFilter {
    /// What replaces a text value that held track data: nothing of it is kept.
    public static let removed = "[card data removed]"
    /// Card numbers are 13 to 19 digits long (ISO/IEC 7812).
    public static let panDigits = 13...19
    /// A track's account number before its separator.
    public static let trackPANDigits = 12...19

    /// What the filter found.
    public enum Finding: Equatable, Sendable {
        /// A Luhn-valid 13–19 digit number.
        case cardNumber
        /// Track 1 or track 2 (equivalent) data: an account number with its separator and what follows.
        case trackData
    }

    // MARK: text

    /// The text with every card number masked (first 6 and last 4 digits kept, as PCI DSS allows
    /// to display), or `removed` when it holds track data; and what was found (nil: unchanged).
    public static func scrub(_ text: String) -> (text: String, found: Finding?) {
        let scalars = text.unicodeScalars.filter { !PANMask.isMark($0) }.map { $0 }
        let scan = scanText(scalars)
        if scan.track { return (removed, .trackData) }
        guard !scan.mask.isEmpty else { return (text, nil) }
        var out = String.UnicodeScalarView()
        for (i, c) in scalars.enumerated() {
            if scan.mask.contains(i) { out.append("*") } else if PANMask.isDigit(c) { out.append(PANMask.asciiDigit(c)) } else { out.append(c) }
        }
        return (String(out), .cardNumber)
    }

    /// What card data `text` holds, if any.
    public static func find(in text: String) -> Finding? {
        let scan = scanText(text.unicodeScalars.filter { !PANMask.isMark($0) }.map { $0 })
        return scan.track ? .trackData : (scan.mask.isEmpty ? nil : .cardNumber)
    }

    /// Positions (in `scalars`) of the digits to hide, and whether track data was seen.
    static func scanText(_ scalars: [Unicode.Scalar]) -> (mask: Set<Int>, track: Bool) {
        var mask = Set<Int>()
        var i = 0
        while i < scalars.count {
            guard PANMask.isDigit(scalars[i]) else { i += 1; continue }
            // One run: digit groups joined by separators. `positions` are the digits' indices,
            // `starts` the digit counts at which a group begins.
            var positions: [Int] = []
            var starts: [Int] = [0]
            var j = i
            var lastDigit = i
            while j < scalars.count {
                let c = scalars[j]
                if PANMask.isDigit(c) {
                    if j > lastDigit + 1, !positions.isEmpty { starts.append(positions.count) }
                    positions.append(j)
                    lastDigit = j
                } else if !separates(c) {
                    break
                }
                j += 1
            }
            let after = lastDigit + 1 < scalars.count ? scalars[lastDigit + 1] : nil
            if let after, after == "=" || after == "^", trackPANDigits.contains(positions.count) {
                return ([], true)
            }
            let ends = Array(starts.dropFirst()) + [positions.count]
            for s in starts {
                for e in ends where e > s && panDigits.contains(e - s) {
                    let window = positions[s..<e]
                    if luhn(window.map { digitValue(scalars[$0]) }) {
                        mask.formUnion(window.dropFirst(6).dropLast(4))
                    }
                }
            }
            i = lastDigit + 1
        }
        return (mask, false)
    }

    /// Characters that may stand between the digit groups of a written card number.
    static func separates(_ c: Unicode.Scalar) -> Bool {
        if c == "." || c == "/" { return true }
        return PANMask.continuesRun(c)
    }

    static func digitValue(_ c: Unicode.Scalar) -> UInt8 {
        let a = PANMask.asciiDigit(c)
        return a == "*" ? 0xFF : UInt8(a.value - 0x30)
    }

    // MARK: bytes

    /// What card data a byte field holds: printable text is read as text; anything else as text
    /// and as BCD nibbles. Printable text is not read as BCD because upper-case letters are bytes
    /// 0x41–0x59, whose nibbles are mostly decimal: "PSPREF12345678" would read as 28 BCD digits.
    /// (A BCD number whose every byte happens to be printable, about 2 % of 16-digit numbers, is
    /// therefore only caught where its tag is known; the decoder tool never shows those tags.)
    public static func find<C: Collection>(in bytes: C) -> Finding? where C.Element == UInt8 {
        let b = Array(bytes)
        if let f = find(in: String(decoding: b, as: UTF8.self)) { return f }
        return isPrintableText(b) ? nil : findBCD(b, anchoredAtStart: false)
    }

    /// Valid UTF-8 without control characters.
    public static func isPrintableText(_ b: [UInt8]) -> Bool {
        guard !b.isEmpty else { return false }
        var it = b.makeIterator()
        var decoder = UTF8()
        while true {
            switch decoder.decode(&it) {
            case .scalarValue(let c):
                if c.value < 0x20 || (0x7F...0x9F).contains(c.value) { return false }
            case .emptyInput: return true
            case .error: return false
            }
        }
    }

    /// For an opaque value the daemon may keep (the terminal's card hash): card data only when the
    /// value *is* a card number or track, as text or BCD from its first byte. A hash's random bytes
    /// contain digit-like nibble runs now and then; only this strict reading keeps them.
    public static func isCardData(wholeValue b: [UInt8]) -> Bool {
        if find(in: String(decoding: b, as: UTF8.self)) != nil { return true }
        return !isPrintableText(b) && findBCD(b, anchoredAtStart: true) != nil
    }

    /// BCD card numbers and track 2 equivalent data, starting at any byte (or only the first).
    static func findBCD(_ b: [UInt8], anchoredAtStart: Bool) -> Finding? {
        let nibbles = b.flatMap { [$0 >> 4, $0 & 0x0F] }
        for start in stride(from: 0, to: anchoredAtStart ? min(1, nibbles.count) : nibbles.count, by: 2) {
            var end = start
            while end < nibbles.count, nibbles[end] <= 9 { end += 1 }
            let run = end - start
            guard run >= trackPANDigits.lowerBound else { continue }
            // ASCII digits ("0" is 0x30): the text view has judged them already.
            if stride(from: start, to: end, by: 2).allSatisfy({ nibbles[$0] == 3 }) { continue }
            // Track 2: PAN, separator D, expiry (and service code, discretionary data).
            if end + 4 < nibbles.count, nibbles[end] == 0xD, trackPANDigits.contains(run),
               nibbles[(end + 1)...(end + 4)].allSatisfy({ $0 <= 9 }) {
                // The whole value: digits to the end after the separator, then F padding at most.
                let rest = nibbles[(end + 1)...].reversed().drop { $0 == 0xF }
                if !anchoredAtStart || rest.allSatisfy({ $0 <= 9 }) { return .trackData }
            }
            for length in panDigits where length <= run {
                let stop = start + length
                // A BCD number ends on a byte boundary, or pads its last byte with F.
                let ends = length % 2 == 0 || (stop < nibbles.count && nibbles[stop] == 0xF)
                guard ends else { continue }
                if anchoredAtStart {
                    // The whole value: nothing but F padding after the number.
                    guard nibbles[stop...].allSatisfy({ $0 == 0xF }) else { continue }
                }
                if luhn(Array(nibbles[start..<stop])) { return .cardNumber }
            }
        }
        return nil
    }

    // MARK: special fields

    /// An ICCID (ITU-T E.118): 18 to 22 digits with the telecom issuer prefix 89, optionally
    /// padded with F. Only the SIM-serial field may keep one whole.
    public static func isICCID(_ s: String) -> Bool {
        var digits = Substring(s)
        while digits.last == "F" || digits.last == "f" { digits = digits.dropLast() }
        return (18...22).contains(digits.count) && digits.hasPrefix("89") && digits.allSatisfy { $0.isASCII && $0.isNumber }
    }

    /// The Luhn (mod 10) check over decimal digit values; false for any value above 9.
    public static func luhn(_ digits: [UInt8]) -> Bool {
        guard !digits.isEmpty else { return false }
        var sum = 0
        for (k, d) in digits.reversed().enumerated() {
            guard d <= 9 else { return false }
            let v = Int(d)
            sum += k % 2 == 1 ? (v * 2 > 9 ? v * 2 - 9 : v * 2) : v
        }
        return sum % 10 == 0
    }
}
