import Glibc
import Platform
import Testing
import Timebase
@testable import CloudHTTP

// Every wait is bounded by a deadline, so a regression fails instead of hanging.
// Serialized: several tests measure time, and each starts its own server process.

@Suite(.serialized) struct HTTPClientTests {
    let fixture = Fixture.shared

    init() throws {
        try Signals.ignore(SIGPIPE)
    }

    func client(_ loop: EventLoop, tls: TLSSettings? = nil, limits: HTTPClientLimits = .init(),
                bearerToken: String? = nil) throws -> HTTPClient {
        try HTTPClient(loop: loop, tls: tls ?? TLSSettings(caFile: fixture.caFile), limits: limits, bearerToken: bearerToken)
    }

    // MARK: The binding

    @Test func postCarriesJSONBodyIdempotencyKeyAndBearerToken() throws {
        let server = try TestServer()
        let loop = try EventLoop()
        let http = try client(loop, bearerToken: "tok.en-123")
        let json = Array(#"{"pspRef":"abc","status":"Settled"}"#.utf8)
        let request = HTTPRequest.uplink(baseURL: "https://127.0.0.1:\(server.port)/ocpp/", stationId: "CS-0001",
                                         action: "NotifySettlement", messageId: "msg-42", json: json)
        let outcome = try postAndWait(http, loop, request)
        let response = try #require(try outcome?.get())
        #expect(response.status == 200)
        let seen = fields(response)
        #expect(seen["method"] == "POST")
        #expect(seen["path"] == "/ocpp/CS-0001/NotifySettlement")
        #expect(seen["contentType"] == "application/json")
        #expect(seen["idempotencyKey"] == "msg-42")
        #expect(seen["authorization"] == "Bearer tok.en-123")
        #expect(seen["expect"] == "")
        #expect(seen["body"] == #"{"pspRef":"abc","status":"Settled"}"#)
        #expect(http.inFlight == 0)
    }

    @Test func uplinkRequestShape() {
        let r = HTTPRequest.uplink(baseURL: "https://cloud.example/v1//", stationId: "CS 1/ä", action: "TransactionEvent",
                                   messageId: "m1", json: [0x7B, 0x7D])
        #expect(r.url == "https://cloud.example/v1/CS%201%2F%C3%A4/TransactionEvent")
        #expect(r.headers.map { "\($0.0): \($0.1)" } == ["Content-Type: application/json", "Idempotency-Key: m1"])
        #expect(r.body == [0x7B, 0x7D])
    }

    @Test func errorStatusIsAResponseNotAnError() throws {
        let server = try TestServer()
        let loop = try EventLoop()
        let http = try client(loop)
        let outcome = try postAndWait(http, loop, HTTPRequest(url: server.url("/status/503"), body: [0x31]))
        let response = try #require(try outcome?.get())
        #expect(response.status == 503)
        #expect(fields(response)["contentType"] == "", "no form-encoded default type")
        #expect(fields(response)["body"] == "1")
    }

    // MARK: Persistent connections

    @Test func sequentialRequestsReuseOneConnection() throws {
        let server = try TestServer()
        let loop = try EventLoop()
        let http = try client(loop)
        var seen: [[String: String]] = []
        for i in 1...5 {
            let outcome = try postAndWait(http, loop, HTTPRequest(url: server.url(), body: Array("\(i)".utf8)))
            seen.append(fields(try #require(try outcome?.get())))
        }
        #expect(seen.map { $0["conn"] } == Array(repeating: "1", count: 5), "one TLS connection for all five")
        #expect(seen.map { $0["served"] } == ["1", "2", "3", "4", "5"])
    }

    @Test func manyConcurrentRequestsAllComplete() throws {
        let server = try TestServer()
        let loop = try EventLoop()
        let http = try client(loop, limits: HTTPClientLimits(maxConcurrent: 4, maxConnects: 4))
        let count = 24
        var results: [Int: Result<HTTPResponse, HTTPError>] = [:]
        for i in 0..<count {
            http.post(HTTPRequest(url: server.url("/slow?ms=50"), headers: [("Idempotency-Key", "k\(i)")])) { results[i] = $0 }
        }
        #expect(http.inFlight == count)
        let done = try loop.run(until: { results.count == count }, deadline: MonotonicClock.now() + .seconds(15))
        #expect(done)
        var connections: Set<String> = []
        for i in 0..<count {
            let seen = fields(try #require(try results[i]?.get()))
            #expect(seen["idempotencyKey"] == "k\(i)")
            connections.insert(seen["conn"] ?? "?")
        }
        #expect(connections.count <= 4, "at most maxConcurrent connections: \(connections)")
        #expect(http.inFlight == 0)
    }

    // MARK: Failures: unreachable versus reached

    @Test func closedPortIsUnreachableQuickly() throws {
        let port = try closedPort()
        let loop = try EventLoop()
        let http = try client(loop)
        let started = MonotonicClock.now()
        let outcome = try postAndWait(http, loop, HTTPRequest(url: "https://127.0.0.1:\(port)/x"))
        let elapsed = MonotonicClock.now() - started
        guard case .failure(let error) = outcome, case .couldNotConnect = error else {
            Issue.record("expected couldNotConnect, got \(String(describing: outcome))"); return
        }
        #expect(error.isUnreachable)
        #expect(elapsed < .seconds(1))
    }

    @Test func unresolvableHostIsUnreachable() throws {
        let loop = try EventLoop()
        let http = try client(loop)
        let outcome = try postAndWait(http, loop, HTTPRequest(url: "https://no-such-host.invalid/x"))
        guard case .failure(let error) = outcome else { Issue.record("no failure"); return }
        #expect(error.isUnreachable, "\(error)")
    }

    @Test func handshakeThatNeverCompletesIsAConnectTimeout() throws {
        let server = try TestServer(mode: "blackhole")
        let loop = try EventLoop()
        let http = try client(loop, limits: HTTPClientLimits(connectTimeout: .milliseconds(500), totalTimeout: .seconds(5)))
        let started = MonotonicClock.now()
        let outcome = try postAndWait(http, loop, HTTPRequest(url: server.url()))
        let elapsed = MonotonicClock.now() - started
        guard case .failure(let error) = outcome else { Issue.record("no failure"); return }
        #expect(error.isUnreachable, "nothing was sent: \(error)")
        #expect(elapsed >= .milliseconds(450) && elapsed < .seconds(2), "\(seconds(elapsed)) s")
    }

    @Test func serverThatNeverAnswersTimesOut() throws {
        let server = try TestServer()
        let loop = try EventLoop()
        let http = try client(loop, limits: HTTPClientLimits(connectTimeout: .seconds(5), totalTimeout: .seconds(1)))
        let started = MonotonicClock.now()
        let outcome = try postAndWait(http, loop, HTTPRequest(url: server.url("/hang"), body: [1, 2, 3]))
        let elapsed = MonotonicClock.now() - started
        #expect(outcome == .failure(.timedOut))
        #expect(elapsed >= .milliseconds(950) && elapsed < .milliseconds(2500), "\(seconds(elapsed)) s")
    }

    @Test func responseAboveTheLimitIsTooLarge() throws {
        let server = try TestServer()
        let loop = try EventLoop()
        let http = try client(loop, limits: HTTPClientLimits(maxResponseBytes: 4000))
        // Announced by Content-Length: refused before the body is read.
        #expect(try postAndWait(http, loop, HTTPRequest(url: server.url("/big?n=5000"))) == .failure(.tooLarge))
        // Chunked: cut off by the write callback.
        #expect(try postAndWait(http, loop, HTTPRequest(url: server.url("/big?n=5000&chunked=1"))) == .failure(.tooLarge))
        // At the limit: fine, in both framings.
        #expect(try postAndWait(http, loop, HTTPRequest(url: server.url("/big?n=4000"))) ==
                .success(HTTPResponse(status: 200, body: Array(repeating: UInt8(ascii: "x"), count: 4000))))
        #expect(try postAndWait(http, loop, HTTPRequest(url: server.url("/big?n=4000&chunked=1")))?.get().body.count == 4000)
    }

    // MARK: TLS

    @Test func serverCertificateIsVerifiedAgainstTheConfiguredCA() throws {
        let server = try TestServer()
        let loop = try EventLoop()
        // With the CA: trusted.
        let trusting = try client(loop)
        #expect(try postAndWait(trusting, loop, HTTPRequest(url: server.url()))?.get().status == 200)
        // Without it (the system store): refused. There is no switch to skip verification.
        let system = try client(loop, tls: TLSSettings())
        let outcome = try postAndWait(system, loop, HTTPRequest(url: server.url()))
        guard case .failure(.tls(let message)) = outcome else {
            Issue.record("expected a TLS failure, got \(String(describing: outcome))"); return
        }
        #expect(!message.isEmpty)
    }

    @Test func serverCertificateForAnotherHostIsRefused() throws {
        let server = try TestServer(cert: fixture.wrongHostCert, key: fixture.wrongHostKey)
        let loop = try EventLoop()
        let http = try client(loop)
        let outcome = try postAndWait(http, loop, HTTPRequest(url: server.url()))
        guard case .failure(.tls) = outcome else {
            Issue.record("expected a TLS failure, got \(String(describing: outcome))"); return
        }
    }

    @Test func mutualTLSNeedsTheClientCertificate() throws {
        let server = try TestServer(clientCA: fixture.caFile)
        let loop = try EventLoop()
        let anonymous = try client(loop)
        let refused = try postAndWait(anonymous, loop, HTTPRequest(url: server.url()))
        guard case .failure(let error) = refused, case .tls(let message) = error else {
            Issue.record("expected a TLS failure without a client certificate, got \(String(describing: refused))"); return
        }
        #expect(!error.isUnreachable)
        // A technician reads which alert the server sent.
        #expect(message.includes("certificate required"), "\(message)")

        let identified = try client(loop, tls: TLSSettings(caFile: fixture.caFile, clientCertificate: fixture.clientCert,
                                                           clientKey: fixture.clientKey))
        let accepted = try postAndWait(identified, loop, HTTPRequest(url: server.url()))
        let response = try #require(try accepted?.get())
        #expect(response.status == 200)
        #expect(fields(response)["peer"] == "client")
    }

    @Test func missingTLSFileFailsAtStartUp() throws {
        let loop = try EventLoop()
        #expect(throws: HTTPClientSetupError.fileNotReadable(path: "/nonexistent/ca.pem", errno: ENOENT)) {
            _ = try HTTPClient(loop: loop, tls: TLSSettings(caFile: "/nonexistent/ca.pem"))
        }
    }

    // MARK: The event loop

    @Test func loopKeepsRunningDuringASlowRequest() throws {
        let server = try TestServer()
        let loop = try EventLoop()
        let http = try client(loop)
        var outcome: Result<HTTPResponse, HTTPError>?
        var completedAt: Instant?
        http.post(HTTPRequest(url: server.url("/slow?ms=700"))) { outcome = $0; completedAt = MonotonicClock.now() }
        let due = MonotonicClock.now() + .milliseconds(150)
        var firedAt: Instant?
        _ = loop.schedule(at: due) { firedAt = MonotonicClock.now() }
        _ = try loop.run(until: { outcome != nil }, deadline: MonotonicClock.now() + .seconds(10))
        #expect(try outcome?.get().status == 200)
        let fired = try #require(firedAt)
        #expect(fired - due < .milliseconds(100), "timer late by \(seconds(fired - due)) s")
        #expect(fired < (completedAt ?? fired))
    }

    @Test func cancelAllEndsEveryRequestInOrder() throws {
        let server = try TestServer()
        let loop = try EventLoop()
        let http = try client(loop, limits: HTTPClientLimits(maxConcurrent: 2))
        var ended: [Int] = []
        for i in 0..<4 {
            http.post(HTTPRequest(url: server.url("/hang"))) { result in
                #expect(result == .failure(.cancelled))
                ended.append(i)
            }
        }
        _ = loop.schedule(at: MonotonicClock.now() + .milliseconds(300)) { http.cancelAll() }
        _ = try loop.run(until: { ended.count == 4 }, deadline: MonotonicClock.now() + .seconds(5))
        #expect(ended == [0, 1, 2, 3])
        #expect(http.inFlight == 0)
        // Still usable afterwards.
        #expect(try postAndWait(http, loop, HTTPRequest(url: server.url()))?.get().status == 200)
    }

    @Test func invalidRequestsAreRefusedWithoutSending() throws {
        let loop = try EventLoop()
        let http = try client(loop)
        var outcomes: [Result<HTTPResponse, HTTPError>] = []
        // Plain HTTP is refused for anything but loopback.
        http.post(HTTPRequest(url: "http://192.0.2.1:80/plain")) { outcomes.append($0) }
        http.post(HTTPRequest(url: "https://127.0.0.1:1/x", headers: [("Idempotency-Key", "a\r\nInjected: 1")])) { outcomes.append($0) }
        #expect(outcomes.isEmpty, "completion never runs inside post")
        #expect(http.inFlight == 2)
        _ = try loop.run(until: { outcomes.count == 2 }, deadline: MonotonicClock.now() + .seconds(2))
        #expect(outcomes.count == 2)
        for outcome in outcomes {
            guard case .failure(.invalidRequest) = outcome else { Issue.record("got \(outcome)"); continue }
        }
    }

    @Test func droppingTheClientMidRequestIsSafe() throws {
        let server = try TestServer()
        let loop = try EventLoop()
        var called = false
        do {
            let http = try client(loop)
            http.post(HTTPRequest(url: server.url("/hang"))) { _ in called = true }
            _ = try loop.run(until: { false }, deadline: MonotonicClock.now() + .milliseconds(300))
        }
        _ = try loop.run(until: { false }, deadline: MonotonicClock.now() + .milliseconds(200))
        #expect(!called)
    }

    @Test func curlCodesMapToErrors() {
        #expect(httpError(curlCode: 7, message: "refused", requestStarted: false, exceeded: false) == .couldNotConnect("refused"))
        #expect(httpError(curlCode: 6, message: "dns", requestStarted: false, exceeded: false).isUnreachable)
        #expect(httpError(curlCode: 28, message: "t", requestStarted: false, exceeded: false) == .couldNotConnect("t"))
        #expect(httpError(curlCode: 28, message: "t", requestStarted: true, exceeded: false) == .timedOut)
        #expect(httpError(curlCode: 60, message: "v", requestStarted: false, exceeded: false) == .tls("v"))
        #expect(httpError(curlCode: 56, message: "OpenSSL SSL_read: error:0A00045C:SSL routines::tlsv13 alert certificate required",
                          requestStarted: true, exceeded: false).isTLS)
        #expect(httpError(curlCode: 56, message: "Connection reset by peer", requestStarted: true, exceeded: false)
                == .sendOrReceive("Connection reset by peer"))
        // Reset before any status line: nothing behind the address answered.
        #expect(httpError(curlCode: 56, message: "Connection reset by peer", requestStarted: true, exceeded: false, responseStarted: false)
                == .noResponse("Connection reset by peer"))
        #expect(httpError(curlCode: 52, message: "Empty reply from server", requestStarted: true, exceeded: false, responseStarted: false).isUnreachable)
        #expect(httpError(curlCode: 23, message: "w", requestStarted: true, exceeded: true) == .tooLarge)
        #expect(httpError(curlCode: 63, message: "m", requestStarted: true, exceeded: false) == .tooLarge)
        #expect(httpError(curlCode: 3, message: "u", requestStarted: false, exceeded: false) == .other(code: 3, "u"))
        // The same alert from an OpenSSL built without error strings (`no-err`, common in
        // firmware images), before any status line: still the TLS failure it is, not an
        // unreachable cloud.
        #expect(httpError(curlCode: 56, message: "OpenSSL SSL_read: error:0A00045C:lib(20)::reason(1116), errno 0",
                          requestStarted: true, exceeded: false, responseStarted: false).isTLS)
    }

    @Test func tlsAlertsAreReadFromOpenSSLsPackedCodes() {
        // OpenSSL 3 (library above bit 23), with and without error strings.
        #expect(tlsAlertNumber(in: "OpenSSL SSL_read: error:0A00045C:lib(20)::reason(1116), errno 0") == 116)
        #expect(tlsAlertNumber(in: "OpenSSL SSL_read: error:0A00045C:SSL routines::tlsv13 alert certificate required, errno 0") == 116)
        #expect(tlsAlertNumber(in: "error:0A000418:lib(20)::reason(1048)") == 48)
        // OpenSSL 1.1 (library above bit 24).
        #expect(tlsAlertNumber(in: "error:14094418:SSL routines:ssl3_read_bytes:tlsv1 alert unknown ca") == 48)
        // SSL errors that are not alerts, other libraries, and no code at all.
        #expect(tlsAlertNumber(in: "error:0A000086:lib(20)::reason(134)") == nil)
        #expect(tlsAlertNumber(in: "error:8000006F:system library::Connection refused") == nil)
        #expect(tlsAlertNumber(in: "Connection reset by peer") == nil)
        #expect(tlsAlertNumber(in: "error:0A00045") == nil)
        // A bare code is spelled out; a message that names the alert already is left alone.
        #expect(explainingTLSAlert("error:0A00045C:lib(20)::reason(1116)")
                == "error:0A00045C:lib(20)::reason(1116) (the peer sent TLS alert 116: certificate required)")
        #expect(explainingTLSAlert("error:0A000418:lib(20)::reason(1048)").hasSuffix("TLS alert 48: unknown CA)"))
        let named = "error:0A00045C:SSL routines::tlsv13 alert certificate required"
        #expect(explainingTLSAlert(named) == named)
    }
}

extension HTTPError {
    var isTLS: Bool { if case .tls = self { true } else { false } }
}

// MARK: Bearer token

@Suite struct BearerTokenTests {
    let directory: String

    init() throws {
        var template = Array((Fixture.shared.directory + "/token-XXXXXX").utf8CString)
        directory = String(cString: try #require(mkdtemp(&template)))
    }

    func file(_ name: String, _ contents: String, mode: mode_t) throws -> String {
        let path = directory + "/" + name
        try Fixture.write(path, contents, mode: mode)
        chmod(path, mode)   // the umask may have cut bits from open's mode
        return path
    }

    @Test func privateFileIsReadAndTrimmed() throws {
        let path = try file("ok", "  eyJhbGciOi.J9-_~+/=\n", mode: 0o600)
        #expect(try BearerToken.load(path: path) == "eyJhbGciOi.J9-_~+/=")
        chmod(path, 0o400)
        #expect(try BearerToken.load(path: path) == "eyJhbGciOi.J9-_~+/=")
    }

    @Test func fileOthersCanReadIsRefused() throws {
        let path = try file("open", "secret\n", mode: 0o644)
        #expect(throws: BearerTokenError.permissionsTooOpen(path: path, mode: 0o644)) { try BearerToken.load(path: path) }
        chmod(path, 0o640)
        #expect(throws: BearerTokenError.permissionsTooOpen(path: path, mode: 0o640)) { try BearerToken.load(path: path) }
        chmod(path, 0o602)
        #expect(throws: BearerTokenError.permissionsTooOpen(path: path, mode: 0o602)) { try BearerToken.load(path: path) }
    }

    @Test func missingFileAndDirectoryAreRefused() throws {
        #expect(throws: BearerTokenError.missing(path: directory + "/absent")) { try BearerToken.load(path: directory + "/absent") }
        let sub = directory + "/dir"
        mkdir(sub, 0o700)
        #expect(throws: BearerTokenError.notRegularFile(path: sub)) { try BearerToken.load(path: sub) }
    }

    @Test func contentsAreChecked() throws {
        let empty = try file("empty", " \n\t\n", mode: 0o600)
        #expect(throws: BearerTokenError.empty(path: empty)) { try BearerToken.load(path: empty) }
        let spaced = try file("spaced", "two words\n", mode: 0o600)
        #expect(throws: BearerTokenError.invalidCharacters(path: spaced)) { try BearerToken.load(path: spaced) }
        let lines = try file("lines", "abc\r\nInjected: yes\n", mode: 0o600)
        #expect(throws: BearerTokenError.invalidCharacters(path: lines)) { try BearerToken.load(path: lines) }
        let big = try file("big", String(repeating: "a", count: 8193), mode: 0o600)
        #expect(throws: BearerTokenError.tooLarge(path: big, bytes: 8193)) { try BearerToken.load(path: big) }
        let limit = try file("limit", String(repeating: "a", count: 8192), mode: 0o600)
        #expect(try BearerToken.load(path: limit).utf8.count == 8192)
    }

    @Test(.enabled(if: geteuid() == 0, "chown needs root"))
    func fileOwnedBySomeoneElseIsRefused() throws {
        let path = try file("foreign", "secret\n", mode: 0o600)
        chown(path, 4242, 4242)
        #expect(throws: BearerTokenError.wrongOwner(path: path, owner: 4242)) { try BearerToken.load(path: path) }
        chown(path, 0, 0)
        #expect(try BearerToken.load(path: path) == "secret", "root-owned is fine")
    }
}
