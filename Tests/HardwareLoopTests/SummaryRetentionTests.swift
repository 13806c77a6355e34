import Foundation
import Testing
import Ledger
import PaymentEngine
import Station
import Timebase
import Uplink

/// Retention for reconciliation (issue 12 item 8) on a real ledger in a temporary directory:
/// thousands of sessions through many compactions, as the station runs them (`SummaryKeeper`
/// with `Station.isLive`), then the ledger reopened and read as the export will read it.
@Suite struct SummaryRetentionTests {
    static let day: Int64 = 86_400_000
    static let t0: Int64 = 1_764_000_000_000
    /// One session starts every 10 minutes: 144 a day.
    static let step: Int64 = 600_000
    static let card = CardIdentity(maskedPAN: "476173******0119", hash: [1, 2, 3], brand: "VISA")
    static let tariff = Tariff(currency: "EUR", startFee: 50, energyPricePerKWh: 40_000)
    static let options = LedgerOptions(segmentBytes: 16 << 10, maxRecordBytes: 4 << 10, diskBudgetBytes: 64 << 20, preallocate: false)

    /// A station's ledger as it fills: session k starts at round k and closes at round k + 2, so
    /// two sessions are open at every compaction and many straddle the segments it deletes.
    final class Run {
        let dir: String
        var ledger: Ledger
        var keeper: SummaryKeeper
        var rng: SeededGenerator
        let seed: UInt64
        /// Every entry ever written, per session: what the summaries must say.
        var written: [SessionKey: [LedgerEntry]] = [:]
        var pendingClose: [SessionKey: [LedgerEntry]] = [:]
        var highest: SessionKey = 0
        var now: Int64 = SummaryRetentionTests.t0
        var sinceCompaction = 0
        var reports: [SummaryKeeper.Report] = []
        let compactEvery: Int

        init(seed: UInt64, retention: SummaryRetention, compactEvery: Int = 512) throws {
            self.seed = seed
            rng = SeededGenerator(seed: seed)
            self.compactEvery = compactEvery
            dir = FileManager.default.temporaryDirectory.appendingPathComponent("retain-\(UUID().uuidString.prefix(8))").path
            ledger = try Ledger.open(directory: dir, options: SummaryRetentionTests.options).ledger
            keeper = SummaryKeeper(retention: retention)
        }

        deinit {
            ledger.close()
            try? FileManager.default.removeItem(atPath: dir)
        }

        var open: Set<SessionKey> { Set(pendingClose.keys) }

        func write(_ e: LedgerEntry) throws {
            try ledger.append(kind: e.kind, body: e.encodeBody())
            written[e.session, default: []].append(e)
            sinceCompaction += 1
        }

        /// Starts session `k` (the first half of its entries) and closes `k - 2`.
        func round(_ k: SessionKey) throws {
            let t = SummaryRetentionTests.t0 + Int64(k) * SummaryRetentionTests.step
            now = t
            let (first, second) = Self.entries(k, at: t, rng: &rng)
            for e in first { try write(e) }
            pendingClose[k] = second
            highest = k
            if k > 2, let rest = pendingClose.removeValue(forKey: k - 2) { for e in rest { try write(e) } }
            try ledger.sync()
            if sinceCompaction >= compactEvery { try compact() }
        }

        func closeAll() throws {
            for k in pendingClose.keys.sorted() { for e in pendingClose[k]! { try write(e) } }
            pendingClose = [:]
            try ledger.sync()
        }

        func compact() throws {
            sinceCompaction = 0
            let r = try keeper.compact(ledger, openSessions: open, highestKey: highest, now: now)
            reports.append(r)
            #expect(keeper.bytesHeld <= keeper.retention.budgetBytes, "seed \(seed)")
            for severity in [NoticeSeverity.error, .warning, .info] {
                #expect(r.notices.filter { $0.0 == severity }.count <= 1, "one notice of each kind per compaction")
            }
        }

        /// Seals the active segment with dead records (acknowledged messages) and compacts, twice:
        /// afterwards the ledger holds exactly the summaries the keeper holds.
        func flush() throws {
            for _ in 0..<2 {
                let segments = ledger.segmentNames.count
                var i = 0
                while ledger.segmentNames.count == segments {
                    let r = OutboxRecord.acknowledged(id: "filler-\(i)")
                    try ledger.append(kind: r.kind, body: r.encodeBody())
                    i += 1
                }
                try ledger.sync()
                try compact()
            }
        }

        /// The ledger reopened, read as the export reads it: summary records and entries.
        func reopen() throws -> (summaries: [SessionSummary], entries: [LedgerEntry], records: [LedgerRecord]) {
            ledger.close()
            let (again, report, records) = try Ledger.open(directory: dir, options: SummaryRetentionTests.options)
            #expect(!report.hasDamage)
            ledger = again
            var summaries: [SessionSummary] = []
            var entries: [LedgerEntry] = []
            for r in records {
                if r.kind == SessionSummary.recordKind { summaries.append(try SessionSummary.decode(kind: r.kind, body: r.body)) }
                else if !OutboxRecord.kinds.contains(r.kind) { entries.append(try LedgerEntry.decode(kind: r.kind, body: r.body)) }
            }
            return (summaries, entries, records)
        }

        func expected(_ k: SessionKey) -> SessionSummary { SessionSummary.summarise(written[k] ?? [])[0] }

        /// A session's entries in two halves: before and after the next two sessions start.
        /// 60 % captured, 15 % voided, 10 % need reconciliation, 10 % declined, 5 % abandoned.
        static func entries(_ k: SessionKey, at t: Int64, rng: inout SeededGenerator) -> ([LedgerEntry], [LedgerEntry]) {
            let auth = LedgerEntry.authRequested(k, connector: Int(k % 3), amount: 5_000, card: SummaryRetentionTests.card,
                                                 tariff: SummaryRetentionTests.tariff, at: t)
            let authorised = Int64.random(in: 1_000...5_000, using: &rng)
            let approved = LedgerEntry.approved(k, handle: TerminalHandle(reference: UInt32(truncatingIfNeeded: k * 7 + 1)),
                                                authorised: authorised, pspRef: Array("PSP-\(k)".utf8), at: t + 2_000)
            let energy = Int64.random(in: 0...60_000, using: &rng)
            let end = t + 2 * SummaryRetentionTests.step - 60_000
            let meters = (1...3).map { LedgerEntry.meter(k, energyWh: energy * Int64($0) / 4, seconds: Int64($0) * 60) }
            switch Int.random(in: 0..<100, using: &rng) {
            case 0..<60:
                let amount = min(authorised, 50 + energy * 40 / 1_000)
                return ([auth, approved, .charging(k, at: t + 30_000)] + meters,
                        [.meter(k, energyWh: energy, seconds: 3_000), .stopped(k, reason: .unplugged, energyWh: energy, seconds: 3_000, at: end),
                         .captureRequested(k, amount: amount), .captured(k, amount: amount, at: end + 5_000)])
            case 60..<75:
                return ([auth, approved], [.voidRequested(k), .voided(k, at: end)])
            case 75..<85:
                return ([auth, approved, .charging(k, at: t + 30_000)] + meters,
                        [.stopped(k, reason: .tapToStop, energyWh: energy, seconds: 3_000, at: end), .captureRequested(k, amount: 77),
                         .needsReconciliation(k, note: "capture unanswered after 240 attempts (session \(k))")])
            case 85..<95:
                return ([auth], [.declined(k, reason: 5, at: t + 20_000)])
            default:
                return ([auth], [.abandoned(k, at: t + 20_000)])
            }
        }
    }

    /// A fresh seed each run, printed; `RETENTION_SEED=N` repeats a run.
    static func seed() -> UInt64 {
        let s = ProcessInfo.processInfo.environment["RETENTION_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 1...UInt64.max)
        print("SummaryRetentionTests seed \(s) (RETENTION_SEED=\(s) repeats it)")
        return s
    }

    /// 3000 sessions (about 21 days) through dozens of compactions with a 10-day retention: every
    /// closed session younger than the retention has its facts, amounts included, exactly once;
    /// the older ones are gone; the sessions needing reconciliation are all there.
    @Test func everyClosedSessionYoungerThanTheRetentionKeepsItsSummary() throws {
        let seed = Self.seed()
        let run = try Run(seed: seed, retention: SummaryRetention(days: 10, diskBudgetBytes: 64 << 20))
        for k: SessionKey in 1...3_000 { try run.round(k) }
        try run.closeAll()
        try run.flush()
        #expect(run.reports.count > 30, "many compactions")
        #expect(run.reports.reduce(0) { $0 + $1.written } > 1_000)
        let (summaries, entries, records) = try run.reopen()
        #expect(entries.count < 100, "the closed sessions' entries are gone (seed \(seed))")
        let all = SessionSummary.all(summaries: summaries, entries: entries)
        #expect(SummaryKeeper.summaries(in: records) == all, "the export's reading of the records")
        let byKey = Dictionary(all.map { ($0.session, $0) }, uniquingKeysWith: { a, _ in a })
        #expect(byKey.count == all.count, "one summary per session")
        let horizon = run.now - 10 * Self.day
        var young = 0, reconciliation = 0
        for k: SessionKey in 1...3_000 {
            let want = run.expected(k)
            if want.endedAt! > horizon {
                young += 1
                if want.needsReconciliation { reconciliation += 1 }
                #expect(byKey[k] == want, "session \(k) (seed \(seed))")
            } else {
                #expect(byKey[k] == nil, "session \(k) ended \((run.now - want.endedAt!) / Self.day) days ago (seed \(seed))")
            }
        }
        #expect(young > 1_400 && reconciliation > 50)
        #expect(run.reports.contains { $0.expired > 0 })
        // No session's summary body is on disk twice.
        let bodies = records.filter { $0.kind == SessionSummary.recordKind }.map(\.body)
        #expect(Set(bodies).count == bodies.count)
        // A keeper built from the reopened ledger (as the daemon builds it) holds what this one held.
        let rebuilt = SummaryKeeper(retention: run.keeper.retention, records: records)
        #expect(rebuilt.sessionsHeld == run.keeper.sessionsHeld && rebuilt.bytesHeld == run.keeper.bytesHeld)
    }

    /// Summaries may take 25 % of the disk budget: beyond it the oldest go first, counted and
    /// warned once per compaction, and the sessions needing reconciliation are kept while others can go.
    @Test func theBudgetShareIsEnforcedOldestFirst() throws {
        let seed = Self.seed()
        let retention = SummaryRetention(days: 3_650, diskBudgetBytes: 240_000)
        #expect(retention.budgetBytes == 60_000)
        let run = try Run(seed: seed, retention: retention)
        for k: SessionKey in 1...1_500 { try run.round(k) }
        try run.closeAll()
        try run.flush()
        let (summaries, entries, records) = try run.reopen()
        let onDisk = records.filter { $0.kind == SessionSummary.recordKind }
        let bytes = onDisk.reduce(0) { $0 + LedgerFormat.recordHeaderBytes + LedgerFormat.relocationPrefixBytes + $1.body.count }
        #expect(bytes <= retention.budgetBytes, "seed \(seed)")
        let live = Set(entries.map(\.session))
        let all = SessionSummary.all(summaries: summaries, entries: entries)
        let present = Set(all.map(\.session))
        let summarised = all.filter { !live.contains($0.session) }
        let missing = (1...1_500).filter { !present.contains($0) }.map { run.expected($0) }
        #expect(!missing.isEmpty && summarised.count > 200)
        // Whatever is there is right; whatever went is older than every ordinary summary kept.
        for s in all { #expect(s == run.expected(s.session), "session \(s.session) (seed \(seed))") }
        #expect(missing.allSatisfy { !$0.needsReconciliation }, "no reconciliation summary dropped (seed \(seed))")
        let newestMissing = missing.map { $0.endedAt! }.max()!
        let oldestKept = summarised.filter { !$0.needsReconciliation }.map { $0.endedAt! }.min()!
        #expect(newestMissing <= oldestKept, "the oldest went first (seed \(seed))")
        #expect((1...1_500).filter { run.expected($0).needsReconciliation }.allSatisfy { present.contains($0) })
        let dropped = run.reports.reduce(0) { $0 + $1.droppedForBudget }
        #expect(dropped == missing.count)
        #expect(run.reports.contains { r in r.notices.contains { $0.0 == .warning && $0.1.contains("\(r.droppedForBudget) session summaries") } })
        #expect(!run.reports.contains { r in r.notices.contains { $0.0 == .error } })
    }

    /// A budget too small even for the sessions needing reconciliation drops them too, and says so
    /// as an error naming them.
    @Test func onlyTheBudgetDropsAReconciliationSummaryAndLoudly() throws {
        let seed = Self.seed()
        let retention = SummaryRetention(days: 3_650, diskBudgetBytes: 8_000)
        let run = try Run(seed: seed, retention: retention)
        for k: SessionKey in 1...600 { try run.round(k) }
        try run.closeAll()
        try run.flush()
        let lost = run.reports.flatMap(\.reconciliationDroppedForBudget)
        #expect(!lost.isEmpty, "seed \(seed)")
        #expect(lost.allSatisfy { run.expected($0).needsReconciliation })
        let errors = run.reports.flatMap { $0.notices.filter { $0.0 == .error } }
        #expect(errors.count == run.reports.filter { !$0.reconciliationDroppedForBudget.isEmpty }.count)
        #expect(errors.first?.1.contains("(sessions \(lost[0])") == true)
    }

    /// A crash after a compaction wrote its summaries (durably) but before it deleted a segment:
    /// the ledger reopened holds the old entries and the summaries; every session is there once,
    /// and the compaction run again writes no summary twice.
    @Test func aCrashBetweenWritingSummariesAndDeletingLosesAndDuplicatesNothing() throws {
        let seed = Self.seed()
        let retention = SummaryRetention(days: 3_650, diskBudgetBytes: 64 << 20)
        let run = try Run(seed: seed, retention: retention, compactEvery: .max)
        for k: SessionKey in 1...400 { try run.round(k) }
        // The files before the compaction; those it deletes are put back, as a crash before the
        // unlinks (after the summaries' fdatasync) would leave them.
        let before = Dictionary(uniqueKeysWithValues: try FileManager.default.contentsOfDirectory(atPath: run.dir).map {
            ($0, try Data(contentsOf: URL(fileURLWithPath: run.dir + "/" + $0)))
        })
        try run.compact()
        #expect(run.reports[0].written > 300 && run.reports[0].ledger.segmentsDeleted > 0)
        run.ledger.close()
        var restored = 0
        for (name, data) in before where !FileManager.default.fileExists(atPath: run.dir + "/" + name) {
            try data.write(to: URL(fileURLWithPath: run.dir + "/" + name))
            restored += 1
        }
        #expect(restored == run.reports[0].ledger.segmentsDeleted)
        let (summaries, entries, records) = try run.reopen()
        #expect(summaries.count == run.reports[0].written)
        let all = SessionSummary.all(summaries: summaries, entries: entries)
        #expect(all.map(\.session) == Array(1...400), "every session once, in time order")
        for s in all where s.outcome != nil { #expect(s == run.expected(s.session), "session \(s.session) (seed \(seed))") }
        // The daemon's keeper, from these records; the same compaction again.
        run.keeper = SummaryKeeper(retention: retention, records: records)
        try run.compact()
        // It deletes the restored segments and those the first run's copies sealed since, and
        // writes summaries only for what was not summarised yet.
        #expect(run.reports[1].ledger.segmentsDeleted >= restored)
        let (_, _, replayed) = try run.reopen()
        let replayedBodies = replayed.filter { $0.kind == SessionSummary.recordKind }.map(\.body)
        #expect(replayedBodies.count == summaries.count + run.reports[1].written)
        #expect(Set(replayedBodies).count == replayedBodies.count, "nothing already on disk is written again (seed \(seed))")
        try run.closeAll()
        try run.flush()
        let (finalSummaries, finalEntries, finalRecords) = try run.reopen()
        let bodies = finalRecords.filter { $0.kind == SessionSummary.recordKind }.map(\.body)
        #expect(Set(bodies).count == bodies.count, "no summary twice on disk")
        let final = SessionSummary.all(summaries: finalSummaries, entries: finalEntries)
        #expect(final.map(\.session) == Array(1...400))
        for s in final { #expect(s == run.expected(s.session), "session \(s.session) (seed \(seed))") }
    }
}
