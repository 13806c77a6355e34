import Glibc
import JSONLines
import Platform
import PSPCodec
import PSPLink
import PSPTerminal
import TerminalSim
import Timebase
import Transport

/// `paybridged --demo` at this stage: the real link driver against the embedded simulated
/// terminal on a real pseudo-terminal, running three representative card sessions. The
/// session decisions (when to commit, when to void) are scripted here; the payment engine
/// that makes them for real arrives with issue 3 and will replace this script.
final class LinkDemo {
    enum Step {
        case say(String)
        case start(amount: UInt32)
        case auth
        case pause(Duration)
        case commit(amount: UInt32)
        case void
    }

    let loop: EventLoop
    let directory: String
    let keep: Bool
    var steps: [Step] = []
    var waiting: ((LinkEvent) -> Bool)?
    var resumeAt: Instant?
    var approvedSession: UInt32?
    var settled = 0, voided = 0, declined = 0, approved = 0
    var failed: String?
    var driver: PSPLinkDriver!
    var sim: SimulatorShell!

    init(loop: EventLoop, directory: String?) throws {
        self.loop = loop
        if let directory {
            mkdir(directory, 0o755)
            self.directory = directory
            keep = true
        } else {
            var template = Array("/tmp/paybridge-demo-XXXXXX".utf8CString)
            guard let p = mkdtemp(&template) else { throw SystemError(call: "mkdtemp", errno: errno) }
            self.directory = String(cString: p)
            keep = false
        }
    }

    func show(_ s: String) { print(s); fflush(nil) }

    func run() throws -> Bool {
        let device = directory + "/ttyPSP"
        var scenario = SimScenario.defaults(for: .apollo)
        scenario.sessions = [ScriptedSession(.approve), ScriptedSession(.decline(reason: 0x09),
                                                                       card: SimCard(maskedPAN: "541333******0434", hash: [1, 2, 3, 4], brand: "MASTERCARD")),
                             ScriptedSession(.approve, card: SimCard(maskedPAN: "374245*****1006", hash: [9, 9, 9, 9], brand: "AMEX"))]
        scenario.tapDelay = 400
        scenario.authDelay = 300
        let record = directory + "/terminal-sim.record.jsonl"
        sim = try SimulatorShell(loop: loop, mode: .pty(link: device), scenario: scenario, record: record)
        sim.readsStandardInput = false
        sim.announce = { [unowned self] line in self.show("  [terminal-sim] \(line)") }
        sim.log = { line in Log.debug("terminal-sim: \(line)") }
        sim.onRecord = { [unowned self] r in self.show("  [terminal-sim record] \(r.text)") }
        try sim.start()

        driver = PSPLinkDriver(loop: loop, endpoint: .serial(path: device, settings: .psp),
                               config: PSPLinkConfig(family: .apollo, transport: .serial))
        driver.onEvent = { [unowned self] e in self.handle(e) }
        show("paybridge demo: the PSP link against a simulated Apollo terminal on \(device)")
        steps = [
            .say("1. Driver A taps a card; the bank approves 50.00; the car charges; 12.34 is captured."),
            .start(amount: 5000), .auth, .pause(.seconds(1)), .commit(amount: 1234),
            .say("2. Driver B taps a card; the bank declines it."),
            .start(amount: 5000), .auth,
            .say("3. Driver C taps a card; it is approved, but the car is never plugged in: the reservation is voided."),
            .start(amount: 5000), .auth, .pause(.seconds(2)), .void,
        ]
        waiting = { if case .up = $0 { return true } else { return false } }
        driver.start()
        let done = try loop.run(until: { [unowned self] in (self.steps.isEmpty && self.waiting == nil && self.resumeAt == nil) || self.failed != nil },
                                deadline: MonotonicClock.now() + .seconds(60))
        if !done && failed == nil { failed = "timed out" }
        driver.stop()
        let open = sim.core.openSessions.count
        show("summary: settled=\(settled) voided=\(voided) declined=\(declined) open=\(open)\(failed.map { " error=\($0)" } ?? "")")
        if keep { show("records kept in \(directory)") } else { unlink(record); unlink(device); rmdir(directory) }
        return failed == nil && open == 0
    }

    func handle(_ e: LinkEvent) {
        let (level, text) = describe(e)
        if level <= .info { show("  [paybridged] \(text)") }
        switch e {
        case .message(.sessionApproved(let id, _)), .message(.sessionPartiallyApproved(let id, _, _)):
            approved += 1
            approvedSession = id
        case .message(.sessionDeclined): declined += 1
        case let .completed(_, .commitSession, outcome):
            if outcome == .result(.ok) { settled += 1 } else { failed = "commit: \(outcome)" }
        case let .completed(_, .voidSession, outcome):
            if outcome == .result(.ok) { voided += 1 } else { failed = "void: \(outcome)" }
        default: break
        }
        if let w = waiting, w(e) {
            waiting = nil
            advance()
        }
    }

    func advance() {
        while waiting == nil, resumeAt == nil, !steps.isEmpty {
            let step = steps.removeFirst()
            switch step {
            case .say(let s): show(s)
            case .start(let amount):
                show("  [demo] reserving \(amount) minor units; waiting for a card")
                driver.submit(.startSession(StartSession(amount: amount, reference: UInt32(approved + declined + 1))))
                waiting = { if case .message(.cardRead) = $0 { return true } else { return false } }
            case .auth:
                driver.submit(.authSession)
                waiting = {
                    switch $0 {
                    case .message(.sessionApproved), .message(.sessionDeclined), .message(.sessionCancelled),
                         .message(.sessionPartiallyApproved): return true
                    default: return false
                    }
                }
            case .pause(let d):
                let at = MonotonicClock.now() + d
                resumeAt = at
                _ = loop.schedule(at: at) { [unowned self] in self.resumeAt = nil; self.advance() }
            case .commit(let amount):
                guard let id = approvedSession else { failed = "no session to commit"; return }
                show("  [demo] capturing \(amount) of session \(id)")
                driver.submit(.commitSession(sessionID: id, amount: amount))
                waiting = { if case .completed(_, .commitSession, _) = $0 { return true } else { return false } }
            case .void:
                guard let id = approvedSession else { failed = "no session to void"; return }
                show("  [demo] voiding session \(id)")
                driver.submit(.voidSession(sessionID: id))
                waiting = { if case .completed(_, .voidSession, _) = $0 { return true } else { return false } }
            }
        }
    }
}
