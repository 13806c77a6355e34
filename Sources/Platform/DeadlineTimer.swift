import Timebase

/// One event-loop timer kept at the earliest of a pure core's deadlines: the shell asks the core
/// (`nextDeadline`) after every input and calls `arm`, and the loop timer is rescheduled only
/// when that instant moves, so a busy link or station does not churn the loop's timer heap.
///
/// A deadline at or before now is scheduled `minimumDelay` ahead: a core that reports a deadline
/// and then fails to consume it in `tick` would otherwise make the loop spin on it.
public final class DeadlineTimer {
    /// How far ahead of now a due (or past) deadline is scheduled.
    public static let minimumDelay: Duration = .milliseconds(1)

    /// The deadline the loop timer stands for (before the minimum delay); nil when none is armed.
    public private(set) var deadline: Instant?
    /// Called on the loop thread once the deadline is reached; the timer is disarmed first, so
    /// the handler re-arms it (usually by asking the core again after its `tick`).
    public var onFire: () -> Void

    private let loop: EventLoop
    private var token: TimerToken?

    public init(loop: EventLoop, onFire: @escaping () -> Void = {}) {
        self.loop = loop
        self.onFire = onFire
    }

    deinit {
        if let token { loop.cancel(token) }
    }

    /// Keeps the loop timer at `deadline` (none when nil); a no-op when it is already there.
    public func arm(_ deadline: Instant?) {
        guard deadline != self.deadline else { return }
        if let token { loop.cancel(token) }
        token = nil
        self.deadline = deadline
        guard let deadline else { return }
        token = loop.schedule(at: max(deadline, MonotonicClock.now() + Self.minimumDelay)) { [unowned self] in
            self.token = nil
            self.deadline = nil
            self.onFire()
        }
    }

    /// Keeps the loop timer at the earliest of `deadlines` that are not nil (none when all are).
    public func arm(earliestOf deadlines: Instant?...) {
        arm(deadlines.compactMap { $0 }.min())
    }

    /// No timer until the next `arm`.
    public func disarm() { arm(nil) }
}
