import Glibc
import Timebase

/// Limits of the log sink.
public enum LogSinkLimits {
    /// Log bytes kept while the destination cannot take them (about 500 ordinary lines).
    /// Beyond it whole lines are dropped and counted rather than waited for: a stalled journald
    /// or a pipe nobody reads must never stall the event loop, and with it payments.
    public static let backlogBytes = 64 * 1024
    /// At exit, how long the sink may wait for a slow destination to take the backlog. The
    /// daemon is stopping anyway, and its last lines (why it stopped) are the ones most read.
    public static let exitFlushTimeout: Duration = .milliseconds(500)
}

/// Log lines a destination could not take yet: bounded, in order, whole lines only. Pure.
///
/// A line is either queued whole or dropped whole, and dropped lines are counted; once there
/// is room again, a notice saying how many were dropped is queued ahead of the next line.
public struct LogBacklog: Equatable, Sendable {
    /// Most bytes queued by `offer`; `keepRest` may add one line beyond it.
    public let capacity: Int
    /// Lines dropped since the last drop notice was queued.
    public private(set) var unreported = 0
    /// Lines dropped since the start, notices or not.
    public private(set) var droppedTotal = 0
    var storage: [UInt8] = []
    var head = 0

    public init(capacity: Int = LogSinkLimits.backlogBytes) { self.capacity = capacity }

    /// The bytes waiting, oldest first.
    public var bytes: ArraySlice<UInt8> { storage[head...] }
    public var count: Int { storage.count - head }
    public var isEmpty: Bool { count == 0 }

    /// Queues a whole line; false when it did not fit and was dropped (counted).
    @discardableResult
    public mutating func offer(_ line: [UInt8]) -> Bool {
        queueDropNotice()
        // While a drop is unreported the notice must come first, so nothing may overtake it.
        guard unreported == 0, count + line.count <= capacity else {
            dropped(1)
            return false
        }
        storage += line
        return true
    }

    /// The rest of a line the destination took only part of. Always kept: dropping it would
    /// join a torn line to whatever is written next.
    public mutating func keepRest(_ rest: ArraySlice<UInt8>) {
        storage += rest
    }

    /// The destination took `n` bytes from the front.
    public mutating func consumed(_ n: Int) {
        head += min(n, count)
        if head == storage.count {
            storage.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 4096, head * 2 >= storage.count {
            // Reclaim the written front now and then, not on every write.
            storage.removeFirst(head)
            head = 0
        }
        queueDropNotice()
    }

    /// The destination failed for good on what is queued (its reader is gone): the lines in it
    /// are counted as dropped and forgotten.
    public mutating func discardAll() {
        let lines = bytes.reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) }
        storage.removeAll(keepingCapacity: true)
        head = 0
        dropped(max(lines, 1))
    }

    /// Lines that were never queued because writing them failed outright.
    public mutating func dropped(_ lines: Int) {
        unreported += lines
        droppedTotal += lines
    }

    mutating func queueDropNotice() {
        guard unreported > 0 else { return }
        let notice = Self.dropNotice(unreported)
        guard count + notice.count <= capacity else { return }
        storage += notice
        unreported = 0
    }

    /// The warning written once there is room again after `lines` were dropped.
    public static func dropNotice(_ lines: Int) -> [UInt8] {
        Array("<4>\(lines) log line\(lines == 1 ? "" : "s") dropped: the log destination was not taking them\n".utf8)
    }
}

/// How the sink reaches standard error, chosen once from what fd 2 is. `O_NONBLOCK` is never
/// set on fd 2 itself: that flag lives on the open file description, which the parent (a
/// shell, systemd, a test runner) shares and would then see EAGAIN on its own writes.
public enum LogDestination: Equatable, Sendable {
    /// A regular file or block device: writes do not stall for a reader, so they block as before.
    case file
    /// A stream socket (journald's stdout stream): `send` with `MSG_DONTWAIT`, per call.
    case socket
    /// A pipe, FIFO or terminal, reopened through `/proc/self/fd/2` with `O_NONBLOCK`: a new open
    /// file description of the same pipe or tty, ours alone.
    case reopened(FileDescriptor)
    /// A pipe or terminal that could not be reopened (no `/proc`): written only when `poll`
    /// says it is writable. A line of up to `PIPE_BUF` bytes then fits; a longer one may wait.
    case pollFirst
    /// Standard error is closed: lines go nowhere.
    case closed
}

/// Standard error for the daemon's log, without ever blocking the loop on a slow reader.
///
/// Lines the destination cannot take now wait in a `LogBacklog` and are written at the next
/// line, or when the event loop (once `attach`ed) sees the destination writable. Lines beyond
/// the backlog are dropped and counted; a notice of how many follows once there is room.
/// One thread: the loop's.
public final class LogSink {
    /// Standard error (another descriptor in tests).
    public let fd: Int32
    public let destination: LogDestination
    public private(set) var backlog = LogBacklog()
    var loop: EventLoop?
    var watch: WatchToken?

    /// Looks at what `fd` (standard error) is and picks the way to write to it.
    public init(fd: Int32 = STDERR_FILENO) {
        self.fd = fd
        destination = Self.destination(for: fd)
    }

    static func destination(for fd: Int32) -> LogDestination {
        var info = stat()
        guard fstat(fd, &info) == 0 else { return .closed }
        switch info.st_mode & S_IFMT {
        case S_IFREG, S_IFBLK: return .file
        case S_IFSOCK: return .socket
        default:
            // A second open of the same pipe or tty; O_NOCTTY so a daemon without a
            // controlling terminal does not acquire one by logging.
            let path = "/proc/self/fd/\(fd)"
            let reopened = Glibc.open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)
            return reopened >= 0 ? .reopened(FileDescriptor(rawValue: reopened)) : .pollFirst
        }
    }

    var writeFD: Int32 {
        if case .reopened(let r) = destination { return r.rawValue }
        return fd
    }

    /// From now on the loop flushes the backlog whenever the destination becomes writable.
    public func attach(to loop: EventLoop) {
        self.loop = loop
        updateWatch()
    }

    /// Writes one whole line (prefix and newline included), or queues it, or drops it.
    public func emit(_ line: [UInt8]) {
        switch destination {
        case .closed: return
        case .file: writeBlocking(line)
        default:
            flush()
            if backlog.isEmpty, backlog.unreported == 0 {
                switch attempt(line[...]) {
                case .wrote(let n): if n < line.count { backlog.keepRest(line[n...]) }
                case .failed: backlog.dropped(1)
                }
            } else {
                backlog.offer(line)
            }
            updateWatch()
        }
    }

    /// Writes as much of the backlog as the destination takes now.
    public func flush() {
        while !backlog.isEmpty {
            switch attempt(backlog.bytes) {
            case .wrote(0): return
            case .wrote(let n): backlog.consumed(n)
            case .failed: backlog.discardAll()
            }
        }
    }

    /// At exit: waits up to `timeout` for the destination to take the backlog.
    public func drain(timeout: Duration) {
        let deadline = MonotonicClock.now() + timeout
        flush()
        while !backlog.isEmpty {
            let left = deadline - MonotonicClock.now()
            guard left > .zero else { return }
            var entry = [pollfd(fd: writeFD, events: Int16(POLLOUT), revents: 0)]
            guard (try? Poll.wait(&entry, timeout: left)) != nil else { return }
            flush()
        }
    }

    enum Attempt { case wrote(Int), failed }

    /// One non-blocking write; `.wrote(0)` when the destination would block.
    func attempt(_ bytes: ArraySlice<UInt8>) -> Attempt {
        if case .pollFirst = destination {
            var entry = [pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)]
            guard (try? Poll.wait(&entry, timeout: .zero)) == 1, entry[0].revents & Int16(POLLOUT) != 0 else { return .wrote(0) }
        }
        while true {
            let n: Int = bytes.withUnsafeBytes { b in
                if case .socket = destination {
                    return send(fd, b.baseAddress, b.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL))
                }
                return Glibc.write(writeFD, b.baseAddress, b.count)
            }
            if n >= 0 { return .wrote(n) }
            switch errno {
            case EINTR: continue
            case EAGAIN: return .wrote(0)
            default: return .failed
            }
        }
    }

    func writeBlocking(_ line: [UInt8]) {
        var off = 0
        while off < line.count {
            let n = line[off...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0 { if errno == EINTR { continue }; return }
            off += n
        }
    }

    func updateWatch() {
        guard let loop else { return }
        if backlog.isEmpty, let w = watch {
            loop.unwatch(w)
            watch = nil
        } else if !backlog.isEmpty, watch == nil {
            watch = loop.watch(FileDescriptor(rawValue: writeFD), read: false, write: true) { [unowned self] _ in
                self.flush()
                self.updateWatch()
            }
        }
    }
}
