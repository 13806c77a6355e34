import Glibc
import OCPPJ
import Platform

/// Why the next BootNotification says the station booted, kept across the restart it explains:
/// a CSMS's Reset makes the daemon exit for systemd to start it again, and the new process must
/// say `RemoteReset`, not `PowerUp`. One short line in the state directory (`SmallStateFile`),
/// written before the exit and removed once a Boot carrying it was accepted; a crash before
/// that acceptance repeats the same reason, which is still true. Anything unreadable in it is
/// ignored (the reason is then `PowerUp`): it explains a restart, it decides nothing about money.
enum BootReasonFile {
    /// The file's name in the state directory.
    static let name = "boot-reason"
    /// Longer than any BootReasonEnumType value; a bigger file is not ours.
    static let maxBytes = 32

    static func path(_ state: String) -> String { state + "/" + name }

    /// The reason the previous process left, if any.
    static func read(state: String) -> BootPayload.Reason? {
        guard let whole = SmallStateFile.read(path(state), maxBytes: maxBytes) else { return nil }
        var text = Substring(whole)
        while text.last == "\n" { text = text.dropLast() }
        return BootPayload.Reason(rawValue: String(text))
    }

    /// Leaves `reason` for the next process: durable when this returns.
    static func write(_ reason: BootPayload.Reason, state: String) throws(SystemError) {
        try SmallStateFile.write(reason.rawValue + "\n", to: path(state), directory: state)
    }

    /// Forgets the reason once a Boot carrying it was accepted.
    static func remove(state: String) { unlink(path(state)) }
}
