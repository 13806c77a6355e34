import Testing
import Timebase
import WireFormat

@Suite struct BERTLVTests {
    @Test func tagsOfOneToFourBytesAndEachLengthForm() throws {
        let items = [TLV(tag: 0x5A, value: [0x47, 0x61]),
                     TLV(tag: 0x9F02, value: [UInt8](repeating: 1, count: 0x7F)),
                     TLV(tag: 0xDFCA0B, value: [UInt8](repeating: 2, count: 0x80)),
                     TLV(tag: 0xDF81_8001, value: [UInt8](repeating: 3, count: 0x100))]
        let bytes = BERTLV.encode(items)
        #expect(Array(bytes[0..<4]) == [0x5A, 0x02, 0x47, 0x61])
        #expect(Array(bytes[4..<7]) == [0x9F, 0x02, 0x7F])
        #expect(Array(bytes[(7 + 0x7F)..<(7 + 0x7F + 5)]) == [0xDF, 0xCA, 0x0B, 0x81, 0x80])
        let fourth = 7 + 0x7F + 5 + 0x80
        #expect(Array(bytes[fourth..<(fourth + 7)]) == [0xDF, 0x81, 0x80, 0x01, 0x82, 0x01, 0x00])
        #expect(try BERTLV.parse(bytes[...]) == items)
        #expect(TLV(tag: 0xDFCA0B, value: []).tagHex == "DFCA0B")
    }

    @Test func refusesWhatIsBeyondTheBoundsOrTheData() {
        // A fifth tag byte, a 3-byte long form, a value past the end, a tag cut short.
        #expect(throws: WireFormatError.invalid(field: "tag length")) { try BERTLV.parse([0xDF, 0x81, 0x81, 0x81, 0x01, 0x00][...]) }
        #expect(throws: WireFormatError.invalid(field: "length form")) { try BERTLV.parse([0x5A, 0x83, 0, 0, 1, 0][...]) }
        #expect(throws: WireFormatError.invalid(field: "length form")) { try BERTLV.parse([0x5A, 0x80][...]) }
        #expect(throws: WireFormatError.truncated(field: "TLV value")) { try BERTLV.parse([0x5A, 0x03, 1, 2][...]) }
        #expect(throws: WireFormatError.truncated(field: "tag")) { try BERTLV.parse([0x9F][...]) }
        #expect(throws: WireFormatError.truncated(field: "length")) { try BERTLV.parse([0x5A, 0x82, 0x01][...]) }
    }

    @Test func paddingBetweenObjectsIsSkipped() throws {
        #expect(try BERTLV.parse([0x00, 0x5A, 0x01, 0x47, 0xFF, 0xFF][...]) == [TLV(tag: 0x5A, value: [0x47])])
    }

    @Test func tagListsHaveNoLengths() throws {
        let tags: [UInt32] = [0xDFF006, 0x5A, 0x9F02, 0xDF81_8001]
        let bytes = BERTLV.encodeTagList(tags)
        #expect(bytes == [0xDF, 0xF0, 0x06, 0x5A, 0x9F, 0x02, 0xDF, 0x81, 0x80, 0x01])
        #expect(try BERTLV.parseTagList(bytes[...]) == tags)
    }

    /// A random valid tag of 1–4 bytes: first byte not padding; continuation bits as BER wants.
    static func randomTag(_ g: inout SeededGenerator) -> UInt32 {
        let n = Int.random(in: 1...BERTLV.maxTagBytes, using: &g)
        if n == 1 {
            while true {
                let b = g.byte()
                if b & 0x1F != 0x1F, b != 0x00, b != 0xFF { return UInt32(b) }
            }
        }
        var tag = UInt32(g.byte() | 0x1F)
        if tag == 0xFF { tag = 0xDF }
        for i in 1..<n {
            let b = i == n - 1 ? g.byte() & 0x7F : g.byte() | 0x80
            tag = tag << 8 | UInt32(b)
        }
        return tag
    }

    @Test(arguments: Seeds.sample(8))
    func randomObjectsRoundTrip(seed: UInt64) throws {
        var g = Seeds.generator(seed, "BER-TLV round trip")
        for _ in 0..<200 {
            let items = (0..<Int.random(in: 0...6, using: &g)).map { _ in
                TLV(tag: Self.randomTag(&g), value: g.bytes([0, 1, 0x7F, 0x80, 0xFF, 0x100, Int.random(in: 0...600, using: &g)].randomElement(using: &g)!))
            }
            #expect(try BERTLV.parse(BERTLV.encode(items)[...]) == items, "seed \(seed)")
            let tags = items.map(\.tag)
            #expect(try BERTLV.parseTagList(BERTLV.encodeTagList(tags)[...]) == tags, "seed \(seed)")
        }
    }

    @Test(arguments: Seeds.sample(4))
    func randomBytesNeverTrapAndNeverReadPastTheEnd(seed: UInt64) {
        var g = Seeds.generator(seed, "BER-TLV random input")
        for _ in 0..<2_000 {
            let bytes = g.bytes(Int.random(in: 0...40, using: &g))
            if let items = try? BERTLV.parse(bytes[...]) {
                #expect(items.reduce(0) { $0 + $1.value.count } <= bytes.count, "seed \(seed)")
            }
        }
    }
}
