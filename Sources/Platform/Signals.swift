import Glibc

/// Process-wide signal dispositions that are not loop callbacks (for those, see `EventLoop.onSignal`).
public enum Signals {
    /// Ignores `signo`. The daemon ignores `SIGPIPE` at startup, so a write to a
    /// TCP peer or pipe that has gone away fails with `EPIPE` instead of killing
    /// the process mid-transaction.
    public static func ignore(_ signo: Int32) throws(SystemError) {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = SIG_IGN
        sigemptyset(&action.sa_mask)
        _ = try retryingEINTR("sigaction(\(signo))") { sigaction(signo, &action, nil) }
    }
}
