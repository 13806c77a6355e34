import PaymentEngine
import Timebase

/// A deterministic world around the payment engine: a terminal that keeps its own books, a
/// cloud, EVs on connectors, relays, a ledger that survives crashes exactly as far as it was
/// written, and a virtual clock. One seed drives everything; `check` states the invariants.
public struct SimulationSettings: Sendable {
    public var sessions = 1000
    public var connectors = 2
    /// Whether the terminal can list its open sessions (P6X) or not (Apollo).
    public var terminalCanList = true
    /// Probabilities in percent.
    public var declinePercent = 10
    public var cloudRefusePercent = 5
    public var cloudDownPercent = 10
    public var lostAnswerPercent = 3
    /// Per mille per engine tick (every 5 simulated seconds): a session lasts hours of
    /// simulated time, so this still interrupts a good share of them.
    public var linkDropPerMille = 2
    public var crashPerMille = 1
    public var neverPlugPercent = 8
    public var tapToStopPercent = 15
    public var relayRefusePercent = 2
    /// Per mille per engine tick: the operator reloads the configuration with another
    /// pre-authorisation amount and tariff (SIGHUP); crashes then recover with the new one.
    public var reloadPerMille = 3
    public init() {}
}

/// An invariant that failed, with the step and seed to replay it.
public struct InvariantViolation: Error, CustomStringConvertible {
    public var seed: UInt64
    public var step: Int
    public var message: String
    public var description: String { "seed \(seed), step \(step): \(message)" }
}

/// Counts for the summary line.
public struct SimulationSummary: Sendable, CustomStringConvertible {
    /// Card sessions the engine took on (cards refused for want of a free connector not counted).
    public var sessions = 0
    public var approvals = 0, committed = 0, voided = 0, voidedByTerminalTimeout = 0, declined = 0
    public var crashes = 0, linkDrops = 0, reloads = 0, reconciliations = 0, cards = 0, steps = 0
    public var description: String {
        "sessions=\(sessions) cards=\(cards) approvals=\(approvals) committed=\(committed) voided=\(voided) timeoutVoids=\(voidedByTerminalTimeout) declined=\(declined) reconciliations=\(reconciliations) crashes=\(crashes) reloads=\(reloads) linkDrops=\(linkDrops) steps=\(steps)"
    }
}

public struct EngineWorld {
    // MARK: the world's parts

    struct TerminalSession { var authorised: Int64; var approvedAt: Instant; var state: Int /* 0 open, 1 committed, 2 voided */; var amount: Int64 = 0 }

    enum Event: Comparable {
        case tap(Int)                   // a driver taps a card (index into cards)
        case bankAnswer(CommandID)
        case commandDone(CommandID)
        case cloudAnswer(SessionKey, Bool)
        case plug(Int, Bool)
        case meterTick(Int)
        case linkBack
        case engineTick
        static func < (a: Event, b: Event) -> Bool { a.rank < b.rank }
        var rank: Int {
            switch self {
            case .tap: return 0
            case .bankAnswer: return 1
            case .commandDone: return 2
            case .cloudAnswer: return 3
            case .plug: return 4
            case .meterTick: return 5
            case .linkBack: return 6
            case .engineTick: return 7
            }
        }
    }

    public let seed: UInt64
    public let settings: SimulationSettings
    var config: EngineConfig
    var rng: SeededGenerator
    public var engine: PaymentEngine
    public private(set) var summary = SimulationSummary()
    var now = Moment(monotonic: Instant(nanoseconds: 1_000_000_000), wallMillis: 1_764_000_000_000)
    var agenda: [(at: Instant, seq: Int, event: Event)] = []
    var agendaSeq = 0
    var step = 0

    /// The ledger as far as it is durable.
    public private(set) var ledger: [LedgerEntry] = []
    /// Durable facts by session, kept as entries are persisted (the relay oracle).
    var durableConnector: [SessionKey: Int] = [:]
    var durableRefs = Set<TerminalHandle>()
    var durableApproved = Set<SessionKey>(), durableCharging = Set<SessionKey>(), durableEnded = Set<SessionKey>()
    /// The terminal's own books, by terminal reference.
    var terminalSessions: [TerminalHandle: TerminalSession] = [:]
    var nextRef: UInt32 = 5000
    var terminalUp = false
    var armed = false
    /// What the terminal shows and reserves: the amount of its last arm, and of the card on it.
    var armedAmount: Int64 = 0
    var cardAmount: Int64 = 0
    var cardOnTerminal: Int?
    var pendingCommands: [CommandID: TerminalCommand] = [:]
    let terminalSessionTimeout: Duration = .seconds(48 * 3600)
    // Connectors.
    var plugged: [Bool]
    var relayClosed: [Bool]
    var register: [Int64]
    var relayCloseCount = 0
    // Drivers: card index → plan.
    var cardsIssued = 0
    var sessionsStarted = 0
    var chargingCard: [Int: Int] = [:]         // connector → card index charging there
    var lastApprovedCard: Int?

    public init(seed: UInt64, settings: SimulationSettings) {
        self.seed = seed
        self.settings = settings
        var c = EngineConfig()
        c.connectors = settings.connectors
        c.preauthAmount = 5000
        c.tariff = Tariff(currency: "EUR", startFee: 50, energyPricePerKWh: 39_900, timePricePerMinute: 1_500)
        c.decisionTimeout = .seconds(5)
        c.plugInTimeout = .seconds(300)
        c.retryInterval = .seconds(10)
        config = c
        rng = SeededGenerator(seed: seed)
        engine = PaymentEngine(config: c)
        plugged = Array(repeating: false, count: settings.connectors)
        relayClosed = Array(repeating: false, count: settings.connectors)
        register = Array(repeating: 0, count: settings.connectors)
    }

    mutating func percent(_ p: Int) -> Bool { Int.random(in: 0..<100, using: &rng) < p }
    mutating func schedule(_ e: Event, after d: Duration) {
        agendaSeq += 1
        agenda.append((now.monotonic + d, agendaSeq, e))
    }
    mutating func ms(_ range: ClosedRange<Int>) -> Duration { .milliseconds(Int.random(in: range, using: &rng)) }

    // MARK: running

    /// Runs the configured number of card sessions, then lets everything settle.
    public mutating func run() throws(InvariantViolation) -> SimulationSummary {
        terminalUp = true
        try apply(engine.handle(.terminal(.ready(settings.terminalCanList ? [.listOpenSessions] : [])), at: now))
        schedule(.tap(nextCard()), after: .seconds(1))
        for c in 0..<settings.connectors { schedule(.meterTick(c), after: .seconds(10)) }
        schedule(.engineTick, after: .seconds(1))
        while let i = agenda.indices.min(by: { (agenda[$0].at, agenda[$0].seq) < (agenda[$1].at, agenda[$1].seq) }) {
            let item = agenda.remove(at: i)
            advance(to: item.at)
            step += 1
            try dispatch(item.event)
            if summary.sessions >= settings.sessions && quiet() { break }
        }
        try settle()
        summary.steps = step
        return summary
    }

    func quiet() -> Bool {
        engine.sessions.isEmpty && chargingCard.isEmpty && cardOnTerminal == nil
    }

    mutating func advance(to t: Instant) {
        if t > now.monotonic {
            let delta = (t - now.monotonic).nanosecondsClamped / 1_000_000
            now = Moment(monotonic: t, wallMillis: now.wallMillis + delta)
        }
    }

    func nextCardValue() -> Int { cardsIssued }
    mutating func nextCard() -> Int { cardsIssued += 1; return cardsIssued }

    static func card(_ i: Int) -> CardIdentity {
        // Masked as a terminal sends it; the hash identifies the card for tap-to-stop.
        let last4 = String(1000 + i % 9000)
        return CardIdentity(maskedPAN: "476173******" + last4, hash: [UInt8(truncatingIfNeeded: i >> 24), UInt8(truncatingIfNeeded: i >> 16),
                                                                      UInt8(truncatingIfNeeded: i >> 8), UInt8(truncatingIfNeeded: i)], brand: "VISA")
    }

    mutating func dispatch(_ e: Event) throws(InvariantViolation) {
        switch e {
        case .tap(let card):
            // Drivers keep coming until enough sessions started.
            if summary.sessions < settings.sessions { schedule(.tap(nextCard()), after: ms(20_000...400_000)) }
            // Sometimes a charging driver taps again to stop instead.
            if percent(settings.tapToStopPercent), let (_, c) = chargingCard.first(where: { _ in true }) {
                try presentCard(c)
            } else if summary.sessions < settings.sessions {
                sessionsStarted += 1
                try presentCard(card)
            }
        case .bankAnswer(let id):
            guard terminalUp, pendingCommands[id] != nil, let card = cardOnTerminal else { return }
            pendingCommands[id] = nil
            cardOnTerminal = nil
            let lost = percent(settings.lostAnswerPercent)
            if percent(settings.declinePercent) {
                summary.declined += 1
                if !lost { try apply(engine.handle(.terminal(.declined(reason: 9)), at: now)) }
            } else {
                let ref = TerminalHandle(reference: nextRef)
                nextRef += 1
                terminalSessions[ref] = TerminalSession(authorised: cardAmount, approvedAt: now.monotonic, state: 0)
                summary.approvals += 1
                lastApprovedCard = card
                if !lost {
                    try apply(engine.handle(.terminal(.approved(ref, amount: cardAmount, pspRef: Array("REF\(ref)".utf8))), at: now))
                    planDriver(card)
                } else {
                    // The approval exists at the bank but its answer is lost.
                    try apply(engine.handle(.terminal(.completed(id, .authorise(amount: cardAmount), .unknown)), at: now))
                }
            }
            if lost { summary.linkDrops += 0 }
        case .commandDone(let id):
            guard let cmd = pendingCommands.removeValue(forKey: id) else { return }
            try terminalExecute(id, cmd)
        case let .cloudAnswer(key, allowed):
            try apply(engine.handle(.cloud(key, CardDecision(allowed: allowed)), at: now))
        case let .plug(c, p):
            plugged[c] = p
            if !p { chargingCard[c] = nil }
            try apply(engine.handle(.plug(connector: c, pluggedIn: p), at: now))
        case .meterTick(let c):
            if relayClosed[c] { register[c] += Int64.random(in: 50...400, using: &rng) }
            try apply(engine.handle(.meter(connector: c, registerWh: register[c]), at: now))
            schedule(.meterTick(c), after: .seconds(30))
        case .linkBack:
            terminalUp = true
            try apply(engine.handle(.terminal(.ready(settings.terminalCanList ? [.listOpenSessions] : [])), at: now))
        case .engineTick:
            try apply(engine.tick(at: now))
            try terminalTimeouts()
            // Random faults between steps.
            if Int.random(in: 0..<1000, using: &rng) < settings.linkDropPerMille { try dropLink() }
            if Int.random(in: 0..<1000, using: &rng) < settings.crashPerMille { try crash() }
            if Int.random(in: 0..<1000, using: &rng) < settings.reloadPerMille { try reload() }
            schedule(.engineTick, after: .seconds(5))
        }
        try checkAlways()
    }

    /// A tap reaches the engine only while the terminal is scanning; otherwise nothing happens.
    mutating func presentCard(_ card: Int) throws(InvariantViolation) {
        guard terminalUp, armed, cardOnTerminal == nil else { return }
        armed = false
        cardOnTerminal = card
        cardAmount = armedAmount
        summary.cards += 1
        try apply(engine.handle(.terminal(.cardRead(EngineWorld.card(card))), at: now))
        // A new session reserves what the terminal showed, whatever was reloaded since.
        let hash = EngineWorld.card(card).hash
        if let s = engine.sessions.values.first(where: { $0.card.hash == hash && { if case .deciding = $0.phase { return true }; return false }($0) }),
           s.requested != cardAmount {
            throw violation("session \(s.key) requests \(s.requested) but the terminal showed \(cardAmount)")
        }
    }

    /// The operator changes the pre-authorisation and tariff and reloads.
    mutating func reload() throws(InvariantViolation) {
        summary.reloads += 1
        config.preauthAmount = [1_000, 2_500, 5_000, 8_000][Int.random(in: 0..<4, using: &rng)]
        config.tariff = [Tariff(currency: "EUR", startFee: 50, energyPricePerKWh: 39_900, timePricePerMinute: 1_500),
                         Tariff(currency: "EUR", startFee: 0, energyPricePerKWh: 79_000, timePricePerMinute: 0),
                         Tariff(currency: "EUR", startFee: 200, energyPricePerKWh: 10_000, timePricePerMinute: 6_000)][Int.random(in: 0..<3, using: &rng)]
        try apply(engine.handle(.reconfigure(config), at: now))
    }

    /// The driver's plan after an approval: plug in (maybe), charge a while, unplug.
    mutating func planDriver(_ card: Int) {
        guard let k = engine.sessions.values.first(where: { $0.card.hash == EngineWorld.card(card).hash && $0.handle != nil })?.key,
              let c = engine.sessions[k]?.connector, c >= 0 else { return }
        if percent(settings.neverPlugPercent) { return }
        schedule(.plug(c, true), after: ms(1_000...120_000))
        chargingCard[c] = card
        schedule(.plug(c, false), after: ms(600_000...7_200_000))
    }

    // MARK: effects: the shell's job, done by the world

    mutating func apply(_ effects: [EngineEffect]) throws(InvariantViolation) {
        for e in effects {
            switch e {
            case .persist(let entry):
                ledger.append(entry)
                switch entry {
                case let .authRequested(k, connector, _, _, _, _): durableConnector[k] = connector
                case .approved(let k, let ref, _, _, _): durableApproved.insert(k); durableRefs.insert(ref)
                case .charging(let k, _): durableCharging.insert(k)
                case .stopped(let k, _, _, _, _): durableEnded.insert(k)
                default: if entry.closesSession { durableEnded.insert(entry.session) }
                }
                if case .needsReconciliation = entry { summary.reconciliations += 1 }
            case let .terminal(id, cmd):
                guard terminalUp else {
                    try apply(engine.handle(.terminal(.completed(id, cmd, .notSent)), at: now))
                    continue
                }
                pendingCommands[id] = cmd
                if case .authorise = cmd {
                    schedule(.bankAnswer(id), after: ms(200...3_000))
                } else {
                    schedule(.commandDone(id), after: ms(10...500))
                }
            case let .relay(c, close):
                if close {
                    try checkRelayClose(c)
                    if percent(settings.relayRefusePercent) {
                        try apply(engine.handle(.relay(connector: c, .refusedToClose), at: now))
                    } else {
                        relayClosed[c] = true
                        relayCloseCount += 1
                    }
                } else {
                    relayClosed[c] = false
                }
            case let .askCloud(key, card, _):
                summary.sessions += 1
                if percent(settings.cloudDownPercent) { continue }   // no answer: the engine's deadline decides
                let allowed = !percent(settings.cloudRefusePercent)
                _ = card
                schedule(.cloudAnswer(key, allowed), after: ms(50...2_000))
            case .notice:
                break
            }
        }
    }

    /// The terminal carries out a command (which may also lose its answer).
    mutating func terminalExecute(_ id: CommandID, _ cmd: TerminalCommand) throws(InvariantViolation) {
        guard terminalUp else { return }
        var outcome = CommandOutcome.ok
        switch cmd {
        case .arm(let amount, _):
            armed = true
            armedAmount = amount
        case .authorise:
            return
        case .cancel:
            armed = false
            cardOnTerminal = nil
        case let .capture(ref, amount, _):
            if var s = terminalSessions[ref], s.state == 0 {
                guard amount <= s.authorised else { throw violation("capture of \(amount) above authorised \(s.authorised) on \(ref)") }
                s.state = 1; s.amount = amount
                terminalSessions[ref] = s
                summary.committed += 1
            } else { outcome = .refused(notFound: true) }
        case .release(let ref):
            if var s = terminalSessions[ref], s.state == 0 {
                s.state = 2
                terminalSessions[ref] = s
                summary.voided += 1
            } else { outcome = .refused(notFound: true) }
        case .listOpen:
            if settings.terminalCanList {
                let open = terminalSessions.filter { $0.value.state == 0 }.map(\.key).sorted()
                try apply(engine.handle(.terminal(.completed(id, cmd, .ok)), at: now))
                try apply(engine.handle(.terminal(.openSessions(open)), at: now))
                return
            }
            outcome = .refused(notFound: false)
        }
        if percent(settings.lostAnswerPercent) { outcome = .unknown }
        try apply(engine.handle(.terminal(.completed(id, cmd, outcome)), at: now))
    }

    /// The terminal's session timeout (Setup, action void) releases what nobody disposed of. It
    /// may only ever catch approvals the engine could not know (answers lost, terminal unable to
    /// list); one the ledger knows means the engine leaked a session.
    mutating func terminalTimeouts() throws(InvariantViolation) {
        for (ref, s) in terminalSessions where s.state == 0 && now.monotonic >= s.approvedAt + terminalSessionTimeout {
            if durableRefs.contains(ref) { throw violation("terminal session \(ref), known to the ledger, was left to the terminal's timeout") }
            if settings.terminalCanList { throw violation("terminal session \(ref) left open although the terminal can list its sessions") }
            terminalSessions[ref]?.state = 2
            summary.voidedByTerminalTimeout += 1
        }
    }

    mutating func dropLink() throws(InvariantViolation) {
        summary.linkDrops += 1
        terminalUp = false
        armed = false
        cardOnTerminal = nil
        // Commands in flight: carried out or not, their answers are lost.
        for (id, cmd) in pendingCommands.sorted(by: { $0.key < $1.key }) {
            if percent(50) { try terminalExecuteSilently(cmd) }
            _ = id
        }
        pendingCommands.removeAll()
        try apply(engine.handle(.terminal(.unavailable), at: now))
        schedule(.linkBack, after: ms(1_000...60_000))
    }

    mutating func terminalExecuteSilently(_ cmd: TerminalCommand) throws(InvariantViolation) {
        switch cmd {
        case let .capture(ref, amount, _):
            if var s = terminalSessions[ref], s.state == 0 {
                guard amount <= s.authorised else { throw violation("capture above authorised") }
                s.state = 1; s.amount = amount; terminalSessions[ref] = s; summary.committed += 1
            }
        case .release(let ref):
            if var s = terminalSessions[ref], s.state == 0 { s.state = 2; terminalSessions[ref] = s; summary.voided += 1 }
        default: break
        }
    }

    /// The daemon dies (SIGKILL, power cut) between two steps and restarts from the ledger.
    mutating func crash() throws(InvariantViolation) {
        summary.crashes += 1
        // Relays drop open with the controller; the terminal's link restarts.
        relayClosed = Array(repeating: false, count: settings.connectors)
        pendingCommands.removeAll()
        armed = false
        cardOnTerminal = nil
        chargingCard.removeAll()
        let (recovered, fx, _) = PaymentEngine.recover(config: config, entries: ledger, at: now)
        engine = recovered
        try apply(fx)
        terminalUp = false
        schedule(.linkBack, after: ms(2_000...20_000))
        for c in 0..<settings.connectors where plugged[c] {
            // Drivers see the charge stop and leave.
            schedule(.plug(c, false), after: ms(1_000...60_000))
        }
    }

    /// Faults stop; time runs past every timeout; everything must be disposed of.
    mutating func settle() throws(InvariantViolation) {
        var rounds = 0
        while rounds < 200 {
            rounds += 1
            if !terminalUp { terminalUp = true; try apply(engine.handle(.terminal(.ready(settings.terminalCanList ? [.listOpenSessions] : [])), at: now)) }
            for c in 0..<settings.connectors where plugged[c] {
                plugged[c] = false
                try apply(engine.handle(.plug(connector: c, pluggedIn: false), at: now))
            }
            advance(to: now.monotonic + .seconds(400))
            try apply(engine.tick(at: now))
            while let (id, cmd) = pendingCommands.min(by: { $0.key < $1.key }) {
                pendingCommands[id] = nil
                if case .authorise = cmd {
                    try apply(engine.handle(.terminal(.declined(reason: nil)), at: now))
                    cardOnTerminal = nil
                } else {
                    try terminalExecute(id, cmd)
                }
            }
            if engine.sessions.isEmpty { break }
        }
        advance(to: now.monotonic + terminalSessionTimeout + .seconds(1))
        try terminalTimeouts()
        try checkFinal()
    }

    // MARK: invariants

    func violation(_ m: String) -> InvariantViolation { InvariantViolation(seed: seed, step: step, message: m) }

    /// The relay closes only for a session whose approval and charging start are durable.
    func checkRelayClose(_ c: Int) throws(InvariantViolation) {
        let ok = durableCharging.contains { k in durableConnector[k] == c && durableApproved.contains(k) && !durableEnded.contains(k) }
        if !ok { throw violation("relay \(c) closed without a durable approval and charging record") }
    }

    func checkAlways() throws(InvariantViolation) {
        for (c, closed) in relayClosed.enumerated() where closed && !engine.relayCommands[c] {
            throw violation("relay \(c) closed while the engine wants it open")
        }
    }

    /// Every approval is committed or voided exactly once; captures equal the computed cost and
    /// never exceed the authorisation; the ledger holds no card number.
    func checkFinal() throws(InvariantViolation) {
        for (ref, s) in terminalSessions where s.state == 0 {
            throw violation("terminal session \(ref) still open after settling")
        }
        if !engine.sessions.isEmpty { throw violation("engine still holds \(engine.sessions.count) sessions: \(engine.sessions.values.map { "\($0.key):\($0.phase)" })") }
        // Captures: the amount the terminal took is the amount the ledger computed.
        var tariffOf: [SessionKey: Tariff] = [:], refOf: [SessionKey: TerminalHandle] = [:], authorisedOf: [SessionKey: Int64] = [:]
        var lastUsage: [SessionKey: (Int64, Int64)] = [:], requested: [SessionKey: Int64] = [:]
        for e in ledger {
            switch e {
            case let .authRequested(k, _, _, _, t, _): tariffOf[k] = t
            case let .approved(k, ref, a, _, _): refOf[k] = ref; authorisedOf[k] = a
            case let .meter(k, en, s): lastUsage[k] = (en, s)
            case let .stopped(k, _, en, s, _): lastUsage[k] = (en, s)
            case let .captureRequested(k, amount):
                guard let t = tariffOf[k], let a = authorisedOf[k], let u = lastUsage[k] else { throw violation("capture for session \(k) without its facts") }
                let expected = CostMeter(tariff: t, authorised: a).capture(energyWh: u.0, seconds: u.1)
                if amount != expected { throw violation("session \(k) capture \(amount) != computed \(expected)") }
                if amount > a { throw violation("session \(k) capture \(amount) above authorised \(a)") }
                requested[k] = amount
            default: break
            }
            // The ledger's bytes as written: no run of 13+ ASCII digits (a card number) anywhere.
            let text = String(decoding: e.encodeBody(), as: UTF8.self)
            var run = 0
            for ch in e.encodeBody() { if ch >= 0x30 && ch <= 0x39 { run += 1; if run >= 13 { throw violation("card-number-like digits in ledger: \(text)") } } else { run = 0 } }
        }
        for (k, amount) in requested {
            guard let ref = refOf[k], let s = terminalSessions[ref] else { continue }
            if s.state == 1 && s.amount != amount { throw violation("terminal captured \(s.amount) for session \(k), ledger says \(amount)") }
        }
        let closedOnce = terminalSessions.values.filter { $0.state != 0 }.count
        if closedOnce != summary.approvals { throw violation("approvals \(summary.approvals) vs closed \(closedOnce)") }
    }
}
