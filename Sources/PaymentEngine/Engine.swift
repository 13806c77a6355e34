import Timebase

/// Settings of the payment engine; every limit has a name.
public struct EngineConfig: Equatable, Sendable {
    /// Connectors on this charger (1…`maxConnectors`).
    public var connectors: Int = 1
    /// A charger has a handful of connectors; more in a configuration is a typo.
    public static let maxConnectors = 8
    /// Amount reserved on the card (minor units) before the driver charges.
    public var preauthAmount: Int64 = 5000
    public var tariff = Tariff(currency: "EUR", startFee: 0, energyPricePerKWh: 40_000, timePricePerMinute: 0)
    /// Approved but not plugged in within this time: the reservation is released.
    public var plugInTimeout: Duration = .seconds(300)
    /// How long the cloud has to decide on a card before the offline policy applies.
    public var decisionTimeout: Duration = .seconds(10)
    /// After the terminal acknowledged Auth Session with a bare OK, how long the outcome
    /// (approved, declined, cancelled) may take before the approval is taken to be in doubt.
    public var authOutcomeTimeout: Duration = .seconds(120)
    public var offlinePolicy: OfflinePolicy = .allow
    /// Persist the meter after this much more energy (Wh) …
    public var meterPersistWh: Int64 = 100
    /// … or this much time, whichever comes first: a crash loses at most this much billing.
    public var meterPersistInterval: Duration = .seconds(60)
    /// Resend an unanswered capture or release this often while the terminal is up.
    public var retryInterval: Duration = .seconds(15)
    /// Refusals of a capture or release (other than "not found"), or listings of the terminal's
    /// sessions in a row that bring no list, before a person must look.
    public var maxRefusals = 20
    /// Capture or release attempts without a readable answer (the link up: a terminal that is
    /// down is not asked) before a person must look: 240 × `retryInterval` is about an hour.
    public var maxUnanswered = 240
    /// Pause before offering the terminal for the next card.
    public var rearmDelay: Duration = .milliseconds(500)
    /// Keep the terminal scanning while every connector is busy, so a driver can tap the same
    /// card again to stop (on a one-connector charger that is the only way to tap to stop).
    /// Other cards are refused while no connector is free.
    public var scanForTapToStop = true

    public init() {}
}

/// What the engine asks the shell to do, in order. A `persist` must be durable (fdatasync
/// returned) before any effect after it is carried out: that ordering is the money guarantee.
public enum EngineEffect: Equatable, Sendable {
    case persist(LedgerEntry)
    case terminal(CommandID, TerminalCommand)
    case relay(connector: Int, close: Bool)
    /// Ask the cloud whether this card may charge here; the answer comes back as `.cloud`.
    case askCloud(SessionKey, CardIdentity, connector: Int)
    /// A line for the log and the technicians (card data masked only), with how much it matters.
    case notice(NoticeSeverity, String)
}

/// Inputs to the engine.
public enum EngineInput: Equatable, Sendable {
    case terminal(TerminalInput)
    case plug(connector: Int, pluggedIn: Bool)
    /// The connector's energy register, cumulative Wh.
    case meter(connector: Int, registerWh: Int64)
    /// The connector's energy meter named itself (its serial number, as read from the meter;
    /// cut to `PaymentEngine.maxMeterSerialBytes`). From then on a session's start and end
    /// register readings are written with it (`LedgerEntry.meterReading`). The charger port
    /// says it when it first reads the meter and when the meter changes between sessions; a
    /// reading from a meter that changed during a session never reaches the engine.
    case meterIdentity(connector: Int, serial: String)
    case cloud(SessionKey, CardDecision)
    case relay(connector: Int, RelayFeedback)
    case operatorStop(connector: Int)
    /// A technician's test transaction on a free connector: the terminal is armed for `amount`,
    /// the card read is authorised without asking the cloud, and the approval voided at once.
    /// Ignored (with a notice) unless the connector is free, payments are taken and no card is on
    /// the terminal; `PaymentEngine.testRefusal` says why beforehand.
    case testTransaction(connector: Int, amount: Int64)
    case fault(connector: Int, String)
    /// Stop: open relays, stop taking cards, leave open sessions to recovery.
    case shutdown
    /// The ledger cannot write: stop taking payments and open every relay; a restart recovers.
    case ledgerFailed(String)
    /// Storage is full or over budget (`true`) or has room again (`false`): no new sessions while full.
    case storageFull(Bool)
    /// Take new card sessions (`true`, the default) or only finish the open ones (`false`).
    case acceptNewSessions(Bool)
    /// Whether the charger can serve this connector (its controller's EVSE-ready signal). A
    /// connector that cannot is never given a new session; a session charging there stops as
    /// faulted (captured for what was metered), one awaiting its plug is released. Unlike a
    /// welded relay it comes back when the charger says so.
    case connectorAvailable(connector: Int, Bool)
    /// The charging platform holds the connector out of service (`true`; OCPP ChangeAvailability
    /// Inoperative) or releases it (`false`). Unlike `connectorAvailable(false)` nothing on it is
    /// stopped: a session there runs to its end (OCPP answers such a change Scheduled), and the
    /// connector offers no new session from then on; it is Unavailable once no session is left.
    case connectorHeld(connector: Int, Bool)
    /// A technician cleared a welded relay's latch after inspecting the contactor (the daemon
    /// checks first that the contact reads open, where the charger can tell): the connector
    /// takes sessions again. Nothing happens on a connector that is not welded.
    case weldCleared(connector: Int)
    /// New settings (a reloaded configuration) for sessions that start from now on. Open
    /// sessions keep the tariff and amount they were authorised with and their deadlines; the
    /// number of connectors is fixed for the engine's life and is not taken from `config`.
    case reconfigure(EngineConfig)
    /// The charging platform's cost limit for a session (OCPP `transactionLimit.maxCost`, minor
    /// units of the session's currency). It only ever lowers the session's cap (`Session.costCap`:
    /// the authorised amount, or a lower limit taken before). A limit that lowers it is written
    /// ahead (`LedgerEntry.costLimited`) and then applied: a charging session whose metered cost
    /// already reaches the new cap stops at once (`StopReason.costLimit`, capturing at most the
    /// cap); one awaiting its plug whose start fee alone reaches it is released. Ignored, with a
    /// notice and nothing written: a negative limit, one not lower than the current cap, and a
    /// session that is unknown, a test transaction, not yet approved or already settling.
    case costLimit(SessionKey, maxCost: Int64)
    /// The charging platform asked for the state of a session's transaction (OCPP
    /// TriggerMessage for TransactionEvent). Written ahead as `LedgerEntry.reportRequested`,
    /// from which the reporter makes the event, for an approved session that is awaiting its
    /// plug or charging, at most `PaymentEngine.maxReportsPerSession` times. Ignored, with a
    /// notice and nothing written: an unknown session, one not approved yet or already
    /// settling (its Ended event is on its way), and one over the limit.
    case reportRequested(SessionKey)
}

/// A technician's test transaction, step by step.
public struct TestTransaction: Equatable, Sendable {
    public enum Step: Equatable, Sendable {
        case waitingForCard
        case authorising(SessionKey)
        /// Approved: the void is on its way.
        case voiding(SessionKey)
        /// Approved and voided: the terminal and the acquirer answer.
        case succeeded(SessionKey)
        case failed(String)
    }
    /// 0-based, as the engine counts.
    public var connector: Int
    public var amount: Int64
    public var step: Step
}

/// One payment session as the engine tracks it.
public struct Session: Equatable, Sendable {
    public enum Phase: Equatable, Sendable {
        /// Card read; waiting for the cloud's decision until the deadline.
        case deciding(deadline: Instant)
        /// Auth sent; waiting for the bank's answer.
        case authorising
        /// Auth went unanswered: an approval may exist on the terminal.
        case authUnknown
        /// Approved; waiting for the driver to plug in until the deadline.
        case awaitingPlug(deadline: Instant)
        case charging
        /// Capture or release requested; waiting for the terminal.
        case disposing
        /// The ledger failed: nothing more is done until a restart recovers the session from disk.
        case frozen
    }
    public enum Disposition: Equatable, Sendable { case capture(Int64), release }

    public var key: SessionKey
    public var connector: Int
    public var card: CardIdentity
    public var tariff: Tariff
    public var phase: Phase
    public var requested: Int64
    /// The terminal's name for the approval: what a capture or release quotes.
    public var handle: TerminalHandle?
    public var authorised: Int64 = 0
    public var registerStartWh: Int64?
    public var energyWh: Int64 = 0
    /// Charging seconds accumulated before `chargingSince` (recovered sessions).
    public var secondsBefore: Int64 = 0
    public var chargingSince: Instant?
    public var persistedWh: Int64 = 0
    public var persistedAt: Instant = .zero
    public var disposition: Disposition?
    public var pending: CommandID?
    public var nextRetry: Instant?
    public var refusals = 0
    /// Attempts that ended without a readable answer (timeout, link lost, unreadable).
    public var unanswered = 0
    /// An earlier capture/release attempt went unanswered: "not found" now may mean it worked.
    public var attemptUnknown = false
    /// A technician's test transaction: voided on approval, never charges.
    public var isTest = false
    /// The lowest cost limit the charging platform set for this session (`EngineInput.costLimit`).
    public var costLimit: Int64?
    /// How many times the platform had this session's transaction reported (`EngineInput.reportRequested`).
    public var reportsRequested = 0
    /// The meter's serial the start reading was written with (`LedgerEntry.meterReading`); the
    /// end reading is written only when there is a start one.
    public var meterSerial: String?

    /// What the session may cost at most: the authorised amount, or a lower cost limit. Charging
    /// stops when the cost reaches it, and no capture exceeds it.
    public var costCap: Int64 { min(authorised, costLimit ?? authorised) }

    func seconds(at now: Instant) -> Int64 {
        guard let since = chargingSince else { return secondsBefore }
        return secondsBefore + max(0, (now - since).nanosecondsClamped / 1_000_000_000)
    }
}

/// The payment engine for one charger: one terminal, a few connectors. Pure: inputs and
/// time in, effects out. The terminal runs one payment flow at a time; each connector has
/// at most one session; approved sessions outlive the flow that created them.
public struct PaymentEngine: Sendable {
    public private(set) var config: EngineConfig

    enum Flow: Equatable, Sendable {
        case unavailable
        case idle(rearmAt: Instant)
        case arming(CommandID)
        case armed
        /// A card is on the terminal for this session (deciding or authorising).
        case presented(SessionKey)
        /// Dropping a card (tap-to-stop, refusal) or the armed scan.
        case cancelling
    }

    struct Connector: Equatable, Sendable {
        var plugged = false
        /// A session ended with its car still plugged in: the connector is not offered again
        /// until that car leaves, or the next driver's approval would charge it.
        var awaitingUnplug = false
        var relayClosed = false
        var welded = false
        /// The charger said it cannot serve this connector (`connectorAvailable(false)`).
        var outOfService = false
        /// The charging platform holds it out of service (`connectorHeld(true)`).
        var held = false
        var session: SessionKey?
        var registerWh: Int64?
        /// The serial number the connector's meter gave (`meterIdentity`); nil: never named.
        var meterSerial: String?
    }

    public internal(set) var sessions: [SessionKey: Session] = [:]
    var connectors: [Connector]
    var flow: Flow = .unavailable
    /// The amount the terminal was last armed with: what a card read from that scan reserves.
    var armedAmount: Int64 = 0
    var terminalCanList = false
    var nextKey: SessionKey = 1
    var nextCommand: CommandID = 1
    var shuttingDown = false
    var ledgerBroken = false
    var storageFull = false
    var paused = false
    /// A test transaction asked for and not yet presented with a card.
    var testRequest: (connector: Int, amount: Int64, deadline: Instant)?
    /// Where the last test transaction is, for the technician who asked (`paybridgectl test-transaction`).
    public private(set) var lastTest: TestTransaction?
    /// How long a test transaction waits for a card before it is given up.
    public static let testCardTimeout: Duration = .seconds(60)
    /// Sessions whose approval may exist on the terminal: resolved by `listOpen` when possible.
    var listPending: CommandID?
    /// When to ask again after a listing went unanswered.
    var listRetryAt: Instant?
    /// When the outcome of an acknowledged Auth Session is due (`authOutcomeTimeout`).
    var authOutcomeDue: Instant?
    /// Listings in a row that brought no list (refused, unanswered, unreadable, incomplete).
    var listFailures = 0

    public init(config: EngineConfig) {
        self.config = config
        armedAmount = config.preauthAmount
        connectors = Array(repeating: Connector(), count: max(1, min(config.connectors, EngineConfig.maxConnectors)))
    }

    /// Whether new payments are taken at all.
    public var acceptingPayments: Bool { !shuttingDown && !ledgerBroken && !storageFull && !paused }

    /// What each connector is, as a charging platform sees it.
    public enum ConnectorStatus: String, Sendable, Equatable { case available, occupied, faulted, unavailable }

    /// What a connector offers a driver (`connectorOffers`).
    public enum ConnectorOffer: Equatable, Sendable {
        /// Free: tap a card.
        case available
        /// A session is being decided, authorised or settled here.
        case busy(SessionKey)
        /// Approved: plug in now.
        case awaitingPlug(SessionKey)
        case charging(SessionKey)
        /// Out of service (no payments taken, a welded relay).
        case unavailable
    }

    public var connectorStatuses: [ConnectorStatus] {
        connectors.map { c in
            if c.welded { return .faulted }
            // As OCPP has it: a connector the charger cannot serve is Unavailable even with a
            // cable in it, once no session is left on it.
            if (c.outOfService || c.held) && c.session == nil { return .unavailable }
            if c.session != nil || c.plugged { return .occupied }
            return acceptingPayments ? .available : .unavailable
        }
    }

    /// What each connector offers a driver now: what a charger shows on its display or LEDs, and
    /// what a simulated driver reacts to (plugging in once a session awaits the plug).
    public var connectorOffers: [ConnectorOffer] {
        connectors.map { c in
            if c.welded { return .unavailable }
            if let k = c.session, let s = sessions[k] {
                switch s.phase {
                case .awaitingPlug: return .awaitingPlug(k)
                case .charging: return .charging(k)
                default: return .busy(k)
                }
            }
            return acceptingPayments && !c.outOfService && !c.held ? .available : .unavailable
        }
    }

    /// Whether a car is plugged in at each connector, as the charger last said.
    public var pluggedIn: [Bool] { connectors.map(\.plugged) }

    /// Why a test transaction on connector `c` (0-based) cannot start now; nil when it can.
    public func testRefusal(connector c: Int) -> String? {
        guard connectors.indices.contains(c) else { return "no connector \(c + 1)" }
        if connectors[c].session != nil { return "a session runs on connector \(c + 1)" }
        if connectors[c].welded { return "connector \(c + 1) is out of service (welded relay)" }
        if !acceptingPayments { return "the station is not taking payments" }
        if testRequest != nil { return "a test transaction is already waiting for a card" }
        if case .presented = flow { return "a card is on the terminal" }
        if flow == .unavailable { return "the terminal is not available" }
        return nil
    }

    /// The relay each connector was last told to be in (closed = true).
    public var relayCommands: [Bool] { connectors.map(\.relayClosed) }

    // MARK: inputs

    public mutating func handle(_ input: EngineInput, at now: Moment) -> [EngineEffect] {
        var fx: [EngineEffect] = []
        switch input {
        case .terminal(let t): terminalInput(t, now, &fx)
        case let .plug(c, plugged): plug(c, plugged, now, &fx)
        case let .meter(c, register): meter(c, register, now, &fx)
        case let .meterIdentity(c, serial):
            guard connectors.indices.contains(c) else { break }
            let cut = String(decoding: Array(serial.utf8.prefix(Self.maxMeterSerialBytes)), as: UTF8.self)
            if connectors[c].meterSerial != cut {
                fx.append(.notice(.info, "connector \(c + 1): energy meter \(cut)\(connectors[c].meterSerial.map { " (was \($0))" } ?? "")"))
                connectors[c].meterSerial = cut
            }
        case let .cloud(key, decision): decided(key, decision, now, &fx)
        case let .relay(c, feedback): relayFeedback(c, feedback, now, &fx)
        case let .testTransaction(c, amount):
            if let why = testRefusal(connector: c) {
                fx.append(.notice(.info, "test transaction refused: \(why)"))
            } else {
                testRequest = (c, amount, now.monotonic + Self.testCardTimeout)
                lastTest = TestTransaction(connector: c, amount: amount, step: .waitingForCard)
                fx.append(.notice(.info, "test transaction on connector \(c + 1) for \(amount): present a card"))
                // The scan armed for a driver shows the pre-authorisation amount: armed again for the test.
                if flow == .armed { dropCard(now, &fx) }
            }
        case .operatorStop(let c):
            if let k = chargingSession(on: c) { stop(k, .operatorCommand, now, &fx) }
            else if let k = connectors[safe: c]?.session, case .awaitingPlug = sessions[k]?.phase { dispose(k, .release, now, &fx) }
        case let .fault(c, reason):
            fx.append(.notice(.warning, "connector \(c + 1) fault: \(reason)"))
            if let k = chargingSession(on: c) { stop(k, .fault, now, &fx) }
            else if let k = connectors[safe: c]?.session, case .awaitingPlug = sessions[k]?.phase { dispose(k, .release, now, &fx) }
        case .shutdown:
            shuttingDown = true
            for (i, c) in connectors.enumerated() where c.relayClosed { openRelay(i, &fx) }
            for k in sessions.keys.sorted() where sessions[k]?.phase == .charging {
                if let s = sessions[k] {
                    fx.append(.persist(.stopped(k, reason: .shutdown, energyWh: s.energyWh, seconds: s.seconds(at: now.monotonic), at: now.wallMillis)))
                    sessions[k]?.phase = .disposing
                    sessions[k]?.secondsBefore = s.seconds(at: now.monotonic)
                    sessions[k]?.chargingSince = nil
                }
            }
            dropCard(now, &fx)
        case .ledgerFailed(let why):
            ledgerBroken = true
            fx.append(.notice(.error, "ledger failed (\(why)): no new payments; relays open; restart to recover"))
            for (i, c) in connectors.enumerated() where c.relayClosed { openRelay(i, &fx) }
            // Nothing more can be written: freeze every session as it is on disk; recovery finishes them.
            for k in sessions.keys.sorted() {
                guard var s = sessions[k] else { continue }
                s.secondsBefore = s.seconds(at: now.monotonic)
                s.chargingSince = nil
                s.phase = .frozen
                s.pending = nil
                s.nextRetry = nil
                sessions[k] = s
            }
            dropCard(now, &fx)
        case .storageFull(let full):
            storageFull = full
            if full { fx.append(.notice(.warning, "storage full: refusing new sessions")) }
        case .acceptNewSessions(let on):
            paused = !on
            if paused { dropCard(now, &fx) }
        case let .connectorAvailable(c, available):
            guard connectors.indices.contains(c), connectors[c].outOfService == available else { break }
            connectors[c].outOfService = !available
            fx.append(.notice(available ? .info : .warning, "connector \(c + 1) \(available ? "available again" : "not available (the charger says it cannot serve it)")"))
            if !available {
                if let k = chargingSession(on: c) { stop(k, .fault, now, &fx) }
                else if let k = connectors[c].session, case .awaitingPlug = sessions[k]?.phase { dispose(k, .release, now, &fx) }
            }
        case let .weldCleared(c):
            guard connectors.indices.contains(c), connectors[c].welded else { break }
            connectors[c].welded = false
            fx.append(.notice(.warning, "connector \(c + 1): welded-relay latch cleared by a technician; the connector takes sessions again"))
        case let .connectorHeld(c, held):
            guard connectors.indices.contains(c), connectors[c].held != held else { break }
            connectors[c].held = held
            fx.append(.notice(.info, "connector \(c + 1) \(held ? "held out of service by the charging platform\(connectors[c].session == nil ? "" : " once its session ends")" : "released by the charging platform")"))
            // The last connector a card could go to is gone: stop scanning (a card read now would
            // have nowhere to charge).
            if held, !wantsCards, flow == .armed || isArming { dropCard(now, &fx) }
        case .reconfigure(var c):
            c.connectors = config.connectors
            let amountChanged = c.preauthAmount != config.preauthAmount
            config = c
            // A scan armed with the old amount is re-armed, so the amount the terminal shows
            // and reserves is the one configured.
            if amountChanged, flow == .armed { dropCard(now, &fx) }
        case let .costLimit(k, maxCost):
            lowerCostCap(k, maxCost, now, &fx)
        case let .reportRequested(k):
            requestReport(k, now, &fx)
        }
        fx += rearmIfDue(now)
        return fx
    }

    /// Time passed: deadlines, retries, periodic meter persistence.
    public mutating func tick(at now: Moment) -> [EngineEffect] {
        var fx: [EngineEffect] = []
        for k in sessions.keys.sorted() {
            guard let s = sessions[k] else { continue }
            switch s.phase {
            case .deciding(let deadline) where now.monotonic >= deadline:
                fx.append(.notice(.warning, "no card decision from the cloud in time: offline policy \(config.offlinePolicy.rawValue)"))
                decided(k, CardDecision(allowed: config.offlinePolicy == .allow), now, &fx)
            case .awaitingPlug(let deadline) where now.monotonic >= deadline:
                fx.append(.notice(.info, "session \(k): no plug-in within \(config.plugInTimeout); releasing the reservation"))
                dispose(k, .release, now, &fx)
            case .charging:
                account(k, now, &fx)
            case .disposing:
                if let due = s.nextRetry, now.monotonic >= due, s.pending == nil { sendDisposition(k, now, &fx) }
            default: break
            }
        }
        if let due = authOutcomeDue, now.monotonic >= due {
            authOutcomeDue = nil
            if let k = authorisingSession {
                fx.append(.notice(.warning, "session \(k): no outcome within \(config.authOutcomeTimeout) of an acknowledged authorisation; the approval may exist"))
                sessions[k]?.phase = .authUnknown
                flow = .idle(rearmAt: now.monotonic + config.rearmDelay)
                resolveUnknownAuths(now, &fx)
            }
        }
        if let at = listRetryAt, now.monotonic >= at {
            listRetryAt = nil
            resolveUnknownAuths(now, &fx)
        }
        if let t = testRequest, now.monotonic >= t.deadline {
            testRequest = nil
            lastTest?.step = .failed("no card presented within \(Self.testCardTimeout)")
            fx.append(.notice(.info, "test transaction: no card presented within \(Self.testCardTimeout); given up"))
            // The scan armed with the test amount is re-armed for drivers.
            if flow == .armed { dropCard(now, &fx) }
        }
        fx += rearmIfDue(now)
        return fx
    }

    /// The next instant `tick` has work.
    public var nextDeadline: Instant? {
        var d: [Instant] = []
        for s in sessions.values {
            switch s.phase {
            case .deciding(let t), .awaitingPlug(let t): d.append(t)
            case .charging: d.append(s.persistedAt + config.meterPersistInterval)
            case .disposing: if s.pending == nil, let r = s.nextRetry { d.append(r) }
            default: break
            }
        }
        if case .idle(let at) = flow, wantsCards { d.append(at) }
        if let at = listRetryAt { d.append(at) }
        if let at = authOutcomeDue, authorisingSession != nil { d.append(at) }
        if let t = testRequest { d.append(t.deadline) }
        return d.min()
    }

    // MARK: terminal

    mutating func terminalInput(_ t: TerminalInput, _ now: Moment, _ fx: inout [EngineEffect]) {
        switch t {
        case .ready(let capabilities):
            terminalCanList = capabilities.contains(.listOpenSessions)
            if flow == .unavailable { flow = .idle(rearmAt: now.monotonic) }
            // Everything that waited for the terminal goes now.
            for k in sessions.keys.sorted() where sessions[k]?.phase == .disposing && sessions[k]?.pending == nil {
                sendDisposition(k, now, &fx)
            }
            listRetryAt = nil
            resolveUnknownAuths(now, &fx)
        case .unavailable:
            flow = .unavailable
            listPending = nil
            for k in sessions.keys.sorted() {
                guard var s = sessions[k] else { continue }
                // A capture or release in flight may have reached the terminal.
                if s.pending != nil { s.attemptUnknown = true }
                s.pending = nil
                if case .deciding = s.phase { sessions[k] = nil; continue }   // nothing irreversible yet
                if s.phase == .authorising { s.phase = .authUnknown }
                sessions[k] = s
            }
            releaseConnectorsOfDroppedSessions()
        case .cardRead(let card):
            cardRead(card, now, &fx)
        case let .approved(ref, amount, pspRef):
            approved(ref, amount, pspRef, now, &fx)
        case .declined(let reason):
            if case .presented(let k) = flow, let s = sessions[k] {
                if s.phase == .authorising || s.phase == .authUnknown {
                    fx.append(.persist(.declined(k, reason: reason, at: now.wallMillis)))
                }
                if s.isTest { lastTest?.step = .failed("declined\(reason.map { " (reason \($0))" } ?? "")") }
                close(k)
                fx.append(.notice(.info, "session \(k) declined"))
            }
            flow = .idle(rearmAt: now.monotonic + config.rearmDelay)
        case .cancelled:
            if case .presented(let k) = flow, let s = sessions[k] {
                if s.phase == .authorising || s.phase == .authUnknown { fx.append(.persist(.abandoned(k, at: now.wallMillis))) }
                if s.isTest {
                    lastTest?.step = .failed("cancelled on the terminal")
                    fx.append(.notice(.info, "test transaction \(k) cancelled on the terminal"))
                }
                close(k)
            }
            flow = .idle(rearmAt: now.monotonic + config.rearmDelay)
        case let .completed(id, command, outcome):
            completed(id, command, outcome, now, &fx)
        case .openSessions(let refs):
            listPending = nil
            listFailures = 0
            orphans(refs, now, &fx)
        }
    }

    mutating func cardRead(_ card: CardIdentity, _ now: Moment, _ fx: inout [EngineEffect]) {
        // One card at a time: a Card Read while another card is being decided or authorised
        // (a repeated frame, a confused terminal) is not a new driver. Starting a session for
        // it would strand the first one; dropping it would cancel the first card's flow.
        if case .presented(let current) = flow {
            fx.append(.notice(.info, "card read while session \(current)'s card is on the terminal: ignored"))
            return
        }
        if let t = testRequest, armedAmount == t.amount {
            testRequest = nil
            guard acceptingPayments, connectors[t.connector].session == nil else {
                lastTest?.step = .failed("the connector was taken or payments stopped before the card was read")
                fx.append(.notice(.info, "test transaction given up: the connector was taken or payments stopped before the card was read"))
                dropCard(now, &fx)
                return
            }
            let k = nextKey
            nextKey += 1
            var s = Session(key: k, connector: t.connector, card: card, tariff: config.tariff, phase: .authorising, requested: t.amount)
            s.isTest = true
            sessions[k] = s
            connectors[t.connector].session = k
            flow = .presented(k)
            authOutcomeDue = nil
            lastTest?.step = .authorising(k)
            fx.append(.notice(.info, "test transaction \(k): card \(card.maskedPAN) read; authorising \(t.amount)"))
            // Durable before Auth, as for any card; the test mark rides in the same sync.
            fx.append(.persist(.authRequested(k, connector: t.connector, amount: t.amount, card: card, tariff: s.tariff, at: now.wallMillis)))
            fx.append(.persist(.testTransaction(k, at: now.wallMillis)))
            fx.append(command(.authorise(amount: t.amount)))
            return
        }
        // Tap to stop: the same card as a running or waiting session.
        if let k = sessions.values.filter({ $0.card.hash == card.hash && !card.hash.isEmpty })
            .first(where: { $0.phase == .charging || { if case .awaitingPlug = $0.phase { return true }; return false }($0) })?.key {
            fx.append(.notice(.info, "tap to stop: session \(k)"))
            dropCard(now, &fx)
            if sessions[k]?.phase == .charging { stop(k, .tapToStop, now, &fx) } else { dispose(k, .release, now, &fx) }
            return
        }
        guard acceptingPayments, let c = freeConnector() else {
            fx.append(.notice(.info, "card refused: \(acceptingPayments ? "no free connector" : "not taking payments")"))
            dropCard(now, &fx)
            return
        }
        let k = nextKey
        nextKey += 1
        sessions[k] = Session(key: k, connector: c, card: card, tariff: config.tariff,
                              phase: .deciding(deadline: now.monotonic + config.decisionTimeout), requested: armedAmount)
        connectors[c].session = k
        flow = .presented(k)
        fx.append(.notice(.info, "card \(card.maskedPAN) for connector \(c + 1): asking the cloud"))
        fx.append(.askCloud(k, card, connector: c))
    }

    mutating func decided(_ k: SessionKey, _ d: CardDecision, _ now: Moment, _ fx: inout [EngineEffect]) {
        guard var s = sessions[k], case .deciding = s.phase else { return }
        // Its card left the terminal meanwhile (dropped, link lost): nothing was reserved, so
        // the session just ends. Left deciding, its past deadline would fire on every tick.
        guard flow == .presented(k) else {
            fx.append(.notice(.info, "session \(k): its card is no longer on the terminal"))
            close(k)
            return
        }
        guard d.allowed, acceptingPayments else {
            fx.append(.notice(.info, "session \(k): card not allowed here"))
            close(k)
            dropCard(now, &fx)
            return
        }
        if let t = d.tariff { s.tariff = t }
        if let m = d.maxAmount, m > 0, m < s.requested { s.requested = m }
        s.phase = .authorising
        authOutcomeDue = nil   // a previous card's, answered: this one's starts at its acknowledgement
        sessions[k] = s
        // Durable before Auth: after a crash we must know an approval may exist.
        fx.append(.persist(.authRequested(k, connector: s.connector, amount: s.requested, card: s.card, tariff: s.tariff, at: now.wallMillis)))
        fx.append(command(.authorise(amount: s.requested)))
    }

    mutating func approved(_ ref: TerminalHandle, _ amount: Int64, _ pspRef: [UInt8], _ now: Moment, _ fx: inout [EngineEffect]) {
        var key: SessionKey?
        if case .presented(let k) = flow, let s = sessions[k], s.phase == .authorising || s.phase == .authUnknown { key = k }
        if key == nil, let k = sessions.values.filter({ $0.phase == .authUnknown }).map(\.key).min() { key = k }
        guard let k = key, var s = sessions[k] else {
            // An approval nobody asked for (a late answer after a restart): never charge on it.
            let orphan = nextKey
            nextKey += 1
            fx.append(.notice(.warning, "unexpected approval \(ref): releasing it"))
            fx.append(.persist(.approved(orphan, handle: ref, authorised: amount, pspRef: pspRef, at: now.wallMillis)))
            sessions[orphan] = Session(key: orphan, connector: -1, card: CardIdentity(maskedPAN: "", hash: []), tariff: config.tariff,
                                       phase: .disposing, requested: amount, handle: ref, authorised: amount)
            dispose(orphan, .release, now, &fx)
            return
        }
        if flow == .presented(k) { flow = .idle(rearmAt: now.monotonic + config.rearmDelay) }
        if s.connector < 0 || connectors[safe: s.connector]?.session != k {
            // An approval for a session that lost its connector (a restart in between): the
            // driver has gone; never charge on it.
            s.handle = ref
            s.authorised = max(0, amount)
            sessions[k] = s
            fx.append(.persist(.approved(k, handle: ref, authorised: s.authorised, pspRef: pspRef, at: now.wallMillis)))
            fx.append(.notice(.warning, "session \(k): approval \(ref) arrived after its connector was given up: releasing it"))
            dispose(k, .release, now, &fx)
            return
        }
        if s.isTest {
            s.handle = ref
            s.authorised = max(0, amount)
            sessions[k] = s
            fx.append(.persist(.approved(k, handle: ref, authorised: s.authorised, pspRef: pspRef, at: now.wallMillis)))
            fx.append(.notice(.info, "test transaction \(k) approved for \(s.authorised) (terminal ref \(ref)): voiding"))
            if lastTest?.step == .authorising(k) { lastTest?.step = .voiding(k) }
            dispose(k, .release, now, &fx)
            return
        }
        s.handle = ref
        // Never capture more than both the bank approved and we asked for.
        s.authorised = max(0, s.requested > 0 ? min(amount, s.requested) : amount)
        s.phase = .awaitingPlug(deadline: now.monotonic + config.plugInTimeout)
        sessions[k] = s
        fx.append(.persist(.approved(k, handle: ref, authorised: s.authorised, pspRef: pspRef, at: now.wallMillis)))
        fx.append(.notice(.info, "session \(k) approved for \(s.authorised) (terminal ref \(ref))"))
        if connectors[s.connector].plugged { startCharging(k, now, &fx) }
    }

    mutating func completed(_ id: CommandID, _ command: TerminalCommand, _ outcome: CommandOutcome, _ now: Moment, _ fx: inout [EngineEffect]) {
        switch command {
        case .arm:
            guard flow == .arming(id) else { return }
            flow = outcome == .ok ? .armed : .idle(rearmAt: now.monotonic + config.retryInterval)
            // A test transaction asked for while this scan was being armed for drivers: armed again for the test.
            if flow == .armed, let t = testRequest, armedAmount != t.amount { dropCard(now, &fx) }
        case .cancel:
            if flow == .cancelling { flow = .idle(rearmAt: now.monotonic + config.rearmDelay) }
        case .authorise:
            guard outcome != .ok else {
                // Acknowledged; the outcome comes as its own message. Should it be lost (a
                // corrupted frame), the session must not wait in `authorising` for ever.
                if authorisingSession != nil { authOutcomeDue = now.monotonic + config.authOutcomeTimeout }
                return
            }
            // The outcome event (approved/declined/cancelled) did not come: the approval may exist.
            if let k = authorisingSession {
                if outcome == .notSent || outcome == .refused(notFound: false) || outcome == .refused(notFound: true) {
                    if sessions[k]?.isTest == true {
                        lastTest?.step = .failed("the terminal did not take the authorisation (\(outcome))")
                        fx.append(.notice(.info, "test transaction \(k): the terminal did not take the authorisation"))
                    }
                    fx.append(.persist(.abandoned(k, at: now.wallMillis)))
                    close(k)
                } else {
                    sessions[k]?.phase = .authUnknown
                }
                flow = .idle(rearmAt: now.monotonic + config.rearmDelay)
                resolveUnknownAuths(now, &fx)
            }
        case .listOpen:
            if outcome != .ok, listPending == id {
                listPending = nil
                listFailures += 1
                if listFailures >= config.maxRefusals {
                    // The terminal will not say which sessions it holds: the approvals in doubt
                    // go to a person, as on a terminal that cannot list (its session timeout
                    // releases them meanwhile).
                    listFailures = 0
                    for k in sessions.values.filter({ $0.phase == .authUnknown }).map(\.key).sorted() {
                        let note = "authorisation went unanswered and the terminal did not list its sessions (\(config.maxRefusals) tries); the terminal releases it at its session timeout"
                        reconcile(k, note: note, &fx)
                    }
                } else {
                    listRetryAt = now.monotonic + config.retryInterval
                }
            }
        case .capture, .release:
            guard let k = sessions.values.first(where: { $0.pending == id })?.key, var s = sessions[k] else { return }
            s.pending = nil
            switch outcome {
            case .ok:
                sessions[k] = s
                if case .capture(let amount) = s.disposition {
                    fx.append(.persist(.captured(k, amount: amount, at: now.wallMillis)))
                    fx.append(.notice(.info, "session \(k) settled: \(amount) captured"))
                } else {
                    fx.append(.persist(.voided(k, at: now.wallMillis)))
                    fx.append(.notice(.info, "session \(k) voided"))
                    if s.isTest, lastTest?.step == .voiding(k) { lastTest?.step = .succeeded(k) }
                }
                close(k)
            case .refused(notFound: true):
                sessions[k] = s
                let what = s.disposition == .release ? "release" : "capture"
                let note = s.attemptUnknown
                    ? "\(what) answered 'session not found' after an unanswered attempt: it most likely succeeded; check with the acquirer"
                    : "terminal does not know session \(s.handle?.label ?? "?") for \(what): released by the terminal or lost; check with the acquirer"
                reconcile(k, note: note, &fx)
            case .refused(notFound: false):
                s.refusals += 1
                if s.refusals >= config.maxRefusals {
                    sessions[k] = s
                    let note = "terminal refused \(s.refusals) times"
                    fx.append(.persist(.needsReconciliation(k, note: note)))
                    close(k)
                } else {
                    s.nextRetry = now.monotonic + config.retryInterval
                    sessions[k] = s
                }
            case .unknown:
                s.attemptUnknown = true
                s.unanswered += 1
                sessions[k] = s
                if s.unanswered >= config.maxUnanswered {
                    // A terminal that never answers readably (while the link stays up) must not
                    // keep the session open for ever: a person settles it with the acquirer.
                    let note = "no readable answer to \(s.unanswered) attempts; the \(s.disposition == .release ? "release" : "capture") may or may not have happened: check with the acquirer"
                    reconcile(k, note: note, &fx)
                } else {
                    sessions[k]?.nextRetry = now.monotonic + config.retryInterval
                }
            case .notSent:
                s.nextRetry = now.monotonic + config.retryInterval
                sessions[k] = s
            }
        }
    }

    /// Hands a session to a person: the ledger says why, the log says so, the engine lets go.
    mutating func reconcile(_ k: SessionKey, note: String, _ fx: inout [EngineEffect]) {
        fx.append(.persist(.needsReconciliation(k, note: note)))
        if sessions[k]?.isTest == true, lastTest?.step == .authorising(k) || lastTest?.step == .voiding(k) {
            lastTest?.step = .failed("needs reconciliation: \(note)")
        }
        fx.append(.notice(.warning, "session \(k) needs reconciliation: \(note)"))
        close(k)
    }

    /// The session whose authorisation is on the terminal now, if any.
    var authorisingSession: SessionKey? {
        if case .presented(let k) = flow, sessions[k]?.phase == .authorising { return k }
        return nil
    }

    /// Approvals that may exist without our record of them: list them where the terminal can,
    /// else hand them to a person. The terminal's own session timeout (Setup, action void) is the backstop.
    mutating func resolveUnknownAuths(_ now: Moment, _ fx: inout [EngineEffect]) {
        let unknown = sessions.values.filter { $0.phase == .authUnknown }.map(\.key).sorted()
        guard !unknown.isEmpty, flow != .unavailable else { return }
        if terminalCanList {
            if listPending == nil {
                let (id, e) = commandWithID(.listOpen)
                listPending = id
                fx.append(e)
            }
        } else {
            for k in unknown {
                let note = "authorisation went unanswered and this terminal cannot list its sessions; the terminal releases it at its session timeout"
                reconcile(k, note: note, &fx)
            }
        }
    }

    /// Open sessions on the terminal that we hold no approval for are released; sessions whose
    /// authorisation went unanswered and are not among them were never approved.
    mutating func orphans(_ refs: [TerminalHandle], _ now: Moment, _ fx: inout [EngineEffect]) {
        let known = Set(sessions.values.compactMap(\.handle))
        var unknownAuths = sessions.values.filter { $0.phase == .authUnknown }.map(\.key).sorted()
        for ref in refs.sorted() where !known.contains(ref) {
            let k: SessionKey
            if !unknownAuths.isEmpty { k = unknownAuths.removeFirst() } else { k = nextKey; nextKey += 1 }
            fx.append(.notice(.warning, "terminal holds session \(ref) we never charged on: releasing it"))
            fx.append(.persist(.approved(k, handle: ref, authorised: 0, pspRef: [], at: now.wallMillis)))
            var s = sessions[k] ?? Session(key: k, connector: -1, card: CardIdentity(maskedPAN: "", hash: []), tariff: config.tariff,
                                           phase: .disposing, requested: 0)
            s.handle = ref
            sessions[k] = s
            if s.connector >= 0, connectors[safe: s.connector]?.session == k { connectors[s.connector].session = nil }
            sessions[k]?.connector = -1
            dispose(k, .release, now, &fx)
        }
        for k in unknownAuths {
            fx.append(.persist(.abandoned(k, at: now.wallMillis)))
            close(k)
        }
    }

    // MARK: connector

    mutating func plug(_ c: Int, _ plugged: Bool, _ now: Moment, _ fx: inout [EngineEffect]) {
        guard connectors.indices.contains(c) else { return }
        connectors[c].plugged = plugged
        if !plugged { connectors[c].awaitingUnplug = false }
        if plugged {
            if let k = connectors[c].session, case .awaitingPlug = sessions[k]?.phase { startCharging(k, now, &fx) }
        } else if let k = chargingSession(on: c) {
            stop(k, .unplugged, now, &fx)
        }
    }

    mutating func startCharging(_ k: SessionKey, _ now: Moment, _ fx: inout [EngineEffect]) {
        guard var s = sessions[k], !ledgerBroken, !shuttingDown, !connectors[s.connector].welded else { return }
        // Approved while its connector went out of service (the card was being decided): no
        // energy can be delivered there, so the reservation goes back at once.
        if connectors[s.connector].outOfService {
            fx.append(.notice(.info, "session \(k): connector \(s.connector + 1) not available; releasing the reservation"))
            dispose(k, .release, now, &fx)
            return
        }
        s.phase = .charging
        s.registerStartWh = connectors[s.connector].registerWh
        s.chargingSince = now.monotonic
        s.persistedAt = now.monotonic
        sessions[k] = s
        // Durable before the relay closes: the approval record is already ahead of this one.
        fx.append(.persist(.charging(k, at: now.wallMillis)))
        if let serial = connectors[s.connector].meterSerial, let register = s.registerStartWh {
            fx.append(.persist(.meterReading(k, .start, registerWh: register, meterSerial: serial, at: now.wallMillis)))
            sessions[k]?.meterSerial = serial
        }
        connectors[s.connector].relayClosed = true
        fx.append(.relay(connector: s.connector, close: true))
        fx.append(.notice(.info, "session \(k) charging on connector \(s.connector + 1)"))
    }

    mutating func meter(_ c: Int, _ register: Int64, _ now: Moment, _ fx: inout [EngineEffect]) {
        guard connectors.indices.contains(c) else { return }
        connectors[c].registerWh = register
        guard let k = chargingSession(on: c), var s = sessions[k] else { return }
        if s.registerStartWh == nil {
            // No reading before the relay closed: the first one after it is the start (what
            // flowed in between is not billed, the driver's side of the doubt).
            s.registerStartWh = register
            if let serial = connectors[c].meterSerial {
                fx.append(.persist(.meterReading(k, .start, registerWh: register, meterSerial: serial, at: now.wallMillis)))
                s.meterSerial = serial
            }
        }
        // A register that runs backwards (meter swapped or reset) never reduces what was delivered;
        // an absurd reading (the difference overflows) is ignored.
        let (delta, overflow) = register.subtractingReportingOverflow(s.registerStartWh ?? register)
        if !overflow { s.energyWh = max(s.energyWh, delta) }
        sessions[k] = s
        account(k, now, &fx)
    }

    /// Cost cap and periodic persistence for a charging session.
    mutating func account(_ k: SessionKey, _ now: Moment, _ fx: inout [EngineEffect]) {
        guard let s = sessions[k], s.phase == .charging else { return }
        let seconds = s.seconds(at: now.monotonic)
        let meter = CostMeter(tariff: s.tariff, authorised: s.costCap)
        if meter.reachedCap(energyWh: s.energyWh, seconds: seconds) {
            stop(k, .costLimit, now, &fx)
            return
        }
        if s.energyWh - s.persistedWh >= config.meterPersistWh || now.monotonic >= s.persistedAt + config.meterPersistInterval {
            sessions[k]?.persistedWh = s.energyWh
            sessions[k]?.persistedAt = now.monotonic
            fx.append(.persist(.meter(k, energyWh: s.energyWh, seconds: seconds)))
        }
    }

    mutating func relayFeedback(_ c: Int, _ f: RelayFeedback, _ now: Moment, _ fx: inout [EngineEffect]) {
        guard connectors.indices.contains(c) else { return }
        switch f {
        case .closed, .opened: break
        case .refusedToClose:
            fx.append(.notice(.warning, "connector \(c + 1): relay did not close"))
            if let k = chargingSession(on: c) { stop(k, .relayRefused, now, &fx) }
        case .welded:
            connectors[c].welded = true
            fx.append(.notice(.error, "connector \(c + 1): relay welded: connector out of service"))
        }
    }

    // MARK: stopping and disposing

    mutating func stop(_ k: SessionKey, _ reason: StopReason, _ now: Moment, _ fx: inout [EngineEffect]) {
        guard var s = sessions[k], s.phase == .charging else { return }
        openRelay(s.connector, &fx)
        let seconds = s.seconds(at: now.monotonic)
        s.secondsBefore = seconds
        s.chargingSince = nil
        sessions[k] = s
        if let serial = s.meterSerial, let register = connectors[s.connector].registerWh {
            fx.append(.persist(.meterReading(k, .end, registerWh: register, meterSerial: serial, at: now.wallMillis)))
        }
        fx.append(.persist(.stopped(k, reason: reason, energyWh: s.energyWh, seconds: seconds, at: now.wallMillis)))
        fx.append(.notice(.info, "session \(k) stopped: \(reason)"))
        dispose(k, PaymentEngine.disposition(tariff: s.tariff, authorised: s.authorised, energyWh: s.energyWh, seconds: seconds,
                                             reason: reason, costLimit: s.costLimit), now, &fx)
    }

    /// `EngineInput.costLimit`: durable first, then the lower cap, then what it calls for now.
    mutating func lowerCostCap(_ k: SessionKey, _ maxCost: Int64, _ now: Moment, _ fx: inout [EngineEffect]) {
        func ignored(_ why: String) { fx.append(.notice(.info, "cost limit \(maxCost) for session \(k) ignored: \(why)")) }
        guard maxCost >= 0 else { return ignored("negative") }
        guard let s = sessions[k] else { return ignored("no such open session") }
        guard !s.isTest else { return ignored("a test transaction") }
        let awaitingPlug: Bool
        switch s.phase {
        case .charging: awaitingPlug = false
        case .awaitingPlug: awaitingPlug = true
        case .disposing: return ignored("the session is settling")
        case .frozen: return ignored("the ledger failed")
        case .deciding, .authorising, .authUnknown: return ignored("the session is not approved yet")
        }
        guard maxCost < s.costCap else { return ignored("not lower than the current cap \(s.costCap)") }
        // Written ahead, as every fact: after a crash the recovered session keeps the lower cap.
        fx.append(.persist(.costLimited(k, maxCost: maxCost, at: now.wallMillis)))
        sessions[k]?.costLimit = maxCost
        fx.append(.notice(.info, "session \(k): cost cap lowered to \(maxCost) by the charging platform"))
        let meter = CostMeter(tariff: s.tariff, authorised: maxCost)
        if awaitingPlug {
            // Nothing delivered yet: if the start fee alone reaches the cap, no charging is worth it.
            if meter.reachedCap(energyWh: 0, seconds: 0) {
                fx.append(.notice(.info, "session \(k): the cost limit leaves nothing to charge; releasing the reservation"))
                dispose(k, .release, now, &fx)
            }
        } else if meter.reachedCap(energyWh: s.energyWh, seconds: s.seconds(at: now.monotonic)) {
            stop(k, .costLimit, now, &fx)
        }
    }

    /// A meter serial longer than this (UTF-8 bytes) is cut: Modbus meters give at most a few dozen digits.
    public static let maxMeterSerialBytes = 32

    /// Triggered reports a transaction may have: its events' ids come from a fixed range per
    /// transaction (Started, Charging and Ended take three of them), and a platform asking more
    /// often than this is asking in a loop.
    public static let maxReportsPerSession = 4

    /// Whether `reportRequested` would write a report for this session now.
    public func reportable(_ k: SessionKey) -> Bool {
        guard let s = sessions[k], s.reportsRequested < Self.maxReportsPerSession, !ledgerBroken else { return false }
        switch s.phase {
        case .charging, .awaitingPlug: return true
        case .disposing, .frozen, .deciding, .authorising, .authUnknown: return false
        }
    }

    mutating func requestReport(_ k: SessionKey, _ now: Moment, _ fx: inout [EngineEffect]) {
        guard reportable(k) else {
            let why = sessions[k] == nil ? "no such open session"
                : sessions[k]!.reportsRequested >= Self.maxReportsPerSession ? "\(Self.maxReportsPerSession) reports already"
                : "the session is not approved yet, or is settling"
            fx.append(.notice(.info, "transaction report for session \(k) not made: \(why)"))
            return
        }
        fx.append(.persist(.reportRequested(k, at: now.wallMillis)))
        sessions[k]?.reportsRequested += 1
    }

    mutating func dispose(_ k: SessionKey, _ d: Session.Disposition, _ now: Moment, _ fx: inout [EngineEffect]) {
        guard var s = sessions[k] else { return }
        s.phase = .disposing
        s.disposition = d
        sessions[k] = s
        if s.connector >= 0, connectors[safe: s.connector]?.session == k {
            connectors[s.connector].session = nil
            if connectors[s.connector].plugged { connectors[s.connector].awaitingUnplug = true }
        }
        switch d {
        case .capture(let amount): fx.append(.persist(.captureRequested(k, amount: amount)))
        case .release: fx.append(.persist(.voidRequested(k)))
        }
        sendDisposition(k, now, &fx)
    }

    mutating func sendDisposition(_ k: SessionKey, _ now: Moment, _ fx: inout [EngineEffect]) {
        guard var s = sessions[k], let d = s.disposition, let ref = s.handle, s.pending == nil else { return }
        guard flow != .unavailable else { s.nextRetry = nil; sessions[k] = s; return }
        let cmd: TerminalCommand
        switch d {
        case .capture(let amount): cmd = .capture(ref, amount: amount, reserved: s.authorised)
        case .release: cmd = .release(ref)
        }
        let (id, e) = commandWithID(cmd)
        s.pending = id
        s.nextRetry = now.monotonic + config.retryInterval
        sessions[k] = s
        fx.append(e)
    }

    /// What a stopped session owes: nothing when the relay never closed or nothing was delivered
    /// (release), else the tariff's cost capped at the authorisation and at the platform's cost
    /// limit, if it set one (`Session.costLimit`). One rule for the live engine and for recovery,
    /// so a crash between `stopped` and the request cannot change the outcome.
    public static func disposition(tariff: Tariff, authorised: Int64, energyWh: Int64, seconds: Int64, reason: StopReason?,
                                   costLimit: Int64? = nil) -> Session.Disposition {
        if reason == .relayRefused || (energyWh == 0 && seconds == 0) { return .release }
        let cap = min(authorised, costLimit.map { max(0, $0) } ?? authorised)
        let amount = CostMeter(tariff: tariff, authorised: cap).capture(energyWh: energyWh, seconds: seconds)
        return amount > 0 ? .capture(amount) : .release
    }

    // MARK: helpers

    /// Whether the terminal should be scanning: for a new session on a free connector, or so a
    /// driver can tap again to stop (on a one-connector charger every connector is busy then).
    var isArming: Bool { if case .arming = flow { return true } else { return false } }

    var wantsCards: Bool {
        if testRequest != nil { return true }
        if acceptingPayments && freeConnector() != nil { return true }
        guard config.scanForTapToStop, !shuttingDown && !ledgerBroken else { return false }
        return sessions.values.contains { s in
            if s.phase == .charging { return true }
            if case .awaitingPlug = s.phase { return true }
            return false
        }
    }

    mutating func rearmIfDue(_ now: Moment) -> [EngineEffect] {
        guard case .idle(let at) = flow, now.monotonic >= at, wantsCards else { return [] }
        armedAmount = testRequest?.amount ?? config.preauthAmount
        let (id, e) = commandWithID(.arm(amount: armedAmount, reference: UInt32(truncatingIfNeeded: nextKey)))
        flow = .arming(id)
        return [e]
    }

    /// Takes the card off the terminal (or stops the scan) if one is there.
    mutating func dropCard(_ now: Moment, _ fx: inout [EngineEffect]) {
        switch flow {
        case .presented(let k):
            if let s = sessions[k], s.phase == .authorising {
                // Auth is out: its answer decides; cancelling now could race an approval.
                return
            }
            close(k)
            flow = .cancelling
            fx.append(command(.cancel))
        case .armed, .arming:
            flow = .cancelling
            fx.append(command(.cancel))
        default: break
        }
    }

    mutating func openRelay(_ c: Int, _ fx: inout [EngineEffect]) {
        guard connectors.indices.contains(c) else { return }
        connectors[c].relayClosed = false
        fx.append(.relay(connector: c, close: false))
    }

    mutating func close(_ k: SessionKey) {
        if let s = sessions[k], s.connector >= 0, connectors[safe: s.connector]?.session == k { connectors[s.connector].session = nil }
        sessions[k] = nil
    }

    mutating func releaseConnectorsOfDroppedSessions() {
        for i in connectors.indices { if let k = connectors[i].session, sessions[k] == nil { connectors[i].session = nil } }
    }

    func chargingSession(on c: Int) -> SessionKey? {
        guard let k = connectors[safe: c]?.session, sessions[k]?.phase == .charging else { return nil }
        return k
    }

    /// A connector that can take a new session: no session, not welded, not out of service. Plugged-in ones first
    /// (plug in, then tap), else the lowest-numbered one (tap, then plug in).
    func freeConnector() -> Int? {
        let free = connectors.indices.filter {
            connectors[$0].session == nil && !connectors[$0].welded && !connectors[$0].outOfService && !connectors[$0].held
                && !connectors[$0].awaitingUnplug
        }
        return free.first { connectors[$0].plugged } ?? free.first
    }

    mutating func command(_ c: TerminalCommand) -> EngineEffect { commandWithID(c).1 }

    mutating func commandWithID(_ c: TerminalCommand) -> (CommandID, EngineEffect) {
        let id = nextCommand
        nextCommand += 1
        return (id, .terminal(id, c))
    }
}

extension Array {
    subscript(safe i: Int) -> Element? { indices.contains(i) ? self[i] : nil }
}
