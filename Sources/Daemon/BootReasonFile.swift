import Glibc
import OCPPJ
import Platform

/// Why the next BootNotification says the station booted, kept across the restart it explains:
/// a CSMS's Reset makes the daemon exit for systemd to start it again, and the new process must
/// say `RemoteReset`, not `PowerUp`. One short file in the state directory, written (and
/// fdatasync'd, then renamed into place) before the exit, and removed once a Boot carrying it
/// was accepted; a crash before that acceptance repeats the same reason, which is still true.
/// Anything unreadable in it is ignored (the reason is then `PowerUp`): it explains a restart,
/// it decides nothing about money.
enum BootReasonFile {
    /// The file's name in the state directory.
    static let name = "boot-reason"
    /// Longer than any BootReasonEnumType value; a bigger file is not ours.
    static let maxBytes = 32

    static func path(_ state: String) -> String { state + "/" + name }

    /// The reason the previous process left, if any.
    static func read(state: String) -> BootPayload.Reason? {
        guard let fd = try? FileDescriptor.open(path(state), flags: O_RDONLY | O_NOFOLLOW) else { return nil }
        defer { fd.close() }
        guard case .bytes(let bytes)? = try? fd.read(maxCount: maxBytes + 1), bytes.count <= maxBytes else { return nil }
        var text = Substring(String(decoding: bytes, as: UTF8.self))
        while text.last == "\n" { text = text.dropLast() }
        return BootPayload.Reason(rawValue: String(text))
    }

    /// Leaves `reason` for the next process: durable (file and directory synced) when this returns.
    static func write(_ reason: BootPayload.Reason, state: String) throws(SystemError) {
        let tmp = path(state) + ".tmp"
        let fd = try FileDescriptor.open(tmp, flags: O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, mode: 0o600)
        do {
            try fd.writeAll(Array((reason.rawValue + "\n").utf8), timeout: .seconds(5))
            _ = try retryingEINTR("fdatasync") { fdatasync(fd.rawValue) }
        } catch {
            fd.close()
            unlink(tmp)
            throw error
        }
        fd.close()
        _ = try retryingEINTR("rename") { rename(tmp, path(state)) }
        let dir = try FileDescriptor.open(state, flags: O_RDONLY | O_DIRECTORY)
        defer { dir.close() }
        _ = try retryingEINTR("fsync") { fsync(dir.rawValue) }
    }

    /// Forgets the reason once a Boot carrying it was accepted.
    static func remove(state: String) { unlink(path(state)) }
}
