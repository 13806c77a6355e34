/// Packed BCD: two decimal digits a byte, the high nibble first. Numbers (ZVT's amounts, EMV's
/// format n) are right-aligned with leading zeros; digit strings (card numbers: EMV's format cn,
/// ZVT's BMP 22) are left-aligned with F nibbles after the last digit.
public enum BCD {
    /// The nibble that pads a digit string to whole bytes.
    public static let padNibble: UInt8 = 0xF
    /// 9 bytes are 18 digits, which always fit a UInt64 (whose maximum has 20); ZVT's amounts are 6.
    public static let maxNumberBytes = 9

    /// `value` in `byteCount` bytes, leading zeros. Throws `tooLarge` when it has more digits than
    /// the bytes hold, or `byteCount` is beyond `maxNumberBytes`.
    public static func encode(_ value: UInt64, byteCount: Int) throws(WireFormatError) -> [UInt8] {
        guard byteCount >= 0, byteCount <= maxNumberBytes else { throw .tooLarge(bytes: byteCount, limit: maxNumberBytes) }
        var out = [UInt8](repeating: 0, count: byteCount)
        var v = value
        for i in stride(from: byteCount - 1, through: 0, by: -1) {
            let lo = UInt8(v % 10); v /= 10
            let hi = UInt8(v % 10); v /= 10
            out[i] = hi << 4 | lo
        }
        guard v == 0 else { throw .tooLarge(bytes: decimalDigits(value), limit: byteCount * 2) }
        return out
    }

    /// The number in packed BCD; every nibble must be a digit (an F here is not a number).
    public static func decodeNumber(_ bytes: some Collection<UInt8>) throws(WireFormatError) -> UInt64 {
        guard bytes.count <= maxNumberBytes else { throw .tooLarge(bytes: bytes.count, limit: maxNumberBytes) }
        var v: UInt64 = 0
        for b in bytes {
            let hi = b >> 4, lo = b & 0x0F
            guard hi <= 9, lo <= 9 else { throw .invalid(field: "BCD digit") }
            v = v * 100 + UInt64(hi) * 10 + UInt64(lo)
        }
        return v
    }

    /// The ASCII digits of `digits` packed, an odd count ending in an F nibble; with `byteCount`,
    /// F-padded to that many bytes. Throws `invalid` on a character that is not 0–9 and
    /// `tooLarge` when the digits need more than `byteCount` bytes.
    public static func encodeDigits(_ digits: some StringProtocol, byteCount: Int? = nil) throws(WireFormatError) -> [UInt8] {
        var nibbles: [UInt8] = []
        nibbles.reserveCapacity(digits.utf8.count + 1)
        for c in digits.utf8 {
            guard c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") else { throw .invalid(field: "BCD digit") }
            nibbles.append(c - UInt8(ascii: "0"))
        }
        let needed = (nibbles.count + 1) / 2
        let count = byteCount ?? needed
        guard count >= needed else { throw .tooLarge(bytes: needed, limit: count) }
        nibbles += [UInt8](repeating: padNibble, count: count * 2 - nibbles.count)
        return (0..<count).map { nibbles[2 * $0] << 4 | nibbles[2 * $0 + 1] }
    }

    /// The digits up to the first F nibble. After it only F nibbles may follow (padding), and
    /// A–E anywhere is `invalid`: a digit string with a hole in it is not one.
    public static func decodeDigits(_ bytes: some Collection<UInt8>) throws(WireFormatError) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        var padded = false
        for b in bytes {
            for n in [b >> 4, b & 0x0F] {
                if n == padNibble { padded = true; continue }
                guard n <= 9, !padded else { throw .invalid(field: "BCD digit") }
                out.append(UInt8(ascii: "0") + n)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func decimalDigits(_ v: UInt64) -> Int {
        var n = 1, v = v / 10
        while v > 0 { n += 1; v /= 10 }
        return n
    }
}
