import Timebase

/// The contactors as the daemon commanded them and what the controller confirmed, per connector
/// (0-based). Pure: requests, feedback and instants in, outcomes out. The controller drives the
/// contactors; the daemon only asks (`request`) and believes what is confirmed in time.
public struct RelayConfirmations: Sendable {
    /// What a piece of relay feedback from the controller means.
    public enum Outcome: Equatable, Sendable {
        /// The request pending for this connector is confirmed.
        case confirmed(closed: Bool)
        /// A close was pending and the controller says the contactor is open: it did not close.
        case refusedToClose
        /// An open is pending and the controller says closed: an answer to an earlier close
        /// that crossed the open request; the open's own confirmation or timeout decides.
        case stale
        /// Nothing pending, commanded closed, the controller says open: the contactor dropped
        /// out by itself (emergency stop, its own protection) while charging.
        case openedUncommanded
        /// Nothing pending, commanded open (and confirmed or timed out), the controller says
        /// closed: the contactor carries energy nobody asked for.
        case closedUncommanded
        /// The same state as commanded and confirmed: said again, nothing changes.
        case repeated
    }

    struct Pending: Equatable, Sendable {
        var closed: Bool
        var deadline: Instant
    }

    /// How long the controller has to confirm a request (`Outcome.confirmed`) before the close
    /// counts as refused, or the open as unconfirmed.
    public let confirmTimeout: Duration
    /// The state each connector's contactor was last asked for (closed = true).
    public private(set) var commanded: [Bool]
    var pending: [Pending?]

    public init(connectors: Int, confirmTimeout: Duration) {
        let n = max(1, connectors)
        self.confirmTimeout = confirmTimeout
        commanded = Array(repeating: false, count: n)
        pending = Array(repeating: nil, count: n)
    }

    /// A request for the contactor: it replaces any still pending on that connector.
    public mutating func request(connector c: Int, closed: Bool, at now: Instant) {
        guard commanded.indices.contains(c) else { return }
        commanded[c] = closed
        pending[c] = Pending(closed: closed, deadline: now + confirmTimeout)
    }

    /// An open with no controller to ask: commanded open, nothing pending (`request` asks again
    /// for every commanded state when a controller connects).
    public mutating func openUnasked(connector c: Int) {
        guard commanded.indices.contains(c) else { return }
        commanded[c] = false
        pending[c] = nil
    }

    /// A close refused before it was asked of the controller (none connected): the contactor stays open.
    public mutating func refuseClose(connector c: Int) {
        guard commanded.indices.contains(c) else { return }
        commanded[c] = false
        pending[c] = nil
    }

    /// Whether a request is waiting for its confirmation on the connector, and which.
    public func pendingRequest(connector c: Int) -> Bool? {
        guard pending.indices.contains(c) else { return nil }
        return pending[c]?.closed
    }

    /// What the controller's word on a contactor means given what was asked.
    public mutating func feedback(connector c: Int, closed: Bool) -> Outcome {
        guard commanded.indices.contains(c) else { return .repeated }
        if let p = pending[c] {
            if p.closed == closed {
                pending[c] = nil
                return .confirmed(closed: closed)
            }
            if p.closed {
                pending[c] = nil
                commanded[c] = false
                return .refusedToClose
            }
            return .stale
        }
        if closed == commanded[c] { return .repeated }
        if closed { return .closedUncommanded }
        commanded[c] = false
        return .openedUncommanded
    }

    /// The requests unconfirmed at `now`, each dropped (reported once): a close that timed
    /// out is taken as not closed; an open stays commanded open.
    public mutating func expired(at now: Instant) -> [(connector: Int, closed: Bool)] {
        var out: [(connector: Int, closed: Bool)] = []
        for c in pending.indices {
            guard let p = pending[c], now >= p.deadline else { continue }
            pending[c] = nil
            if p.closed { commanded[c] = false }
            out.append((c, p.closed))
        }
        return out
    }

    /// The earliest confirmation deadline.
    public var nextDeadline: Instant? { pending.compactMap { $0?.deadline }.min() }
}
