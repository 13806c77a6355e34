import Glibc

/// A pseudo-terminal pair: the simulated payment terminal drives `master`, and
/// the daemon opens `path` as if it were a real serial port.
public struct PseudoTerminal: Sendable {
    /// The simulator's side; non-blocking and close-on-exec.
    public let master: FileDescriptor
    /// Held open for the pair's lifetime so the master never sees a hang-up
    /// (and `EIO` on read) while the daemon is between opens of `path`.
    /// Blocking and close-on-exec.
    public let slave: FileDescriptor
    /// The slave's device path, e.g. `/dev/pts/3`.
    public let path: String

    /// Allocates a pair with the slave already in raw mode, so nothing written
    /// to the master before a peer opens `path` is echoed back or translated.
    ///
    /// Equivalent to `openpty`, which cannot set `O_CLOEXEC` atomically: a child
    /// spawned concurrently by another thread would inherit the master, and the
    /// slave would then never see hang-up when we close it.
    public static func open() throws(SystemError) -> PseudoTerminal {
        let master = try FileDescriptor.open("/dev/ptmx", flags: O_RDWR | O_NOCTTY | O_NONBLOCK)
        do {
            let (slave, path) = try openSlave(of: master)
            return PseudoTerminal(master: master, slave: slave, path: path)
        } catch {
            master.close()
            throw error
        }
    }

    /// Closes both sides; a peer that opened `path` then sees hang-up.
    public func close() {
        slave.close()
        master.close()
    }

    private static func openSlave(of master: FileDescriptor) throws(SystemError) -> (FileDescriptor, String) {
        _ = try retryingEINTR("unlockpt") { GNUExtensions.unlockpt(master.rawValue) }
        let path = try slavePath(master)
        let slave = try FileDescriptor.open(path, flags: O_RDWR | O_NOCTTY)
        do {
            var t = try Termios.get(slave)
            Termios.makeRaw(&t)
            try Termios.set(slave, t)
        } catch {
            slave.close()
            throw error
        }
        return (slave, path)
    }

    private static func slavePath(_ master: FileDescriptor) throws(SystemError) -> String {
        var buffer = [CChar](repeating: 0, count: 64)
        let rc = GNUExtensions.ptsname_r(master.rawValue, &buffer, buffer.count)
        guard rc == 0 else { throw SystemError(call: "ptsname_r", errno: rc) }
        return String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
