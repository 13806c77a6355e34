import Glibc
import Testing
import Platform
import Timebase

/// Name resolution would block the event loop, so TCP takes numeric addresses only.
@Suite struct NumericHostTests {
    @Test func aHostNameIsRefusedWithoutResolvingIt() throws {
        let listener = try TCPListener.listen(port: 0)
        defer { listener.close() }
        // "localhost" resolves from /etc/hosts without DNS, so before the fix this connected.
        for name in ["localhost", "ip6-localhost", "terminal.example"] {
            do {
                let (fd, _) = try TCP.startConnect(host: name, port: listener.port)
                fd.close()
                Issue.record("\(name) was resolved")
            } catch {
                #expect(error.call.hasPrefix("getaddrinfo \(name)"), "\(error)")
                #expect(error.call.includes("numeric"), "\(error)")
            }
            #expect(throws: SystemError.self) { try TCP.connect(host: name, port: listener.port, timeout: .seconds(1)).close() }
        }
    }

    @Test func numericAddressesStillConnect() throws {
        let listener = try TCPListener.listen(port: 0)
        defer { listener.close() }
        let fd = try TCP.connect(host: "127.0.0.1", port: listener.port, timeout: .seconds(2))
        fd.close()
        let (started, _) = try TCP.startConnect(host: "127.0.0.1", port: listener.port)
        started.close()
    }

    @Test func numericAddressCheck() {
        for ok in ["192.0.2.10", "127.0.0.1", "0.0.0.0", "::1", "fe80::1", "2001:db8::17", "::ffff:192.0.2.1", "fe80::1%eth0", "fe80::1%2"] {
            #expect(TCP.isNumericAddress(ok), "\(ok)")
        }
        for bad in ["", "localhost", "terminal.local", "192.0.2.256", "192.0.2", "127.1", "0x7f.0.0.1", "[::1]", "::1%",
                    "192.0.2.1%eth0", " 192.0.2.1", "192.0.2.1 ", "fe80::1%eth 0", "１９２.0.2.1"] {
            #expect(!TCP.isNumericAddress(bad), "\(bad)")
        }
    }
}
