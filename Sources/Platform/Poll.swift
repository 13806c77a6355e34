import Glibc
import Timebase

/// `poll(2)` with a `Duration` timeout.
public enum Poll {
    /// Waits until a descriptor in `fds` is ready or `timeout` passes (`nil`: forever).
    ///
    /// Returns the number of entries with non-zero `revents`, `0` on timeout.
    /// The timeout is rounded up to whole milliseconds, so a deadline 0.3 ms away
    /// sleeps 1 ms instead of spinning through zero-timeout polls until it passes.
    /// `EINTR` returns `0` instead of retrying: the caller's loop recomputes its
    /// deadlines and may have a signal to handle.
    public static func wait(_ fds: inout [pollfd], timeout: Duration?) throws(SystemError) -> Int {
        let milliseconds = timeout.map(roundedUpMilliseconds) ?? -1
        let n = fds.withUnsafeMutableBufferPointer { Glibc.poll($0.baseAddress, nfds_t($0.count), milliseconds) }
        if n >= 0 { return Int(n) }
        let code = Glibc.errno
        if code == EINTR {
            for i in fds.indices { fds[i].revents = 0 }
            return 0
        }
        trapOnBug("poll", code)
        throw SystemError(call: "poll", errno: code)
    }

    /// Milliseconds for `poll`: negative durations become 0, fractions round up.
    static func roundedUpMilliseconds(_ d: Duration) -> Int32 {
        let ns = d.nanosecondsClamped
        guard ns > 0 else { return 0 }
        return Int32(clamping: ns / 1_000_000 + (ns % 1_000_000 == 0 ? 0 : 1))
    }
}
