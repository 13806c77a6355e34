import Ledger
import PaymentEngine
import Platform
import PSPCodec
import PSPLink
import PSPTerminal
import Timebase

/// The imperative shell around the payment engine: it feeds inputs in one at a time, in the
/// order they happened, and carries out the engine's effects in order. A `persist` is appended
/// to the ledger, and the ledger is synced (fdatasync) before the first effect after it: that
/// single rule is what makes every relay close, capture and authorisation written ahead.
public final class Station {
    public enum Input {
        case engine(EngineInput)
        case link(LinkEvent)
        case tick
    }

    public private(set) var engine: PaymentEngine
    public let ledger: Ledger
    public let link: PSPLinkDriver
    public let relay: RelayPort
    public let decider: CardDecider
    public var onNotice: (String) -> Void = { _ in }
    /// Entries persisted since start, for status and tests.
    public private(set) var persisted = 0
    public private(set) var ledgerError: LedgerError?

    let loop: EventLoop
    var adapter: PSPEngineAdapter
    var queue: [Input] = []
    var processing = false
    var timer: TimerToken?
    var timerAt: Instant?
    let ev: SimulatedEVSettings?
    var register: [Int64]
    var plugged: [Bool]
    var evTimers: [Int: Bool] = [:]
    var evSeen = Set<SessionKey>()
    /// Refuse new sessions above this share of the disk budget, so running ones keep room to finish.
    public static let storageHighWaterPercent = 90
    /// Compact the ledger after this many records: sealed segments of closed sessions go.
    public static let compactionEvery = 4096
    var sinceCompaction = 0
    /// The highest session key seen: its records stay, so keys keep growing after compaction.
    var highestKey: SessionKey = 0

    public init(loop: EventLoop, engine: PaymentEngine, ledger: Ledger, link: PSPLinkDriver, family: TerminalFamily,
                relay: RelayPort, decider: CardDecider, ev: SimulatedEVSettings?) {
        self.loop = loop
        self.engine = engine
        self.ledger = ledger
        self.link = link
        self.relay = relay
        self.decider = decider
        self.ev = ev
        adapter = PSPEngineAdapter(family: family, cardHashTags: link.core.config.cardHashTags)
        register = Array(repeating: 0, count: engine.config.connectors)
        plugged = Array(repeating: false, count: engine.config.connectors)
        link.onEvent = { [unowned self] e in self.post(.link(e)) }
        relay.onFeedback = { [unowned self] c, f in self.post(.engine(.relay(connector: c, f))) }
    }

    /// Opens every relay (the safe state at start), carries out what recovery asked for, and starts the link.
    public func start(recoveryEffects: [EngineEffect]) {
        for c in 0..<engine.config.connectors { relay.set(connector: c, closed: false) }
        processing = true
        apply(recoveryEffects)
        processing = false
        drain()
        link.start()
        rearm()
    }

    /// Stops gracefully: relays open, no new cards, the ledger synced; open sessions are left to recovery.
    public func shutdown() {
        post(.engine(.shutdown))
        link.stop()
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
            case .link(let e):
                for t in adapter.inputs(for: e) { apply(engine.handle(.terminal(t), at: now)) }
            case .tick: apply(engine.tick(at: now))
            }
            driveEVs()
        }
        processing = false
        rearm()
    }

    func moment() -> Moment { Moment(monotonic: MonotonicClock.now(), wallMillis: WallClock.nowMillisecondsSinceEpoch()) }

    func apply(_ effects: [EngineEffect]) {
        var unsynced = false
        for effect in effects {
            if case .persist(let entry) = effect {
                guard ledgerError == nil else { return }
                do {
                    _ = try ledger.append(kind: entry.kind, body: entry.encodeBody())
                    persisted += 1
                    sinceCompaction += 1
                    highestKey = max(highestKey, entry.session)
                    unsynced = true
                } catch {
                    failed(error)
                    return
                }
                continue
            }
            if unsynced {
                // Group commit: every record up to here becomes durable in one fdatasync.
                do { try ledger.sync() } catch { failed(error); return }
                unsynced = false
            }
            perform(effect)
        }
        if unsynced { do { try ledger.sync() } catch { failed(error) } }
        if sinceCompaction >= Station.compactionEvery, ledgerError == nil { compact() }
        let high = ledger.usedBytes * 100 >= ledger.options.diskBudgetBytes * Station.storageHighWaterPercent
        if high != !engineAcceptsStorage { queue.append(.engine(.storageFull(high))); engineAcceptsStorage = !high }
    }
    var engineAcceptsStorage = true

    /// Drops the records of closed sessions. A record is live while its session is open, when it
    /// carries the highest key, or when this version cannot read it (never drop what we cannot judge).
    public func compact() {
        sinceCompaction = 0
        let open = Set(engine.sessions.keys)
        let floor = highestKey
        do {
            let report = try ledger.compact { Station.isLive($0, openSessions: open, highestKey: floor) }
            if report.segmentsDeleted > 0 { onNotice("ledger compacted: \(report.segmentsDeleted) segments, \(report.bytesFreed) bytes freed") }
        } catch {
            failed(error)
        }
    }

    /// The compaction rule: a record stays while its session is open, when it belongs to the
    /// highest session key (so keys never repeat after compaction), or when this version cannot
    /// read it (never drop what we cannot judge).
    public static func isLive(_ record: LedgerRecord, openSessions: Set<SessionKey>, highestKey: SessionKey) -> Bool {
        guard let e = try? LedgerEntry.decode(kind: record.kind, body: record.body) else { return true }
        return openSessions.contains(e.session) || e.session >= highestKey
    }

    /// Tells the station the highest session key found at recovery.
    public func recovered(highestKey k: SessionKey) { highestKey = max(highestKey, k) }

    /// A record could not be made durable: whatever depended on it is not done. The engine
    /// stops taking payments and opens the relays; a restart recovers from what is on disk.
    func failed(_ error: LedgerError) {
        guard ledgerError == nil else { return }
        ledgerError = error
        onNotice("ledger: \(error)")
        queue.append(.engine(.ledgerFailed("\(error)")))
    }

    func perform(_ effect: EngineEffect) {
        switch effect {
        case .persist: break
        case let .terminal(id, command):
            let host = adapter.hostCommand(for: command)
            // The link may answer synchronously (not ready): that answer is queued, and the
            // adapter learns the request before the queue is drained.
            let request = link.submit(host)
            adapter.submitted(request, for: id, command)
        case let .relay(c, close):
            relay.set(connector: c, closed: close)
        case let .askCloud(key, card, connector):
            decider.decide(session: key, card: card, connector: connector) { [weak self] d in self?.post(.engine(.cloud(key, d))) }
        case .notice(let text):
            onNotice(text)
        }
    }

    func rearm() {
        var next = engine.nextDeadline
        if ev != nil { next = [next, MonotonicClock.now() + .seconds(1)].compactMap { $0 }.min() }
        guard next != timerAt else { return }
        if let t = timer { loop.cancel(t) }
        timerAt = next
        timer = nil
        if let next {
            timer = loop.schedule(at: max(next, MonotonicClock.now() + .milliseconds(1))) { [unowned self] in
                self.timer = nil
                self.timerAt = nil
                self.meterTick()
                self.post(.tick)
            }
        }
    }

    // MARK: simulated vehicles

    func driveEVs() {
        guard let ev, let plugAfter = ev.plugAfter else { return }
        for (k, s) in engine.sessions.sorted(by: { $0.key < $1.key }) where s.connector >= 0 {
            guard case .awaitingPlug = s.phase, !plugged[s.connector], evTimers[s.connector] == nil, !evSeen.contains(k) else { continue }
            let c = s.connector
            evSeen.insert(k)
            let n = evSeen.count - 1
            if n < ev.plugs.count, !ev.plugs[n] { continue }   // this driver never plugs in
            evTimers[c] = true
            _ = loop.schedule(at: MonotonicClock.now() + plugAfter) { [unowned self] in
                self.plugged[c] = true
                self.post(.engine(.plug(connector: c, pluggedIn: true)))
                _ = self.loop.schedule(at: MonotonicClock.now() + ev.chargeFor) { [unowned self] in
                    self.meterTick()
                    self.plugged[c] = false
                    self.evTimers[c] = nil
                    self.post(.engine(.plug(connector: c, pluggedIn: false)))
                }
            }
        }
    }

    var lastMeter: Instant?
    func meterTick() {
        guard let ev else { return }
        let now = MonotonicClock.now()
        let elapsedMs = lastMeter.map { (now - $0).millisecondsClamped } ?? 0
        lastMeter = now
        for c in 0..<register.count {
            if engine.relayCommands[c] && plugged[c] {
                register[c] += ev.powerW * elapsedMs / 3_600_000
            }
            queue.append(.engine(.meter(connector: c, registerWh: register[c])))
        }
    }
}
