import Foundation
import Glibc
import Platform
import Testing

/// `paybridgectl export` against what the terminal itself recorded: the real daemon runs sessions
/// with every outcome, and the export's rows are the terminal's captures, voids and declines,
/// no more and no fewer.
@Suite(.serialized) struct ExportReconciliation {
    @Test func theExportsRowsAreTheTerminalsRecord() throws {
        let socket = DiagnosticsSocketTests.socketPath()
        // Each session its own card: the same card again would be a tap to stop. The cloud
        // refuses the default card (…0119).
        func card(_ pan: String, _ n: Int) -> String { "card=\(pan) hash=0A0B0C0\(n)" }
        // A card is tapped 3 s after the terminal is armed. While the one connector is busy the
        // daemon keeps the terminal scanning (tap to stop), and every scan takes the next
        // session below: the tap comes only after the busy session has ended (plug 1.5 s, charge
        // 0.8 s), so each scan is one session, in this order.
        let b = try Bench(terminal: ["--tap-delay", "3000",
                                     "--session", "approve \(card("5413330089010434", 1))",        // charged and captured
                                     "--session", "decline reason=5 \(card("5555555555554444", 2))", // declined by the bank
                                     "--session", "cancel \(card("4012888888881881", 3))",          // cancelled by the cardholder
                                     "--session", "approve",                                          // refused by the platform
                                     "--session", "approve \(card("4111111111111111", 4))",        // released by the operator
                                     "--session", "approve \(card("5105105105105100", 5))",        // charged and captured
                                     "--fallback", "nocard"],
                          cloud: ["--refuse-card", "0119"], config: ["diagnostics.socket = \(socket)"],
                          ev: "plug=1500,charge=800,power=3600000")
        defer { _ = b.stop() }
        // The fifth session waits for its plug: the operator stops it, which releases the reservation.
        var awaiting = false
        #expect(waitUntil(.seconds(45)) {
            guard b.sim.records("approved").count == 2 else { return false }
            let s = jsonObject(try? paybridgectl(["--socket", socket, "--json", "status"]).out.first)
            let session = ((s["connectors"] as? [[String: Any]])?.first)?["session"] as? [String: Any]
            awaiting = session?["phase"] as? String == "awaiting-plug"
            return awaiting
        }, "the second approval never waited for the plug: \(b.sim.records())")
        if awaiting { #expect(try paybridgectl(["--socket", socket, "stop", "1"]).status == 0) }
        #expect(waitUntil(.seconds(20)) { b.sim.records("committed").count == 2 && b.sim.records("voided").count == 1 },
                "the sessions did not all end: \(b.sim.records())")

        // Every session the terminal saw has ended; the export must show exactly those.
        let committed = b.sim.records("committed"), voided = b.sim.records("voided"), declined = b.sim.records("declined")
        #expect(declined.count == 1)
        // Every outcome happened: three approvals (the refused card never reached the bank), the
        // cardholder's cancel, and the platform's refusal dropped by the daemon.
        #expect(b.sim.records("approved").count == 3)
        #expect(b.sim.records("cancelled").filter { $0["by"] as? String == "cardholder" }.count == 1)
        #expect(b.sim.records("cancelled").contains { $0["by"] as? String == "host" }, "the refused card was not dropped")
        var rows: [[String: Any]] = []
        let expected = committed.count + voided.count + declined.count
        #expect(waitUntil(.seconds(10)) {
            let reply = jsonObject(try? paybridgectl(["--socket", socket, "--json", "export", "--format", "json"]).out.first)
            rows = (reply["text"] as? String ?? "").split(separator: "\n").map { jsonObject(String($0)) }
            return rows.count == expected && reply["rows"] as? Int == expected
        }, "exported \(rows.count) rows, the terminal ended \(expected) sessions: \(rows)")

        func inState(_ state: String) -> [[String: Any]] { rows.filter { $0["final_state"] as? String == state } }
        func reference(_ r: [String: Any]) -> Int? { (r["terminal_reference"] as? String).flatMap { Int($0) } }
        for c in committed {
            let id = c["sessionId"] as? Int
            let matching = rows.filter { reference($0) == id }
            #expect(matching.count == 1, "terminal session \(String(describing: id)): \(matching.count) rows")
            #expect(matching.first?["final_state"] as? String == "settled")
            #expect(minor(matching.first?["captured"]) == c["amount"] as? Int, "captured \(String(describing: matching.first?["captured"])), terminal \(c)")
        }
        for v in voided {
            let id = v["sessionId"] as? Int
            let matching = rows.filter { reference($0) == id }
            #expect(matching.count == 1, "terminal session \(String(describing: id)): \(matching.count) rows")
            #expect(matching.first?["final_state"] as? String == "voided")
            #expect(minor(matching.first?["authorised"]) == v["amount"] as? Int)
            #expect(matching.first?["captured"] is NSNull || minor(matching.first?["captured"]) == 0)
        }
        #expect(inState("settled").count == committed.count && inState("voided").count == voided.count)
        #expect(inState("declined").count == declined.count)
        #expect(inState("declined").allSatisfy { $0["masked_card"] as? String == "555555******4444" && minor($0["captured"]) == nil })
        // Nothing else: the cardholder's cancel and the platform's refusal authorised nothing.
        #expect(rows.allSatisfy { ["settled", "voided", "declined"].contains($0["final_state"] as? String ?? "") }, "\(rows)")
        #expect(Set(rows.compactMap { $0["session_id"] as? String }).count == rows.count, "a session exported twice")
        // The CSV holds the same sessions.
        let csv = try paybridgectl(["--socket", socket, "export", "--format", "csv"])
        #expect(csv.status == 0)
        let lines = csv.out.map { $0.hasSuffix("\r") ? String($0.dropLast()) : $0 }.filter { !$0.isEmpty }
        #expect(lines.count == rows.count + 1, "\(lines)")
        let ids = Set(lines.dropFirst().compactMap { $0.split(separator: ",").dropFirst().first.map(String.init) })
        #expect(ids == Set(rows.compactMap { $0["session_id"] as? String }))
    }
}
