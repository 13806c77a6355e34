/// A point on a monotonic clock, in nanoseconds since an arbitrary origin.
///
/// Pure value: nothing in this module reads a clock. The shell reads the
/// monotonic clock (`Platform.MonotonicClock`) and passes instants in, so the
/// protocol cores run unchanged under a simulated clock in tests.
public struct Instant: Comparable, Hashable, Sendable, CustomStringConvertible {
    /// Nanoseconds since the clock's origin.
    public var nanoseconds: UInt64

    public init(nanoseconds: UInt64) { self.nanoseconds = nanoseconds }

    /// The clock's origin; handy for simulated clocks.
    public static let zero = Instant(nanoseconds: 0)

    /// Milliseconds since the origin, rounded down.
    public var milliseconds: UInt64 { nanoseconds / 1_000_000 }

    public static func < (a: Instant, b: Instant) -> Bool { a.nanoseconds < b.nanoseconds }

    /// This instant moved forward by `d`; negative durations move back, saturating at zero.
    public func advanced(by d: Duration) -> Instant {
        let delta = d.nanosecondsClamped
        if delta >= 0 {
            let (sum, overflow) = nanoseconds.addingReportingOverflow(UInt64(delta))
            return Instant(nanoseconds: overflow ? .max : sum)
        }
        let back = UInt64(-delta)
        return Instant(nanoseconds: nanoseconds > back ? nanoseconds - back : 0)
    }

    public static func + (a: Instant, d: Duration) -> Instant { a.advanced(by: d) }

    /// The time from `b` to `a`; negative when `a` is earlier.
    public static func - (a: Instant, b: Instant) -> Duration {
        if a.nanoseconds >= b.nanoseconds {
            return .nanoseconds(Int64(clamping: a.nanoseconds - b.nanoseconds))
        }
        return .nanoseconds(-Int64(clamping: b.nanoseconds - a.nanoseconds))
    }

    public var description: String { "t+\(milliseconds)ms" }
}

extension Duration {
    /// Whole nanoseconds, clamped to Int64 (about ±292 years).
    public var nanosecondsClamped: Int64 {
        let (s, atto) = components
        let (ns, o1) = s.multipliedReportingOverflow(by: 1_000_000_000)
        if o1 { return s < 0 ? .min : .max }
        let (sum, o2) = ns.addingReportingOverflow(atto / 1_000_000_000)
        if o2 { return s < 0 ? .min : .max }
        return sum
    }

    /// Whole milliseconds, rounded toward zero and clamped.
    public var millisecondsClamped: Int64 { nanosecondsClamped / 1_000_000 }
}
