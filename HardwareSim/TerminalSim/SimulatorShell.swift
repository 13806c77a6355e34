import Glibc
import JSONLines
import Platform
import PSPCodec
import Timebase

/// Where the simulated terminal's line is.
public enum SimLine: Sendable {
    /// A new pseudo-terminal; with `link`, a stable symlink to it (like a udev name).
    case pty(link: String?)
    /// An existing serial device (a null-modem cable to the host under test).
    case device(String, LineSettings)
    /// A TCP server, like an Apollo on port 3201.
    case tcp(host: String, port: UInt16)
}

/// The simulator's shell: one line to the host at a time, the pure core for everything else.
public final class SimulatorShell {
    public private(set) var core: TerminalSimCore
    let loop: EventLoop
    let mode: SimLine
    var recordFD: FileDescriptor?
    var lineFD: FileDescriptor?
    var pty: PseudoTerminal?
    var lineWatch: WatchToken?
    var listener: TCPListener?
    var unpluggedUntil: Instant?
    lazy var timer = DeadlineTimer(loop: loop) { [unowned self] in
        self.apply(self.core.tick(now: MonotonicClock.now()))
        self.rearm()
    }
    var stdinBuffer: [UInt8] = []
    var stdinWatch: WatchToken?
    let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 1)

    /// Called with "device PATH" or "listening HOST:PORT" when the line is ready (again after a replug).
    public var announce: (String) -> Void = { _ in }
    /// Called with the simulator's log lines.
    public var log: (String) -> Void = { _ in }
    /// Called for each record line (already written to the record file, if any).
    public var onRecord: (JSON) -> Void = { _ in }
    /// Called with the bytes of each write to the host, right after the write returned
    /// (benchmarks time frames with it).
    public var onWrite: ([UInt8]) -> Void = { _ in }
    /// Called with the bytes of each write to the host just before the write is made: the
    /// moment a frame is handed to the line. A benchmark's start must be taken here, not in
    /// `onWrite`: the host woken by the write may run first on a busy CPU, and `onWrite` then
    /// sees its frame only after the host has already acted on it.
    public var beforeWrite: ([UInt8]) -> Void = { _ in }
    /// Called with each read from the host, right after the read returned.
    public var onReceive: ([UInt8]) -> Void = { _ in }
    /// Whether to read operator controls from standard input.
    public var readsStandardInput = true
    /// Exit when standard input reaches end of file: a test harness that dies (and so closes
    /// our stdin pipe) must not leave a simulator behind holding its output open.
    public var exitsWhenStandardInputCloses = false

    public init(loop: EventLoop, mode: SimLine, scenario: SimScenario, record: String?) throws {
        self.loop = loop
        self.mode = mode
        core = TerminalSimCore(scenario: scenario)
        if let record {
            recordFD = try FileDescriptor.open(record, flags: O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, mode: 0o644)
        }
    }

    /// Opens the line (creates the pty, opens the device or listens) and starts serving.
    public func start() throws {
        switch mode {
        case .pty, .device: try plugIn()
        case let .tcp(host, port):
            let l = try TCPListener.listen(host: host, port: port)
            listener = l
            _ = loop.watch(l.fd, read: true, write: false) { [unowned self] _ in self.acceptClient() }
            announce("listening \(host):\(l.port)")
        }
        if readsStandardInput {
            stdinWatch = loop.watch(.standardInput, read: true, write: false) { [unowned self] ev in self.stdinReadable(ev) }
        }
        rearm()
    }

    func plugIn() throws {
        switch mode {
        case .pty(let link):
            let p = try PseudoTerminal.open()
            pty = p
            attach(p.master)
            var shown = p.path
            if let link {
                // Swap the stable name atomically, as udev does for a replugged adapter.
                let tmp = link + ".new"
                unlink(tmp)
                guard symlink(p.path, tmp) == 0, rename(tmp, link) == 0 else { throw SystemError(call: "symlink \(link)", errno: errno) }
                shown = link
            }
            announce("device \(shown)")
        case let .device(path, settings):
            attach(try SerialPort.open(path: path, settings: settings))
            announce("device \(path)")
        case .tcp:
            break
        }
        apply(core.connected(now: MonotonicClock.now()))
    }

    func attach(_ fd: FileDescriptor) {
        lineFD = fd
        lineWatch = loop.watch(fd, read: true, write: false) { [unowned self] ev in self.lineReadable(ev) }
    }

    func unplug() {
        if let w = lineWatch { loop.unwatch(w); lineWatch = nil }
        if let p = pty { p.close(); pty = nil } else if let fd = lineFD {
            if case .device = mode { SerialPort.close(fd) } else { fd.close() }
        }
        lineFD = nil
        if case .pty(let link?) = mode { unlink(link) }
    }

    func acceptClient() {
        guard let l = listener else { return }
        while let fd = try? l.accept() {
            if lineFD != nil || (unpluggedUntil.map { MonotonicClock.now() < $0 } ?? false) {
                // One host at a time, and none while the cable is out.
                fd.close()
                continue
            }
            attach(fd)
            log("host connected")
            apply(core.connected(now: MonotonicClock.now()))
        }
    }

    func lineReadable(_ ev: PollEvents) {
        guard let fd = lineFD else { return }
        do {
            switch try fd.read(into: readBuffer) {
            case .bytes(let n):
                let bytes = Array(UnsafeRawBufferPointer(rebasing: readBuffer[0..<n]))
                onReceive(bytes)
                apply(core.receive(bytes, now: MonotonicClock.now()))
            case .wouldBlock:
                // A pty master reports POLLHUP while no host has the slave open: not a disconnect.
                if ev.contains(.hangUp), case .tcp = mode { hostLeft() }
            case .endOfFile:
                if case .tcp = mode { hostLeft() }
            }
        } catch {
            if case .tcp = mode { hostLeft() }
            // pty master: EIO while the host has the slave closed; poll would spin, so back off.
            else if let w = lineWatch {
                loop.update(w, read: false, write: false)
                _ = loop.schedule(at: MonotonicClock.now() + .milliseconds(50)) { [weak self] in
                    if let self, let w2 = self.lineWatch, w2 == w { self.loop.update(w2, read: true, write: false) }
                }
            }
        }
        rearm()
    }

    func hostLeft() {
        log("host disconnected")
        unplug()
    }

    func stdinReadable(_ ev: PollEvents) {
        let chunk: [UInt8]
        switch (try? FileDescriptor.standardInput.read(maxCount: 1024)) {
        case .bytes(let b)?: chunk = b
        case .wouldBlock?: return
        default:
            // Standard input closed: stop watching it, and stop altogether when asked to.
            if exitsWhenStandardInputCloses { exit(0) }
            if let w = stdinWatch { loop.unwatch(w); stdinWatch = nil }
            return
        }
        stdinBuffer += chunk
        while let nl = stdinBuffer.firstIndex(of: 0x0A) {
            let text = String(decoding: stdinBuffer[..<nl], as: UTF8.self)
            stdinBuffer.removeSubrange(...nl)
            let words = text.split(separator: " ").map(String.init)
            switch words.first {
            case nil: continue
            case "quit": exit(0)
            case "sessions":
                let open = core.openSessions.values.sorted { $0.id < $1.id }
                announce(JSON.object([("openSessions", .array(open.map { .object([("sessionId", .number($0.id)), ("amount", .number($0.authorised))]) }))]).text)
            default:
                apply(core.control(words, now: MonotonicClock.now()))
            }
        }
        rearm()
    }

    func apply(_ effects: [SimEffect]) {
        for e in effects {
            switch e {
            case .write(let b):
                guard let fd = lineFD else { continue }
                beforeWrite(b)
                do { try fd.writeAll(b, timeout: .seconds(2)); onWrite(b) } catch { log("write failed: \(error)") }
            case .record(let r):
                if let fd = recordFD { _ = try? fd.writeAll(Array((r.text + "\n").utf8), timeout: .seconds(2)) }
                onRecord(r)
            case .log(let s): log(s)
            case .disconnect:
                unplug()
            case .unplug(let ms):
                unplug()
                let back = MonotonicClock.now() + .milliseconds(Int64(ms))
                unpluggedUntil = back
                _ = loop.schedule(at: back) { [unowned self] in
                    self.unpluggedUntil = nil
                    if case .tcp = self.mode { return }
                    do { try self.plugIn() } catch { self.log("replug failed: \(error)") }
                    self.rearm()
                }
            }
        }
    }

    func rearm() {
        timer.arm(core.nextDeadline)
    }
}

