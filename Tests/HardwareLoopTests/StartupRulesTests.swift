import Foundation
import Glibc
import Testing
import Platform

/// What the real daemon refuses, and what it does instead of inventing the world (issue 11:
/// charger I/O, configuration files, command-line values, the ledger's write probe, SIGHUP).
@Suite(.serialized) struct StartupRules {
    static var daemon: String { ChildProcess.executableDirectory() + "/paybridged" }

    func tempDir(_ name: String) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    /// Runs the daemon to its end with standard error in a file: (exit status, log).
    func run(_ args: [String], in dir: String, timeout: Duration = .seconds(20)) throws -> (Int32?, String) {
        let log = dir + "/run-\(UUID().uuidString.prefix(6)).log"
        let p = try ChildProcess.spawn("/bin/sh", ["-c", "exec \"$0\" \"$@\" 2>\"\(log)\"", Self.daemon] + args,
                                       captureStdout: false, pipeStdin: false)
        let status = p.wait(timeout: timeout)
        if status == nil { p.terminate() }
        return (status, fileText(log))
    }

    // MARK: item 0: no charger I/O, no payments

    /// A real configuration file with no charger I/O (the default) against terminal-sim with a
    /// card waiting: the daemon runs, says why it takes no payments, and never starts a session,
    /// so no amount is ever reserved on a card.
    @Test func withoutChargerIONoSessionStartsAndNothingIsReserved() throws {
        let b = try Bench(terminal: ["--session", "approve", "--session", "approve"], config: ["log.level = info"], ev: nil, keepLog: true)
        // Long enough for the link to come up and (wrongly) arm the terminal several times over.
        #expect(waitUntil(.seconds(30)) { b.daemonLog.contains("terminal link up") }, "link never came up:\n\(b.daemonLog)")
        usleep(3_000_000)
        #expect(b.sim.records("started").isEmpty, "the terminal was armed: \(b.sim.records("started"))")
        #expect(b.sim.records("approved").isEmpty && b.sim.records("partiallyApproved").isEmpty, "an amount was reserved")
        #expect(b.cloudBodies("Authorize").isEmpty)
        #expect(b.daemonLog.contains("no charger I/O configured (charger.io = none)"), "the log does not say why:\n\(b.daemonLog)")
        #expect(!b.daemonLog.contains("SIMULATED"))
        // Running, not refusing to start: a technician can still see the terminal.
        #expect(b.stop() == 0)
        // The cloud is told the connector is not available.
        let statuses = b.cloudBodies("StatusNotification").compactMap { $0["connectorStatus"] as? String }
        #expect(!statuses.isEmpty && !statuses.contains("Available"), "connector statuses: \(statuses)")
    }

    /// The same under systemd: STATUS= says no payments are taken, and why.
    @Test func withoutChargerIOTheStatusLineSaysSo() throws {
        let dir = try tempDir("noio-notify")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let sock = try SystemdNotify().bindDatagram(dir + "/notify")
        defer { close(sock) }
        let tty = dir + "/ttyPSP"
        let sim = try SimProcess(["--pty", "--link", tty])
        var env = ProcessInfo.processInfo.environment.map { "\($0.key)=\($0.value)" }
        env.append("NOTIFY_SOCKET=\(dir)/notify")
        let p = try ChildProcess.spawn(Self.daemon, ["--terminal", "serial:\(tty)", "--state", dir + "/state", "--log-level", "error"],
                                       environment: env, captureStdout: false, pipeStdin: false)
        var messages: [String] = []
        #expect(waitUntil(.seconds(30)) {
            messages += SystemdNotify().receive(sock)
            return messages.contains { $0.contains("READY=1") && $0.contains("NOT TAKING PAYMENTS") }
                && messages.contains { $0.contains("terminal link up") && $0.contains("NOT TAKING PAYMENTS: no charger I/O") }
        }, "\(messages)")
        p.signal(SIGTERM)
        #expect(p.wait(timeout: .seconds(10)) == 0)
        _ = sim
    }

    /// Simulated vehicles exist only when simulated charger I/O is chosen explicitly.
    @Test func simulatedVehiclesNeedSimulatedChargerIO() throws {
        let dir = try tempDir("simev")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (status, log) = try run(["--terminal", "serial:\(dir)/tty", "--state", dir + "/state", "--sim-ev", "plug=100"], in: dir)
        #expect(status == 2, "\(log)")
        #expect(log.contains("--sim-ev needs simulated charger I/O"), "\(log)")
    }

    // MARK: item 8: a configuration that cannot be read is refused, never the defaults

    @Test func checkConfigRefusesADirectory() throws {
        let dir = try tempDir("confdir")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/paybridge.conf", withIntermediateDirectories: true)
        let (status, log) = try run(["--check-config", dir + "/paybridge.conf"], in: dir)
        #expect(status == 2, "a directory was checked as a configuration: \(log)")
        #expect(log.contains("is a directory, not a regular file"), "\(log)")
        let (startStatus, startLog) = try run(["--config", dir + "/paybridge.conf"], in: dir)
        #expect(startStatus == 2, "\(startLog)")
    }

    /// SIGHUP after the file was replaced by a directory: refused, nothing reset. The scan the
    /// terminal shows keeps the configured pre-authorisation (a reload to the defaults would
    /// re-arm it with 5000).
    @Test func reloadOfAnUnreadableFileChangesNothing() throws {
        let b = try Bench(terminal: ["--fallback", "nocard"], config: ["payment.preauth = 1234", "log.level = info"],
                          ev: "plug=100,charge=500,power=3600000", keepLog: true)
        #expect(waitUntil(.seconds(30)) { !b.sim.records("started").isEmpty }, "never armed:\n\(b.daemonLog)")
        let conf = b.dir + "/paybridge.conf"
        try FileManager.default.removeItem(atPath: conf)
        try FileManager.default.createDirectory(atPath: conf, withIntermediateDirectories: true)
        b.daemon?.signal(SIGHUP)
        #expect(waitUntil(.seconds(10)) { b.daemonLog.contains("not a regular file") }, "\(b.daemonLog)")
        usleep(1_500_000)
        let amounts = b.sim.records("started").compactMap { $0["amount"] as? Int }
        #expect(!amounts.isEmpty && amounts.allSatisfy { $0 == 1234 }, "the terminal showed \(amounts)")
        #expect(!b.daemonLog.contains("SIGHUP: reloaded"), "\(b.daemonLog)")
        #expect(b.stop() == 0)
    }

    // MARK: items 14 and 15: command-line values pass the file's checks and never trap

    @Test(arguments: [
        (["--terminal", "tcp:10.0.0.5:3201:99"], "neither ADDRESS:PORT nor an IPv6 address"),
        (["--terminal", "tcp:[::1"], "'[' without ']'"),
        (["--terminal", "tcp:[::1]x"], "expected ':PORT' after ']'"),
        (["--terminal", "tcp:charger.example:3201"], "host names are not resolved"),
        (["--terminal", "tcp:127.0.0.1:70000"], "terminal.port"),
        (["--terminal", "serial:relative/tty"], "absolute device path"),
        (["--cloud", "http://remote-host/x", "--terminal", "serial:/dev/null"], "plain http only to"),
        (["--terminal", "serial:/dev/null", "--state", "/tmp/x", "--charger-io", "simulated", "--sim-ev", "power=9223372036854775807"], "power=9223372036854775807"),
        (["--terminal", "serial:/dev/null", "--state", "/tmp/x", "--charger-io", "simulated", "--sim-ev", "plug=-1"], "plug=-1"),
        (["--terminal", "serial:/dev/null", "--preauth", "99999999999999999999"], "payment.preauth"),
        (["--terminal", "serial:/dev/null", "--tariff", "EUR,1,9223372036854775807,0"], "tariff.energy_per_kwh_milli"),
        (["--terminal", "serial:/dev/null", "--plug-timeout", "9223372036854775807"], "timeouts.plug_in_seconds"),
        (["--terminal", "serial:/dev/null", "--heartbeat", "9223372036854775807"], "cloud.heartbeat_seconds"),
        (["--terminal", "serial:/dev/null", "--disk-budget", "9223372036854775807"], "state.disk_budget_bytes"),
        (["--terminal", "serial:/dev/null", "--charger-io", "gpio"], "charger.io = gpio needs charger.gpio.1.relay"), (["--terminal", "serial:/dev/null", "--charger-io", "relays"], "expected none, simulated, socket or gpio"),
    ])
    func badCommandLineValuesAreRefusedWithAReason(args: [String], reason: String) throws {
        let dir = try tempDir("flags")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (status, log) = try run(args, in: dir)
        // Exit status 2 with a message: neither accepted, nor a trap (which would be a signal).
        #expect(status == 2, "\(args): status \(String(describing: status)):\n\(log)")
        #expect(log.contains(reason), "\(args):\n\(log)")
    }

    /// An IPv6 terminal address in brackets reaches the terminal at that address and port.
    @Test func bracketedIPv6TerminalAddressIsUsedWhole() throws {
        let dir = try tempDir("ipv6")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // A listener on [::1] standing in for an Apollo: the daemon must connect to it.
        let listener = try TCPListener.listen(host: "::1", port: 0)
        let port = listener.port
        let log = dir + "/daemon.log"
        let p = try ChildProcess.spawn("/bin/sh", ["-c", "exec \"$0\" \"$@\" 2>\"\(log)\"", Self.daemon,
                                                   "--terminal", "tcp:[::1]:\(port)", "--log-level", "debug"],
                                       captureStdout: false, pipeStdin: false)
        defer { p.terminate() }
        var accepted: FileDescriptor?
        #expect(waitUntil(.seconds(20)) {
            accepted = (try? listener.accept()) ?? nil
            return accepted != nil
        }, "no connection to [::1]:\(port):\n\(fileText(log))")
        accepted?.close()
        listener.close()
    }

    // MARK: item 11: a ledger that cannot take a record refuses the start

    static let canMount: Bool = {
        let probe = FileManager.default.temporaryDirectory.appendingPathComponent("mount-probe-\(getpid())").path
        try? FileManager.default.createDirectory(atPath: probe, withIntermediateDirectories: true)
        defer { rmdir(probe) }
        guard mount("tmpfs", probe, "tmpfs", 0, "size=64k") == 0 else { return false }
        umount(probe)
        return true
    }()

    @Test(.enabled(if: canMount, "mounting a tmpfs needs CAP_SYS_ADMIN"))
    func readOnlyStateDirectoryRefusesTheStart() throws {
        let dir = try tempDir("rostate")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let state = dir + "/state"
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        #expect(mount("tmpfs", state, "tmpfs", 0, "size=16m,mode=0750") == 0, "mount: errno \(errno)")
        defer { umount(state) }
        // A ledger that worked (a drained run leaves its segment), then the file system goes
        // read-only, as ext4 does with errors=remount-ro.
        let (drained, drainLog) = try run(["--terminal", "serial:\(dir)/tty", "--state", state, "--drain"], in: dir)
        #expect(drained == 0, "\(drainLog)")
        #expect(mount("tmpfs", state, "tmpfs", UInt(MS_REMOUNT | MS_RDONLY), "size=16m,mode=0750") == 0, "remount: errno \(errno)")
        let sock = try SystemdNotify().bindDatagram(dir + "/notify")
        defer { close(sock) }
        var env = ProcessInfo.processInfo.environment.map { "\($0.key)=\($0.value)" }
        env.append("NOTIFY_SOCKET=\(dir)/notify")
        let log = dir + "/daemon.log"
        let p = try ChildProcess.spawn("/bin/sh", ["-c", "exec \"$0\" \"$@\" 2>\"\(log)\"", Self.daemon,
                                                   "--terminal", "serial:\(dir)/tty", "--state", state],
                                       environment: env, captureStdout: false, pipeStdin: false)
        let status = p.wait(timeout: .seconds(20))
        if status == nil { p.terminate() }
        // Refused at the ledger's open (its segment cannot be opened for writing: 2) or at the
        // write probe (74); either way before READY, and saying so.
        #expect(status == 2 || status == 74, "the daemon started on a read-only state directory:\n\(fileText(log))")
        let messages = SystemdNotify().receive(sock)
        #expect(!messages.contains { $0.contains("READY=1") }, "\(messages)")
        #expect(fileText(log).contains("ledger") && fileText(log).contains("Read-only file system"), "\(fileText(log))")
    }

    @Test(.enabled(if: canMount, "mounting a tmpfs needs CAP_SYS_ADMIN"))
    func fullStateDirectoryRefusesTheStart() throws {
        let dir = try tempDir("fullstate")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let state = dir + "/state"
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        #expect(mount("tmpfs", state, "tmpfs", 0, "size=256k,mode=0750") == 0, "mount: errno \(errno)")
        defer { umount(state) }
        try FileManager.default.createDirectory(atPath: state + "/ledger", withIntermediateDirectories: true)
        // Fill it: what is left cannot hold a segment header.
        let filler = open(state + "/filler", O_WRONLY | O_CREAT, 0o600)
        let block = [UInt8](repeating: 0xAB, count: 4096)
        while block.withUnsafeBytes({ write(filler, $0.baseAddress, $0.count) }) > 0 {}
        close(filler)
        let (status, log) = try run(["--terminal", "serial:\(dir)/tty", "--state", state], in: dir)
        #expect(status == 74, "status \(String(describing: status)):\n\(log)")
        #expect(log.contains("cannot take a record"), "\(log)")
    }

    // MARK: SIGHUP at any time

    /// Whether the kernel shows SIGHUP ignored or caught by `pid` (/proc/PID/status).
    static func handlesOrIgnoresSIGHUP(_ pid: pid_t) -> Bool {
        let status = fileText("/proc/\(pid)/status")
        for line in status.split(separator: "\n") where line.hasPrefix("SigIgn:") || line.hasPrefix("SigCgt:") {
            if let mask = UInt64(line.split(separator: "\t").last ?? "", radix: 16), mask & 1 != 0 { return true }
        }
        return false
    }

    /// SIGHUP in the first milliseconds (before the loop's handler exists) and during the run:
    /// the daemon stays up, with and without a state directory.
    @Test(arguments: [true, false])
    func sighupNeverEndsTheDaemon(withState: Bool) throws {
        let dir = try tempDir("hup")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let tty = dir + "/ttyPSP"
        let sim = try SimProcess(["--pty", "--link", tty])
        let log = dir + "/daemon.log"
        let args = ["--terminal", "serial:\(tty)", "--log-level", "info"] + (withState ? ["--state", dir + "/state"] : [])
        // Spawned directly (no shell in between). Between exec and the first line of main the
        // dynamic loader runs and nothing can be done about a signal; from main's first line on,
        // SIGHUP must never be fatal. The kernel shows when that line has run (SigIgn or SigCgt);
        // from then on, SIGHUPs every 5 ms for 200 ms, through argument parsing and recovery.
        let p = try ChildProcess.spawn(Self.daemon, args, captureStdout: false, pipeStdin: false, standardErrorPath: log)
        waitUntil(.seconds(5)) { Self.handlesOrIgnoresSIGHUP(p.pid) }
        for _ in 0..<40 { p.signal(SIGHUP); usleep(5_000) }
        #expect(waitUntil(.seconds(20)) { fileText(log).contains("terminal link up") }, "\(fileText(log))")
        p.signal(SIGHUP)
        usleep(300_000)
        #expect(p.wait(timeout: .milliseconds(10)) == nil, "SIGHUP ended the daemon:\n\(fileText(log))")
        #expect(fileText(log).contains("SIGHUP"), "\(fileText(log))")
        p.signal(SIGTERM)
        #expect(p.wait(timeout: .seconds(10)) == 0)
        _ = sim
    }
}
