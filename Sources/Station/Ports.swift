import Glibc
import PaymentEngine
import Platform
import Timebase
import Uplink

/// The charger's own hardware as the station sees it, whatever wires it (HardwareSim's simulated
/// charger; later the controller's socket, GPIO relays and a Modbus meter): relays with their
/// contact feedback, plug state and energy registers. Closing a relay is only ever asked for by
/// the engine after the approval and the charging record are durable; opening is always allowed.
public protocol ChargerPort: AnyObject {
    /// Where the charger's events for the engine go, in order: `.plug`, `.meter` (cumulative Wh)
    /// and `.relay` feedback. Never called from inside `setRelay` or `show`.
    var onInputs: ([EngineInput]) -> Void { get set }
    /// Drives a connector's relay; the contact's feedback arrives among the inputs.
    func setRelay(connector: Int, closed: Bool)
    /// What the connector offers a driver now (for a display or LEDs; a simulated driver plugs in
    /// when a session awaits the plug). Called when it changes.
    func show(connector: Int, _ offer: PaymentEngine.ConnectorOffer)
}

/// Delivers outbox messages to the cloud (HTTPS in the daemon, a simulation in tests).
public protocol UplinkTransport: AnyObject {
    /// Sends one message; the completion runs on the event loop.
    func send(_ message: OutboxMessage, completion: @escaping (DeliveryResult) -> Void)
}

/// Whoever decides whether a card may charge here (the cloud, from issue 4 on).
public protocol CardDecider: AnyObject {
    func decide(session: SessionKey, card: CardIdentity, connector: Int, reply: @escaping (CardDecision) -> Void)
}

/// The card decision without a cloud: the offline policy, at once (a standalone charger that
/// takes any card, or none). `policy` is read at each card, so a reloaded policy applies.
public final class PolicyCardDecider: CardDecider {
    let loop: EventLoop
    let policy: () -> OfflinePolicy

    public init(loop: EventLoop, policy: @escaping () -> OfflinePolicy) {
        self.loop = loop; self.policy = policy
    }

    public func decide(session: SessionKey, card: CardIdentity, connector: Int, reply: @escaping (CardDecision) -> Void) {
        let allowed = policy() == .allow
        // Answered from the loop, never re-entrantly from inside the engine's effects.
        _ = loop.schedule(at: MonotonicClock.now()) { reply(CardDecision(allowed: allowed)) }
    }
}

/// The charger of a daemon that has no charger I/O configured (`charger.io = none`): nothing
/// can close, so a close is refused; an open is trivially true (no relay of ours can carry
/// energy); no plug or meter ever reports. The engine is never armed in this mode; this port only
/// lets recovery settle the sessions the ledger holds without inventing a relay.
public final class NoChargerIO: ChargerPort {
    public var onInputs: ([EngineInput]) -> Void = { _ in }
    let loop: EventLoop

    public init(loop: EventLoop) { self.loop = loop }

    public func setRelay(connector c: Int, closed: Bool) {
        let feedback: RelayFeedback = closed ? .refusedToClose : .opened
        _ = loop.schedule(at: MonotonicClock.now()) { [weak self] in self?.onInputs([.relay(connector: c, feedback)]) }
    }

    public func show(connector: Int, _ offer: PaymentEngine.ConnectorOffer) {}
}
