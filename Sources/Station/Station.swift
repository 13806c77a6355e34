import Ledger
import PaymentEngine
import Platform
import TerminalPort
import Timebase
import Uplink
import JSONLines
import Glibc

/// The imperative shell around the payment engine: it feeds inputs in one at a time, in the
/// order they happened, and carries out the engine's effects in order. A `persist` is appended
/// to the ledger, and the ledger is synced (fdatasync) before the first effect after it: that
/// single rule is what makes every relay close, capture and authorisation written ahead.
public final class Station {
    public enum Input {
        case engine(EngineInput)
        /// What the terminal said, as engine inputs, in order.
        case terminal([TerminalInput])
        /// What the charger's hardware said (plug, meter, relay feedback), in order.
        case charger([EngineInput])
        /// The outcome of sending an outbox message to the cloud.
        case delivered(id: String, DeliveryResult)
        case tick
    }

    public private(set) var engine: PaymentEngine
    public let ledger: Ledger
    /// The payment terminal, whatever its protocol.
    public let terminal: TerminalPort
    /// The charger's relays, plugs and meters.
    public let charger: ChargerPort
    public let decider: CardDecider
    /// Every notice, the engine's and the station's own, with its severity.
    public var onNotice: (NoticeSeverity, String) -> Void = { _, _ in }
    /// The ledger failed: the station has opened every relay and takes no payments; what the
    /// process does next is the daemon's decision (it exits so that a restart recovers).
    public var onLedgerFailure: (LedgerError) -> Void = { _ in }
    /// The last error or warning notice, for STATUS= and the technicians' status.
    public private(set) var lastProblem: (severity: NoticeSeverity, text: String)?
    /// Where outbox messages go; nil: nothing is reported (no cloud configured).
    public let uplink: UplinkTransport?
    public private(set) var outbox: Outbox
    var reporter: TransactionReporter
    /// Sends waiting for the fdatasync that makes their queued record durable.
    var pendingSends: [OutboxMessage] = []
    /// Records appended since the last fdatasync; no send leaves while this is true.
    var unsynced = false
    /// A sync at the next turn of the loop, for records nothing waits on (station messages).
    var syncSoonTimer: TimerToken?
    /// Permanent rejections also go here, one JSON object per line, for technicians.
    public var deadLetterPath: String?
    /// The connector statuses last reported to the cloud.
    var reportedStatus: [PaymentEngine.ConnectorStatus] = []
    /// Non-transaction messages share one queue, so the cloud sees them in order.
    public static let stationQueue = "station"
    /// A Heartbeat goes out after this long without traffic to the cloud (nil: never). It is a
    /// liveness signal, not a fact: it is not written to the ledger and not retried.
    public var heartbeatInterval: Duration? = .seconds(300)
    var lastUplinkTraffic = MonotonicClock.now()
    var heartbeatTimer: TimerToken?
    var heartbeatIDs = MessageIDs(seed: UInt64(truncatingIfNeeded: WallClock.nowMillisecondsSinceEpoch()))
    /// Entries persisted since start, for status and tests.
    public private(set) var persisted = 0
    public private(set) var ledgerError: LedgerError?
    /// Why this station takes no new payments by configuration (no charger I/O), shown in the
    /// log, STATUS= and the technicians' status; nil when it takes them.
    public var notTakingPayments: String?

    let loop: EventLoop
    var queue: [Input] = []
    var processing = false
    lazy var timer = DeadlineTimer(loop: loop) { [unowned self] in self.post(.tick) }
    /// What each connector was last shown to offer (`ChargerPort.show`).
    var shownOffers: [PaymentEngine.ConnectorOffer] = []
    /// Refuse new sessions above this share of the disk budget, so running ones keep room to finish.
    public static let storageHighWaterPercent = 90
    /// Compact the ledger after this many records: sealed segments of closed sessions go.
    public static let compactionEvery = 4096
    var sinceCompaction = 0
    /// The highest session key seen: its records stay, so keys keep growing after compaction.
    var highestKey: SessionKey = 0
    /// Summaries of closed sessions through compaction; the daemon replaces it with one built
    /// from the recovered records and `state.retention_days`.
    public var summaries: SummaryKeeper

    public init(loop: EventLoop, engine: PaymentEngine, ledger: Ledger, terminal: TerminalPort,
                charger: ChargerPort, decider: CardDecider,
                uplink: UplinkTransport? = nil, stationId: String = "station", outbox: Outbox = Outbox()) {
        self.loop = loop
        self.uplink = uplink
        self.outbox = outbox
        self.reporter = TransactionReporter(stationId: stationId)
        self.engine = engine
        self.ledger = ledger
        self.terminal = terminal
        self.charger = charger
        self.decider = decider
        summaries = SummaryKeeper(retention: SummaryRetention(diskBudgetBytes: ledger.options.diskBudgetBytes))
        terminal.onInputs = { [unowned self] inputs in self.post(.terminal(inputs)) }
        terminal.onNotice = { [unowned self] severity, text in self.notice(severity, text) }
        charger.onInputs = { [unowned self] inputs in self.post(.charger(inputs)) }
    }

    /// Opens every relay (the safe state at start), carries out what recovery asked for, and starts the terminal.
    /// `entries` and `outboxRecords` are what the ledger held: the reporter replays the entries, and
    /// any message whose queued record did not reach the disk before a crash is queued again (same id).
    public func start(recoveryEffects: [EngineEffect], entries: [LedgerEntry] = [], outboxRecords: [OutboxRecord] = []) {
        for c in 0..<engine.config.connectors { charger.setRelay(connector: c, closed: false) }
        processing = true
        if uplink != nil {
            outbox = Outbox.recover(config: outbox.config, records: outboxRecords, now: MonotonicClock.now())
            let known = Set(outboxRecords.map(\.messageID))
            var missing: [OutboxMessage] = []
            for e in entries {
                for m in reporter.messages(for: e, offline: true, now: WallClock.nowMillisecondsSinceEpoch()) where !known.contains(m.id) {
                    missing.append(m)
                }
            }
            if !missing.isEmpty { notice(.warning, "uplink: \(missing.count) messages recreated from the ledger") }
            for m in missing { handleOutbox(outbox.enqueue(m, now: MonotonicClock.now())) }
            syncLedger()
        }
        apply(recoveryEffects)
        if uplink != nil {
            report(.securityEventNotification,
                   OCPPPayload.securityEvent(type: "StartupOfTheDevice", at: WallClock.nowMillisecondsSinceEpoch(),
                                             techInfo: "paybridged started; \(engine.sessions.count) open sessions recovered"),
                   name: "startup")
        }
        processing = false
        drain()
        terminal.start()
        rearm()
        scheduleHeartbeat()
    }

    func scheduleHeartbeat() {
        guard uplink != nil, let interval = heartbeatInterval else { return }
        heartbeatTimer = loop.schedule(at: lastUplinkTraffic + interval) { [weak self] in
            guard let self, let uplink = self.uplink else { return }
            if MonotonicClock.now() >= self.lastUplinkTraffic + interval, self.outbox.pending == 0 {
                self.lastUplinkTraffic = MonotonicClock.now()
                let m = OutboxMessage(id: self.heartbeatIDs.next(), queue: Station.stationQueue, action: .heartbeat, kind: .other,
                                      body: Array(OCPPPayload.heartbeat().text.utf8))
                uplink.send(m) { _ in }
            }
            self.scheduleHeartbeat()
        }
    }

    /// Stops gracefully: relays open, no new cards, the ledger synced; open sessions are left to recovery.
    public func shutdown() {
        post(.engine(.shutdown))
        terminal.stop()
    }

    public func post(_ input: Input) {
        queue.append(input)
        if !processing { drain() }
    }

    func drain() {
        processing = true
        while !queue.isEmpty {
            let input = queue.removeFirst()
            let now = moment()
            switch input {
            case .engine(let e): apply(engine.handle(e, at: now))
            case .terminal(let inputs):
                for t in inputs { apply(engine.handle(.terminal(t), at: now)) }
            case .charger(let inputs):
                for i in inputs { apply(engine.handle(i, at: now)) }
            case .tick:
                apply(engine.tick(at: now))
                handleOutboxAndSync(outbox.tick(now: now.monotonic))
            case let .delivered(id, result):
                if case let .rejected(status, response) = result, let m = outbox.message(id) { recordDeadLetter(m, status, response) }
                handleOutboxAndSync(outbox.completed(id, result, now: now.monotonic))
            }
            showOffers()
            reportConnectorStatus()
        }
        processing = false
        rearm()
    }

    func moment() -> Moment { Moment(monotonic: MonotonicClock.now(), wallMillis: WallClock.nowMillisecondsSinceEpoch()) }

    func apply(_ effects: [EngineEffect]) {
        for effect in effects {
            if case .persist(let entry) = effect {
                guard ledgerError == nil else { continue }
                do {
                    _ = try ledger.append(kind: entry.kind, body: entry.encodeBody())
                    persisted += 1
                    sinceCompaction += 1
                    highestKey = max(highestKey, entry.session)
                    unsynced = true
                } catch {
                    failed(error)
                    continue
                }
                if uplink != nil {
                    // The cloud's messages for this fact join the same batch: durable with it.
                    let wall = WallClock.nowMillisecondsSinceEpoch()
                    for m in reporter.messages(for: entry, offline: !outbox.reachable, now: wall) {
                        handleOutbox(outbox.enqueue(m, now: MonotonicClock.now()))
                    }
                }
                continue
            }
            // Group commit: every record up to here becomes durable in one fdatasync before the
            // effect that depends on it. Once the ledger has failed (here or earlier), nothing a
            // record should precede happens, but what makes the charger safe still does: a relay
            // the engine asked to open opens even when its batch's append or sync failed (the
            // engine already counts it open).
            if unsynced { syncLedger() }
            guard ledgerError == nil || Station.needsNoRecord(effect) else { continue }
            perform(effect)
        }
        syncLedger()
        flushSends()
        if sinceCompaction >= Station.compactionEvery, ledgerError == nil { compact() }
        let high = ledger.usedBytes * 100 >= ledger.options.diskBudgetBytes * Station.storageHighWaterPercent || outbox.overBudget
        if high != !engineAcceptsStorage { queue.append(.engine(.storageFull(high))); engineAcceptsStorage = !high }
    }
    var engineAcceptsStorage = true

    /// Carries out the outbox's effects: records are appended (durable at the next sync), sends
    /// wait in `pendingSends` until then.
    func handleOutbox(_ effects: [OutboxEffect]) {
        for e in effects {
            switch e {
            case .persist(let r):
                guard ledgerError == nil else { return }
                do {
                    _ = try ledger.append(kind: r.kind, body: r.encodeBody())
                    sinceCompaction += 1
                    unsynced = true
                } catch {
                    failed(error)
                    return
                }
            case .send(let m): pendingSends.append(m)
            case .notice(let n): notice(.warning, "uplink: \(n)")
            }
        }
    }

    func handleOutboxAndSync(_ effects: [OutboxEffect]) {
        handleOutbox(effects)
        syncLedger()
        flushSends()
    }

    /// Makes every record appended so far durable in one fdatasync; false once the ledger failed.
    @discardableResult
    func syncLedger() -> Bool {
        guard ledgerError == nil else { return false }
        guard unsynced else { return true }
        do {
            try ledger.sync()
            unsynced = false
            return true
        } catch {
            failed(error)
            return false
        }
    }

    /// Syncs at the next turn of the loop: station messages (status, security events) join
    /// whatever commit comes first instead of costing an fdatasync of their own in the middle
    /// of a card's path. Their sends still wait for it.
    func syncSoon() {
        guard syncSoonTimer == nil else { return }
        syncSoonTimer = loop.schedule(at: MonotonicClock.now()) { [weak self] in
            guard let self else { return }
            self.syncSoonTimer = nil
            self.syncLedger()
            self.flushSends()
        }
    }

    /// Queues a message that belongs to no transaction (status, security events).
    public func report(_ action: OCPPAction, _ body: JSONLines.JSON, name: String) {
        guard uplink != nil else { return }
        let m = OutboxMessage(id: MessageIDs.derive("\(Station.stationQueue)/\(name)/\(WallClock.nowMillisecondsSinceEpoch())"),
                              queue: Station.stationQueue, action: action, kind: .other, body: Array(body.text.utf8))
        handleOutbox(outbox.enqueue(m, now: MonotonicClock.now()))
        syncSoon()
    }

    /// A StatusNotification for every connector whose status changed.
    func reportConnectorStatus() {
        guard uplink != nil, ledgerError == nil else { return }
        let now = engine.connectorStatuses
        for (c, status) in now.enumerated() where c >= reportedStatus.count || reportedStatus[c] != status {
            let ocpp: OCPPPayload.ConnectorStatus
            switch status {
            case .available: ocpp = .available
            case .occupied: ocpp = .occupied
            case .faulted: ocpp = .faulted
            case .unavailable: ocpp = .unavailable
            }
            report(.statusNotification, OCPPPayload.statusNotification(connector: c, status: ocpp, at: WallClock.nowMillisecondsSinceEpoch()),
                   name: "status/\(c)/\(status.rawValue)")
        }
        reportedStatus = now
    }

    func recordDeadLetter(_ m: OutboxMessage, _ status: Int, _ response: String) {
        guard let path = deadLetterPath else { return }
        let line = JSONLines.JSON.object([("messageId", .string(m.id)), ("action", .string(m.action.rawValue)), ("queue", .string(m.queue)),
                                          ("status", .number(status)), ("response", .string(response)),
                                          ("t", .number(WallClock.nowMillisecondsSinceEpoch()))]).text + "\n"
        // Never through a symlink or into a file linked elsewhere: the daemon runs as root. The
        // message stays in the ledger as dead-lettered either way; the file is for technicians.
        do {
            let fd = try StateDirectory.openForAppend(path)
            defer { fd.close() }
            do { try fd.writeAll(Array(line.utf8), timeout: .seconds(1)) } catch {
                deadLetterFileFailures += 1
                notice(.error, "dead letters: message \(m.id) not written to \(path): \(error); it stays in the ledger")
            }
        } catch {
            deadLetterFileFailures += 1
            notice(.error, "dead letters: message \(m.id) not written: \(error); it stays in the ledger")
        }
    }
    /// Dead letters that could not be written to `deadLetterPath` (refused file, write error).
    public private(set) var deadLetterFileFailures = 0

    /// Sends whose queued records are durable. After a ledger failure nothing more is sent:
    /// what is not on disk must not reach the cloud.
    func flushSends() {
        guard let uplink, ledgerError == nil, !unsynced, !pendingSends.isEmpty else { return }
        lastUplinkTraffic = MonotonicClock.now()
        let sends = pendingSends
        pendingSends = []
        for m in sends {
            uplink.send(m) { [weak self] result in self?.post(.delivered(id: m.id, result)) }
        }
    }

    /// Drops the records of closed sessions. A record is live while its session is open, when it
    /// carries the highest key, or when this version cannot read it (never drop what we cannot judge).
    /// A closed session's entries leave a summary behind (`SummaryKeeper`), written first.
    public func compact() {
        sinceCompaction = 0
        let open = Set(engine.sessions.keys)
        let floor = highestKey
        let pending = outbox.pendingIDs
        do {
            let report = try summaries.compact(ledger, openSessions: open, highestKey: floor, pendingMessages: pending,
                                               now: WallClock.nowMillisecondsSinceEpoch())
            if report.ledger.segmentsDeleted > 0 {
                notice(.info, "ledger compacted: \(report.ledger.segmentsDeleted) segments, \(report.ledger.bytesFreed) bytes freed, "
                       + "\(report.written) session summaries written")
            }
            for (severity, text) in report.notices { notice(severity, text) }
        } catch {
            failed(error)
        }
    }

    /// The compaction rule: a record stays while its session is open, when it belongs to the
    /// highest session key (so keys never repeat after compaction), or when this version cannot
    /// read it (never drop what we cannot judge).
    public static func isLive(_ record: LedgerRecord, openSessions: Set<SessionKey>, highestKey: SessionKey,
                              pendingMessages: Set<String> = []) -> Bool {
        if OutboxRecord.kinds.contains(record.kind) {
            // Dead letters stay for technicians; a queued message stays until the cloud has it.
            guard let r = OutboxRecord.decode(kind: record.kind, body: record.body) else { return true }
            if case .deadLettered = r { return true }
            return pendingMessages.contains(r.messageID)
        }
        guard let e = try? LedgerEntry.decode(kind: record.kind, body: record.body) else { return true }
        return openSessions.contains(e.session) || e.session >= highestKey
    }

    /// Tells the station the highest session key found at recovery.
    public func recovered(highestKey k: SessionKey) { highestKey = max(highestKey, k) }

    /// Effects that may run without a durable record before them: opening a relay, dropping a
    /// card or scan, a notice. Closing a relay, authorising, capturing, releasing and asking the
    /// cloud all depend on a fact the ledger must hold first.
    static func needsNoRecord(_ effect: EngineEffect) -> Bool {
        switch effect {
        case .relay(_, close: false), .notice, .terminal(_, .cancel): return true
        case .relay(_, close: true), .persist, .terminal, .askCloud: return false
        }
    }

    /// A record could not be made durable: whatever depended on it is not done. The engine
    /// stops taking payments and opens the relays; a restart recovers from what is on disk.
    /// The station opens every relay itself first: no energy flows that cannot be recorded,
    /// whatever the engine believed about each relay at that moment.
    func failed(_ error: LedgerError) {
        guard ledgerError == nil else { return }
        ledgerError = error
        for c in 0..<engine.config.connectors { charger.setRelay(connector: c, closed: false) }
        notice(.error, "ledger: \(error)")
        // Also from a timer (a deferred sync): post, so the engine hears of it at once.
        post(.engine(.ledgerFailed("\(error)")))
        onLedgerFailure(error)
    }

    func notice(_ severity: NoticeSeverity, _ text: String) {
        if severity <= .warning { lastProblem = (severity, text) }
        onNotice(severity, text)
    }

    func perform(_ effect: EngineEffect) {
        switch effect {
        case .persist: break
        case let .terminal(id, command):
            terminal.perform(id, command)
        case let .relay(c, close):
            charger.setRelay(connector: c, closed: close)
        case let .askCloud(key, card, connector):
            decider.decide(session: key, card: card, connector: connector) { [weak self] d in self?.post(.engine(.cloud(key, d))) }
        case let .notice(severity, text):
            notice(severity, text)
        }
    }

    func rearm() {
        timer.arm([engine.nextDeadline, outbox.nextDeadline].compactMap { $0 }.min())
    }

    /// Tells the charger what each connector offers when it changes (its display or LEDs; a
    /// simulated driver plugs in when a session awaits the plug).
    func showOffers() {
        let now = engine.connectorOffers
        for (c, offer) in now.enumerated() where c >= shownOffers.count || shownOffers[c] != offer {
            charger.show(connector: c, offer)
        }
        shownOffers = now
    }
}
