import Testing
import Timebase
import WebSocket
import WireFormat

/// A key source a server must never draw from: drawing traps, so a server core that masks fails the test run.
struct NoKeys: RandomNumberGenerator, Sendable {
    mutating func next() -> UInt64 { fatalError("a server drew a mask key") }
}

/// The server role: unmasked frames out, masked frames in (unmasked ones refused with 1002), and
/// the two roles' cores talking to each other.
@Suite struct ServerRoleTests {
    let t0 = Instant(nanoseconds: 1_000_000_000)
    let hello = Array("Hello".utf8)

    func server(leftover: [UInt8] = []) -> WebSocketCore<NoKeys> {
        WebSocketCore(role: .server, maskKeys: NoKeys(), leftover: leftover, at: t0)
    }

    func decodeServerSide(_ bytes: [UInt8]) throws(WebSocketProtocolError) -> [WebSocketFrame] {
        var d = WebSocketFrameDecoder(role: .server)
        d.append(contentsOf: bytes)
        var out: [WebSocketFrame] = []
        while let f = try d.next() { out.append(f) }
        return out
    }

    @Test func rfc6455Section57ExamplesFromTheServersSide() throws {
        // The masked "Hello" a client sends, read by a server; the unmasked one it sends back.
        let masked: [UInt8] = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
        #expect(try decodeServerSide(masked) == [WebSocketFrame(opcode: .text, payload: hello)])
        #expect(WebSocketFrameEncoder.encodeUnmasked(WebSocketFrame(opcode: .text, payload: hello)) == [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f])
        // The unmasked encoder writes the same lengths as the server helper of the client tests.
        for n in [0, 125, 126, 65535, 65536] {
            let payload = (0..<n).map { UInt8(truncatingIfNeeded: $0) }
            #expect(WebSocketFrameEncoder.encodeUnmasked(WebSocketFrame(opcode: .binary, payload: payload)) == ServerFrame.encode(opcode: 2, payload: payload), "\(n)")
        }
        // A masked 64 KiB frame and a masked ping through the server decoder.
        let big = (0..<70000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let frames = try decodeServerSide(WebSocketFrameEncoder.encode(WebSocketFrame(opcode: .binary, payload: big), maskKey: 0xDEAD_BEEF)
                                           + WebSocketFrameEncoder.encode(WebSocketFrame(opcode: .ping, payload: [1, 2]), maskKey: 5))
        #expect(frames == [WebSocketFrame(opcode: .binary, payload: big), WebSocketFrame(opcode: .ping, payload: [1, 2])])
    }

    @Test func aServerRefusesAnUnmaskedFrameAndAClientAMaskedOne() {
        #expect(throws: WebSocketProtocolError.unmaskedFrame) { try decodeServerSide(ServerFrame.text("x")) }
        #expect(WebSocketProtocolError.unmaskedFrame.closeCode == .protocolError)
        let masked = WebSocketFrameEncoder.encode(WebSocketFrame(opcode: .text, payload: hello), maskKey: 1)
        #expect(throws: WebSocketProtocolError.maskedFrame) { try decodeAll(masked) }
        // The other checks still come first where the header says so: a reserved bit is reported as such.
        #expect(throws: WebSocketProtocolError.reservedBits(4)) { try decodeServerSide(ServerFrame.encode(opcode: 1, payload: [], rsv: 4)) }
    }

    @Test func aServerCoreFailsOnAnUnmaskedFrameWithAnUnmaskedClose1002() {
        var s = server()
        s.receive(ServerFrame.text("[2,\"1\",\"Heartbeat\",{}]"), at: t0)
        let effects = s.takeEffects()
        #expect(effects == [.write([0x88, 0x02, 0x03, 0xEA]), .failed(.protocolViolation(.unmaskedFrame))])
        #expect(s.state == .closed)
    }

    @Test func aServerCoreSendsUnmaskedAndAnswersPingsAndCloses() throws {
        let ping = WebSocketFrameEncoder.encode(WebSocketFrame(opcode: .ping, payload: hello), maskKey: 0x0102_0304)
        let text = WebSocketFrameEncoder.encode(WebSocketFrame(opcode: .text, payload: Array("[2,\"a\",\"Heartbeat\",{}]".utf8)), maskKey: 9)
        var s = server(leftover: ping + text)
        #expect(s.takeEffects() == [.write([0x8A, 0x05] + hello), .message(.text("[2,\"a\",\"Heartbeat\",{}]"))])
        try s.sendText("[3,\"a\",{}]")
        #expect(s.takeEffects() == [.write(ServerFrame.text("[3,\"a\",{}]"))])
        try s.close(code: .goingAway, reason: "bye", at: t0)
        #expect(s.takeEffects() == [.write(ServerFrame.close(1001, "bye"))])
        #expect(s.nextDeadline == t0 + WebSocketLimits.defaultCloseTimeout)
        s.receive(WebSocketFrameEncoder.encode(WebSocketFrame(opcode: .close, payload: [0x03, 0xE9]), maskKey: 77), at: t0)
        #expect(s.takeEffects() == [.closed(code: .goingAway, reason: "")])
    }

    /// Client core ↔ server core over an in-memory stream: seeded random messages both ways, each
    /// side's bytes delivered in random splits, some messages sent as hand-made fragments with
    /// pings between them; every message arrives once, in order, and the close handshake completes.
    @Test func clientAndServerCoresRoundTrip() throws {
        for seed in Seeds.sample(40) {
            var g = Seeds.generator(seed, "clientAndServerCoresRoundTrip")
            var client = WebSocketCore(maskKeys: SeededGenerator(seed: seed ^ 0xA5A5), at: t0)
            var server = WebSocketCore(role: .server, maskKeys: NoKeys(), at: t0)
            var toServer: [UInt8] = [], toClient: [UInt8] = []
            var sentByClient: [WebSocketMessage] = [], sentByServer: [WebSocketMessage] = []
            var gotByServer: [WebSocketMessage] = [], gotByClient: [WebSocketMessage] = []
            var closedClient: WebSocketEffect?, closedServer: WebSocketEffect?

            func randomMessage() -> WebSocketMessage {
                let n = Int.random(in: 0...(Bool.random(using: &g) ? 300 : 70_000), using: &g)
                if Bool.random(using: &g) { return .binary(g.bytes(n)) }
                let scalars = (0..<(n / 4)).map { _ -> Character in
                    let pool: [UInt32] = [0x41, 0x7A, 0xE9, 0x3BA, 0x20AC, 0x1D11E, 0x5B, 0x22]
                    return Character(Unicode.Scalar(pool[Int.random(in: 0..<pool.count, using: &g)])!)
                }
                return .text(String(scalars))
            }
            /// The message as 1–4 fragments (text split at arbitrary byte offsets, even inside a
            /// character), a ping after the first; masked when the client sends.
            func fragments(_ m: WebSocketMessage, masked: Bool) -> [UInt8] {
                let (opcode, bytes): (WebSocketOpcode, [UInt8]) = { switch m { case .text(let s): (.text, Array(s.utf8)); case .binary(let b): (.binary, b) } }()
                var cuts = (0..<Int.random(in: 0...3, using: &g)).map { _ in Int.random(in: 0...bytes.count, using: &g) }.sorted()
                cuts = [0] + cuts + [bytes.count]
                var out: [UInt8] = []
                for i in 0..<(cuts.count - 1) {
                    let frame = WebSocketFrame(fin: i == cuts.count - 2, opcode: i == 0 ? opcode : .continuation, payload: Array(bytes[cuts[i]..<cuts[i + 1]]))
                    out += masked ? WebSocketFrameEncoder.encode(frame, maskKey: UInt32.random(in: 0...UInt32.max, using: &g)) : WebSocketFrameEncoder.encodeUnmasked(frame)
                    if i == 0 {
                        let ping = WebSocketFrame(opcode: .ping, payload: g.bytes(Int.random(in: 0...125, using: &g)))
                        out += masked ? WebSocketFrameEncoder.encode(ping, maskKey: 3) : WebSocketFrameEncoder.encodeUnmasked(ping)
                    }
                }
                return out
            }
            func drain() {
                for e in client.takeEffects() {
                    switch e {
                    case .write(let b): toServer += b
                    case .message(let m): gotByClient.append(m)
                    default: closedClient = e
                    }
                }
                for e in server.takeEffects() {
                    switch e {
                    case .write(let b): toClient += b
                    case .message(let m): gotByServer.append(m)
                    default: closedServer = e
                    }
                }
            }
            /// Delivers a random prefix of each direction's bytes, in a random number of pieces.
            func deliver(all: Bool) {
                for direction in 0..<2 {
                    var pending = direction == 0 ? toServer : toClient
                    let n = all ? pending.count : Int.random(in: 0...pending.count, using: &g)
                    var given = 0
                    while given < n {
                        let piece = min(n - given, Int.random(in: 1...4096, using: &g))
                        let chunk = pending[given..<(given + piece)]
                        if direction == 0 { server.receive(chunk, at: t0) } else { client.receive(chunk, at: t0) }
                        given += piece
                    }
                    pending.removeFirst(n)
                    if direction == 0 { toServer = pending } else { toClient = pending }
                }
                drain()
            }

            for _ in 0..<Int.random(in: 1...12, using: &g) {
                let m = randomMessage()
                let fromClient = Bool.random(using: &g)
                let fragmented = Bool.random(using: &g)
                if fromClient {
                    sentByClient.append(m)
                    if fragmented { toServer += fragments(m, masked: true) } else {
                        switch m { case .text(let s): try client.sendText(s); case .binary(let b): try client.sendBinary(b) }
                    }
                } else {
                    sentByServer.append(m)
                    if fragmented { toClient += fragments(m, masked: false) } else {
                        switch m { case .text(let s): try server.sendText(s); case .binary(let b): try server.sendBinary(b) }
                    }
                }
                drain()
                deliver(all: false)
            }
            for _ in 0..<4 { deliver(all: true) }
            #expect(gotByServer == sentByClient, "seed \(seed)")
            #expect(gotByClient == sentByServer, "seed \(seed)")
            #expect(closedClient == nil && closedServer == nil, "seed \(seed): \(String(describing: closedClient)) \(String(describing: closedServer))")

            // Either side closes; the other echoes; both end closed with the initiator's code.
            let clientCloses = Bool.random(using: &g)
            if clientCloses { try client.close(code: .normal, reason: "done", at: t0) } else { try server.close(code: .goingAway, reason: "bye", at: t0) }
            drain()
            for _ in 0..<3 { deliver(all: true) }
            #expect(client.state == .closed && server.state == .closed, "seed \(seed)")
            let code: WebSocketCloseCode = clientCloses ? .normal : .goingAway
            #expect(closedClient == .closed(code: code, reason: clientCloses ? "" : "bye"), "seed \(seed)")
            #expect(closedServer == .closed(code: code, reason: clientCloses ? "done" : ""), "seed \(seed)")
        }
    }
}

/// The server's reading of the Upgrade request, against the client's own handshake and hand-made
/// malformed requests.
@Suite struct UpgradeRequestTests {
    static let nonce: [UInt8] = Array(0..<16)

    static func clientHandshake(offer201: Bool = true, password: String? = nil) throws -> WebSocketHandshake {
        try WebSocketHandshake(request: .ocpp(host: "127.0.0.1", port: 9000, secure: false, pathPrefix: "/ocpp", stationId: "CP 1/ä",
                                              offerOCPP201: offer201, password: password.map { Array($0.utf8) }),
                               nonce: nonce)
    }

    @Test(arguments: [false, true])
    func theClientsOwnRequestIsAcceptedAndTheClientAcceptsThe101(byteByByte: Bool) throws {
        let h = try Self.clientHandshake(password: "secret")
        let frame = WebSocketFrameEncoder.encode(WebSocketFrame(opcode: .text, payload: [0x5B, 0x5D]), maskKey: 1)
        var parser = WebSocketUpgradeRequestParser()
        var accepted: WebSocketUpgradeRequestParser.Accepted?
        let bytes = h.requestBytes + frame
        if byteByByte {
            for (i, b) in bytes.enumerated() where accepted == nil {
                accepted = try parser.append([b])
                if accepted == nil { #expect(i < h.requestBytes.count - 1, "complete head not recognised") }
            }
        } else {
            accepted = try parser.append(bytes)
        }
        let a = try #require(accepted)
        #expect(a.request.target == "/ocpp/CP%201%2F%C3%A4")
        #expect(a.request.lastPathSegment == "CP 1/ä")
        #expect(a.request.offeredSubprotocols == ["ocpp2.1", "ocpp2.0.1"])
        #expect(a.request.subprotocol == "ocpp2.1")
        #expect(a.request.key == Base64.encode(Self.nonce))
        #expect(a.request.header("authorization") == "Basic " + Base64.encode(Array("CP 1/ä:secret".utf8)))
        #expect(a.leftover == (byteByByte ? [] : frame))
        var response = WebSocketResponseParser(handshake: h)
        let result = try #require(try response.append(a.request.acceptResponse + [0x81, 0x00]))
        #expect(result == WebSocketHandshakeResult(subprotocol: "ocpp2.1", leftover: [0x81, 0x00]))
    }

    static func request(_ lines: [String], method: String = "GET", target: String = "/ocpp/CS-1", version: String = "HTTP/1.1") -> [UInt8] {
        Array(([method + " " + target + " " + version] + lines).map { $0 + "\r\n" }.joined().utf8) + [13, 10]
    }

    static let good = ["Host: x", "Upgrade: websocket", "Connection: keep-alive, Upgrade", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                       "Sec-WebSocket-Version: 13", "Sec-WebSocket-Protocol: ocpp2.0.1, ocpp2.1"]

    static func replacing(_ prefix: String, with line: String?) -> [String] {
        var lines = good.filter { !$0.hasPrefix(prefix) }
        if let line { lines.append(line) }
        return lines
    }

    @Test func theServersPreferenceWinsAnd201IsTakenAlone() throws {
        var p = WebSocketUpgradeRequestParser()
        #expect(try p.append(Self.request(Self.good))?.request.subprotocol == "ocpp2.1")
        var only201 = WebSocketUpgradeRequestParser()
        let a = try #require(try only201.append(Self.request(Self.replacing("Sec-WebSocket-Protocol", with: "Sec-WebSocket-Protocol: ocpp1.6, ocpp2.0.1"))))
        #expect(a.request.subprotocol == "ocpp2.0.1")
        // RFC 6455's own example key and accept value.
        #expect(String(decoding: a.request.acceptResponse, as: UTF8.self).contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"))
        // Bare LF line ends and empty lines before the request line are read too.
        var lf = WebSocketUpgradeRequestParser()
        let text = "\r\n" + (["GET /a/B HTTP/1.1"] + Self.good).joined(separator: "\n") + "\n\n"
        #expect(try lf.append(Array(text.utf8))?.request.lastPathSegment == "B")
    }

    @Test(arguments: [
        (replacing("Upgrade", with: nil), WebSocketUpgradeError.missingUpgrade),
        (replacing("Upgrade", with: "Upgrade: h2c"), .missingUpgrade),
        (replacing("Connection", with: "Connection: keep-alive"), .missingConnectionUpgrade),
        (replacing("Sec-WebSocket-Version", with: nil), .unsupportedVersion(nil)),
        (replacing("Sec-WebSocket-Version", with: "Sec-WebSocket-Version: 8"), .unsupportedVersion("8")),
        (good + ["Sec-WebSocket-Version: 13"], .unsupportedVersion("13")),
        (replacing("Sec-WebSocket-Key", with: nil), .invalidKey(nil)),
        (replacing("Sec-WebSocket-Key", with: "Sec-WebSocket-Key: c2hvcnQ="), .invalidKey("c2hvcnQ=")),
        (replacing("Sec-WebSocket-Key", with: "Sec-WebSocket-Key: not base64 at all!!!!!!"), .invalidKey("not base64 at all!!!!!!")),
        (good + ["Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="], .invalidKey("dGhlIHNhbXBsZSBub25jZQ==")),
        (replacing("Sec-WebSocket-Protocol", with: nil), .noSupportedSubprotocol(offered: [])),
        (replacing("Sec-WebSocket-Protocol", with: "Sec-WebSocket-Protocol: ocpp1.6, OCPP2.1"), .noSupportedSubprotocol(offered: ["ocpp1.6", "OCPP2.1"])),
        (replacing("Host", with: nil), .missingHost),
        (good + ["Host: y"], .missingHost),
        (good + [" folded"], .malformedHeaderLine(number: 8)),
        (good + ["no colon"], .malformedHeaderLine(number: 8)),
        (good + ["bad name: x"], .malformedHeaderLine(number: 8)),
    ] as [([String], WebSocketUpgradeError)])
    func malformedHeadersAreRefused(lines: [String], expected: WebSocketUpgradeError) {
        var p = WebSocketUpgradeRequestParser()
        #expect(throws: expected) { try p.append(Self.request(lines)) }
    }

    @Test func malformedRequestLinesAreRefused() {
        func check(_ bytes: [UInt8], _ expected: WebSocketUpgradeError) {
            var p = WebSocketUpgradeRequestParser()
            #expect(throws: expected) { try p.append(bytes) }
        }
        check(Self.request(Self.good, method: "POST"), .methodNotGet("POST"))
        check(Self.request(Self.good, version: "HTTP/1.0"), .unsupportedHTTPVersion("HTTP/1.0"))
        check(Self.request(Self.good, target: "*"), .invalidTarget)
        check(Self.request(Self.good, target: "http://x/ocpp/CS-1"), .invalidTarget)
        check(Array("GET /a\r\n\r\n".utf8), .malformedRequestLine)
        check(Array("GET  /a HTTP/1.1\r\nHost: x\r\n\r\n".utf8), .malformedRequestLine)
        check(Array("GET /a\u{01} HTTP/1.1\r\nHost: x\r\n\r\n".utf8), .malformedRequestLine)
        check(Array("\r\n\r\n".utf8), .malformedRequestLine)
    }

    @Test func limitsAreKeptWithoutAnEnd() throws {
        // A head that never ends is refused once it passes the limit, not buffered forever.
        var p = WebSocketUpgradeRequestParser()
        #expect(try p.append(Array("GET /a HTTP/1.1\r\n".utf8)) == nil)
        let filler = Array("X-Filler: \(String(repeating: "a", count: 100))\r\n".utf8)
        var thrown: WebSocketUpgradeError?
        for _ in 0..<200 where thrown == nil {
            do { _ = try p.append(filler) } catch { thrown = error }
        }
        #expect(thrown == .headerTooLarge(limit: WebSocketLimits.maxRequestHeaderBytes))
        // Within the bytes but over the field count.
        var q = WebSocketUpgradeRequestParser()
        let many = Self.good + (0..<WebSocketLimits.maxRequestHeaderFields).map { "X-\($0): 1" }
        #expect(throws: WebSocketUpgradeError.tooManyHeaderFields(limit: WebSocketLimits.maxRequestHeaderFields)) { try q.append(Self.request(many)) }
        // Exactly at the field limit is fine.
        var r = WebSocketUpgradeRequestParser()
        let atLimit = Self.good + (0..<(WebSocketLimits.maxRequestHeaderFields - Self.good.count)).map { "X-\($0): 1" }
        #expect(try r.append(Self.request(atLimit)) != nil)
    }

    @Test func refusalsAreReadByTheClientAsRefusals() throws {
        let h = try Self.clientHandshake()
        for (error, status) in [(WebSocketUpgradeError.missingUpgrade, 426), (.unsupportedVersion("8"), 426), (.invalidKey(nil), 400)] {
            #expect(error.status == status)
            var r = WebSocketResponseParser(handshake: h)
            #expect(throws: WebSocketHandshakeError.refused(status: status, reason: WebSocketUpgradeResponse.reason(status), retryAfterSeconds: nil, retryAfter: nil)) {
                try r.append(error.refusal)
            }
        }
        let text = String(decoding: WebSocketUpgradeError.unsupportedVersion("8").refusal, as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.1 426 Upgrade Required\r\n") && text.contains("\r\nSec-WebSocket-Version: 13\r\n"))
        var r = WebSocketResponseParser(handshake: h)
        let refused = WebSocketUpgradeResponse.refusal(status: 503, message: "later", headers: [("Retry-After", "7"), ("X-Bad", "a\r\nInjected: 1")])
        #expect(!String(decoding: refused, as: UTF8.self).contains("Injected"))
        #expect(throws: WebSocketHandshakeError.refused(status: 503, reason: "Service Unavailable", retryAfterSeconds: 7, retryAfter: "7")) { try r.append(refused) }
    }

    /// Seeded mutations of a valid request: each either is accepted or refused with an error, never
    /// traps, and a refusal is a response the client reads as one.
    @Test func mutatedRequestsAreAcceptedOrRefusedNeverTrap() throws {
        let h = try Self.clientHandshake()
        for seed in Seeds.sample(300) {
            var g = Seeds.generator(seed, "mutatedRequestsAreAcceptedOrRefusedNeverTrap")
            var bytes = h.requestBytes
            for _ in 0..<Int.random(in: 1...4, using: &g) {
                let i = Int.random(in: 0..<bytes.count, using: &g)
                switch Int.random(in: 0..<3, using: &g) {
                case 0: bytes[i] = g.byte()
                case 1: bytes.remove(at: i)
                default: bytes.insert(g.byte(), at: i)
                }
            }
            var p = WebSocketUpgradeRequestParser()
            do {
                if let a = try p.append(bytes) {
                    #expect(WebSocketUpgradeRequest.ocppSubprotocols.contains(a.request.subprotocol), "seed \(seed)")
                }
            } catch {
                var r = WebSocketResponseParser(handshake: h)
                do {
                    _ = try r.append(error.refusal)
                    Issue.record("seed \(seed): refusal accepted as a 101")
                } catch let e {
                    guard case .refused(let status, _, _, _) = e else { Issue.record("seed \(seed): \(e)"); continue }
                    #expect(status == error.status, "seed \(seed)")
                }
            }
        }
    }
}
