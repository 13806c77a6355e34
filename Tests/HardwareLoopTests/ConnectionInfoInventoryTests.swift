import Foundation
import Glibc
import Testing

/// `paybridgectl inventory` shows what the Apollo answers to Get Connection Info, asked by the
/// real daemon at bring-up; an Apollo without the command leaves it null and payments go on.
@Suite(.serialized) struct ConnectionInfoInventory {
    let ctl = DiagnosticsSocketTests()
    static let text = "ip=10.0.0.7 ssid=CHG apn=m2m"

    func inventory(_ socket: String) -> [String: Any]? {
        ctl.json(try? ctl.ctl(["--socket", socket, "--json", "inventory"]).out.first)["terminal"] as? [String: Any]
    }

    /// A session settles: the terminal took a payment after the query (the query goes first).
    func settled(_ socket: String) -> Bool {
        waitUntil(.seconds(30)) { ((try? ctl.ctl(["--socket", socket, "export", "--format", "csv"]).out) ?? []).count >= 2 }
    }

    @Test func theApollosTextIsInTheInventory() throws {
        let socket = DiagnosticsSocketTests.socketPath()
        let bench = try Bench(family: "apollo", terminal: ["--connection-info", Self.text],
                              config: ["diagnostics.socket = \(socket)"], ev: "plug=200,charge=1500,power=7400")
        defer { _ = bench.stop() }
        var network: [String: Any]?
        #expect(waitUntil(.seconds(20)) { network = inventory(socket)?["network"] as? [String: Any]; return network != nil },
                "no network in \(String(describing: inventory(socket)))")
        #expect(network?["text"] as? String == Self.text)
        #expect(network?["hex"] == nil)
        #expect(network?["source"] as? String == "Get Connection Info 0x44 (layout undocumented)")
        let human = try ctl.ctl(["--socket", socket, "inventory"])
        #expect(human.status == 0)
        #expect(human.out.contains { $0.hasPrefix("network ") && $0.hasSuffix(Self.text) }, "\(human.out)")
        #expect(settled(socket), "no payment after the query")
    }

    @Test func anApolloWithoutTheCommandShowsNullAndStillTakesPayments() throws {
        let socket = DiagnosticsSocketTests.socketPath()
        let bench = try Bench(family: "apollo", terminal: [], config: ["diagnostics.socket = \(socket)"], ev: "plug=200,charge=1500,power=7400")
        defer { _ = bench.stop() }
        #expect(settled(socket), "no payment after the refused query")
        let terminal = inventory(socket)
        #expect(terminal?["serial_number"] as? String == "APO-SIM-000123", "the link is up and the terminal identified")
        #expect(terminal?["network"] is NSNull, "\(String(describing: terminal))")
        let status = ctl.json(try ctl.ctl(["--socket", socket, "--json", "status"]).out.first)
        let counters = (status["terminal"] as? [String: Any])?["counters"] as? [String: Any]
        #expect(counters?["connectionInfoUnavailable"] as? Int == 1, "\(String(describing: counters))")
        #expect(counters?["bringUps"] as? Int == 1, "the refusal restarted the link")
    }

    /// A card number in the answer is masked before anything keeps it, and the operator is warned.
    @Test func aCardNumberInTheAnswerIsMaskedAndWarnedAbout() throws {
        let socket = DiagnosticsSocketTests.socketPath()
        let bench = try Bench(family: "apollo", terminal: ["--connection-info", "ip=10.0.0.7 ref=4111111111111111"],
                              config: ["diagnostics.socket = \(socket)"], ev: nil, keepLog: true)
        defer { _ = bench.stop() }
        var network: [String: Any]?
        #expect(waitUntil(.seconds(20)) { network = inventory(socket)?["network"] as? [String: Any]; return network != nil })
        #expect(network?["text"] as? String == "ip=10.0.0.7 ref=411111******1111")
        #expect(waitUntil(.seconds(5)) { bench.daemonLog.contains("card data filter: the terminal sent card data in connectionInfo") },
                "\(bench.daemonLog)")
        #expect(!bench.daemonLog.contains("4111111111111111"))
    }
}
