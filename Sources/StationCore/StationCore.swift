import JSONLines
import PaymentEngine
import TerminalConditions
import TerminalPort
import Timebase
import Uplink

/// The station's decisions, with no I/O: what to append, when to sync, what may follow a sync,
/// what goes to the cloud and when, heartbeats, connector status reports, when to compact and
/// when storage is too full for new sessions. Inputs go in with `receive`; the shell takes the
/// effects out one at a time with `next(at:)` and carries each out before asking for the next.
///
/// The ordering contract (the money rule), kept here and nowhere else:
/// 1. every record is an `.append`; it is durable only once a later `.sync` has returned;
/// 2. every effect that depends on a record (a relay closing, an authorisation, a capture or
///    release, a cloud question, a message send) comes after the `.sync` that makes it durable;
///    appends are batched, so one sync covers all the records before it (group commit);
/// 3. when an append or sync fails the shell says so (`ledgerFailed`) and from then on only what
///    needs no record comes out: relays open, cards are dropped, notices. Nothing more is sent.
///
/// Because time is passed in and the effects come out one at a time, a simulation can run this
/// very core and crash between any two effects (`EngineSimulation`).
public struct StationCore: Sendable {
    /// What happened, in the order it happened.
    public enum Input: Equatable, Sendable {
        case engine(EngineInput)
        /// What the terminal said, as engine inputs, in order.
        case terminal([TerminalInput])
        /// What the charger's hardware said (plug, meter, relay feedback), in order.
        case charger([EngineInput])
        /// The outcome of a `.send`.
        case delivered(id: String, DeliveryResult)
        /// Time passed: the shell's timer at `nextDeadline`.
        case tick
        /// A message for the cloud outside any transaction (a NotifyReport page the CSMS asked
        /// for): queued in the station's queue, written ahead like every other. `name` makes its id.
        case report(OCPPAction, JSON, name: String)
        /// The cloud asked for the connectors' status again (TriggerMessage StatusNotification):
        /// the connector's (0-based; nil: every connector's) status is reported after this input.
        case resendStatus(connector: Int?)
        /// The uplink is registered with the cloud again (OCPP-J: BootNotification accepted): the
        /// outbox sends now rather than at its next probe.
        case uplinkReady
        /// What the terminal reported about itself (identity, a security alert), judged by the
        /// operating rules at the time the input is taken up.
        case terminalCondition(TerminalCondition)
        /// An input for the operating rules from elsewhere: an administrator accepting the
        /// terminal, a test transaction that succeeded.
        case conditions(TerminalConditions.Input)
    }

    /// What the shell carries out, one at a time, in this order.
    public enum Effect: Equatable, Sendable {
        /// Append a record to the ledger (durable after the next `.sync`). On failure: `ledgerFailed`.
        case append(kind: UInt16, body: [UInt8])
        /// Make every appended record durable (fdatasync). On failure: `ledgerFailed`.
        case sync
        case terminal(CommandID, TerminalCommand)
        case relay(connector: Int, closed: Bool)
        /// Ask whoever decides on cards; the answer comes back as `.engine(.cloud(...))`.
        case askCloud(SessionKey, CardIdentity, connector: Int)
        /// Send a message whose queued record is durable; its outcome comes back as `.delivered`.
        case send(OutboxMessage)
        /// A liveness signal: not recorded, not retried, its outcome not needed.
        case heartbeat(OutboxMessage)
        /// What a connector offers a driver now (display, LEDs).
        case show(connector: Int, PaymentEngine.ConnectorOffer)
        case notice(NoticeSeverity, String)
        /// A line for the technicians' dead-letter file (the message stays in the ledger anyway).
        case deadLetter(messageID: String, line: String)
        /// Drop the records of closed sessions, leaving their summaries (the shell's
        /// `SummaryKeeper`); records of these sessions, of the highest key and of these messages
        /// stay, and of the terminal's condition records the one of generation `conditionsGeneration`.
        case compact(openSessions: Set<SessionKey>, highestKey: SessionKey, keptMessages: Set<String>, wallMillis: Int64,
                     conditionsGeneration: UInt64)
    }

    /// Settings the core needs beyond the engine's.
    public struct Settings: Equatable, Sendable {
        /// Whether a cloud is configured: without one nothing is queued or sent.
        public var uplink = true
        public var stationId = "station"
        /// A Heartbeat goes out after this long without traffic to the cloud (nil: never).
        public var heartbeatInterval: Duration? = .seconds(300)
        /// The ledger's disk budget, for the high-water mark.
        public var diskBudgetBytes = 64 << 20
        /// Compact after this many records.
        public var compactionEvery = StationCore.compactionEvery
        public init() {}
    }

    /// Refuse new sessions above this share of the disk budget, so running ones keep room to finish.
    public static let storageHighWaterPercent = 90
    /// Compact the ledger after this many records: sealed segments of closed sessions go.
    public static let compactionEvery = 4096
    /// Non-transaction messages share one queue, so the cloud sees them in order.
    public static let stationQueue = "station"

    public private(set) var engine: PaymentEngine
    public private(set) var outbox: Outbox
    /// The terminal's operating rules (swap, tamper, battery, storage), for status.
    public private(set) var conditions: TerminalConditions
    /// Whether the station itself takes new sessions (`.engine(.acceptNewSessions)`: the daemon
    /// without charger I/O says false). The engine takes them only when this holds and the
    /// conditions block nothing: two reasons, neither undoes the other.
    public private(set) var stationAcceptsSessions = true
    /// When the conditions are next refreshed ("last seen up") or checked (the away rules).
    var conditionsCheckAt: Instant?
    public var settings: Settings
    var reporter: TransactionReporter
    var heartbeatIDs: MessageIDs

    /// One step of work: an effect for the shell, or a decision taken when the step is reached
    /// (so that it sees what the shell observed while carrying out the effects before it).
    enum Step: Equatable, Sendable {
        case effect(Effect)
        /// After an engine batch: compaction and the storage high-water mark.
        case afterBatch
    }
    var steps: [Step] = []
    var stepHead = 0
    var inputs: [Input] = []
    var inputHead = 0
    /// The time of the input being worked on.
    var now = Moment(monotonic: .zero, wallMillis: 0)

    /// Records appended since the last sync was handed out.
    var unsynced = false
    /// Sends waiting for the sync that makes their queued record durable.
    var pendingSends: [OutboxMessage] = []
    /// A sync within `syncSoonDelay`, for records nothing waits on (status, security events).
    var syncSoonAt: Instant?
    /// How long such records wait for a commit to join. A card read makes a StatusNotification
    /// (Occupied); synced at once, its fdatasync ran while the cloud answered Authorize and the
    /// answer waited for it (traced with daemon-bench). Given this long, it joins the
    /// `authRequested` commit instead; its send still waits for the sync.
    public static let syncSoonDelay: Duration = .milliseconds(50)
    var lastUplinkTraffic: Instant?
    /// The connector statuses last reported to the cloud, and the offers last shown.
    var reportedStatus: [PaymentEngine.ConnectorStatus] = []
    /// Connectors whose status is reported again after this input even if unchanged.
    var forcedStatus: Set<Int> = []
    var shownOffers: [PaymentEngine.ConnectorOffer] = []
    var sinceCompaction = 0
    var engineAcceptsStorage = true
    /// The highest session key seen: its records stay, so keys keep growing after compaction.
    public private(set) var highestKey: SessionKey = 0
    /// The ledger's bytes in use, as the shell last observed them.
    public private(set) var ledgerUsedBytes = 0
    /// Entries appended since start, for status and tests.
    public private(set) var persisted = 0
    /// Why the ledger failed; from then on only what needs no record is carried out.
    public private(set) var ledgerFailure: String?

    public init(engine: PaymentEngine, outbox: Outbox = Outbox(), settings: Settings = Settings(),
                conditions: TerminalConditions = TerminalConditions(), idSeed: UInt64) {
        self.engine = engine
        self.outbox = outbox
        self.conditions = conditions
        self.settings = settings
        reporter = TransactionReporter(stationId: settings.stationId)
        heartbeatIDs = MessageIDs(seed: idSeed)
    }

    // MARK: the shell's side

    /// The conditions recovery found (`TerminalConditions(settings:records:)`), before `start`.
    public mutating func recovered(conditions c: TerminalConditions) { conditions = c }

    /// The conditions' limits after a reload (`terminal.battery_warn_days`, `terminal.storage_days`).
    public mutating func setConditionSettings(_ s: TerminalConditions.Settings) { conditions.settings = s }

    /// Starts from what recovery found: every relay opens (the safe state), messages whose queued
    /// record did not reach the disk before a crash are queued again with their ids (recreated
    /// from the entries), recovery's effects follow, then a startup security event.
    public mutating func start(recoveryEffects: [EngineEffect], entries: [LedgerEntry], outboxRecords: [OutboxRecord],
                               highestKey k: SessionKey, at now: Moment) {
        self.now = now
        highestKey = max(highestKey, k)
        lastUplinkTraffic = now.monotonic
        // What the ledger holds counts towards the next compaction: a station restarted more
        // often than it writes `compactionEvery` records would otherwise never compact.
        sinceCompaction = entries.count + outboxRecords.count
        for c in 0..<engine.config.connectors { emit(.relay(connector: c, closed: false)) }
        if settings.uplink {
            outbox = Outbox.recover(config: outbox.config, records: outboxRecords, now: now.monotonic)
            let known = Set(outboxRecords.map(\.messageID))
            var missing: [OutboxMessage] = []
            for e in entries {
                for m in reporter.messages(for: e, offline: true, now: now.wallMillis) where !known.contains(m.id) { missing.append(m) }
            }
            if !missing.isEmpty { emit(.notice(.warning, "uplink: \(missing.count) messages recreated from the ledger")) }
            for m in missing { handleOutbox(outbox.enqueue(m, now: now.monotonic)) }
            syncNow()
        }
        if let why = conditions.paymentsBlockedReason {
            // Recovered with a swap or an alert not yet accepted: a restart must not take payments.
            emit(.notice(.error, why))
            apply(engine.handle(.acceptNewSessions(false), at: now))
        }
        apply(recoveryEffects)
        if settings.uplink {
            report(.securityEventNotification,
                   OCPPPayload.securityEvent(type: "StartupOfTheDevice", at: now.wallMillis,
                                             techInfo: "paybridged started; \(engine.sessions.count) open sessions recovered"),
                   name: "startup")
        }
        applyConditions(conditions.handle(.started(wallMillis: now.wallMillis)))
        conditionsCheckAt = now.monotonic + TerminalConditions.lastSeenPersistInterval
        afterInput()
    }

    /// Queues an input; it is worked on once the effects before it have been taken out.
    public mutating func receive(_ input: Input) { inputs.append(input) }

    /// The next effect to carry out, or nil when there is nothing to do until an input arrives
    /// or `nextDeadline` passes. `now` is the time an input taken up by this call happened.
    public mutating func next(at now: Moment) -> Effect? {
        while true {
            if stepHead < steps.count {
                let step = steps[stepHead]
                stepHead += 1
                if stepHead == steps.count { steps.removeAll(keepingCapacity: true); stepHead = 0 }
                switch step {
                case .effect(let e): return e
                case .afterBatch: afterBatch()
                }
                continue
            }
            guard inputHead < inputs.count else {
                inputs.removeAll(keepingCapacity: true)
                inputHead = 0
                return nil
            }
            let input = inputs[inputHead]
            inputHead += 1
            self.now = now
            work(input)
        }
    }

    /// Whether effects or inputs are waiting (the shell pumps until this is false).
    public var busy: Bool { stepHead < steps.count || inputHead < inputs.count }

    /// An append, sync or compaction failed: nothing that depends on a record happens any more;
    /// every relay opens now, and the engine hears of it as its next input.
    public mutating func ledgerFailed(_ why: String) {
        guard ledgerFailure == nil else { return }
        ledgerFailure = why
        let rest = steps[stepHead...].filter {
            if case .effect(let e) = $0 { return StationCore.needsNoRecord(e) }
            return true
        }
        steps = (0..<engine.config.connectors).map { .effect(.relay(connector: $0, closed: false)) }
            + [.effect(.notice(.error, "ledger: \(why)"))] + rest
        stepHead = 0
        pendingSends = []
        unsynced = false
        receive(.engine(.ledgerFailed(why)))
    }

    /// Messages whose records compaction keeps: those still owed to the cloud, and those of every
    /// session whose entries it keeps (open ones and the highest key): a restart replays those
    /// entries and must find their messages' records, or it would make the messages again.
    public var keptMessageIDs: Set<String> {
        var ids = outbox.pendingIDs
        for k in engine.sessions.keys { ids.formUnion(reporter.messageIDs(of: k)) }
        ids.formUnion(reporter.messageIDs(of: highestKey))
        return ids
    }

    /// What the shell measured of the ledger after an append or a compaction.
    public mutating func observeLedger(usedBytes: Int) { ledgerUsedBytes = usedBytes }

    /// When the shell should post `.tick` next.
    public var nextDeadline: Instant? {
        var candidates = [engine.nextDeadline, outbox.nextDeadline, syncSoonAt, conditionsCheckAt]
        if settings.uplink, let interval = settings.heartbeatInterval, let last = lastUplinkTraffic { candidates.append(last + interval) }
        return candidates.compactMap { $0 }.min()
    }

    /// Effects that may run without a durable record before them: opening a relay, dropping a
    /// card or scan, showing an offer, a notice or a dead-letter line. Closing a relay,
    /// authorising, capturing, releasing, asking the cloud and sending all depend on a fact the
    /// ledger must hold first.
    public static func needsNoRecord(_ effect: Effect) -> Bool {
        switch effect {
        case .relay(_, closed: false), .notice, .terminal(_, .cancel), .show, .deadLetter: return true
        case .relay(_, closed: true), .append, .sync, .terminal, .askCloud, .send, .heartbeat, .compact: return false
        }
    }

    /// The compaction rule: a record stays while its session is open, when it belongs to the
    /// highest session key (so keys never repeat after compaction), when this version cannot
    /// read it (never drop what we cannot judge), when it is a dead letter, or while its message
    /// is among `keptMessages` (`keptMessageIDs`: owed to the cloud, or of an open transaction).
    ///
    /// Of the terminal's condition records only the newest snapshot is needed (generation
    /// `conditionsGeneration`, `TerminalConditions.generation`); 0 keeps them all.
    public static func isLive(kind: UInt16, body: [UInt8], openSessions: Set<SessionKey>, highestKey: SessionKey,
                              keptMessages: Set<String>, conditionsGeneration: UInt64 = 0) -> Bool {
        if let live = TerminalConditions.isLive(kind: kind, body: body, newest: conditionsGeneration) { return live }
        if OutboxRecord.kinds.contains(kind) {
            guard let r = OutboxRecord.decode(kind: kind, body: body) else { return true }
            if case .deadLettered = r { return true }
            return keptMessages.contains(r.messageID)
        }
        guard let e = try? LedgerEntry.decode(kind: kind, body: body) else { return true }
        return openSessions.contains(e.session) || e.session >= highestKey
    }

    /// Queues a message that belongs to no transaction (status, security events); it joins the
    /// next sync (at the latest `syncSoonDelay` later) instead of costing one of its own.
    public mutating func report(_ action: OCPPAction, _ body: JSON, name: String) {
        guard settings.uplink, ledgerFailure == nil else { return }
        let m = OutboxMessage(id: MessageIDs.derive("\(StationCore.stationQueue)/\(name)/\(now.wallMillis)"),
                              queue: StationCore.stationQueue, action: action, kind: .other, body: Array(body.text.utf8))
        handleOutbox(outbox.enqueue(m, now: now.monotonic))
        if syncSoonAt == nil { syncSoonAt = now.monotonic + StationCore.syncSoonDelay }
    }

    // MARK: decisions

    mutating func emit(_ e: Effect) { steps.append(.effect(e)) }

    mutating func work(_ input: Input) {
        switch input {
        case .engine(.acceptNewSessions(let on)):
            stationAcceptsSessions = on
            apply(engine.handle(.acceptNewSessions(on && conditions.paymentsBlockedReason == nil), at: now))
        case .engine(let e): apply(engine.handle(e, at: now))
        case .terminal(let list):
            for t in list {
                apply(engine.handle(.terminal(t), at: now))
                switch t {
                case .ready: applyConditions(conditions.handle(.linkUp(wallMillis: now.wallMillis)))
                case .unavailable: applyConditions(conditions.handle(.linkDown(wallMillis: now.wallMillis)))
                default: break
                }
            }
        case .terminalCondition(let c):
            switch c {
            case .identified(let inventory): applyConditions(conditions.handle(.identified(inventory, wallMillis: now.wallMillis)))
            case .securityAlert(let text): applyConditions(conditions.handle(.securityAlert(text, wallMillis: now.wallMillis)))
            }
        case .conditions(let input): applyConditions(conditions.handle(input))
        case .charger(let list): for i in list { apply(engine.handle(i, at: now)) }
        case .tick:
            apply(engine.tick(at: now))
            handleOutbox(outbox.tick(now: now.monotonic))
            if let at = syncSoonAt, now.monotonic >= at { syncSoonAt = nil }
            if let at = conditionsCheckAt, now.monotonic >= at {
                conditionsCheckAt = now.monotonic + TerminalConditions.lastSeenPersistInterval
                let wall = now.wallMillis
                applyConditions(conditions.handle(conditions.linkUp ? .stillUp(wallMillis: wall) : .timePassed(wallMillis: wall)))
            }
            syncNow()
            flushSends()
            heartbeatIfDue()
        case let .delivered(id, result):
            let message = outbox.message(id)
            let effects = outbox.completed(id, result, now: now.monotonic)
            // Every dead letter, whatever decided it (a 4xx, CALLERRORs, attempts spent), gets its
            // line in the technicians' file.
            for case let .persist(.deadLettered(deadID, status, response)) in effects {
                guard let m = message, m.id == deadID else { continue }
                emit(.deadLetter(messageID: m.id, line: JSON.object([("messageId", .string(m.id)), ("action", .string(m.action.rawValue)),
                                                    ("queue", .string(m.queue)), ("status", .number(status)),
                                                    ("response", .string(response)), ("t", .number(now.wallMillis))]).text))
            }
            handleOutbox(effects)
            syncNow()
            flushSends()
        case let .report(action, body, name):
            report(action, body, name: name)
            syncNow()
            flushSends()
        case .resendStatus(let connector):
            if let c = connector {
                if c < reportedStatus.count { forcedStatus.insert(c) }
            } else {
                forcedStatus = Set(reportedStatus.indices)
            }
        case .uplinkReady:
            guard settings.uplink else { break }
            handleOutbox(outbox.connectionRestored(now: now.monotonic))
            syncNow()
            flushSends()
        }
        afterInput()
    }

    /// Carries the engine's effects into steps: a persist becomes an append (with the cloud's
    /// messages for the fact in the same batch), and any other effect waits for a sync first.
    mutating func apply(_ effects: [EngineEffect]) {
        for effect in effects {
            if case .persist(let entry) = effect {
                guard ledgerFailure == nil else { continue }
                emit(.append(kind: entry.kind, body: entry.encodeBody()))
                persisted += 1
                sinceCompaction += 1
                highestKey = max(highestKey, entry.session)
                unsynced = true
                if settings.uplink {
                    for m in reporter.messages(for: entry, offline: !outbox.reachable, now: now.wallMillis) {
                        handleOutbox(outbox.enqueue(m, now: now.monotonic))
                    }
                }
                // An approval proves what a test transaction would: card, terminal keys and acquirer work.
                if case .approved = entry, conditions.recommendsTestTransaction {
                    applyConditions(conditions.handle(.testTransactionSucceeded(wallMillis: now.wallMillis)))
                }
                continue
            }
            syncNow()
            let mapped: Effect
            switch effect {
            case .persist: continue
            case let .terminal(id, command): mapped = .terminal(id, command)
            case let .relay(c, close): mapped = .relay(connector: c, closed: close)
            case let .askCloud(key, card, connector): mapped = .askCloud(key, card, connector: connector)
            case let .notice(severity, text): mapped = .notice(severity, text)
            }
            guard ledgerFailure == nil || StationCore.needsNoRecord(mapped) else { continue }
            emit(mapped)
        }
        syncNow()
        flushSends()
        steps.append(.afterBatch)
    }

    /// The operating rules' effects. A record is appended like any other; payments resume only
    /// after the sync that makes the record before them durable (an acceptance is on disk before
    /// the engine may arm the terminal), and only if the station itself takes sessions.
    mutating func applyConditions(_ effects: [TerminalConditions.Effect]) {
        for e in effects {
            switch e {
            case let .persist(kind, body):
                guard ledgerFailure == nil else { continue }
                emit(.append(kind: kind, body: body))
                sinceCompaction += 1
                unsynced = true
            case let .securityEvent(type, techInfo):
                report(.securityEventNotification, OCPPPayload.securityEvent(type: type, at: now.wallMillis, techInfo: techInfo),
                       name: "security/\(type)")
            case .blockPayments:
                apply(engine.handle(.acceptNewSessions(false), at: now))
            case .unblockPayments:
                syncNow()
                guard ledgerFailure == nil, stationAcceptsSessions else { continue }
                apply(engine.handle(.acceptNewSessions(true), at: now))
            case let .notice(severity, text):
                emit(.notice(severity, text))
            }
        }
    }

    /// The outbox's effects: records are appended (durable at the next sync), sends wait for it.
    mutating func handleOutbox(_ effects: [OutboxEffect]) {
        for e in effects {
            switch e {
            case .persist(let r):
                guard ledgerFailure == nil else { return }
                emit(.append(kind: r.kind, body: r.encodeBody()))
                sinceCompaction += 1
                unsynced = true
            case .send(let m): pendingSends.append(m)
            case .notice(let n): emit(.notice(.warning, "uplink: \(n)"))
            }
        }
    }

    /// One sync for every record appended so far.
    mutating func syncNow() {
        guard unsynced, ledgerFailure == nil else { return }
        emit(.sync)
        unsynced = false
    }

    /// Sends whose queued records are durable (a sync has been handed out after them).
    mutating func flushSends() {
        guard settings.uplink, ledgerFailure == nil, !unsynced, !pendingSends.isEmpty else { return }
        lastUplinkTraffic = now.monotonic
        for m in pendingSends { emit(.send(m)) }
        pendingSends.removeAll(keepingCapacity: true)
    }

    mutating func heartbeatIfDue() {
        guard settings.uplink, ledgerFailure == nil, let interval = settings.heartbeatInterval, let last = lastUplinkTraffic,
              now.monotonic >= last + interval else { return }
        lastUplinkTraffic = now.monotonic
        // Messages owed to the cloud are traffic of their own (sent or probing): no heartbeat then.
        guard outbox.pending == 0 else { return }
        emit(.heartbeat(OutboxMessage(id: heartbeatIDs.next(), queue: StationCore.stationQueue, action: .heartbeat, kind: .other,
                                      body: Array(OCPPPayload.heartbeat().text.utf8))))
    }

    /// Decided when reached, with the ledger's size as observed after the batch's appends.
    mutating func afterBatch() {
        if sinceCompaction >= settings.compactionEvery, ledgerFailure == nil {
            sinceCompaction = 0
            emit(.compact(openSessions: Set(engine.sessions.keys), highestKey: highestKey, keptMessages: keptMessageIDs,
                          wallMillis: now.wallMillis, conditionsGeneration: conditions.generation))
        }
        let high = ledgerUsedBytes * 100 >= settings.diskBudgetBytes * StationCore.storageHighWaterPercent || outbox.overBudget
        if high != !engineAcceptsStorage {
            engineAcceptsStorage = !high
            receive(.engine(.storageFull(high)))
        }
    }

    /// After each input: what the connectors offer (shown when it changed) and their status for
    /// the cloud (reported when it changed).
    mutating func afterInput() {
        let offers = engine.connectorOffers
        for (c, offer) in offers.enumerated() where c >= shownOffers.count || shownOffers[c] != offer {
            emit(.show(connector: c, offer))
        }
        shownOffers = offers
        guard settings.uplink, ledgerFailure == nil else { return }
        let statuses = engine.connectorStatuses
        for (c, status) in statuses.enumerated() where c >= reportedStatus.count || reportedStatus[c] != status || forcedStatus.contains(c) {
            let ocpp: OCPPPayload.ConnectorStatus
            switch status {
            case .available: ocpp = .available
            case .occupied: ocpp = .occupied
            case .faulted: ocpp = .faulted
            case .unavailable: ocpp = .unavailable
            }
            report(.statusNotification, OCPPPayload.statusNotification(connector: c, status: ocpp, at: now.wallMillis),
                   name: "status/\(c)/\(status.rawValue)")
        }
        reportedStatus = statuses
        forcedStatus = []
    }
}
