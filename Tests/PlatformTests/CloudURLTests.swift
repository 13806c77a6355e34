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

/// `localhost` is this machine whatever NSS says (issue 11 item 7): libcurl gets the addresses.
@Suite struct LocalhostPinning {
    @Test func plainHTTPToLocalhostIsPinnedToLoopbackAddresses() {
        #expect(CloudURL.localhostPinning("http://localhost:9000/ocpp") == "localhost:9000:127.0.0.1,[::1]")
        #expect(CloudURL.localhostPinning("HTTP://LocalHost/x") == "localhost:80:127.0.0.1,[::1]")
        #expect(CloudURL.localhostPinning("http://localhost") == "localhost:80:127.0.0.1,[::1]")
        #expect(CloudURL.localhostPinning("http://localhost:/x") == "localhost:80:127.0.0.1,[::1]")
        #expect(CloudURL.localhostPinning("http://localhost?q#f") == "localhost:80:127.0.0.1,[::1]")
    }

    @Test func nothingElseIsPinned() {
        for url in ["http://127.0.0.1:9000/", "http://[::1]/", "https://localhost/", "http://localhost.attacker.example/",
                    "http://localhost:80@attacker.example/", "http://cpo.example/", "https://cpo.example/"] {
            #expect(CloudURL.localhostPinning(url) == nil, "\(url)")
        }
    }
}

/// `cloud.proxy` (issue 11 item 4): only what the configuration names, in one checked form.
@Suite struct ProxyURLRule {
    @Test func acceptedForms() {
        for ok in ["http://192.0.2.7:3128", "http://192.0.2.7:3128/", "http://proxy.example:8080", "HTTP://Proxy-1.example:1",
                   "http://[2001:db8::1]:3128", "http://[::1]:65535"] {
            #expect(ProxyURL.problem(ok) == nil, "\(ok): \(ProxyURL.problem(ok) ?? "")")
        }
    }

    @Test func refusedForms() {
        for bad in ["", "192.0.2.7:3128", "http://192.0.2.7", "http://192.0.2.7:", "http://192.0.2.7:0", "http://192.0.2.7:65536",
                    "http://user:secret@192.0.2.7:3128", "http://192.0.2.7:3128/path", "http://192.0.2.7:3128?x", "https://192.0.2.7:3128",
                    "socks5://192.0.2.7:1080", "http://:3128", "http://[::1:3128", "http://[]:3128", "http://a b:3128",
                    "http://proxy_1:3128", "http://-x:3128", "http://p\\@q:3128", "http://192.0.2.7:3128\r\n"] {
            #expect(ProxyURL.problem(bad) != nil, "\(bad) accepted")
        }
    }
}
