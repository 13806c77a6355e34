import Glibc
import Timebase

/// Readiness reported to a watch handler.
public struct PollEvents: OptionSet, Hashable, Sendable {
    /// The bit pattern; see the static members.
    public let rawValue: UInt8
    /// Wraps a bit pattern.
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// Data (or end of file) can be read without blocking.
    public static let readable = PollEvents(rawValue: 1 << 0)
    /// A write would accept at least one byte.
    public static let writable = PollEvents(rawValue: 1 << 1)
    /// The peer hung up (`POLLHUP`); reads may still drain buffered data.
    public static let hangUp = PollEvents(rawValue: 1 << 2)
    /// An error is pending (`POLLERR`), or the descriptor is not open (`POLLNVAL`).
    public static let error = PollEvents(rawValue: 1 << 3)

    init(revents: Int16) {
        let r = Int32(revents)
        var events: PollEvents = []
        if r & (POLLIN | POLLPRI) != 0 { events.insert(.readable) }
        if r & POLLOUT != 0 { events.insert(.writable) }
        if r & POLLHUP != 0 { events.insert(.hangUp) }
        if r & (POLLERR | POLLNVAL) != 0 { events.insert(.error) }
        self = events
    }
}

/// Identifies a descriptor watch registered with `EventLoop.watch`.
public struct WatchToken: Hashable, Sendable {
    let id: UInt64
}

/// Identifies a timer registered with `EventLoop.schedule`.
public struct TimerToken: Hashable, Sendable {
    let id: UInt64
}

/// The write end of the loop's wake pipe, for the signal handler: a C signal
/// handler cannot capture context. Set before any handler is installed, so the
/// handler never triggers the global's lazy initialisation.
nonisolated(unsafe) var signalWakeDescriptor: Int32 = -1

/// A single-threaded `poll` loop: descriptor watches, timers on the monotonic
/// clock, and signals delivered as ordinary callbacks on the loop's thread.
///
/// It owns no descriptors but its internal wake pipe: whoever watches a
/// descriptor closes it, after `unwatch`. Handlers run on the thread calling
/// `run`/`runOnce` and may watch, unwatch, schedule and cancel freely; they must
/// not call `run` or `runOnce` themselves. `poll` is level-triggered: a handler
/// that gets `.hangUp` or `.error` must unwatch (or disable) its descriptor, or
/// the loop will spin on it.
public final class EventLoop {
    private struct Watch {
        let token: WatchToken
        let fd: FileDescriptor
        var events: Int16
        let handler: (PollEvents) -> Void
    }

    private let wakeRead: FileDescriptor
    private let wakeWrite: FileDescriptor
    private var watches: [Watch] = []
    private var timers = TimerHeap()
    private var timerHandlers: [UInt64: () -> Void] = [:]
    private var signalHandlers: [Int32: () -> Void] = [:]
    private var previousSignalActions: [Int32: sigaction] = [:]
    private var nextID: UInt64 = 1
    private var stopRequested = false
    private var dispatching = false

    /// Times `poll` has returned, whatever woke it; an idle daemon should keep
    /// this flat rather than waking on a fixed tick.
    public private(set) var wakeUps = 0

    /// Creates a loop with its internal wake pipe.
    public init() throws(SystemError) {
        (wakeRead, wakeWrite) = try FileDescriptor.pipe()
    }

    deinit {
        if signalWakeDescriptor == wakeWrite.rawValue {
            // Stop handlers writing first, so they never hit a reused descriptor number.
            signalWakeDescriptor = -1
            for (signo, var previous) in previousSignalActions {
                _ = sigaction(signo, &previous, nil)
            }
        }
        wakeRead.close()
        wakeWrite.close()
    }

    // MARK: Descriptors

    /// Calls `handler` on the loop thread whenever `fd` is ready for what was
    /// asked; hang-up and error are reported even when neither is asked.
    public func watch(_ fd: FileDescriptor, read: Bool, write: Bool, _ handler: @escaping (PollEvents) -> Void) -> WatchToken {
        let token = WatchToken(id: takeID())
        watches.append(Watch(token: token, fd: fd, events: Self.interest(read: read, write: write), handler: handler))
        return token
    }

    /// Changes what a watch waits for. With neither, the descriptor is left out
    /// of `poll` entirely, so a hung-up descriptor cannot spin a paused watch.
    public func update(_ token: WatchToken, read: Bool, write: Bool) {
        guard let index = watches.firstIndex(where: { $0.token == token }) else { return }
        watches[index].events = Self.interest(read: read, write: write)
    }

    /// Stops watching; the handler is not called again, even for readiness
    /// already collected in the current `runOnce`. Unknown tokens are ignored.
    public func unwatch(_ token: WatchToken) {
        watches.removeAll { $0.token == token }
    }

    /// Removes every watch on `fd`, e.g. before closing it when the tokens are
    /// not at hand. Same guarantees as `unwatch`.
    public func unwatchAll(_ fd: FileDescriptor) {
        watches.removeAll { $0.fd == fd }
    }

    // MARK: Timers

    /// Calls `handler` once on the loop thread at or after `deadline`.
    /// Timers due together fire in deadline order, then in scheduling order.
    public func schedule(at deadline: Instant, _ handler: @escaping () -> Void) -> TimerToken {
        let id = takeID()
        timerHandlers[id] = handler
        timers.push(TimerHeap.Entry(deadline: deadline, id: id))
        return TimerToken(id: id)
    }

    /// Cancels a timer that has not fired; a no-op otherwise.
    public func cancel(_ token: TimerToken) {
        guard timerHandlers.removeValue(forKey: token.id) != nil else { return }
        // Cancelled entries stay in the heap until they surface; purge them when
        // they dominate, e.g. a per-byte inter-character timeout re-armed at 57600 baud.
        if timers.count > 64 && timers.count > 4 * timerHandlers.count {
            timers.removeAll { timerHandlers[$0.id] == nil }
        }
    }

    // MARK: Signals

    /// Runs `handler` on the loop thread after `signo` arrives. The C handler
    /// only writes the signal number to the wake pipe (one async-signal-safe
    /// `write`); several deliveries before the loop wakes run `handler` once,
    /// as POSIX signals coalesce anyway. Only one `EventLoop` per process may
    /// handle signals; the previous dispositions return when it is destroyed.
    public func onSignal(_ signo: Int32, _ handler: @escaping () -> Void) throws(SystemError) {
        precondition(signalWakeDescriptor == -1 || signalWakeDescriptor == wakeWrite.rawValue,
                     "another EventLoop already handles signals")
        precondition(signo > 0 && signo <= UInt8.max, "signal \(signo) does not fit the wake byte")
        signalWakeDescriptor = wakeWrite.rawValue
        signalHandlers[signo] = handler
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { signo in
            let savedErrno = Glibc.errno
            var byte = UInt8(truncatingIfNeeded: signo)
            // Pipe full: the loop is already due to wake; drop rather than block.
            _ = Glibc.write(signalWakeDescriptor, &byte, 1)
            Glibc.errno = savedErrno
        }
        // SA_RESTART spares other threads' blocking calls; poll is never
        // restarted, and the pipe byte wakes the loop regardless.
        action.sa_flags = SA_RESTART
        sigemptyset(&action.sa_mask)
        var previous = sigaction()
        _ = try retryingEINTR("sigaction(\(signo))") { sigaction(signo, &action, &previous) }
        if previousSignalActions[signo] == nil { previousSignalActions[signo] = previous }
        // libdispatch worker threads block signals; make sure at least the
        // loop's own thread can take this one, or it could stay pending forever.
        var unblock = sigset_t()
        sigemptyset(&unblock)
        sigaddset(&unblock, signo)
        let rc = pthread_sigmask(SIG_UNBLOCK, &unblock, nil)
        if rc != 0 { throw SystemError(call: "pthread_sigmask", errno: rc) }
    }

    // MARK: Running

    /// Waits for the first of: a watched descriptor ready, the earliest timer
    /// due, a signal, or `maxWait` (`nil`: no limit). Then runs descriptor and
    /// signal handlers, then every timer that is due.
    public func runOnce(maxWait: Duration?) throws(SystemError) {
        precondition(!dispatching, "EventLoop.runOnce called from inside a handler")
        dispatching = true
        defer { dispatching = false }

        var timeout = maxWait
        if let next = timers.dropToFirst(where: { timerHandlers[$0.id] != nil }) {
            let untilTimer = next.deadline - MonotonicClock.now()
            timeout = min(timeout ?? untilTimer, untilTimer)
        }

        var fds = [pollfd(fd: wakeRead.rawValue, events: Int16(POLLIN), revents: 0)]
        fds.reserveCapacity(watches.count + 1)
        let polled = watches.map(\.token)
        for watch in watches {
            fds.append(pollfd(fd: watch.events == 0 ? -1 : watch.fd.rawValue, events: watch.events, revents: 0))
        }
        let ready = try Poll.wait(&fds, timeout: timeout)
        wakeUps += 1

        if ready > 0 {
            if fds[0].revents != 0 { try dispatchSignals() }
            for (offset, token) in polled.enumerated() where fds[offset + 1].revents != 0 {
                // Looked up afresh: an earlier handler may have unwatched or paused it.
                guard let watch = watches.first(where: { $0.token == token }) else { continue }
                let wanted = fds[offset + 1].revents & (watch.events | Int16(POLLHUP | POLLERR | POLLNVAL))
                if wanted != 0 { watch.handler(PollEvents(revents: wanted)) }
            }
        }
        fireDueTimers()
    }

    /// Runs until `condition` holds (checked before each wait), `stop()` is
    /// called, or `deadline` passes. Returns whether `condition` became true.
    public func run(until condition: () -> Bool, deadline: Instant?) throws(SystemError) -> Bool {
        stopRequested = false
        while true {
            if condition() { return true }
            if stopRequested { return false }
            var maxWait: Duration?
            if let deadline {
                let remaining = deadline - MonotonicClock.now()
                if remaining <= .zero { return false }
                maxWait = remaining
            }
            try runOnce(maxWait: maxWait)
        }
    }

    /// Runs until `stop()` is called.
    public func run() throws(SystemError) {
        _ = try run(until: { false }, deadline: nil)
    }

    /// Makes the current `run` return once the handler calling this finishes.
    public func stop() {
        stopRequested = true
    }

    // MARK: Internals

    private func takeID() -> UInt64 {
        defer { nextID += 1 }
        return nextID
    }

    private static func interest(read: Bool, write: Bool) -> Int16 {
        Int16((read ? POLLIN : 0) | (write ? POLLOUT : 0))
    }

    private func dispatchSignals() throws(SystemError) {
        var arrived: [Int32] = []
        var buffer = (0 as UInt64, 0 as UInt64, 0 as UInt64, 0 as UInt64)
        while true {
            let result = try withUnsafeMutableBytes(of: &buffer) { raw in
                Result { () throws(SystemError) in
                    let outcome = try wakeRead.read(into: raw)
                    if case .bytes(let n) = outcome {
                        for byte in raw.prefix(n) where !arrived.contains(Int32(byte)) { arrived.append(Int32(byte)) }
                    }
                    return outcome
                }
            }.get()
            if case .bytes = result { continue }
            break
        }
        for signo in arrived { signalHandlers[signo]?() }
    }

    private func fireDueTimers() {
        guard !timers.isEmpty else { return }
        let now = MonotonicClock.now()
        // Timers scheduled by these handlers wait for the next pass even if
        // already due, so a handler re-arming itself at `now` cannot starve I/O.
        let firstNewID = nextID
        var postponed: [TimerHeap.Entry] = []
        while let top = timers.peek, top.deadline <= now {
            timers.pop()
            if top.id >= firstNewID {
                postponed.append(top)
            } else if let handler = timerHandlers.removeValue(forKey: top.id) {
                handler()
            }
        }
        for entry in postponed { timers.push(entry) }
    }
}

/// A binary min-heap of timer deadlines, ordered by deadline then by id (so
/// equal deadlines fire in scheduling order).
struct TimerHeap {
    struct Entry {
        let deadline: Instant
        let id: UInt64

        func precedes(_ other: Entry) -> Bool {
            deadline != other.deadline ? deadline < other.deadline : id < other.id
        }
    }

    private var entries: [Entry] = []

    var count: Int { entries.count }
    var isEmpty: Bool { entries.isEmpty }
    var peek: Entry? { entries.first }

    /// Pops entries failing `predicate` (cancelled timers) off the top, and
    /// returns the first that passes, leaving it in place.
    mutating func dropToFirst(where predicate: (Entry) -> Bool) -> Entry? {
        while let top = entries.first {
            if predicate(top) { return top }
            pop()
        }
        return nil
    }

    mutating func push(_ entry: Entry) {
        entries.append(entry)
        var child = entries.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard entries[child].precedes(entries[parent]) else { break }
            entries.swapAt(child, parent)
            child = parent
        }
    }

    @discardableResult
    mutating func pop() -> Entry? {
        guard !entries.isEmpty else { return nil }
        entries.swapAt(0, entries.count - 1)
        let top = entries.removeLast()
        siftDown(from: 0)
        return top
    }

    mutating func removeAll(where predicate: (Entry) -> Bool) {
        entries.removeAll(where: predicate)
        for index in stride(from: entries.count / 2 - 1, through: 0, by: -1) { siftDown(from: index) }
    }

    private mutating func siftDown(from start: Int) {
        var parent = start
        while true {
            let left = 2 * parent + 1, right = left + 1
            var first = parent
            if left < entries.count && entries[left].precedes(entries[first]) { first = left }
            if right < entries.count && entries[right].precedes(entries[first]) { first = right }
            if first == parent { return }
            entries.swapAt(parent, first)
            parent = first
        }
    }
}
