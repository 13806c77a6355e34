import Glibc
import Platform
import Testing
import Timebase
@testable import CloudHTTP

/// `HTTPClient.openStream`: a connection libcurl sets up (resolution, connect, TLS with the
/// client's verification rules) and hands over as a raw byte stream for the OCPP-J WebSocket.
@Suite(.serialized) struct CurlStreamTests {
    let fixture = Fixture.shared

    init() throws { try Signals.ignore(SIGPIPE) }

    func open(_ client: HTTPClient, _ loop: EventLoop, _ url: String) throws -> Result<CurlStream, HTTPError>? {
        var outcome: Result<CurlStream, HTTPError>?
        client.openStream(url: url) { outcome = $0 }
        #expect(outcome == nil, "the completion never runs inside openStream")
        _ = try loop.run(until: { outcome != nil }, deadline: MonotonicClock.now() + .seconds(10))
        return outcome
    }

    /// Writes everything, then reads until `until` holds or the deadline passes.
    func exchange(_ stream: CurlStream, _ loop: EventLoop, send: [UInt8], until: ([UInt8]) -> Bool) throws -> [UInt8] {
        var pending = send[...]
        var received: [UInt8] = []
        var closed = false
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 1)
        defer { buffer.deallocate() }
        let token = loop.watch(FileDescriptor(rawValue: stream.fd), read: true, write: true) { _ in
            while !pending.isEmpty {
                let r = pending.withUnsafeBytes { stream.send($0) }
                guard case .bytes(let n) = r else { break }
                pending = pending.dropFirst(n)
            }
            reading: while true {
                switch stream.receive(into: buffer) {
                case .bytes(let n): received += buffer.prefix(n)
                case .closed, .failed: closed = true; break reading
                case .wouldBlock: break reading
                }
            }
        }
        defer { loop.unwatch(token) }
        _ = try loop.run(until: { until(received) || closed }, deadline: MonotonicClock.now() + .seconds(10))
        return received
    }

    @Test func plainLoopbackStreamCarriesBytesBothWays() throws {
        let listener = try TCPListener.listen(port: 0)
        defer { listener.close() }
        let loop = try EventLoop()
        let http = try HTTPClient(loop: loop)
        let stream = try #require(try open(http, loop, "http://127.0.0.1:\(listener.port)/")?.get())
        var peer: FileDescriptor?
        _ = try loop.run(until: { peer = try? listener.accept(); return peer != nil }, deadline: MonotonicClock.now() + .seconds(5))
        let server = try #require(peer)
        try server.writeAll(Array("hello station".utf8), timeout: .seconds(2))
        let got = try exchange(stream, loop, send: Array("hello csms".utf8)) { $0.count >= 13 }
        #expect(String(decoding: got, as: UTF8.self) == "hello station")
        var buffer = [UInt8](repeating: 0, count: 64)
        let n = read(server.rawValue, &buffer, 64)
        #expect(n == 10 && String(decoding: buffer.prefix(10), as: UTF8.self) == "hello csms")
        // The peer closing is seen as closed, not as an error.
        server.close()
        var last: CurlStream.Received = .wouldBlock
        _ = try loop.run(until: {
            let b = UnsafeMutableRawBufferPointer.allocate(byteCount: 16, alignment: 1); defer { b.deallocate() }
            last = stream.receive(into: b); return last != .wouldBlock
        }, deadline: MonotonicClock.now() + .seconds(5))
        #expect(last == .closed)
        stream.close()
        stream.close()
    }

    @Test func tlsStreamIsVerifiedAndCarriesARequest() throws {
        let server = try TestServer()
        let loop = try EventLoop()
        let http = try HTTPClient(loop: loop, tls: TLSSettings(caFile: fixture.caFile))
        let stream = try #require(try open(http, loop, "https://127.0.0.1:\(server.port)/")?.get())
        let request = "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi"
        let got = try exchange(stream, loop, send: Array(request.utf8)) { String(decoding: $0, as: UTF8.self).contains("\r\n\r\n") }
        #expect(String(decoding: got, as: UTF8.self).hasPrefix("HTTP/1."), "\(String(decoding: got, as: UTF8.self))")
        stream.close()
        // Without the CA the same server is refused: the stream gets the requests' verification.
        let system = try HTTPClient(loop: loop, tls: TLSSettings())
        guard case .failure(.tls)? = try open(system, loop, "https://127.0.0.1:\(server.port)/") else {
            Issue.record("expected a TLS failure"); return
        }
    }

    @Test func refusedAndForbiddenURLsFail() throws {
        let loop = try EventLoop()
        let http = try HTTPClient(loop: loop)
        let port = try closedPort()
        guard case .failure(let e)? = try open(http, loop, "http://127.0.0.1:\(port)/") else { Issue.record("connected?"); return }
        #expect(e.isUnreachable, "\(e)")
        // Plain http leaves loopback never.
        guard case .failure(.invalidRequest)? = try open(http, loop, "http://192.0.2.1:80/") else { Issue.record("accepted"); return }
    }
}
