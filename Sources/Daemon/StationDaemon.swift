import ChargerLine
import ChargerPort
import CloudHTTP
import Configuration
import EnergyMeters
import GPIOCharger
import GPIOLines
import MeterLink
import ControllerInput
import DaemonLog
import DiagnosticsProtocol
import DiagnosticsSocket
import Glibc
import Ledger
import PaymentEngine
import Platform
import PSPTerminal
import Station
import StationReports
import TerminalConditions
import TerminalPort
import Timebase
import Uplink
import JSONLines
import OCPPJ
import OCPPJUplink
import CSMSRequests

/// Why the station daemon did not start. At start `paybridged` logs `paybridged: DESCRIPTION` and
/// exits with status 2, except `.ledgerCannotTakeRecord` (74, `ExitStatus.ledgerFailed`).
public enum StationDaemonError: Error, CustomStringConvertible {
    /// `Platform.StateDirectory.prepare` refused the state directory (permissions, owner, a symlinked `ledger/`).
    case stateDirectoryRefused(String)
    /// `meter.device` or `charger.meter.N` could not be set up.
    case meter(String)
    /// `charger.io = gpio`: a line could not be found or requested.
    case gpio(String)
    /// The ledger options are impossible (e.g. a disk budget too small for one segment).
    case ledgerOptions(String)
    /// The ledger could not be opened or recovered.
    case ledgerUnopenable(String)
    /// The ledger opened but cannot take a record now (read-only, full or failing disk): no
    /// READY=1, no armed terminal; `directory` is the ledger's.
    case ledgerCannotTakeRecord(directory: String, reason: String)
    /// `charger.io = simulated`: the charger-sim child could not be started.
    case chargerSimNotStarted(path: String, reason: String)
    /// The bearer token file could not be read or is not protected.
    case tokenFile(String)
    /// The HTTPS client could not be set up (CA file, client certificate or key, proxy).
    case httpsClient(String)
    /// `cloud.password_file` could not be read or is not protected.
    case passwordFile(String)

    /// The message after `paybridged: ` (the ledger probe's is logged as it is).
    public var description: String {
        switch self {
        case .stateDirectoryRefused(let e): return "state directory refused: \(e)"
        case .meter(let e): return "energy meters: \(e)"
        case .gpio(let e): return "charger.io = gpio: \(e)"
        case .ledgerOptions(let p): return "ledger options: \(p)"
        case .ledgerUnopenable(let e): return "ledger: \(e)"
        case let .ledgerCannotTakeRecord(dir, reason):
            return "ledger: \(dir) cannot take a record (\(reason)): refusing to start; no payments until the disk is fixed"
        case let .chargerSimNotStarted(path, reason): return "charger.io = simulated: \(path) could not be started: \(reason)"
        case .tokenFile(let e): return "token file: \(e)"
        case .httpsClient(let e): return "HTTPS client: \(e)"
        case .passwordFile(let e): return "password file: \(e)"
        }
    }
}

/// Why a reload changed nothing; the daemon logs it at error and keeps running as it was.
public enum ReloadError: Error, CustomStringConvertible {
    /// The file could not be read, has problems, or the command line's flags over it are refused.
    case refused(ArgumentError)
    /// The bearer token file named by the new configuration could not be loaded.
    case tokenFile(String)

    /// The reason, for the log line `SIGHUP: …; nothing reloaded`.
    public var description: String {
        switch self {
        case .refused(let e): return "\(e)"
        case .tokenFile(let e): return "token file: \(e)"
        }
    }
}

/// The payment station as `paybridged` runs it, in a form a test can drive in process: `boot`
/// prepares the state directory, opens and probes the ledger, recovers its entries and outbox
/// records, assembles the station (terminal, charger, card decider, uplink) on the given loop
/// and starts it; `reload` is SIGHUP's work; `stop` is SIGTERM's. The process (signals, exit
/// statuses, the event loop's run) stays with `paybridged`'s main.
public final class StationDaemon {
    /// Where the station's terminal comes from.
    public enum Terminal {
        /// A PSP terminal on this link driver (`PSPTerminalPort`), with the link's log lines and a
        /// `STATUS=` line at each link change.
        case link(PSPLinkDriver)
        /// Any other terminal port (a test's `FakeTerminal`).
        case port(TerminalPort)
    }

    /// A platform given from outside instead of the HTTPS one `cloud.url` configures.
    public struct Cloud {
        /// Where outbox messages go; nil: nothing is reported.
        public var uplink: UplinkTransport?
        /// Who decides on a card.
        public var decider: CardDecider
        public init(uplink: UplinkTransport?, decider: CardDecider) {
            self.uplink = uplink
            self.decider = decider
        }
    }

    /// After a ledger failure, how long the degraded daemon keeps its loop turning before it
    /// stops: the relays are opened at once, this is for the terminal to be told to drop a card or scan.
    public static let ledgerFailureGrace: Duration = .seconds(1)

    /// The loop the station runs on; `paybridged` runs it, a test turns it or posts inputs directly.
    public let loop: EventLoop
    /// The start's settings.
    public let arguments: DaemonArguments
    /// The command line without the program name: a reload applies its flags over the re-read file again.
    public let commandLine: [String]
    /// What the daemon runs with: the start's configuration, plus the keys each reload applied.
    public private(set) var running: DaemonConfig
    /// The station, once `boot` has returned.
    public private(set) var station: Station!
    /// The ledger's records at boot and what recovery found in them.
    public private(set) var recovered: (records: Int, report: EngineRecovery)?
    /// Non-zero once the daemon must end with that status (`ExitStatus.ledgerFailed`); the loop
    /// is stopped `ledgerFailureGrace` after the failure.
    public internal(set) var exitStatus: Int32 = 0
    /// `--drain`: the loop was stopped because no session is left open.
    public var onDrained: () -> Void = {}

    /// The technicians' socket, when one is configured (or passed by systemd) and could be opened.
    public private(set) var diagnosticsServer: DiagnosticsServer?
    /// What answers on it and builds the metrics file's text: made by `boot`, socket or not.
    public private(set) var diagnostics: StationDiagnostics?
    /// `diagnostics.metrics_file`'s writer, when one is configured.
    public internal(set) var metricsFile: MetricsFile?
    /// Every session the ledger knows, kept current as entries are written (`sessions`, `export`).
    public internal(set) var book = SessionBook(summaries: [], entries: [])
    /// When the terminal link last came up or went down (a PSP link; nil: not since start).
    public internal(set) var linkChangedAt: Instant?

    let terminalSource: Terminal
    let injectedCharger: ChargerPort?
    let injectedCloud: Cloud?
    let notifier: SystemdNotifier?
    var ledger: Ledger?
    var chargerProcess: ChargerProcess?
    /// `charger.io = socket`: the port the diagnostic socket feeds with the controller's inputs.
    public private(set) var controller: ControllerChargerPort?
    var cloudClient: HTTPClient?
    /// `cloud.protocol = ocpp-j`: the WebSocket uplink.
    public private(set) var ocppj: OCPPJUplink?
    /// What the CSMS set that outlives a restart (`STATE/csms-settings`): inoperative
    /// connectors (ChangeAvailability) and the offline policy (SetVariables).
    var csmsSettings = CSMSSettings()
    /// Connectors (0-based) the CSMS made inoperative.
    var csmsInoperative: Set<Int> { csmsSettings.inoperative }
    /// Connectors (0-based) whose relay welded, latched until a technician clears them
    /// (`STATE/connector-faults`).
    public internal(set) var weldedLatched: Set<Int> = []
    /// `meter.device`: the Modbus meters.
    internal(set) var meterFeed: MeterFeed?
    /// `charger.io = gpio`: the relays and plugs on GPIO lines.
    public internal(set) var gpioPort: GPIOChargerPort?
    /// A CSMS Reset is waiting for the sessions to settle.
    var resetPending = false
    /// What this process's BootNotification says (`BootReasonFile`): PowerUp unless the
    /// previous process left a reason.
    var bootReason: BootPayload.Reason = .powerUp
    /// TransactionEventResponses whose totalCost differed from the station's own.
    public internal(set) var csmsCostDifferences = 0
    var terminalLog: TerminalLog?
    var stopping = false

    /// `charger`: relays, plugs and meters from outside, used whatever `charger.io` says (and
    /// payments are taken); nil: `charger.io` decides (`NoChargerIO`, or the charger-sim child).
    /// `cloud`: the platform from outside; nil: HTTPS to `cloud.url`, or the offline policy without one.
    /// `notifier`: where READY=1, STATUS=, WATCHDOG=1 and STOPPING=1 go (nil: nowhere).
    public init(loop: EventLoop, arguments: DaemonArguments, terminal: Terminal, charger: ChargerPort? = nil,
                cloud: Cloud? = nil, commandLine: [String] = [], notifier: SystemdNotifier? = nil) {
        self.loop = loop
        self.arguments = arguments
        self.commandLine = commandLine
        running = arguments.config
        terminalSource = terminal
        injectedCharger = charger
        injectedCloud = cloud
        self.notifier = notifier
    }

    /// The `STATUS=` line: `now`, the open sessions and why no payments are taken. Escaped like a
    /// log line: sd_notify's assignments are newline-separated, and a line break from outside (a
    /// reason, a notice) would otherwise add one of its own (READY=1, …).
    public func statusLine(_ now: String) -> String {
        var parts = [now]
        if let station {
            parts.append("\(station.engine.sessions.count) open sessions")
            if let why = station.notTakingPayments { parts.append("NOT TAKING PAYMENTS: \(why)") }
        }
        return "STATUS=" + LogText.escaped(parts.joined(separator: "; "))
    }

    /// Prepares the state directory, opens the ledger and checks that it can take a record,
    /// recovers, assembles the station and starts it (terminal started, READY=1 sent). Nothing
    /// is promised (READY=1, an armed terminal) before the ledger has taken its probe.
    public func boot() throws(StationDaemonError) {
        let arguments = self.arguments
        let state = arguments.config.stateDirectory
        do { try StateDirectory.prepare(state) } catch { throw .stateDirectoryRefused("\(error)") }
        if let problem = arguments.ledgerOptions.problem { throw .ledgerOptions("\(problem)") }
        let opened: (ledger: Ledger, report: RecoveryReport, records: [LedgerRecord])
        do { opened = try Ledger.open(directory: state + "/ledger", options: arguments.ledgerOptions) } catch { throw .ledgerUnopenable("\(error)") }
        // Before anything is promised (READY=1, an armed terminal): the ledger must be able to take
        // a record now. A read-only, full or failing disk refuses the start, loudly.
        do { try opened.ledger.prepareForAppends() } catch {
            opened.ledger.close()
            throw .ledgerCannotTakeRecord(directory: state + "/ledger", reason: "\(error)")
        }
        ledger = opened.ledger
        var entries: [LedgerEntry] = []
        var outboxRecords: [OutboxRecord] = []
        var unreadable = 0
        var conditionRecords: [(kind: UInt16, body: [UInt8])] = []
        var summaryRecords: [SessionSummary] = []
        for r in opened.records {
            // Session summaries are the SummaryKeeper's (below), not entries to recover from.
            if r.kind == SessionSummary.recordKind {
                if let s = try? SessionSummary.decode(kind: r.kind, body: r.body) { summaryRecords.append(s) }
                continue
            }
            // The terminal's conditions (identity, last seen up, a pending swap or alert) are theirs.
            if TerminalConditions.recordKinds.contains(r.kind) { conditionRecords.append((r.kind, r.body)); continue }
            if OutboxRecord.kinds.contains(r.kind) {
                if let o = OutboxRecord.decode(kind: r.kind, body: r.body) { outboxRecords.append(o) } else { unreadable += 1 }
                continue
            }
            do { entries.append(try LedgerEntry.decode(kind: r.kind, body: r.body)) } catch { unreadable += 1 }
        }
        if unreadable > 0 { Log.error("ledger: \(unreadable) records this version cannot read were kept and skipped") }
        if !opened.report.damagedSegments.isEmpty { Log.error("ledger: damaged segments kept aside: \(opened.report.damagedSegments)") }
        let now = Moment(monotonic: MonotonicClock.now(), wallMillis: WallClock.nowMillisecondsSinceEpoch())
        let (settings, skipped) = CSMSSettingsFile.read(state: state, connectors: arguments.engine.connectors)
        for why in skipped { Log.warning("\(CSMSSettingsFile.path(state)): skipped \(why)") }
        csmsSettings = settings
        let (engine, effects, recovery) = PaymentEngine.recover(config: settings.applied(to: arguments.engine), entries: entries, at: now)
        recovered = (opened.records.count, recovery)
        Log.info("ledger: \(opened.records.count) records; \(recovery.openSessions) open sessions (\(recovery.toCapture) to capture, \(recovery.toRelease) to release, \(recovery.authorisationsInDoubt) in doubt)")

        let charger: ChargerPort
        /// Why no new payments are taken, for the log, STATUS= and the technicians' status.
        var notTakingPayments: String?
        if let injectedCharger {
            charger = injectedCharger
        } else {
            switch arguments.config.chargerIO {
            case .simulated:
                // `charger.io = simulated`: charger-sim, a child process (the daemon links no simulator).
                let (path, args) = arguments.chargerSim
                let p: ChargerProcess
                do { p = try ChargerProcess(loop: loop, path: path, arguments: args, connectors: arguments.engine.connectors) } catch {
                    opened.ledger.close()
                    throw .chargerSimNotStarted(path: path, reason: "\(error)")
                }
                chargerProcess = p
                charger = p.port
                Log.warning("charger I/O is SIMULATED (charger.io = simulated): relays, plugs and meter are invented by charger-sim (pid \(p.pid)); for the demo and tests only")
            case .socket:
                // The controller connects to the diagnostic socket later; until then a close is refused.
                let port = ControllerChargerPort(loop: loop, connectors: arguments.engine.connectors,
                                                 meterTimeout: .seconds(arguments.config.meterTimeoutSeconds), maxPowerW: arguments.config.maxPowerW)
                controller = port
                charger = port
                Log.info("charger I/O from the charger's controller over the diagnostic socket (charger.io = socket)")
            case .gpio:
                let configs: [GPIOConnectorConfig]
                do throws(StationDaemonError) { configs = try Self.gpioConfigs(arguments.config) } catch {
                    opened.ledger.close()
                    throw error
                }
                let port: GPIOChargerPort
                do {
                    port = try GPIOChargerPort(loop: loop, connectors: configs, feedbackTimeout: .milliseconds(arguments.config.relayFeedbackMs),
                                               maxPowerW: arguments.config.maxPowerW, meterTimeout: .seconds(arguments.config.meterTimeoutSeconds))
                } catch {
                    opened.ledger.close()
                    throw .gpio("\(error)")
                }
                port.onNotice = { severity, text in Log.write(LogLevel(severity), text) }
                gpioPort = port
                charger = port
                Log.info("charger I/O on GPIO lines (charger.io = gpio): " + configs.enumerated().map { "connector \($0.offset + 1) relay \($0.element.relay)" }.joined(separator: ", "))
            case .none:
                charger = NoChargerIO(loop: loop)
                notTakingPayments = "no charger I/O configured (charger.io = none): no relay, plug or meter to charge with, so no payments are taken; open sessions are still settled"
            }
        }

        var decider: CardDecider = PolicyCardDecider(loop: loop) { [weak self] in self?.station?.engine.config.offlinePolicy ?? .deny }
        var uplink: UplinkTransport?
        if let injectedCloud {
            decider = injectedCloud.decider
            uplink = injectedCloud.uplink
        } else if let url = arguments.cloudURL {
            var token: String?
            if let path = arguments.tokenFile {
                do { token = try BearerToken.load(path: path) } catch {
                    closeOnFailedBoot()
                    throw .tokenFile("\(error)")
                }
            }
            let client: HTTPClient
            do { client = try HTTPClient(loop: loop, tls: arguments.tls, bearerToken: token, proxy: arguments.proxy) } catch {
                closeOnFailedBoot()
                throw .httpsClient("\(error)")
            }
            cloudClient = client
            var seed: UInt64 = 0
            let fd = open("/dev/urandom", O_RDONLY)
            if fd >= 0 { _ = read(fd, &seed, 8); close(fd) }
            switch arguments.config.cloudProtocol {
            case .https:
                let u = HTTPUplink(client: client, baseURL: url, stationId: arguments.stationId)
                uplink = u
                let cloudDecider = HTTPCardDecider(uplink: u, seed: seed)
                cloudDecider.onProblem = { Log.warning("card decision: \($0)") }
                decider = cloudDecider
            case .ocppJ:
                let j: OCPPJUplink
                do { j = try makeOCPPJUplink(url: url, client: client, seed: seed) } catch {
                    closeOnFailedBoot()
                    throw error
                }
                ocppj = j
                uplink = j
                decider = j
            }
        }

        let terminal: TerminalPort
        switch terminalSource {
        case .link(let driver): terminal = PSPTerminalPort(loop: loop, driver: driver)
        case .port(let port): terminal = port
        }
        var outboxConfig = OutboxConfig()
        if ocppj != nil {
            // One CALL in flight is OCPP-J's rule; the core would queue more, but then a message's
            // response timeout would start only when its turn came, long after the outbox sent it.
            outboxConfig.maxInFlight = 1
            outboxConfig.maxCallErrorAttempts = arguments.config.callErrorAttempts
            outboxConfig.maxAttemptsOther = OCPPJOutbox.maxAttemptsOther
            outboxConfig.startsOffline = true
        }
        let station = Station(loop: loop, engine: engine, ledger: opened.ledger, terminal: terminal,
                              charger: charger, decider: decider, uplink: uplink, stationId: arguments.stationId,
                              outbox: Outbox(config: outboxConfig))
        self.station = station
        let (latched, badFaults) = ConnectorFaultsFile.read(state: state, connectors: arguments.engine.connectors)
        for why in badFaults { Log.warning("\(ConnectorFaultsFile.path(state)): skipped \(why)") }
        weldedLatched = latched
        station.onWelded = { [unowned self] c in self.latchWeld(connector: c) }
        for c in latched.sorted() {
            Log.error("connector \(c + 1): its relay welded before this start and is latched out of service until a technician clears it (paybridgectl clear-fault \(c + 1))")
            station.post(.engine(.relay(connector: c, .welded)))
        }
        for c in csmsSettings.inoperative.sorted() {
            Log.info("connector \(c + 1) is held out of service: the CSMS made it inoperative (\(CSMSSettingsFile.path(state)))")
            station.post(.engine(.connectorHeld(connector: c, true)))
        }
        let notifier = self.notifier
        station.onNotice = { [unowned self] severity, text in
            Log.write(LogLevel(severity), text)
            self.diagnostics?.stationChanged()
            // Errors and warnings are what a technician looking at `systemctl status` needs first.
            if severity <= .warning { notifier?.notify(self.statusLine("\(severity): \(text)")) }
        }
        // A ledger that cannot write: the station has opened every relay and takes no payments. The
        // loop stops after `ledgerFailureGrace` (long enough for the terminal to be told to drop its
        // card) and the process exits non-zero, so that systemd restarts it: the restart recovers
        // from what is really on disk, and refuses to start (the write probe) while the disk still
        // cannot take a record.
        station.onLedgerFailure = { [unowned self] error in
            guard self.exitStatus == 0 else { return }
            self.exitStatus = ExitStatus.ledgerFailed
            Log.error("ledger failed (\(error)): relays open, no payments; exiting with status \(ExitStatus.ledgerFailed) in \(Self.ledgerFailureGrace) so that a restart recovers from the disk")
            notifier?.notify(self.statusLine("ERROR: ledger failed (\(error)); exiting to recover"))
            _ = self.loop.schedule(at: MonotonicClock.now() + Self.ledgerFailureGrace) {
                notifier?.notify("STOPPING=1")
                station.shutdown()
                self.loop.stop()
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
        chargerProcess?.onLost = { [unowned self] reason in
            let why = "charger I/O lost: \(reason); relays considered open, no payments are taken until the daemon is restarted"
            station.notTakingPayments = why
            Log.error(why)
            notifier?.notify(self.statusLine("error: \(why)"))
            station.post(.engine(.acceptNewSessions(false)))
        }
        chargerProcess?.port.onProblem = { severity, text in Log.write(LogLevel(severity), text) }
        controller?.onNotice = { [unowned station] severity, text in station.notice(severity, text) }
        station.deadLetterPath = state + "/dead-letters.jsonl"
        // OCPP-J's heartbeat is the RPC session's (the interval the CSMS set at Boot).
        station.heartbeatInterval = ocppj == nil ? arguments.heartbeat : nil
        station.recovered(highestKey: entries.map(\.session).max() ?? 0)
        station.summaries = SummaryKeeper(retention: SummaryRetention(days: arguments.config.retentionDays,
                                                                      diskBudgetBytes: opened.ledger.options.diskBudgetBytes),
                                          records: opened.records)
        if case .link(let driver) = terminalSource {
            let linkLog = driver.onEvent
            let terminalLog = TerminalLog(loop: loop, driver: driver)
            self.terminalLog = terminalLog
            driver.onEvent = { [unowned self] e in
                terminalLog.log(e)
                linkLog(e)
                switch e {
                case .up, .down: self.linkChangedAt = MonotonicClock.now()
                default: break
                }
                switch e {
                case .up, .down, .terminalReset:
                    notifier?.notify(self.statusLine(describe(e).1))
                default: break
                }
            }
        }
        if arguments.drain {
            station.post(.engine(.acceptNewSessions(false)))
            // Done when nothing is open; checked every 200 ms on the loop.
            func check() {
                if station.engine.sessions.isEmpty {
                    Log.info("drained: no open sessions")
                    loop.stop()
                    onDrained()
                } else {
                    _ = loop.schedule(at: MonotonicClock.now() + .milliseconds(200)) { check() }
                }
            }
            _ = loop.schedule(at: MonotonicClock.now() + .milliseconds(200)) { check() }
        }
        let conditionSettings = TerminalConditions.Settings(batteryWarnDays: arguments.config.batteryWarnDays,
                                                            storageDays: arguments.config.storageDays,
                                                            batteryBacked: arguments.config.terminalFamily == .apollo)
        station.configureConditions(conditionSettings)
        station.recovered(conditions: TerminalConditions(settings: conditionSettings, records: conditionRecords))
        book = SessionBook(summaries: summaryRecords, entries: entries)
        station.onAppended = { [unowned self] kind, body in self.book.record(kind: kind, body: body) }
        if controller != nil {
            // Until a controller connects to the socket nothing could close a relay or meter.
            station.notTakingPayments = Self.noControllerReason
            Log.warning(Self.noControllerReason)
            station.post(.engine(.acceptNewSessions(false)))
        }
        station.start(recoveryEffects: effects, entries: entries, outboxRecords: outboxRecords)
        if !arguments.config.meterDevice.isEmpty {
            do { meterFeed = try makeMeterFeed(station: station) } catch {
                closeOnFailedBoot()
                throw error
            }
            meterFeed?.start()
        }
        if let j = ocppj {
            j.onReady = { [unowned self, unowned station] in
                if self.bootReason != .powerUp {
                    // Said and accepted: the next start is a power-up unless told otherwise.
                    BootReasonFile.remove(state: self.running.stateDirectory)
                    self.bootReason = .powerUp
                }
                station.post(.uplinkReady)
            }
            j.onIncomingCall = { [unowned self] id, action, payload in self.csmsCall(id: id, action: action, payload: payload) }
            j.onResult = { [unowned self] message, payload in self.transactionResponse(message, payload) }
            j.onNotice = { severity, text in Log.write(LogLevel(severity), text) }
            j.start()
        }
        // The diagnostics exist without the socket too: the metrics file is built from them.
        let diagnostics = StationDiagnostics(daemon: self)
        self.diagnostics = diagnostics
        station.onSynced = { [weak diagnostics] ns in diagnostics?.syncLatency.observe(nanoseconds: UInt64(max(0, ns))) }
        openDiagnosticsSocket(diagnostics)
        startMetricsFile(diagnostics)
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
    }

    /// Opens the technicians' socket: the one systemd passed (socket activation), else
    /// `diagnostics.socket` unless empty. A socket that cannot be opened is logged at error and the
    /// daemon runs without it: payments do not depend on it.
    func openDiagnosticsSocket(_ handler: StationDiagnostics) {
        let listener: UnixListener
        switch SystemdSocketActivation.takeListener() {
        case .success(let l)?:
            listener = l
            Log.info("diagnostics: using the socket systemd passed (socket activation)")
        case .failure(let problem)?:
            Log.error("diagnostics: \(problem); the socket systemd passed is not used")
            return
        case nil:
            let path = running.diagnosticsSocket
            guard !path.isEmpty else { return }
            do { listener = try UnixSocket.listen(path: path) } catch {
                Log.error("diagnostics: cannot open \(path): \(error); running without the technicians' socket")
                return
            }
        }
        let access = DiagnosticsAccess(daemonUID: getuid(), adminGID: UnixSocket.groupID(named: running.adminGroup))
        if access.adminGID == nil {
            Log.warning("diagnostics: group '\(running.adminGroup)' (diagnostics.admin_group) does not exist: only root and the daemon's user may change anything")
        }
        let server = DiagnosticsServer(loop: loop, listener: listener, access: access, maxClients: running.maxDiagnosticsClients, handler: handler)
        server.onLog = { level, text in
            switch level {
            case .warning: Log.warning(text)
            case .info: Log.info(text)
            }
        }
        diagnosticsServer = server
        controller?.onRelayRequest = { [weak handler] c, closed in handler?.relayRequested(connector: c, closed: closed) }
        controller?.onOffer = { [weak handler] c, offer in handler?.offered(connector: c, offer) }
        Log.observer = { [weak handler] level, text in handler?.logged(level, text) }
        Log.info("diagnostics: listening on \(listener.path ?? "the socket systemd passed") (up to \(server.maxClients) clients)")
    }

    /// `charger.io = socket` without a controller connected to the diagnostic socket.
    public static let noControllerReason = "charger.io = socket: no charger controller is connected to the diagnostic socket, so nothing can close a relay or meter and no payments are taken"

    /// The charger's controller connected to the socket or left it: payments are taken only
    /// while one is connected (a reason of its own, never one set for something else, is
    /// cleared). Losing it faults what was charging (`ControllerChargerPort`).
    func controllerConnection(_ connected: Bool) {
        guard let controller, let station, controller.controllerConnected != connected else { return }
        controller.controllerConnected = connected
        if connected {
            guard station.notTakingPayments == Self.noControllerReason else { return }
            station.notTakingPayments = nil
            if !arguments.drain && station.ledgerError == nil { station.post(.engine(.acceptNewSessions(true))) }
            notifier?.notify(statusLine("charger controller connected"))
        } else {
            guard station.notTakingPayments == nil else { return }
            station.notTakingPayments = Self.noControllerReason
            station.post(.engine(.acceptNewSessions(false)))
            notifier?.notify(statusLine("warning: charger controller disconnected"))
        }
    }

    func closeOnFailedBoot() {
        chargerProcess?.stop()
        chargerProcess = nil
        meterFeed?.stop()
        meterFeed = nil
        // The engine opened every relay on stop; this also lets go of the lines.
        gpioPort?.shutdown()
        gpioPort = nil
        ledger?.close()
        ledger = nil
    }

    /// SIGTERM/SIGINT: relays open, no new cards, the loop stops; open sessions are left to recovery.
    public func stop() {
        guard !stopping, let station else { return }
        stopping = true
        terminalLog?.flush()
        Log.info("stopping: relays open, no new cards; open sessions are left to recovery")
        notifier?.notify("STOPPING=1")
        station.shutdown()
        ocppj?.stop()
        loop.stop()
    }

    /// After the loop has stopped: the charger-sim child stopped, the ledger closed.
    public func finish() {
        Log.observer = nil
        metricsFile?.stop()
        diagnosticsServer?.close()
        diagnosticsServer = nil
        chargerProcess?.stop()
        chargerProcess = nil
        ledger?.close()
        ledger = nil
    }

    /// SIGHUP: re-reads the configuration file and applies the command line's flags over it, as
    /// at start, then `reload(to:)`. Every outcome is logged (what was applied, what waits for a
    /// restart, or why nothing changed); the change is returned, nil when nothing was reloaded.
    @discardableResult
    public func reloadFromFile() -> ConfigChange? {
        guard let path = arguments.configPath else {
            Log.warning("SIGHUP: no configuration file to reload")
            return nil
        }
        let fresh: DaemonArguments
        do throws(ReloadError) { fresh = try reloadedArguments(path) } catch {
            switch error {
            case .refused(.unreadableConfig(_, let reason)): Log.error("paybridged: \(reason)")
            case .refused(.configProblems(_, let problems)):
                Log.error("SIGHUP: \(path) has \(problems.count) problems; nothing reloaded")
                for p in problems { Log.error("\(path): \(p)") }
            default: Log.error("SIGHUP: \(path) with the command line: \(error); nothing reloaded")
            }
            return nil
        }
        let change: ConfigChange
        do throws(ReloadError) { change = try reload(to: fresh) } catch {
            Log.error("SIGHUP: \(error); nothing reloaded")
            return nil
        }
        let e = fresh.engine
        Log.info("SIGHUP: reloaded \(path): \(change.summary) (now: preauth \(e.preauthAmount), tariff \(e.tariff.currency) \(e.tariff.startFee)+\(e.tariff.energyPricePerKWh)/kWh+\(e.tariff.timePricePerMinute)/min (milli), offline policy \(e.offlinePolicy), log level \(fresh.config.logLevel))")
        return change
    }

    /// The file at `path`, checked, with the start's command line over it.
    func reloadedArguments(_ path: String) throws(ReloadError) -> DaemonArguments {
        do throws(ArgumentError) {
            let c = try DaemonArguments.checkedConfig(path)
            guard case .run(let fresh) = try DaemonArguments.parse(commandLine, loaded: c) else {
                throw ArgumentError.refused("the command line is not the station's", usage: false)
            }
            return fresh
        } catch { throw .refused(error) }
    }

    /// Applies a checked configuration: what is safe on the fly takes effect (settings for
    /// sessions that start from now on: pre-authorisation, tariff, timeouts, offline policy; the
    /// heartbeat, the bearer token and the log level); the rest (terminal, charger, state
    /// directory, cloud connection) keeps its running value and is named in `needsRestart`.
    /// A token file that cannot be loaded changes nothing (thrown).
    @discardableResult
    public func reload(to fresh: DaemonArguments) throws(ReloadError) -> ConfigChange {
        if let client = cloudClient, fresh.tokenFile != nil || running.tokenFile != nil {
            do {
                client.bearerToken = try fresh.tokenFile.map { try BearerToken.load(path: $0) }
            } catch {
                throw .tokenFile("\(error)")
            }
        }
        // Everything checked: from here the reload is carried out, and only here does it change anything.
        let change = ConfigChange(from: running, to: fresh.config)
        for key in change.applied { if let v = fresh.config.value(of: key) { _ = ConfigParser.apply(key, v, to: &running) } }
        // What the CSMS set (SetVariables) stays over the file's value, as it would across a restart.
        station.post(.engine(.reconfigure(csmsSettings.applied(to: running.engine))))
        if ocppj == nil { station.heartbeatInterval = running.heartbeatSeconds == 0 ? nil : .seconds(running.heartbeatSeconds) }
        if let l = LogLevel(name: running.logLevel) { Log.threshold = l }
        return change
    }

    /// The OCPP-J uplink `cloud.*` describes: the URL (checked by the configuration already), the
    /// Basic password (profiles 1 and 2), the timings, and the Boot payload naming this station.
    /// `charger.gpio.N.*` as the GPIO port takes them, for every connector.
    public static func gpioConfigs(_ config: DaemonConfig) throws(StationDaemonError) -> [GPIOConnectorConfig] {
        func ref(_ l: GPIOLineSetting?) -> GPIOLineRef? { l.map { GPIOLineRef(chip: $0.chip, line: $0.line, activeLow: $0.activeLow) } }
        var configs: [GPIOConnectorConfig] = []
        for n in 1...config.engine.connectors {
            guard let relay = ref(config.gpio[n]?.relay) else { throw .gpio("charger.gpio.\(n).relay is not set") }
            configs.append(GPIOConnectorConfig(relay: relay, mirror: ref(config.gpio[n]?.mirror), plug: ref(config.gpio[n]?.plug),
                                               debounce: .milliseconds(config.gpioDebounceMs)))
        }
        return configs
    }

    /// `paybridged --deenergise-relays` (the unit's `ExecStopPost=`): drives every configured
    /// relay coil to its off level and lets go, whatever state the daemon died in. Exit status 0
    /// done (or nothing configured), 1 a line could not be driven (logged).
    public static func deenergiseRelays(_ config: DaemonConfig) -> Int32 {
        guard config.chargerIO == .gpio else { return 0 }
        do {
            let configs = try gpioConfigs(config)
            do throws(GPIOError) { try GPIOChargerPort.deenergiseRelays(configs) } catch { throw StationDaemonError.gpio("\(error)") }
            Log.info("relays de-energised: " + configs.map { "\($0.relay)" }.joined(separator: ", "))
            return 0
        } catch {
            Log.error("paybridged --deenergise-relays: \(error)")
            return 1
        }
    }

    /// `meter.device`: the Modbus meters, each reading given to the charger port's checks.
    func makeMeterFeed(station: Station) throws(StationDaemonError) -> MeterFeed {
        let config = arguments.config
        var connectorOf: [UInt8: (connector: Int, model: MeterModel)] = [:]
        var specs: [MeterSpec] = []
        for (n, m) in config.meters.sorted(by: { $0.key < $1.key }) {
            guard let model = MeterModel.named(m.model) else { throw .meter("charger.meter.\(n): no register map \(m.model)") }
            connectorOf[m.address] = (n - 1, model)
            specs.append(MeterSpec(address: m.address, model: model))
        }
        let settings = MeterLinkSettings(path: config.meterDevice, line: config.meterLine, meters: specs,
                                         pollInterval: .milliseconds(config.meterPollMs), responseTimeout: .milliseconds(config.meterResponseTimeoutMs),
                                         maxRetries: Int(config.meterRetries),
                                         frameSilence: config.meterFrameSilenceMs == 0 ? nil : .milliseconds(config.meterFrameSilenceMs))
        let deliver: (Int, Int64, Int64?, String, Instant) -> String?
        let isCharging: (Int) -> Bool = { [unowned station] c in
            if case .charging = station.engine.connectorOffers[c] { return true }
            return false
        }
        if let port = controller {
            // The controller drives the contactors; the meter is read here, judged by the
            // port's MeterGuard, and a serial number that changes while charging is refused.
            var serials: [Int: String] = [:]
            deliver = { c, wh, w, serial, _ in
                if let known = serials[c], known != serial, isCharging(c) {
                    return "the meter's serial number changed from \(known) to \(serial) while charging"
                }
                serials[c] = serial
                do throws(ControllerInputError) { try port.meter(connector: c + 1, registerWh: wh, powerW: w) } catch {
                    if case .meterRejected(let r) = error { return r.explanation }
                    return "\(error)"
                }
                return nil
            }
        } else if let port = gpioPort {
            // The port judges the reading (MeterGuard) and the serial number (MeterSerials).
            deliver = { c, wh, w, serial, at in
                do throws(GPIOMeterError) { try port.meterReading(connector: c, registerWh: wh, powerW: w, serial: serial, at: at) } catch {
                    switch error {
                    case .meterRejected(let r): return r.explanation
                    case let .serialChanged(expected, got): return "the meter's serial number changed from \(expected) to \(got) while charging"
                    case .connectorOutOfRange: return "\(error)"
                    }
                }
                return nil
            }
        } else {
            throw .meter("meter.device needs charger.io = socket or gpio (charger.io = \(config.chargerIO.rawValue))")
        }
        do {
            let feed = try MeterFeed(loop: loop, settings: settings, connectorOf: connectorOf, deliver: deliver,
                                     onIdentity: { [unowned station] c, serial in station.post(.engine(.meterIdentity(connector: c, serial: serial))) },
                                     isCharging: isCharging)
            Log.info("energy meters on \(config.meterDevice) (\(config.meterLine)): " + specs.map { "\($0.address) \($0.model.rawValue) for connector \(connectorOf[$0.address]!.connector + 1)" }.joined(separator: ", "))
            return feed
        } catch { throw .meter("meter.device \(config.meterDevice): \(error)") }
    }

    /// A welded relay (`Station.onWelded`): latched on disk before the engine hears of it.
    func latchWeld(connector c: Int) {
        guard !weldedLatched.contains(c) else { return }
        weldedLatched.insert(c)
        do { try ConnectorFaultsFile.write(weldedLatched, state: running.stateDirectory) } catch {
            Log.error("connector \(c + 1): the welded-relay latch could not be written (\(error)); it holds until the daemon stops")
        }
    }

    /// Why a technician's `clear-fault` is refused; nil when the latch was cleared.
    public func clearWeld(connector c: Int) -> String? {
        guard weldedLatched.contains(c) else { return "connector \(c + 1) has no welded-relay latch" }
        if station.charger.contactReadsOpen(connector: c) == false {
            return "connector \(c + 1): the contactor still reads closed; it cannot be cleared until it opens"
        }
        var remaining = weldedLatched
        remaining.remove(c)
        do { try ConnectorFaultsFile.write(remaining, state: running.stateDirectory) } catch {
            return "the latch file could not be rewritten (\(error)); nothing cleared"
        }
        weldedLatched = remaining
        station.charger.weldCleared(connector: c)
        station.post(.engine(.weldCleared(connector: c)))
        return nil
    }

    func makeOCPPJUplink(url: String, client: HTTPClient, seed: UInt64) throws(StationDaemonError) -> OCPPJUplink {
        let config = arguments.config
        let parsed: WebSocketURL
        do { parsed = try WebSocketURL(parsing: url) } catch { throw .httpsClient("cloud.url: \(error)") }
        var password: [UInt8]?
        if let path = config.passwordFile {
            do { password = Array(try BearerToken.load(path: path).utf8) } catch { throw .passwordFile("\(error)") }
        }
        // A reason the previous process left (a CSMS's Reset), or a power-up.
        bootReason = BootReasonFile.read(state: config.stateDirectory) ?? .powerUp
        var settings = OCPPJSettings(url: parsed, stationId: config.stationId, password: password,
                                     bootPayload: BootPayload.make(reason: bootReason, vendor: "paybridge", model: "paybridge",
                                                                   serial: config.stationId, firmware: paybridgeVersion))
        settings.offerOCPP201 = config.ocpp201Fallback
        settings.pingInterval = config.pingSeconds == 0 ? nil : .seconds(config.pingSeconds)
        settings.responseTimeout = .seconds(config.responseTimeoutSeconds)
        settings.handledActions = CSMSRequestHandler.handledActions
        return OCPPJUplink(loop: loop, client: client, settings: settings, seed: seed)
    }
}
