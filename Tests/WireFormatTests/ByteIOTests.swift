import Testing
import Timebase
import WireFormat

@Suite struct ByteIOTests {
    @Test func bothByteOrdersAgainstKnownBytes() throws {
        var w = ByteWriter()
        w.u16be(0x0102); w.u16le(0x0102); w.u32be(0x0102_0304); w.u32le(0x0102_0304)
        w.u64be(0x0102_0304_0506_0708); w.u64le(0x0102_0304_0506_0708)
        #expect(w.bytes == [1, 2, 2, 1, 1, 2, 3, 4, 4, 3, 2, 1, 1, 2, 3, 4, 5, 6, 7, 8, 8, 7, 6, 5, 4, 3, 2, 1])
        var r = ByteReader(w.bytes[...])
        #expect(try r.u16be("a") == 0x0102)
        #expect(try r.u16le("b") == 0x0102)
        #expect(try r.u32be("c") == 0x0102_0304)
        #expect(try r.u32le("d") == 0x0102_0304)
        #expect(try r.u64be("e") == 0x0102_0304_0506_0708)
        #expect(try r.u64le("f") == 0x0102_0304_0506_0708)
        #expect(r.isAtEnd)
    }

    @Test func aShortReadThrowsWithTheFieldAndConsumesNothing() {
        var r = ByteReader([1, 2, 3][...])
        #expect(throws: WireFormatError.truncated(field: "amount")) { try r.u32be("amount") }
        #expect(r.remaining == 3)
        #expect(throws: WireFormatError.truncated(field: "mac")) { try r.take(4, "mac") }
        #expect(throws: WireFormatError.truncated(field: "neg")) { try r.take(-1, "neg") }
        #expect(throws: WireFormatError.truncated(field: "long")) { try r.u64le("long") }
        #expect(r.remaining == 3)
    }

    @Test func lengthPrefixedBytesRefuseACountPastTheEnd() throws {
        var w = ByteWriter()
        w.lengthPrefixed32be([9, 8, 7])
        #expect(w.bytes == [0, 0, 0, 3, 9, 8, 7])
        var r = ByteReader(w.bytes[...])
        #expect(Array(try r.lengthPrefixed32be("s")) == [9, 8, 7])
        var short = ByteReader([0, 0, 0, 4, 9, 8, 7][...])
        #expect(throws: WireFormatError.truncated(field: "s")) { try short.lengthPrefixed32be("s") }
        #expect(short.remaining == 7)
        var huge = ByteReader([0xFF, 0xFF, 0xFF, 0xFF, 0][...])
        #expect(throws: WireFormatError.truncated(field: "s")) { try huge.lengthPrefixed32be("s") }
    }

    @Test func cStringsDropEmbeddedNulsAndTolerateAMissingTerminator() throws {
        var w = ByteWriter()
        w.cString("a\u{0}b"); w.append([0x63])
        #expect(w.bytes == [0x61, 0x62, 0, 0x63])
        var r = ByteReader(w.bytes[...])
        #expect(try r.cString("x") == "ab")
        #expect(try r.cString("y") == "c")
        #expect(throws: WireFormatError.truncated(field: "z")) { try r.cString("z") }
    }

    @Test(arguments: Seeds.sample(8))
    func randomFieldsRoundTrip(seed: UInt64) throws {
        var g = Seeds.generator(seed, "ByteIO round trip")
        for _ in 0..<200 {
            // 0: u8, 1: u16be, 2: u16le, 3: u32be, 4: u32le, 5: u64be, 6: u64le, 7: prefixed bytes
            let kinds = (0..<Int.random(in: 0...12, using: &g)).map { _ in Int.random(in: 0...7, using: &g) }
            let values = kinds.map { _ in UInt64.random(in: 0...UInt64.max, using: &g) }
            let blobs = kinds.map { _ in g.bytes(Int.random(in: 0...20, using: &g)) }
            var w = ByteWriter()
            for (i, k) in kinds.enumerated() {
                let v = values[i]
                switch k {
                case 0: w.u8(UInt8(truncatingIfNeeded: v))
                case 1: w.u16be(UInt16(truncatingIfNeeded: v))
                case 2: w.u16le(UInt16(truncatingIfNeeded: v))
                case 3: w.u32be(UInt32(truncatingIfNeeded: v))
                case 4: w.u32le(UInt32(truncatingIfNeeded: v))
                case 5: w.u64be(v)
                case 6: w.u64le(v)
                default: w.lengthPrefixed32be(blobs[i])
                }
            }
            var r = ByteReader(w.bytes[...])
            for (i, k) in kinds.enumerated() {
                let v = values[i]
                switch k {
                case 0: #expect(try r.u8("f") == UInt8(truncatingIfNeeded: v), "seed \(seed)")
                case 1: #expect(try r.u16be("f") == UInt16(truncatingIfNeeded: v), "seed \(seed)")
                case 2: #expect(try r.u16le("f") == UInt16(truncatingIfNeeded: v), "seed \(seed)")
                case 3: #expect(try r.u32be("f") == UInt32(truncatingIfNeeded: v), "seed \(seed)")
                case 4: #expect(try r.u32le("f") == UInt32(truncatingIfNeeded: v), "seed \(seed)")
                case 5: #expect(try r.u64be("f") == v, "seed \(seed)")
                case 6: #expect(try r.u64le("f") == v, "seed \(seed)")
                default: #expect(Array(try r.lengthPrefixed32be("f")) == blobs[i], "seed \(seed)")
                }
            }
            #expect(r.isAtEnd, "seed \(seed)")
        }
    }
}
