import Foundation
import Testing
import Ledger
import PaymentEngine
import Platform
import Timebase
import Uplink

/// A ledger written by an earlier release (`Tests/Fixtures/ledger-v1`, entry format 1, made by
/// `generate.sh`): the charger lost power with session 3 charging. Whatever the entry format
/// becomes, this ledger must still recover to the same money: session 1 stays captured, session
/// 2 declined, and session 3 is stopped at its last durable meter reading and captured for it.
@Suite struct PreviousReleaseLedger {
    /// The fixture's segment in a ledger directory of its own (recovery may rewrite a tail).
    func open() throws -> (entries: [LedgerEntry], outbox: [OutboxRecord], unreadable: Int, report: RecoveryReport, dir: String) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ledger-v1-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir + "/ledger", withIntermediateDirectories: true)
        let segment = "seg-0000000000000001.log"
        try FileManager.default.copyItem(atPath: fixturesDirectory + "/ledger-v1/" + segment, toPath: dir + "/ledger/" + segment)
        let opened = try Ledger.open(directory: dir + "/ledger", options: LedgerOptions())
        var entries: [LedgerEntry] = [], outbox: [OutboxRecord] = [], unreadable = 0
        for r in opened.records {
            if OutboxRecord.kinds.contains(r.kind) {
                if let o = OutboxRecord.decode(kind: r.kind, body: r.body) { outbox.append(o) } else { unreadable += 1 }
            } else if let e = try? LedgerEntry.decode(kind: r.kind, body: r.body) {
                entries.append(e)
            } else {
                unreadable += 1
            }
        }
        return (entries, outbox, unreadable, opened.report, dir)
    }

    @Test func everyRecordReadsAndTheMoneyIsWhatItWas() throws {
        let l = try open()
        defer { try? FileManager.default.removeItem(atPath: l.dir) }
        #expect(!l.report.hasDamage && l.unreadable == 0, "\(l.report)")
        #expect(l.entries.count + l.outbox.count == 46)
        // What the fixture's run did (terminal-sim.jsonl): 7465 approved and committed for 165,
        // a decline, 7466 approved and charging when the power went.
        let auths = l.entries.compactMap { e -> (SessionKey, Int, String)? in
            if case let .authRequested(k, c, _, card, _, _) = e { return (k, c, card.maskedPAN) } else { return nil }
        }
        #expect(auths.map(\.0) == [1, 2, 3] && auths.map(\.1) == [0, 1, 1])
        #expect(auths.map(\.2) == ["476173******0119", "541333******0434", "374245*****0126"])
        #expect(l.entries.contains(.captured(1, amount: 165, at: capturedAt(l.entries))))
        #expect(l.entries.contains { if case .declined(2, _, _) = $0 { return true } else { return false } })
        #expect(l.entries.contains { if case .charging(3, _) = $0 { return true } else { return false } })
        #expect(!l.entries.contains { $0.session == 3 && $0.closesSession })
    }

    @Test func recoveryStopsTheInterruptedSessionAndCapturesItsLastReading() throws {
        let l = try open()
        defer { try? FileManager.default.removeItem(atPath: l.dir) }
        var config = EngineConfig()
        config.connectors = 2
        config.tariff = Tariff(currency: "EUR", startFee: 100, energyPricePerKWh: 40_000, timePricePerMinute: 0)
        let now = Moment(monotonic: MonotonicClock.now(), wallMillis: 1_800_000_000_000)
        var (engine, effects, report) = PaymentEngine.recover(config: config, entries: l.entries, at: now)
        // The terminal comes up: what recovery owes it is sent.
        effects += engine.handle(.terminal(.ready([.listOpenSessions])), at: now)
        #expect(report.openSessions == 1 && report.toCapture == 1 && report.toRelease == 0 && report.authorisationsInDoubt == 0)
        // The last durable reading of session 3, priced with the tariff it was authorised under.
        let lastMeter = l.entries.last { if case .meter(3, _, _) = $0 { return true } else { return false } }
        guard case let .meter(_, wh, seconds)? = lastMeter else { Issue.record("no meter record for session 3"); return }
        let owed = min(Tariff(currency: "EUR", startFee: 100, energyPricePerKWh: 40_000).cost(energyWh: wh, seconds: seconds), 5000)
        #expect(owed > 100)
        let persisted = effects.compactMap { if case .persist(let e) = $0 { return e } else { return nil } }
        #expect(persisted.contains(.stopped(3, reason: .recovery, energyWh: wh, seconds: seconds, at: now.wallMillis)))
        #expect(persisted.contains(.captureRequested(3, amount: owed)))
        let commands = effects.compactMap { if case .terminal(_, let c) = $0 { return c } else { return nil } }
        #expect(commands.contains(.capture(7466, amount: owed, reserved: 5_000)), "\(commands)")
        // Written ahead: the capture is persisted before the terminal is told.
        let persistAt = effects.firstIndex(of: .persist(.captureRequested(3, amount: owed)))
        let commandAt = effects.firstIndex { if case .terminal(_, .capture(7466, _, _)) = $0 { return true } else { return false } }
        #expect(persistAt != nil && commandAt != nil && persistAt! < commandAt!)
    }

    @Test func theOutboxKeepsItsMessagesAndIDs() throws {
        let l = try open()
        defer { try? FileManager.default.removeItem(atPath: l.dir) }
        let queued = l.outbox.compactMap { if case .queued(let m) = $0 { return m } else { return nil } }
        let acknowledged = Set(l.outbox.compactMap { if case .acknowledged(let id) = $0 { return id } else { return nil } })
        #expect(queued.contains { $0.action == .notifySettlement && $0.queue == "FIXTURE-1-1" })
        #expect(queued.contains { $0.queue == "FIXTURE-1-3" && $0.kind == .started })
        #expect(!acknowledged.isEmpty && acknowledged.isSubset(of: Set(queued.map(\.id))))
        // Replaying the entries recreates the same message ids (nothing sent twice as a different message).
        var reporter = TransactionReporter(stationId: "FIXTURE-1")
        let replayed = Set(l.entries.flatMap { reporter.messages(for: $0, offline: true, now: 0) }.map(\.id))
        let transactionIDs = Set(queued.filter { $0.queue != "station" }.map(\.id))
        #expect(transactionIDs.isSubset(of: replayed), "\(transactionIDs.subtracting(replayed))")
    }

    func capturedAt(_ entries: [LedgerEntry]) -> Int64 {
        for e in entries { if case let .captured(1, _, at) = e { return at } }
        return -1
    }
}
