import Testing
import Timebase
import WireFormat

@Suite struct Base64Tests {
    @Test func rfc4648Vectors() throws {
        let vectors = [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE="), ("foobar", "Zm9vYmFy")]
        for (plain, encoded) in vectors {
            #expect(Base64.encode(Array(plain.utf8)) == encoded)
            #expect(try Base64.decode(encoded) == Array(plain.utf8))
        }
        #expect(Base64.encode([0xFB, 0xFF, 0xBF]) == "+/+/")
    }

    @Test func refusesWhatIsNotCanonical() {
        #expect(throws: Base64.DecodeError.invalidLength(3)) { try Base64.decode("Zm9") }
        #expect(throws: Base64.DecodeError.invalidLength(5)) { try Base64.decode("Zm9v\n") }
        #expect(throws: Base64.DecodeError.invalidCharacter(UInt8(ascii: "-"), offset: 1)) { try Base64.decode("Z-9v") }
        #expect(throws: Base64.DecodeError.invalidCharacter(UInt8(ascii: "="), offset: 0)) { try Base64.decode("====") }
        #expect(throws: Base64.DecodeError.invalidCharacter(UInt8(ascii: "="), offset: 2)) { try Base64.decode("Zm=vZm9v") }
        #expect(throws: Base64.DecodeError.invalidCharacter(UInt8(ascii: "="), offset: 2)) { try Base64.decode("Zm=v") }
        #expect(throws: Base64.DecodeError.nonZeroPaddingBits) { try Base64.decode("Zh==") }
        #expect(throws: Base64.DecodeError.nonZeroPaddingBits) { try Base64.decode("Zm9=") }
    }

    @Test(arguments: Seeds.sample(8))
    func randomBytesRoundTrip(seed: UInt64) throws {
        var g = Seeds.generator(seed, "Base64 round trip")
        for _ in 0..<300 {
            let bytes = g.bytes(Int.random(in: 0...70, using: &g))
            let text = Base64.encode(bytes)
            #expect(text.utf8.count == (bytes.count + 2) / 3 * 4, "seed \(seed)")
            #expect(try Base64.decode(text) == bytes, "seed \(seed)")
        }
    }
}
