import Glibc

/// A failed system call: which call, and the `errno` it left.
///
/// Kept as the raw errno rather than a Swift enum so callers can match the
/// handful of codes they care about (`EIO` as hang-up, `ECONNREFUSED`, ...)
/// without this module having to predict them.
public struct SystemError: Error, Equatable, Hashable, Sendable, CustomStringConvertible {
    /// The call that failed, e.g. `"tcsetattr"`.
    public let call: String
    /// The error number it reported.
    public let errno: Int32

    /// Wraps an error number reported by `call`.
    public init(call: String, errno: Int32) {
        self.call = call
        self.errno = errno
    }

    /// `"call: strerror text (errno N)"`.
    public var description: String {
        "\(call): \(SystemError.message(for: errno)) (errno \(errno))"
    }

    /// Captures the calling thread's current `errno`; call it straight after the failing call.
    static func current(_ call: String) -> SystemError {
        SystemError(call: call, errno: Glibc.errno)
    }

    /// The C library's text for an error number, via the thread-safe XSI `strerror_r`.
    static func message(for errno: Int32) -> String {
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: 128) { buffer -> String in
            guard let base = buffer.baseAddress, strerror_r(errno, base, buffer.count) == 0 else {
                return "Unknown error \(errno)"
            }
            return String(decoding: UnsafeRawBufferPointer(start: base, count: strlen(base)), as: UTF8.self)
        }
    }
}

/// Runs a system call that reports failure as `-1` plus `errno`, retrying on `EINTR`.
///
/// `EBADF` and `EFAULT` mean this process passed a closed descriptor or a bad
/// pointer: continuing could read or write someone else's file, so they trap.
///
/// Never use this for `close()`: on Linux the descriptor is released even when
/// `close` reports `EINTR`, and retrying could close a descriptor another thread
/// has just been handed. Use `FileDescriptor.close()`.
@inlinable
public func retryingEINTR<Result: FixedWidthInteger>(
    _ call: String, _ body: () -> Result
) throws(SystemError) -> Result {
    while true {
        let result = body()
        if result != -1 { return result }
        let code = Glibc.errno
        if code == EINTR { continue }
        trapOnBug(call, code)
        throw SystemError(call: call, errno: code)
    }
}

/// Runs a system call once, without retrying `EINTR`, for calls that must not be
/// restarted blindly (`connect`) or whose callers handle interruption themselves.
@inlinable
public func checkingSystemCall<Result: FixedWidthInteger>(
    _ call: String, _ body: () -> Result
) throws(SystemError) -> Result {
    let result = body()
    if result != -1 { return result }
    let code = Glibc.errno
    trapOnBug(call, code)
    throw SystemError(call: call, errno: code)
}

/// Traps on error numbers that can only come from a programming error here.
@usableFromInline
func trapOnBug(_ call: String, _ code: Int32) {
    precondition(code != EBADF, "\(call): bad file descriptor (use after close?)")
    precondition(code != EFAULT, "\(call): bad address")
}
