import Testing
import PaymentEngine
import StationReports

/// Session rows from the engine's open sessions, the ledger's entries and the summaries
/// compaction left: one row per session whatever holds it, and the filters over them.
@Suite struct SessionRowsTests {
    static let card = CardIdentity(maskedPAN: "476173******0119", hash: [1, 2, 3], brand: "VISA")
    static let tariff = Tariff(currency: "EUR", startFee: 50, energyPricePerKWh: 40_000)
    static let t0: Int64 = 1_764_918_000_000   // 2025-12-05T07:00:00Z

    static func captured(_ k: SessionKey, at t: Int64, connector: Int = 1, tariff: Tariff = tariff) -> [LedgerEntry] {
        [.authRequested(k, connector: connector, amount: 5_000, card: card, tariff: tariff, at: t),
         .approved(k, handle: TerminalHandle(reference: UInt32(k) + 7_000), authorised: 4_000, pspRef: Array("PSP-\(k)".utf8), at: t + 1_000),
         .charging(k, at: t + 2_000),
         .meter(k, energyWh: 1_000, seconds: 60),
         .stopped(k, reason: .unplugged, energyWh: 1_234, seconds: 90, at: t + 90_000),
         .captureRequested(k, amount: 99),
         .captured(k, amount: 99, at: t + 91_000)]
    }

    static func rows(summaries: [SessionSummary] = [], entries: [LedgerEntry] = [], open: [SessionKey: Session] = [:],
                     tests: Set<SessionKey> = []) -> [SessionRow] {
        SessionRows.rows(open: open, summaries: summaries, entries: entries, stationId: "CP-7", testSessions: tests)
    }

    @Test func aCapturedSessionFromItsEntries() throws {
        let rows = Self.rows(entries: Self.captured(4, at: Self.t0))
        #expect(rows.count == 1)
        let r = try #require(rows.first)
        #expect(r.session == 4 && r.transactionId == "CP-7-4")
        #expect(r.connector == 2, "the engine's connector 1 is the second for people")
        #expect(r.startedAt == Self.t0 && r.endedAt == Self.t0 + 91_000)
        #expect(r.maskedPAN == "476173******0119" && r.brand == "VISA")
        #expect(r.terminalReference == "7004" && r.paymentReference == "PSP-4")
        #expect(r.authorised == 4_000 && r.captured == 99 && r.currency == "EUR" && r.currencyExponent == 2)
        #expect(r.energyWh == 1_234 && r.state == .settled && r.outcome == .captured && r.note.isEmpty)
        #expect(!r.state.isOpen)
        // Without a station id there is no transaction id to derive.
        #expect(SessionRows.rows(open: [:], summaries: [], entries: Self.captured(4, at: Self.t0)).first?.transactionId == nil)
    }

    @Test func aSummaryGivesTheSameRowAsTheEntriesItFolded() {
        let entries = Self.captured(4, at: Self.t0) + Self.captured(5, at: Self.t0 + 100_000, connector: 0)
        let fromEntries = Self.rows(entries: entries)
        #expect(fromEntries.count == 2)
        #expect(Self.rows(summaries: SessionSummary.summarise(entries)) == fromEntries)
    }

    @Test func aSessionWithBothASummaryAndEntriesAppearsOnce() {
        let entries = Self.captured(6, at: Self.t0)
        let whole = Self.rows(entries: entries)
        for cut in 1..<entries.count {
            // Compaction dropped the first entries and left their summary; the rest are still entries.
            let rows = Self.rows(summaries: SessionSummary.summarise(Array(entries[..<cut])), entries: Array(entries[cut...]))
            #expect(rows == whole, "cut at \(cut)")
        }
        // The same session summarised twice (a compaction repeated after a crash) and all its entries.
        let twice = SessionSummary.summarise(entries) + SessionSummary.summarise(entries)
        #expect(Self.rows(summaries: twice, entries: entries) == whole)
    }

    @Test func closedStatesNotesAndTestTransactions() throws {
        let entries: [LedgerEntry] = [
            .authRequested(1, connector: 0, amount: 5_000, card: Self.card, tariff: Self.tariff, at: Self.t0),
            .declined(1, reason: 5, at: Self.t0 + 500),
            .authRequested(2, connector: 0, amount: 5_000, card: Self.card, tariff: Self.tariff, at: Self.t0 + 1_000),
            .abandoned(2, at: Self.t0 + 1_500),
            .authRequested(3, connector: 0, amount: 5_000, card: Self.card, tariff: Self.tariff, at: Self.t0 + 2_000),
            .approved(3, handle: 77, authorised: 5_000, pspRef: [0x00, 0xFF, 0x10], at: Self.t0 + 2_500),
            .voidRequested(3), .voided(3, at: Self.t0 + 3_000),
            .authRequested(4, connector: 1, amount: 5_000, card: Self.card, tariff: Self.tariff, at: Self.t0 + 4_000),
            .approved(4, handle: 78, authorised: 5_000, pspRef: Array("R4".utf8), at: Self.t0 + 4_500),
            .needsReconciliation(4, note: "capture unanswered; card 4761739001010119 on the receipt"),
            .authRequested(5, connector: 0, amount: 5_000, card: Self.card, tariff: Self.tariff, at: Self.t0 + 5_000),
            .approved(5, handle: 79, authorised: 5_000, pspRef: Array("R5".utf8), at: Self.t0 + 5_500),
            .voidRequested(5), .voided(5, at: Self.t0 + 6_000),
            .authRequested(6, connector: 0, amount: 5_000, card: Self.card, tariff: Self.tariff, at: Self.t0 + 7_000),
            .needsReconciliation(6, note: "test went wrong"),
            // Approved in the ledger, no ending, and not open in the engine.
            .authRequested(7, connector: 0, amount: 5_000, card: Self.card, tariff: Self.tariff, at: Self.t0 + 8_000),
            .approved(7, handle: 80, authorised: 5_000, pspRef: [], at: Self.t0 + 8_500),
        ]
        let rows = Self.rows(entries: entries, tests: [5, 6])
        #expect(rows.map(\.session) == [1, 2, 3, 4, 5, 6, 7])
        #expect(rows.map(\.state) == [.declined, .abandoned, .voided, .needsReconciliation, .test, .needsReconciliation, .unfinished])
        #expect(rows.map(\.outcome) == [.declined, .abandoned, .voided, .needsReconciliation, .voided, .needsReconciliation, nil])
        #expect(rows[2].captured == 0 && rows[2].paymentReference == "hex:00FF10")
        #expect(rows[3].note == "capture unanswered; card 476173******0119 on the receipt", "a card number in a note is masked")
        #expect(rows[3].endedAt == Self.t0 + 4_500)
        #expect(rows[6].state.isOpen && rows[6].endedAt == nil && rows[6].paymentReference == "")
    }

    @Test func aFullCardNumberInTheLedgerIsMaskedInTheRow() {
        let full = CardIdentity(maskedPAN: "4761739001010119", hash: [9], brand: "VISA")
        let rows = Self.rows(entries: [.authRequested(1, connector: 0, amount: 1, card: full, tariff: Self.tariff, at: Self.t0),
                                       .declined(1, reason: nil, at: Self.t0 + 1)])
        #expect(rows.first?.maskedPAN == "476173******0119")
    }

    @Test func paymentReferencesArePrintable() {
        #expect(SessionRows.printable(reference: []) == "")
        #expect(SessionRows.printable(reference: Array("PSP-0042/ü".utf8)) == "PSP-0042/ü")
        #expect(SessionRows.printable(reference: [0xC3]) == "hex:C3", "not UTF-8")
        #expect(SessionRows.printable(reference: Array("A\nB".utf8)) == "hex:410A42", "a control character")
        #expect(SessionRows.printable(reference: Array("hex:41".utf8)) == "hex:6865783A3431", "text that looks like our hex")
    }

    @Test func currencyExponentsFollowTheUplink() {
        let jpy = Tariff(currency: "JPY", energyPricePerKWh: 40), kwd = Tariff(currency: "KWD", energyPricePerKWh: 40)
        let rows = Self.rows(entries: Self.captured(1, at: Self.t0, tariff: jpy) + Self.captured(2, at: Self.t0 + 1, tariff: kwd))
        #expect(rows.map(\.currency) == ["JPY", "KWD"])
        #expect(rows.map(\.currencyExponent) == [0, 3])
    }

    @Test func openSessionsComeFromTheEngineOverTheirEntries() throws {
        var d = EngineDriver()
        // A closed session first, in the ledger.
        let k1 = try d.tap(Self.card)
        try d.approve(k1, handle: 501, pspRef: Array("P1".utf8))
        d.send(.plug(connector: 0, pluggedIn: true))
        d.advance(.seconds(60))
        d.send(.meter(connector: 0, registerWh: 0))
        d.send(.meter(connector: 0, registerWh: 250))
        // A second card: deciding, on connector 1, nothing durable yet.
        let other = CardIdentity(maskedPAN: "520000******0007", hash: [4, 5], brand: "MASTERCARD")
        let k2 = try d.tap(other)
        var rows = Self.rows(entries: d.ledger, open: d.engine.sessions)
        #expect(rows.map(\.session) == [k1, k2], "the deciding session has no start yet and sorts as the newest")
        #expect(rows[0].state == .charging && rows[0].startedAt == d.ledger.first.map { if case let .authRequested(_, _, _, _, _, at) = $0 { return at }; return 0 })
        #expect(rows[0].connector == 1 && rows[0].terminalReference == "501" && rows[0].paymentReference == "P1")
        #expect(rows[0].authorised == 5_000 && rows[0].captured == nil && rows[0].endedAt == nil)
        #expect(rows[0].energyWh == d.engine.sessions[k1]?.energyWh, "the engine's reading, newer than the ledger's")
        #expect(rows[1].state == .deciding && rows[1].startedAt == nil && rows[1].connector == 2)
        #expect(rows[1].maskedPAN == "520000******0007" && rows[1].brand == "MASTERCARD" && rows[1].authorised == nil)
        #expect(rows.allSatisfy { $0.state.isOpen })

        // The second is approved and waits for its plug; the first is stopped and captured.
        try d.approve(k2, handle: 502, pspRef: Array("P2".utf8))
        d.send(.plug(connector: 0, pluggedIn: false))
        try d.complete({ if case .capture = $0 { return true }; return false }, "capture")
        rows = Self.rows(entries: d.ledger, open: d.engine.sessions)
        #expect(rows.count == 2)
        #expect(rows[0].state == .settled && rows[0].endedAt != nil && rows[0].captured != nil && rows[0].outcome == .captured)
        #expect(rows[1].outcome == nil)
        #expect(rows[1].state == .awaitingPlug && rows[1].startedAt != nil && rows[1].paymentReference == "P2")
        // A row for every open session, and only one each, whatever the ledger holds of them.
        #expect(SessionRows.filter(rows, .init(openOnly: true)).map(\.session) == [k2])
    }

    @Test func settlingIsTheEnginesDisposingPhase() throws {
        var d = EngineDriver()
        let k = try d.tap(Self.card)
        try d.approve(k, handle: 9, pspRef: [])
        d.send(.operatorStop(connector: 0))   // awaiting the plug: released
        let rows = Self.rows(entries: d.ledger, open: d.engine.sessions)
        #expect(rows.map(\.state) == [.settling])
        #expect(SessionState(Session.Phase.disposing) == .settling && SessionState(Session.Phase.authUnknown) == .authUnknown)
    }

    @Test func filtersOpenLastAndPeriodByEndTime() {
        var entries: [LedgerEntry] = []
        for k in 1...5 { entries += Self.captured(SessionKey(k), at: Self.t0 + Int64(k) * 1_000_000) }
        // Session 6 started after the rest and is still open in the ledger.
        entries.append(.authRequested(6, connector: 0, amount: 1, card: Self.card, tariff: Self.tariff, at: Self.t0 + 9_000_000))
        // Session 7 started first but ended last.
        entries += [.authRequested(7, connector: 0, amount: 1, card: Self.card, tariff: Self.tariff, at: Self.t0),
                    .voided(7, at: Self.t0 + 20_000_000)]
        let rows = Self.rows(entries: entries)
        #expect(rows.map(\.session) == [7, 1, 2, 3, 4, 5, 6])
        #expect(SessionRows.filter(rows, .init()) == rows)
        #expect(SessionRows.filter(rows, .init(openOnly: true)).map(\.session) == [6])
        #expect(SessionRows.filter(rows, .init(last: 2)).map(\.session) == [5, 6], "most recent by start")
        #expect(SessionRows.filter(rows, .init(last: 0)).isEmpty)
        #expect(SessionRows.filter(rows, .init(last: 100)) == rows)
        // Session k ends at t0 + k * 1_000_000 + 91_000.
        let end: (Int64) -> Int64 = { Self.t0 + $0 * 1_000_000 + 91_000 }
        #expect(SessionRows.filter(rows, .init(from: end(2), to: end(4))).map(\.session) == [2, 3], "from inclusive, to exclusive")
        #expect(SessionRows.filter(rows, .init(from: end(5))).map(\.session) == [7, 5], "by end, not start; the open one left out")
        #expect(SessionRows.filter(rows, .init(to: end(2) + 1)).map(\.session) == [1, 2])
        #expect(SessionRows.filter(rows, .init(last: 1, from: end(1))).map(\.session) == [5])
    }
}
