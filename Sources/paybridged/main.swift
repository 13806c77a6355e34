// paybridged: bridges the charger's card terminal to the charging platform.
//
// With a state directory (the configuration file always has one) it runs the whole bridge on
// one event loop: the PSP link, the payment engine with its write-ahead ledger, the relays and
// the uplink (Station). Without one it runs the link alone and logs what the terminal reports,
// which is how a technician checks the cable. `--demo` runs everything against the simulators.
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
import TerminalSim
import Uplink
import Timebase
import Transport

let usage = """
usage: paybridged [--config FILE] [flags that override it]   (default FILE: /etc/paybridge/paybridge.conf)
       paybridged --check-config FILE
       paybridged --terminal serial:PATH[,BAUD 8N1] | tcp:HOST[:PORT] [--family apollo|p6x] [--log-level LEVEL]
                  [--state DIR [--connectors N] [--preauth MINOR] [--tariff CUR,START,PER_KWH_MILLI,PER_MIN_MILLI]
                   [--plug-timeout SECONDS] [--sim-ev plug=MS,charge=MS,power=W|none] [--relay-history FILE] [--disk-budget BYTES] [--drain]
                   [--cloud URL --station ID [--ca-file F] [--client-cert F --client-key F] [--token-file F]
                    [--offline-policy allow|deny] [--decision-timeout SECONDS] [--heartbeat SECONDS]]]
       paybridged --demo [--demo-dir DIR] [--log-level LEVEL]

--terminal   where the payment terminal is (serial device, or an Apollo on TCP port 3201 by default)
--family     apollo (default) or p6x
--demo       run against an embedded simulated terminal on a pseudo-terminal and show a few sessions
--demo-dir   keep the demo's files (the simulator's record) in DIR
--log-level  error, warning, info (default) or debug
--state      run the payment engine with its write-ahead ledger in DIR (without it: the terminal link only)
--sim-ev     simulated vehicles on the connectors (until the charger's own I/O is wired)
--drain      take no new cards: settle the sessions the ledger holds open, then exit
--cloud      the platform's base URL: messages go to {URL}/{station}/{Action} (https; plain http only to loopback)
"""

/// Where the configuration is read from when the command line names neither a file nor a terminal.
let defaultConfigPath = "/etc/paybridge/paybridge.conf"

func die(_ message: String) -> Never {
    Log.error("paybridged: \(message)")
    exit(2)
}

struct Arguments {
    var endpoint: Endpoint?
    var family = TerminalFamily.apollo
    var demo = false
    var demoDir: String?
    var stateDir: String?
    var engine = EngineConfig()
    var ev: SimulatedEVSettings? = SimulatedEVSettings()
    var relayHistory: String?
    var drain = false
    var ledgerOptions = LedgerOptions()
    var cloudURL: String?
    var stationId = "station"
    var tls = TLSSettings()
    var tokenFile: String?
    var heartbeat: Duration? = .seconds(300)
    var configPath: String?

    /// `loaded`: the configuration file already read and checked (a reload), so a file that
    /// changes between the check and the use cannot end the daemon.
    static func parse(_ list: [String], loaded: DaemonConfig? = nil) -> Arguments {
        var a = Arguments()
        var args = list
        // A configuration file first; flags after it override single settings.
        if let i = args.firstIndex(of: "--check-config") {
            guard i + 1 < args.count else { die("--check-config needs a file") }
            exit(checkConfig(args[i + 1]))
        }
        // Neither a file nor a terminal on the command line: the installed configuration.
        if !args.contains("--config") && !args.contains("--terminal") && !args.contains("--demo") {
            args += ["--config", defaultConfigPath]
        }
        if let i = args.firstIndex(of: "--config") {
            guard i + 1 < args.count else { die("--config needs a file") }
            a = loaded.map(arguments(from:)) ?? fromConfig(args[i + 1])
            a.configPath = args[i + 1]
            args.removeSubrange(i...(i + 1))
        }
        func value(_ flag: String) -> String {
            guard !args.isEmpty else { die("\(flag) needs a value\n\(usage)") }
            return args.removeFirst()
        }
        while !args.isEmpty {
            let flag = args.removeFirst()
            switch flag {
            case "--terminal": a.endpoint = parseEndpoint(value(flag))
            case "--family":
                guard let f = TerminalFamily(rawValue: value(flag)) else { die("--family is apollo or p6x") }
                a.family = f
            case "--state": a.stateDir = value(flag)
            case "--connectors":
                guard let n = Int(value(flag)), (1...EngineConfig.maxConnectors).contains(n) else { die("--connectors is 1...\(EngineConfig.maxConnectors)") }
                a.engine.connectors = n
            case "--preauth":
                guard let n = Int64(value(flag)), n > 0, n <= Int64(UInt32.max) else { die("--preauth is a positive amount in minor units") }
                a.engine.preauthAmount = n
            case "--tariff":
                let parts = value(flag).split(separator: ",").map(String.init)
                guard parts.count == 4, parts[0].count == 3, let f = Int64(parts[1]), let e = Int64(parts[2]), let m = Int64(parts[3]),
                      f >= 0, e >= 0, m >= 0 else { die("--tariff is CUR,START_FEE,PRICE_PER_KWH_MILLI,PRICE_PER_MIN_MILLI") }
                a.engine.tariff = Tariff(currency: parts[0], startFee: f, energyPricePerKWh: e, timePricePerMinute: m)
            case "--plug-timeout":
                guard let n = Int64(value(flag)), n > 0 else { die("--plug-timeout is seconds") }
                a.engine.plugInTimeout = .seconds(n)
            case "--sim-ev":
                guard let s = SimulatedEVSettings.parse(value(flag)) else { die("--sim-ev is plug=MS,charge=MS,power=W or none") }
                a.ev = s
            case "--relay-history": a.relayHistory = value(flag)
            case "--drain": a.drain = true
            case "--cloud": a.cloudURL = value(flag)
            case "--station": a.stationId = value(flag)
            case "--heartbeat":
                guard let n = Int64(value(flag)), n >= 0 else { die("--heartbeat is seconds (0: never)") }
                a.heartbeat = n == 0 ? nil : .seconds(n)
            case "--ca-file": a.tls.caFile = value(flag)
            case "--client-cert": a.tls.clientCertificate = value(flag)
            case "--client-key": a.tls.clientKey = value(flag)
            case "--token-file": a.tokenFile = value(flag)
            case "--offline-policy":
                guard let p = OfflinePolicy(rawValue: value(flag)) else { die("--offline-policy is allow or deny") }
                a.engine.offlinePolicy = p
            case "--decision-timeout":
                guard let n = Int64(value(flag)), n > 0 else { die("--decision-timeout is seconds") }
                a.engine.decisionTimeout = .seconds(n)
            case "--disk-budget":
                guard let n = Int(value(flag)), n > 0 else { die("--disk-budget is bytes") }
                a.ledgerOptions.diskBudgetBytes = n
            case "--demo": a.demo = true
            case "--demo-dir": a.demoDir = value(flag); a.demo = true
            case "--log-level":
                guard let l = LogLevel(name: value(flag)) else { die("--log-level is error, warning, info or debug") }
                Log.threshold = l
            case "--help", "-h":
                print(usage)
                exit(0)
            default: die("unknown option \(flag)\n\(usage)")
            }
        }
        return a
    }

    static func parseEndpoint(_ s: String) -> Endpoint {
        if s.hasPrefix("serial:") {
            let rest = s.dropFirst("serial:".count)
            let parts = rest.split(separator: ",", maxSplits: 1).map(String.init)
            guard let path = parts.first, !path.isEmpty else { die("serial endpoint needs a device path") }
            var settings = LineSettings.psp
            if parts.count == 2 {
                guard let l = LineSettings.parse(parts[1]) else { die("bad line settings '\(parts[1])' (e.g. 57600 8N1)") }
                settings = l
            }
            return .serial(path: path, settings: settings)
        }
        if s.hasPrefix("tcp:") {
            let parts = s.dropFirst("tcp:".count).split(separator: ":").map(String.init)
            guard let host = parts.first, !host.isEmpty else { die("tcp endpoint needs a host") }
            var port: UInt16 = 3201
            if parts.count == 2 {
                guard let p = UInt16(parts[1]), p > 0 else { die("bad TCP port '\(parts[1])'") }
                port = p
            }
            return .tcp(host: host, port: port)
        }
        die("terminal must be serial:PATH or tcp:HOST[:PORT]")
    }
}

/// Log lines for link events; card data only as the codec's masked form.
func describe(_ e: LinkEvent) -> (LogLevel, String) {
    switch e {
    case .up: return (.info, "terminal link up: ENABLED")
    case .down(let reason): return (.warning, "terminal link down: \(reason)")
    case .terminalReset: return (.warning, "terminal reset: PSP state lost, bringing the link up again")
    case .terminalState(let s): return (.debug, "terminal state \(s)")
    case .identity(let id):
        var parts = ["serial \(id.serialNumber)"]
        if let m = id.model { parts.append("model \(m)") }
        if let f = id.firmware { parts.append("firmware \(f)") }
        if let sim = id.simSerial { parts.append("SIM \(sim)") }
        return (.info, "terminal identity: " + parts.joined(separator: ", "))
    case let .completed(id, cmd, outcome):
        // Named, never printed whole: a response can carry the card's DOL (Card Read answering
        // Start Session, Session Approved answering Auth), and only CardData masks it.
        let what: String
        switch outcome {
        case .result(let r): what = r.ok ? "OK" : "Not OK\(r.reason.map { " (reason \($0))" } ?? "")"
        case .response(let m): what = m.name
        default: what = "\(outcome)"
        }
        return (.debug, "request \(id) \(cmd.name): \(what)")
    case .message(let m):
        switch m {
        case .cardRead(let dol), .propCardRead(let dol):
            let c = CardData(dol: dol)
            return (.info, "card read: \(c.maskedPAN ?? "no PAN")\(c.brand.map { " \($0)" } ?? "")")
        case let .sessionApproved(id, _): return (.info, "session \(id) approved")
        case let .sessionPartiallyApproved(id, amount, _): return (.info, "session \(id) partially approved for \(amount)")
        case .sessionDeclined(let r, _): return (.info, "session declined\(r.map { ": \(DeclineReason.name($0))" } ?? "")")
        case .sessionCancelled: return (.info, "session cancelled")
        default: return (.debug, "terminal: \(m.name)")
        }
    case let .malformed(kind, n): return (.warning, "discarded \(n) bytes from the terminal (\(kind.rawValue))")
    case let .undecodable(h, err): return (.warning, "undecodable frame 0x\(String(h, radix: 16)): \(err)")
    }
}

/// Reads a configuration file; nil with a message when it cannot be read.
func readConfig(_ path: String) -> (DaemonConfig, [ConfigProblem])? {
    guard let f = fopen(path, "r") else {
        Log.error("paybridged: cannot open \(path): \(String(cString: strerror(errno)))")
        return nil
    }
    defer { fclose(f) }
    var bytes: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = fread(&buf, 1, buf.count, f)
        if n == 0 { break }
        bytes += buf[0..<n]
        if bytes.count > ConfigParser.maxBytes { break }
    }
    return ConfigParser.parse(String(decoding: bytes, as: UTF8.self))
}

/// `--check-config FILE`: every problem with its line on standard output; 0 when there is none.
func checkConfig(_ path: String) -> Int32 {
    guard let (_, problems) = readConfig(path) else { return 2 }
    for p in problems { print("\(path): \(p)") }
    print(problems.isEmpty ? "\(path): ok" : "\(path): \(problems.count) problem\(problems.count == 1 ? "" : "s")")
    return problems.isEmpty ? 0 : 1
}

/// Settings from a configuration file; a file with problems is refused as a whole.
func fromConfig(_ path: String) -> Arguments {
    guard let (c, problems) = readConfig(path) else { exit(2) }
    guard problems.isEmpty else {
        for p in problems { Log.error("paybridged: \(path): \(p)") }
        exit(2)
    }
    return arguments(from: c)
}

/// The settings a checked configuration file gives (flags may override them).
func arguments(from c: DaemonConfig) -> Arguments {
    var a = Arguments()
    a.family = c.terminalFamily == .apollo ? .apollo : .p6x
    a.endpoint = c.transport == .serial ? .serial(path: c.device, settings: c.line) : .tcp(host: c.host, port: c.port)
    a.stateDir = c.stateDirectory
    a.engine = c.engine
    a.ledgerOptions.diskBudgetBytes = c.diskBudgetBytes
    a.cloudURL = c.cloudURL
    a.stationId = c.stationId
    a.tls = TLSSettings(caFile: c.caFile, clientCertificate: c.clientCertificate, clientKey: c.clientKey)
    a.tokenFile = c.tokenFile
    a.heartbeat = c.heartbeatSeconds == 0 ? nil : .seconds(c.heartbeatSeconds)
    if let l = LogLevel(name: c.logLevel) { Log.threshold = l }
    return a
}

let arguments = Arguments.parse(Array(CommandLine.arguments.dropFirst()))
do {
    try Signals.ignore(SIGPIPE)
    let loop = try EventLoop()
    if arguments.demo {
        let ok = try Demo(loop: loop, directory: arguments.demoDir).run()
        exit(ok ? 0 : 1)
    }
    guard let endpoint = arguments.endpoint else { die("no terminal given\n\(usage)") }
    let transport: LinkTransportKind = { if case .tcp = endpoint { return .tcp } else { return .serial } }()
    let driver = PSPLinkDriver(loop: loop, endpoint: endpoint, config: PSPLinkConfig(family: arguments.family, transport: transport))
    if let state = arguments.stateDir {
        try runStation(loop: loop, driver: driver, state: state, arguments: arguments)
        exit(0)
    }
    driver.onEvent = { e in let (level, text) = describe(e); Log.write(level, text) }
    try loop.onSignal(SIGTERM) { Log.info("stopping"); loop.stop() }
    try loop.onSignal(SIGINT) { Log.info("stopping"); loop.stop() }
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
    var reload: () -> Void = {}
}

func runStation(loop: EventLoop, driver: PSPLinkDriver, state: String, arguments: Arguments) throws {
    let signals = SignalActions()
    try loop.onSignal(SIGTERM) { signals.stop() }
    try loop.onSignal(SIGINT) { signals.stop() }
    try loop.onSignal(SIGHUP) { signals.reload() }
    mkdir(state, 0o750)
    let opened: (ledger: Ledger, report: RecoveryReport, records: [LedgerRecord])
    if let problem = arguments.ledgerOptions.problem { die("ledger options: \(problem)") }
    do { opened = try Ledger.open(directory: state + "/ledger", options: arguments.ledgerOptions) } catch { die("ledger: \(error)") }
    var entries: [LedgerEntry] = []
    var outboxRecords: [OutboxRecord] = []
    var unreadable = 0
    for r in opened.records {
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
    let relay = try SimulatedRelay(loop: loop, connectors: arguments.engine.connectors, historyPath: arguments.relayHistory)
    var decider: CardDecider = SimulatedCardDecider(loop: loop)
    var cloudClient: HTTPClient?
    var uplink: HTTPUplink?
    if let url = arguments.cloudURL {
        var token: String?
        if let path = arguments.tokenFile {
            do { token = try BearerToken.load(path: path) } catch { die("token file: \(error)") }
        }
        let client: HTTPClient
        do { client = try HTTPClient(loop: loop, tls: arguments.tls, bearerToken: token) } catch { die("HTTPS client: \(error)") }
        cloudClient = client
        let u = HTTPUplink(client: client, baseURL: url, stationId: arguments.stationId)
        uplink = u
        var seed: UInt64 = 0
        let fd = open("/dev/urandom", O_RDONLY)
        if fd >= 0 { _ = read(fd, &seed, 8); close(fd) }
        decider = HTTPCardDecider(uplink: u, seed: seed)
    }
    let station = Station(loop: loop, engine: engine, ledger: opened.ledger, link: driver, family: arguments.family,
                          relay: relay, decider: decider, ev: arguments.ev, uplink: uplink, stationId: arguments.stationId)
    station.onNotice = { Log.info($0) }
    station.deadLetterPath = state + "/dead-letters.jsonl"
    station.heartbeatInterval = arguments.heartbeat
    station.recovered(highestKey: entries.map(\.session).max() ?? 0)
    let notifier = SystemdNotifier()
    let linkLog = driver.onEvent
    driver.onEvent = { e in
        let (level, text) = describe(e)
        Log.write(level, text)
        linkLog(e)
        switch e {
        case .up, .down, .terminalReset:
            notifier?.notify("STATUS=\(text); \(station.engine.sessions.count) open sessions")
        default: break
        }
    }
    var stopping = false
    let stop = {
        guard !stopping else { return }
        stopping = true
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
    signals.reload = {
        guard let path = arguments.configPath else { Log.warning("SIGHUP: no configuration file to reload"); return }
        guard let (c, problems) = readConfig(path) else { return }
        guard problems.isEmpty else {
            Log.error("SIGHUP: \(path) has \(problems.count) problems; nothing reloaded")
            for p in problems { Log.error("\(path): \(p)") }
            return
        }
        let fresh = Arguments.parse(Array(CommandLine.arguments.dropFirst()), loaded: c)
        if let client = cloudClient, fresh.tokenFile != nil || arguments.tokenFile != nil {
            do {
                client.bearerToken = try fresh.tokenFile.map { try BearerToken.load(path: $0) }
            } catch {
                Log.error("SIGHUP: token file: \(error); nothing reloaded")
                return
            }
        }
        station.post(.engine(.reconfigure(fresh.engine)))
        station.heartbeatInterval = fresh.heartbeat
        var restart: [String] = []
        if fresh.endpoint != arguments.endpoint || fresh.family != arguments.family { restart.append("terminal") }
        if fresh.engine.connectors != arguments.engine.connectors { restart.append("charger.connectors") }
        if fresh.stateDir != arguments.stateDir { restart.append("state.directory") }
        if fresh.ledgerOptions.diskBudgetBytes != arguments.ledgerOptions.diskBudgetBytes { restart.append("state.disk_budget_bytes") }
        if fresh.cloudURL != arguments.cloudURL || fresh.stationId != arguments.stationId || fresh.tls != arguments.tls {
            restart.append("cloud connection")
        }
        let e = fresh.engine
        Log.info("SIGHUP: reloaded \(path): preauth \(e.preauthAmount), tariff \(e.tariff.currency) \(e.tariff.startFee)+\(e.tariff.energyPricePerKWh)/kWh+\(e.tariff.timePricePerMinute)/min (milli), offline policy \(e.offlinePolicy), log level \(c.logLevel)"
                 + (restart.isEmpty ? "" : "; changed but kept until the next start: \(restart.joined(separator: ", "))"))
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
    notifier?.notify("READY=1\nSTATUS=ledger recovered (\(opened.records.count) records, \(recovery.openSessions) open sessions); terminal link starting")
    if let notifier, let interval = notifier.watchdogInterval {
        // Pinged from the event loop itself: a loop that stops turning stops the pings, and systemd restarts us.
        func ping() {
            notifier.notify("WATCHDOG=1")
            _ = loop.schedule(at: MonotonicClock.now() + interval) { ping() }
        }
        ping()
    }
    try loop.run()
    opened.ledger.close()
}
