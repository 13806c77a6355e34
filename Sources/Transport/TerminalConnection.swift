import Glibc
import Platform
import Timebase

/// Where the terminal is.
public enum Endpoint: Equatable, Sendable, CustomStringConvertible {
    /// A serial device (RS-232 P6X, an Apollo on a USB-C serial adapter, a pty in tests).
    case serial(path: String, settings: LineSettings)
    /// An Apollo on the network (the terminal is the server; port 3201 by default).
    case tcp(host: String, port: UInt16)

    public var description: String {
        switch self {
        case let .serial(path, s): return "\(path) \(s)"
        case let .tcp(host, port): return "\(host):\(port)"
        }
    }
}

/// Limits of the connection layer.
public enum TransportLimits {
    /// One read's worth of bytes; a PSP frame is at most 258 bytes in normal format.
    public static let readChunk = 4096
    /// How long a write may wait for the line before the link is declared broken.
    public static let writeTimeout: Duration = .seconds(2)
    /// Connecting to an Apollo over the LAN: a terminal that does not answer in this time is down.
    public static let connectTimeout: Duration = .seconds(3)
}

/// Counters a technician can read.
public struct ConnectionCounters: Equatable, Sendable {
    public var opens = 0
    public var openFailures = 0
    public var hangUps = 0
    public var bytesIn = 0
    public var bytesOut = 0
}

/// A byte stream to the terminal that reopens itself. Serial and TCP look the same above
/// this: `onUp`, `onBytes`, `onDown`. Hang-ups (EIO, POLLHUP, EOF) and open failures are
/// retried with capped exponential backoff, so an unplugged and replugged terminal resumes
/// without a restart. Runs on the caller's event loop; never blocks on a read.
public final class TerminalConnection {
    public let endpoint: Endpoint
    /// Finds a serial endpoint's device before each open attempt (a USB adapter by its identity,
    /// `terminal.usb`); nil: the endpoint's path. A failure counts as a failed open (retried with
    /// the backoff) with its text as the last error.
    public var resolveSerialPath: (() -> Result<String, PathProblem>)?
    /// The device path the last serial open attempt used.
    public private(set) var currentPath: String?

    /// Why a serial device could not be found, in words.
    public struct PathProblem: Error, Equatable, Sendable {
        public var text: String
        public init(_ text: String) { self.text = text }
    }
    public private(set) var counters = ConnectionCounters()
    public private(set) var isOpen = false
    /// The last reason the connection went down or failed to open, for status displays.
    public private(set) var lastError: String?

    public var onUp: () -> Void = {}
    public var onBytes: (UnsafeRawBufferPointer) -> Void = { _ in }
    public var onDown: (String) -> Void = { _ in }
    /// Every failed attempt to open or connect, with the reason (it is retried after backoff).
    /// Until this existed a terminal that could not be opened was never logged, even at debug.
    public var onOpenFailure: (String) -> Void = { _ in }

    let loop: EventLoop
    var fd: FileDescriptor?
    var watch: WatchToken?
    var retryTimer: TimerToken?
    /// A TCP handshake in progress: its fd (watched for writability) and its deadline timer.
    var connecting: (fd: FileDescriptor, watch: WatchToken, timer: TimerToken)?
    var backoff: Backoff
    var rng: SeededGenerator
    var stopped = true
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: TransportLimits.readChunk, alignment: 1)

    public init(loop: EventLoop, endpoint: Endpoint, backoff: Backoff = Backoff(), seed: UInt64 = 0x7E5D) {
        self.loop = loop
        self.endpoint = endpoint
        self.backoff = backoff
        self.rng = SeededGenerator(seed: seed)
    }

    deinit {
        abandonConnect()
        closeFD()
        buffer.deallocate()
    }

    /// Starts opening; keeps retrying until `stop`.
    public func start() {
        stopped = false
        attemptOpen()
    }

    /// Closes and stops retrying.
    public func stop() {
        stopped = true
        if let t = retryTimer { loop.cancel(t); retryTimer = nil }
        abandonConnect()
        if isOpen { closeFD(); isOpen = false }
    }

    /// Drops the connection and reopens after backoff (the link asked for a reset).
    public func reset(reason: String) {
        guard isOpen else { return }
        wentDown(reason)
    }

    /// Writes a whole frame. A failure takes the connection down; the caller learns through `onDown`.
    public func write(_ bytes: [UInt8]) {
        guard let fd, isOpen else { return }
        do {
            try fd.writeAll(bytes, timeout: TransportLimits.writeTimeout)
            counters.bytesOut += bytes.count
        } catch {
            wentDown("write: \(error)")
        }
    }

    func attemptOpen() {
        retryTimer = nil
        guard !stopped, !isOpen, connecting == nil else { return }
        do {
            switch endpoint {
            case let .serial(configured, settings):
                var path = configured
                if let resolve = resolveSerialPath {
                    // The node is found again for every attempt (a USB adapter's name can change on a replug).
                    switch resolve() {
                    case .success(let found): path = found
                    case .failure(let problem):
                        failedToOpen(problem.text)
                        return
                    }
                }
                currentPath = path
                opened(try SerialPort.open(path: path, settings: settings))
            case let .tcp(host, port):
                // Never wait for a handshake inside the loop: watch for writability instead.
                let (newFD, done) = try TCP.startConnect(host: host, port: port)
                if done { opened(newFD); return }
                let label = "connect \(host) port \(port)"
                let w = loop.watch(newFD, read: false, write: true) { [unowned self] _ in self.handshakeEnded(label) }
                let t = loop.schedule(at: MonotonicClock.now() + TransportLimits.connectTimeout) { [unowned self] in
                    self.abandonConnect()
                    self.failedToOpen("\(label): no answer within \(TransportLimits.connectTimeout)")
                }
                connecting = (newFD, w, t)
            }
        } catch {
            failedToOpen("\(error)")
        }
    }

    func handshakeEnded(_ label: String) {
        guard let c = connecting else { return }
        loop.unwatch(c.watch)
        loop.cancel(c.timer)
        connecting = nil
        do {
            try TCP.finishConnect(c.fd, label: label)
            opened(c.fd)
        } catch {
            c.fd.close()
            failedToOpen("\(error)")
        }
    }

    func abandonConnect() {
        guard let c = connecting else { return }
        loop.unwatch(c.watch)
        loop.cancel(c.timer)
        c.fd.close()
        connecting = nil
    }

    func opened(_ newFD: FileDescriptor) {
        fd = newFD
        isOpen = true
        counters.opens += 1
        backoff.reset()
        lastError = nil
        watch = loop.watch(newFD, read: true, write: false) { [unowned self] ev in self.readable(ev) }
        onUp()
    }

    func failedToOpen(_ reason: String) {
        counters.openFailures += 1
        lastError = reason
        scheduleRetry()
        onOpenFailure(reason)
    }

    func scheduleRetry() {
        guard !stopped else { return }
        let delay = backoff.next(random: rng.nextUnit())
        retryTimer = loop.schedule(at: MonotonicClock.now() + delay) { [unowned self] in self.attemptOpen() }
    }

    func readable(_ ev: PollEvents) {
        guard let fd else { return }
        // Drain what is there; a hang-up with bytes still queued delivers them first.
        while isOpen {
            do {
                switch try fd.read(into: buffer) {
                case .bytes(let n):
                    counters.bytesIn += n
                    onBytes(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
                case .wouldBlock:
                    if ev.contains(.hangUp) || ev.contains(.error) { wentDown("hang-up") }
                    return
                case .endOfFile:
                    wentDown(endpointIsTCP ? "connection closed by the terminal" : "end of file")
                    return
                }
            } catch {
                wentDown(error.errno == EIO ? "hang-up (EIO): device gone" : "\(error)")
                return
            }
        }
    }

    var endpointIsTCP: Bool { if case .tcp = endpoint { return true } else { return false } }

    func wentDown(_ reason: String) {
        guard isOpen else { return }
        counters.hangUps += 1
        lastError = reason
        closeFD()
        isOpen = false
        onDown(reason)
        scheduleRetry()
    }

    func closeFD() {
        if let w = watch { loop.unwatch(w); watch = nil }
        if let fd {
            if case .serial = endpoint { SerialPort.close(fd) } else { fd.close() }
        }
        fd = nil
    }
}
