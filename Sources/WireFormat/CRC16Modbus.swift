/// CRC-16/MODBUS: polynomial 0x8005 (0xA001 reflected), initial value 0xFFFF, reflected in and
/// out, no final XOR; `checksum("123456789") == 0x4B37`. Modbus RTU frames end with it, low
/// byte first (the one little-endian field of an otherwise big-endian protocol).
public enum CRC16Modbus {
    /// The reflected polynomial.
    public static let polynomial: UInt16 = 0xA001
    /// The register's value before the first byte.
    public static let initial: UInt16 = 0xFFFF

    /// One 256-entry table: a Modbus RTU frame is at most 256 bytes.
    static let table: [UInt16] = (0..<256).map { i in
        var c = UInt16(i)
        for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ polynomial : c >> 1 }
        return c
    }

    /// The CRC-16/MODBUS of `bytes`.
    public static func checksum(_ bytes: some Sequence<UInt8>) -> UInt16 {
        update(initial, bytes)
    }

    /// Continues `crc` over `bytes`: `update(checksum(a), b) == checksum(a + b)` (no final XOR,
    /// so the running value is the finished one).
    public static func update(_ crc: UInt16, _ bytes: some Sequence<UInt8>) -> UInt16 {
        var c = crc
        for b in bytes { c = (c >> 8) ^ table[Int((c ^ UInt16(b)) & 0xFF)] }
        return c
    }

    /// `bytes` followed by their CRC, low byte first, as a frame goes on the wire.
    public static func appending(to bytes: [UInt8]) -> [UInt8] {
        let c = checksum(bytes)
        return bytes + [UInt8(c & 0xFF), UInt8(c >> 8)]
    }

    /// Whether the last two bytes of `frame` are the CRC of the rest (low byte first). A frame
    /// shorter than three bytes is never valid.
    public static func isValid(_ frame: some Collection<UInt8>) -> Bool {
        guard frame.count >= 3 else { return false }
        let body = frame.dropLast(2)
        let tail = Array(frame.suffix(2))
        return checksum(body) == UInt16(tail[0]) | UInt16(tail[1]) << 8
    }
}
