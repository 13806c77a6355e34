import Foundation
import Testing
import Platform
import Timebase

/// The real daemon, killed with SIGKILL at random moments while sessions run against
/// terminal-sim on a pty, restarted each time, and finally drained. The terminal's own record
/// is the judge: every approval is committed or voided exactly once, never above its amount.
@Suite(.serialized) struct CrashRecovery {
    func daemon(_ args: [String]) throws -> ChildProcess {
        try ChildProcess.spawn(ChildProcess.executableDirectory() + "/paybridged", args, captureStdout: false, pipeStdin: false)
    }

    @Test(arguments: [UInt64(0xC0FFEE), 0xBEEF])
    func sigkillAtRandomPointsThenRestartSettlesEverySessionOnce(seed: UInt64) throws {
        var rng = SeededGenerator(seed: seed)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("crash-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let tty = dir + "/ttyPSP"
        let sim = try SimProcess(["--pty", "--link", tty, "--family", "p6x", "--tap-delay", "50", "--auth-delay", "50"])
        let common = ["--terminal", "serial:\(tty)", "--family", "p6x", "--state", dir + "/state",
                      "--tariff", "EUR,100,40000,0", "--relay-history", dir + "/relay.jsonl", "--log-level", "warning"]
        for round in 0..<6 {
            let p = try daemon(common + ["--charger-io", "simulated", "--sim-ev", "plug=100,charge=\(Int.random(in: 200...900, using: &rng)),power=3600000"])
            if round == 0 {
                // However slow the machine, the first life lasts until a session is approved.
                #expect(waitUntil(.seconds(60)) { !sim.records("approved").isEmpty }, "seed \(seed): no approval")
            }
            let life = Int.random(in: 300...2500, using: &rng)
            usleep(UInt32(life) * 1000)
            p.signal(SIGKILL)
            #expect(p.wait(timeout: .seconds(5)) != nil, "seed \(seed) round \(round): daemon did not die")
        }
        // Restart once more and settle whatever the kills left open.
        let drain = try daemon(common + ["--drain", "--charger-io", "simulated", "--sim-ev", "none"])
        let status = drain.wait(timeout: .seconds(60))
        #expect(status == 0, "seed \(seed): drain exited \(String(describing: status))")

        let records = sim.records()
        print("crash test seed \(seed): " + ["approved", "committed", "voided", "rejected"].map { e in "\(e)=\(records.filter { $0["event"] as? String == e }.count)" }.joined(separator: " "))
        let approved = records.filter { ["approved", "partiallyApproved"].contains($0["event"] as? String) }
        #expect(!approved.isEmpty, "seed \(seed): no session got as far as an approval")
        var closes: [Int: [String]] = [:]
        for r in records {
            guard let e = r["event"] as? String, e == "committed" || e == "voided", let id = r["sessionId"] as? Int else { continue }
            closes[id, default: []].append(e)
            if e == "committed", let amount = r["amount"] as? Int,
               let a = approved.first(where: { $0["sessionId"] as? Int == id })?["amount"] as? Int {
                #expect(amount <= a, "seed \(seed): session \(id) captured \(amount) above \(a)")
            }
        }
        for a in approved {
            let id = a["sessionId"] as! Int
            #expect(closes[id]?.count == 1, "seed \(seed): session \(id) closed \(closes[id] ?? []) (must be exactly once)")
        }
        // Card data rule: nothing that looks like a card number in the ledger files.
        let ledgerDir = dir + "/state/ledger"
        for name in try FileManager.default.contentsOfDirectory(atPath: ledgerDir) {
            let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: ledgerDir + "/" + name)))
            var run = 0
            for b in bytes { if b >= 0x30 && b <= 0x39 { run += 1; #expect(run < 13, "seed \(seed): digit run in \(name)"); if run >= 13 { break } } else { run = 0 } }
        }
    }
}

/// SIGTERM in the middle of a charge: relays open, a clean exit, and the session settled once
/// by the next start.
@Suite(.serialized) struct GracefulStop {
    @Test func sigtermMidChargeOpensTheRelayAndTheRestartSettlesOnce() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("term-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let tty = dir + "/ttyPSP"
        let sim = try SimProcess(["--pty", "--link", tty, "--family", "p6x", "--tap-delay", "50", "--auth-delay", "50"])
        let exe = ChildProcess.executableDirectory() + "/paybridged"
        let common = ["--terminal", "serial:\(tty)", "--family", "p6x", "--state", dir + "/state", "--tariff", "EUR,100,40000,0",
                      "--relay-history", dir + "/relay.jsonl", "--log-level", "warning"]
        let p = try ChildProcess.spawn(exe, common + ["--charger-io", "simulated", "--sim-ev", "plug=100,charge=60000,power=3600000"], captureStdout: false, pipeStdin: false)
        #expect(waitUntil(.seconds(60)) { fileText(dir + "/relay.jsonl").contains("\"closed\":true") }, "never charged")
        usleep(1_500_000)
        p.signal(SIGTERM)
        #expect(p.wait(timeout: .seconds(10)) == 0, "no clean exit on SIGTERM")
        let history = fileText(dir + "/relay.jsonl").split(separator: "\n")
        #expect(history.last?.contains("\"closed\":false") == true, "relay left closed: \(history.suffix(2))")
        #expect(sim.records("committed").isEmpty, "the open session is left to recovery, not settled on the way out")

        let drain = try ChildProcess.spawn(exe, common + ["--drain", "--charger-io", "simulated", "--sim-ev", "none"], captureStdout: false, pipeStdin: false)
        #expect(drain.wait(timeout: .seconds(60)) == 0)
        let approved = sim.records("approved").compactMap { $0["sessionId"] as? Int }
        let closed = sim.records().filter { ["committed", "voided"].contains($0["event"] as? String ?? "") }.compactMap { $0["sessionId"] as? Int }
        #expect(approved.count >= 1)
        #expect(closed.sorted() == approved.sorted(), "every approval settled exactly once: approved \(approved), closed \(closed)")
        #expect(sim.records("committed").first.flatMap { $0["amount"] as? Int }.map { $0 > 100 } == true, "the energy delivered was billed")
    }
}

/// The terminal's cable pulled mid-charge: charging goes on, and the capture waits for the
/// terminal to come back.
@Suite(.serialized) struct TerminalLostMidCharge {
    @Test func chargingContinuesAndTheCommitWaitsForTheTerminal() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lost-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let tty = dir + "/ttyPSP"
        let sim = try SimProcess(["--pty", "--link", tty, "--family", "p6x", "--tap-delay", "50", "--auth-delay", "50"])
        let exe = ChildProcess.executableDirectory() + "/paybridged"
        let p = try ChildProcess.spawn(exe, ["--terminal", "serial:\(tty)", "--family", "p6x", "--state", dir + "/state",
                                             "--tariff", "EUR,100,40000,0", "--relay-history", dir + "/relay.jsonl", "--log-level", "warning",
                                             "--charger-io", "simulated", "--sim-ev", "plug=100,charge=2500,power=3600000"], captureStdout: false, pipeStdin: false)
        #expect(waitUntil(.seconds(60)) { fileText(dir + "/relay.jsonl").contains("\"closed\":true") }, "never charged")
        let closesBefore = fileText(dir + "/relay.jsonl").components(separatedBy: "\"closed\":false").count
        try sim.control("unplug 4000")
        usleep(1_000_000)
        // Unplugged terminal: the relay has not opened because of it.
        #expect(fileText(dir + "/relay.jsonl").components(separatedBy: "\"closed\":false").count == closesBefore)
        #expect(sim.records("committed").isEmpty)
        // The car leaves while the terminal is away; the commit goes out once it is back.
        #expect(waitUntil(.seconds(60)) { !sim.records("committed").isEmpty }, "no commit after the terminal came back")
        p.signal(SIGTERM)
        _ = p.wait(timeout: .seconds(10))
        let first = sim.records("approved").first?["sessionId"] as? Int
        #expect(sim.records("committed").filter { $0["sessionId"] as? Int == first }.count == 1)
    }
}
