import Testing
import WireFormat

@Suite struct SHA1Tests {
    @Test func fips180Vectors() {
        // FIPS 180-2 appendix A (one block, two blocks) and the NIST long-message vector.
        #expect(Hex.encode(SHA1.hash(Array("abc".utf8)), uppercase: false) == "a9993e364706816aba3e25717850c26c9cd0d89d")
        #expect(Hex.encode(SHA1.hash(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)), uppercase: false)
                == "84983e441c3bd26ebaae4aa1f95129e5e54670f1")
        #expect(Hex.encode(SHA1.hash([UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)), uppercase: false)
                == "34aa973cd4c4daa4f61eeb2bdbad27316534016f")
        #expect(Hex.encode(SHA1.hash([UInt8]()), uppercase: false) == "da39a3ee5e6b4b0d3255bfef95601890afd80709")
    }

    @Test func paddingBoundaries() {
        // 55, 56 and 64 bytes: the length fits the block, spills into a second, fills it exactly.
        #expect(Hex.encode(SHA1.hash([UInt8](repeating: 0x61, count: 55)), uppercase: false) == "c1c8bbdc22796e28c0e15163d20899b65621d65a")
        #expect(Hex.encode(SHA1.hash([UInt8](repeating: 0x61, count: 56)), uppercase: false) == "c2db330f6083854c99d4b5bfb6e8f29f201be699")
        #expect(Hex.encode(SHA1.hash([UInt8](repeating: 0x61, count: 64)), uppercase: false) == "0098ba824b5c16427bd7a1122a5a442a25ec644d")
    }
}
