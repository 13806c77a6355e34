import ChargerPort
import CloudHTTP
import Configuration
import DaemonLog
import Glibc
import Ledger
import PaymentEngine
import Platform
import PSPLink
import Station
import Transport

/// The daemon's command-line summary, shown after an argument it cannot take and for `--help`.
public let usage = """
usage: paybridged [--config FILE] [flags that override it]   (default FILE: /etc/paybridge/paybridge.conf)
       paybridged --check-config FILE
       paybridged [--config FILE] --deenergise-relays
       paybridged --terminal serial:PATH[,BAUD 8N1] | tcp:ADDRESS[:PORT] | tcp:[IPV6]:PORT [--family apollo|p6x] [--log-level LEVEL]
                  [--state DIR [--connectors N] [--charger-io none|simulated|socket|gpio] [--preauth MINOR] [--tariff CUR,START,PER_KWH_MILLI,PER_MIN_MILLI]
                   [--plug-timeout SECONDS] [--sim-ev plug=MS,charge=MS,power=W|none] [--relay-history FILE] [--disk-budget BYTES] [--drain] [--socket PATH]
                   [--cloud URL --station ID [--cloud-protocol ocpp-j|https] [--ca-file F] [--client-cert F --client-key F]
                    [--password-file F] [--token-file F] [--proxy http://HOST:PORT]
                    [--offline-policy allow|deny] [--decision-timeout SECONDS] [--heartbeat SECONDS]]]
       paybridged --demo [--demo-dir DIR] [--log-level LEVEL]
       paybridged --help

--terminal   where the payment terminal is (serial device, or an Apollo on TCP port 3201 by default)
--family     apollo (default) or p6x
--deenergise-relays  drive every relay coil of charger.io = gpio off, let go of the lines and exit (ExecStopPost=)
--demo       run against an embedded simulated terminal on a pseudo-terminal and show a few sessions
--demo-dir   keep the demo's files (the simulator's record) in DIR
--log-level  error, warning, info (default) or debug
--state      run the payment engine with its write-ahead ledger in DIR (without it: the terminal link only)
--charger-io where relays, plugs and meter come from: none (default: no payments are taken) or simulated (demo and tests only)
--sim-ev     simulated vehicles on the connectors (needs --charger-io simulated)
--drain      take no new cards: settle the sessions the ledger holds open, then exit
--socket     the technicians' socket (docs/diagnostics.md); with a configuration file its default is
             /run/paybridge/paybridged.sock, with flags alone there is none unless given; empty: none
--cloud      the platform's URL: wss://HOST/PATH for OCPP-J (the default; the station connects to URL/{station}),
             https://HOST/PATH with --cloud-protocol https ({URL}/{station}/{Action}); plain ws/http only to loopback
--cloud-protocol  ocpp-j (default) or https
--password-file   OCPP-J security profiles 1 and 2: the HTTP Basic password (file mode 0600)
"""

/// Where the configuration is read from when the command line names neither a file nor a terminal.
public let defaultConfigPath = "/etc/paybridge/paybridge.conf"

/// Exit statuses other than 0 (done).
public enum ExitStatus {
    /// Refused to start: bad arguments or configuration, a state directory or ledger that cannot be opened.
    public static let refused: Int32 = 2
    /// The ledger could not make a record durable (EX_IOERR): restart once the disk is fixed.
    public static let ledgerFailed: Int32 = 74
    /// The CSMS asked for a Reset (EX_TEMPFAIL): systemd starts the daemon again (Restart=on-failure).
    public static let resetRequested: Int32 = 75
}

/// What the command line asks the daemon to do; `paybridged`'s main carries it out (the library
/// never exits the process).
public enum DaemonCommand {
    /// Run: the station (a state directory is given) or the terminal link alone.
    case run(DaemonArguments)
    /// `--check-config FILE`: list the file's problems (`DaemonArguments.checkConfig`).
    case checkConfig(path: String)
    /// `--help` / `-h`: print the usage.
    case help
    /// `--demo` / `--demo-dir`: hand over to `paybridge-demo` with these settings.
    case demo(DaemonArguments)
    /// `--deenergise-relays`: drive every configured relay coil off and exit (the unit's
    /// `ExecStopPost=`, so a crashed daemon's relays are off whatever the chip keeps driving).
    case deenergiseRelays(DaemonArguments)
}

/// A command line (or configuration file) the daemon cannot run with: at start it exits with
/// status 2 and the description (`paybridged: …`), on SIGHUP nothing is reloaded.
public enum ArgumentError: Error, CustomStringConvertible {
    /// A flag, its value or a combination is refused; `usage`: the usage follows the reason.
    case refused(String, usage: Bool)
    /// The configuration file could not be read (missing, not a regular file, too large, a read
    /// error); it is never taken as empty.
    case unreadableConfig(path: String, reason: String)
    /// The configuration file has problems (each with its line): it is refused as a whole.
    case configProblems(path: String, problems: [ConfigProblem])

    static func refused(_ message: String) -> ArgumentError { .refused(message, usage: false) }

    /// The message after `paybridged: `; several lines for a file's problems, and the usage after a
    /// reason that asks for it.
    public var description: String {
        switch self {
        case let .refused(m, usage: u): return u ? m + "\n" + usage : m
        case let .unreadableConfig(_, reason): return reason
        case let .configProblems(path, problems): return problems.map { "\(path): \($0)" }.joined(separator: "\n")
        }
    }
}

/// The daemon's settings: a configuration (the file's, or the defaults when the command line
/// names only a terminal) with the command line's flags applied over it. Every flag that has a
/// configuration key is that key's override and passes the same check (`ConfigParser.apply`),
/// so a flag can never accept what the file refuses.
public struct DaemonArguments {
    /// The file's settings (or the defaults) with the flags applied over them.
    public var config = DaemonConfig()
    /// A terminal was named (by the file, which always names one, or by `--terminal`).
    public var terminalGiven = false
    /// The payment engine runs (a file always has a state directory; flags need `--state`).
    public var stateGiven = false
    /// `--demo` or `--demo-dir`: run `paybridge-demo` instead.
    public var demo = false
    /// `--demo-dir`: where the demo keeps its files.
    public var demoDir: String?
    /// `--sim-ev`, passed to charger-sim as it was given (charger-sim checks it, `checkChargerSim`).
    public var ev: String?
    /// `--relay-history`, passed to charger-sim.
    public var relayHistory: String?
    /// `--drain`: take no new cards, settle what the ledger holds open, then stop.
    public var drain = false
    /// The configuration file read (nil: flags only); SIGHUP re-reads it.
    public var configPath: String?

    /// No file, no flags: the defaults.
    public init() {}

    /// Where the terminal is; nil when none was named.
    public var endpoint: Endpoint? {
        guard terminalGiven else { return nil }
        return config.transport == .serial ? .serial(path: config.device, settings: config.line) : .tcp(host: config.host, port: config.port)
    }
    /// The PSP terminal family the link speaks to.
    public var family: TerminalFamily { config.terminalFamily == .apollo ? .apollo : .p6x }
    /// The state directory when the station runs; nil: the link-only mode.
    public var stateDir: String? { stateGiven ? config.stateDirectory : nil }
    /// The payment engine's settings.
    public var engine: EngineConfig { config.engine }
    /// The ledger's options (the disk budget).
    public var ledgerOptions: LedgerOptions {
        var o = LedgerOptions()
        o.diskBudgetBytes = config.diskBudgetBytes
        return o
    }
    /// The platform's base URL; nil: no cloud, the offline policy decides cards.
    public var cloudURL: String? { config.cloudURL }
    /// This station's id at the platform.
    public var stationId: String { config.stationId }
    /// The HTTPS client's CA file and client certificate and key.
    public var tls: TLSSettings { TLSSettings(caFile: config.caFile, clientCertificate: config.clientCertificate, clientKey: config.clientKey) }
    /// The bearer token's file; nil: no token.
    public var tokenFile: String? { config.tokenFile }
    /// The Heartbeat interval; nil: none.
    public var heartbeat: Duration? { config.heartbeatSeconds == 0 ? nil : .seconds(config.heartbeatSeconds) }
    /// `cloud.proxy` / `--proxy`; nil: no proxy (the environment's are ignored).
    public var proxy: String? { config.cloudProxy }

    /// The flags that stand for a configuration key.
    public static let keyFlags: [String: String] = [
        "--family": "terminal.family", "--connectors": "charger.connectors", "--charger-io": "charger.io",
        "--preauth": "payment.preauth", "--plug-timeout": "timeouts.plug_in_seconds",
        "--decision-timeout": "timeouts.decision_seconds", "--cloud": "cloud.url", "--station": "cloud.station_id",
        "--ca-file": "cloud.ca_file", "--client-cert": "cloud.client_cert", "--client-key": "cloud.client_key",
        "--token-file": "cloud.token_file", "--password-file": "cloud.password_file", "--cloud-protocol": "cloud.protocol", "--offline-policy": "cloud.offline_policy", "--heartbeat": "cloud.heartbeat_seconds", "--proxy": "cloud.proxy",
        "--state": "state.directory", "--disk-budget": "state.disk_budget_bytes", "--log-level": "log.level",
        "--socket": "diagnostics.socket",
    ]

    /// The command a command line asks for (without the program name). `loaded`: the
    /// configuration file already read and checked (a reload), so a file that changes between
    /// the check and the use cannot end the daemon; charger-sim is checked only at start.
    public static func parse(_ list: [String], loaded: DaemonConfig? = nil) throws(ArgumentError) -> DaemonCommand {
        var a = DaemonArguments()
        var deenergise = false
        var args = list
        // Help before anything is read: `paybridged --help` on a machine without the installed
        // configuration (a build host, a fresh image, the packaging checks) must print the usage and
        // exit 0, not fail on the default file it would otherwise read. Anywhere on the line, as
        // GNU tools do: a value spelt `--help` or `-h` is not one anyone means.
        if args.contains("--help") || args.contains("-h") { return .help }
        // A configuration file first; flags after it override single settings.
        if let i = args.firstIndex(of: "--check-config") {
            guard i + 1 < args.count else { throw .refused("--check-config needs a file") }
            return .checkConfig(path: args[i + 1])
        }
        // Neither a file nor a terminal on the command line: the installed configuration.
        if !args.contains("--config") && !args.contains("--terminal") && !args.contains("--demo") && !args.contains("--demo-dir") {
            args += ["--config", defaultConfigPath]
        }
        if let i = args.firstIndex(of: "--config") {
            guard i + 1 < args.count else { throw .refused("--config needs a file") }
            if let loaded { a.config = loaded } else { a.config = try checkedConfig(args[i + 1]) }
            a.configPath = args[i + 1]
            a.terminalGiven = true
            a.stateGiven = true
            args.removeSubrange(i...(i + 1))
        } else {
            // A daemon started from flags alone (a bench, a test, a technician trying a terminal)
            // opens no socket at the service's path unless `--socket` names one.
            a.config.diagnosticsSocket = ""
        }
        func value(_ flag: String) throws(ArgumentError) -> String {
            guard !args.isEmpty else { throw .refused("\(flag) needs a value", usage: true) }
            return args.removeFirst()
        }
        func set(_ flag: String, _ key: String, _ v: String) throws(ArgumentError) {
            if let problem = ConfigParser.apply(key, v, to: &a.config) { throw .refused("\(flag) \(v): \(key): \(problem)") }
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
                case .failure(let e): throw .refused("--terminal \(v): \(e)")
                }
                a.terminalGiven = true
            case "--tariff":
                let v = try value(flag)
                let parts = v.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
                guard parts.count == 4 else { throw .refused("--tariff is CUR,START_FEE,PRICE_PER_KWH_MILLI,PRICE_PER_MIN_MILLI") }
                for (k, kv) in zip(["tariff.currency", "tariff.start_fee", "tariff.energy_per_kwh_milli", "tariff.time_per_minute_milli"], parts) {
                    try set(flag, k, kv)
                }
            case "--sim-ev": a.ev = try value(flag)
            case "--relay-history": a.relayHistory = try value(flag)
            case "--drain": a.drain = true
            case "--deenergise-relays": deenergise = true
            case "--demo": a.demo = true
            case "--demo-dir": a.demoDir = try value(flag); a.demo = true
            default: throw .refused("unknown option \(flag)", usage: true)
            }
        }
        for (_, message) in ConfigParser.wholeFileProblems(a.config) { throw .refused(message) }
        // Simulated vehicles and relays only when simulated charger I/O was chosen explicitly.
        if a.ev != nil, a.config.chargerIO != .simulated {
            throw .refused("--sim-ev needs simulated charger I/O (charger.io = simulated, or --charger-io simulated): a real charger never simulates a car")
        }
        if a.relayHistory != nil, a.config.chargerIO != .simulated { throw .refused("--relay-history is the simulated relay's record: it needs charger.io = simulated") }
        if deenergise { return .deenergiseRelays(a) }
        // At start (a reload keeps the charger it has): charger-sim must exist and take the options.
        if a.config.chargerIO == .simulated, loaded == nil { try checkChargerSim(a) }
        return a.demo ? .demo(a) : .run(a)
    }

    /// The simulated charger's program and arguments (`charger.io = simulated`): `charger-sim`
    /// beside this executable, with `--sim-ev` and `--relay-history` passed through.
    public var chargerSim: (path: String, arguments: [String]) {
        var args = ["--connectors", String(config.engine.connectors)]
        if let ev { args += ["--sim-ev", ev] }
        if let relayHistory { args += ["--relay-history", relayHistory] }
        return (ChildProcess.executableDirectory() + "/charger-sim", args)
    }

    /// Runs `charger-sim --check` with the daemon's options: it is missing, or refuses them, before
    /// anything else starts (exit status 2 with its reason, as for any other bad option).
    static func checkChargerSim(_ a: DaemonArguments) throws(ArgumentError) {
        let (path, args) = a.chargerSim
        let p: ChildProcess
        do { p = try ChildProcess.spawn(path, args + ["--check"], pipeStdin: false) } catch {
            throw .refused("charger.io = simulated runs \(path), which could not be started (\(error)): simulated charger I/O is for the demo and tests and is not installed with the daemon")
        }
        let answer = (try? p.readLine(timeout: .seconds(10))) ?? nil
        guard answer == "ok" else {
            if p.wait(timeout: .seconds(5)) == nil { p.terminate() }
            throw .refused("charger.io = simulated: charger-sim refused \(args.joined(separator: " ")): \(answer ?? "no answer")")
        }
        // It exits right after its answer; `p` going away reaps it (killing it if it has not exited
        // yet), with no polling wait on the way to READY=1.
    }

    /// Reads a configuration file: its settings and problems, or `.unreadableConfig` (never the defaults).
    public static func readConfig(_ path: String) throws(ArgumentError) -> (DaemonConfig, [ConfigProblem]) {
        do { return ConfigParser.parse(try ConfigFile.read(path)) } catch {
            throw .unreadableConfig(path: path, reason: "\(error)")
        }
    }

    /// Settings from a configuration file; a file with problems is refused as a whole (`.configProblems`).
    public static func checkedConfig(_ path: String) throws(ArgumentError) -> DaemonConfig {
        let (c, problems) = try readConfig(path)
        guard problems.isEmpty else { throw .configProblems(path: path, problems: problems) }
        return c
    }

    /// `--check-config FILE`: every problem with its line on standard output; the exit status:
    /// 0 when there is none, 1 with problems, 2 when the file cannot be read (logged).
    public static func checkConfig(_ path: String) -> Int32 {
        let (problems): [ConfigProblem]
        do { (_, problems) = try readConfig(path) } catch {
            Log.error("paybridged: \(error)")
            return ExitStatus.refused
        }
        for p in problems { print("\(path): \(p)") }
        print(problems.isEmpty ? "\(path): ok" : "\(path): \(problems.count) problem\(problems.count == 1 ? "" : "s")")
        return problems.isEmpty ? 0 : 1
    }
}
