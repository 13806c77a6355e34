import Foundation
import Testing
import Platform
import Timebase

/// Tests/Scripts/test-proxy.py: a forward proxy on loopback that prints every connection.
final class ProxyProcess {
    let process: ChildProcess
    let port: UInt16

    init() throws {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Scripts/test-proxy.py").path
        process = try ChildProcess.spawn("/usr/bin/env", ["python3", script], pipeStdin: false)
        guard let line = try process.readLine(timeout: .seconds(10)), let p = UInt16(line) else { throw HarnessError("proxy: no port") }
        port = p
    }

    deinit { process.terminate() }

    var url: String { "http://127.0.0.1:\(port)" }

    func lines(within wait: Duration) throws -> [String] {
        var out: [String] = []
        let deadline = MonotonicClock.now() + wait
        while MonotonicClock.now() < deadline, let line = try process.readLine(timeout: deadline - MonotonicClock.now()) { out.append(line) }
        return out
    }
}

/// Issue 11 items 4 and 7 with the real daemon, terminal-sim and cloud-sim.
@Suite(.serialized) struct TransportSecretsTests {
    /// Every proxy variable libcurl reads, pointing at a proxy that would see (and refuse) the
    /// cloud's traffic: the card decision still goes straight to the cloud and the proxy sees
    /// not one connection.
    @Test func proxyEnvironmentVariablesAreIgnored() throws {
        let proxy = try ProxyProcess()
        var environment = ProcessInfo.processInfo.environment.filter { !$0.key.lowercased().hasSuffix("_proxy") }
        for name in ["http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"] { environment[name] = proxy.url }
        let b = try Bench(terminal: ["--session", "approve", "--fallback", "nocard"], ev: "plug=100,charge=500,power=3600000",
                          environment: environment.map { "\($0.key)=\($0.value)" })
        #expect(waitUntil(.seconds(60)) { !b.settlements("Settled").isEmpty }, "no settlement reached the cloud")
        #expect(b.stop() == 0)
        #expect(b.cloudBodies("Authorize").count == 1, "the card decision did not reach the cloud directly")
        let seen = try proxy.lines(within: .milliseconds(300))
        #expect(seen.isEmpty, "the proxy saw the daemon's traffic: \(seen)")
    }

    /// `localhost` is the loopback addresses whatever NSS says: in a mount namespace whose
    /// /etc/hosts maps it to a TEST-NET address, the daemon still reaches cloud-sim on 127.0.0.1.
    @Test func localhostInTheCloudURLIsNotResolvedThroughNSS() throws {
        let hosts = FileManager.default.temporaryDirectory.appendingPathComponent("hosts-\(UUID().uuidString.prefix(8))").path
        try Data("192.0.2.1 localhost\n".utf8).write(to: URL(fileURLWithPath: hosts))
        defer { try? FileManager.default.removeItem(atPath: hosts) }
        // Can this machine make a mount namespace at all (root, unshare(1))?
        let probe = try ChildProcess.spawn("/usr/bin/unshare", ["-m", "/bin/sh", "-c", "mount --bind \(hosts) /etc/hosts && getent hosts localhost"])
        let answer = try probe.readLine(timeout: .seconds(10))
        guard probe.wait(timeout: .seconds(10)) == 0, answer?.hasPrefix("192.0.2.1") == true else {
            Issue.record("cannot make a mount namespace with its own /etc/hosts here: \(answer ?? "no answer")"); return
        }
        let cloud = try CloudProcess()
        let b = try Bench(terminal: ["--session", "approve", "--fallback", "nocard"],
                          config: ["cloud.url = http://localhost:\(cloud.port)", "cloud.protocol = https", "timeouts.decision_seconds = 5", "cloud.offline_policy = deny"],
                          ev: "plug=100,charge=500,power=3600000",
                          launcher: ["/usr/bin/unshare", "-m", "/bin/sh", "-c", "mount --bind \(hosts) /etc/hosts && exec \"$0\" \"$@\""])
        // Bench's own cloud-sim is not the one named: the daemon talks to `cloud` only.
        #expect(waitUntil(.seconds(60)) { cloud.processed().contains { $0["action"] as? String == "Authorize" } },
                "the Authorize for http://localhost did not reach 127.0.0.1")
        #expect(waitUntil(.seconds(60)) { !b.sim.records("committed").isEmpty }, "the offline policy (deny) refused the card")
        #expect(b.stop() == 0)
    }

    /// A symlink named dead-letters.jsonl in the state directory: the daemon (root here) does
    /// not write through it, says why in its log, and the dead letter stays in the ledger.
    @Test func aDeadLetterIsNeverWrittenThroughASymlink() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("deadletter-\(UUID().uuidString.prefix(8))").path
        let state = root + "/state"
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o750])
        defer { try? FileManager.default.removeItem(atPath: root) }
        let victim = root + "/victim"
        try Data("precious\n".utf8).write(to: URL(fileURLWithPath: victim))
        #expect(symlink(victim, state + "/dead-letters.jsonl") == 0)
        // The cloud rejects the first TransactionEvent for good: a dead letter.
        let b = try Bench(terminal: ["--session", "approve", "--fallback", "nocard"], cloud: ["--fail4xx", "TransactionEvent", "1"],
                          config: ["state.directory = \(state)", "log.level = info"], ev: "plug=100,charge=500,power=3600000", keepLog: true)
        #expect(waitUntil(.seconds(60)) { b.cloud.records().contains { $0["status"] as? Int == 400 } }, "nothing was rejected")
        #expect(waitUntil(.seconds(30)) { b.daemonLog.contains("dead letters:") }, "the refusal is not in the log")
        #expect(b.stop() == 0)
        #expect(fileText(victim) == "precious\n", "the daemon wrote through the symlink")
        #expect(b.daemonLog.contains("symbolic link"), "\(b.daemonLog.suffix(2000))")
        var info = stat()
        #expect(lstat(state + "/dead-letters.jsonl", &info) == 0 && info.st_mode & S_IFMT == S_IFLNK)
    }

    /// A state directory anyone may write to: the daemon refuses to start and says why.
    @Test func aStateDirectoryOthersMayWriteStopsTheDaemon() throws {
        let state = FileManager.default.temporaryDirectory.appendingPathComponent("open-state-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        #expect(chmod(state, 0o777) == 0)
        defer { try? FileManager.default.removeItem(atPath: state) }
        let exe = ChildProcess.executableDirectory() + "/paybridged"
        let daemon = try ChildProcess.spawn("/bin/sh", ["-c", "exec \"$0\" \"$@\" 2>&1", exe, "--terminal", "tcp:127.0.0.1:1", "--state", state,
                                                        "--charger-io", "simulated", "--sim-ev", "none"], pipeStdin: false)
        defer { daemon.terminate() }
        var lines: [String] = []
        while let line = try daemon.readLine(timeout: .seconds(10)) { lines.append(line) }
        #expect(daemon.wait(timeout: .seconds(10)) == 2, "\(lines)")
        #expect(lines.contains { $0.contains("state directory refused") && $0.contains("777") }, "\(lines)")
        #expect(!FileManager.default.fileExists(atPath: state + "/ledger"), "a ledger was made in it")
    }
}
