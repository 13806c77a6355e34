// terminal-sim: a simulated Payter terminal (P6X or Apollo) on a pty, a serial device or TCP.
import Glibc
import JSONLines
import Platform
import PSPCodec
import TerminalSim
import Timebase

let usage = """
usage: terminal-sim (--pty [--link PATH] | --device PATH [--line "57600 8N1"] | --tcp PORT [--host ADDR])
                    [--family apollo|p6x] [--scenario FILE] [--session SPEC]... [--fallback SPEC]
                    [--fault SPEC]... [--record FILE] [--seed N] [--split] [--no-start-result]
                    [--idle-close MS] [--preamble BYTE] [--magic BYTE] [--tap-delay MS] [--auth-delay MS]

Prints "device PATH" or "listening HOST:PORT" on standard output when ready (again after a replug).
Standard input takes controls: tap | reset | garbage N | unplug MS | sessions | quit.
SPEC strings use the scenario-file syntax, e.g. --session "decline reason=9", --fault "reset on approved 1".
"""

func fail(_ message: String) -> Never {
    let text = "terminal-sim: \(message)\n"
    _ = try? FileDescriptor.standardError.writeAll(Array(text.utf8), timeout: .seconds(1))
    exit(2)
}

func say(_ line: String) {
    _ = try? FileDescriptor.standardOutput.writeAll(Array((line + "\n").utf8), timeout: .seconds(5))
}

func log(_ line: String) {
    _ = try? FileDescriptor.standardError.writeAll(Array("terminal-sim: \(line)\n".utf8), timeout: .seconds(1))
}

enum Mode { case pty(link: String?), device(String, LineSettings), tcp(host: String, port: UInt16) }

/// Parsed command line.
struct Options {
    var mode: Mode
    var scenario: SimScenario
    var record: String?

    static func parse(_ arguments: [String]) -> Options {
        var args = arguments
        var mode: Mode?
        var scenario = SimScenario.defaults(for: .apollo)
        var record: String?
        var linkPath: String?
        var devicePath: String?
        var line = LineSettings.psp
        var tcpHost = "127.0.0.1"
        var tcpPort: UInt16?

        func take(_ flag: String) -> String {
            guard !args.isEmpty else { fail("\(flag) needs a value\n\(usage)") }
            return args.removeFirst()
        }
        func directive(_ words: [String]) {
            do { try ScenarioParser.apply(words, to: &scenario) } catch { fail("\(words.joined(separator: " ")): \(error)") }
        }
        func words(_ s: String) -> [String] { s.split(separator: " ").map(String.init) }

        while !args.isEmpty {
            let a = args.removeFirst()
            switch a {
            case "--pty": mode = .pty(link: nil)
            case "--link": linkPath = take(a)
            case "--device": devicePath = take(a)
            case "--line": guard let l = LineSettings.parse(take(a)) else { fail("bad --line") }; line = l
            case "--tcp": guard let p = UInt16(take(a)) else { fail("bad --tcp port") }; tcpPort = p
            case "--host": tcpHost = take(a)
            case "--family": directive(["family", take(a)])
            case "--scenario":
                let path = take(a)
                guard let f = fopen(path, "r") else { fail("cannot open scenario \(path)") }
                var text = ""
                var buf = [CChar](repeating: 0, count: 4096)
                while fgets(&buf, Int32(buf.count), f) != nil { text += String(cString: buf) }
                fclose(f)
                do { try ScenarioParser.parse(text, into: &scenario) } catch { fail("\(path): \(error)") }
            case "--session": directive(["session"] + words(take(a)))
            case "--fallback": directive(["fallback"] + words(take(a)))
            case "--fault": directive(["fault"] + words(take(a)))
            case "--record": record = take(a)
            case "--seed": directive(["seed", take(a)])
            case "--split": scenario.splitBytes = true
            case "--no-start-result": scenario.startResult = false
            case "--idle-close": directive(["idle-close", take(a)])
            case "--preamble": directive(["preamble", take(a)])
            case "--magic": directive(["magic", take(a)])
            case "--tap-delay": directive(["tap-delay", take(a)])
            case "--auth-delay": directive(["auth-delay", take(a)])
            case "--help", "-h": say(usage); exit(0)
            default: fail("unknown option \(a)\n\(usage)")
            }
        }
        if let devicePath { mode = .device(devicePath, line) }
        if let tcpPort { mode = .tcp(host: tcpHost, port: tcpPort) }
        if case .pty = mode { mode = .pty(link: linkPath) }
        guard let mode else { fail(usage) }
        if case .tcp = mode, scenario.idleCloseMilliseconds == nil, scenario.family == .apollo {
            scenario.idleCloseMilliseconds = 20_000
        }
        return Options(mode: mode, scenario: scenario, record: record)
    }
}

/// The simulator's shell: one line to the host at a time, the pure core for everything else.
final class Simulator {
    var core: TerminalSimCore
    let loop: EventLoop
    let mode: Mode
    var recordFD: FileDescriptor?
    var lineFD: FileDescriptor?
    var pty: PseudoTerminal?
    var lineWatch: WatchToken?
    var listener: TCPListener?
    var unpluggedUntil: Instant?
    var timer: TimerToken?
    var stdinBuffer: [UInt8] = []
    var stdinWatch: WatchToken?
    let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 1)

    init(loop: EventLoop, mode: Mode, scenario: SimScenario, record: String?) throws {
        self.loop = loop
        self.mode = mode
        core = TerminalSimCore(scenario: scenario)
        if let record {
            recordFD = try FileDescriptor.open(record, flags: O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, mode: 0o644)
        }
    }

    func start() throws {
        switch mode {
        case .pty, .device: try plugIn()
        case let .tcp(host, port):
            let l = try TCPListener.listen(host: host, port: port)
            listener = l
            _ = loop.watch(l.fd, read: true, write: false) { [unowned self] _ in self.acceptClient() }
            say("listening \(host):\(l.port)")
        }
        stdinWatch = loop.watch(.standardInput, read: true, write: false) { [unowned self] ev in self.stdinReadable(ev) }
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
                guard symlink(p.path, tmp) == 0, rename(tmp, link) == 0 else { fail("cannot create link \(link)") }
                shown = link
            }
            say("device \(shown)")
        case let .device(path, settings):
            attach(try SerialPort.open(path: path, settings: settings))
            say("device \(path)")
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
                apply(core.receive(Array(UnsafeRawBufferPointer(rebasing: readBuffer[0..<n])), now: MonotonicClock.now()))
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
            // Standard input closed: keep running (tests may close it); stop watching it.
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
                say(JSON.object([("openSessions", .array(open.map { .object([("sessionId", .number($0.id)), ("amount", .number($0.authorised))]) }))]).text)
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
                do { try fd.writeAll(b, timeout: .seconds(2)) } catch { log("write failed: \(error)") }
            case .record(let r):
                if let fd = recordFD { _ = try? fd.writeAll(Array((r.text + "\n").utf8), timeout: .seconds(2)) }
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
                    do { try self.plugIn() } catch { fail("replug: \(error)") }
                    self.rearm()
                }
            }
        }
    }

    func rearm() {
        if let t = timer { loop.cancel(t); timer = nil }
        guard let next = core.nextDeadline else { return }
        let at = max(next, MonotonicClock.now() + .milliseconds(1))
        timer = loop.schedule(at: at) { [unowned self] in
            self.timer = nil
            self.apply(self.core.tick(now: MonotonicClock.now()))
            self.rearm()
        }
    }
}

do {
    try Signals.ignore(SIGPIPE)
    let loop = try EventLoop()
    let options = Options.parse(Array(CommandLine.arguments.dropFirst()))
    let sim = try Simulator(loop: loop, mode: options.mode, scenario: options.scenario, record: options.record)
    try loop.onSignal(SIGTERM) { exit(0) }
    try loop.onSignal(SIGINT) { exit(0) }
    try sim.start()
    try loop.run()
} catch {
    fail("\(error)")
}
