import Glibc
import Platform

/// Every system call the ledger makes, so tests can fail any one of them
/// (the Nth `fdatasync` with `EIO`, a `pwrite` with `ENOSPC` or short) while
/// the rest still reach real files.
///
/// Methods report failure as `SystemError`; the ledger decides what each
/// failure means. Implementations must not retry a failed `fdatasync` or
/// `fsync`: a second call can return 0 after the kernel dropped the data.
public protocol LedgerIO {
    /// `mkdir`; an existing directory is not an error.
    func mkdir(_ path: String) throws(SystemError)
    /// `open` with `O_CLOEXEC` added; `mode` applies when `O_CREAT` creates the file.
    func open(_ path: String, flags: Int32, mode: mode_t) throws(SystemError) -> FileDescriptor
    /// `close`, never retried.
    func close(_ fd: FileDescriptor)
    /// `flock(LOCK_EX | LOCK_NB)`: fails with `EWOULDBLOCK` while another open file description holds it.
    func lockExclusive(_ fd: FileDescriptor) throws(SystemError)
    /// The names in a directory, without `.` and `..`.
    func listDirectory(_ path: String) throws(SystemError) -> [String]
    /// The file's size (`fstat`).
    func fileSize(_ fd: FileDescriptor) throws(SystemError) -> Int
    /// `pread`: up to `buffer.count` bytes at `offset`; 0 at end of file.
    func pread(_ fd: FileDescriptor, into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws(SystemError) -> Int
    /// `pwrite`: how many bytes of `bytes` were written at `offset` (may be fewer).
    func pwrite(_ fd: FileDescriptor, _ bytes: UnsafeRawBufferPointer, at offset: Int) throws(SystemError) -> Int
    /// `fdatasync`: the file's data, and the metadata needed to read it back, are on the device.
    func fdatasync(_ fd: FileDescriptor) throws(SystemError)
    /// `fsync`: used on directories, after creating, renaming or deleting a segment.
    func fsync(_ fd: FileDescriptor) throws(SystemError)
    /// `ftruncate`.
    func ftruncate(_ fd: FileDescriptor, to length: Int) throws(SystemError)
    /// Allocates blocks for `0..<length` (`fallocate` mode 0: the size grows to
    /// `length`, new space reads as zeros).
    func fallocate(_ fd: FileDescriptor, length: Int) throws(SystemError)
    /// Asks the kernel to forget the file's cached pages, so recovery reads what
    /// is on the device rather than pages a failed writeback left marked clean.
    func dropCache(_ fd: FileDescriptor)
    /// `link`: a second name for a file; fails with `EEXIST` if `to` exists.
    func link(_ from: String, _ to: String) throws(SystemError)
    /// `rename`, atomically replacing `to`.
    func rename(_ from: String, _ to: String) throws(SystemError)
    /// `unlink`.
    func unlink(_ path: String) throws(SystemError)
}

/// The ledger's system calls, made for real.
public struct SystemLedgerIO: LedgerIO, Sendable {
    /// Directories and segment files are created readable by the daemon's group only.
    public static let directoryMode: mode_t = 0o750

    public init() {}

    public func mkdir(_ path: String) throws(SystemError) {
        if Glibc.mkdir(path, Self.directoryMode) == -1 {
            let code = Glibc.errno
            if code == EEXIST { return }
            throw SystemError(call: "mkdir \(path)", errno: code)
        }
    }

    public func open(_ path: String, flags: Int32, mode: mode_t) throws(SystemError) -> FileDescriptor {
        // Files (segments, the compaction's temporary) never through a symlink (ELOOP): a planted
        // link would aim the daemon's writes elsewhere. Directories may be reached through one
        // (the state directory may be an administrator's link to another disk); the daemon's own
        // `ledger/` is refused as a symlink by `StateDirectory.prepare` before the ledger opens.
        // FileDescriptor.open adds O_CLOEXEC.
        try FileDescriptor.open(path, flags: flags & O_DIRECTORY != 0 ? flags : flags | O_NOFOLLOW, mode: mode)
    }

    public func close(_ fd: FileDescriptor) { fd.close() }

    public func lockExclusive(_ fd: FileDescriptor) throws(SystemError) {
        // `flock` names both a function and a struct in Glibc; the type picks the function.
        let lock: (Int32, Int32) -> Int32 = Glibc.flock(_:_:)
        _ = try retryingEINTR("flock") { lock(fd.rawValue, LOCK_EX | LOCK_NB) }
    }

    public func listDirectory(_ path: String) throws(SystemError) -> [String] {
        guard let dir = opendir(path) else { throw SystemError(call: "opendir \(path)", errno: Glibc.errno) }
        defer { closedir(dir) }
        var names: [String] = []
        while true {
            Glibc.errno = 0
            guard let entry = readdir(dir) else {
                let code = Glibc.errno
                if code != 0 { throw SystemError(call: "readdir \(path)", errno: code) }
                return names
            }
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                let bytes = raw.prefix { $0 != 0 }
                return String(decoding: bytes, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
    }

    public func fileSize(_ fd: FileDescriptor) throws(SystemError) -> Int {
        var status = stat()
        _ = try retryingEINTR("fstat") { fstat(fd.rawValue, &status) }
        return Int(status.st_size)
    }

    public func pread(_ fd: FileDescriptor, into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws(SystemError) -> Int {
        try retryingEINTR("pread") { Glibc.pread(fd.rawValue, buffer.baseAddress, buffer.count, off_t(offset)) }
    }

    public func pwrite(_ fd: FileDescriptor, _ bytes: UnsafeRawBufferPointer, at offset: Int) throws(SystemError) -> Int {
        try retryingEINTR("pwrite") { Glibc.pwrite(fd.rawValue, bytes.baseAddress, bytes.count, off_t(offset)) }
    }

    // fdatasync and fsync run once: even EINTR is taken as failure, because a
    // sync that may have been cut short cannot be followed by one to trust.
    public func fdatasync(_ fd: FileDescriptor) throws(SystemError) {
        _ = try checkingSystemCall("fdatasync") { Glibc.fdatasync(fd.rawValue) }
    }

    public func fsync(_ fd: FileDescriptor) throws(SystemError) {
        _ = try checkingSystemCall("fsync") { Glibc.fsync(fd.rawValue) }
    }

    public func ftruncate(_ fd: FileDescriptor, to length: Int) throws(SystemError) {
        _ = try retryingEINTR("ftruncate") { Glibc.ftruncate(fd.rawValue, off_t(length)) }
    }

    public func fallocate(_ fd: FileDescriptor, length: Int) throws(SystemError) {
        // posix_fallocate returns the error number instead of setting errno;
        // on ext4 it is fallocate(2) mode 0.
        while true {
            let rc = posix_fallocate(fd.rawValue, 0, off_t(length))
            if rc == 0 { return }
            if rc == EINTR { continue }
            throw SystemError(call: "fallocate", errno: rc)
        }
    }

    public func dropCache(_ fd: FileDescriptor) {
        // Advice only: if it fails, recovery reads the cache, as it would anyway.
        _ = posix_fadvise(fd.rawValue, 0, 0, POSIX_FADV_DONTNEED)
    }

    public func link(_ from: String, _ to: String) throws(SystemError) {
        _ = try retryingEINTR("link \(from) \(to)") { Glibc.link(from, to) }
    }

    public func rename(_ from: String, _ to: String) throws(SystemError) {
        _ = try retryingEINTR("rename \(from) \(to)") { Glibc.rename(from, to) }
    }

    public func unlink(_ path: String) throws(SystemError) {
        _ = try retryingEINTR("unlink \(path)") { Glibc.unlink(path) }
    }
}
