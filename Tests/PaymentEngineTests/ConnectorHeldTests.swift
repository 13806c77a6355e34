import PaymentEngine
import Testing
import Timebase

// The charging platform's ChangeAvailability Inoperative (issue 15): the connector is held out
// of service, but what runs on it runs to its end (the platform was answered Scheduled); only
// the charger's own "cannot serve" (`connectorAvailable(false)`) stops a session.
@Suite struct ConnectorHeldTests {
    @Test func aHeldConnectorFinishesItsSessionAndTakesNoNewOne() throws {
        var (d, k) = try chargingHarness(config(connectors: 2))
        d.send(.meter(connector: 0, registerWh: 0))
        let fx = d.send(.connectorHeld(connector: 0, true))
        #expect(fx.fx.isEmpty, "holding a connector stopped or released something: \(fx)")
        #expect(d.engine.sessions[k]?.phase == .charging)
        #expect(d.engine.connectorOffers[0] == .charging(k))
        // Metering and the stop go on as ever.
        d.send(.meter(connector: 0, registerWh: 2_000))
        #expect(d.send(.plug(connector: 0, pluggedIn: false)).fx.contains { if case .persist(.stopped(k, .unplugged, 2_000, _, _)) = $0 { return true }; return false })
        try d.complete(.capture(7_001, amount: 130, reserved: 5_000))
        #expect(d.engine.sessions[k] == nil)
        // Settled: the connector is offered to nobody, and reported Unavailable.
        #expect(d.engine.connectorOffers[0] == .unavailable)
        #expect(d.engine.connectorStatuses[0] == .unavailable)
        // The next card goes to connector 2, the free one.
        d.after(.seconds(1))
        #expect(try d.tap(card(2)).fx == [.ask(k + 1, connector: 1)])
    }

    @Test func whenEveryConnectorIsHeldNoCardIsTakenUntilOneIsReleased() throws {
        var d = try readyHarness(config(connectors: 2))
        try d.completeArm()   // scanning for a card
        #expect(d.send(.connectorHeld(connector: 0, true)).fx.isEmpty, "connector 2 is still free: the scan goes on")
        // The last free connector held: the scan is cancelled, and no new one starts.
        #expect(d.send(.connectorHeld(connector: 1, true)).fx == [.cmd(.cancel)])
        #expect(d.engine.connectorOffers == [.unavailable, .unavailable])
        try d.complete(.cancel)
        d.after(.seconds(30))
        #expect(!d.armPending, "the terminal was armed with no connector to charge on")
        d.send(.connectorHeld(connector: 1, false))
        #expect(d.engine.connectorOffers == [.unavailable, .available])
        d.after(.seconds(5))
        #expect(try d.tap(card(1)).fx.contains { if case .ask(_, connector: 1) = $0 { return true }; return false })
    }

    @Test func anApprovalAwaitingItsPlugStillCharges() throws {
        var d = try readyHarness(config(connectors: 1))
        let k = try d.approvedSession(card(1), ref: 7_001)
        #expect(d.send(.connectorHeld(connector: 0, true)).fx.isEmpty)
        #expect(d.send(.plug(connector: 0, pluggedIn: true)).fx == [.persist(.charging(k, at: d.wall)), .relay(0, close: true)])
    }

    /// Issue 16: a welded relay keeps its connector out of service until a technician clears it.
    @Test func aWeldedConnectorTakesNoSessionUntilCleared() throws {
        var d = try readyHarness(config(connectors: 2))
        d.send(.relay(connector: 0, .welded))
        #expect(d.engine.connectorStatuses[0] == .faulted && d.engine.connectorOffers[0] == .unavailable)
        #expect(d.send(.weldCleared(connector: 1)).fx.isEmpty, "connector 2 was never welded")
        d.after(.seconds(1))
        #expect(try d.tap(card(1)).fx == [.ask(1, connector: 1)], "the welded connector was given a session")
        let cleared = d.send(.weldCleared(connector: 0))
        #expect(cleared.notices.contains { $0.contains("latch cleared") })
        #expect(d.engine.connectorStatuses[0] == .available)
    }
}
