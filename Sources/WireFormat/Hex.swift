/// The one hexadecimal codec: byte dumps in logs and JSON, test vectors, scenario files and the
/// technicians' pasted captures.
public enum Hex {
    private static let upperDigits = Array("0123456789ABCDEF".utf8)
    private static let lowerDigits = Array("0123456789abcdef".utf8)

    /// What `decode` passes over between digits. Nothing by default: a scenario's or a
    /// configuration's hex is one token, and a stray character there is a mistake.
    public struct Skipping: OptionSet, Sendable {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        /// Space, \t, \n, \v, \f, \r anywhere: pasted dumps like `"02 00 1A\n"`.
        public static let whitespace = Skipping(rawValue: 1 << 0)
        /// `:` and `,`: the separators of capture tools' output (`02:00:1a`, `02,00,1a`).
        public static let separators = Skipping(rawValue: 1 << 1)
    }

    /// Why text is not hex.
    public enum DecodeError: Error, Equatable, Sendable, CustomStringConvertible {
        /// The byte at UTF-8 offset `offset` is neither a digit nor skipped.
        case invalidCharacter(UInt8, offset: Int)
        /// The digits do not make whole bytes.
        case oddDigitCount

        public var description: String {
            switch self {
            // The byte as the text had it: the technicians' tool has always printed it this way.
            case .invalidCharacter(let c, _): return "invalid hex character '\(String(decoding: [c], as: UTF8.self))'"
            case .oddDigitCount: return "odd number of hex digits"
            }
        }
    }

    /// Two digits per byte, no separators.
    public static func encode(_ bytes: some Collection<UInt8>, uppercase: Bool = true) -> String {
        let digits = uppercase ? upperDigits : lowerDigits
        return String(unsafeUninitializedCapacity: bytes.count * 2) { out in
            var i = 0
            for byte in bytes {
                out[i] = digits[Int(byte >> 4)]
                out[i + 1] = digits[Int(byte & 0x0F)]
                i += 2
            }
            return i
        }
    }

    /// Bytes from hex digits in either case, passing over what `skipping` names.
    public static func decode(_ s: some StringProtocol, skipping: Skipping = []) throws(DecodeError) -> [UInt8] {
        try decode(utf8: s.utf8, skipping: skipping)
    }

    /// Bytes from hex digits given as UTF-8 (a line read from standard input).
    public static func decode(utf8: some Collection<UInt8>, skipping: Skipping = []) throws(DecodeError) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(utf8.count / 2)
        var high: UInt8?
        var offset = 0
        for c in utf8 {
            defer { offset += 1 }
            guard let v = digit(c) else {
                switch c {
                // One pattern per case: a `where` after a list of patterns guards only the last.
                case 0x20 where skipping.contains(.whitespace): continue
                case 0x09...0x0D where skipping.contains(.whitespace): continue
                case UInt8(ascii: ":") where skipping.contains(.separators): continue
                case UInt8(ascii: ",") where skipping.contains(.separators): continue
                default: throw .invalidCharacter(c, offset: offset)
                }
            }
            if let h = high {
                bytes.append(h << 4 | v)
                high = nil
            } else {
                high = v
            }
        }
        guard high == nil else { throw .oddDigitCount }
        return bytes
    }

    /// The value of one hex digit, either case.
    static func digit(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c &- UInt8(ascii: "0")
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c &- UInt8(ascii: "A") &+ 10
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c &- UInt8(ascii: "a") &+ 10
        default: return nil
        }
    }
}
