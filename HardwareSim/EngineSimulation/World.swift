import PaymentEngine
import StationCore
import TerminalConditions
import Timebase
import Uplink

/// A deterministic world around the station's own pure core (`StationCore`, the payment engine
/// inside it): a terminal that keeps its own books, a cloud that receives the outbox's messages,
/// EVs on connectors, relays, a ledger that survives crashes exactly as far as it was synced
/// (plus a random prefix of what was appended after), compaction, and a virtual clock. The world
/// carries out the core's effects one at a time, as the daemon's shell does, and may crash
/// between any two. One seed drives everything; the `check` functions state the invariants.
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
    /// Per mille per engine tick: the charging platform sends a cost limit (OCPP
    /// `transactionLimit.maxCost`) for a random open session: lower, higher, zero or negative,
    /// in any phase; the capture check then holds it to the lowest limit written.
    public var costLimitPerMille = 3
    /// Per million station effects: the daemon dies between two of the station core's effects
    /// (after one is carried out, before the next), e.g. between a group commit and the sends
    /// that waited for it. Appended records not yet synced survive as a random prefix.
    public var crashPerMillionEffects = 400
    /// Crash at every `.send` that directly follows a `.sync` (the group commit), before it is
    /// carried out, up to this many times: the ordering that protects money, tested head-on.
    public var crashesBetweenCommitAndSend = 0
    /// Per cent of sends the cloud does not answer (its answer lost, or it is down).
    public var cloudUnreachablePercent = 10
    /// Per cent of sends the cloud takes but whose answer is lost (it will see the message again).
    public var cloudLostAnswerPercent = 3
    /// The station's settings: compaction period and disk budget are simulated too.
    public var compactionEvery = 1024
    public var diskBudgetBytes = 4 << 20
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
    /// Cost limits the platform sent, and those the engine wrote (the rest it ignored).
    public var costLimitsSent = 0, costLimitsTaken = 0
    /// Station effects carried out; crashes injected between a sync and the send after it.
    public var effects = 0, crashesBetweenCommitAndSend = 0
    /// Messages the cloud received (duplicates of the same message included), compactions, and
    /// sessions whose entries compaction dropped, leaving their summary.
    public var messagesReceived = 0, duplicatesReceived = 0, compactions = 0, summarised = 0
    public var description: String {
        "sessions=\(sessions) cards=\(cards) approvals=\(approvals) committed=\(committed) voided=\(voided) timeoutVoids=\(voidedByTerminalTimeout) declined=\(declined) reconciliations=\(reconciliations) crashes=\(crashes) (\(crashesBetweenCommitAndSend) between commit and send) reloads=\(reloads) costLimits=\(costLimitsTaken)/\(costLimitsSent) linkDrops=\(linkDrops) messages=\(messagesReceived) (\(duplicatesReceived) again) compactions=\(compactions) summarised=\(summarised) effects=\(effects) steps=\(steps)"
    }
}


/// The events of the world, in time order (ties in the order they were scheduled).
struct Agenda {
    struct Item { var at: Instant; var seq: Int; var event: EngineWorld.Event }
    var heap: [Item] = []
    var seq = 0

    static func before(_ a: Item, _ b: Item) -> Bool { a.at < b.at || (a.at == b.at && a.seq < b.seq) }

    mutating func add(_ e: EngineWorld.Event, at: Instant) {
        seq += 1
        heap.append(Item(at: at, seq: seq, event: e))
        var i = heap.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard Agenda.before(heap[i], heap[parent]) else { break }
            heap.swapAt(i, parent)
            i = parent
        }
    }

    mutating func pop() -> Item? {
        guard !heap.isEmpty else { return nil }
        heap.swapAt(0, heap.count - 1)
        let top = heap.removeLast()
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < heap.count, Agenda.before(heap[l], heap[m]) { m = l }
            if r < heap.count, Agenda.before(heap[r], heap[m]) { m = r }
            guard m != i else { break }
            heap.swapAt(i, m)
            i = m
        }
        return top
    }
}

public struct EngineWorld {
    // MARK: the world's parts

    struct TerminalSession { var authorised: Int64; var approvedAt: Instant; var amount: Int64 = 0 }

    enum Event {
        case tap(Int)                   // a driver taps a card (index into cards)
        case bankAnswer(CommandID)
        case commandDone(CommandID)
        case cloudAnswer(SessionKey, Bool)
        case plug(Int, Bool)
        case meterTick(Int)
        case linkBack
        /// Random faults and the terminal's own timeouts, every 5 simulated seconds.
        case faults
        /// The station core's deadline (a stale one, from before a crash or a re-arm, is ignored).
        case coreTick(Int)
        /// The cloud's answer to a send, for the process that sent it (`epoch`).
        case delivery(epoch: Int, id: String, DeliveryResult)
    }

    struct Record { var kind: UInt16; var body: [UInt8] }
    /// Bytes a record costs on disk beyond its body (header, checksum), for the disk budget.
    static let recordOverhead = 24
    /// Records at the ledger's end that compaction leaves alone (the active segment).
    static let activeSegmentRecords = 64

    public let seed: UInt64
    /// The fault rates settle() turns off for the end; everything else stays as configured.
    public private(set) var settings: SimulationSettings
    var config: EngineConfig
    var rng: SeededGenerator
    /// The station's core, the very one the daemon runs; replaced by a recovered one at a crash.
    public private(set) var core: StationCore
    public var engine: PaymentEngine { core.engine }
    public private(set) var summary = SimulationSummary()
    var now = Moment(monotonic: Instant(nanoseconds: 1_000_000_000), wallMillis: 1_764_000_000_000)
    var agenda = Agenda()
    var step = 0
    /// Bumped at each crash: answers meant for the dead process are dropped.
    var epoch = 0
    var coreTickAt: Instant?
    var coreTickToken = 0

    // The ledger.
    /// Synced records: what a crash leaves on disk.
    var durable: [Record] = []
    /// Appended since the last sync: a crash keeps a random prefix of them.
    var unsynced: [Record] = []
    var usedBytes = 0
    var lastEffect: StationCore.Effect?

    // Oracles: durable facts, kept as records become durable (compaction does not forget them).
    var durableConnector: [SessionKey: Int] = [:]
    var sessionOfHandle: [TerminalHandle: SessionKey] = [:]
    /// Sessions whose approval and charging start are durable and which have not ended.
    var chargeable = Set<SessionKey>()
    var approvedDurable = Set<SessionKey>()
    var captureRequested: [SessionKey: Int64] = [:]
    var voidRequested = Set<SessionKey>()
    /// Durable authorisation requests not yet followed by an Authorize to the terminal.
    var authRequestsUnsent = 0
    /// Facts a capture is checked against, per open session.
    var tariffOf: [SessionKey: Tariff] = [:], authorisedOf: [SessionKey: Int64] = [:], usageOf: [SessionKey: (Int64, Int64)] = [:]
    /// The lowest cost limit durable for each open session (`costLimited`).
    var costLimitOf: [SessionKey: Int64] = [:]
    /// Messages whose queued record is durable, and those thinned or dead-lettered.
    var queuedDurable = Set<String>()
    var notOwed = Set<String>()
    /// What the cloud received: message id → body.
    var cloudReceived: [String: [UInt8]] = [:]
    /// Sessions with entries in the ledger, and those compaction summarised.
    var sessionsWithEntries = Set<SessionKey>()
    var summarisedSessions = Set<SessionKey>()

    /// The terminal's own books, by terminal reference: open ones, and how many were closed.
    var openTerminal: [TerminalHandle: TerminalSession] = [:]
    var closedOnTerminal = 0
    var capturedOnTerminal: [TerminalHandle: Int64] = [:]
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
    // Drivers.
    var cardsIssued = 0
    var chargingCard: [Int: Int] = [:]         // connector → card index charging there

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
        core = StationCore(engine: PaymentEngine(config: c), settings: EngineWorld.stationSettings(settings), idSeed: seed)
        plugged = Array(repeating: false, count: settings.connectors)
        relayClosed = Array(repeating: false, count: settings.connectors)
        register = Array(repeating: 0, count: settings.connectors)
    }

    static func stationSettings(_ s: SimulationSettings) -> StationCore.Settings {
        var st = StationCore.Settings()
        st.uplink = true
        st.stationId = "sim"
        st.compactionEvery = s.compactionEvery
        st.diskBudgetBytes = s.diskBudgetBytes
        return st
    }

    mutating func percent(_ p: Int) -> Bool { Int.random(in: 0..<100, using: &rng) < p }
    mutating func schedule(_ e: Event, after d: Duration) { agenda.add(e, at: now.monotonic + d) }
    mutating func ms(_ range: ClosedRange<Int>) -> Duration { .milliseconds(Int.random(in: range, using: &rng)) }

    // MARK: running

    /// Runs the configured number of card sessions, then lets everything settle.
    public mutating func run() throws(InvariantViolation) -> SimulationSummary {
        try startStation(recoveryEffects: [], entries: [], outboxRecords: [], highestKey: 0)
        terminalUp = true
        try input(.terminal([.ready(settings.terminalCanList ? [.listOpenSessions] : [])]))
        schedule(.tap(nextCard()), after: .seconds(1))
        for c in 0..<settings.connectors { schedule(.meterTick(c), after: .seconds(10)) }
        schedule(.faults, after: .seconds(1))
        while let item = agenda.pop() {
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

    mutating func nextCard() -> Int { cardsIssued += 1; return cardsIssued }

    static func card(_ i: Int) -> CardIdentity {
        // Masked as a terminal sends it; the hash identifies the card for tap-to-stop.
        let last4 = String(1000 + i % 9000)
        return CardIdentity(maskedPAN: "476173******" + last4, hash: [UInt8(truncatingIfNeeded: i >> 24), UInt8(truncatingIfNeeded: i >> 16),
                                                                      UInt8(truncatingIfNeeded: i >> 8), UInt8(truncatingIfNeeded: i)], brand: "VISA")
    }

    /// An input for the station, then its effects carried out.
    mutating func input(_ i: StationCore.Input) throws(InvariantViolation) {
        core.receive(i)
        try pump()
    }

    mutating func engineInput(_ i: EngineInput) throws(InvariantViolation) { try input(.engine(i)) }
    mutating func terminalInput(_ t: TerminalInput) throws(InvariantViolation) { try input(.terminal([t])) }

    mutating func dispatch(_ e: Event) throws(InvariantViolation) {
        switch e {
        case .tap(let card):
            // Drivers keep coming until enough sessions started.
            if summary.sessions < settings.sessions { schedule(.tap(nextCard()), after: ms(20_000...400_000)) }
            // Sometimes a charging driver taps again to stop instead.
            if percent(settings.tapToStopPercent), let (_, c) = chargingCard.min(by: { $0.key < $1.key }) {
                try presentCard(c)
            } else if summary.sessions < settings.sessions {
                try presentCard(card)
            }
        case .bankAnswer(let id):
            guard terminalUp, pendingCommands[id] != nil, let card = cardOnTerminal else { return }
            pendingCommands[id] = nil
            cardOnTerminal = nil
            let lost = percent(settings.lostAnswerPercent)
            if percent(settings.declinePercent) {
                summary.declined += 1
                if !lost { try terminalInput(.declined(reason: 9)) }
            } else {
                let ref = TerminalHandle(reference: nextRef)
                nextRef += 1
                openTerminal[ref] = TerminalSession(authorised: cardAmount, approvedAt: now.monotonic)
                summary.approvals += 1
                if !lost {
                    try terminalInput(.approved(ref, amount: cardAmount, pspRef: Array("REF\(ref)".utf8)))
                    planDriver(card)
                } else {
                    // The approval exists at the bank but its answer is lost.
                    try terminalInput(.completed(id, .authorise(amount: cardAmount), .unknown))
                }
            }
        case .commandDone(let id):
            guard let cmd = pendingCommands.removeValue(forKey: id) else { return }
            try terminalExecute(id, cmd)
        case let .cloudAnswer(key, allowed):
            try engineInput(.cloud(key, CardDecision(allowed: allowed)))
        case let .plug(c, p):
            plugged[c] = p
            if !p { chargingCard[c] = nil }
            try input(.charger([.plug(connector: c, pluggedIn: p)]))
        case .meterTick(let c):
            if relayClosed[c] { register[c] += Int64.random(in: 50...400, using: &rng) }
            try input(.charger([.meter(connector: c, registerWh: register[c])]))
            schedule(.meterTick(c), after: .seconds(30))
        case .linkBack:
            terminalUp = true
            try terminalInput(.ready(settings.terminalCanList ? [.listOpenSessions] : []))
        case .faults:
            try terminalTimeouts()
            if Int.random(in: 0..<1000, using: &rng) < settings.linkDropPerMille { try dropLink() }
            if Int.random(in: 0..<1000, using: &rng) < settings.crashPerMille { try crash() }
            if Int.random(in: 0..<1000, using: &rng) < settings.reloadPerMille { try reload() }
            if settings.costLimitPerMille > 0, Int.random(in: 0..<1000, using: &rng) < settings.costLimitPerMille { try costLimit() }
            schedule(.faults, after: .seconds(5))
        case .coreTick(let token):
            guard token == coreTickToken else { return }
            coreTickAt = nil
            try input(.tick)
        case let .delivery(ep, id, result):
            guard ep == epoch else { return }
            try input(.delivered(id: id, result))
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
        try terminalInput(.cardRead(EngineWorld.card(card)))
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
        try engineInput(.reconfigure(config))
    }

    /// The charging platform sets a cost limit for one of the engine's open sessions.
    mutating func costLimit() throws(InvariantViolation) {
        let keys = engine.sessions.keys.sorted()
        guard !keys.isEmpty else { return }
        let k = keys[Int.random(in: 0..<keys.count, using: &rng)]
        let cap = engine.sessions[k]?.costCap ?? 0
        let maxCost: Int64
        switch Int.random(in: 0..<10, using: &rng) {
        case 0: maxCost = 0
        case 1: maxCost = -1
        default: maxCost = Int64.random(in: 0...max(1, cap * 3 / 2), using: &rng)
        }
        summary.costLimitsSent += 1
        let before = engine.sessions[k]?.costLimit
        try engineInput(.costLimit(k, maxCost: maxCost))
        if let after = engine.sessions[k]?.costLimit, after != before {
            guard after == maxCost, after < cap else { throw violation("session \(k) took cost limit \(after) over cap \(cap)") }
            summary.costLimitsTaken += 1
        } else if engine.sessions[k] == nil, maxCost >= 0, maxCost < cap {
            // Taken and settled at once (released, or stopped and captured).
            summary.costLimitsTaken += 1
        }
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

    // MARK: the station: its core's effects carried out, as the daemon's shell does

    mutating func startStation(recoveryEffects: [EngineEffect], entries: [LedgerEntry], outboxRecords: [OutboxRecord],
                               highestKey: SessionKey) throws(InvariantViolation) {
        core.observeLedger(usedBytes: usedBytes)
        core.start(recoveryEffects: recoveryEffects, entries: entries, outboxRecords: outboxRecords, highestKey: highestKey, at: now)
        try pump()
    }

    /// Takes the core's effects out one at a time and carries each out; may crash between two.
    mutating func pump() throws(InvariantViolation) {
        while let effect = core.next(at: now) {
            if settings.crashesBetweenCommitAndSend > summary.crashesBetweenCommitAndSend,
               case .send = effect, case .sync? = lastEffect {
                summary.crashesBetweenCommitAndSend += 1
                try crash()
                return
            }
            if settings.crashPerMillionEffects > 0, Int.random(in: 0..<1_000_000, using: &rng) < settings.crashPerMillionEffects {
                try crash()
                return
            }
            summary.effects += 1
            lastEffect = effect
            try carryOut(effect)
        }
        // One timer at the core's deadline, as the shell's DeadlineTimer.
        if let d = core.nextDeadline, d != coreTickAt {
            coreTickAt = d
            coreTickToken += 1
            agenda.add(.coreTick(coreTickToken), at: max(d, now.monotonic))
        }
    }

    mutating func carryOut(_ effect: StationCore.Effect) throws(InvariantViolation) {
        switch effect {
        case let .append(kind, body):
            try checkNoCardNumber(body)
            unsynced.append(Record(kind: kind, body: body))
            usedBytes += body.count + EngineWorld.recordOverhead
            core.observeLedger(usedBytes: usedBytes)
        case .sync:
            for r in unsynced { try becameDurable(r) }
            unsynced.removeAll(keepingCapacity: true)
        case let .terminal(id, cmd):
            try checkCommand(cmd)
            guard terminalUp else {
                core.receive(.terminal([.completed(id, cmd, .notSent)]))
                return
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
                    core.receive(.charger([.relay(connector: c, .refusedToClose)]))
                } else {
                    relayClosed[c] = true
                }
            } else {
                relayClosed[c] = false
            }
        case .askCloud(let key, _, _):
            summary.sessions += 1
            if percent(settings.cloudDownPercent) { return }   // no answer: the engine's deadline decides
            let allowed = !percent(settings.cloudRefusePercent)
            schedule(.cloudAnswer(key, allowed), after: ms(50...2_000))
        case .send(let m):
            guard queuedDurable.contains(m.id) else { throw violation("message \(m.id) (\(m.action)) sent before its queued record was durable") }
            let result: DeliveryResult
            if percent(settings.cloudUnreachablePercent) {
                result = .unreachable("simulated outage")
            } else {
                try cloudReceives(m)
                result = percent(settings.cloudLostAnswerPercent) ? .failed("answer lost") : .delivered
            }
            schedule(.delivery(epoch: epoch, id: m.id, result), after: ms(20...800))
        case .heartbeat, .show, .notice, .deadLetter:
            break
        case let .compact(open, highest, pending, _, conditions):
            compact(openSessions: open, highestKey: highest, keptMessages: pending, conditionsGeneration: conditions)
        }
    }

    /// The cloud takes a message: the same id must always carry the same message.
    mutating func cloudReceives(_ m: OutboxMessage) throws(InvariantViolation) {
        summary.messagesReceived += 1
        if let earlier = cloudReceived[m.id] {
            summary.duplicatesReceived += 1
            if earlier != m.body {
                throw violation("message \(m.id) sent twice as different messages:\n  \(String(decoding: earlier, as: UTF8.self))\n  \(String(decoding: m.body, as: UTF8.self))")
            }
        } else {
            cloudReceived[m.id] = m.body
        }
    }

    /// A record reached the disk: the oracles learn its fact.
    mutating func becameDurable(_ r: Record) throws(InvariantViolation) {
        durable.append(r)
        if OutboxRecord.kinds.contains(r.kind) {
            switch OutboxRecord.decode(kind: r.kind, body: r.body) {
            case .queued(let m)?: queuedDurable.insert(m.id)
            case .thinned(let id)?, .deadLettered(let id, _, _)?: notOwed.insert(id)
            case .acknowledged?: break
            case nil: throw violation("an outbox record the station wrote does not decode")
            }
            return
        }
        if TerminalConditions.recordKinds.contains(r.kind) {
            guard TerminalConditions.generation(kind: r.kind, body: r.body) != nil else { throw violation("a condition record the station wrote does not decode") }
            return
        }
        guard let entry = try? LedgerEntry.decode(kind: r.kind, body: r.body) else { throw violation("an entry the station wrote does not decode") }
        let k = entry.session
        sessionsWithEntries.insert(k)
        switch entry {
        case let .authRequested(_, connector, _, _, tariff, _):
            durableConnector[k] = connector
            tariffOf[k] = tariff
            authRequestsUnsent += 1
        case let .approved(_, ref, authorised, _, _):
            approvedDurable.insert(k)
            sessionOfHandle[ref] = k
            authorisedOf[k] = authorised
        case .charging:
            if approvedDurable.contains(k) { chargeable.insert(k) }
        case let .meter(_, energy, seconds): usageOf[k] = (energy, seconds)
        case let .stopped(_, _, energy, seconds, _):
            usageOf[k] = (energy, seconds)
            chargeable.remove(k)
        case let .captureRequested(_, amount):
            guard let t = tariffOf[k], let a = authorisedOf[k], let u = usageOf[k] else { throw violation("capture for session \(k) without its facts") }
            let limit = costLimitOf[k]
            let expected = CostMeter(tariff: t, authorised: min(a, limit ?? a)).capture(energyWh: u.0, seconds: u.1)
            if amount != expected { throw violation("session \(k) capture \(amount) != computed \(expected)") }
            if amount > a { throw violation("session \(k) capture \(amount) above authorised \(a)") }
            if let limit, amount > limit { throw violation("session \(k) capture \(amount) above its cost limit \(limit)") }
            captureRequested[k] = amount
        case .voidRequested: voidRequested.insert(k)
        case .costLimited(_, let maxCost, _): costLimitOf[k] = min(costLimitOf[k] ?? maxCost, maxCost)
        case .needsReconciliation: summary.reconciliations += 1
        default: break
        }
        if entry.closesSession {
            chargeable.remove(k)
            tariffOf[k] = nil; authorisedOf[k] = nil; usageOf[k] = nil; costLimitOf[k] = nil
        }
    }

    /// The ledger's bytes as written: no run of 13+ ASCII digits (a card number) anywhere.
    func checkNoCardNumber(_ body: [UInt8]) throws(InvariantViolation) {
        var run = 0
        for ch in body {
            if ch >= 0x30 && ch <= 0x39 { run += 1; if run >= 13 { throw violation("card-number-like digits in ledger: \(String(decoding: body, as: UTF8.self))") } } else { run = 0 }
        }
    }

    /// Written ahead: a terminal command that moves money follows the durable record it carries out.
    mutating func checkCommand(_ cmd: TerminalCommand) throws(InvariantViolation) {
        switch cmd {
        case .authorise:
            guard authRequestsUnsent > 0 else { throw violation("Authorize sent without a durable authorisation request") }
            authRequestsUnsent -= 1
        case let .capture(ref, amount, _):
            guard let k = sessionOfHandle[ref], captureRequested[k] == amount else {
                throw violation("capture of \(amount) on \(ref) without a durable capture request for it")
            }
        case .release(let ref):
            guard let k = sessionOfHandle[ref], voidRequested.contains(k) else { throw violation("release of \(ref) without a durable void request") }
        case .arm, .cancel, .listOpen:
            break
        }
    }

    /// Compaction as the ledger does it: dead records go (their sessions leave a summary), the
    /// active segment's records stay, the order of the rest is kept.
    mutating func compact(openSessions: Set<SessionKey>, highestKey: SessionKey, keptMessages: Set<String>, conditionsGeneration: UInt64) {
        summary.compactions += 1
        let sealed = max(0, durable.count - EngineWorld.activeSegmentRecords)
        var kept: [Record] = []
        kept.reserveCapacity(durable.count)
        for (i, r) in durable.enumerated() {
            if i >= sealed || StationCore.isLive(kind: r.kind, body: r.body, openSessions: openSessions, highestKey: highestKey,
                                                 keptMessages: keptMessages, conditionsGeneration: conditionsGeneration) {
                kept.append(r)
                continue
            }
            usedBytes -= r.body.count + EngineWorld.recordOverhead
            if !OutboxRecord.kinds.contains(r.kind), let e = try? LedgerEntry.decode(kind: r.kind, body: r.body),
               summarisedSessions.insert(e.session).inserted {
                summary.summarised += 1
            }
        }
        durable = kept
        core.observeLedger(usedBytes: usedBytes)
    }

    // MARK: the terminal

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
            if try !terminalCloses(ref, capturing: amount) { outcome = .refused(notFound: true) }
        case .release(let ref):
            if try !terminalCloses(ref, capturing: nil) { outcome = .refused(notFound: true) }
        case .listOpen:
            if settings.terminalCanList {
                let open = openTerminal.keys.sorted()
                try input(.terminal([.completed(id, cmd, .ok), .openSessions(open)]))
                return
            }
            outcome = .refused(notFound: false)
        }
        if percent(settings.lostAnswerPercent) { outcome = .unknown }
        try terminalInput(.completed(id, cmd, outcome))
    }

    /// Commits (`capturing`) or voids an open terminal session; false when it is not open.
    mutating func terminalCloses(_ ref: TerminalHandle, capturing amount: Int64?) throws(InvariantViolation) -> Bool {
        guard let s = openTerminal[ref] else { return false }
        if let amount {
            guard amount <= s.authorised else { throw violation("capture of \(amount) above authorised \(s.authorised) on \(ref)") }
            capturedOnTerminal[ref] = amount
            summary.committed += 1
        } else {
            summary.voided += 1
        }
        openTerminal[ref] = nil
        closedOnTerminal += 1
        return true
    }

    /// The terminal's session timeout (Setup, action void) releases what nobody disposed of. It
    /// may only ever catch approvals the engine could not know (answers lost, terminal unable to
    /// list); one the ledger knows means the engine leaked a session.
    mutating func terminalTimeouts() throws(InvariantViolation) {
        for (ref, s) in openTerminal where now.monotonic >= s.approvedAt + terminalSessionTimeout {
            if sessionOfHandle[ref] != nil { throw violation("terminal session \(ref), known to the ledger, was left to the terminal's timeout") }
            if settings.terminalCanList { throw violation("terminal session \(ref) left open although the terminal can list its sessions") }
            openTerminal[ref] = nil
            closedOnTerminal += 1
            summary.voidedByTerminalTimeout += 1
        }
    }

    mutating func dropLink() throws(InvariantViolation) {
        summary.linkDrops += 1
        terminalUp = false
        armed = false
        cardOnTerminal = nil
        // Commands in flight: carried out or not, their answers are lost.
        for (_, cmd) in pendingCommands.sorted(by: { $0.key < $1.key }) where percent(50) {
            switch cmd {
            case let .capture(ref, amount, _): _ = try terminalCloses(ref, capturing: amount)
            case .release(let ref): _ = try terminalCloses(ref, capturing: nil)
            default: break
            }
        }
        pendingCommands.removeAll()
        try terminalInput(.unavailable)
        schedule(.linkBack, after: ms(1_000...60_000))
    }

    // MARK: crashes

    /// The daemon dies (SIGKILL, power cut) between two effects and restarts from the ledger:
    /// what was synced survives, and of what was appended after, a random prefix.
    mutating func crash() throws(InvariantViolation) {
        summary.crashes += 1
        epoch += 1
        let torn = Int.random(in: 0...unsynced.count, using: &rng)
        for r in unsynced.prefix(torn) { try becameDurable(r) }
        for r in unsynced.dropFirst(torn) { usedBytes -= r.body.count + EngineWorld.recordOverhead }
        unsynced.removeAll()
        lastEffect = nil
        // Relays drop open with the controller; the terminal's link restarts.
        relayClosed = Array(repeating: false, count: settings.connectors)
        pendingCommands.removeAll()
        authRequestsUnsent = 0
        armed = false
        cardOnTerminal = nil
        chargingCard.removeAll()
        terminalUp = false
        // Recovery, as paybridged does it: entries and outbox records from the ledger.
        var entries: [LedgerEntry] = []
        var outboxRecords: [OutboxRecord] = []
        for r in durable {
            if OutboxRecord.kinds.contains(r.kind) {
                if let o = OutboxRecord.decode(kind: r.kind, body: r.body) { outboxRecords.append(o) }
            } else if let e = try? LedgerEntry.decode(kind: r.kind, body: r.body) {
                entries.append(e)
            }
        }
        let (recovered, fx, _) = PaymentEngine.recover(config: config, entries: entries, at: now)
        core = StationCore(engine: recovered, settings: EngineWorld.stationSettings(settings),
                           conditions: TerminalConditions(records: durable.map { ($0.kind, $0.body) }), idSeed: seed &+ UInt64(epoch))
        coreTickAt = nil
        coreTickToken += 1
        try startStation(recoveryEffects: fx, entries: entries, outboxRecords: outboxRecords,
                         highestKey: entries.map(\.session).max() ?? 0)
        schedule(.linkBack, after: ms(2_000...20_000))
        for c in 0..<settings.connectors where plugged[c] {
            // Drivers see the charge stop and leave.
            schedule(.plug(c, false), after: ms(1_000...60_000))
        }
    }

    /// Faults stop; the cloud comes back; time runs past every timeout; everything must be
    /// disposed of and every message the ledger owes the cloud delivered.
    mutating func settle() throws(InvariantViolation) {
        var rounds = 0
        var quietSettings = settings
        quietSettings.crashPerMillionEffects = 0
        quietSettings.cloudUnreachablePercent = 0
        quietSettings.cloudLostAnswerPercent = 0
        quietSettings.crashesBetweenCommitAndSend = 0
        let faulty = settings
        settings = quietSettings
        defer { settings = faulty }
        while rounds < 400 {
            rounds += 1
            if !terminalUp { terminalUp = true; try terminalInput(.ready(settings.terminalCanList ? [.listOpenSessions] : [])) }
            for c in 0..<settings.connectors where plugged[c] {
                plugged[c] = false
                try input(.charger([.plug(connector: c, pluggedIn: false)]))
            }
            // Whatever is due in the next 400 s happens (answers, deliveries, the core's deadlines).
            let horizon = now.monotonic + .seconds(400)
            while let item = agenda.pop() {
                if item.at > horizon {
                    agenda.add(item.event, at: item.at)
                    break
                }
                advance(to: item.at)
                switch item.event {
                case .tap, .faults, .meterTick, .plug, .linkBack: continue
                case .bankAnswer(let id):
                    guard pendingCommands.removeValue(forKey: id) != nil else { continue }
                    cardOnTerminal = nil
                    try terminalInput(.declined(reason: nil))
                default: try dispatch(item.event)
                }
            }
            advance(to: horizon)
            try input(.tick)
            if engine.sessions.isEmpty && core.outbox.pending == 0 && pendingCommands.isEmpty { break }
        }
        advance(to: now.monotonic + terminalSessionTimeout + .seconds(1))
        try terminalTimeouts()
        try checkFinal()
    }

    // MARK: invariants

    func violation(_ m: String) -> InvariantViolation { InvariantViolation(seed: seed, step: step, message: m) }

    /// The relay closes only for a session whose approval and charging start are durable.
    func checkRelayClose(_ c: Int) throws(InvariantViolation) {
        if !chargeable.contains(where: { durableConnector[$0] == c }) {
            throw violation("relay \(c) closed without a durable approval and charging record")
        }
    }

    func checkAlways() throws(InvariantViolation) {
        for (c, closed) in relayClosed.enumerated() where closed && !engine.relayCommands[c] {
            throw violation("relay \(c) closed while the engine wants it open")
        }
    }

    /// Every approval is committed or voided exactly once; captures equal the computed cost and
    /// never exceed the authorisation (checked as they became durable); the terminal took what
    /// the ledger asked; every message owed to the cloud arrived; every session the ledger no
    /// longer holds left a summary.
    func checkFinal() throws(InvariantViolation) {
        if let (ref, _) = openTerminal.first { throw violation("terminal session \(ref) still open after settling") }
        if !engine.sessions.isEmpty { throw violation("engine still holds \(engine.sessions.count) sessions: \(engine.sessions.values.map { "\($0.key):\($0.phase)" })") }
        for (ref, amount) in capturedOnTerminal {
            guard let k = sessionOfHandle[ref], let asked = captureRequested[k] else { continue }
            if asked != amount { throw violation("terminal captured \(amount) for session \(k), ledger says \(asked)") }
        }
        if closedOnTerminal != summary.approvals { throw violation("approvals \(summary.approvals) vs closed \(closedOnTerminal)") }
        if core.outbox.pending != 0 { throw violation("\(core.outbox.pending) messages still owed to the cloud after settling") }
        for id in queuedDurable where cloudReceived[id] == nil && !notOwed.contains(id) {
            throw violation("message \(id) was durably queued but never reached the cloud")
        }
        let inLedger = Set(durable.compactMap { r -> SessionKey? in
            OutboxRecord.kinds.contains(r.kind) ? nil : (try? LedgerEntry.decode(kind: r.kind, body: r.body))?.session
        })
        for k in sessionsWithEntries where !inLedger.contains(k) && !summarisedSessions.contains(k) {
            throw violation("session \(k) left the ledger without a summary")
        }
    }
}
