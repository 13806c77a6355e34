import Foundation
import Glibc
import Platform
import Testing

/// A terminal swapped on a running charger (issue 13): the real daemon, terminal-sim replaced on
/// the same pty link by one with another serial number, the real paybridgectl and cloud-sim.
@Suite(.serialized) struct TerminalSwap {
    func status(_ socket: String) throws -> [String: Any] {
        jsonObject(try paybridgectl(["--socket", socket, "--json", "status"]).out.first)
    }

    func payments(_ s: [String: Any]) -> (enabled: Bool?, reason: String?) {
        let p = s["payments"] as? [String: Any]
        return (p?["enabled"] as? Bool, p?["reason"] as? String)
    }

    func serial(_ socket: String) throws -> String? {
        let inventory = jsonObject(try paybridgectl(["--socket", socket, "--json", "inventory"]).out.first)
        return (inventory["terminal"] as? [String: Any])?["serial_number"] as? String
    }

    /// What terminal-sim recorded of a card being authorised or charged.
    func payment(_ sim: SimProcess) -> [[String: Any]] {
        sim.records().filter { ["approved", "committed", "declined"].contains($0["event"] as? String ?? "") }
    }

    /// Every scan the terminal was armed for was dropped by the daemon. The identity arrives
    /// after the link is up, so the engine may arm a swapped terminal until it does; the block
    /// drops that scan at once (ARCHITECTURE, "Swap and tamper").
    func everyScanDropped(_ sim: SimProcess) -> Bool {
        sim.records("started").count <= sim.records("cancelled").filter { $0["by"] as? String == "host" }.count
    }

    @Test func aSwappedTerminalTakesNoPaymentEvenAfterARestartUntilAccepted() throws {
        let socket = DiagnosticsSocketTests.socketPath()
        let b = try Bench(terminal: ["--serial", "P68-SWAP-A001", "--fallback", "nocard"],
                          config: ["diagnostics.socket = \(socket)"], ev: "plug=100,charge=800,power=3600000")
        defer { _ = b.stop() }
        #expect(waitUntil(.seconds(20)) { (try? serial(socket)) == "P68-SWAP-A001" }, "the first terminal never identified itself")
        #expect(payments(try status(socket)).enabled == true)

        // The other terminal would be paid with at once: the first scan it is armed for is tapped and approved.
        try b.replaceTerminal(["--serial", "P68-SWAP-B002", "--session", "approve", "--session", "approve", "--fallback", "nocard"])
        var s: [String: Any] = [:]
        #expect(waitUntil(.seconds(30)) {
            s = (try? status(socket)) ?? [:]
            return payments(s).enabled == false
        }, "payments still enabled with the swapped terminal: \(s)")
        let reason = payments(s).reason ?? ""
        #expect(reason.contains("terminal replaced") && reason.contains("P68-SWAP-B002") && reason.contains("P68-SWAP-A001"), "\(reason)")
        let warnings = s["warnings"] as? [String] ?? []
        #expect(warnings.contains { $0.contains("P68-SWAP-B002") }, "\(warnings)")
        #expect(try serial(socket) == "P68-SWAP-B002")
        #expect(waitUntil(.seconds(30)) { b.cloudBodies("SecurityEventNotification").contains { $0["type"] as? String == "TerminalReplaced" } },
                "the platform was not told: \(b.cloudBodies("SecurityEventNotification"))")
        // A card on the new terminal now: it is never armed, so nothing is asked of the bank.
        try b.sim.control("tap")
        usleep(2_000_000)
        #expect(payment(b.sim).isEmpty, "the swapped terminal took a payment: \(payment(b.sim))")
        #expect(everyScanDropped(b.sim), "a scan left armed on the swapped terminal: \(b.sim.records())")

        // Restarted before anyone accepted it: the ledger still says swapped.
        #expect(try b.restartDaemon() == 0)
        #expect(waitUntil(.seconds(20)) { (try? serial(socket)) == "P68-SWAP-B002" }, "the restarted daemon did not reach the terminal")
        s = try status(socket)
        #expect(payments(s).enabled == false && payments(s).reason?.contains("P68-SWAP-B002") == true, "\(s)")
        try b.sim.control("tap")
        usleep(2_000_000)
        #expect(payment(b.sim).isEmpty, "the swapped terminal took a payment after a restart: \(payment(b.sim))")
        #expect(everyScanDropped(b.sim), "a scan left armed on the swapped terminal: \(b.sim.records())")
        let scansBeforeAccept = b.sim.records("started").count
        // Told once, not again at the restart.
        #expect(b.cloudBodies("SecurityEventNotification").filter { $0["type"] as? String == "TerminalReplaced" }.count == 1)

        // An administrator accepts it: payments resume and the next driver charges and pays.
        let accept = try paybridgectl(["--socket", socket, "accept-terminal"])
        #expect(accept.status == 0, "\(accept.out)")
        #expect(waitUntil(.seconds(10)) { payments((try? status(socket)) ?? [:]).enabled == true })
        #expect(waitUntil(.seconds(40)) { !b.sim.records("committed").isEmpty }, "no session settled after the acceptance: \(b.sim.records())")
        #expect(b.sim.records("started").count > scansBeforeAccept)
        #expect(waitUntil(.seconds(20)) { !b.settlements("Settled").isEmpty })
        #expect(try paybridgectl(["--socket", socket, "accept-terminal"]).status == 1, "nothing left to accept")
        #expect(b.replaced.first?.records("approved").isEmpty == true, "the first terminal was paid with")
    }
}
