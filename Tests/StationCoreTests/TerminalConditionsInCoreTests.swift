import Testing
import PaymentEngine
import TerminalConditions
import TerminalPort
import Timebase
import Uplink
@testable import StationCore

/// The operating rules inside the station core: records through the core's appends and syncs,
/// security events through the outbox, payments blocked and resumed without undoing the
/// station's own refusal.
@Suite struct TerminalConditionsInCore {
    var t = Instant(nanoseconds: 1_000_000_000)
    var core: StationCore
    var effects: [StationCore.Effect] = []
    let first = TerminalInventory(serialNumber: "APO-1001", model: "Apollo")
    let swapped = TerminalInventory(serialNumber: "APO-6666", model: "Apollo")

    init() { self.init(conditions: TerminalConditions()) }

    init(conditions: TerminalConditions) {
        var config = EngineConfig()
        config.connectors = 1
        config.tariff = Tariff(currency: "EUR", energyPricePerKWh: 40_000)
        var settings = StationCore.Settings()
        settings.stationId = "test"
        core = StationCore(engine: PaymentEngine(config: config), settings: settings, conditions: conditions, idSeed: 7)
    }

    var now: Moment { Moment(monotonic: t, wallMillis: 1_780_000_000_000 + Int64(t.milliseconds)) }

    @discardableResult
    mutating func feed(_ input: StationCore.Input?, after seconds: Int = 0) -> [StationCore.Effect] {
        t = t + .seconds(seconds)
        if let input { core.receive(input) }
        var out: [StationCore.Effect] = []
        while let e = core.next(at: now) { out.append(e) }
        effects += out
        return out
    }

    /// Answers every terminal command in `fx` with OK, as a terminal would, and the cloud takes
    /// every message (station messages go one at a time: the next waits for the last's answer).
    mutating func answer(_ fx: [StationCore.Effect]) -> [StationCore.Effect] {
        var out: [StationCore.Effect] = []
        for e in fx {
            switch e {
            case let .terminal(id, cmd): out += feed(.terminal([.completed(id, cmd, .ok)]))
            case .send(let m): out += feed(.delivered(id: m.id, .delivered))
            default: break
            }
        }
        return out.isEmpty ? out : out + answer(out)
    }

    static func isArm(_ e: StationCore.Effect) -> Bool { if case .terminal(_, .arm) = e { return true }; return false }
    static func isConditionRecord(_ e: StationCore.Effect) -> Bool {
        if case .append(TerminalConditions.recordKind, _) = e { return true }; return false
    }

    /// Started, the terminal up and identified as `first`, the scan armed and answered.
    mutating func running() {
        core.start(recoveryEffects: [], entries: [], outboxRecords: [], highestKey: 0, at: now)
        feed(nil)
        _ = answer(feed(.terminal([.ready([])])))
        _ = answer(feed(.tick, after: 1))
        feed(.terminalCondition(.identified(first)))
        #expect(core.engine.acceptingPayments)
        #expect(effects.contains(where: Self.isArm), "the terminal was not armed: \(effects)")
    }

    /// Security events the core handed out to send, by type.
    func securityEventsSent(_ type: String) -> Int { effects.filter { Self.isSecurityEvent($0, type) }.count }

    static func isSecurityEvent(_ e: StationCore.Effect, _ type: String) -> Bool {
        guard case .send(let m) = e, m.action == .securityEventNotification else { return false }
        return String(decoding: m.body, as: UTF8.self).contains("\"\(type)\"")
    }

    @Test mutating func aSwapBlocksPaymentsAndTheAcceptRecordIsSyncedBeforeTheyResume() {
        running()
        let mark = effects.count
        let swap = feed(.terminalCondition(.identified(swapped)), after: 1)
        #expect(!core.engine.acceptingPayments)
        #expect(core.conditions.paymentsBlockedReason != nil)
        #expect(swap.contains(where: Self.isConditionRecord))
        _ = answer(swap)
        _ = answer(feed(.tick, after: 1))
        #expect(!effects[mark...].contains(where: Self.isArm), "no scan on a swapped terminal")

        let accept = feed(.conditions(.accepted(wallMillis: now.wallMillis)), after: 1)
        let all = accept + answer(accept) + answer(feed(.tick, after: 1))
        guard let record = all.firstIndex(where: Self.isConditionRecord),
              let arm = all.firstIndex(where: Self.isArm) else {
            Issue.record("no accept record or no arm after accepting: \(all)"); return
        }
        #expect(record < arm)
        #expect(all[record..<arm].contains(.sync), "the accept record must be durable before the terminal is armed: \(all)")
        #expect(core.engine.acceptingPayments)
        #expect(core.conditions.known == swapped)
    }

    @Test mutating func theSecurityEventGoesToTheCloudOnceThroughTheOutbox() {
        running()
        _ = answer(feed(.terminalCondition(.identified(swapped)), after: 1))
        _ = answer(feed(.terminalCondition(.identified(swapped)), after: 1))
        _ = answer(feed(.terminal([.unavailable]), after: 1))
        _ = answer(feed(.terminal([.ready([])]), after: 1))
        _ = answer(feed(.terminalCondition(.identified(swapped)), after: 1))
        _ = answer(feed(.tick, after: 1))
        #expect(securityEventsSent(TerminalConditions.EventType.replaced) == 1, "\(effects)")
        // Queued like every station message: its outbox record is appended and synced before the send.
        guard let send = effects.firstIndex(where: { Self.isSecurityEvent($0, TerminalConditions.EventType.replaced) }),
              case .send(let m) = effects[send] else { return }
        #expect(m.queue == StationCore.stationQueue)
        guard let queued = effects.firstIndex(of: .append(kind: OutboxRecord.queued(m).kind, body: OutboxRecord.queued(m).encodeBody())) else {
            Issue.record("no outbox record: \(effects)"); return
        }
        #expect(effects[queued..<send].contains(.sync))
    }

    @Test mutating func aSecurityAlertBlocksAndSendsTamperDetectionActivated() {
        running()
        _ = answer(feed(.terminalCondition(.securityAlert("terminal refused Setup with payment application in invalid state (0x0E)")), after: 1))
        _ = answer(feed(.tick, after: 1))
        #expect(!core.engine.acceptingPayments)
        #expect(securityEventsSent(TerminalConditions.EventType.tamper) == 1)
        #expect(core.conditions.warnings.first?.contains("0x0E") == true)
    }

    @Test mutating func acceptingDoesNotUndoTheStationsOwnRefusal() {
        running()
        _ = answer(feed(.engine(.acceptNewSessions(false)), after: 1))
        _ = answer(feed(.terminalCondition(.identified(swapped)), after: 1))
        _ = answer(feed(.conditions(.accepted(wallMillis: now.wallMillis)), after: 1))
        let later = answer(feed(.tick, after: 1))
        #expect(!core.engine.acceptingPayments, "no charger I/O stays no payments")
        #expect(!later.contains(where: Self.isArm))
        #expect(core.conditions.paymentsBlockedReason == nil)
        // And the station taking sessions again does not undo a pending swap either.
        _ = answer(feed(.terminalCondition(.identified(first)), after: 1))
        _ = answer(feed(.engine(.acceptNewSessions(true)), after: 1))
        #expect(!core.engine.acceptingPayments, "the old terminal back is a swap too until accepted")
    }

    @Test func aRecoveredSwapKeepsPaymentsOffFromTheStart() {
        var c = TerminalConditions()
        var records: [(kind: UInt16, body: [UInt8])] = []
        for e in c.handle(.identified(first, wallMillis: 1)) + c.handle(.identified(swapped, wallMillis: 2)) {
            if case let .persist(k, b) = e { records.append((k, b)) }
        }
        var s = TerminalConditionsInCore(conditions: TerminalConditions(records: records))
        s.core.start(recoveryEffects: [], entries: [], outboxRecords: [], highestKey: 0, at: s.now)
        s.feed(nil)
        _ = s.answer(s.feed(.terminal([.ready([])])))
        _ = s.answer(s.feed(.tick, after: 1))
        #expect(!s.core.engine.acceptingPayments)
        #expect(!s.effects.contains(where: Self.isArm))
        #expect(s.effects.contains(.notice(.error, s.core.conditions.paymentsBlockedReason ?? "?")))
    }

    @Test mutating func lastSeenIsRefreshedHourlyWhileUpNotPerInput() {
        running()
        let before = effects.filter(Self.isConditionRecord).count
        for _ in 0..<(3 * 60) { feed(.tick, after: 60) }
        let written = effects.filter(Self.isConditionRecord).count - before
        #expect(written == 3, "three hours up: \(written) records")
        #expect(core.nextDeadline != nil)
    }

    @Test mutating func anApolloAwayForMoreThanEightyDaysIsToldToTheCloudOnceByTheHourlyCheck() {
        running()
        _ = answer(feed(.terminal([.unavailable]), after: 1))
        #expect(core.nextDeadline != nil, "the away rules are checked while the link is down")
        for _ in 0..<(82 * 24) { _ = answer(feed(.tick, after: 3600)) }
        #expect(securityEventsSent(TerminalConditions.EventType.battery) == 1, "\(core.conditions)")
        #expect(core.conditions.warnings.contains { $0.contains("charge it and check it for tampering") })
        #expect(core.engine.acceptingPayments, "the battery rule warns; it does not block")
        _ = answer(feed(.terminal([.ready([])]), after: 1))
        #expect(!core.conditions.batteryWarning)
        #expect(core.conditions.recommendsTestTransaction, "82 days away is more than the storage days")
    }

    @Test mutating func anApprovalClearsTheTestRecommendation() {
        var c = TerminalConditions()
        var records: [(kind: UInt16, body: [UInt8])] = []
        let day: Int64 = 86_400_000
        let longAgo = now.wallMillis - 40 * day
        for e in c.handle(.linkUp(wallMillis: longAgo)) + c.handle(.linkDown(wallMillis: longAgo)) {
            if case let .persist(k, b) = e { records.append((k, b)) }
        }
        self = TerminalConditionsInCore(conditions: TerminalConditions(records: records))
        core.start(recoveryEffects: [], entries: [], outboxRecords: [], highestKey: 0, at: now)
        feed(nil)
        #expect(core.conditions.recommendsTestTransaction)
        _ = answer(feed(.terminal([.ready([])])))
        _ = answer(feed(.tick, after: 1))
        let arm = effects.compactMap { e -> (CommandID, TerminalCommand)? in if case let .terminal(id, c) = e, case .arm = c { return (id, c) }; return nil }.first
        guard arm != nil else { Issue.record("not armed: \(effects)"); return }
        let ask = feed(.terminal([.cardRead(CardIdentity(maskedPAN: "412345******0001", hash: [1]))]))
        guard let k = ask.compactMap({ e -> SessionKey? in if case let .askCloud(k, _, _) = e { return k }; return nil }).first else {
            Issue.record("no cloud question: \(ask)"); return
        }
        feed(.engine(.cloud(k, CardDecision(allowed: true))))
        #expect(core.conditions.recommendsTestTransaction)
        let approved = feed(.terminal([.approved(TerminalHandle(reference: 77), amount: 5000, pspRef: [])]))
        #expect(!core.conditions.recommendsTestTransaction)
        #expect(approved.contains(where: Self.isConditionRecord))
    }

    @Test mutating func compactionNamesTheNewestConditionsGeneration() {
        running()
        _ = answer(feed(.terminalCondition(.identified(swapped)), after: 1))
        let g = core.conditions.generation
        #expect(g >= 2)
        let bodies = effects.compactMap { e -> [UInt8]? in if case let .append(TerminalConditions.recordKind, b) = e { return b }; return nil }
        let live = bodies.filter {
            StationCore.isLive(kind: TerminalConditions.recordKind, body: $0, openSessions: [], highestKey: 0, keptMessages: [], conditionsGeneration: g)
        }
        #expect(live.count == 1)
        #expect(TerminalConditions(records: live.map { (TerminalConditions.recordKind, $0) }).swap?.reported == swapped)
        #expect(bodies.allSatisfy { StationCore.isLive(kind: TerminalConditions.recordKind, body: $0, openSessions: [], highestKey: 0, keptMessages: []) },
                "without a generation every condition record stays")
    }
}
