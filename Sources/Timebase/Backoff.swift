/// Capped exponential backoff with jitter, for reopening a lost terminal link and for the
/// uplink's retries. Pure: the caller passes a random value in [0, 1) for jitter, so a seed
/// reproduces the schedule.
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
        defer { failures += 1 }
        return Backoff.delay(failures: failures, initial: initial, cap: cap, jitter: jitter, random: random)
    }

    /// The delay after `failures` earlier failures: `initial` doubled that many times, at most
    /// `cap`, less up to `jitter` of it (`random` in [0, 1)).
    public static func delay(failures: Int, initial: Duration, cap: Duration, jitter: Double, random: Double) -> Duration {
        let base = initial.nanosecondsClamped
        let capped = cap.nanosecondsClamped
        let shift = min(max(failures, 0), 30)
        let raw = base > capped >> shift ? capped : min(capped, base << shift)
        return .nanoseconds(Int64(Double(raw) - Double(raw) * jitter * random))
    }

    public mutating func reset() { failures = 0 }
}
