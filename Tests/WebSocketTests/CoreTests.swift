import Testing
import Timebase
import WebSocket

@Suite struct CoreTests {
    typealias Core = WebSocketCore<SeededGenerator>
    let t0 = Instant(nanoseconds: 1_000_000_000)

    func core(_ config: WebSocketConfiguration = WebSocketConfiguration(), leftover: [UInt8] = []) -> Core {
        Core(configuration: config, maskKeys: SeededGenerator(seed: 7), leftover: leftover, at: t0)
    }

    /// The frames our `.write` effects carry, unmasked, and the other effects as they are.
    func sent(_ effects: [WebSocketEffect]) -> [(opcode: UInt8, payload: [UInt8])] {
        effects.compactMap { e in
            if case .write(let b) = e, let f = unmaskClientFrame(b) { return (f.opcode, f.payload) }
            return nil
        }
    }

    func nonWrites(_ effects: [WebSocketEffect]) -> [WebSocketEffect] {
        effects.filter { if case .write = $0 { return false } else { return true } }
    }

    @Test func messagesBothWaysAndLeftoverFromTheHandshake() throws {
        var c = core(leftover: ServerFrame.text("[2,\"1\",\"Heartbeat\",{}]"))
        #expect(c.takeEffects() == [.message(.text("[2,\"1\",\"Heartbeat\",{}]"))])
        try c.sendText("[3,\"1\",{}]")
        try c.sendBinary([1, 2])
        let out = sent(c.takeEffects())
        #expect(out.map(\.opcode) == [1, 2])
        #expect(out[0].payload == Array("[3,\"1\",{}]".utf8))
        #expect(c.state == .open && c.nextDeadline == nil)
    }

    @Test func pingIsAnsweredWithTheSamePayload() {
        var c = core()
        c.receive(ServerFrame.encode(opcode: 9, payload: Array("Hello".utf8)), at: t0)
        let out = sent(c.takeEffects())
        #expect(out.count == 1 && out[0].opcode == 0xA && out[0].payload == Array("Hello".utf8))
        // Between fragments too.
        c.receive(ServerFrame.text("a", fin: false) + ServerFrame.encode(opcode: 9, payload: [7]) + ServerFrame.encode(opcode: 0, payload: [0x62]), at: t0)
        let e = c.takeEffects()
        #expect(sent(e).map(\.payload) == [[7]])
        #expect(nonWrites(e) == [.message(.text("ab"))])
    }

    @Test func keepAlivePongAndTimeout() throws {
        var c = core(WebSocketConfiguration(pongTimeout: .seconds(10)))
        try c.sendPing([1], at: t0)
        #expect(c.nextDeadline == t0 + .seconds(10))
        // An unsolicited or stale pong changes nothing.
        c.receive(ServerFrame.encode(opcode: 0xA, payload: [9]), at: t0)
        #expect(c.nextDeadline == t0 + .seconds(10))
        // A second ping does not postpone the first one's deadline; only its own pong clears.
        try c.sendPing([2], at: t0 + .seconds(5))
        #expect(c.nextDeadline == t0 + .seconds(10))
        c.receive(ServerFrame.encode(opcode: 0xA, payload: [1]), at: t0 + .seconds(6))
        #expect(c.nextDeadline == t0 + .seconds(10))
        c.receive(ServerFrame.encode(opcode: 0xA, payload: [2]), at: t0 + .seconds(6))
        #expect(c.nextDeadline == nil)
        _ = c.takeEffects()
        // No pong: at the deadline the connection fails.
        try c.sendPing([3], at: t0 + .seconds(20))
        c.advance(to: t0 + .seconds(29))
        #expect(nonWrites(c.takeEffects()) == [])
        c.advance(to: t0 + .seconds(30))
        #expect(c.takeEffects() == [.failed(.pongTimeout)])
        #expect(c.state == .closed && c.nextDeadline == nil)
        #expect(throws: WebSocketSendError.controlPayloadTooLong(126)) {
            var d = core()
            try d.sendPing([UInt8](repeating: 0, count: 126), at: t0)
        }
    }

    @Test func weCloseAndThePeerAnswers() throws {
        var c = core(WebSocketConfiguration(closeTimeout: .seconds(5)))
        try c.close(code: .goingAway, reason: "reboot", at: t0)
        let out = sent(c.takeEffects())
        #expect(out.count == 1 && out[0].opcode == 8 && out[0].payload == [0x03, 0xE9] + Array("reboot".utf8))
        #expect(c.state == .closing && c.nextDeadline == t0 + .seconds(5))
        #expect(throws: WebSocketSendError.notOpen) { try c.sendText("x") }
        #expect(throws: WebSocketSendError.notOpen) { try c.close(at: t0) }
        // Data still arriving is delivered, pings are not answered any more, then the peer's close.
        c.receive(ServerFrame.text("late") + ServerFrame.encode(opcode: 9, payload: []) + ServerFrame.close(1001), at: t0)
        #expect(c.takeEffects() == [.message(.text("late")), .closed(code: .goingAway, reason: "")])
        #expect(c.state == .closed)
        c.receive(ServerFrame.text("after"), at: t0)
        #expect(c.takeEffects() == [])
    }

    @Test func closeTimeout() throws {
        var c = core(WebSocketConfiguration(closeTimeout: .seconds(5)))
        try c.close(at: t0)
        _ = c.takeEffects()
        c.advance(to: t0 + .seconds(5))
        #expect(c.takeEffects() == [.failed(.closeTimeout)])
    }

    @Test func closeRequestsAreChecked() {
        var c = core()
        #expect(throws: WebSocketSendError.invalidCloseCode(1005)) { try c.close(code: .noStatusReceived, at: t0) }
        #expect(throws: WebSocketSendError.invalidCloseCode(1006)) { try c.close(code: .abnormalClosure, at: t0) }
        #expect(throws: WebSocketSendError.invalidCloseCode(1015)) { try c.close(code: .tlsHandshake, at: t0) }
        #expect(throws: WebSocketSendError.closeReasonTooLong(124)) { try c.close(reason: String(repeating: "x", count: 124), at: t0) }
        // 123 bytes of UTF-8, multi-byte characters counted as bytes.
        #expect(throws: WebSocketSendError.closeReasonTooLong(124)) { try c.close(reason: String(repeating: "é", count: 62), at: t0) }
        #expect(throws: Never.self) { try c.close(code: WebSocketCloseCode(4000), reason: String(repeating: "x", count: 123), at: t0) }
    }

    @Test func thePeerClosesAndWeEchoItsCode() {
        var c = core()
        c.receive(ServerFrame.close(4001, "station unknown"), at: t0)
        let e = c.takeEffects()
        #expect(sent(e).map(\.opcode) == [8])
        #expect(sent(e)[0].payload == [0x0F, 0xA1])
        #expect(nonWrites(e) == [.closed(code: WebSocketCloseCode(4001), reason: "station unknown")])
        // An empty close is answered empty and reported as 1005.
        var d = core()
        d.receive(ServerFrame.encode(opcode: 8, payload: []), at: t0)
        let f = d.takeEffects()
        #expect(sent(f).map(\.payload) == [[]])
        #expect(nonWrites(f) == [.closed(code: .noStatusReceived, reason: "")])
    }

    @Test func protocolErrorsSendTheMappedCloseAndStopReading() {
        let cases: [([UInt8], WebSocketProtocolError, UInt16)] = [
            (ServerFrame.encode(opcode: 1, payload: [1], mask: [1, 2, 3, 4]), .maskedFrame, 1002),
            (ServerFrame.encode(opcode: 1, payload: [0xC0, 0x80]), .invalidUTF8, 1007),
            (ServerFrame.encode(opcode: 2, payload: [UInt8](repeating: 0, count: 200)), .frameTooLarge(length: 200, limit: 150), 1009),
            (ServerFrame.encode(opcode: 0, payload: [1]), .unexpectedContinuation, 1002),
            (ServerFrame.encode(opcode: 8, payload: [0x03]), .closePayloadTooShort, 1002),
            (ServerFrame.close(1005), .invalidCloseCode(1005), 1002),
            (ServerFrame.close(1006), .invalidCloseCode(1006), 1002),
            (ServerFrame.close(999), .invalidCloseCode(999), 1002),
            (ServerFrame.close(2000), .invalidCloseCode(2000), 1002),
            (ServerFrame.encode(opcode: 8, payload: [0x03, 0xE8, 0xFF]), .invalidUTF8, 1007),
        ]
        for (bytes, error, code) in cases {
            var c = core(WebSocketConfiguration(maxFramePayload: 150, maxMessageBytes: 150))
            c.receive(bytes + ServerFrame.text("never delivered"), at: t0)
            let e = c.takeEffects()
            #expect(sent(e).map(\.opcode) == [8], "\(error)")
            #expect(sent(e).first?.payload == [UInt8(code >> 8), UInt8(code & 0xFF)], "\(error)")
            #expect(nonWrites(e) == [.failed(.protocolViolation(error))], "\(error)")
            #expect(c.state == .closed)
            c.receive(ServerFrame.text("x"), at: t0)
            #expect(c.takeEffects() == [])
        }
        // Message limit across fragments.
        var m = core(WebSocketConfiguration(maxFramePayload: 200, maxMessageBytes: 300))
        m.receive(ServerFrame.encode(fin: false, opcode: 2, payload: [UInt8](repeating: 0, count: 200))
                  + ServerFrame.encode(opcode: 0, payload: [UInt8](repeating: 0, count: 101)), at: t0)
        #expect(nonWrites(m.takeEffects()) == [.failed(.protocolViolation(.messageTooLarge(limit: 300)))])
    }

    @Test func connectionLostIsReportedOnce() {
        var c = core()
        c.connectionLost()
        c.connectionLost()
        #expect(c.takeEffects() == [.failed(.connectionLost)])
    }

    @Test(arguments: Seeds.sample(8))
    func randomMessagesSplitAnywhereWithPingsInterleaved(seed: UInt64) throws {
        var g = Seeds.generator(seed, "WebSocket core round trip")
        var wire: [UInt8] = []
        var expected: [WebSocketMessage] = []
        var pings: [[UInt8]] = []
        for _ in 0..<60 {
            let isText = Bool.random(using: &g)
            let payload: [UInt8]
            if isText {
                let scalars = ["a", "é", "€", "𝄞", "[", "\"", "κ"]
                payload = Array((0..<Int.random(in: 0...300, using: &g)).map { _ in scalars.randomElement(using: &g)! }.joined().utf8)
                expected.append(.text(String(decoding: payload, as: UTF8.self)))
            } else {
                payload = g.bytes([0, 1, 125, 126, 127, 65535, 65536, 70000, Int.random(in: 0...2000, using: &g)].randomElement(using: &g)!)
                expected.append(.binary(payload))
            }
            // Fragment at random byte offsets (splitting UTF-8 characters), with pings between fragments.
            var cuts = (0..<Int.random(in: 0...4, using: &g)).map { _ in Int.random(in: 0...payload.count, using: &g) }.sorted()
            cuts.append(payload.count)
            var from = 0
            for (i, cut) in cuts.enumerated() {
                let op: UInt8 = i == 0 ? (isText ? 1 : 2) : 0
                wire += ServerFrame.encode(fin: i == cuts.count - 1, opcode: op, payload: Array(payload[from..<cut]))
                from = cut
                if Int.random(in: 0..<3, using: &g) == 0 {
                    let p = g.bytes(Int.random(in: 0...125, using: &g))
                    pings.append(p)
                    wire += ServerFrame.encode(opcode: 9, payload: p)
                }
            }
        }
        var c = core()
        var received: [WebSocketMessage] = []
        var pongs: [[UInt8]] = []
        var offset = 0
        while offset < wire.count {
            let n = min(wire.count - offset, [1, 2, 3, 7, 100, 4096, 65536].randomElement(using: &g)!)
            c.receive(wire[offset..<(offset + n)], at: t0)
            offset += n
            for e in c.takeEffects() {
                switch e {
                case .message(let m): received.append(m)
                case .write(let b):
                    let f = unmaskClientFrame(b)
                    #expect(f?.opcode == 0xA, "seed \(seed)")
                    pongs.append(f?.payload ?? [])
                default: Issue.record("seed \(seed): unexpected \(e)")
                }
            }
        }
        #expect(received == expected, "seed \(seed)")
        #expect(pongs == pings, "seed \(seed)")
        #expect(c.state == .open, "seed \(seed)")
    }
}
