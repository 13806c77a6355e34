import Glibc
import Timebase

/// The systemd notification protocol without libsystemd: datagrams to `$NOTIFY_SOCKET`
/// (a path, or an abstract name starting with '@'). READY=1, STATUS=…, WATCHDOG=1 and
/// STOPPING=1 are all the daemon needs.
public final class SystemdNotifier {
    let fd: FileDescriptor
    var address = sockaddr_un()
    let addressLength: socklen_t
    /// Half the watchdog period systemd set (WATCHDOG_USEC), when the watchdog is on for us.
    public let watchdogInterval: Duration?

    /// Nil when the service manager asked for no notifications (`NOTIFY_SOCKET` unset or unusable).
    public init?() {
        guard let raw = getenv("NOTIFY_SOCKET") else { return nil }
        let path = Array(String(cString: raw).utf8)
        guard !path.isEmpty, path.count < MemoryLayout.size(ofValue: address.sun_path) else { return nil }
        let s = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard s >= 0 else { return nil }
        fd = FileDescriptor(rawValue: s)
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { dst in
            for (i, b) in path.enumerated() { dst[i] = b }
            // An abstract socket name starts with a NUL instead of '@'.
            if path[0] == UInt8(ascii: "@") { dst[0] = 0 }
        }
        addressLength = socklen_t(MemoryLayout<sa_family_t>.size + path.count + (path[0] == UInt8(ascii: "@") ? 0 : 1))
        var interval: Duration?
        if let w = getenv("WATCHDOG_USEC"), let usec = UInt64(String(cString: w)), usec > 0 {
            let pidOK = getenv("WATCHDOG_PID").map { pid_t(String(cString: $0)) == getpid() } ?? true
            if pidOK { interval = .microseconds(Int64(usec / 2)) }
        }
        watchdogInterval = interval
    }

    deinit { fd.close() }

    /// Sends one notification ("READY=1", "STATUS=…", several separated by newlines).
    /// Returns false when it could not be sent; notifications are best effort by design.
    @discardableResult
    public func notify(_ state: String) -> Bool {
        let bytes = Array(state.utf8)
        let sent = withUnsafePointer(to: &address) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                bytes.withUnsafeBytes { sendto(fd.rawValue, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL), sa, addressLength) }
            }
        }
        return sent == bytes.count
    }
}
