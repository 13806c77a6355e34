import Testing
import Timebase
import WebSocket
import WireFormat

@Suite struct FrameTests {
    let hello = Array("Hello".utf8)

    @Test func rfc6455Section57ExamplesByteForByte() throws {
        // A single-frame unmasked text message (what a server sends).
        let unmasked: [UInt8] = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]
        #expect(try decodeAll(unmasked) == [WebSocketFrame(opcode: .text, payload: hello)])
        #expect(ServerFrame.text("Hello") == unmasked)
        // A single-frame masked text message (what we send), key 37 fa 21 3d.
        let masked: [UInt8] = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
        #expect(WebSocketFrameEncoder.encode(WebSocketFrame(opcode: .text, payload: hello), maskKey: 0x37FA_213D) == masked)
        // A fragmented unmasked text message: "Hel" then "lo".
        let fragmented: [UInt8] = [0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f]
        let frames = try decodeAll(fragmented)
        #expect(frames == [WebSocketFrame(fin: false, opcode: .text, payload: Array("Hel".utf8)),
                           WebSocketFrame(fin: true, opcode: .continuation, payload: Array("lo".utf8))])
        var assembler = WebSocketMessageAssembler()
        #expect(try assembler.receive(frames[0]) == nil)
        #expect(try assembler.receive(frames[1]) == .message(.text("Hello")))
        // Unmasked ping, and the masked pong answering it.
        #expect(try decodeAll([0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]) == [WebSocketFrame(opcode: .ping, payload: hello)])
        #expect(WebSocketFrameEncoder.encode(WebSocketFrame(opcode: .pong, payload: hello), maskKey: 0x37FA_213D)
                == [0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58])
        // 256 bytes binary in one unmasked frame: 82 7E 0100; 64 KiB: 82 7F 0000000000010000.
        let b256 = [UInt8](repeating: 0xAB, count: 256)
        let f256 = ServerFrame.encode(opcode: 2, payload: b256)
        #expect(Array(f256.prefix(4)) == [0x82, 0x7E, 0x01, 0x00])
        #expect(try decodeAll(f256) == [WebSocketFrame(opcode: .binary, payload: b256)])
        let b64k = [UInt8](repeating: 0xCD, count: 65536)
        let f64k = ServerFrame.encode(opcode: 2, payload: b64k)
        #expect(Array(f64k.prefix(10)) == [0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00])
        #expect(try decodeAll(f64k) == [WebSocketFrame(opcode: .binary, payload: b64k)])
        // And our masked headers for the same lengths.
        #expect(Array(WebSocketFrameEncoder.encode(WebSocketFrame(opcode: .binary, payload: b256), maskKey: 1).prefix(8))
                == [0x82, 0xFE, 0x01, 0x00, 0x00, 0x00, 0x00, 0x01])
        #expect(Array(WebSocketFrameEncoder.encode(WebSocketFrame(opcode: .binary, payload: b64k), maskKey: 1).prefix(14))
                == [0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1])
    }

    @Test func encoderLengthBoundaries() {
        for n in [0, 125, 126, 65535, 65536] {
            let payload = [UInt8](repeating: 7, count: n)
            let bytes = WebSocketFrameEncoder.encode(WebSocketFrame(opcode: .binary, payload: payload), maskKey: 0xDEAD_BEEF)
            let frame = unmaskClientFrame(bytes)
            #expect(frame?.payload == payload, "length \(n)")
            let header = n < 126 ? 6 : (n <= 0xFFFF ? 8 : 14)
            #expect(bytes.count == header + n, "length \(n)")
        }
        let frag = WebSocketFrameEncoder.encode(WebSocketFrame(fin: false, opcode: .continuation, payload: []), maskKey: 0)
        #expect(frag == [0x00, 0x80, 0, 0, 0, 0])
        #expect(WebSocketFrameEncoder.encode(WebSocketFrame(opcode: .close, payload: [0x03, 0xE8]), maskKey: 0)
                == [0x88, 0x82, 0, 0, 0, 0, 0x03, 0xE8])
    }

    @Test func decoderRefusesEachViolationWithItsCloseCode() {
        func refused(_ bytes: [UInt8], limit: Int = WebSocketLimits.defaultMaxFramePayload) -> WebSocketProtocolError? {
            do { _ = try decodeAll(bytes, maxFramePayload: limit); return nil } catch { return error }
        }
        let masked = refused(ServerFrame.encode(opcode: 1, payload: hello, mask: [1, 2, 3, 4]))
        #expect(masked == .maskedFrame)
        #expect(masked?.closeCode == .protocolError)
        for rsv: UInt8 in [1, 2, 4, 7] {
            #expect(refused(ServerFrame.encode(opcode: 1, payload: hello, rsv: rsv)) == .reservedBits(rsv))
        }
        for op: UInt8 in [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
            #expect(refused(ServerFrame.encode(opcode: op, payload: [])) == .unknownOpcode(op))
        }
        #expect(refused(ServerFrame.encode(opcode: 9, payload: [UInt8](repeating: 0, count: 126))) == .controlFrameTooLong(126))
        #expect(refused(ServerFrame.encode(opcode: 8, payload: [UInt8](repeating: 0, count: 126))) == .controlFrameTooLong(126))
        #expect(refused(ServerFrame.encode(fin: false, opcode: 9, payload: hello)) == .fragmentedControlFrame)
        #expect(refused(ServerFrame.encode(fin: false, opcode: 0xA, payload: [])) == .fragmentedControlFrame)
        #expect(refused([0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0]) == .lengthTopBitSet)
        #expect(refused(ServerFrame.encode(opcode: 2, payload: hello, lengthForm: .sixteen)) == .nonMinimalLength(5))
        #expect(refused(ServerFrame.encode(opcode: 2, payload: hello, lengthForm: .sixtyFour)) == .nonMinimalLength(5))
        #expect(refused(ServerFrame.encode(opcode: 2, payload: [UInt8](repeating: 0, count: 300), lengthForm: .sixtyFour)) == .nonMinimalLength(300))
        // The limit is checked on the header alone: 9 bytes announce 2^40 and nothing more is needed.
        let huge = refused([0x82, 0x7F, 0, 0, 0x01, 0, 0, 0, 0, 0])
        #expect(huge == .frameTooLarge(length: 1 << 40, limit: WebSocketLimits.defaultMaxFramePayload))
        #expect(huge?.closeCode == .messageTooBig)
        #expect(refused(ServerFrame.encode(opcode: 2, payload: [UInt8](repeating: 0, count: 1000)), limit: 999) == .frameTooLarge(length: 1000, limit: 999))
        #expect(refused(ServerFrame.encode(opcode: 2, payload: [UInt8](repeating: 0, count: 999)), limit: 999) == nil)
    }

    @Test func decoderWaitsForWholeFramesAndStaysFailed() throws {
        var d = WebSocketFrameDecoder()
        let bytes = ServerFrame.encode(opcode: 2, payload: [UInt8](repeating: 9, count: 70000))
        for b in bytes.dropLast() {
            d.append(contentsOf: [b])
            #expect(try d.next() == nil)
        }
        d.append(contentsOf: [bytes.last!])
        #expect(try d.next()?.payload.count == 70000)
        #expect(d.bufferedCount == 0)
        d.append(contentsOf: [0x83, 0x00] + ServerFrame.text("after"))
        #expect(throws: WebSocketProtocolError.unknownOpcode(3)) { try d.next() }
        // Nothing after a bad frame is trusted.
        #expect(throws: WebSocketProtocolError.unknownOpcode(3)) { try d.next() }
    }

    @Test func closeCodesOnTheWire() {
        for c: UInt16 in [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999] {
            #expect(WebSocketCloseCode(c).isValidOnWire, "\(c)")
        }
        for c: UInt16 in [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535] {
            #expect(!WebSocketCloseCode(c).isValidOnWire, "\(c)")
        }
    }
}
