import Foundation
import Testing
import Platform

/// fdatasync failing under the real daemon (strace's fault injection: no code of ours in the
/// way): the daemon must stop taking payments and open the relays, never trust the failed
/// sync, say so at error level (seen with `log.level = warning`), exit with status 74 so that
/// systemd restarts it, and the restart must settle every session from what really is on disk.
@Suite(.serialized) struct LedgerFailure {
    static let strace = ["/usr/bin/strace", "/bin/strace"].first { FileManager.default.isExecutableFile(atPath: $0) }

    @Test(.enabled(if: strace != nil, "strace is not installed: fdatasync fault injection skipped"),
          arguments: [4, 7, 11])
    func fdatasyncEIOStopsPaymentsOpensRelaysAndRestartSettles(failingSync: Int) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("eio-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let tty = dir + "/ttyPSP"
        let sim = try SimProcess(["--pty", "--link", tty, "--family", "p6x", "--tap-delay", "50", "--auth-delay", "50"])
        let daemon = ChildProcess.executableDirectory() + "/paybridged"
        let args = ["--terminal", "serial:\(tty)", "--family", "p6x", "--state", dir + "/state", "--tariff", "EUR,100,40000,0",
                    "--relay-history", dir + "/relay.jsonl", "--log-level", "warning"]
        let logPath = dir + "/daemon.log"
        // strace -o keeps its own output out of the daemon's log; the failing call is the Nth fdatasync.
        let p = try ChildProcess.spawn("/bin/sh", ["-c", "exec \(Self.strace!) -f -qq -o /dev/null -e trace=fdatasync -e inject=fdatasync:error=EIO:when=\(failingSync) \(daemon) \(args.joined(separator: " ")) --charger-io simulated --sim-ev plug=100,charge=400,power=3600000 2>\(logPath)"],
                                       captureStdout: false, pipeStdin: false)
        // Wait for the failure to be reported (sessions run until the Nth sync fails).
        waitUntil(.seconds(60)) { fileText(logPath).contains("ledger failed") }
        let log = fileText(logPath)
        #expect(log.contains("ledger failed"), "failing sync \(failingSync): no ledger failure reported:\n\(log)")
        #expect(log.hasPrefix("<3>") || log.contains("\n<3>ledger"), "the failure is not logged as an error:\n\(log)")
        // Payments stopped: no approval recorded by the terminal after the daemon reported the failure.
        let approvalsAtFailure = sim.records("approved").count
        // The process ends by itself, non-zero (74, strace passes it on), after its grace period.
        let status = p.wait(timeout: .seconds(20))
        #expect(status == 74, "failing sync \(failingSync): exit status \(String(describing: status)), not 74:\n\(fileText(logPath))")
        if status == nil { p.terminate() }
        #expect(sim.records("approved").count == approvalsAtFailure, "payments continued after the ledger failed")
        // Relays: the last state of every connector is open.
        let history = ((try? String(contentsOfFile: dir + "/relay.jsonl", encoding: .utf8)) ?? "").split(separator: "\n")
        #expect(history.last?.contains("\"closed\":false") == true, "relay left closed: \(history.suffix(3))")

        // A restart recovers from what is really on disk and settles everything exactly once.
        let drain = try ChildProcess.spawn(daemon, args + ["--drain", "--charger-io", "simulated", "--sim-ev", "none"], captureStdout: false, pipeStdin: false)
        #expect(drain.wait(timeout: .seconds(60)) == 0)
        var closes: [Int: Int] = [:]
        for r in sim.records() where ["committed", "voided"].contains(r["event"] as? String ?? "") {
            closes[r["sessionId"] as! Int, default: 0] += 1
        }
        for a in sim.records("approved") {
            let id = a["sessionId"] as! Int
            #expect(closes[id] == 1, "failing sync \(failingSync): session \(id) closed \(closes[id] ?? 0) times")
        }
    }
}

/// A ledger at its disk budget: the daemon refuses new sessions with a clear message and
/// keeps serving; with room it takes cards.
@Suite(.serialized) struct DiskBudget {
    @Test func atTheBudgetNoNewSessionIsTaken() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("budget-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let tty = dir + "/ttyPSP"
        let sim = try SimProcess(["--pty", "--link", tty, "--tap-delay", "50", "--auth-delay", "50"])
        let daemon = ChildProcess.executableDirectory() + "/paybridged"
        let logPath = dir + "/daemon.log"
        // One preallocated 4 MiB segment fills a 4 MiB budget.
        let p = try ChildProcess.spawn("/bin/sh", ["-c", "exec \(daemon) --terminal serial:\(tty) --state \(dir)/state --disk-budget 4194304 --charger-io simulated --sim-ev none 2>\(logPath)"],
                                       captureStdout: false, pipeStdin: false)
        waitUntil(.seconds(60)) { fileText(logPath).contains("storage full: refusing new sessions") }
        let log = fileText(logPath)
        #expect(log.contains("storage full: refusing new sessions"), "\(log)")
        // The empty ledger had room for the first session (its first record allocates the
        // segment that fills the budget): let that one finish; after it, none.
        waitUntil(.seconds(10)) { sim.records("approved").count >= 1 }
        let approved = sim.records("approved").count
        #expect(approved <= 1)
        usleep(1_500_000)
        #expect(sim.records("approved").count == approved, "a session was taken with the ledger at its budget")
        #expect(p.wait(timeout: .milliseconds(10)) == nil, "the daemon keeps running")
        p.signal(SIGTERM)
        #expect(p.wait(timeout: .seconds(10)) == 0)
        // The same ledger with room: cards are taken again.
        let before = sim.records("approved").count
        let q = try ChildProcess.spawn(daemon, ["--terminal", "serial:\(tty)", "--state", dir + "/state", "--disk-budget", "67108864",
                                                "--charger-io", "simulated", "--sim-ev", "none", "--log-level", "warning"], captureStdout: false, pipeStdin: false)
        #expect(waitUntil(.seconds(60)) { sim.records("approved").count > before })
        q.signal(SIGTERM)
        #expect(q.wait(timeout: .seconds(10)) == 0)
    }
}
