import Glibc
import Timebase

/// An open file descriptor: a plain integer with typed operations.
///
/// It does not own the descriptor (no `deinit` close); the code that opened
/// it decides when to call `close()`, exactly once.
public struct FileDescriptor: Hashable, Sendable, CustomStringConvertible {
    /// The kernel's descriptor number.
    public let rawValue: Int32

    /// Wraps an existing descriptor number.
    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// The process's standard input.
    public static let standardInput = FileDescriptor(rawValue: STDIN_FILENO)
    /// The process's standard output (the C `stdout` global is off limits in Swift 6).
    public static let standardOutput = FileDescriptor(rawValue: STDOUT_FILENO)
    /// The process's standard error.
    public static let standardError = FileDescriptor(rawValue: STDERR_FILENO)

    /// `"fd N"`, for logs.
    public var description: String { "fd \(rawValue)" }

    /// The outcome of one `read`: non-blocking descriptors make "no data yet"
    /// an ordinary result, distinct from end of file.
    public enum ReadResult: Equatable, Sendable {
        /// This many bytes (at least one) were stored at the start of the buffer.
        case bytes(Int)
        /// Nothing to read now on a non-blocking descriptor (`EAGAIN`).
        case wouldBlock
        /// The writer closed its end.
        case endOfFile
    }

    /// Like `ReadResult`, carrying the bytes; for code where an allocation per read is fine.
    public enum ReadChunk: Equatable, Sendable {
        /// At least one byte.
        case bytes([UInt8])
        /// Nothing to read now on a non-blocking descriptor (`EAGAIN`).
        case wouldBlock
        /// The writer closed its end.
        case endOfFile
    }

    /// Reads at most `buffer.count` bytes.
    ///
    /// A tty or pty whose other side hung up fails with `EIO`; callers treat a
    /// thrown `EIO` as hang-up.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(SystemError) -> ReadResult {
        precondition(buffer.count > 0, "read into an empty buffer cannot tell EOF from no data")
        while true {
            let n = Glibc.read(rawValue, buffer.baseAddress, buffer.count)
            if n > 0 { return .bytes(n) }
            if n == 0 { return .endOfFile }
            let code = Glibc.errno
            switch code {
            case EINTR: continue
            case EAGAIN: return .wouldBlock
            default:
                trapOnBug("read", code)
                throw SystemError(call: "read", errno: code)
            }
        }
    }

    /// Reads at most `maxCount` bytes into a fresh array.
    public func read(maxCount: Int) throws(SystemError) -> ReadChunk {
        var bytes = [UInt8](repeating: 0, count: maxCount)
        // Stdlib `with...` closures are `rethrows`, which erases typed throws; carry the error in a Result.
        let result = try bytes.withUnsafeMutableBytes { buffer in
            Result { () throws(SystemError) in try read(into: buffer) }
        }.get()
        switch result {
        case .bytes(let n):
            bytes.removeSubrange(n...)
            return .bytes(bytes)
        case .wouldBlock: return .wouldBlock
        case .endOfFile: return .endOfFile
        }
    }

    /// Writes what the descriptor accepts now; returns the count, `0` on `EAGAIN`.
    ///
    /// Writing to a socket or pipe whose reader is gone raises `SIGPIPE`; the
    /// daemon ignores it (`Signals.ignore(SIGPIPE)`) so the call fails with `EPIPE`.
    public func write(_ bytes: UnsafeRawBufferPointer) throws(SystemError) -> Int {
        guard bytes.count > 0 else { return 0 }
        while true {
            let n = Glibc.write(rawValue, bytes.baseAddress, bytes.count)
            if n >= 0 { return n }
            let code = Glibc.errno
            switch code {
            case EINTR: continue
            case EAGAIN: return 0
            default:
                trapOnBug("write", code)
                throw SystemError(call: "write", errno: code)
            }
        }
    }

    /// Writes every byte, waiting for `POLLOUT` while a non-blocking descriptor is full.
    ///
    /// Throws `ETIMEDOUT` from `write` if the bytes are not all accepted within
    /// `timeout`; some may have been written by then. A blocking descriptor
    /// blocks in `write` itself and so cannot honour the timeout.
    public func writeAll(_ bytes: [UInt8], timeout: Duration) throws(SystemError) {
        let deadline = MonotonicClock.now() + timeout
        var offset = 0
        try bytes.withUnsafeBytes { all in Result { () throws(SystemError) in
            while offset < all.count {
                let n = try write(UnsafeRawBufferPointer(rebasing: all[offset...]))
                offset += n
                if n > 0 { continue }
                let remaining = deadline - MonotonicClock.now()
                guard remaining > .zero else { throw SystemError(call: "write", errno: ETIMEDOUT) }
                var entry = [pollfd(fd: rawValue, events: Int16(POLLOUT), revents: 0)]
                _ = try Poll.wait(&entry, timeout: remaining)
                // POLLERR/POLLHUP without POLLOUT: the next write reports the real error.
            }
        } }.get()
    }

    /// Closes the descriptor. Never retried: Linux frees the number even when
    /// `close` reports `EINTR`, and by the time of a retry another thread may own it.
    /// Other errors (`EIO` from a device) cannot be acted on and are ignored.
    public func close() {
        if Glibc.close(rawValue) == -1 {
            precondition(Glibc.errno != EBADF, "close: \(rawValue) was not open (double close?)")
        }
    }

    /// Sets `O_NONBLOCK`, so reads and writes return at once and readiness comes from `poll`.
    public func setNonBlocking() throws(SystemError) {
        let flags = try retryingEINTR("fcntl(F_GETFL)") { fcntl(rawValue, F_GETFL) }
        if flags & O_NONBLOCK != 0 { return }
        _ = try retryingEINTR("fcntl(F_SETFL)") { fcntl(rawValue, F_SETFL, flags | O_NONBLOCK) }
    }

    /// Sets `FD_CLOEXEC`, so spawned children (the simulator, helpers) do not inherit it.
    public func setCloseOnExec() throws(SystemError) {
        let flags = try retryingEINTR("fcntl(F_GETFD)") { fcntl(rawValue, F_GETFD) }
        if flags & FD_CLOEXEC != 0 { return }
        _ = try retryingEINTR("fcntl(F_SETFD)") { fcntl(rawValue, F_SETFD, flags | FD_CLOEXEC) }
    }

    /// A pipe whose ends are both close-on-exec and non-blocking.
    public static func pipe() throws(SystemError) -> (read: FileDescriptor, write: FileDescriptor) {
        try pipe(flags: O_CLOEXEC | O_NONBLOCK)
    }

    /// A pipe with the given `pipe2` flags, set atomically at creation.
    static func pipe(flags: Int32) throws(SystemError) -> (read: FileDescriptor, write: FileDescriptor) {
        var ends: [Int32] = [-1, -1]
        _ = try checkingSystemCall("pipe2") { GNUExtensions.pipe2(&ends, flags) }
        return (FileDescriptor(rawValue: ends[0]), FileDescriptor(rawValue: ends[1]))
    }

    /// Opens `path`. `O_CLOEXEC` is always added: this daemon spawns children and
    /// must not leak a serial port or log file into them.
    public static func open(_ path: String, flags: Int32, mode: mode_t = 0o644) throws(SystemError) -> FileDescriptor {
        let fd = try retryingEINTR("open \(path)") { Glibc.open(path, flags | O_CLOEXEC, mode) }
        return FileDescriptor(rawValue: fd)
    }
}
