import Testing
import PaymentEngine
import Timebase
import Uplink
@testable import StationCore

/// The station core alone: effects in the order the money rule needs, with no I/O. The
/// simulation (`EngineSimulationRuns`) runs the same core through crashes; these tests pin the
/// ordering down case by case, so that a change shows which rule it breaks.
@Suite struct StationCoreOrdering {
    var t = Instant(nanoseconds: 1_000_000_000)
    var core: StationCore
    var effects: [StationCore.Effect] = []

    init(uplink: Bool = true, compactionEvery: Int = StationCore.compactionEvery) {
        var config = EngineConfig()
        config.connectors = 1
        config.tariff = Tariff(currency: "EUR", energyPricePerKWh: 40_000)
        var settings = StationCore.Settings()
        settings.uplink = uplink
        settings.stationId = "test"
        settings.compactionEvery = compactionEvery
        core = StationCore(engine: PaymentEngine(config: config), settings: settings, idSeed: 7)
    }

    init() { self.init(uplink: true) }

    var now: Moment { Moment(monotonic: t, wallMillis: 1_700_000_000_000 + Int64(t.milliseconds)) }

    /// Feeds an input and takes out every effect it leads to.
    @discardableResult
    mutating func feed(_ input: StationCore.Input?, after seconds: Int = 0) -> [StationCore.Effect] {
        t = t + .seconds(seconds)
        if let input { core.receive(input) }
        var out: [StationCore.Effect] = []
        while let e = core.next(at: now) { out.append(e) }
        effects += out
        return out
    }

    mutating func commandID(_ fx: [StationCore.Effect], _ match: (TerminalCommand) -> Bool) -> (CommandID, TerminalCommand)? {
        for case let .terminal(id, cmd) in fx where match(cmd) { return (id, cmd) }
        return nil
    }

    /// Start, terminal ready, a card approved; returns the effects of the approval.
    mutating func approvedSession() -> [StationCore.Effect] {
        core.start(recoveryEffects: [], entries: [], outboxRecords: [], highestKey: 0, at: now)
        feed(nil)
        feed(.terminal([.ready([])]))
        feed(.terminal([.cancelled]), after: 1)
        feed(.tick, after: 1)
        let arm = commandID(effects) { if case .arm = $0 { return true }; return false }
        #expect(arm != nil, "the terminal was not armed: \(effects)")
        if let arm { feed(.terminal([.completed(arm.0, arm.1, .ok)])) }
        let ask = feed(.terminal([.cardRead(CardIdentity(maskedPAN: "412345******0001", hash: [1]))]))
        guard let k = ask.compactMap({ e -> SessionKey? in if case let .askCloud(k, _, _) = e { return k }; return nil }).first else {
            Issue.record("no cloud question: \(ask)"); return []
        }
        let auth = commandID(feed(.engine(.cloud(k, CardDecision(allowed: true))))) { if case .authorise = $0 { return true }; return false }
        #expect(auth != nil)
        return feed(.terminal([.approved(TerminalHandle(reference: 77), amount: 5000, pspRef: Array("R77".utf8))]))
    }

    /// Indices of the first effect matching, for ordering checks.
    func index(_ fx: [StationCore.Effect], _ match: (StationCore.Effect) -> Bool) -> Int? { fx.firstIndex(where: match) }

    @Test mutating func theRelayClosesOnlyAfterTheSyncThatFollowsTheChargingRecord() {
        _ = approvedSession()
        let fx = feed(.charger([.plug(connector: 0, pluggedIn: true)]), after: 1)
        guard let close = index(fx, { $0 == .relay(connector: 0, closed: true) }) else { Issue.record("no relay close: \(fx)"); return }
        let charging = LedgerEntry.charging(1, at: 0).kind
        guard let append = index(fx, { if case .append(charging, _) = $0 { return true }; return false }) else { Issue.record("no charging record: \(fx)"); return }
        #expect(fx[append..<close].contains(.sync), "a sync must come between the charging record and the relay: \(fx)")
        // Every append before the close is covered by a sync before the close (group commit).
        let lastAppend = fx[..<close].lastIndex { if case .append = $0 { return true }; return false }!
        #expect(fx[lastAppend..<close].contains(.sync))
    }

    @Test mutating func aSendComesOnlyAfterTheSyncOfItsQueuedRecord() {
        let fx = approvedSession()
        // The approval's Started event: queued record appended, synced, then sent.
        guard let send = index(fx, { if case .send(let m) = $0 { return m.action == .transactionEvent }; return false }) else {
            Issue.record("no send: \(fx)"); return
        }
        guard case .send(let m) = fx[send],
              let queued = index(fx, { if case let .append(kind, body) = $0 { return OutboxRecord.decode(kind: kind, body: body) == .queued(m) }; return false })
        else { Issue.record("no queued record before the send: \(fx)"); return }
        #expect(queued < send)
        #expect(fx[queued..<send].contains(.sync), "\(fx)")
    }

    @Test mutating func afterALedgerFailureOnlyWhatNeedsNoRecordComesOut() {
        _ = approvedSession()
        core.receive(.charger([.plug(connector: 0, pluggedIn: true)]))
        // The charging record's append fails: the shell says so before taking the next effect.
        var out: [StationCore.Effect] = []
        while let e = core.next(at: now) {
            out.append(e)
            if case .append = e { core.ledgerFailed("ENOSPC") }
        }
        #expect(!out.contains(.relay(connector: 0, closed: true)), "\(out)")
        #expect(out.contains(.relay(connector: 0, closed: false)), "every relay opens at once: \(out)")
        #expect(out.filter { if case .append = $0 { return true }; return false }.count == 1, "nothing more is written: \(out)")
        #expect(!out.contains { if case .send = $0 { return true }; return false }, "nothing is sent: \(out)")
        #expect(core.engine.relayCommands == [false])
        // And later inputs bring no record-dependent effect either.
        let later = feed(.tick, after: 30)
        #expect(later.allSatisfy { StationCore.needsNoRecord($0) }, "\(later)")
    }

    @Test mutating func aRestartWithALargeLedgerCompactsAtItsFirstBatch() {
        var c = StationCoreOrdering(uplink: false, compactionEvery: 10)
        let entries = (1...12).map { LedgerEntry.abandoned(SessionKey($0), at: 0) }
        c.core.start(recoveryEffects: [], entries: entries, outboxRecords: [], highestKey: 12, at: c.now)
        let fx = c.feed(.terminal([.ready([])]))
        #expect(fx.contains { if case .compact(_, 12, _, _, _) = $0 { return true }; return false },
                "a daemon restarted more often than it writes compactionEvery records must still compact: \(fx)")
    }

    /// The highest key's entries outlive compaction (keys must keep growing); its messages'
    /// records must too, or a restart makes them again, and differently (`offline`).
    @Test mutating func theMessagesOfEverySessionWhoseEntriesStayAreKept() {
        _ = approvedSession()
        let started = effects.compactMap { e -> OutboxMessage? in if case .send(let m) = e, m.action == .transactionEvent { return m }; return nil }.first
        guard let started else { Issue.record("no Started event"); return }
        feed(.delivered(id: started.id, .delivered))
        // The driver never plugs in: the approval is released and the session closes.
        let release = commandID(feed(.tick, after: 400)) { if case .release = $0 { return true }; return false }
        guard let release else { Issue.record("no release: \(effects)"); return }
        feed(.terminal([.completed(release.0, release.1, .ok)]))
        #expect(core.engine.sessions.isEmpty, "the session should be closed")
        #expect(!core.outbox.pendingIDs.contains(started.id))
        let kept = core.keptMessageIDs
        #expect(kept.contains(started.id))
        for record in [OutboxRecord.queued(started), .acknowledged(id: started.id)] {
            #expect(StationCore.isLive(kind: record.kind, body: record.encodeBody(), openSessions: [], highestKey: core.highestKey,
                                       keptMessages: kept), "\(record)")
        }
    }
}
