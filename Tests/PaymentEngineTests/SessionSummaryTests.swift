import Testing
import PaymentEngine

/// Session summaries (ledger kind 14): the fold from entries, the merge of partial summaries,
/// the binary body (round trips, layout, truncation), the export's ordering, the retention plan.
@Suite struct SessionSummaryTests {
    static let card = CardIdentity(maskedPAN: "476173******0119", hash: [1, 2, 3], brand: "VISA")
    static let tariff = Tariff(currency: "EUR", startFee: 50, energyPricePerKWh: 40_000)

    static func captured(_ k: SessionKey, at t: Int64) -> [LedgerEntry] {
        [.authRequested(k, connector: 1, amount: 5_000, card: card, tariff: tariff, at: t),
         .approved(k, handle: TerminalHandle(reference: UInt32(k)), authorised: 4_000, pspRef: Array("REF\(k)".utf8), at: t + 1_000),
         .charging(k, at: t + 2_000),
         .meter(k, energyWh: 1_000, seconds: 60),
         .stopped(k, reason: .unplugged, energyWh: 1_234, seconds: 90, at: t + 90_000),
         .captureRequested(k, amount: 99),
         .captured(k, amount: 99, at: t + 91_000)]
    }

    static let samples: [SessionSummary] = {
        var full = SessionSummary.summarise(captured(7, at: 1_764_000_000_000))[0]
        full.note = "a note ✓"
        var extreme = SessionSummary(session: .max)
        extreme.connector = 7; extreme.startedAt = .min; extreme.endedAt = .max
        extreme.authorised = .max; extreme.captured = .min; extreme.energyWh = -1
        extreme.paymentReference = Array(0..<128); extreme.outcome = .needsReconciliation
        extreme.maskedPAN = "é"; extreme.brand = "Carte Bancaire"; extreme.currency = "CHF"; extreme.terminalReference = "ZVT 9999"
        var s = [SessionSummary(session: 0), full, extreme]
        for o in SessionOutcome.allCases {
            var x = SessionSummary(session: 3); x.outcome = o; x.endedAt = 5; s.append(x)
        }
        return s
    }()

    @Test func foldsAClosedSessionIntoTheFieldsAReconciliationNeeds() {
        let s = SessionSummary.summarise(Self.captured(7, at: 1_000_000))
        #expect(s.count == 1)
        let x = s[0]
        #expect(x.session == 7 && x.connector == 1)
        #expect(x.startedAt == 1_000_000 && x.endedAt == 1_091_000)
        #expect(x.maskedPAN == "476173******0119" && x.brand == "VISA" && x.currency == "EUR")
        #expect(x.terminalReference == "7" && x.paymentReference == Array("REF7".utf8))
        #expect(x.authorised == 4_000 && x.captured == 99 && x.energyWh == 1_234)
        #expect(x.outcome == .captured && x.note.isEmpty)
        // Other endings.
        let recon = SessionSummary.summarise([.authRequested(2, connector: 0, amount: 1, card: Self.card, tariff: Self.tariff, at: 5),
                                              .needsReconciliation(2, note: String(repeating: "n", count: 1_000))])[0]
        #expect(recon.outcome == .needsReconciliation && recon.needsReconciliation)
        #expect(recon.note.utf8.count == SessionSummary.maxNoteBytes && recon.endedAt == 5)
        #expect(SessionSummary.summarise([.declined(3, reason: 5, at: 9)])[0].outcome == .declined)
        #expect(SessionSummary.summarise([.abandoned(3, at: 9)])[0].outcome == .abandoned)
        let void = SessionSummary.summarise([.voidRequested(4), .voided(4, at: 9)])[0]
        #expect(void.outcome == .voided && void.captured == 0)
        // Entries of another session are not folded in.
        #expect(SessionSummary(session: 1).applying(.captured(2, amount: 5, at: 1)) == SessionSummary(session: 1))
    }

    @Test func partialSummariesMergeBackIntoTheWholeAndAMergeWithItselfChangesNothing() {
        let entries = Self.captured(9, at: 50_000)
        let whole = SessionSummary.summarise(entries)[0]
        for cut in 1..<entries.count {
            let early = SessionSummary.summarise(Array(entries[..<cut]))[0]
            let late = SessionSummary.summarise(Array(entries[cut...]))[0]
            #expect(early.merged(with: late) == whole, "cut at \(cut)")
        }
        #expect(whole.merged(with: whole) == whole)
        #expect(whole.merged(with: SessionSummary(session: 8)) == whole, "another session's summary is ignored")
    }

    @Test(arguments: samples)
    func roundTrips(_ s: SessionSummary) throws {
        let body = s.encodeBody()
        let back = try SessionSummary.decode(kind: SessionSummary.recordKind, body: body)
        #expect(back == s)
        #expect(back.encodeBody() == body)
    }

    @Test(arguments: samples)
    func everyTruncationThrowsTruncated(_ s: SessionSummary) {
        let body = s.encodeBody()
        for cut in 0..<body.count {
            #expect(throws: EntryDecodeError.truncated, "cut at \(cut) of \(body.count)") {
                try SessionSummary.decode(kind: SessionSummary.recordKind, body: Array(body[..<cut]))
            }
        }
    }

    @Test func kindIsStableAndFreeAndOtherFormatsAreRefused() {
        #expect(SessionSummary.recordKind == 14 && SessionSummary.formatVersion == 1)
        // Not an engine entry kind: recovery never mistakes a summary for an entry.
        #expect(throws: EntryDecodeError.unknownKind(14)) { try LedgerEntry.decode(kind: 14, body: SessionSummary(session: 1).encodeBody()) }
        #expect(throws: EntryDecodeError.unknownKind(13)) { try SessionSummary.decode(kind: 13, body: SessionSummary(session: 1).encodeBody()) }
        var body = SessionSummary(session: 1).encodeBody()
        body[8] = 2
        #expect(throws: EntryDecodeError.badValue("summary format 2")) { try SessionSummary.decode(kind: 14, body: body) }
        // Bit 7 (issue 16) says the meter's readings follow the note: here they do not.
        body[8] = 1; body[9] = 0x80
        #expect(throws: EntryDecodeError.truncated) { try SessionSummary.decode(kind: 14, body: body) }
        body[9] = 0; body[body.count - 5] = 6
        #expect(throws: EntryDecodeError.badValue("summary outcome")) { try SessionSummary.decode(kind: 14, body: body) }
    }

    @Test func layoutIsBigEndianWithAPresenceByte() {
        let i64: (Int64) -> [UInt8] = { v in (0..<8).map { UInt8(truncatingIfNeeded: v >> (56 - 8 * Int64($0))) } }
        var s = SessionSummary(session: 0x0102)
        s.connector = 2; s.endedAt = 7; s.captured = 99; s.currency = "EUR"; s.outcome = .voided; s.note = "é"
        #expect(s.encodeBody() == i64(0x0102) + [1, 0b10101, 2] + i64(0) + i64(7)
                + [0, 0, 0, 0] + [0, 0, 0, 0] + [0, 0, 0, 3, 0x45, 0x55, 0x52] + [0, 0, 0, 0] + [0, 0, 0, 0]
                + i64(0) + i64(99) + i64(0) + [2] + [0, 0, 0, 2, 0xC3, 0xA9])
    }

    @Test func allJoinsSummaryRecordsAndLiveEntriesOncePerSessionInTimeOrder() {
        let a = SessionSummary.summarise(Self.captured(1, at: 3_000_000))[0]
        let b = SessionSummary.summarise(Self.captured(2, at: 1_000_000))[0]
        let cEntries = Self.captured(3, at: 2_000_000)
        let cEarly = SessionSummary.summarise(Array(cEntries.prefix(3)))[0]
        // b twice (a repeated compaction), c partly summarised and partly still entries, d only entries.
        let all = SessionSummary.all(summaries: [a, b, cEarly, b], entries: Array(cEntries.dropFirst(3)) + Self.captured(4, at: 500))
        #expect(all.map(\.session) == [4, 2, 3, 1])
        #expect(all[2] == SessionSummary.summarise(cEntries)[0])
        #expect(all[1] == b && all[3] == a)
    }

    // MARK: retention plan

    static let day: Int64 = 86_400_000

    @Test func olderThanTheRetentionGoesYoungerStays() {
        let r = SummaryRetention(days: 400, diskBudgetBytes: 64 << 20)
        #expect(r.budgetBytes == (64 << 20) / 4)
        let now: Int64 = 1_000 * Self.day
        let held = [SummaryRetention.Held(session: 1, endedAt: now - 400 * Self.day, bytes: 100, needsReconciliation: true),
                    SummaryRetention.Held(session: 2, endedAt: now - 400 * Self.day + 1, bytes: 100, needsReconciliation: false),
                    SummaryRetention.Held(session: 3, endedAt: nil, bytes: 100, needsReconciliation: false)]
        let plan = r.plan(held, now: now)
        #expect(plan.expired == [1])
        #expect(plan.kept.map { $0.session } == [2, 3] && plan.droppedForBudget.isEmpty && plan.keptBytes == 200)
    }

    @Test func overTheBudgetTheOldestGoFirstAndReconciliationOnesLast() {
        var r = SummaryRetention(days: 400, diskBudgetBytes: 64 << 20)
        r.budgetBytes = 500
        let now: Int64 = 1_000 * Self.day
        // Ten summaries of 100 bytes, session k ended k days ago; 2 and 9 need reconciliation.
        var held: [SummaryRetention.Held] = []
        for k in 1...10 {
            let ended: Int64 = now - Int64(k) * Self.day
            held.append(SummaryRetention.Held(session: SessionKey(k), endedAt: ended, bytes: 100, needsReconciliation: k == 2 || k == 9))
        }
        let plan = r.plan(held, now: now)
        #expect(plan.droppedForBudget == [10, 8, 7, 6, 5])
        #expect(plan.kept.map { $0.session } == [1, 2, 3, 4, 9] && plan.keptBytes == 500)
        #expect(plan.reconciliationDroppedForBudget.isEmpty)
        r.budgetBytes = 150
        let tight = r.plan(held, now: now)
        #expect(tight.droppedForBudget == [10, 8, 7, 6, 5, 4, 3, 1, 9])
        #expect(tight.reconciliationDroppedForBudget == [9])
        #expect(tight.kept.map { $0.session } == [2])
    }

    /// Issue 16: the meter's start and end registers and serial fold into the summary, survive
    /// its binary form (presence bit 7) and a merge of partial summaries.
    @Test func theMeterReadingsFoldRoundTripAndMerge() throws {
        let start = LedgerEntry.meterReading(5, .start, registerWh: 1_000_000, meterSerial: "SDM-00012345", at: 10)
        let end = LedgerEntry.meterReading(5, .end, registerWh: 1_012_340, meterSerial: "SDM-00012345", at: 20)
        let s = SessionSummary.summarise([start, .meter(5, energyWh: 12_340, seconds: 9), end])[0]
        #expect(s.meterSerial == "SDM-00012345" && s.registerStartWh == 1_000_000 && s.registerEndWh == 1_012_340)
        #expect(s.startedAt == nil && s.endedAt == 20)
        let back = try SessionSummary.decode(kind: 14, body: s.encodeBody())
        #expect(back == s)
        // Without readings nothing is appended: an older daemon still reads such a body.
        let plain = SessionSummary.summarise([.meter(6, energyWh: 1, seconds: 1)])[0]
        #expect(plain.encodeBody()[9] & 0x80 == 0)
        // The start alone (the end fell in a later segment), then merged with the rest.
        let early = SessionSummary.summarise([start])[0], late = SessionSummary.summarise([end])[0]
        #expect(early.merged(with: late).registerStartWh == 1_000_000 && early.merged(with: late).registerEndWh == 1_012_340)
        // Bad bits in the readings byte are refused.
        var body = s.encodeBody()
        let noteEnd = body.count - (1 + 4 + 12 + 8 + 8)
        body[noteEnd] = 4
        #expect(throws: EntryDecodeError.badValue("summary meter readings")) { try SessionSummary.decode(kind: 14, body: body) }
    }
}
