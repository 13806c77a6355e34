import Glibc
import Platform
import Testing
import Timebase
@testable import CloudHTTP

/// A proxy only when configured (issue 11 item 4). The environment's proxy variables are
/// covered end to end with the real daemon (HardwareLoopTests' TransportSecretsTests), which
/// gets them in its own environment rather than this shared test process's.
@Suite(.serialized) struct ProxyTests {
    let fixture = Fixture.shared

    init() throws { try Signals.ignore(SIGPIPE) }

    @Test func aConfiguredProxyCarriesTheRequestAsATunnel() throws {
        let server = try TestServer()
        let proxy = try TestProxy()
        let loop = try EventLoop()
        let http = try HTTPClient(loop: loop, tls: TLSSettings(caFile: fixture.caFile), bearerToken: "secret-token", proxy: proxy.url)
        let response = try #require(try postAndWait(http, loop, HTTPRequest(url: server.url(), body: [0x31]))?.get())
        #expect(response.status == 200)
        #expect(fields(response)["authorization"] == "Bearer secret-token", "the token reached the server through the tunnel")
        let seen = try proxy.lines(within: .milliseconds(300))
        #expect(seen.contains("request CONNECT 127.0.0.1:\(server.port) HTTP/1.1"), "\(seen)")
        // The proxy sees the tunnel's target, never the request itself or its token.
        #expect(!seen.contains { $0.includes("secret-token") || $0.includes("POST") }, "\(seen)")
    }

    @Test func plainHTTPToLoopbackNeverGoesThroughTheProxy() throws {
        let proxy = try TestProxy()
        let loop = try EventLoop()
        // A port nothing listens on: without a proxy the connection is refused outright.
        let port = try closedPort()
        let http = try HTTPClient(loop: loop, proxy: proxy.url)
        let outcome = try postAndWait(http, loop, HTTPRequest(url: "http://127.0.0.1:\(port)/x"))
        guard case .failure(let error)? = outcome, error.isUnreachable else {
            Issue.record("expected a refused connection, got \(String(describing: outcome))"); return
        }
        #expect(try proxy.lines(within: .milliseconds(300)).isEmpty, "plain http went to the proxy")
    }

    @Test func aMalformedProxyIsRefusedAtStartUp() throws {
        let loop = try EventLoop()
        #expect(throws: HTTPClientSetupError.self) { _ = try HTTPClient(loop: loop, proxy: "http://user:pw@192.0.2.7:3128") }
        #expect(throws: HTTPClientSetupError.self) { _ = try HTTPClient(loop: loop, proxy: "socks5://192.0.2.7:1080") }
    }
}
