import Testing
import Timebase
import WireFormat

@Suite struct BCDTests {
    @Test func numbersAreRightAlignedWithLeadingZeros() throws {
        // ZVT's amount field (BMP 04): 6 bytes; 12.34 EUR is 1234 minor units.
        #expect(try BCD.encode(1234, byteCount: 6) == [0x00, 0x00, 0x00, 0x00, 0x12, 0x34])
        #expect(try BCD.decodeNumber([0x00, 0x00, 0x00, 0x00, 0x12, 0x34]) == 1234)
        #expect(try BCD.encode(999_999_999_999_999_999, byteCount: 9) == [UInt8](repeating: 0x99, count: 9))
        #expect(try BCD.encode(0, byteCount: 0) == [])
        #expect(throws: WireFormatError.tooLarge(bytes: 5, limit: 4)) { try BCD.encode(12345, byteCount: 2) }
        #expect(throws: WireFormatError.tooLarge(bytes: 10, limit: 9)) { try BCD.encode(1, byteCount: 10) }
        #expect(throws: WireFormatError.invalid(field: "BCD digit")) { try BCD.decodeNumber([0x1A]) }
        #expect(throws: WireFormatError.invalid(field: "BCD digit")) { try BCD.decodeNumber([0x1F]) }
        #expect(throws: WireFormatError.tooLarge(bytes: 10, limit: 9)) { try BCD.decodeNumber([UInt8](repeating: 0, count: 10)) }
    }

    @Test func digitStringsAreLeftAlignedWithFPadding() throws {
        // EMV tag 5A (PAN, format cn) and ZVT's BMP 22: an odd count ends in F.
        #expect(try BCD.encodeDigits("4761739001010119") == [0x47, 0x61, 0x73, 0x90, 0x01, 0x01, 0x01, 0x19])
        #expect(try BCD.encodeDigits("476173900101011") == [0x47, 0x61, 0x73, 0x90, 0x01, 0x01, 0x01, 0x1F])
        #expect(try BCD.encodeDigits("123", byteCount: 4) == [0x12, 0x3F, 0xFF, 0xFF])
        #expect(try BCD.decodeDigits([0x12, 0x3F, 0xFF, 0xFF]) == "123")
        #expect(try BCD.decodeDigits([0x47, 0x61, 0x73, 0x90, 0x01, 0x01, 0x01, 0x1F]) == "476173900101011")
        #expect(try BCD.decodeDigits([]) == "")
        #expect(throws: WireFormatError.invalid(field: "BCD digit")) { try BCD.encodeDigits("12a") }
        #expect(throws: WireFormatError.tooLarge(bytes: 2, limit: 1)) { try BCD.encodeDigits("123", byteCount: 1) }
        // A digit after the padding, or a nibble A–E, is not a digit string.
        #expect(throws: WireFormatError.invalid(field: "BCD digit")) { try BCD.decodeDigits([0x1F, 0x23]) }
        #expect(throws: WireFormatError.invalid(field: "BCD digit")) { try BCD.decodeDigits([0x1C]) }
    }

    @Test(arguments: Seeds.sample(8))
    func randomNumbersAndDigitStringsRoundTrip(seed: UInt64) throws {
        var g = Seeds.generator(seed, "BCD round trip")
        for _ in 0..<500 {
            let count = Int.random(in: 0...BCD.maxNumberBytes, using: &g)
            var limit: UInt64 = 1
            for _ in 0..<(2 * count) { limit *= 10 }
            let value = UInt64.random(in: 0..<limit, using: &g)
            let packed = try BCD.encode(value, byteCount: count)
            #expect(packed.count == count, "seed \(seed)")
            #expect(try BCD.decodeNumber(packed) == value, "seed \(seed) value \(value)")

            let digits = String((0..<Int.random(in: 0...19, using: &g)).map { _ in "0123456789".randomElement(using: &g)! })
            let width = (digits.count + 1) / 2 + Int.random(in: 0...3, using: &g)
            let encoded = try BCD.encodeDigits(digits, byteCount: width)
            #expect(encoded.count == width, "seed \(seed)")
            #expect(try BCD.decodeDigits(encoded) == digits, "seed \(seed) digits \(digits)")
        }
    }
}
