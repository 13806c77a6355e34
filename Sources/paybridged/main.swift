// paybridged: bridges the charger's card terminal to the charging platform.
//
// With a state directory (the configuration file always has one) it runs the whole bridge on
// one event loop: the PSP link, the payment engine with its write-ahead ledger, the relays and
// the uplink (the Daemon library's `StationDaemon`). Without one it runs the link alone and logs
// what the terminal reports, which is how a technician checks the cable. `--demo` runs
// `paybridge-demo`, everything against the simulators. This file is the process: arguments,
// signals and exit statuses; what it runs is the Daemon library, which tests drive in process.
import Daemon
import DaemonLog
import Glibc
import Platform
import PSPLink
import PSPTerminal
import Transport
import USBCore
import USBSysfs

/// Logs `paybridged: MESSAGE` and exits with status 2 (refused to start).
func die(_ message: String) -> Never {
    // The usage is several lines by design; the message before it is one escaped line.
    if message.hasSuffix("\n" + usage) {
        Log.error("paybridged: " + message.dropLast(usage.count + 1))
        Log.lines(.error, usage)
    } else {
        Log.error("paybridged: \(message)")
    }
    exit(ExitStatus.refused)
}

/// `--demo`: the demo is its own program (`paybridge-demo`, beside this one), so that the daemon
/// links no simulated terminal or cloud; this keeps the README's command working.
func runDemo(_ a: DaemonArguments) -> Never {
    let path = ChildProcess.executableDirectory() + "/paybridge-demo"
    var args = [path]
    if let d = a.demoDir { args += ["--demo-dir", d] }
    args += ["--log-level", a.config.logLevel]
    var argv: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) } + [nil]
    execv(path, &argv)
    let e = errno
    die("--demo runs \(path), which could not be started (\(String(cString: strerror(e)))): the demo is not installed with the daemon")
}

/// The station: signals first (a SIGTERM or SIGHUP during recovery is carried out once the loop
/// turns), then boot, serve until SIGTERM/SIGINT (or a ledger failure), and exit with its status.
func runStation(loop: EventLoop, driver: PSPLinkDriver, arguments: DaemonArguments, commandLine: [String]) throws -> Never {
    let notifier = SystemdNotifier()
    let daemon = StationDaemon(loop: loop, arguments: arguments, terminal: .link(driver), commandLine: commandLine, notifier: notifier)
    try loop.onSignal(SIGTERM) { daemon.stop() }
    try loop.onSignal(SIGINT) { daemon.stop() }
    // SIGHUP: re-read the configuration file (and the command line's flags over it, as at start);
    // what is safe on the fly takes effect, the rest is named; a file with problems changes nothing.
    try loop.onSignal(SIGHUP) { daemon.reloadFromFile() }
    do { try daemon.boot() } catch {
        switch error {
        case let .ledgerCannotTakeRecord(dir, reason):
            Log.error("\(error)")
            notifier?.notify("STATUS=ERROR: the ledger in \(dir) cannot take a record (\(reason)); not started")
            exit(ExitStatus.ledgerFailed)
        default: die("\(error)")
        }
    }
    try loop.run()
    daemon.finish()
    exit(daemon.exitStatus)
}

// SIGHUP's default action ends the process. Until the loop's handler is installed, a reload
// asked for in the first milliseconds (a config tool, logrotate) must not kill the daemon: ignored
// here, then handled by the loop.
try? Signals.ignore(SIGHUP)
let commandLine = Array(CommandLine.arguments.dropFirst())
let command: DaemonCommand
do throws(ArgumentError) { command = try DaemonArguments.parse(commandLine) } catch {
    // A configuration file's problems: one line each, with the file's name and the line number.
    if case let .configProblems(path, problems) = error {
        for p in problems { Log.error("paybridged: \(path): \(p)") }
        exit(ExitStatus.refused)
    }
    die("\(error)")
}
let arguments: DaemonArguments
switch command {
case .checkConfig(let path): exit(DaemonArguments.checkConfig(path))
case .deenergiseRelays(let a): exit(StationDaemon.deenergiseRelays(a.config))
case .help:
    print(usage)
    exit(0)
case .run(let a), .demo(let a): arguments = a
}
if let l = LogLevel(name: arguments.config.logLevel) { Log.threshold = l }
do {
    try Signals.ignore(SIGPIPE)
    let loop = try EventLoop()
    Log.attach(to: loop)
    if case .demo = command { runDemo(arguments) }
    guard let endpoint = arguments.endpoint else { die("no terminal given\n\(usage)") }
    let transport: LinkTransportKind = { if case .tcp = endpoint { return .tcp } else { return .serial } }()
    var linkConfig = PSPLinkConfig(family: arguments.family, transport: transport)
    linkConfig.lockFraming = arguments.config.lockFraming
    switch arguments.config.connectionInfo {
    case .auto: linkConfig.connectionInfo = .auto
    case .off: linkConfig.connectionInfo = .off
    }
    let driver = PSPLinkDriver(loop: loop, endpoint: endpoint, config: linkConfig)
    if !arguments.config.terminalUSB.isEmpty, case .serial = endpoint, let selector = try? USBSelector.parse(arguments.config.terminalUSB) {
        // The adapter by identity: its tty found through sysfs before every open attempt.
        let locator = USBTerminalLocator(selector: selector)
        var last: String?
        driver.connection.resolveSerialPath = {
            let outcome = locator.locate()
            if case let .found(path, identity) = outcome {
                if last != path { Log.info("terminal.usb \(selector): \(identity) at \(path)") }
                last = path
                return .success(path)
            }
            return .failure(TerminalConnection.PathProblem(outcome.problem ?? "not found"))
        }
        Log.info("terminal: the USB adapter \(selector) (terminal.usb; terminal.device is not used)")
    }
    if arguments.stateDir != nil {
        try runStation(loop: loop, driver: driver, arguments: arguments, commandLine: commandLine)
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
