import Glibc
import Platform

/// A few bytes of daemon state kept across a restart (the boot reason, the CSMS's settings):
/// written whole to a temporary file beside it, fdatasync'd, renamed into place and the
/// directory fsync'd, so a reader finds the old text or the new, never a mix or nothing.
enum SmallStateFile {
    /// The text at `path`, or nil when it is missing, unreadable or larger than `maxBytes`
    /// (such a file is not ours to trust).
    static func read(_ path: String, maxBytes: Int) -> String? {
        guard let fd = try? FileDescriptor.open(path, flags: O_RDONLY | O_NOFOLLOW) else { return nil }
        defer { fd.close() }
        var bytes: [UInt8] = []
        while bytes.count <= maxBytes {
            guard case .bytes(let chunk)? = try? fd.read(maxCount: maxBytes + 1 - bytes.count) else { break }
            bytes += chunk
        }
        guard bytes.count <= maxBytes else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Replaces the file at `path` (in `directory`) with `text`: durable when this returns.
    static func write(_ text: String, to path: String, directory: String) throws(SystemError) {
        let tmp = path + ".tmp"
        let fd = try FileDescriptor.open(tmp, flags: O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, mode: 0o600)
        do {
            try fd.writeAll(Array(text.utf8), timeout: .seconds(5))
            _ = try retryingEINTR("fdatasync \(tmp)") { fdatasync(fd.rawValue) }
        } catch {
            fd.close()
            unlink(tmp)
            throw error
        }
        fd.close()
        _ = try retryingEINTR("rename \(tmp)") { rename(tmp, path) }
        let dir = try FileDescriptor.open(directory, flags: O_RDONLY | O_DIRECTORY)
        defer { dir.close() }
        _ = try retryingEINTR("fsync \(directory)") { fsync(dir.rawValue) }
    }
}
