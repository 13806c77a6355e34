import Glibc
import Timebase

/// The monotonic clock: never jumps with NTP or manual time changes, so every
/// timeout and deadline in the daemon is measured on it.
public enum MonotonicClock {
    /// The current instant. `CLOCK_MONOTONIC` stops during suspend, which is what
    /// protocol timeouts want (a suspended charger has sent nothing).
    public static func now() -> Instant {
        var ts = timespec()
        let rc = clock_gettime(CLOCK_MONOTONIC, &ts)
        precondition(rc == 0, "clock_gettime(CLOCK_MONOTONIC) cannot fail on Linux")
        return Instant(nanoseconds: UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec))
    }
}

/// Wall-clock time, for timestamps in logs and receipts only; never for timeouts.
public enum WallClock {
    /// Milliseconds since 1970-01-01T00:00:00Z (`CLOCK_REALTIME`; may jump).
    public static func nowMillisecondsSinceEpoch() -> Int64 {
        var ts = timespec()
        let rc = clock_gettime(CLOCK_REALTIME, &ts)
        precondition(rc == 0, "clock_gettime(CLOCK_REALTIME) cannot fail on Linux")
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }
}
