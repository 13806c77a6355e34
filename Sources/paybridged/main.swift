// paybridged: bridges the charger's card terminal to the charging platform.
//
// With a state directory (the configuration file always has one) it runs the whole bridge on
// one event loop: the PSP link, the payment engine with its write-ahead ledger, the relays and
// the uplink (Station). Without one it runs the link alone and logs what the terminal reports,
// which is how a technician checks the cable. `--demo` runs everything against the simulators.
import ChargerPort
import ChargerLine
import Glibc
import Platform
import PSPCodec
import PSPLink
import Ledger
import PaymentEngine
import PSPTerminal
import CloudHTTP
import Configuration
import Station
import DaemonLog
import Uplink
import Timebase
import Transport

let usage = """
usage: paybridged [--config FILE] [flags that override it]   (default FILE: /etc/paybridge/paybridge.conf)
       paybridged --check-config FILE
       paybridged --terminal serial:PATH[,BAUD 8N1] | tcp:ADDRESS[:PORT] | tcp:[IPV6]:PORT [--family apollo|p6x] [--log-level LEVEL]
                  [--state DIR [--connectors N] [--charger-io none|simulated] [--preauth MINOR] [--tariff CUR,START,PER_KWH_MILLI,PER_MIN_MILLI]
                   [--plug-timeout SECONDS] [--sim-ev plug=MS,charge=MS,power=W|none] [--relay-history FILE] [--disk-budget BYTES] [--drain]
                   [--cloud URL --station ID [--ca-file F] [--client-cert F --client-key F] [--token-file F] [--proxy http://HOST:PORT]
                    [--offline-policy allow|deny] [--decision-timeout SECONDS] [--heartbeat SECONDS]]]
       paybridged --demo [--demo-dir DIR] [--log-level LEVEL]

--terminal   where the payment terminal is (serial device, or an Apollo on TCP port 3201 by default)
--family     apollo (default) or p6x
--demo       run against an embedded simulated terminal on a pseudo-terminal and show a few sessions
--demo-dir   keep the demo's files (the simulator's record) in DIR
--log-level  error, warning, info (default) or debug
--state      run the payment engine with its write-ahead ledger in DIR (without it: the terminal link only)
--charger-io where relays, plugs and meter come from: none (default: no payments are taken) or simulated (demo and tests only)
--sim-ev     simulated vehicles on the connectors (needs --charger-io simulated)
--drain      take no new cards: settle the sessions the ledger holds open, then exit
--cloud      the platform's base URL: messages go to {URL}/{station}/{Action} (https; plain http only to loopback)
"""

/// Where the configuration is read from when the command line names neither a file nor a terminal.
let defaultConfigPath = "/etc/paybridge/paybridge.conf"

func die(_ message: String) -> Never {
    // The usage is several lines by design; the message before it is one escaped line.
    if message.hasSuffix("\n" + usage) {
        Log.error("paybridged: " + message.dropLast(usage.count + 1))
        Log.lines(.error, usage)
    } else {
        Log.error("paybridged: \(message)")
    }
    exit(2)
}

/// The daemon's settings: a configuration (the file's, or the defaults when the command line
/// names only a terminal) with the command line's flags applied over it. Every flag that has a
/// configuration key is that key's override and passes the same check (`ConfigParser.apply`),
/// so a flag can never accept what the file refuses.
struct Arguments {
    var config = DaemonConfig()
    /// A terminal was named (by the file, which always names one, or by `--terminal`).
    var terminalGiven = false
    /// The payment engine runs (a file always has a state directory; flags need `--state`).
    var stateGiven = false
    var demo = false
    var demoDir: String?
    /// `--sim-ev`, passed to charger-sim as it was given (charger-sim checks it, `checkChargerSim`).
    var ev: String?
    var relayHistory: String?
    var drain = false
    var configPath: String?

    var endpoint: Endpoint? {
        guard terminalGiven else { return nil }
        return config.transport == .serial ? .serial(path: config.device, settings: config.line) : .tcp(host: config.host, port: config.port)
    }
    var family: TerminalFamily { config.terminalFamily == .apollo ? .apollo : .p6x }
    var stateDir: String? { stateGiven ? config.stateDirectory : nil }
    var engine: EngineConfig { config.engine }
    var ledgerOptions: LedgerOptions {
        var o = LedgerOptions()
        o.diskBudgetBytes = config.diskBudgetBytes
        return o
    }
    var cloudURL: String? { config.cloudURL }
    var stationId: String { config.stationId }
    var tls: TLSSettings { TLSSettings(caFile: config.caFile, clientCertificate: config.clientCertificate, clientKey: config.clientKey) }
    var tokenFile: String? { config.tokenFile }
    var heartbeat: Duration? { config.heartbeatSeconds == 0 ? nil : .seconds(config.heartbeatSeconds) }
    /// `cloud.proxy` / `--proxy`; nil: no proxy (the environment's are ignored).
    var proxy: String? { config.cloudProxy }

    /// The flags that stand for a configuration key.
    static let keyFlags: [String: String] = [
        "--family": "terminal.family", "--connectors": "charger.connectors", "--charger-io": "charger.io",
        "--preauth": "payment.preauth", "--plug-timeout": "timeouts.plug_in_seconds",
        "--decision-timeout": "timeouts.decision_seconds", "--cloud": "cloud.url", "--station": "cloud.station_id",
        "--ca-file": "cloud.ca_file", "--client-cert": "cloud.client_cert", "--client-key": "cloud.client_key",
        "--token-file": "cloud.token_file", "--offline-policy": "cloud.offline_policy", "--heartbeat": "cloud.heartbeat_seconds", "--proxy": "cloud.proxy",
        "--state": "state.directory", "--disk-budget": "state.disk_budget_bytes", "--log-level": "log.level",
    ]

    /// `loaded`: the configuration file already read and checked (a reload), so a file that
    /// changes between the check and the use cannot end the daemon.
    static func parse(_ list: [String], loaded: DaemonConfig? = nil) throws(ArgumentError) -> Arguments {
        var a = Arguments()
        var args = list
        // A configuration file first; flags after it override single settings.
        if let i = args.firstIndex(of: "--check-config") {
            guard i + 1 < args.count else { die("--check-config needs a file") }
            exit(checkConfig(args[i + 1]))
        }
        // Neither a file nor a terminal on the command line: the installed configuration.
        if !args.contains("--config") && !args.contains("--terminal") && !args.contains("--demo") && !args.contains("--demo-dir") {
            args += ["--config", defaultConfigPath]
        }
        if let i = args.firstIndex(of: "--config") {
            guard i + 1 < args.count else { die("--config needs a file") }
            a.config = loaded ?? fromConfig(args[i + 1])
            a.configPath = args[i + 1]
            a.terminalGiven = true
            a.stateGiven = true
            args.removeSubrange(i...(i + 1))
        }
        func value(_ flag: String) throws(ArgumentError) -> String {
            guard !args.isEmpty else { throw ArgumentError("\(flag) needs a value\n\(usage)") }
            return args.removeFirst()
        }
        func set(_ flag: String, _ key: String, _ v: String) throws(ArgumentError) {
            if let problem = ConfigParser.apply(key, v, to: &a.config) { throw ArgumentError("\(flag) \(v): \(key): \(problem)") }
        }
        while !args.isEmpty {
            let flag = args.removeFirst()
            if let key = keyFlags[flag] {
                try set(flag, key, try value(flag))
                if flag == "--state" { a.stateGiven = true }
                continue
            }
            switch flag {
            case "--terminal":
                let v = try value(flag)
                switch TerminalFlag.keys(v) {
                case .success(let keys): for (k, kv) in keys { try set(flag, k, kv) }
                case .failure(let e): throw ArgumentError("--terminal \(v): \(e)")
                }
                a.terminalGiven = true
            case "--tariff":
                let v = try value(flag)
                let parts = v.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
                guard parts.count == 4 else { throw ArgumentError("--tariff is CUR,START_FEE,PRICE_PER_KWH_MILLI,PRICE_PER_MIN_MILLI") }
                for (k, kv) in zip(["tariff.currency", "tariff.start_fee", "tariff.energy_per_kwh_milli", "tariff.time_per_minute_milli"], parts) {
                    try set(flag, k, kv)
                }
            case "--sim-ev": a.ev = try value(flag)
            case "--relay-history": a.relayHistory = try value(flag)
            case "--drain": a.drain = true
            case "--demo": a.demo = true
            case "--demo-dir": a.demoDir = try value(flag); a.demo = true
            case "--help", "-h":
                print(usage)
                exit(0)
            default: throw ArgumentError("unknown option \(flag)\n\(usage)")
            }
        }
        for (_, message) in ConfigParser.wholeFileProblems(a.config) { throw ArgumentError(message) }
        // Simulated vehicles and relays only when simulated charger I/O was chosen explicitly.
        if a.ev != nil, a.config.chargerIO != .simulated {
            throw ArgumentError("--sim-ev needs simulated charger I/O (charger.io = simulated, or --charger-io simulated): a real charger never simulates a car")
        }
        if a.relayHistory != nil, a.config.chargerIO != .simulated { throw ArgumentError("--relay-history is the simulated relay's record: it needs charger.io = simulated") }
        // At start (a reload keeps the charger it has): charger-sim must exist and take the options.
        if a.config.chargerIO == .simulated, loaded == nil { try checkChargerSim(a) }
        return a
    }

    /// The simulated charger's program and arguments (`charger.io = simulated`): `charger-sim`
    /// beside this executable, with `--sim-ev` and `--relay-history` passed through.
    var chargerSim: (path: String, arguments: [String]) {
        var args = ["--connectors", String(config.engine.connectors)]
        if let ev { args += ["--sim-ev", ev] }
        if let relayHistory { args += ["--relay-history", relayHistory] }
        return (ChildProcess.executableDirectory() + "/charger-sim", args)
    }
}

/// Runs `charger-sim --check` with the daemon's options: it is missing, or refuses them, before
/// anything else starts (exit status 2 with its reason, as for any other bad option).
func checkChargerSim(_ a: Arguments) throws(ArgumentError) {
    let (path, args) = a.chargerSim
    let p: ChildProcess
    do { p = try ChildProcess.spawn(path, args + ["--check"], pipeStdin: false) } catch {
        throw ArgumentError("charger.io = simulated runs \(path), which could not be started (\(error)): simulated charger I/O is for the demo and tests and is not installed with the daemon")
    }
    let answer = (try? p.readLine(timeout: .seconds(10))) ?? nil
    guard answer == "ok" else {
        if p.wait(timeout: .seconds(5)) == nil { p.terminate() }
        throw ArgumentError("charger.io = simulated: charger-sim refused \(args.joined(separator: " ")): \(answer ?? "no answer")")
    }
    // It exits right after its answer; `p` going away reaps it (killing it if it has not exited
    // yet), with no polling wait on the way to READY=1.
}

/// A command line the daemon cannot run with; at start it exits with status 2, on SIGHUP nothing is reloaded.
struct ArgumentError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// `--demo`: the demo is its own program (`paybridge-demo`, beside this one), so that the daemon
/// links no simulated terminal or cloud; this keeps the README's command working.
func runDemo(_ a: Arguments) -> Never {
    let path = ChildProcess.executableDirectory() + "/paybridge-demo"
    var args = [path]
    if let d = a.demoDir { args += ["--demo-dir", d] }
    args += ["--log-level", a.config.logLevel]
    var argv: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) } + [nil]
    execv(path, &argv)
    let e = errno
    die("--demo runs \(path), which could not be started (\(String(cString: strerror(e)))): the demo is not installed with the daemon")
}

/// Reads a configuration file; nil with a message when it cannot be read (never the defaults).
func readConfig(_ path: String) -> (DaemonConfig, [ConfigProblem])? {
    do { return ConfigParser.parse(try ConfigFile.read(path)) } catch {
        Log.error("paybridged: \(error)")
        return nil
    }
}

/// `--check-config FILE`: every problem with its line on standard output; 0 when there is none.
func checkConfig(_ path: String) -> Int32 {
    guard let (_, problems) = readConfig(path) else { return 2 }
    for p in problems { print("\(path): \(p)") }
    print(problems.isEmpty ? "\(path): ok" : "\(path): \(problems.count) problem\(problems.count == 1 ? "" : "s")")
    return problems.isEmpty ? 0 : 1
}

/// Settings from a configuration file; a file with problems is refused as a whole.
func fromConfig(_ path: String) -> DaemonConfig {
    guard let (c, problems) = readConfig(path) else { exit(2) }
    guard problems.isEmpty else {
        for p in problems { Log.error("paybridged: \(path): \(p)") }
        exit(2)
    }
    return c
}

// SIGHUP's default action ends the process. Until the loop's handler is installed, a reload
// asked for in the first milliseconds (a config tool, logrotate) must not kill the daemon: ignored
// here, then handled by the loop (a station takes a reload asked for during recovery once it is up).
try? Signals.ignore(SIGHUP)
let arguments: Arguments
do { arguments = try Arguments.parse(Array(CommandLine.arguments.dropFirst())) } catch { die("\(error)") }
if let l = LogLevel(name: arguments.config.logLevel) { Log.threshold = l }
do {
    try Signals.ignore(SIGPIPE)
    let loop = try EventLoop()
    Log.attach(to: loop)
    if arguments.demo { runDemo(arguments) }
    guard let endpoint = arguments.endpoint else { die("no terminal given\n\(usage)") }
    let transport: LinkTransportKind = { if case .tcp = endpoint { return .tcp } else { return .serial } }()
    var linkConfig = PSPLinkConfig(family: arguments.family, transport: transport)
    linkConfig.lockFraming = arguments.config.lockFraming
    let driver = PSPLinkDriver(loop: loop, endpoint: endpoint, config: linkConfig)
    if let state = arguments.stateDir {
        try runStation(loop: loop, driver: driver, state: state, arguments: arguments)
        exit(0)
    }
    let terminalLog = TerminalLog(loop: loop, driver: driver)
    driver.onEvent = { e in terminalLog.log(e) }
    try loop.onSignal(SIGTERM) { terminalLog.flush(); Log.info("stopping"); loop.stop() }
    try loop.onSignal(SIGINT) { terminalLog.flush(); Log.info("stopping"); loop.stop() }
    try loop.onSignal(SIGHUP) { Log.info("SIGHUP: the link-only mode (no state directory) has no configuration to reload; nothing changed") }
    Log.info("paybridged: terminal \(endpoint) (\(arguments.family.rawValue))")
    driver.start()
    try loop.run()
    driver.stop()
} catch {
    die("\(error)")
}

/// The payment engine with its ledger, on the link: recover, then serve until SIGTERM/SIGINT.
/// What a signal does once the station is up; handlers exist from the start so a SIGTERM
/// during recovery is not the default (abrupt) exit but a stop as soon as the loop turns.
final class SignalActions {
    var stop: () -> Void = {}
    /// Until the station is up, a SIGHUP is remembered and carried out once it is.
    var reloadAsked = false
    lazy var reload: () -> Void = { [unowned self] in self.reloadAsked = true }
}

/// Exit statuses other than 0 (done) and 2 (refused to start: bad arguments or configuration).
enum ExitStatus {
    /// The ledger could not make a record durable (EX_IOERR): restart once the disk is fixed.
    static let ledgerFailed: Int32 = 74
}

/// After a ledger failure, how long the degraded daemon keeps its loop turning before it exits:
/// the relays are opened at once, this is for the terminal to be told to drop a card or scan.
let ledgerFailureGrace: Duration = .seconds(1)

func runStation(loop: EventLoop, driver: PSPLinkDriver, state: String, arguments: Arguments) throws {
    let signals = SignalActions()
    try loop.onSignal(SIGTERM) { signals.stop() }
    try loop.onSignal(SIGINT) { signals.stop() }
    try loop.onSignal(SIGHUP) { signals.reload() }
    do { try StateDirectory.prepare(state) } catch { die("state directory refused: \(error)") }
    let opened: (ledger: Ledger, report: RecoveryReport, records: [LedgerRecord])
    if let problem = arguments.ledgerOptions.problem { die("ledger options: \(problem)") }
    do { opened = try Ledger.open(directory: state + "/ledger", options: arguments.ledgerOptions) } catch { die("ledger: \(error)") }
    // Before anything is promised (READY=1, an armed terminal): the ledger must be able to take
    // a record now. A read-only, full or failing disk refuses the start, loudly.
    do { try opened.ledger.prepareForAppends() } catch {
        Log.error("ledger: \(state)/ledger cannot take a record (\(error)): refusing to start; no payments until the disk is fixed")
        SystemdNotifier()?.notify("STATUS=ERROR: the ledger in \(state)/ledger cannot take a record (\(error)); not started")
        exit(ExitStatus.ledgerFailed)
    }
    var entries: [LedgerEntry] = []
    var outboxRecords: [OutboxRecord] = []
    var unreadable = 0
    for r in opened.records {
        // Session summaries are the SummaryKeeper's (below), not entries to recover from.
        if r.kind == SessionSummary.recordKind { continue }
        if OutboxRecord.kinds.contains(r.kind) {
            if let o = OutboxRecord.decode(kind: r.kind, body: r.body) { outboxRecords.append(o) } else { unreadable += 1 }
            continue
        }
        do { entries.append(try LedgerEntry.decode(kind: r.kind, body: r.body)) } catch { unreadable += 1 }
    }
    if unreadable > 0 { Log.error("ledger: \(unreadable) records this version cannot read were kept and skipped") }
    if !opened.report.damagedSegments.isEmpty { Log.error("ledger: damaged segments kept aside: \(opened.report.damagedSegments)") }
    let now = Moment(monotonic: MonotonicClock.now(), wallMillis: WallClock.nowMillisecondsSinceEpoch())
    let (engine, effects, recovery) = PaymentEngine.recover(config: arguments.engine, entries: entries, at: now)
    Log.info("ledger: \(opened.records.count) records; \(recovery.openSessions) open sessions (\(recovery.toCapture) to capture, \(recovery.toRelease) to release, \(recovery.authorisationsInDoubt) in doubt)")
    let charger: ChargerPort
    /// Why no new payments are taken, for the log, STATUS= and the technicians' status.
    var notTakingPayments: String?
    /// `charger.io = simulated`: charger-sim, a child process (the daemon links no simulator).
    var chargerProcess: ChargerProcess?
    switch arguments.config.chargerIO {
    case .simulated:
        let (path, args) = arguments.chargerSim
        let p: ChargerProcess
        do { p = try ChargerProcess(loop: loop, path: path, arguments: args, connectors: arguments.engine.connectors) } catch {
            die("charger.io = simulated: \(path) could not be started: \(error)")
        }
        chargerProcess = p
        charger = p.port
        Log.warning("charger I/O is SIMULATED (charger.io = simulated): relays, plugs and meter are invented by charger-sim (pid \(p.pid)); for the demo and tests only")
    case .none:
        charger = NoChargerIO(loop: loop)
        notTakingPayments = "no charger I/O configured (charger.io = none): no relay, plug or meter to charge with, so no payments are taken; open sessions are still settled"
    }
    var stationRef: Station?
    var decider: CardDecider = PolicyCardDecider(loop: loop) { stationRef?.engine.config.offlinePolicy ?? .deny }
    var cloudClient: HTTPClient?
    var uplink: HTTPUplink?
    if let url = arguments.cloudURL {
        var token: String?
        if let path = arguments.tokenFile {
            do { token = try BearerToken.load(path: path) } catch { die("token file: \(error)") }
        }
        let client: HTTPClient
        do { client = try HTTPClient(loop: loop, tls: arguments.tls, bearerToken: token, proxy: arguments.proxy) } catch { die("HTTPS client: \(error)") }
        cloudClient = client
        let u = HTTPUplink(client: client, baseURL: url, stationId: arguments.stationId)
        uplink = u
        var seed: UInt64 = 0
        let fd = open("/dev/urandom", O_RDONLY)
        if fd >= 0 { _ = read(fd, &seed, 8); close(fd) }
        let cloudDecider = HTTPCardDecider(uplink: u, seed: seed)
        cloudDecider.onProblem = { Log.warning("card decision: \($0)") }
        decider = cloudDecider
    }
    let station = Station(loop: loop, engine: engine, ledger: opened.ledger, terminal: PSPTerminalPort(loop: loop, driver: driver),
                          charger: charger, decider: decider, uplink: uplink, stationId: arguments.stationId)
    stationRef = station
    let notifier = SystemdNotifier()
    func statusLine(_ now: String) -> String {
        var parts = [now, "\(station.engine.sessions.count) open sessions"]
        if let why = station.notTakingPayments { parts.append("NOT TAKING PAYMENTS: \(why)") }
        // Escaped like a log line: sd_notify's assignments are newline-separated, and a line
        // break from outside (a reason, a notice) would otherwise add one of its own (READY=1, …).
        return "STATUS=" + LogText.escaped(parts.joined(separator: "; "))
    }
    station.onNotice = { severity, text in
        Log.write(LogLevel(severity), text)
        // Errors and warnings are what a technician looking at `systemctl status` needs first.
        if severity <= .warning { notifier?.notify(statusLine("\(severity): \(text)")) }
    }
    // A ledger that cannot write: the station has opened every relay and takes no payments. The
    // process exits non-zero after `ledgerFailureGrace` (long enough for the terminal to be told
    // to drop its card), so that systemd restarts it: the restart recovers from what is really on
    // disk, and refuses to start (the write probe) while the disk still cannot take a record.
    var exitStatus: Int32 = 0
    station.onLedgerFailure = { error in
        guard exitStatus == 0 else { return }
        exitStatus = ExitStatus.ledgerFailed
        Log.error("ledger failed (\(error)): relays open, no payments; exiting with status \(ExitStatus.ledgerFailed) in \(ledgerFailureGrace) so that a restart recovers from the disk")
        notifier?.notify(statusLine("ERROR: ledger failed (\(error)); exiting to recover"))
        _ = loop.schedule(at: MonotonicClock.now() + ledgerFailureGrace) {
            notifier?.notify("STOPPING=1")
            station.shutdown()
            loop.stop()
        }
    }
    if let why = notTakingPayments {
        station.notTakingPayments = why
        Log.warning(why)
        station.post(.engine(.acceptNewSessions(false)))
    }
    // Charger I/O lost (charger-sim died or stopped reading): its relays are considered open, the
    // engine stops and settles what was charging (a fault on every connector, from the port), and
    // no new payment is taken until a restart brings charger I/O back.
    chargerProcess?.onLost = { reason in
        let why = "charger I/O lost: \(reason); relays considered open, no payments are taken until the daemon is restarted"
        station.notTakingPayments = why
        Log.error(why)
        notifier?.notify(statusLine("error: \(why)"))
        station.post(.engine(.acceptNewSessions(false)))
    }
    chargerProcess?.port.onProblem = { severity, text in Log.write(LogLevel(severity), text) }
    station.deadLetterPath = state + "/dead-letters.jsonl"
    station.heartbeatInterval = arguments.heartbeat
    station.recovered(highestKey: entries.map(\.session).max() ?? 0)
    station.summaries = SummaryKeeper(retention: SummaryRetention(days: arguments.config.retentionDays,
                                                                  diskBudgetBytes: opened.ledger.options.diskBudgetBytes),
                                      records: opened.records)
    let linkLog = driver.onEvent
    let terminalLog = TerminalLog(loop: loop, driver: driver)
    driver.onEvent = { e in
        terminalLog.log(e)
        linkLog(e)
        switch e {
        case .up, .down, .terminalReset:
            notifier?.notify(statusLine(describe(e).1))
        default: break
        }
    }
    var stopping = false
    let stop = {
        guard !stopping else { return }
        stopping = true
        terminalLog.flush()
        Log.info("stopping: relays open, no new cards; open sessions are left to recovery")
        notifier?.notify("STOPPING=1")
        station.shutdown()
        loop.stop()
    }
    signals.stop = stop
    // SIGHUP: re-read the configuration file (and the command line's flags over it, as at
    // start). What is safe on the fly takes effect: settings for sessions that start from now
    // on (pre-authorisation, tariff, timeouts, offline policy), the heartbeat, the bearer token
    // and the log level. The rest needs a restart and is named. A file with problems changes nothing.
    // What the daemon runs with: the start's configuration, plus the keys each reload applied.
    var running = arguments.config
    signals.reload = {
        guard let path = arguments.configPath else { Log.warning("SIGHUP: no configuration file to reload"); return }
        guard let (c, problems) = readConfig(path) else { return }
        guard problems.isEmpty else {
            Log.error("SIGHUP: \(path) has \(problems.count) problems; nothing reloaded")
            for p in problems { Log.error("\(path): \(p)") }
            return
        }
        let fresh: Arguments
        do { fresh = try Arguments.parse(Array(CommandLine.arguments.dropFirst()), loaded: c) } catch {
            Log.error("SIGHUP: \(path) with the command line: \(error); nothing reloaded")
            return
        }
        if let client = cloudClient, fresh.tokenFile != nil || arguments.tokenFile != nil {
            do {
                client.bearerToken = try fresh.tokenFile.map { try BearerToken.load(path: $0) }
            } catch {
                Log.error("SIGHUP: token file: \(error); nothing reloaded")
                return
            }
        }
        // Everything checked: from here the reload is carried out, and only here does it change anything.
        let change = ConfigChange(from: running, to: fresh.config)
        for key in change.applied { if let v = fresh.config.value(of: key) { _ = ConfigParser.apply(key, v, to: &running) } }
        station.post(.engine(.reconfigure(fresh.engine)))
        station.heartbeatInterval = fresh.heartbeat
        if let l = LogLevel(name: fresh.config.logLevel) { Log.threshold = l }
        let e = fresh.engine
        Log.info("SIGHUP: reloaded \(path): \(change.summary) (now: preauth \(e.preauthAmount), tariff \(e.tariff.currency) \(e.tariff.startFee)+\(e.tariff.energyPricePerKWh)/kWh+\(e.tariff.timePricePerMinute)/min (milli), offline policy \(e.offlinePolicy), log level \(fresh.config.logLevel))")
    }
    if signals.reloadAsked {
        signals.reloadAsked = false
        _ = loop.schedule(at: MonotonicClock.now()) { signals.reload() }
    }
    if arguments.drain {
        station.post(.engine(.acceptNewSessions(false)))
        // Done when nothing is open; checked once a second on the loop.
        func check() {
            if station.engine.sessions.isEmpty {
                Log.info("drained: no open sessions")
                loop.stop()
            } else {
                _ = loop.schedule(at: MonotonicClock.now() + .milliseconds(200)) { check() }
            }
        }
        _ = loop.schedule(at: MonotonicClock.now() + .milliseconds(200)) { check() }
    }
    station.start(recoveryEffects: effects, entries: entries, outboxRecords: outboxRecords)
    // READY once the ledger is recovered and the terminal link is up or retrying.
    notifier?.notify("READY=1\nSTATUS=ledger recovered (\(opened.records.count) records, \(recovery.openSessions) open sessions); terminal link starting\(station.notTakingPayments.map { "; NOT TAKING PAYMENTS: \($0)" } ?? "")")
    if let notifier, let interval = notifier.watchdogInterval {
        // Pinged from the event loop itself: a loop that stops turning stops the pings, and systemd restarts us.
        func ping() {
            notifier.notify("WATCHDOG=1")
            _ = loop.schedule(at: MonotonicClock.now() + interval) { ping() }
        }
        ping()
    }
    try loop.run()
    chargerProcess?.stop()
    opened.ledger.close()
    if exitStatus != 0 { exit(exitStatus) }
}
