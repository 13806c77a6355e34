import Foundation
import Glibc
import Platform
import Testing

/// The commands a technician runs at the charger, each against the real paybridged with
/// terminal-sim on a pty, cloud-sim and the simulated charger: what paybridgectl prints and what
/// the terminal, the relay and the cloud saw.
@Suite(.serialized) struct TechnicianCommands {
    func ctl(_ socket: String, _ args: [String]) throws -> (status: Int32?, out: [String]) {
        try paybridgectl(["--socket", socket] + args, lineTimeout: .seconds(90))
    }

    func json(_ line: String?) -> [String: Any] { jsonObject(line) }

    /// A test transaction: armed for its amount, the card authorised and the reservation voided
    /// at once, the relay never closed, the steps printed, the session in the ledger's views as a
    /// test and reported to the cloud.
    @Test func aTestTransactionReservesAndVoidsWithoutEverClosingTheRelay() throws {
        let socket = DiagnosticsSocketTests.socketPath()
        // The first scan (an ordinary one) sees no card; the test's scan gets an approving card.
        let bench = try Bench(terminal: ["--session", "nocard", "--session", "approve", "--fallback", "nocard"],
                              config: ["diagnostics.socket = \(socket)", "payment.preauth = 5000"], ev: "plug=100,charge=1500,power=7400")
        defer { _ = bench.stop() }
        #expect(waitUntil(.seconds(10)) { access(socket, F_OK) == 0 })
        #expect(waitUntil(.seconds(20)) { !bench.sim.records("started").isEmpty }, "the terminal was never armed")

        // More than the pre-authorisation: refused before anything is armed.
        #expect(try ctl(socket, ["test-transaction", "--amount", "5001"]).status == 1)
        let run = try ctl(socket, ["test-transaction", "--amount", "150"])
        #expect(run.status == 0, "\(run.out)")
        #expect(run.out.first?.hasPrefix("test transaction on connector 1 for 1.50 EUR: started") == true, "\(run.out)")
        #expect(run.out.contains { $0.contains("waiting for a card") } && run.out.contains { $0.contains("voiding") }, "\(run.out)")
        #expect(run.out.last?.hasPrefix("SUCCEEDED") == true, "\(run.out)")

        // The terminal: armed for 1.50, approved, voided; nothing committed; the relay never closed.
        #expect(bench.sim.records("started").contains { $0["amount"] as? Int == 150 })
        #expect(bench.sim.records("approved").count == 1)
        #expect(waitUntil(.seconds(10)) { bench.sim.records("voided").count == 1 })
        #expect(bench.sim.records("committed").isEmpty)
        #expect(!bench.relayEverClosed, "\(bench.relay())")

        // The ledger's views call it a test; the export notes it.
        let sessions = json(try ctl(socket, ["--json", "sessions", "--last", "1"]).out.first)["sessions"] as? [[String: Any]]
        #expect(sessions?.count == 1 && sessions?.first?["state"] as? String == "test", "\(String(describing: sessions))")
        let export = try ctl(socket, ["export", "--format", "csv"]).out
        #expect(export.count == 2 && export[1].contains("test transaction"), "\(export)")
        // Reported to the cloud like any session.
        #expect(waitUntil(.seconds(20)) { !bench.cloudBodies("TransactionEvent").isEmpty }, "the cloud heard nothing of the test")
        // Nothing left open, and ordinary payments carry on.
        let open = json(try ctl(socket, ["--json", "sessions", "--open"]).out.first)["sessions"] as? [Any]
        #expect(open?.isEmpty == true, "\(String(describing: open))")
        #expect((json(try ctl(socket, ["--json", "status"]).out.first)["payments"] as? [String: Any])?["enabled"] as? Bool == true)
    }

    /// `stop` ends a charging session as an operator stop: captured for what was metered.
    @Test func anOperatorStopCapturesWhatWasMetered() throws {
        let socket = DiagnosticsSocketTests.socketPath()
        let bench = try Bench(terminal: ["--session", "approve", "--fallback", "nocard"],
                              config: ["diagnostics.socket = \(socket)"], ev: "plug=100,charge=600000,power=36000000")
        defer { _ = bench.stop() }
        #expect(waitUntil(.seconds(10)) { access(socket, F_OK) == 0 })
        #expect(waitUntil(.seconds(30)) { bench.relayEverClosed }, "never charged")
        usleep(1_000_000)
        let stop = try ctl(socket, ["stop", "1", "--reason", "cable damaged"])
        #expect(stop.status == 0 && stop.out.first?.hasPrefix("stopping session") == true, "\(stop.out)")
        #expect(waitUntil(.seconds(30)) { bench.sim.records("committed").count == 1 }, "the stopped session was not captured")
        #expect(bench.relayOpen)
        #expect((bench.sim.records("committed").first?["amount"] as? Int ?? 0) > 0)
        // Nothing left to stop.
        #expect(waitUntil(.seconds(10)) { (try? ctl(socket, ["stop", "1"]).status) == 1 })
    }

    /// A terminal that reports tampering: payments stop, the status says why, the cloud gets a
    /// TamperDetectionActivated security event.
    @Test func aTamperedTerminalStopsPaymentsAndIsReported() throws {
        let socket = DiagnosticsSocketTests.socketPath()
        let bench = try Bench(family: "apollo", terminal: ["--fallback", "nocard"],
                              config: ["diagnostics.socket = \(socket)"], ev: "plug=100,charge=1500,power=7400")
        defer { _ = bench.stop() }
        #expect(waitUntil(.seconds(10)) { access(socket, F_OK) == 0 })
        func status() -> [String: Any] { json((try? ctl(socket, ["--json", "status"]))?.out.first) }
        #expect(waitUntil(.seconds(20)) { (status()["payments"] as? [String: Any])?["enabled"] as? Bool == true })
        try bench.sim.control("tamper")
        #expect(waitUntil(.seconds(30)) { (status()["payments"] as? [String: Any])?["enabled"] as? Bool == false }, "\(status())")
        let reason = (status()["payments"] as? [String: Any])?["reason"] as? String ?? ""
        #expect(reason.lowercased().contains("tamper") || reason.lowercased().contains("security"), "\(reason)")
        #expect(!(status()["warnings"] as? [String] ?? []).isEmpty)
        #expect(waitUntil(.seconds(30)) { bench.cloudBodies("SecurityEventNotification").contains { $0["type"] as? String == "TamperDetectionActivated" } },
                "\(bench.cloudBodies("SecurityEventNotification"))")
        let human = try ctl(socket, ["status"])
        #expect(human.out.contains { $0.hasPrefix("payments   DISABLED") }, "\(human.out)")
    }
}
