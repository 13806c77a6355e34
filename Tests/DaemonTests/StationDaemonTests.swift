import Configuration
import Daemon
import FakeTerminal
import Foundation
import Ledger
import PaymentEngine
import Platform
import Testing
import Timebase

// The Daemon library driven in process: the arguments as paybridged parses them, and the station
// daemon booted on a temporary state directory with a FakeTerminal (no child process, no PSP).

/// A fresh state directory (0755, the test's own: `StateDirectory.prepare` takes it).
func stateDirectory() throws -> String {
    let dir = NSTemporaryDirectory() + "station-daemon-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}

/// The entries of one session approved on connector 0 for 5000 (terminal handle 100), never
/// plugged in: what the ledger holds when the daemon stopped between approval and the plug.
func approvedSessionEntries() -> [LedgerEntry] {
    var config = EngineConfig()
    config.tariff = Tariff(currency: "EUR", energyPricePerKWh: 40_000)
    var e = PaymentEngine(config: config)
    var t = MonotonicClock.now() + .seconds(-60)
    var entries: [LedgerEntry] = []
    func at() -> Moment { Moment(monotonic: t, wallMillis: 1_700_000_000_000 + Int64(t.milliseconds)) }
    func keep(_ fx: [EngineEffect]) -> [EngineEffect] {
        for f in fx { if case .persist(let x) = f { entries.append(x) } }
        return fx
    }
    _ = keep(e.handle(.terminal(.ready([])), at: at()))
    t = t + .seconds(1)
    _ = keep(e.handle(.terminal(.cancelled), at: at()))
    t = t + .seconds(1)
    let fx = keep(e.tick(at: at()))
    guard let arm = fx.compactMap({ f -> (CommandID, TerminalCommand)? in
        if case let .terminal(id, cmd) = f, case .arm = cmd { return (id, cmd) } else { return nil }
    }).first else { fatalError("the engine did not arm the terminal: \(fx)") }
    _ = keep(e.handle(.terminal(.completed(arm.0, arm.1, .ok)), at: at()))
    _ = keep(e.handle(.terminal(.cardRead(CardIdentity(maskedPAN: "412345******0000", hash: [1]))), at: at()))
    let k = e.sessions.keys.max()!
    _ = keep(e.handle(.cloud(k, CardDecision(allowed: true)), at: at()))
    _ = keep(e.handle(.terminal(.approved(TerminalHandle(reference: 100), amount: 5000, pspRef: [])), at: at()))
    return entries
}

/// Writes `entries` durably into the ledger of state directory `dir`.
func writeLedger(_ dir: String, _ entries: [LedgerEntry]) throws {
    let ledger = try Ledger.open(directory: dir + "/ledger", options: LedgerOptions()).ledger
    for e in entries { _ = try ledger.append(kind: e.kind, body: e.encodeBody()) }
    try ledger.sync()
    ledger.close()
}

/// The arguments of `paybridged --config FILE`, for a file written from `config`.
func arguments(writing config: DaemonConfig, to path: String) throws -> DaemonArguments {
    try config.fileText.write(toFile: path, atomically: true, encoding: .utf8)
    guard case .run(let a) = try DaemonArguments.parse(["--config", path]) else { throw TestFailure("not a run command") }
    return a
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

@Suite(.serialized) struct StationDaemonBoot {
    /// An approval the ledger holds open and that never reached a plug: boot recovers it and,
    /// once the terminal is up, the release reaches the terminal for that very handle.
    @Test func bootRecoversAnOpenApprovalAndReleasesItOnTheTerminal() throws {
        let dir = try stateDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try writeLedger(dir, approvedSessionEntries())
        var config = DaemonConfig()
        config.stateDirectory = dir
        let a = try arguments(writing: config, to: dir + "/paybridge.conf")
        let loop = try EventLoop()
        let terminal = FakeTerminal()
        let daemon = StationDaemon(loop: loop, arguments: a, terminal: .port(terminal))
        try daemon.boot()
        defer { daemon.finish() }
        #expect(daemon.recovered?.report.openSessions == 1)
        #expect(daemon.recovered?.report.toRelease == 1)
        #expect(terminal.started)
        // charger.io = none: open sessions are settled, no new ones taken.
        #expect(daemon.station.notTakingPayments != nil)
        terminal.deliver([.ready([])])
        let releases = terminal.commands.filter { if case .release(let h) = $0.command { return h == TerminalHandle(reference: 100) } else { return false } }
        #expect(releases.count == 1, "commands: \(terminal.commands.map(\.command))")
        // Without charger I/O the terminal is never armed for a new card.
        #expect(terminal.commands.allSatisfy { if case .arm = $0.command { return false } else { return true } }, "armed without charger I/O")
        daemon.stop()
    }

    /// A state directory others may write to is refused before any ledger is opened (exit 2 in paybridged).
    @Test func aStateDirectoryOthersMayWriteIsRefused() throws {
        let dir = try stateDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        chmod(dir, 0o777)
        var config = DaemonConfig()
        config.stateDirectory = dir
        let a = try arguments(writing: config, to: NSTemporaryDirectory() + "pb-\(UUID().uuidString.prefix(8)).conf")
        let daemon = StationDaemon(loop: try EventLoop(), arguments: a, terminal: .port(FakeTerminal()))
        #expect(throws: StationDaemonError.self) { try daemon.boot() }
        #expect(daemon.station == nil)
        #expect(!FileManager.default.fileExists(atPath: dir + "/ledger"))
    }
}

@Suite(.serialized) struct StationDaemonReload {
    /// A daemon booted from a file in a fresh state directory, and the file's path and settings.
    func booted() throws -> (StationDaemon, FakeTerminal, path: String, config: DaemonConfig, dir: String) {
        let dir = try stateDirectory()
        var config = DaemonConfig()
        config.stateDirectory = dir
        config.engine.preauthAmount = 5000
        let path = dir + "/paybridge.conf"
        let a = try arguments(writing: config, to: path)
        let terminal = FakeTerminal()
        let daemon = StationDaemon(loop: try EventLoop(), arguments: a, terminal: .port(terminal), commandLine: ["--config", path])
        try daemon.boot()
        return (daemon, terminal, path, config, dir)
    }

    @Test func aChangedTariffAndPreauthApplyToTheEngine() throws {
        let (daemon, _, path, config, dir) = try booted()
        defer { daemon.finish(); try? FileManager.default.removeItem(atPath: dir) }
        var c = config
        c.engine.preauthAmount = 2500
        c.engine.tariff = Tariff(currency: "EUR", startFee: 100, energyPricePerKWh: 55_000, timePricePerMinute: 10)
        try c.fileText.write(toFile: path, atomically: true, encoding: .utf8)
        let change = try #require(daemon.reloadFromFile())
        #expect(change.applied == ["payment.preauth", "tariff.start_fee", "tariff.energy_per_kwh_milli", "tariff.time_per_minute_milli"])
        #expect(change.needsRestart.isEmpty)
        #expect(daemon.station.engine.config.preauthAmount == 2500)
        #expect(daemon.station.engine.config.tariff == c.engine.tariff)
        #expect(daemon.running.engine.preauthAmount == 2500)
    }

    @Test func connectorsAndStateDirectoryAreRefusedAndNamed() throws {
        let (daemon, _, path, config, dir) = try booted()
        defer { daemon.finish(); try? FileManager.default.removeItem(atPath: dir) }
        var c = config
        c.engine.connectors = 2
        c.stateDirectory = dir + "/elsewhere"
        c.engine.preauthAmount = 3000
        try c.fileText.write(toFile: path, atomically: true, encoding: .utf8)
        let change = try #require(daemon.reloadFromFile())
        #expect(change.needsRestart == ["charger.connectors", "state.directory"])
        #expect(change.summary.hasSuffix("changed but kept until the next start: charger.connectors, state.directory"), "\(change.summary)")
        #expect(change.applied == ["payment.preauth"])
        #expect(daemon.station.engine.config.connectors == 1)
        #expect(daemon.running.engine.connectors == 1)
        #expect(daemon.running.stateDirectory == dir)
        #expect(daemon.station.engine.config.preauthAmount == 3000)
    }

    @Test func aFileWithProblemsChangesNothing() throws {
        let (daemon, _, path, config, dir) = try booted()
        defer { daemon.finish(); try? FileManager.default.removeItem(atPath: dir) }
        var c = config
        c.engine.preauthAmount = 2500
        // A good preauth, then a line the parser refuses: the whole file is refused.
        try (c.fileText + "payment.preauth_typo = 1\n").write(toFile: path, atomically: true, encoding: .utf8)
        #expect(daemon.reloadFromFile() == nil)
        #expect(daemon.station.engine.config.preauthAmount == 5000)
        #expect(daemon.running.engine.preauthAmount == 5000)
        // An unreadable file (a directory in its place) changes nothing either.
        try FileManager.default.removeItem(atPath: path)
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        #expect(daemon.reloadFromFile() == nil)
        #expect(daemon.station.engine.config.preauthAmount == 5000)
    }
}

@Suite struct DaemonArgumentParsing {
    func refusal(_ args: [String]) -> ArgumentError? {
        do {
            _ = try DaemonArguments.parse(args)
            return nil
        } catch { return error }
    }

    /// The file refuses plain http to another host, so the flag does too (exit 2 in paybridged).
    @Test func plainHTTPToAnotherHostIsRefused() {
        let e = refusal(["--terminal", "tcp:127.0.0.1", "--state", "/tmp/x", "--cloud", "http://remote-host"])
        guard case .refused(let message, _)? = e else { Issue.record("accepted or not refused: \(String(describing: e))"); return }
        #expect(message.hasPrefix("--cloud http://remote-host: cloud.url: "), "\(message)")
        // Loopback is allowed.
        #expect(refusal(["--terminal", "tcp:127.0.0.1", "--state", "/tmp/x", "--cloud", "http://127.0.0.1:8080", "--cloud-protocol", "https"]) == nil)
    }

    /// A terminal host must be an address: the daemon resolves no names.
    @Test func aTerminalNamedByHostNameIsRefused() {
        let e = refusal(["--terminal", "tcp:terminal.local"])
        guard case .refused(let message, _)? = e else { Issue.record("accepted or not refused: \(String(describing: e))"); return }
        #expect(message.hasPrefix("--terminal terminal.local: terminal.host: "), "\(message)")
        #expect(message.contains("host names are not resolved"), "\(message)")
        #expect(refusal(["--terminal", "tcp:192.0.2.7:3201"]) == nil)
    }

    @Test func commandsAreReturnedNotCarriedOut() throws {
        guard case .checkConfig(let path) = try DaemonArguments.parse(["--check-config", "/x.conf", "--bogus"]) else { Issue.record("not check-config"); return }
        #expect(path == "/x.conf")
        guard case .help = try DaemonArguments.parse(["--terminal", "tcp:127.0.0.1", "--help"]) else { Issue.record("not help"); return }
        guard case .demo(let d) = try DaemonArguments.parse(["--demo-dir", "/tmp/d"]) else { Issue.record("not demo"); return }
        #expect(d.demoDir == "/tmp/d")
        guard case .run(let r) = try DaemonArguments.parse(["--terminal", "tcp:127.0.0.1", "--preauth", "1200"]) else { Issue.record("not run"); return }
        #expect(r.stateDir == nil && r.engine.preauthAmount == 1200)
        // An unknown flag asks for the usage after the reason.
        guard case .refused(_, usage: true)? = refusal(["--terminal", "tcp:127.0.0.1", "--bogus"]) else { Issue.record("unknown flag accepted"); return }
    }

    /// A configuration file with problems is refused as a whole, each problem with its line.
    @Test func aFileWithProblemsIsRefusedWithItsLines() throws {
        let path = NSTemporaryDirectory() + "pb-\(UUID().uuidString.prefix(8)).conf"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try "payment.preauth = lots\n".write(toFile: path, atomically: true, encoding: .utf8)
        guard case .configProblems(let p, let problems)? = refusal(["--config", path]) else { Issue.record("file accepted"); return }
        #expect(p == path && problems.count >= 1)
        guard case .unreadableConfig? = refusal(["--config", path + ".missing"]) else { Issue.record("missing file accepted"); return }
    }
}
