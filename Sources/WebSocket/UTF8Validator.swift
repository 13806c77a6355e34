/// Incremental UTF-8 validation (Unicode table 3-7, well-formed byte sequences): a text message is
/// checked fragment by fragment as it arrives, so that a bad one fails at once (RFC 6455 section
/// 8.1) rather than after the whole message was buffered, and a character split between two
/// fragments is still checked whole.
public struct UTF8Validator: Sendable, Equatable {
    /// Continuation bytes still needed for the current character.
    private var needed = 0
    /// The range of the next continuation byte: narrower than 80–BF right after E0, ED, F0 and F4,
    /// which is how overlongs, surrogates and code points above U+10FFFF are refused.
    private var lower: UInt8 = 0x80
    private var upper: UInt8 = 0xBF

    public init() {}

    /// True when the bytes so far end on a character boundary (a message may end here).
    public var isAtBoundary: Bool { needed == 0 }

    /// Checks more bytes; false at the first byte that cannot continue well-formed UTF-8. After a
    /// false the validator's state is meaningless.
    public mutating func feed(_ bytes: some Sequence<UInt8>) -> Bool {
        for b in bytes {
            if needed > 0 {
                guard b >= lower && b <= upper else { return false }
                needed -= 1
                lower = 0x80
                upper = 0xBF
                continue
            }
            switch b {
            case 0x00...0x7F: continue
            case 0xC2...0xDF: needed = 1
            case 0xE0: needed = 2; lower = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: needed = 2
            case 0xED: needed = 2; upper = 0x9F
            case 0xF0: needed = 3; lower = 0x90
            case 0xF1...0xF3: needed = 3
            case 0xF4: needed = 3; upper = 0x8F
            default: return false
            }
        }
        return true
    }

    /// Whether `bytes` are complete, well-formed UTF-8.
    public static func isValid(_ bytes: some Sequence<UInt8>) -> Bool {
        var v = UTF8Validator()
        return v.feed(bytes) && v.isAtBoundary
    }
}
