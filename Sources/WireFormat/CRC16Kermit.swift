/// CRC-16/KERMIT (CRC-CCITT, reflected): polynomial 0x1021 (0x8408 reflected), initial value 0,
/// no final XOR; `checksum("123456789") == 0x2189`. ZVT's serial framing (DLE STX … DLE ETX)
/// ends with it, low byte first.
public enum CRC16Kermit {
    /// The reflected CCITT polynomial.
    public static let polynomial: UInt16 = 0x8408

    /// One 256-entry table: ZVT frames are a few hundred bytes, so slicing buys nothing.
    static let table: [UInt16] = (0..<256).map { i in
        var c = UInt16(i)
        for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ polynomial : c >> 1 }
        return c
    }

    /// The CRC-16/KERMIT of `bytes`.
    public static func checksum(_ bytes: some Sequence<UInt8>) -> UInt16 {
        update(0, bytes)
    }

    /// Continues `crc` over `bytes`: `update(checksum(a), b) == checksum(a + b)` (no final XOR,
    /// so the running value is the finished one).
    public static func update(_ crc: UInt16, _ bytes: some Sequence<UInt8>) -> UInt16 {
        var c = crc
        for b in bytes { c = (c >> 8) ^ table[Int((c ^ UInt16(b)) & 0xFF)] }
        return c
    }
}
