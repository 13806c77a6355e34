import ChargerPort
import ControllerInput
import FakeTerminal
import Foundation
import Ledger
import PaymentEngine
import Platform
import Station
import TerminalPort
import Testing
import Timebase

// The controller's port behind a real Station (real ledger files, a real event loop turned by the
// test) with a FakeTerminal that approves: the controller's inputs drive the session, and what
// the terminal is asked to capture is what the accepted readings are worth.

/// Allows every card at once.
final class AllowingDecider: CardDecider {
    func decide(session: SessionKey, card: CardIdentity, connector: Int, reply: @escaping (CardDecision) -> Void) {
        reply(CardDecision(allowed: true))
    }
}

/// 100 EUR per kWh (10 cents per Wh), so a few Wh are a visible amount; no start fee, no time price.
let centPerWh = Tariff(currency: "EUR", energyPricePerKWh: 10_000_000)

final class Rig {
    let loop: EventLoop
    let port: ControllerChargerPort
    let terminal = FakeTerminal()
    let station: Station
    let dir: String
    var relayRequests: [(connector: Int, closed: Bool)] = []
    var offers: [(connector: Int, offer: PaymentEngine.ConnectorOffer)] = []
    var notices: [(NoticeSeverity, String)] = []

    init(connectors: Int = 1, meterTimeout: Duration = .seconds(30), relayConfirmTimeout: Duration = .seconds(5), connected: Bool = true) throws {
        dir = NSTemporaryDirectory() + "controller-port-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        loop = try EventLoop()
        port = ControllerChargerPort(loop: loop, connectors: connectors, meterTimeout: meterTimeout, maxPowerW: 22_000,
                                     relayConfirmTimeout: relayConfirmTimeout)
        var config = EngineConfig()
        config.connectors = connectors
        config.tariff = centPerWh
        config.scanForTapToStop = false
        let ledger = try Ledger.open(directory: dir).ledger
        station = Station(loop: loop, engine: PaymentEngine(config: config), ledger: ledger, terminal: terminal,
                          charger: port, decider: AllowingDecider())
        port.onRelayRequest = { [unowned self] c, closed in relayRequests.append((c, closed)) }
        port.onOffer = { [unowned self] c, offer in offers.append((c, offer)) }
        port.onNotice = { [unowned self] s, t in notices.append((s, t)) }
        station.onNotice = { [unowned self] s, t in notices.append((s, t)) }
        station.start(recoveryEffects: [])
        if connected { try connect() }
    }

    /// The controller connects, as the daemon's socket would say, after the station opened every
    /// relay at start: it is asked for every connector's state (open) and confirms it.
    func connect() throws {
        port.controllerConnected = true
        #expect(relayRequests.map(\.closed) == Array(repeating: false, count: port.connectors))
        for c in 1...port.connectors { try port.relayFeedback(connector: c, closed: false) }
        relayRequests.removeAll()
    }

    deinit { try? FileManager.default.removeItem(atPath: dir) }

    /// Turns the loop until `condition` holds or `timeout` passes.
    @discardableResult
    func run(timeout: Duration = .seconds(10), until condition: () -> Bool) throws -> Bool {
        try loop.run(until: condition, deadline: MonotonicClock.now() + timeout)
    }

    /// Turns the loop for `d`, whatever happens.
    func turn(for d: Duration) throws { _ = try loop.run(until: { false }, deadline: MonotonicClock.now() + d) }

    func answer(_ match: (TerminalCommand) -> Bool) throws {
        let cmd = try #require(terminal.commands.last { match($0.command) }, "no such command in \(terminal.commands.map(\.command))")
        terminal.deliver([.completed(cmd.id, cmd.command, .ok)])
    }

    /// The terminal comes up, a card is read and approved for 50.00: a session awaits its plug.
    func approvedSession() throws -> SessionKey {
        terminal.deliver([.ready([])])
        try answer { if case .arm = $0 { return true } else { return false } }
        terminal.deliver([.cardRead(CardIdentity(maskedPAN: "412345******0001", hash: [1, 2, 3]))])
        try answer { if case .authorise = $0 { return true } else { return false } }
        terminal.deliver([.approved(TerminalHandle(reference: 4_711), amount: 5_000, pspRef: [])])
        let k = try #require(station.engine.sessions.keys.first)
        guard case .awaitingPlug = station.engine.sessions[k]?.phase else {
            Issue.record("not awaiting the plug: \(String(describing: station.engine.sessions[k]?.phase))")
            throw CancellationError()
        }
        return k
    }

    var captures: [Int64] { terminal.commands.compactMap { if case let .capture(_, a, _) = $0.command { return a } else { return nil } } }
    var releases: Int { terminal.commands.filter { if case .release = $0.command { return true } else { return false } }.count }
}

@Suite(.serialized) struct ControllerChargerPortTests {
    /// Plug in, the close confirmed, readings (one implausible jump among them), unplug: the
    /// capture is the tariff on the accepted energy, and the jump is not in it.
    @Test func theCaptureIsTheTariffOnTheAcceptedEnergyAndARejectedJumpIsNotInIt() throws {
        let rig = try Rig()
        try rig.port.meter(connector: 1, registerWh: 1_000)
        _ = try rig.approvedSession()
        try rig.port.plug(connector: 1, plugged: true)
        #expect(rig.relayRequests.count == 1 && rig.relayRequests[0] == (1, true))
        try rig.port.relayFeedback(connector: 1, closed: true)
        try rig.port.meter(connector: 1, registerWh: 1_008, powerW: 11_000)
        #expect(throws: ControllerInputError.meterRejected(.jump)) { try rig.port.meter(connector: 1, registerWh: 90_000, powerW: 11_000) }
        #expect(throws: ControllerInputError.meterRejected(.backwards)) { try rig.port.meter(connector: 1, registerWh: 1_007) }
        try rig.port.meter(connector: 1, registerWh: 1_017, powerW: 11_000)
        try rig.port.plug(connector: 1, plugged: false)
        #expect(try rig.run { !rig.captures.isEmpty })
        #expect(rig.captures == [170])   // 17 Wh at 10 cents
        #expect(rig.captures == [CostMeter(tariff: centPerWh, authorised: 5_000).capture(energyWh: 17, seconds: 0)])
        #expect(rig.relayRequests.last! == (1, false))
        #expect(rig.port.counters["meter.rejected.jump"] == 1 && rig.port.counters["meter.rejected.backwards"] == 1)
        #expect(rig.port.counters["meter.accepted"] == 3)
    }

    /// Charging, then the meter goes silent: after the timeout the port faults the connector,
    /// the engine stops and captures what the last accepted reading is worth.
    @Test func aSilentMeterStopsTheSessionAndItIsCapturedAsLastRead() throws {
        let rig = try Rig(meterTimeout: .milliseconds(400))
        try rig.port.meter(connector: 1, registerWh: 20_000)
        let k = try rig.approvedSession()
        try rig.port.plug(connector: 1, plugged: true)
        try rig.port.relayFeedback(connector: 1, closed: true)
        try rig.port.meter(connector: 1, registerWh: 20_004)
        // Rejected readings do not keep a meter alive.
        #expect(throws: ControllerInputError.meterRejected(.jump)) { try rig.port.meter(connector: 1, registerWh: 900_000) }
        let start = MonotonicClock.now()
        #expect(try rig.run { !rig.captures.isEmpty })
        #expect(MonotonicClock.now() - start >= .milliseconds(350))
        #expect(rig.captures == [40])   // 4 Wh at 10 cents
        #expect(rig.captures == [CostMeter(tariff: centPerWh, authorised: 5_000).capture(energyWh: 4, seconds: 0)])
        #expect(rig.station.engine.sessions[k]?.phase == .disposing)
        #expect(rig.notices.contains { $0.1.contains("meter silent for") })
        #expect(rig.relayRequests.last! == (1, false))
        #expect(rig.port.counters["meter.timeouts"] == 1)
        // Opened: no second fault for the same silence.
        try rig.port.relayFeedback(connector: 1, closed: false)
        try rig.turn(for: .milliseconds(600))
        #expect(rig.port.counters["meter.timeouts"] == 1)
    }

    /// The controller never confirms the close: after the confirmation timeout the engine hears
    /// it refused, and the reservation is released (no energy flowed that anyone measured).
    @Test func aCloseTheControllerDoesNotConfirmIsRefused() throws {
        let rig = try Rig(relayConfirmTimeout: .milliseconds(300))
        _ = try rig.approvedSession()
        try rig.port.plug(connector: 1, plugged: true)
        #expect(rig.relayRequests.map(\.closed) == [true])
        #expect(rig.port.counters["relay.confirmed_open"] == 1)   // the state asked for at connect
        let start = MonotonicClock.now()
        #expect(try rig.run { rig.releases == 1 })
        #expect(MonotonicClock.now() - start >= .milliseconds(250))
        #expect(rig.captures.isEmpty)
        #expect(rig.port.counters["relay.close_timeouts"] == 1)
        #expect(rig.notices.contains { $0.1.contains("relay did not close") })
        #expect(rig.relayRequests.last! == (1, false))
        // The late confirmation of the close crosses the open: not taken as a welded contactor.
        try rig.port.relayFeedback(connector: 1, closed: true)
        #expect(rig.port.counters["relay.stale_feedback"] == 1)
        #expect(rig.station.engine.connectorStatuses != [.faulted])
    }

    /// No controller on the socket: a close is refused at once, never asked of anyone.
    @Test func withoutAControllerACloseIsRefusedAtOnce() throws {
        let rig = try Rig(relayConfirmTimeout: .seconds(60), connected: false)
        _ = try rig.approvedSession()
        try rig.port.plug(connector: 1, plugged: true)
        #expect(try rig.run(timeout: .seconds(2)) { rig.releases == 1 })
        #expect(!rig.relayRequests.contains { $0.closed })
        #expect(rig.port.counters["relay.refused_no_controller"] == 1)
        #expect(rig.captures.isEmpty)
    }

    /// An open the controller does not confirm is an error notice; the engine keeps it open.
    @Test func anUnconfirmedOpenIsAnErrorNotice() throws {
        let rig = try Rig(relayConfirmTimeout: .milliseconds(200))
        try rig.port.meter(connector: 1, registerWh: 0)
        _ = try rig.approvedSession()
        try rig.port.plug(connector: 1, plugged: true)
        try rig.port.relayFeedback(connector: 1, closed: true)
        try rig.port.meter(connector: 1, registerWh: 3)
        try rig.port.plug(connector: 1, plugged: false)
        #expect(try rig.run { rig.notices.contains { $0.0 == .error && $0.1.contains("did not confirm the relay open") } })
        #expect(rig.port.counters["relay.open_timeouts"] == 1)
        #expect(rig.captures == [30])
    }

    /// Connectors are 1-based for people; anything else is refused and counted, nothing reaches the engine.
    @Test func inputsForAConnectorOutOfRangeAreRefused() throws {
        let rig = try Rig(connectors: 2)
        #expect(throws: ControllerInputError.connectorOutOfRange(0, connectors: 2)) { try rig.port.plug(connector: 0, plugged: true) }
        #expect(throws: ControllerInputError.connectorOutOfRange(3, connectors: 2)) { try rig.port.meter(connector: 3, registerWh: 1) }
        #expect(throws: ControllerInputError.connectorOutOfRange(-1, connectors: 2)) { try rig.port.fault(connector: -1, text: "x") }
        #expect(throws: ControllerInputError.connectorOutOfRange(9, connectors: 2)) { try rig.port.evseReady(connector: 9, ready: false) }
        #expect(throws: ControllerInputError.connectorOutOfRange(Int.min, connectors: 2)) { try rig.port.relayFeedback(connector: .min, closed: true) }
        #expect(throws: ControllerInputError.emptyFaultText) { try rig.port.fault(connector: 1, text: "") }
        #expect(throws: ControllerInputError.faultTextTooLong(max: ControllerChargerPort.maxFaultTextBytes)) {
            try rig.port.fault(connector: 1, text: String(repeating: "é", count: 101))
        }
        #expect(rig.port.counters["inputs.refused.connector"] == 5 && rig.port.counters["inputs.refused.fault_text"] == 2)
        try rig.port.plug(connector: 2, plugged: true)
        #expect(try rig.run { rig.station.engine.connectorStatuses == [.unavailable, .occupied] || rig.station.engine.connectorStatuses == [.available, .occupied] })
    }

    /// A fault from the controller stops the session and captures what was metered; its text
    /// reaches the log without a card number in it.
    @Test func aFaultStopsAndCapturesAndItsTextIsScrubbed() throws {
        let rig = try Rig()
        try rig.port.meter(connector: 1, registerWh: 100)
        _ = try rig.approvedSession()
        try rig.port.plug(connector: 1, plugged: true)
        try rig.port.relayFeedback(connector: 1, closed: true)
        try rig.port.meter(connector: 1, registerWh: 102)
        try rig.port.fault(connector: 1, text: "RCD tripped while card 4111 1111 1111 1111 was shown")
        #expect(try rig.run { !rig.captures.isEmpty })
        #expect(rig.captures == [20])
        let text = try #require(rig.notices.first { $0.1.contains("RCD tripped") }?.1)
        #expect(!text.contains("4111 1111 1111 1111") && !text.contains("4111111111111111"), "\(text)")
        #expect(rig.port.counters["inputs.fault_text_card_data_removed"] == 1)
    }

    /// EVSE not ready: the connector is offered as unavailable (the controller hears it), a
    /// card finds no connector; ready again, it is offered again.
    @Test func anEVSENotReadyIsNotOfferedUntilReady() throws {
        let rig = try Rig()
        rig.terminal.deliver([.ready([])])
        try rig.port.evseReady(connector: 1, ready: false)
        #expect(rig.station.engine.connectorOffers == [.unavailable])
        #expect(rig.offers.last.map { $0.connector == 1 && $0.offer == .unavailable } == true)
        try rig.answer { if case .arm = $0 { return true } else { return false } }
        rig.terminal.deliver([.cardRead(CardIdentity(maskedPAN: "412345******0001", hash: [1]))])
        #expect(rig.station.engine.sessions.isEmpty)
        try rig.port.evseReady(connector: 1, ready: true)
        #expect(rig.station.engine.connectorOffers == [.available])
        #expect(rig.offers.last.map { $0.connector == 1 && $0.offer == .available } == true)
    }

    /// The station opened every relay at start with no controller there: nothing was asked then;
    /// the controller that connects is asked, and an open it does not confirm is an error notice.
    @Test func aControllerIsAskedForTheCommandedStatesWhenItConnects() throws {
        let rig = try Rig(relayConfirmTimeout: .milliseconds(200), connected: false)
        try rig.turn(for: .milliseconds(300))
        // Only the station's own record of the open it commanded; nothing from the port.
        #expect(rig.relayRequests.isEmpty && rig.notices.allSatisfy { $0.0 == .info && $0.1 == "connector 1: relay open commanded" })
        rig.port.controllerConnected = true
        #expect(rig.relayRequests.count == 1 && rig.relayRequests[0] == (1, false))
        #expect(try rig.run { rig.notices.contains { $0.0 == .error && $0.1.contains("connector 1: the controller did not confirm the relay open") } })
        #expect(rig.port.counters["relay.open_timeouts"] == 1)
    }

    /// The controller leaves while a relay is closed: the session stops as faulted and is captured.
    @Test func aControllerThatLeavesWhileChargingFaultsTheConnector() throws {
        let rig = try Rig()
        try rig.port.meter(connector: 1, registerWh: 0)
        _ = try rig.approvedSession()
        try rig.port.plug(connector: 1, plugged: true)
        try rig.port.relayFeedback(connector: 1, closed: true)
        try rig.port.meter(connector: 1, registerWh: 5)
        rig.port.controllerConnected = false
        #expect(try rig.run { !rig.captures.isEmpty })
        #expect(rig.captures == [50])
        #expect(rig.notices.contains { $0.1.contains("controller disconnected") })
    }
}
