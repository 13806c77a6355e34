import Glibc
import PaymentEngine
import Platform
import Timebase
import Uplink

/// The connector relays. Closing is only ever asked for by the engine after the approval
/// and the charging record are durable; opening is always allowed.
public protocol RelayPort: AnyObject {
    /// Drives the relay; the outcome arrives through `onFeedback`.
    func set(connector: Int, closed: Bool)
    var onFeedback: (Int, RelayFeedback) -> Void { get set }
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

/// A relay with feedback for tests and the demo: it can refuse to close or weld on open,
/// and appends every change to a history file (one JSON object per line) that tests read.
public final class SimulatedRelay: RelayPort {
    public var onFeedback: (Int, RelayFeedback) -> Void = { _, _ in }
    public private(set) var closed: [Bool]
    /// Connectors whose relay refuses to close / welds on the next open.
    public var refuseToClose = Set<Int>()
    public var weldOnOpen = Set<Int>()
    let loop: EventLoop
    let history: FileDescriptor?

    public init(loop: EventLoop, connectors: Int, historyPath: String?) throws {
        self.loop = loop
        closed = Array(repeating: false, count: connectors)
        history = try historyPath.map { try FileDescriptor.open($0, flags: O_WRONLY | O_CREAT | O_APPEND, mode: 0o644) }
    }

    public func set(connector c: Int, closed wantClosed: Bool) {
        guard closed.indices.contains(c) else { return }
        let feedback: RelayFeedback
        if wantClosed {
            if refuseToClose.contains(c) { feedback = .refusedToClose } else { closed[c] = true; feedback = .closed }
        } else {
            if weldOnOpen.contains(c) { feedback = .welded } else { closed[c] = false; feedback = .opened }
        }
        let line = "{\"connector\":\(c),\"closed\":\(closed[c]),\"t\":\(WallClock.nowMillisecondsSinceEpoch())}\n"
        if let history { try? history.writeAll(Array(line.utf8), timeout: .seconds(1)) }
        // Feedback comes back like a contactor's auxiliary contact: a moment later, on the loop.
        _ = loop.schedule(at: MonotonicClock.now() + .milliseconds(1)) { [weak self] in self?.onFeedback(c, feedback) }
    }
}

/// A card decider that allows every card after `delay` (the simulated cloud until issue 4),
/// except masked numbers ending in one of `refusedLast4`.
public final class SimulatedCardDecider: CardDecider {
    let loop: EventLoop
    public var delay: Duration
    public var refusedLast4: Set<String>

    public init(loop: EventLoop, delay: Duration = .milliseconds(20), refusedLast4: Set<String> = []) {
        self.loop = loop; self.delay = delay; self.refusedLast4 = refusedLast4
    }

    public func decide(session: SessionKey, card: CardIdentity, connector: Int, reply: @escaping (CardDecision) -> Void) {
        let allowed = !refusedLast4.contains(String(card.maskedPAN.suffix(4)))
        _ = loop.schedule(at: MonotonicClock.now() + delay) { reply(CardDecision(allowed: allowed)) }
    }
}

/// Simulated vehicles: after an approval the driver plugs in, the car draws `powerW` while the
/// relay is closed, and the driver unplugs after `chargeFor`. `plugAfter == nil`: nobody plugs in.
public struct SimulatedEVSettings: Sendable {
    public var plugAfter: Duration?
    public var chargeFor: Duration
    public var powerW: Int64
    /// Per approval, in order: whether that driver plugs in at all (the rest do).
    public var plugs: [Bool]
    public init(plugAfter: Duration? = .milliseconds(500), chargeFor: Duration = .seconds(3), powerW: Int64 = 22_000, plugs: [Bool] = []) {
        self.plugAfter = plugAfter; self.chargeFor = chargeFor; self.powerW = powerW; self.plugs = plugs
    }

    /// Parses "plug=MS,charge=MS,power=W" or "none".
    public static func parse(_ s: String) -> SimulatedEVSettings? {
        if s == "none" { return SimulatedEVSettings(plugAfter: nil) }
        var out = SimulatedEVSettings()
        for part in s.split(separator: ",") {
            let kv = part.split(separator: "=", maxSplits: 1).map(String.init)
            guard kv.count == 2, let v = Int64(kv[1]), v >= 0 else { return nil }
            switch kv[0] {
            case "plug": out.plugAfter = .milliseconds(v)
            case "charge": out.chargeFor = .milliseconds(v)
            case "power": out.powerW = v
            default: return nil
            }
        }
        return out
    }
}
