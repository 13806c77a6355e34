import Testing
import Timebase
import WireFormat

@Suite struct HexTests {
    @Test func encodesBothCases() {
        let bytes: [UInt8] = [0x00, 0x02, 0x7F, 0x80, 0xAB, 0xFF]
        #expect(Hex.encode(bytes) == "00027F80ABFF")
        #expect(Hex.encode(bytes[2...], uppercase: false) == "7f80abff")
        #expect(Hex.encode([UInt8]()) == "")
    }

    @Test func decodesEitherCaseSkippingOnlyWhatItIsTold() throws {
        let bytes: [UInt8] = [0x00, 0x02, 0x7F, 0x80, 0xAB, 0xFF]
        #expect(try Hex.decode("00027f80AbFF") == bytes)
        #expect(try Hex.decode(" 00 02\t7f\r\n80 ab\u{0B}\u{0C}ff\n", skipping: .whitespace) == bytes)
        #expect(try Hex.decode("00:02:7f,80 ab ff", skipping: [.whitespace, .separators]) == bytes)
        #expect(try Hex.decode("") == [])
        #expect(throws: Hex.DecodeError.invalidCharacter(0x20, offset: 2)) { try Hex.decode("00 02") }
        #expect(throws: Hex.DecodeError.invalidCharacter(UInt8(ascii: ":"), offset: 2)) { try Hex.decode("00:02", skipping: .whitespace) }
        #expect(throws: Hex.DecodeError.invalidCharacter(0x0A, offset: 2)) { try Hex.decode("00\n02", skipping: .separators) }
    }

    @Test func rejectsOddCountsAndNonHex() {
        for text in ["0", "ABC", "0 0 0"] {
            #expect(throws: Hex.DecodeError.oddDigitCount, "\(text)") { try Hex.decode(text, skipping: .whitespace) }
        }
        for text in ["0G", "0x00", "00-01", "\u{00e9}0"] {
            #expect(throws: Hex.DecodeError.self, "\(text)") { try Hex.decode(text, skipping: [.whitespace, .separators]) }
        }
        // The technicians' tool prints these texts; they are its documented output.
        #expect(Hex.DecodeError.invalidCharacter(UInt8(ascii: "G"), offset: 1).description == "invalid hex character 'G'")
        #expect(Hex.DecodeError.oddDigitCount.description == "odd number of hex digits")
    }

    @Test(arguments: Seeds.sample(8))
    func randomBytesRoundTripInBothCasesWithSeparators(seed: UInt64) throws {
        var g = Seeds.generator(seed, "Hex round trip")
        for _ in 0..<200 {
            let bytes = g.bytes(Int.random(in: 0...64, using: &g))
            let upper = Hex.encode(bytes), lower = Hex.encode(bytes, uppercase: false)
            #expect(try Hex.decode(upper) == bytes, "seed \(seed)")
            #expect(try Hex.decode(lower) == bytes, "seed \(seed)")
            // Separators between every byte, as a capture tool prints them.
            let spaced = stride(from: 0, to: upper.count, by: 2).map { i in
                String(upper.dropFirst(i).prefix(2))
            }.joined(separator: [" ", ":", ",", "\n"].randomElement(using: &g)!)
            #expect(try Hex.decode(spaced, skipping: [.whitespace, .separators]) == bytes, "seed \(seed)")
        }
    }
}
