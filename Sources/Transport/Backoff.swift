import Timebase

/// Capped exponential backoff for reopening a lost terminal link. Pure: the caller
/// passes a random value in [0, 1) for jitter, so a seed reproduces the schedule.
public struct Backoff: Equatable, Sendable {
    public var initial: Duration
    public var cap: Duration
    /// Fraction of the delay that is randomised, so a field of chargers recovering from one
    /// network outage does not reconnect in lockstep.
    public var jitter: Double
    public private(set) var failures = 0

    public init(initial: Duration = .milliseconds(250), cap: Duration = .seconds(30), jitter: Double = 0.2) {
        self.initial = initial; self.cap = cap; self.jitter = jitter
    }

    /// The delay before the next attempt; counts one more failure.
    public mutating func next(random: Double) -> Duration {
        let base = initial.nanosecondsClamped
        let capped = cap.nanosecondsClamped
        let shift = min(failures, 30)
        failures += 1
        let raw = base > capped >> shift ? capped : min(capped, base << shift)
        let spread = Double(raw) * jitter * random
        return .nanoseconds(Int64(Double(raw) - spread))
    }

    public mutating func reset() { failures = 0 }
}
