import Testing
import Timebase
import WireFormat

@Suite struct CRC16KermitTests {
    /// Bit at a time, straight from the definition: the reference the table must match.
    static func reference(_ bytes: [UInt8]) -> UInt16 {
        var c: UInt16 = 0
        for b in bytes {
            c ^= UInt16(b)
            for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ 0x8408 : c >> 1 }
        }
        return c
    }

    @Test func standardCheckValue() {
        // The catalogue's check value (reveng, CRC-16/KERMIT).
        #expect(CRC16Kermit.checksum(Array("123456789".utf8)) == 0x2189)
        #expect(CRC16Kermit.checksum([UInt8]()) == 0)
        #expect(Self.reference(Array("123456789".utf8)) == 0x2189)
    }

    @Test(arguments: Seeds.sample(8))
    func matchesTheBitwiseReferenceAtEveryLengthAndSplit(seed: UInt64) {
        var g = Seeds.generator(seed, "CRC-16/KERMIT")
        for length in 0..<80 {
            let bytes = g.bytes(length)
            let expected = Self.reference(bytes)
            #expect(CRC16Kermit.checksum(bytes) == expected, "seed \(seed) length \(length)")
            let split = Int.random(in: 0...length, using: &g)
            #expect(CRC16Kermit.update(CRC16Kermit.checksum(bytes[..<split]), bytes[split...]) == expected,
                    "seed \(seed) length \(length) split \(split)")
        }
    }
}
