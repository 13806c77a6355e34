import ChargerPort
import Ledger
import StationCore
import PaymentEngine
import TerminalConditions
import Platform
import TerminalPort
import Timebase
import Uplink
import JSONLines
import Glibc

/// The imperative shell around the station's pure core (`StationCore`): it feeds inputs in,
/// takes the core's effects out one at a time and carries each out (ledger, terminal, charger,
/// card decider, cloud) before taking the next. Every decision, the write-ahead ordering among
/// them, is the core's; the shell only reports what failed and what it measured (the ledger's size).
public final class Station {
    public typealias Input = StationCore.Input

    /// The pure core; `engine` and `outbox` are its.
    public internal(set) var core: StationCore
    public var engine: PaymentEngine { core.engine }
    public var outbox: Outbox { core.outbox }
    /// The terminal's operating rules (swap, tamper, battery, storage): warnings, why payments
    /// are blocked, whether a test transaction is recommended, when the terminal was last seen.
    public var conditions: TerminalConditions { core.conditions }
    public let ledger: Ledger
    /// The payment terminal, whatever its protocol.
    public let terminal: TerminalPort
    /// The charger's relays, plugs and meters.
    public let charger: ChargerPort
    public let decider: CardDecider
    /// Every notice, the engine's and the station's own, with its severity.
    public var onNotice: (NoticeSeverity, String) -> Void = { _, _ in }
    /// A connector's relay welded (0-based): a fault a technician must clear, which the daemon
    /// keeps across restarts. Called before the engine takes the connector out of service.
    public var onWelded: (Int) -> Void = { _ in }
    /// The ledger failed: the station has opened every relay and takes no payments; what the
    /// process does next is the daemon's decision (it exits so that a restart recovers).
    public var onLedgerFailure: (LedgerError) -> Void = { _ in }
    /// The last error or warning notice, for STATUS= and the technicians' status.
    public private(set) var lastProblem: (severity: NoticeSeverity, text: String)?
    /// Where outbox messages go; nil: nothing is reported (no cloud configured).
    public let uplink: UplinkTransport?
    /// Permanent rejections also go here, one JSON object per line, for technicians.
    public var deadLetterPath: String?
    /// Non-transaction messages share one queue, so the cloud sees them in order.
    public static let stationQueue = StationCore.stationQueue
    /// A Heartbeat goes out after this long without traffic to the cloud (nil: never). It is a
    /// liveness signal, not a fact: it is not written to the ledger and not retried.
    public var heartbeatInterval: Duration? {
        get { core.settings.heartbeatInterval }
        set { core.settings.heartbeatInterval = newValue; rearm() }
    }
    /// Entries persisted since start, for status and tests.
    public var persisted: Int { core.persisted }
    public private(set) var ledgerError: LedgerError?
    /// Why this station takes no new payments by configuration (no charger I/O), shown in the
    /// log, STATUS= and the technicians' status; nil when it takes them.
    public var notTakingPayments: String?
    /// Refuse new sessions above this share of the disk budget, so running ones keep room to finish.
    public static let storageHighWaterPercent = StationCore.storageHighWaterPercent
    /// Compact the ledger after this many records: sealed segments of closed sessions go.
    public static let compactionEvery = StationCore.compactionEvery
    /// Summaries of closed sessions through compaction; the daemon replaces it with one built
    /// from the recovered records and `state.retention_days`.
    public var summaries: SummaryKeeper

    let loop: EventLoop
    var pumping = false
    /// The highest key found at recovery, handed to the core at start.
    var recoveredHighestKey: SessionKey = 0
    lazy var timer = DeadlineTimer(loop: loop) { [unowned self] in self.post(.tick) }

    public init(loop: EventLoop, engine: PaymentEngine, ledger: Ledger, terminal: TerminalPort,
                charger: ChargerPort, decider: CardDecider,
                uplink: UplinkTransport? = nil, stationId: String = "station", outbox: Outbox = Outbox()) {
        self.loop = loop
        self.uplink = uplink
        var settings = StationCore.Settings()
        settings.uplink = uplink != nil
        settings.stationId = stationId
        settings.diskBudgetBytes = ledger.options.diskBudgetBytes
        core = StationCore(engine: engine, outbox: outbox, settings: settings,
                           idSeed: UInt64(truncatingIfNeeded: WallClock.nowMillisecondsSinceEpoch()))
        core.observeLedger(usedBytes: ledger.usedBytes)
        self.ledger = ledger
        self.terminal = terminal
        self.charger = charger
        self.decider = decider
        summaries = SummaryKeeper(retention: SummaryRetention(diskBudgetBytes: ledger.options.diskBudgetBytes))
        terminal.onInputs = { [unowned self] inputs in self.post(.terminal(inputs)) }
        terminal.onNotice = { [unowned self] severity, text in self.notice(severity, text) }
        charger.onInputs = { [unowned self] inputs in
            // What the contactors really did, for the log and a technician's `watch` (the
            // engine's own notices cover only the failures).
            for case let .relay(c, feedback) in inputs where feedback == .closed || feedback == .opened {
                self.notice(.info, "connector \(c + 1): relay \(feedback == .closed ? "closed" : "open")")
            }
            // Latched before the engine hears of it: the daemon keeps it across a restart.
            for case let .relay(c, .welded) in inputs { self.onWelded(c) }
            self.post(.charger(inputs))
        }
        terminal.onCondition = { [unowned self] condition in self.post(.terminalCondition(condition)) }
    }

    /// The conditions recovered from the ledger (`TerminalConditions(settings:records:)` over
    /// what `Ledger.open` returned), before `start`.
    public func recovered(conditions: TerminalConditions) { core.recovered(conditions: conditions) }

    /// The conditions' limits (`terminal.battery_warn_days`, `terminal.storage_days`, whether the
    /// family's tamper protection is battery-backed), at start or after a reload.
    public func configureConditions(_ settings: TerminalConditions.Settings) { core.setConditionSettings(settings) }

    /// Opens every relay (the safe state at start), carries out what recovery asked for, and starts the terminal.
    /// `entries` and `outboxRecords` are what the ledger held: the reporter replays the entries, and
    /// any message whose queued record did not reach the disk before a crash is queued again (same id).
    public func start(recoveryEffects: [EngineEffect], entries: [LedgerEntry] = [], outboxRecords: [OutboxRecord] = []) {
        core.start(recoveryEffects: recoveryEffects, entries: entries, outboxRecords: outboxRecords,
                   highestKey: recoveredHighestKey, at: moment())
        pump()
        terminal.start()
    }

    /// Stops gracefully: relays open, no new cards, the ledger synced; open sessions are left to recovery.
    public func shutdown() {
        post(.engine(.shutdown))
        terminal.stop()
    }

    public func post(_ input: Input) {
        core.receive(input)
        pump()
    }

    /// Carries out the core's effects until it has none; inputs that arrive meanwhile (a port
    /// answering at once) are queued in the core and worked on in their turn.
    func pump() {
        guard !pumping else { return }
        pumping = true
        while let effect = core.next(at: moment()) { carryOut(effect) }
        pumping = false
        rearm()
    }

    func moment() -> Moment { Moment(monotonic: MonotonicClock.now(), wallMillis: WallClock.nowMillisecondsSinceEpoch()) }

    func carryOut(_ effect: StationCore.Effect) {
        switch effect {
        case let .append(kind, body):
            do {
                _ = try ledger.append(kind: kind, body: body)
                core.observeLedger(usedBytes: ledger.usedBytes)
                onAppended(kind, body)
            } catch { failed(error) }
        case .sync:
            let started = MonotonicClock.now()
            do { try ledger.sync() } catch { failed(error) }
            syncs += 1
            onSynced((MonotonicClock.now() - started).nanosecondsClamped)
        case let .terminal(id, command):
            terminal.perform(id, command)
        case let .relay(c, closed):
            relayOperations += 1
            notice(.info, "connector \(c + 1): relay \(closed ? "close" : "open") commanded")
            charger.setRelay(connector: c, closed: closed)
        case let .askCloud(key, card, connector):
            decider.decide(session: key, card: card, connector: connector) { [weak self] d in self?.post(.engine(.cloud(key, d))) }
        case .send(let m):
            uplink?.send(m) { [weak self] result in self?.post(.delivered(id: m.id, result)) }
        case .heartbeat(let m):
            uplink?.send(m) { _ in }
        case let .show(c, offer):
            charger.show(connector: c, offer)
        case let .notice(severity, text):
            notice(severity, text)
        case let .deadLetter(id, line):
            recordDeadLetter(id, line)
        case let .compact(open, floor, pending, wall, conditions):
            compact(openSessions: open, highestKey: floor, keptMessages: pending, wallMillis: wall, conditionsGeneration: conditions)
        }
    }

    func recordDeadLetter(_ id: String, _ line: String) {
        guard let path = deadLetterPath else { return }
        // Never through a symlink or into a file linked elsewhere: the daemon runs as root. The
        // message stays in the ledger as dead-lettered either way; the file is for technicians.
        do {
            let fd = try StateDirectory.openForAppend(path)
            defer { fd.close() }
            do { try fd.writeAll(Array((line + "\n").utf8), timeout: .seconds(1)) } catch {
                deadLetterFileFailures += 1
                notice(.error, "dead letters: message \(id) not written to \(path): \(error); it stays in the ledger")
            }
        } catch {
            deadLetterFileFailures += 1
            notice(.error, "dead letters: message \(id) not written: \(error); it stays in the ledger")
        }
    }
    /// Every record appended (kind, body), after the append: the technicians' session book follows the ledger.
    public var onAppended: (UInt16, [UInt8]) -> Void = { _, _ in }
    /// Every sync carried out, with how long it took (nanoseconds): the metrics' histogram.
    public var onSynced: (Int64) -> Void = { _ in }
    /// Syncs carried out since start.
    public private(set) var syncs = 0
    /// Relay commands given since start.
    public private(set) var relayOperations = 0
    /// Dead letters that could not be written to `deadLetterPath` (refused file, write error).
    public private(set) var deadLetterFileFailures = 0

    /// Drops the records of closed sessions now (the core asks for it every `compactionEvery`
    /// records). A closed session's entries leave a summary behind (`SummaryKeeper`), written first.
    public func compact() {
        compact(openSessions: Set(engine.sessions.keys), highestKey: max(core.highestKey, recoveredHighestKey),
                keptMessages: core.keptMessageIDs, wallMillis: WallClock.nowMillisecondsSinceEpoch(),
                conditionsGeneration: core.conditions.generation)
    }

    func compact(openSessions: Set<SessionKey>, highestKey: SessionKey, keptMessages: Set<String>, wallMillis: Int64,
                 conditionsGeneration: UInt64) {
        guard ledgerError == nil else { return }
        do {
            let report = try summaries.compact(ledger, openSessions: openSessions, highestKey: highestKey,
                                               keptMessages: keptMessages, conditionsGeneration: conditionsGeneration, now: wallMillis)
            core.observeLedger(usedBytes: ledger.usedBytes)
            if report.ledger.segmentsDeleted > 0 {
                notice(.info, "ledger compacted: \(report.ledger.segmentsDeleted) segments, \(report.ledger.bytesFreed) bytes freed, "
                       + "\(report.written) session summaries written")
            }
            for (severity, text) in report.notices { notice(severity, text) }
        } catch {
            failed(error)
        }
    }

    /// The compaction rule (`StationCore.isLive`) on a ledger record.
    public static func isLive(_ record: LedgerRecord, openSessions: Set<SessionKey>, highestKey: SessionKey,
                              keptMessages: Set<String> = [], conditionsGeneration: UInt64 = 0) -> Bool {
        StationCore.isLive(kind: record.kind, body: record.body, openSessions: openSessions, highestKey: highestKey,
                           keptMessages: keptMessages, conditionsGeneration: conditionsGeneration)
    }

    /// Tells the station the highest session key found at recovery.
    public func recovered(highestKey k: SessionKey) { recoveredHighestKey = max(recoveredHighestKey, k) }

    /// A record could not be made durable: whatever depended on it is not done. The core opens
    /// every relay first and stops taking payments; a restart recovers from what is on disk.
    func failed(_ error: LedgerError) {
        guard ledgerError == nil else { return }
        ledgerError = error
        core.ledgerFailed("\(error)")
        // The relays open at once, whatever is in the middle of being carried out.
        if !pumping { pump() }
        onLedgerFailure(error)
    }

    /// A notice from the station, its engine or one of its ports (the controller's unconfirmed
    /// relay opening): `onNotice`, and `lastProblem` for an error or a warning.
    public func notice(_ severity: NoticeSeverity, _ text: String) {
        if severity <= .warning { lastProblem = (severity, text) }
        onNotice(severity, text)
    }

    func rearm() { timer.arm(core.nextDeadline) }
}
