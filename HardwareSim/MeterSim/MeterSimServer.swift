import Glibc
import ModbusRTU
import Platform
import Timebase

/// Serves a `MeterSimCore` on a file descriptor (a pty's master, or a serial device) on the event
/// loop: the same silence framer as the client, and an answer written for each request.
public final class MeterSimServer {
    /// The simulated meters and their faults.
    public var core: MeterSimCore
    /// The descriptor served; the server does not close it.
    public let fd: FileDescriptor
    /// The framer (its counters show garbage the client sent).
    public private(set) var framer: ModbusFramer
    /// Called when the descriptor hangs up or fails (the server stops watching it).
    public var onClosed: (String) -> Void = { _ in }

    let loop: EventLoop
    var watch: WatchToken?
    lazy var timer = DeadlineTimer(loop: loop) { [unowned self] in self.frameEnded(at: MonotonicClock.now()) }

    /// A server for `core` on `fd` (non-blocking), with the line's frame silence.
    public init(loop: EventLoop, fd: FileDescriptor, core: MeterSimCore, timing: ModbusTiming) {
        self.loop = loop
        self.fd = fd
        self.core = core
        self.framer = ModbusFramer(silence: timing.frameSilence)
    }

    /// Starts answering.
    public func start() {
        watch = loop.watch(fd, read: true, write: false) { [unowned self] ev in self.readable(ev) }
    }

    /// Stops answering.
    public func stop() {
        if let w = watch { loop.unwatch(w) }
        watch = nil
        timer.disarm()
    }

    /// A control command, now.
    public func command(_ line: String) -> Result<String, MeterSimCommandError> {
        core.command(line, now: MonotonicClock.now())
    }

    func readable(_ ev: PollEvents) {
        var buffer = [UInt8](repeating: 0, count: 512)
        while true {
            let attempt = buffer.withUnsafeMutableBytes { raw in
                Result { () throws(SystemError) in try fd.read(into: raw) }
            }
            let result: FileDescriptor.ReadResult
            switch attempt {
            case .success(let r): result = r
            case .failure(let error):
                // A pty master reads EIO while no one has the slave open: not an end, just idle.
                if error.errno == EIO { return }
                stop()
                onClosed("\(error)")
                return
            }
            switch result {
            case .bytes(let n):
                let now = MonotonicClock.now()
                if let frame = framer.receive(buffer[0..<n], at: now) { answer(frame, now: now) }
                timer.arm(framer.nextDeadline)
            case .wouldBlock:
                return
            case .endOfFile:
                stop()
                onClosed("end of file")
                return
            }
        }
    }

    func frameEnded(at now: Instant) {
        if let frame = framer.tick(now: now) { answer(frame, now: now) }
        timer.arm(framer.nextDeadline)
    }

    func answer(_ frame: [UInt8], now: Instant) {
        guard let reply = core.handle(frame: frame, now: now) else { return }
        _ = try? fd.writeAll(reply, timeout: .seconds(1))
    }
}
