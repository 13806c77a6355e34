import WireFormat
import Testing
import Timebase

@Suite struct CRC32CTests {
    /// Bit at a time, straight from the definition: the reference the table version must match.
    static func reference(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes {
            c ^= UInt32(b)
            for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
        }
        return ~c
    }

    @Test func standardCheckValue() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([]) == 0)
        // RFC 3720 B.4: 32 bytes of zeros, of 0xFF, and ascending.
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        #expect(CRC32C.checksum((0..<32).map { UInt8($0) }) == 0x46DD_794E)
    }

    @Test func matchesBitwiseReferenceAtEveryLengthAndSplit() {
        let seed: UInt64 = 0xC4C3_2C
        var rng = SeededGenerator(seed: seed)
        for length in 0..<80 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let expected = Self.reference(bytes)
            #expect(CRC32C.checksum(bytes) == expected, "seed \(seed) length \(length)")
            let split = length == 0 ? 0 : Int.random(in: 0...length, using: &rng)
            let chained = bytes.withUnsafeBytes { raw in
                CRC32C.update(CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[0..<split])),
                              UnsafeRawBufferPointer(rebasing: raw[split...]))
            }
            #expect(chained == expected, "seed \(seed) length \(length) split \(split)")
        }
    }
}
