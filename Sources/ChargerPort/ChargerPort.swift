import PaymentEngine
import Platform
import Timebase

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
    /// Whether the connector's contactor reads open now, as its feedback contact (or the
    /// controller) last said; nil where the charger cannot tell. A technician may clear a
    /// welded relay's latch only when this is not false.
    func contactReadsOpen(connector: Int) -> Bool?
    /// A technician cleared the connector's welded-relay latch (the engine is told too): a port
    /// that latched the weld itself may drive the relay again.
    func weldCleared(connector: Int)
}

extension ChargerPort {
    /// A charger without contact feedback cannot tell.
    public func contactReadsOpen(connector: Int) -> Bool? { nil }
    /// A port that keeps no latch of its own has nothing to clear.
    public func weldCleared(connector: Int) {}
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
