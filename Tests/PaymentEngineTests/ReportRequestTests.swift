import PaymentEngine
import Testing
import Timebase

// The charging platform's TriggerMessage(TransactionEvent), issue 15: the engine writes the
// request ahead (`reportRequested`, kind 17) so the event the reporter makes from it keeps its
// place in the transaction after a restart; it writes one only for a transaction the platform
// knows to be running, and at most `maxReportsPerSession` of them.
@Suite struct ReportRequestTests {
    private func written(_ fx: [EngineEffect], _ k: SessionKey, _ wall: Int64) -> Bool {
        fx.fx == [.persist(.reportRequested(k, at: wall))]
    }

    private func notMade(_ fx: [EngineEffect]) -> Bool {
        fx.fx.isEmpty && fx.notices.contains { $0.contains("not made") }
    }

    @Test func aChargingOrWaitingSessionIsReportedAtMostTheLimit() throws {
        var d = try readyHarness(config(tariff: energyOnly))
        let k = try d.approvedSession(card(1), ref: 7_001)
        #expect(d.engine.reportable(k))
        #expect(written(d.send(.reportRequested(k)), k, d.wall))   // awaiting the plug
        d.send(.plug(connector: 0, pluggedIn: true))
        #expect(d.engine.sessions[k]?.phase == .charging)
        for _ in 1..<PaymentEngine.maxReportsPerSession { #expect(written(d.send(.reportRequested(k)), k, d.wall)) }
        #expect(!d.engine.reportable(k))
        #expect(notMade(d.send(.reportRequested(k))))
        #expect(d.ledger.filter { if case .reportRequested = $0 { return true }; return false }.count == PaymentEngine.maxReportsPerSession)
        // A report changes nothing of the money: the session still charges and captures as before.
        d.send(.meter(connector: 0, registerWh: 0))
        d.send(.meter(connector: 0, registerWh: 10_000))
        #expect(d.send(.plug(connector: 0, pluggedIn: false)).fx.contains(.cmd(.capture(7_001, amount: 400, reserved: 5_000))))
    }

    @Test func unknownUnapprovedAndSettlingSessionsAreNotReported() throws {
        var d = try readyHarness(config(tariff: energyOnly))
        #expect(notMade(d.send(.reportRequested(99))))
        let tapped = try d.tap(card(1)).fx
        guard case let .ask(k, _)? = tapped.first else { Issue.record("no cloud question: \(tapped)"); return }
        #expect(notMade(d.send(.reportRequested(k))))   // deciding
        d.send(.cloud(k, CardDecision(allowed: true)))
        #expect(notMade(d.send(.reportRequested(k))))   // authorising
        try d.completeAuthorise()
        d.send(.terminal(.approved(7_001, amount: 5_000, pspRef: [])))
        d.send(.plug(connector: 0, pluggedIn: true))
        d.send(.meter(connector: 0, registerWh: 0))
        d.send(.plug(connector: 0, pluggedIn: false))
        #expect(d.engine.sessions[k]?.phase == .disposing)
        #expect(notMade(d.send(.reportRequested(k))))   // settling: the Ended event is on its way
        #expect(!d.ledger.contains { if case .reportRequested = $0 { return true }; return false })
    }

    @Test func recoveryCountsTheReportsAlreadyWritten() throws {
        var (d, k) = try chargingHarness(config(tariff: energyOnly))
        for _ in 0..<PaymentEngine.maxReportsPerSession - 1 { d.send(.reportRequested(k)) }
        let entries = try d.ledger.map { try LedgerEntry.decode(kind: $0.kind, body: $0.encodeBody()) }
        #expect(entries.filter { $0.kind == 17 }.count == PaymentEngine.maxReportsPerSession - 1)
        let later = Moment(monotonic: d.mono + .seconds(5), wallMillis: d.wall + 5_000)
        let (engine, _, _) = PaymentEngine.recover(config: config(tariff: energyOnly), entries: entries, at: later)
        #expect(engine.sessions[k]?.reportsRequested == PaymentEngine.maxReportsPerSession - 1)
    }

    @Test func theEntryRoundTripsAndEveryTruncationIsRefused() throws {
        let entry = LedgerEntry.reportRequested(0x0102_0304_0506_0708, at: 1_796_000_000_123)
        #expect(entry.kind == 17)
        let body = entry.encodeBody()
        #expect(body == [1, 2, 3, 4, 5, 6, 7, 8] + [0, 0, 0x01, 0xA2, 0x29, 0xF1, 0x28, 0x7B])
        #expect(try LedgerEntry.decode(kind: 17, body: body) == entry)
        #expect(!entry.closesSession)
        for cut in 0..<body.count {
            #expect(throws: EntryDecodeError.truncated) { try LedgerEntry.decode(kind: 17, body: Array(body[..<cut])) }
        }
    }
}
