import Testing
import Configuration

/// `terminal.host` must be an IP address: a name would be resolved on the event loop, blocking it.
@Suite struct TerminalHost {
    @Test func aHostNameIsAProblemOnItsLine() {
        for name in ["terminal.local", "localhost", "apollo", "192.0.2.256", "[::1]", "127.1"] {
            let (c, problems) = ConfigParser.parse("terminal.transport = tcp\nterminal.host = \(name)\n")
            // The host's own problem on its line, and (the host being unset) tcp's need of one.
            #expect(problems.map(\.line) == [2, 1], "\(name): \(problems)")
            #expect(problems.first?.message.contains("terminal.host: expected an IP address") == true, "\(name): \(problems)")
            #expect(c.host == "", "\(name) kept")
        }
    }

    @Test func numericAddressesAreAccepted() {
        for address in ["192.0.2.10", "::1", "2001:db8::17", "fe80::1%eth0"] {
            let (c, problems) = ConfigParser.parse("terminal.transport = tcp\nterminal.host = \(address)   # the Apollo\n")
            #expect(problems.isEmpty, "\(address): \(problems)")
            #expect(c.host == address)
        }
        // Empty stays the default (a serial terminal needs no host).
        let (c, problems) = ConfigParser.parse("terminal.host =\n")
        #expect(problems.isEmpty && c.host == "")
    }
}
