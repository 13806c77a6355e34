import Foundation
import Testing
import Platform
import PSPCodec
import PSPLink
import PSPTerminal
import Timebase
import Transport

/// A real `terminal-sim` process, built next to the test bundle.
final class SimProcess {
    let process: ChildProcess
    let recordPath: String
    /// "device PATH" or "listening HOST:PORT".
    let announcement: String

    init(_ arguments: [String], name: String = #function) throws {
        let dir = ChildProcess.executableDirectory()
        let exe = dir + "/terminal-sim"
        guard FileManager.default.isExecutableFile(atPath: exe) else { throw HarnessError("\(exe) not built") }
        recordPath = FileManager.default.temporaryDirectory.appendingPathComponent("sim-\(UUID().uuidString).jsonl").path
        process = try ChildProcess.spawn(exe, arguments + ["--record", recordPath, "--exit-with-stdin"])
        guard let line = try process.readLine(timeout: .seconds(30)) else { throw HarnessError("terminal-sim said nothing") }
        announcement = line
    }

    deinit {
        process.terminate()
        try? FileManager.default.removeItem(atPath: recordPath)
    }

    var devicePath: String { String(announcement.dropFirst("device ".count)) }
    var port: UInt16 { UInt16(announcement.split(separator: ":").last!)! }

    /// The simulator's own record of what happened, one object per line.
    func records() -> [[String: Any]] {
        guard let text = try? String(contentsOfFile: recordPath, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    func records(_ event: String) -> [[String: Any]] { records().filter { $0["event"] as? String == event } }

    func control(_ line: String) throws { try process.writeLine(line) }
}

struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// The host side: the real link driver on a real event loop, recording every event.
final class Host {
    let loop: EventLoop
    let driver: PSPLinkDriver
    var events: [LinkEvent] = []

    init(_ endpoint: Endpoint, family: TerminalFamily, configure: (inout PSPLinkConfig) -> Void = { _ in }) throws {
        loop = try EventLoop()
        var config = PSPLinkConfig(family: family, transport: { if case .tcp = endpoint { return .tcp } else { return .serial } }())
        // Short timers so recovery happens within a test's patience.
        config.timeouts.keepAlive = .milliseconds(700)
        config.timeouts.general = .seconds(2)
        configure(&config)
        driver = PSPLinkDriver(loop: loop, endpoint: endpoint, config: config,
                               backoff: Backoff(initial: .milliseconds(100), cap: .milliseconds(500)))
        driver.onEvent = { [unowned self] e in self.events.append(e) }
        driver.start()
    }

    deinit {
        driver.onEvent = { _ in }
        driver.stop()
    }

    /// Runs the loop until `condition` holds or `timeout` passes.
    @discardableResult
    func run(timeout: Duration = .seconds(30), until condition: (Host) -> Bool) throws -> Bool {
        try loop.run(until: { condition(self) }, deadline: MonotonicClock.now() + timeout)
    }

    var isUp: Bool { driver.core.phase == .ready }

    func messages() -> [TerminalMessage] { events.compactMap { if case .message(let m) = $0 { return m } else { return nil } } }

    func request(_ c: HostCommand, timeout: Duration = .seconds(30)) throws -> RequestOutcome? {
        let id = driver.submit(c)
        func outcome() -> RequestOutcome? {
            for e in events { if case let .completed(i, _, o) = e, i == id { return o } }
            return nil
        }
        try run(timeout: timeout) { _ in outcome() != nil }
        return outcome()
    }

    /// Start → tap → Auth; returns the session outcome.
    func pay(amount: UInt32) throws -> TerminalMessage? {
        let before = messages().count
        let start = try request(.startSession(StartSession(amount: amount, reference: 42)))
        switch start {
        case .result(let r)? where r.ok: break
        case .assumedAccepted?, .response(.cardRead)?: break
        default: return nil
        }
        try run { h in h.messages().dropFirst(before).contains { if case .cardRead = $0 { return true }; return false } }
        guard case .response(let m)? = try request(.authSession) else { return nil }
        return m
    }
}

/// Polls `condition` every 50 ms until it holds or `timeout` passes; real processes under a
/// loaded CI machine take their time, so tests wait for facts rather than sleep fixed amounts.
@discardableResult
func waitUntil(_ timeout: Duration, _ condition: () -> Bool) -> Bool {
    let deadline = MonotonicClock.now() + timeout
    while !condition() {
        if MonotonicClock.now() >= deadline { return false }
        usleep(50_000)
    }
    return true
}

func fileText(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }

/// Runs the real paybridgectl with `args` (after `launcher`, e.g. setpriv, when given); its exit
/// status and standard output's lines. `lineTimeout`: the longest wait for its next line (a test
/// transaction waits for the card and the bank).
func paybridgectl(_ args: [String], launcher: [String] = [], lineTimeout: Duration = .seconds(20)) throws -> (status: Int32?, out: [String]) {
    let exe = ChildProcess.executableDirectory() + "/paybridgectl"
    let p = launcher.isEmpty ? try ChildProcess.spawn(exe, args, pipeStdin: false)
                             : try ChildProcess.spawn(launcher[0], Array(launcher.dropFirst()) + [exe] + args, pipeStdin: false)
    var out: [String] = []
    while let line = try p.readLine(timeout: lineTimeout) { out.append(line) }
    return (p.wait(timeout: .seconds(10)), out)
}

/// One line of JSON as an object; empty when it is not one.
func jsonObject(_ line: String?) -> [String: Any] {
    guard let line else { return [:] }
    return (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]) ?? [:]
}
