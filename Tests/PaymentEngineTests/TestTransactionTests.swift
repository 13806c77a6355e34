import PaymentEngine
import Testing
import Timebase

// A technician's test transaction: armed for the test amount, no cloud, authorised, voided at
// once, no relay, recorded like any session and recoverable at any point.
@Suite struct TestTransactionTests {
    @Test func aTestIsArmedForItsAmountAuthorisedWithoutTheCloudAndVoidedWithoutARelay() throws {
        var d = try readyHarness(config(connectors: 2))
        try d.completeArm()
        // The scan armed for drivers is taken down, then armed again for the test's amount.
        #expect(d.send(.testTransaction(connector: 1, amount: 100)).fx == [.cmd(.cancel)])
        #expect(d.engine.lastTest?.step == .waitingForCard)
        try d.complete(.cancel)
        d.wait(.seconds(1))
        #expect(d.tick().fx == [.cmd(.arm(amount: 100, reference: 1))])
        let fx = try d.tap(card(3))
        let k = try #require(d.engine.sessions.keys.max())
        #expect(fx.fx == [.persist(.authRequested(k, connector: 1, amount: 100, card: card(3), tariff: mixedTariff, at: d.wall)),
                          .persist(.testTransaction(k, at: d.wall)), .cmd(.authorise(amount: 100))])
        #expect(d.engine.lastTest?.step == .authorising(k))
        try d.completeAuthorise()
        let approved = d.send(.terminal(.approved(TerminalHandle(reference: 9), amount: 100, pspRef: [1])))
        #expect(approved.fx == [.persist(.approved(k, handle: TerminalHandle(reference: 9), authorised: 100, pspRef: [1], at: d.wall)),
                                .persist(.voidRequested(k)), .cmd(.release(TerminalHandle(reference: 9)))])
        #expect(d.engine.lastTest?.step == .voiding(k))
        // Plugging in now closes nothing: the test has no connector left.
        #expect(!d.send(.plug(connector: 1, pluggedIn: true)).fx.contains { if case .relay(_, true) = $0 { return true }; return false })
        try d.complete(.release(TerminalHandle(reference: 9)))
        #expect(d.engine.lastTest?.step == .succeeded(k))
        #expect(d.engine.sessions[k] == nil)
        #expect(!d.all.contains { if case .askCloud = $0 { return true }; return false })
        #expect(d.ledger.last == .voided(k, at: d.wall))
        // The summary knows it was a test.
        #expect(SessionSummary.summarise(d.ledger).first { $0.session == k }?.isTest == true)
    }

    @Test func aTestIsRefusedOnABusyConnectorAndWhileAnotherWaits() throws {
        var (d, _) = try chargingHarness(config(connectors: 2))
        #expect(d.engine.testRefusal(connector: 0) != nil)
        #expect(d.engine.testRefusal(connector: 5) != nil)
        d.send(.testTransaction(connector: 0, amount: 100))
        #expect(d.engine.lastTest == nil)
        #expect(d.engine.testRefusal(connector: 1) == nil)
        d.send(.testTransaction(connector: 1, amount: 100))
        #expect(d.engine.testRefusal(connector: 1) != nil)
    }

    @Test func aDeclinedTestFailsAndNoCardGivesUpAfterItsTimeout() throws {
        var d = try readyHarness(config())
        d.send(.testTransaction(connector: 0, amount: 100))
        try d.complete(.arm(amount: 5000, reference: 1))
        // Armed before the request came in: cancelled and armed for the test.
        if d.pendingID({ $0 == .cancel }) != nil { try d.complete(.cancel) }
        d.after(.seconds(1))
        try d.tap(card(4))
        try d.completeAuthorise()
        d.send(.terminal(.declined(reason: 5)))
        guard case .failed(let why)? = d.engine.lastTest?.step else { Issue.record("not failed: \(String(describing: d.engine.lastTest))"); return }
        #expect(why.contains("declined"))
        // A second test that nobody taps for.
        d.after(.seconds(1))
        d.send(.testTransaction(connector: 0, amount: 100))
        #expect(d.engine.lastTest?.step == .waitingForCard)
        d.after(PaymentEngine.testCardTimeout + .seconds(1))
        guard case .failed(let why2)? = d.engine.lastTest?.step else { Issue.record("not given up"); return }
        #expect(why2.contains("no card"))
    }

    @Test func aTestApprovedBeforeACrashIsVoidedByRecovery() throws {
        var d = try readyHarness(config())
        d.send(.testTransaction(connector: 0, amount: 100))
        try d.completeArm()
        if d.pendingID({ $0 == .cancel }) != nil { try d.complete(.cancel); d.after(.seconds(1)) }
        try d.tap(card(5))
        try d.completeAuthorise()
        d.send(.terminal(.approved(TerminalHandle(reference: 11), amount: 100, pspRef: [])))
        // Crash after the approval was written, before the void was: recovery voids it.
        let cut = try #require(d.ledger.firstIndex { if case .approved = $0 { return true }; return false })
        let (recovered, fx, report) = PaymentEngine.recover(config: config(), entries: Array(d.ledger[...cut]), at: d.now)
        #expect(report.toRelease == 1)
        let k0 = try #require(d.ledger.first?.session)
        #expect(fx.fx.contains(.persist(.voidRequested(k0))))
        #expect(recovered.sessions[k0]?.isTest == true)
        var r = Harness(recovered: recovered, effects: fx, at: d.now)
        let ready = r.send(.terminal(.ready([])))
        #expect(ready.commands.contains(.release(TerminalHandle(reference: 11))))
        #expect(!(fx + ready).contains { if case .relay(_, true) = $0 { return true }; return false })
        // A torn tail that kept the mark without its request marks nothing.
        let k = try #require(d.ledger.first?.session)
        let (lone, _, loneReport) = PaymentEngine.recover(config: config(), entries: [.testTransaction(k, at: 1)], at: d.now)
        #expect(lone.sessions.isEmpty && loneReport.openSessions == 0)
    }

    @Test func theTestMarkRoundTripsThroughTheLedgerAndTheSummaryCodec() throws {
        let e = LedgerEntry.testTransaction(42, at: 1_764_000_000_123)
        #expect(try LedgerEntry.decode(kind: e.kind, body: e.encodeBody()) == e)
        var s = SessionSummary(session: 42)
        s.isTest = true
        s.outcome = .voided
        #expect(try SessionSummary.decode(kind: SessionSummary.recordKind, body: s.encodeBody()) == s)
    }
}
