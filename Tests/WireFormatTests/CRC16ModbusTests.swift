import Testing
import Timebase
import WireFormat

@Suite struct CRC16ModbusTests {
    /// Bit at a time, straight from the definition: the reference the table must match.
    static func reference(_ bytes: [UInt8]) -> UInt16 {
        var c: UInt16 = 0xFFFF
        for b in bytes {
            c ^= UInt16(b)
            for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ 0xA001 : c >> 1 }
        }
        return c
    }

    @Test func standardCheckValue() {
        // The catalogue's check value (reveng, CRC-16/MODBUS).
        #expect(CRC16Modbus.checksum(Array("123456789".utf8)) == 0x4B37)
        #expect(Self.reference(Array("123456789".utf8)) == 0x4B37)
        #expect(CRC16Modbus.checksum([UInt8]()) == 0xFFFF)
    }

    @Test func publishedFrames() {
        // Read Holding Registers, server 0x11, 3 registers from 0x006B, the worked example of
        // many Modbus references: CRC 0x8776, sent low byte first.
        #expect(CRC16Modbus.appending(to: [0x11, 0x03, 0x00, 0x6B, 0x00, 0x03]) == [0x11, 0x03, 0x00, 0x6B, 0x00, 0x03, 0x76, 0x87])
        // Server 1, 10 holding registers from 0: the frame every Modbus tool prints.
        #expect(CRC16Modbus.appending(to: [0x01, 0x03, 0x00, 0x00, 0x00, 0x0A]).suffix(2) == [0xC5, 0xCD])
        #expect(CRC16Modbus.isValid([0x01, 0x03, 0x00, 0x00, 0x00, 0x0A, 0xC5, 0xCD]))
        #expect(!CRC16Modbus.isValid([0x01, 0x03, 0x00, 0x00, 0x00, 0x0A, 0xCD, 0xC5]))
        #expect(!CRC16Modbus.isValid([0xFF, 0xFF]))
    }

    @Test(arguments: Seeds.sample(8))
    func matchesTheBitwiseReferenceAtEveryLengthAndSplit(seed: UInt64) {
        var g = Seeds.generator(seed, "CRC-16/MODBUS")
        for length in 0..<80 {
            let bytes = g.bytes(length)
            let expected = Self.reference(bytes)
            #expect(CRC16Modbus.checksum(bytes) == expected, "seed \(seed) length \(length)")
            let split = Int.random(in: 0...length, using: &g)
            #expect(CRC16Modbus.update(CRC16Modbus.checksum(bytes[..<split]), bytes[split...]) == expected,
                    "seed \(seed) length \(length) split \(split)")
            // A frame has at least one byte before its CRC.
            #expect(CRC16Modbus.isValid(CRC16Modbus.appending(to: bytes)) == !bytes.isEmpty, "seed \(seed) length \(length)")
        }
    }
}
