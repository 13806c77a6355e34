/// Base64 with the standard alphabet and padding (RFC 4648 section 4): the WebSocket handshake's
/// key and accept values and HTTP Basic credentials.
public enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    private static let pad = UInt8(ascii: "=")

    /// Why text is not canonical padded Base64.
    public enum DecodeError: Error, Equatable, Sendable, CustomStringConvertible {
        /// The byte at UTF-8 offset `offset` is not in the alphabet (or is `=` before the end).
        case invalidCharacter(UInt8, offset: Int)
        /// The length is not a multiple of 4: unpadded or cut short.
        case invalidLength(Int)
        /// The bits the padding discards are not zero: two texts would decode to the same bytes,
        /// and a comparison of texts would disagree with one of bytes.
        case nonZeroPaddingBits

        public var description: String {
            switch self {
            case .invalidCharacter(let c, let offset): return "invalid Base64 character 0x\(Hex.encode([c])) at offset \(offset)"
            case .invalidLength(let n): return "Base64 length \(n) is not a multiple of 4"
            case .nonZeroPaddingBits: return "Base64 padding bits are not zero"
            }
        }
    }

    /// Four characters per three bytes, the last group padded with `=`.
    public static func encode(_ bytes: some Collection<UInt8>) -> String {
        let input = Array(bytes)
        var out: [UInt8] = []
        out.reserveCapacity((input.count + 2) / 3 * 4)
        var i = 0
        while i + 3 <= input.count {
            let n = UInt32(input[i]) << 16 | UInt32(input[i + 1]) << 8 | UInt32(input[i + 2])
            out.append(contentsOf: [alphabet[Int(n >> 18)], alphabet[Int(n >> 12 & 63)], alphabet[Int(n >> 6 & 63)], alphabet[Int(n & 63)]])
            i += 3
        }
        switch input.count - i {
        case 1:
            let n = UInt32(input[i]) << 16
            out.append(contentsOf: [alphabet[Int(n >> 18)], alphabet[Int(n >> 12 & 63)], pad, pad])
        case 2:
            let n = UInt32(input[i]) << 16 | UInt32(input[i + 1]) << 8
            out.append(contentsOf: [alphabet[Int(n >> 18)], alphabet[Int(n >> 12 & 63)], alphabet[Int(n >> 6 & 63)], pad])
        default: break
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Bytes from canonical padded Base64: no whitespace, no line breaks, no URL-safe alphabet.
    public static func decode(_ s: some StringProtocol) throws(DecodeError) -> [UInt8] {
        let text = Array(s.utf8)
        guard text.count % 4 == 0 else { throw .invalidLength(text.count) }
        var out: [UInt8] = []
        out.reserveCapacity(text.count / 4 * 3)
        var group = 0
        while group < text.count {
            let isLast = group + 4 == text.count
            var n: UInt32 = 0
            var pads = 0
            for j in 0..<4 {
                let c = text[group + j]
                // `=` only as the last one or two characters of the text.
                if c == pad, isLast, j >= 2, pads > 0 || j == 3 || text[group + 3] == pad {
                    pads += 1
                    n <<= 6
                    continue
                }
                guard pads == 0, let v = value(c) else { throw .invalidCharacter(c, offset: group + j) }
                n = n << 6 | UInt32(v)
            }
            switch pads {
            case 0: out.append(contentsOf: [UInt8(n >> 16), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)])
            case 1:
                guard n & 0xFF == 0 else { throw .nonZeroPaddingBits }
                out.append(contentsOf: [UInt8(n >> 16), UInt8(n >> 8 & 0xFF)])
            default:
                guard n & 0xFFFF == 0 else { throw .nonZeroPaddingBits }
                out.append(UInt8(n >> 16))
            }
            group += 4
        }
        return out
    }

    private static func value(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): return c - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): return c - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0") + 52
        case UInt8(ascii: "+"): return 62
        case UInt8(ascii: "/"): return 63
        default: return nil
        }
    }
}
