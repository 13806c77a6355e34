import Glibc
import Platform
import PSPCodec
import PSPLink
import PSPTerminal
import Timebase

/// What the daemon logs about its terminal: the link's events (`describe`) and the terminal
/// being away and back (`AvailabilityReport`, once per reason).
final class TerminalLog {
    let loop: EventLoop
    let endpoint: String

    init(loop: EventLoop, driver: PSPLinkDriver) {
        self.loop = loop
        endpoint = "\(driver.connection.endpoint)"
        driver.onAvailability = { [unowned self] r in
            let (level, text) = self.text(for: r)
            Log.write(level, text)
        }
    }

    /// Logs one link event. A link that went down is reported by the availability reports
    /// (once per reason), so its event is debug here.
    func log(_ e: LinkEvent) {
        switch e {
        case .down:
            Log.write(.debug, describe(e).1)
        default:
            let (level, text) = describe(e)
            Log.write(level, text)
        }
    }

    /// The daemon is stopping.
    func flush() {}

    func text(for r: AvailabilityReport) -> (LogLevel, String) {
        switch r {
        case .unreachable(let reason):
            return (.warning, "terminal \(endpoint) cannot be opened: \(reason); retrying (logged again only for another reason)")
        case .lost(let reason):
            return (.warning, "terminal link down: \(reason)")
        case .silent(let after):
            return (.warning, "terminal \(endpoint) is open but has not answered bring-up (Synchronize) for \(Self.seconds(after)); still trying")
        case .back(let away):
            return (.info, "terminal link up after \(Self.seconds(away)) away")
        }
    }

    /// "42.3 s".
    static func seconds(_ d: Duration) -> String {
        let tenths = max(0, d.nanosecondsClamped / 100_000_000)
        return "\(tenths / 10).\(tenths % 10) s"
    }
}
