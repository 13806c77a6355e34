import CGPIO
import Glibc
import Platform
import Timebase

/// One edge the kernel saw on an input line.
public struct GPIOEdge: Equatable, Sendable {
    public init(active: Bool, at: Instant, sequence: UInt32) {
        self.active = active
        self.at = at
        self.sequence = sequence
    }

    /// The logical level after the edge (rising: active).
    public var active: Bool
    /// When the kernel saw it, on `CLOCK_MONOTONIC` (the same clock as `MonotonicClock`).
    public var at: Instant
    /// The kernel's per-line sequence number: a gap means events were dropped (buffer full).
    public var sequence: UInt32
}

/// What the charger port needs of a requested line; `GPIOLine` is the real one, tests bring fakes.
public protocol GPIOLineHandle: AnyObject {
    /// The fd to watch for edges; nil once released.
    var fd: FileDescriptor? { get }
    /// Sets an output's logical level.
    func set(active: Bool) throws(GPIOError)
    /// Reads the logical level.
    func get() throws(GPIOError) -> Bool
    /// The queued edges (empty when none), at most `GPIOLine.maxEventsPerRead`.
    func readEdges() throws(GPIOError) -> [GPIOEdge]
    /// Gives the line back. Idempotent.
    func release()
}

/// A requested line: its own fd (non-blocking), released by `release()` or deinit. Values are
/// logical: with `activeLow` the kernel inverts them.
///
/// Releasing an output gives the line back to the chip's driver: what the pin does then is the
/// chip's and the board's business (gpio-sim returns it to its pull; many SoCs keep driving the
/// last level; some return to an input). That is why a relay output is driven inactive before
/// release, and why the wiring must make "not driven" mean de-energised (see `GPIORelayOutput`).
public final class GPIOLine: GPIOLineHandle {
    /// Events read per `readEdges` call at most (the kernel buffer is `GPIOLineSettings.eventBufferSize`).
    public static let maxEventsPerRead = 16

    public let chip: String
    public let offset: UInt32
    public let settings: GPIOLineSettings
    /// The line's fd, for `EventLoop.watch` (readable when edges are queued); nil once released.
    public private(set) var fd: FileDescriptor?

    init(fd: FileDescriptor, chip: String, offset: UInt32, settings: GPIOLineSettings) {
        self.fd = fd
        self.chip = chip
        self.offset = offset
        self.settings = settings
    }

    deinit { release() }

    /// Gives the line back to the kernel (closes its fd). Idempotent.
    public func release() {
        fd?.close()
        fd = nil
    }

    /// Sets an output's logical level.
    public func set(active: Bool) throws(GPIOError) {
        let fd = try openFD()
        do {
            _ = try retryingEINTR("ioctl GPIO_V2_LINE_SET_VALUES \(chip) line \(offset)") { cgpio_set_value(fd.rawValue, active ? 1 : 0) }
        } catch { throw .system(error) }
    }

    /// Reads the line's logical level (an output reads back what it drives).
    public func get() throws(GPIOError) -> Bool {
        let fd = try openFD()
        var v: Int32 = 0
        do {
            _ = try retryingEINTR("ioctl GPIO_V2_LINE_GET_VALUES \(chip) line \(offset)") { cgpio_get_value(fd.rawValue, &v) }
        } catch { throw .system(error) }
        return v != 0
    }

    /// The edges queued now (empty when none: the fd is non-blocking), oldest first, at most
    /// `maxEventsPerRead`; call again while it returns that many.
    public func readEdges() throws(GPIOError) -> [GPIOEdge] {
        let fd = try openFD()
        let capacity = Self.maxEventsPerRead
        return try withUnsafeTemporaryAllocation(of: gpio_v2_line_event.self, capacity: capacity) { buffer throws(GPIOError) -> [GPIOEdge] in
            let n: Int
            while true {
                let r = cgpio_read_events(fd.rawValue, buffer.baseAddress!, Int32(capacity))
                if r >= 0 { n = Int(r); break }
                let code = Glibc.errno
                if code == EINTR { continue }
                if code == EAGAIN { return [] }
                throw .system(SystemError(call: "read GPIO events \(chip) line \(offset)", errno: code))
            }
            let count = n / MemoryLayout<gpio_v2_line_event>.size
            return (0..<count).map { i in
                let e = buffer[i]
                return GPIOEdge(active: e.id == CGPIO_EVENT_RISING_EDGE, at: Instant(nanoseconds: e.timestamp_ns), sequence: e.line_seqno)
            }
        }
    }

    func openFD() throws(GPIOError) -> FileDescriptor {
        guard let fd else { throw .system(SystemError(call: "GPIO line \(offset) of \(chip) (released)", errno: EBADF)) }
        return fd
    }
}
