import Testing
import Configuration

/// `cloud.url` is checked by the rule the HTTPS client applies to every request, so a URL the
/// client would refuse (every message retried forever) is a problem in the file instead.
@Suite struct CloudURLSetting {
    static let refused = [
        "http://localhost.attacker.example/x",   // plain http to a host that only starts like loopback
        "http://127.0.0.1.attacker.example/",
        "http://localhost:80@attacker.example/",  // userinfo: the host is attacker.example
        "http://cpo.example/ocpp",
        "https://",                               // no host at all
        "https:///ocpp",
        "https://:443/ocpp",
        "https://user@/ocpp",
        "https://cpo.example:https/ocpp",         // port not a number
        "https://cpo.example:99999/ocpp",
        "https://cpo.example\\@evil/ocpp",
        "ftp://cpo.example/",
        "cpo.example",
    ]
    static let accepted = [
        "https://cpo.example/ocpp",
        "HTTPS://CPO.example:8443/ocpp/",
        "https://[2001:db8::1]/ocpp",
        "http://127.0.0.1:9000",
        "http://localhost",
        "http://localhost/ocpp",
        "http://[::1]:8080/ocpp",
    ]

    @Test func urlsTheClientWouldRefuseAreProblems() {
        for url in Self.refused {
            let (c, problems) = ConfigParser.parse("# the platform\ncloud.url = \(url)\ncloud.protocol = https\n")
            #expect(problems.map(\.line) == [2], "\(url): \(problems)")
            #expect(problems.first?.message.hasPrefix("cloud.url: expected a wss:// or https:// URL") == true, "\(url): \(problems)")
            #expect(c.cloudURL == nil, "\(url) kept")
        }
    }

    @Test func goodURLsAreKept() {
        for url in Self.accepted {
            let (c, problems) = ConfigParser.parse("cloud.url = \(url)\ncloud.protocol = https\n")
            #expect(problems.isEmpty, "\(url): \(problems)")
            #expect(c.cloudURL == url)
        }
        let (c, problems) = ConfigParser.parse("cloud.url =\n")
        #expect(problems.isEmpty && c.cloudURL == nil, "empty: no cloud")
    }
}

/// `cloud.proxy` (issue 11 item 4): absent or empty means no proxy at all; a value is checked.
@Suite struct CloudProxySetting {
    @Test func noProxyUnlessNamed() {
        let (c, problems) = ConfigParser.parse("cloud.url = https://cpo.example/ocpp\ncloud.protocol = https\n")
        #expect(problems.isEmpty && c.cloudProxy == nil)
        let (empty, none) = ConfigParser.parse("cloud.proxy =\n")
        #expect(none.isEmpty && empty.cloudProxy == nil)
    }

    @Test func aNamedProxyIsKeptAndABadOneIsAProblemWithItsLine() {
        let (c, problems) = ConfigParser.parse("cloud.proxy = http://192.0.2.7:3128\n")
        #expect(problems.isEmpty && c.cloudProxy == "http://192.0.2.7:3128")
        let (_, bad) = ConfigParser.parse("# proxy\ncloud.proxy = http://user:secret@192.0.2.7:3128\n")
        #expect(bad.count == 1 && bad.first?.line == 2, "\(bad)")
        #expect(!"\(bad)".contains("secret"), "the password is not repeated in the problem")
        let (_, noPort) = ConfigParser.parse("cloud.proxy = http://proxy.example\n")
        #expect(noPort.count == 1)
    }
}
