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
        history = try historyPath.map { try FileDescriptor.open($0, flags: O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW, mode: 0o644) }
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

/// The relays of a daemon that has no charger I/O configured (`charger.io = none`): nothing
/// can close, so a close is refused; an open is trivially true (no relay of ours can carry
/// energy). The engine is never armed in this mode; this port only lets recovery settle the
/// sessions the ledger holds without inventing a relay.
public final class NoChargerIO: RelayPort {
    public var onFeedback: (Int, RelayFeedback) -> Void = { _, _ in }
    let loop: EventLoop

    public init(loop: EventLoop) { self.loop = loop }

    public func set(connector c: Int, closed: Bool) {
        let feedback: RelayFeedback = closed ? .refusedToClose : .opened
        _ = loop.schedule(at: MonotonicClock.now()) { [weak self] in self?.onFeedback(c, feedback) }
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

    /// Bounds of the settings, so that no value given on a command line can overflow the meter's
    /// arithmetic: a car plugs in within an hour, charges for at most a day, and draws at most
    /// 100 MW (no connector carries a hundredth of it; tests use megawatts to charge in seconds).
    public static let maxPlugAfterMs: Int64 = 3_600_000
    public static let maxChargeForMs: Int64 = 86_400_000
    public static let maxPowerW: Int64 = 100_000_000

    /// Parses "plug=MS,charge=MS,power=W" (any subset, each once) or "none"; the reason when
    /// a field is unknown, repeated, not a number or out of its bounds.
    public static func parse(_ s: String) -> Result<SimulatedEVSettings, SimulatedEVError> {
        if s == "none" { return .success(SimulatedEVSettings(plugAfter: nil)) }
        var out = SimulatedEVSettings()
        var seen = Set<String>()
        for part in s.split(separator: ",", omittingEmptySubsequences: false) {
            let kv = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            guard kv.count == 2 else { return .failure(.malformed(String(part))) }
            let bound: Int64
            switch kv[0] {
            case "plug": bound = maxPlugAfterMs
            case "charge": bound = maxChargeForMs
            case "power": bound = maxPowerW
            default: return .failure(.unknownField(kv[0]))
            }
            guard seen.insert(kv[0]).inserted else { return .failure(.repeated(kv[0])) }
            guard let v = Int64(kv[1]), (0...bound).contains(v) else { return .failure(.outOfRange(kv[0], kv[1], bound)) }
            switch kv[0] {
            case "plug": out.plugAfter = .milliseconds(v)
            case "charge": out.chargeFor = .milliseconds(v)
            default: out.powerW = v
            }
        }
        return .success(out)
    }
}

/// Why a simulated-vehicle setting was refused.
public enum SimulatedEVError: Error, Equatable, CustomStringConvertible {
    /// A field that is not `name=value`.
    case malformed(String)
    /// A name other than plug, charge or power.
    case unknownField(String)
    /// A name given twice.
    case repeated(String)
    /// Not a whole number within 0…bound.
    case outOfRange(String, String, Int64)

    public var description: String {
        switch self {
        case .malformed(let f): return "'\(f)' is not name=value (plug=MS,charge=MS,power=W or none)"
        case .unknownField(let n): return "unknown field '\(n)' (plug, charge, power)"
        case .repeated(let n): return "'\(n)' given twice"
        case let .outOfRange(n, v, bound): return "\(n)=\(v): expected a whole number 0…\(bound)"
        }
    }
}
