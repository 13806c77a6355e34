import Foundation
import Testing
import Platform

/// A real cloud-sim process (plain HTTP on loopback), driven through its standard input.
final class CloudProcess {
    let process: ChildProcess
    let recordPath: String
    let port: UInt16

    init(_ extra: [String] = []) throws {
        let exe = ChildProcess.executableDirectory() + "/cloud-sim"
        recordPath = FileManager.default.temporaryDirectory.appendingPathComponent("cloud-\(UUID().uuidString).jsonl").path
        process = try ChildProcess.spawn(exe, ["--port", "0", "--record", recordPath, "--exit-with-stdin"] + extra)
        guard let line = try process.readLine(timeout: .seconds(30)), let p = line.split(separator: ":").last.flatMap({ UInt16($0) }) else {
            throw HarnessError("cloud-sim did not announce its port")
        }
        port = p
    }

    deinit {
        process.terminate()
        try? FileManager.default.removeItem(atPath: recordPath)
    }

    var url: String { "http://127.0.0.1:\(port)" }

    /// Sends a directive and waits for its acknowledgement.
    func directive(_ d: String) throws {
        try process.writeLine(d)
        _ = try process.readLine(timeout: .seconds(10))
    }

    func records() -> [[String: Any]] {
        fileText(recordPath).split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    /// Requests the cloud processed (not failed, not a duplicate, not dropped).
    func processed() -> [[String: Any]] {
        records().filter { ($0["status"] as? Int) == 200 && ($0["duplicate"] as? Bool) == false && ($0["dropped"] as? Bool) != true }
    }
}

/// Checks every request body cloud-sim recorded against the official OCPP 2.1 schemas (the
/// shared script installs the `ocpp` package when missing).
func validateAgainstOCPPSchemas(_ records: [[String: Any]], in dir: String) throws {
    var list: [String] = []
    for (i, r) in records.enumerated() {
        guard let action = r["action"] as? String, let body = r["body"] else { continue }
        let path = dir + "/sent-\(i).json"
        try JSONSerialization.data(withJSONObject: body).write(to: URL(fileURLWithPath: path))
        list.append("\(action)\t\(path)")
    }
    try Data(list.joined(separator: "\n").utf8).write(to: URL(fileURLWithPath: dir + "/sent.tsv"))
    let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Scripts/ocpp-validate.py").path
    let v = try ChildProcess.spawn("/usr/bin/env", ["python3", script, dir + "/sent.tsv"], pipeStdin: false)
    var out: [String] = []
    while let line = try v.readLine(timeout: .seconds(120)) { out.append(line) }
    #expect(v.wait(timeout: .seconds(10)) == 0, "\(out.joined(separator: "\n"))")
    #expect(out.last?.hasPrefix("validated \(list.count) bad 0") == true, "\(out)")
}

/// The uplink end to end: the real daemon, terminal-sim on a pty and cloud-sim on loopback.
@Suite(.serialized) struct UplinkReplay {
    @Test func anOutageQueuesOfflineEventsAndReplayDeliversEachOnceInOrderAlsoAcrossAKill() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("uplink-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let tty = dir + "/ttyPSP"
        let sim = try SimProcess(["--pty", "--link", tty, "--family", "p6x", "--tap-delay", "50", "--auth-delay", "50"])
        let cloud = try CloudProcess(["--down"])
        let daemon = ChildProcess.executableDirectory() + "/paybridged"
        let args = ["--terminal", "serial:\(tty)", "--family", "p6x", "--state", dir + "/state", "--tariff", "EUR,100,40000,0",
                    "--cloud", cloud.url, "--cloud-protocol", "https", "--station", "CS-7", "--decision-timeout", "1", "--log-level", "warning",
                    "--charger-io", "simulated", "--sim-ev", "plug=100,charge=700,power=3600000"]

        // 1. The cloud is down for the whole of several sessions: the offline policy lets them charge.
        var p = try ChildProcess.spawn(daemon, args, captureStdout: false, pipeStdin: false)
        #expect(waitUntil(.seconds(90)) { sim.records("committed").count >= 2 }, "no sessions settled while the cloud was down")
        #expect(cloud.processed().isEmpty)

        // 2. Kill the daemon while it may be replaying, then bring the cloud back and restart.
        try cloud.directive("up")
        usleep(UInt32.random(in: 50_000...400_000))
        p.signal(SIGKILL)
        _ = p.wait(timeout: .seconds(10))
        p = try ChildProcess.spawn(daemon, args + ["--drain"], captureStdout: false, pipeStdin: false)
        #expect(p.wait(timeout: .seconds(90)) == 0, "drain did not finish")
        // 3. Restart once more with nothing to settle: the outbox finishes delivering, then stop.
        let committed = sim.records("committed")
        p = try ChildProcess.spawn(daemon, args + ["--charger-io", "simulated", "--sim-ev", "none"], captureStdout: false, pipeStdin: false)
        #expect(waitUntil(.seconds(90)) {
            cloud.processed().filter { $0["action"] as? String == "NotifySettlement" }.count >= committed.count
        }, "settlements not all delivered")
        try sim.control("quit")
        usleep(500_000)
        p.signal(SIGTERM)
        _ = p.wait(timeout: .seconds(10))

        let processed = cloud.processed()
        // Every message id was processed once; repeats only ever came back under the same key.
        let ids = processed.compactMap { $0["messageId"] as? String }
        #expect(Set(ids).count == ids.count, "a message was processed twice under different keys or twice at all")
        // Per transaction: strictly increasing seqNo, Started first, Ended last, then the settlement.
        var byTx: [String: [[String: Any]]] = [:]
        for r in processed {
            guard let body = r["body"] as? [String: Any] else { continue }
            let tx = ((body["transactionInfo"] as? [String: Any])?["transactionId"] as? String) ?? (body["transactionId"] as? String) ?? ""
            if !tx.isEmpty { byTx[tx, default: []].append(r) }
        }
        for (tx, msgs) in byTx {
            let seq = msgs.compactMap { (($0["body"] as? [String: Any])?["seqNo"] as? Int) }
            #expect(seq == Array(0..<seq.count), "\(tx): seqNo \(seq)")
            if let last = msgs.last { #expect(last["action"] as? String == "NotifySettlement" || msgs.count < 4, "\(tx) ends with \(last["action"] ?? "")") }
        }
        // Events that happened while the cloud was down say so.
        let offline = processed.filter { (($0["body"] as? [String: Any])?["offline"] as? Bool) == true }
        #expect(!offline.isEmpty, "no event was marked offline")
        // Everything the daemon sent validates against the official OCPP 2.1 schemas.
        try validateAgainstOCPPSchemas(cloud.records(), in: dir)

        // Every capture the terminal made has its settlement, for the same amount.
        let settlements = processed.filter { $0["action"] as? String == "NotifySettlement" && ($0["body"] as? [String: Any])?["status"] as? String == "Settled" }
        for c in committed {
            let amount = Decimal(c["amount"] as! Int) / 100
            #expect(settlements.contains { (($0["body"] as? [String: Any])?["settlementAmount"] as? NSNumber)?.decimalValue == amount },
                    "no settlement of \(amount) for terminal session \(c["sessionId"] ?? "")")
        }
    }
}

/// Station messages and permanent rejections, against the real daemon and cloud-sim.
@Suite(.serialized) struct UplinkStationMessages {
    @Test func startupAndStatusAreReportedAndARejectionIsDeadLetteredNotLost() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dead-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let tty = dir + "/ttyPSP"
        let sim = try SimProcess(["--pty", "--link", tty, "--tap-delay", "50", "--auth-delay", "50"])
        // The first StatusNotification is refused for good (400): a dead letter, never retried, never dropped silently.
        let cloud = try CloudProcess(["--fail4xx", "StatusNotification", "1"])
        let daemon = ChildProcess.executableDirectory() + "/paybridged"
        let p = try ChildProcess.spawn(daemon, ["--terminal", "serial:\(tty)", "--state", dir + "/state", "--tariff", "EUR,100,40000,0",
                                                "--cloud", cloud.url, "--cloud-protocol", "https", "--station", "CS-9", "--log-level", "warning", "--heartbeat", "1",
                                                "--charger-io", "simulated", "--sim-ev", "plug=100,charge=500,power=3600000"],
                                       captureStdout: false, pipeStdin: false)
        #expect(waitUntil(.seconds(60)) {
            cloud.processed().filter { $0["action"] as? String == "NotifySettlement" }.count >= 1
                && cloud.processed().filter { $0["action"] as? String == "StatusNotification" }.count >= 2
        })
        // Stop taking cards so the uplink goes quiet, then wait for a heartbeat.
        try sim.control("quit")
        #expect(waitUntil(.seconds(30)) { cloud.processed().contains { $0["action"] as? String == "Heartbeat" } })
        p.signal(SIGTERM)
        _ = p.wait(timeout: .seconds(10))
        _ = sim

        let dead = fileText(dir + "/state/dead-letters.jsonl").split(separator: "\n")
        #expect(dead.count == 1, "\(dead)")
        #expect(dead.first?.contains("\"action\":\"StatusNotification\"") == true)
        #expect(dead.first?.contains("\"status\":400") == true)
        // The rejected message was sent once and not retried.
        let rejected = cloud.records().filter { ($0["status"] as? Int) == 400 }
        #expect(rejected.count == 1)
        let startup = cloud.processed().filter { $0["action"] as? String == "SecurityEventNotification" }
        #expect(startup.contains { (($0["body"] as? [String: Any])?["type"] as? String) == "StartupOfTheDevice" })
        let statuses = cloud.processed().filter { $0["action"] as? String == "StatusNotification" }
            .compactMap { ($0["body"] as? [String: Any])?["connectorStatus"] as? String }
        #expect(statuses.contains("Occupied"))
        #expect(statuses.contains("Available"))
        #expect(waitUntil(.seconds(1)) { true })
        #expect(cloud.processed().contains { $0["action"] as? String == "Heartbeat" }, "no heartbeat after a quiet second")
        try validateAgainstOCPPSchemas(cloud.records(), in: dir)
    }
}
