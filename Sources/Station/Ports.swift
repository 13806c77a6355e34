import Glibc
import PaymentEngine
import Platform
import Timebase
import Uplink

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
