import ChargerPort
import Glibc
import Platform
import Timebase

/// A charger program run as a child of the daemon, speaking the charger line protocol on its
/// standard input and output (HardwareSim's `charger-sim` for `charger.io = simulated`): the
/// daemon links none of it. Its standard error is the daemon's, so its diagnostics reach the log.
///
/// The child exits when its standard input ends, so a daemon that dies (even by SIGKILL) leaves
/// no charger process behind; `stop()` closes it, waits briefly, then kills and reaps.
public final class ChargerProcess {
    public let port: LineChargerPort
    let child: ChildProcess
    /// The stream is gone (the child died or stopped reading), with why and, when it has ended,
    /// its exit status. Called once, on the loop, before the connectors' faults.
    public var onLost: (String) -> Void = { _ in }

    /// How long a lost child is waited for, to name its exit status in the report.
    public static let reapWait: Duration = .milliseconds(200)

    public var pid: pid_t { child.pid }

    public init(loop: EventLoop, path: String, arguments: [String], connectors: Int) throws(SystemError) {
        child = try ChildProcess.spawn(path, arguments)
        let name = "\(path.split(separator: "/").last.map(String.init) ?? path) (pid \(child.pid))"
        // Both of our ends are non-blocking (ChildProcess makes them so).
        port = LineChargerPort(loop: loop, connectors: connectors, input: child.stdoutFD!, output: child.stdinFD!, name: name)
        port.onLost = { [unowned self] reason in
            let status = self.child.wait(timeout: Self.reapWait)
            self.onLost(reason + (status.map { "; " + Self.describe(status: $0) } ?? "; still running, killed") )
            if status == nil { self.child.terminate() }
        }
        port.start()
    }

    /// Stops the port (the last commands written first), closes the child's standard input and
    /// reaps it: it exits by itself at end of input; if it has not within a second it is
    /// sent SIGTERM, then SIGKILL.
    public func stop() {
        port.stop()
        child.closeStdin()
        if child.wait(timeout: .seconds(1)) == nil { child.terminate() }
    }

    /// An exit status as a shell reports it, in words.
    static func describe(status: Int32) -> String {
        status > 128 ? "killed by signal \(status - 128)" : "exit status \(status)"
    }
}
