import Glibc
import Platform
import Testing
import Timebase
@testable import CloudHTTP

/// The client refuses, before any connection, every URL the configuration refuses for cloud.url:
/// both apply Platform's `CloudURL` rule.
@Suite(.serialized) struct URLRuleTests {
    @Test func urlsWithoutAHostOrWithPlainHTTPAwayFromLoopbackAreRefusedUnsent() throws {
        let loop = try EventLoop()
        let http = try HTTPClient(loop: loop, tls: TLSSettings(caFile: Fixture.shared.caFile))
        let urls = ["https:///ocpp/CS-1/Authorize", "https://:443/ocpp/CS-1/Authorize", "https://@/x",
                    "http://localhost:80@127.0.0.2:9/x", "http://localhost.attacker.example/x", "https://", "http://[::1].x/"]
        var outcomes: [Int: Result<HTTPResponse, HTTPError>] = [:]
        for (i, url) in urls.enumerated() { http.post(HTTPRequest(url: url)) { outcomes[i] = $0 } }
        _ = try loop.run(until: { outcomes.count == urls.count }, deadline: MonotonicClock.now() + .seconds(10))
        for (i, url) in urls.enumerated() {
            guard case .failure(.invalidRequest)? = outcomes[i] else { Issue.record("\(url): \(String(describing: outcomes[i]))"); continue }
            #expect(HTTPClient.urlProblem(url) != nil)
        }
        for good in ["https://cpo.example/ocpp/CS-1/Authorize", "http://127.0.0.1:9/x", "http://localhost/x"] {
            #expect(HTTPClient.urlProblem(good) == nil, "\(good)")
        }
    }
}
