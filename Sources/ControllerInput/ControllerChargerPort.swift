import CardSafety
import ChargerPort
import PaymentEngine
import Platform
import Timebase

/// Why the controller's input was refused (nothing reached the engine).
public enum ControllerInputError: Error, Equatable, Sendable {
    /// The connector number (1-based, as people count) is not one of this charger's.
    case connectorOutOfRange(Int, connectors: Int)
    /// The meter reading is implausible (`MeterGuard`); the last accepted one stands.
    case meterRejected(MeterRejection)
    /// A fault needs a text saying what happened.
    case emptyFaultText
    /// A fault text longer than `ControllerChargerPort.maxFaultTextBytes` bytes (UTF-8).
    case faultTextTooLong(max: Int)
}

/// The charger's hardware as its own controller reports it over the daemon's diagnostic socket
/// (`charger.io = socket`). The socket calls the input methods (connectors are 1-based there,
/// 0-based for the engine) and streams `onRelayRequest` and `onOffer` to the controller; the
/// controller drives the contactors and confirms them (`relayFeedback`).
///
/// What the port decides, so that a controller that is wrong or gone cannot make a driver pay for
/// energy nobody measured or get energy nobody bills:
/// - Meter readings pass `MeterGuard` (no negative, absurd, backwards or faster-than-the-connector
///   register, no implausible power) before the engine sees them.
/// - A connector charging (its close confirmed, no open asked since) whose meter has sent no
///   accepted reading for `MeterGuard.timeout` gets a fault ("meter silent for Ns"): the engine
///   stops the session and captures on the last accepted reading.
/// - A close is refused at once when no controller is connected, and reported refused when not
///   confirmed within `relayConfirmTimeout`. An open unconfirmed in that time is an error notice
///   (`onNotice`): the engine already counts the relay as open, and a missing answer is not proof
///   of a welded contactor (`RelayFeedback.welded` takes the connector out of service until a
///   restart). Only the controller saying "closed" when nothing asked for it is reported welded.
/// - The controller going away (`controllerConnected = false`) faults every connector whose
///   relay was asked closed: nothing can meter or open it for us any more.
/// - EVSE-ready false takes the connector out of service in the engine
///   (`EngineInput.connectorAvailable`): no new session there, a charging one stops as faulted.
///
/// Inputs reach the engine through `onInputs` synchronously from the input methods (the socket
/// calls them on the loop, never from inside `setRelay` or `show`); what the port decides on its
/// own (timeouts, a refused close) is delivered from the loop.
public final class ControllerChargerPort: ChargerPort {
    public var onInputs: ([EngineInput]) -> Void = { _ in }
    /// The engine asks for a contactor (connector 1-based, closed = true): for the controller.
    /// Called from inside `setRelay`; it must not call back into the port.
    public var onRelayRequest: (Int, Bool) -> Void = { _, _ in }
    /// What a connector (1-based) offers a driver now, for the controller's display or LEDs.
    public var onOffer: (Int, PaymentEngine.ConnectorOffer) -> Void = { _, _ in }
    /// What the port itself has to say (an unconfirmed relay opening at error), for the log and STATUS=.
    public var onNotice: (NoticeSeverity, String) -> Void = { _, _ in }

    /// A contactor request unconfirmed this long: a close is refused, an open is an error notice.
    public static let relayConfirmTimeout: Duration = .seconds(5)
    /// The longest fault text taken from the controller (bytes of UTF-8).
    public static let maxFaultTextBytes = 200

    /// Whether a controller is connected to the socket (set by the socket, once a client can
    /// receive relay requests). Without one a close is refused at once and an open is only
    /// recorded; on connecting, every connector's commanded state is requested again
    /// (`onRelayRequest`) and must be confirmed like any request; losing it faults every
    /// connector whose relay was asked closed.
    public var controllerConnected = false {
        didSet {
            if oldValue && !controllerConnected { controllerLost() }
            if !oldValue && controllerConnected { controllerArrived() }
        }
    }

    /// What the port counted since start: accepted and rejected readings (by reason), refused
    /// inputs (by reason), meter timeouts, relay requests and their outcomes.
    public private(set) var counters: [String: Int] = [:]
    /// The meter checks and the silence timer (pure).
    public private(set) var meters: MeterGuard
    /// The contactors asked for and confirmed (pure).
    public private(set) var relays: RelayConfirmations
    /// The number of connectors (the engine's).
    public let connectors: Int

    let loop: EventLoop
    lazy var timer = DeadlineTimer(loop: loop) { [unowned self] in self.deadlinesDue() }

    /// `meterTimeout`: `charger.meter_timeout_seconds`; `maxPowerW`: `charger.max_power_w`.
    public init(loop: EventLoop, connectors: Int, meterTimeout: Duration, maxPowerW: Int64,
                relayConfirmTimeout: Duration = ControllerChargerPort.relayConfirmTimeout) {
        self.loop = loop
        self.connectors = max(1, min(connectors, EngineConfig.maxConnectors))
        meters = MeterGuard(connectors: self.connectors, maxPowerW: maxPowerW, timeout: meterTimeout)
        relays = RelayConfirmations(connectors: self.connectors, confirmTimeout: relayConfirmTimeout)
        lastReported = Array(repeating: nil, count: self.connectors)
    }

    // MARK: the controller's inputs (connectors 1-based)

    /// A vehicle plugged in or out.
    public func plug(connector: Int, plugged: Bool) throws(ControllerInputError) {
        let c = try index(connector)
        count("inputs.plug")
        onInputs([.plug(connector: c, pluggedIn: plugged)])
    }

    /// The connector's energy register (cumulative Wh) and, if the controller has it, the power (W).
    public func meter(connector: Int, registerWh: Int64, powerW: Int64? = nil) throws(ControllerInputError) {
        let c = try index(connector)
        if let r = meters.check(connector: c, registerWh: registerWh, powerW: powerW, at: MonotonicClock.now()) {
            count("meter.rejected.\(r.rawValue)")
            throw .meterRejected(r)
        }
        count("meter.accepted")
        rearm()
        onInputs([.meter(connector: c, registerWh: registerWh)])
    }

    /// The charger found a fault on the connector: a session charging there stops and is captured
    /// for what was metered; one awaiting its plug is released.
    public func fault(connector: Int, text: String) throws(ControllerInputError) {
        let c = try index(connector)
        if text.isEmpty { return try refuse(.emptyFaultText) }
        if text.utf8.count > Self.maxFaultTextBytes { return try refuse(.faultTextTooLong(max: Self.maxFaultTextBytes)) }
        count("inputs.fault")
        // The text ends up in the log and STATUS=: a card number typed or pasted into it must not.
        let (safe, found) = CardDataFilter.scrub(text)
        if found != nil { count("inputs.fault_text_card_data_removed") }
        onInputs([.fault(connector: c, "controller: \(safe)")])
    }

    /// Whether the charger can serve the connector (EVSE ready).
    public func evseReady(connector: Int, ready: Bool) throws(ControllerInputError) {
        let c = try index(connector)
        count("inputs.evse_ready")
        onInputs([.connectorAvailable(connector: c, ready)])
    }

    /// The controller confirms a contactor's state.
    public func relayFeedback(connector: Int, closed: Bool) throws(ControllerInputError) {
        let c = try index(connector)
        lastReported[c] = closed
        let outcome = relays.feedback(connector: c, closed: closed)
        rearm()
        switch outcome {
        case .confirmed(let isClosed):
            count(isClosed ? "relay.confirmed_closed" : "relay.confirmed_open")
            if isClosed { meters.watch(connector: c, from: MonotonicClock.now()); rearm() }
            onInputs([.relay(connector: c, isClosed ? .closed : .opened)])
        case .refusedToClose:
            count("relay.refused_by_controller")
            onInputs([.relay(connector: c, .refusedToClose)])
        case .stale:
            count("relay.stale_feedback")
        case .openedUncommanded:
            count("relay.opened_uncommanded")
            meters.unwatch(connector: c)
            rearm()
            onInputs([.fault(connector: c, "controller: relay opened without a command")])
        case .closedUncommanded:
            count("relay.closed_uncommanded")
            onInputs([.relay(connector: c, .welded)])
        case .repeated:
            count("relay.repeated_feedback")
        }
    }

    // MARK: ChargerPort (connectors 0-based)

    /// What the controller last said of each contactor (closed = true); nil: never said.
    var lastReported: [Bool?] = []

    public func contactReadsOpen(connector c: Int) -> Bool? {
        guard lastReported.indices.contains(c) else { return nil }
        return lastReported[c].map { !$0 }
    }

    public func setRelay(connector c: Int, closed: Bool) {
        guard (0..<connectors).contains(c) else { return }
        if !closed { meters.unwatch(connector: c) }
        if !closed && !controllerConnected {
            count("relay.open_requests")
            relays.openUnasked(connector: c)
            rearm()
            return
        }
        if closed && !controllerConnected {
            count("relay.refused_no_controller")
            relays.refuseClose(connector: c)
            rearm()
            _ = loop.schedule(at: MonotonicClock.now()) { [weak self] in self?.onInputs([.relay(connector: c, .refusedToClose)]) }
            return
        }
        count(closed ? "relay.close_requests" : "relay.open_requests")
        relays.request(connector: c, closed: closed, at: MonotonicClock.now())
        rearm()
        onRelayRequest(c + 1, closed)
    }

    public func show(connector c: Int, _ offer: PaymentEngine.ConnectorOffer) {
        guard (0..<connectors).contains(c) else { return }
        onOffer(c + 1, offer)
    }

    // MARK: time

    func rearm() { timer.arm(earliestOf: meters.nextDeadline, relays.nextDeadline) }

    func deadlinesDue() {
        let now = MonotonicClock.now()
        var inputs: [EngineInput] = []
        for (c, closed) in relays.expired(at: now) {
            if closed {
                count("relay.close_timeouts")
                meters.unwatch(connector: c)
                inputs.append(.relay(connector: c, .refusedToClose))
            } else {
                count("relay.open_timeouts")
                onNotice(.error, "connector \(c + 1): the controller did not confirm the relay open within \(relays.confirmTimeout); it may still carry energy")
            }
        }
        for c in meters.silent(at: now) {
            count("meter.timeouts")
            inputs.append(.fault(connector: c, meters.silenceFault(connector: c)))
        }
        rearm()
        if !inputs.isEmpty { onInputs(inputs) }
    }

    func controllerArrived() {
        count("controller.connected")
        let now = MonotonicClock.now()
        for c in 0..<connectors {
            let closed = relays.commanded[c]
            relays.request(connector: c, closed: closed, at: now)
            onRelayRequest(c + 1, closed)
        }
        rearm()
    }

    func controllerLost() {
        let charging = relays.commanded.indices.filter { relays.commanded[$0] }
        guard !charging.isEmpty else { return }
        count("controller.lost_while_charging")
        for c in charging { meters.unwatch(connector: c) }
        rearm()
        _ = loop.schedule(at: MonotonicClock.now()) { [weak self] in
            self?.onInputs(charging.map { .fault(connector: $0, "controller disconnected") })
        }
    }

    // MARK: helpers

    func index(_ connector: Int) throws(ControllerInputError) -> Int {
        guard (1...connectors).contains(connector) else { return try refuse(.connectorOutOfRange(connector, connectors: connectors)) }
        return connector - 1
    }

    func refuse<T>(_ e: ControllerInputError) throws(ControllerInputError) -> T {
        switch e {
        case .connectorOutOfRange: count("inputs.refused.connector")
        case .emptyFaultText, .faultTextTooLong: count("inputs.refused.fault_text")
        case .meterRejected(let r): count("meter.rejected.\(r.rawValue)")
        }
        throw e
    }

    func count(_ key: String) { counters[key, default: 0] += 1 }
}
