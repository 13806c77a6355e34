import Testing
import Platform

/// The one rule for the platform's URL, shared by the configuration and the HTTPS client.
@Suite struct CloudURLRule {
    @Test func httpsNeedsAHostAndPlainHTTPOnlyReachesLoopback() {
        for ok in ["https://cpo.example/ocpp", "https://cpo.example", "HTTPS://CPO.EXAMPLE:8443/x?y=1", "https://[2001:db8::1]:443/x",
                   "https://user@cpo.example/x", "http://127.0.0.1:9000/ocpp/CS-1/Authorize", "http://localhost", "http://LOCALHOST/x",
                   "http://[::1]/x", "http://127.0.0.1?x", "http://localhost#f"] {
            #expect(CloudURL.problem(ok) == nil, "\(ok): \(CloudURL.problem(ok) ?? "")")
        }
        for bad in ["", "https://", "https:///x", "https://:443/x", "https://@/x", "https://[/x", "https://[]/x", "https://h:x/",
                    "https://h:65536/", "https://h:443x/", "https://cpo.example\\@evil/", "https://a b/", "https://cpo.example/a b",
                    "https://cpo.example/\r\nX: y", "http://cpo.example/", "http://localhost.attacker.example/x",
                    "http://127.0.0.1.attacker.example/", "http://localhost:80@attacker.example/", "http://u@127.0.0.1/",
                    "http://[::1].attacker/", "http://[::2]/", "http://127.0.0.2/", "http:/localhost/", "ftp://cpo.example/", "cpo.example"] {
            #expect(CloudURL.problem(bad) != nil, "\(bad) accepted")
        }
    }

    @Test func loopbackHTTPIsRecognisedByItsHost() {
        #expect(CloudURL.isLoopbackHTTP("http://127.0.0.1:9000/x"))
        #expect(CloudURL.isLoopbackHTTP("http://localhost"))
        #expect(CloudURL.isLoopbackHTTP("HTTP://[::1]:80/"))
        #expect(!CloudURL.isLoopbackHTTP("http://localhost.attacker.example/"))
        #expect(!CloudURL.isLoopbackHTTP("http://localhost:80@attacker.example/"))
        #expect(!CloudURL.isLoopbackHTTP("https://127.0.0.1/"))
    }
}
