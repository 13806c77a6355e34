import Glibc
import Platform
import Testing
import Timebase
import WebSocket

/// Our handshake, codec and core against the real Python `websockets` library
/// (Tests/Scripts/websocket-peer.py) over loopback TCP. Skipped, saying why, without it.
@Suite(.serialized) struct InteropTests {
    /// The peer process and its port, or nil (reason printed) when python3 or `websockets` is missing.
    final class Peer {
        let process: ChildProcess
        let port: UInt16

        init?() throws {
            let script = #filePath.split(separator: "/", omittingEmptySubsequences: false).dropLast(2).joined(separator: "/")
                + "/Scripts/websocket-peer.py"
            // python3 as PATH finds it: where `pip install websockets` put the library.
            process = try ChildProcess.spawn("/usr/bin/env", ["python3", script], pipeStdin: false)
            let line = try process.readLine(timeout: .seconds(10))
            guard let line, let port = UInt16(line) else {
                print("InteropTests skipped: python websockets not installed (pip install websockets); the peer said \(line ?? "nothing")")
                process.terminate()
                return nil
            }
            self.port = port
        }

        deinit { process.terminate() }
    }

    /// A blocking-style client over a loopback socket: poll, read, write.
    struct Client {
        let fd: FileDescriptor
        let port: Int

        init(port: UInt16) throws {
            fd = try TCP.connect(host: "127.0.0.1", port: port, timeout: .seconds(5))
            self.port = Int(port)
        }

        func write(_ bytes: [UInt8]) throws { try fd.writeAll(bytes, timeout: .seconds(5)) }

        /// Bytes when they come within `timeout`; [] at end of file; nil on timeout.
        func read(timeout: Duration) throws -> [UInt8]? {
            var p = pollfd(fd: fd.rawValue, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, Int32(timeout.millisecondsClamped)) > 0 else { return nil }
            switch try fd.read(maxCount: 65536) {
            case .bytes(let b): return b
            case .wouldBlock: return nil
            case .endOfFile: return []
            }
        }

        func handshake(path: String, password: String = "secret") throws -> Result<WebSocketHandshakeResult, WebSocketHandshakeError> {
            let stationId = path.split(separator: "/").last.map(String.init) ?? ""
            var request = WebSocketRequest.ocpp(host: "127.0.0.1", port: port, secure: false, pathPrefix: "/ocpp", stationId: stationId,
                                                offerOCPP201: true, password: Array(password.utf8))
            request.credentials = BasicCredentials(user: "CP-1", password: Array(password.utf8))
            var nonceGenerator = SystemRandomNumberGenerator()
            let h = try WebSocketHandshake(request: request, nonce: (0..<16).map { _ in UInt8.random(in: 0...255, using: &nonceGenerator) })
            try write(h.requestBytes)
            var parser = WebSocketResponseParser(handshake: h)
            while true {
                guard let bytes = try read(timeout: .seconds(5)), !bytes.isEmpty else { throw SystemError(call: "handshake read", errno: ETIMEDOUT) }
                do {
                    if let r = try parser.append(bytes) { return .success(r) }
                } catch {
                    return .failure(error)
                }
            }
        }

        /// Feeds the core until `done` says so, the stream ends or 10 s pass; returns the non-write effects.
        func pump(_ core: inout WebSocketCore<SystemRandomNumberGenerator>, until done: ([WebSocketEffect], WebSocketCore<SystemRandomNumberGenerator>) -> Bool) throws -> [WebSocketEffect] {
            var seen: [WebSocketEffect] = []
            let deadline = MonotonicClock.now() + .seconds(10)
            while true {
                for e in core.takeEffects() {
                    if case .write(let b) = e { try write(b) } else { seen.append(e) }
                }
                if done(seen, core) || MonotonicClock.now() >= deadline { return seen }
                guard let bytes = try read(timeout: .milliseconds(200)) else { continue }
                if bytes.isEmpty { core.connectionLost() } else { core.receive(bytes, at: MonotonicClock.now()) }
            }
        }
    }

    @Test func echoFragmentsPingsAndTheServersClose() throws {
        guard let peer = try Peer() else { return }
        let client = try Client(port: peer.port)
        defer { client.fd.close() }
        let result = try client.handshake(path: "/ocpp/CP-1").get()
        #expect(result.subprotocol == "ocpp2.1")
        var core = WebSocketCore(maskKeys: SystemRandomNumberGenerator(), leftover: result.leftover, at: MonotonicClock.now())

        let text = "[2,\"19223201\",\"BootNotification\",{\"reason\":\"PowerUp\",\"note\":\"κόσμε €𝄞\"}]"
        try core.sendText(text)
        var seen = try client.pump(&core) { e, _ in e.count >= 1 }
        #expect(seen == [.message(.text(text))])

        // 70000 bytes: a 64-bit length out, three 16-bit fragments back.
        let blob = (0..<70000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        try core.sendBinary(blob)
        try core.sendPing([1, 2, 3], at: MonotonicClock.now())
        seen = try client.pump(&core) { $0.count >= 1 && $1.nextDeadline == nil }
        #expect(seen == [.message(.binary(blob))])
        #expect(core.nextDeadline == nil, "the peer's pong cleared our keep-alive deadline")

        try core.sendText("close:4001")
        seen = try client.pump(&core) { e, _ in e.count >= 1 }
        #expect(seen == [.closed(code: WebSocketCloseCode(4001), reason: "bye")])
        #expect(core.state == .closed)
        // The server closes TCP after the close handshake.
        var end: [UInt8]? = nil
        for _ in 0..<25 where end?.isEmpty != true { end = try client.read(timeout: .milliseconds(200)) }
        #expect(end == [])
    }

    @Test func weCloseAndTheLibraryAnswers() throws {
        guard let peer = try Peer() else { return }
        let client = try Client(port: peer.port)
        defer { client.fd.close() }
        let result = try client.handshake(path: "/ocpp/CP-1").get()
        var core = WebSocketCore(maskKeys: SystemRandomNumberGenerator(), leftover: result.leftover, at: MonotonicClock.now())
        try core.close(code: .goingAway, reason: "rebooting", at: MonotonicClock.now())
        let seen = try client.pump(&core) { e, _ in e.count >= 1 }
        guard case .closed(let code, _)? = seen.first else {
            Issue.record("expected a close, got \(seen)")
            return
        }
        #expect(code == .goingAway)
    }

    @Test func refusalsCarryTheStatus() throws {
        guard let peer = try Peer() else { return }
        let unknown = try Client(port: peer.port)
        defer { unknown.fd.close() }
        guard case .failure(let e404) = try unknown.handshake(path: "/ocpp/unknown"),
              case .refused(let status, _, _, _) = e404 else { Issue.record("404 expected"); return }
        #expect(status == 404)

        let wrong = try Client(port: peer.port)
        defer { wrong.fd.close() }
        guard case .failure(let e401) = try wrong.handshake(path: "/ocpp/CP-1", password: "guess") else { Issue.record("401 expected"); return }
        #expect(e401 == .refused(status: 401, reason: "Unauthorized", retryAfterSeconds: 30, retryAfter: "30"))
    }
}
