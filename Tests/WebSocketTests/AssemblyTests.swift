import Testing
import Timebase
import WebSocket

@Suite struct AssemblyTests {
    func frame(_ op: WebSocketOpcode, _ bytes: [UInt8], fin: Bool = true) -> WebSocketFrame {
        WebSocketFrame(fin: fin, opcode: op, payload: bytes)
    }

    @Test func controlFramesBetweenFragmentsPassThrough() throws {
        var a = WebSocketMessageAssembler()
        #expect(try a.receive(frame(.binary, [1, 2], fin: false)) == nil)
        #expect(try a.receive(frame(.ping, [9])) == .control(frame(.ping, [9])))
        #expect(a.isInsideMessage)
        #expect(try a.receive(frame(.continuation, [3], fin: false)) == nil)
        #expect(try a.receive(frame(.pong, [])) == .control(frame(.pong, [])))
        #expect(try a.receive(frame(.continuation, [4])) == .message(.binary([1, 2, 3, 4])))
        #expect(!a.isInsideMessage)
        #expect(try a.receive(frame(.text, [])) == .message(.text("")))
    }

    @Test func sequenceViolations() throws {
        var a = WebSocketMessageAssembler()
        #expect(throws: WebSocketProtocolError.unexpectedContinuation) { try a.receive(frame(.continuation, [1])) }
        var b = WebSocketMessageAssembler()
        _ = try b.receive(frame(.text, [0x41], fin: false))
        #expect(throws: WebSocketProtocolError.dataFrameInsideFragmentedMessage) { try b.receive(frame(.binary, [1])) }
        var c = WebSocketMessageAssembler()
        _ = try c.receive(frame(.binary, [1], fin: false))
        #expect(throws: WebSocketProtocolError.dataFrameInsideFragmentedMessage) { try c.receive(frame(.text, [0x41])) }
    }

    @Test func messageLimitCountsAllFragments() throws {
        var a = WebSocketMessageAssembler(maxMessageBytes: 10)
        _ = try a.receive(frame(.binary, [UInt8](repeating: 0, count: 6), fin: false))
        #expect(throws: WebSocketProtocolError.messageTooLarge(limit: 10)) { try a.receive(frame(.continuation, [UInt8](repeating: 0, count: 5))) }
        #expect(WebSocketProtocolError.messageTooLarge(limit: 10).closeCode == .messageTooBig)
        var b = WebSocketMessageAssembler(maxMessageBytes: 10)
        _ = try b.receive(frame(.binary, [UInt8](repeating: 0, count: 6), fin: false))
        #expect(try b.receive(frame(.continuation, [UInt8](repeating: 0, count: 4))) == .message(.binary([UInt8](repeating: 0, count: 10))))
    }

    @Test func textIsValidatedAcrossFragmentBoundaries() throws {
        // "κόσμε" split inside its characters, one byte per fragment.
        let text = Array("κόσμε €𝄞".utf8)
        var a = WebSocketMessageAssembler()
        for (i, b) in text.enumerated() {
            let out = try a.receive(frame(i == 0 ? .text : .continuation, [b], fin: i == text.count - 1))
            #expect((out == nil) == (i < text.count - 1))
            if i == text.count - 1 { #expect(out == .message(.text("κόσμε €𝄞"))) }
        }
        // Fails at the fragment with the bad byte, before the message ends.
        var b = WebSocketMessageAssembler()
        _ = try b.receive(frame(.text, [0xCE], fin: false))
        #expect(throws: WebSocketProtocolError.invalidUTF8) { try b.receive(frame(.continuation, [0x41], fin: false)) }
        // A message may not end inside a character.
        var c = WebSocketMessageAssembler()
        _ = try c.receive(frame(.text, [0x41], fin: false))
        #expect(throws: WebSocketProtocolError.invalidUTF8) { try c.receive(frame(.continuation, [0xE2, 0x82])) }
        #expect(WebSocketProtocolError.invalidUTF8.closeCode == .invalidPayload)
        // Binary is not validated.
        var d = WebSocketMessageAssembler()
        #expect(try d.receive(frame(.binary, [0xFF, 0xC0])) == .message(.binary([0xFF, 0xC0])))
    }

    @Test func utf8Validator() {
        let good: [[UInt8]] = [[], [0x00], [0x7F], [0xC2, 0x80], [0xDF, 0xBF], [0xE0, 0xA0, 0x80], [0xED, 0x9F, 0xBF], [0xEE, 0x80, 0x80],
                               [0xEF, 0xBF, 0xBF], [0xF0, 0x90, 0x80, 0x80], [0xF4, 0x8F, 0xBF, 0xBF], Array("κόσμε".utf8)]
        for g in good { #expect(UTF8Validator.isValid(g), "\(g)") }
        let bad: [[UInt8]] = [
            [0x80], [0xBF], // lone continuation bytes
            [0xC0, 0x80], [0xC1, 0xBF], [0xE0, 0x80, 0x80], [0xE0, 0x9F, 0xBF], [0xF0, 0x80, 0x80, 0x80], [0xF0, 0x8F, 0xBF, 0xBF], // overlongs
            [0xED, 0xA0, 0x80], [0xED, 0xBF, 0xBF], // surrogates U+D800, U+DFFF
            [0xF4, 0x90, 0x80, 0x80], [0xF5, 0x80, 0x80, 0x80], [0xF8, 0x88, 0x80, 0x80, 0x80], [0xFF], [0xFE], // above U+10FFFF, invalid bytes
            [0xC2], [0xE2, 0x82], [0xF0, 0x9D, 0x84], // truncated at the end
            [0xC2, 0x41], [0xE2, 0x28, 0xA1], // a continuation missing
        ]
        for b in bad { #expect(!UTF8Validator.isValid(b), "\(b)") }
    }

    @Test(arguments: Seeds.sample(6))
    func validatorAgreesWithTheStandardLibrary(seed: UInt64) {
        var g = Seeds.generator(seed, "UTF-8 validator vs stdlib")
        for _ in 0..<3000 {
            // Bytes biased toward lead and continuation bytes, so that near-misses are common.
            let bytes = (0..<Int.random(in: 0...8, using: &g)).map { _ -> UInt8 in
                switch Int.random(in: 0..<4, using: &g) {
                case 0: return UInt8.random(in: 0x80...0xBF, using: &g)
                case 1: return UInt8.random(in: 0xC0...0xFF, using: &g)
                case 2: return [0xE0, 0xED, 0xF0, 0xF4, 0x9F, 0xA0, 0x8F, 0x90].randomElement(using: &g)!
                default: return g.byte()
                }
            }
            let stdlib = String(validating: bytes, as: UTF8.self) != nil
            #expect(UTF8Validator.isValid(bytes) == stdlib, "seed \(seed) bytes \(bytes)")
            // Any split gives the same answer.
            var v = UTF8Validator()
            let cut = Int.random(in: 0...bytes.count, using: &g)
            let ok = v.feed(bytes[..<cut]) && v.feed(bytes[cut...]) && v.isAtBoundary
            #expect(ok == stdlib, "seed \(seed) bytes \(bytes) cut \(cut)")
        }
    }
}
