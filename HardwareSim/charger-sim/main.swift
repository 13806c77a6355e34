// charger-sim: the simulated charger (relays with feedback, vehicles that plug in and draw
// energy) as a process of its own, speaking the charger line protocol (docs/charger-line.md) on
// standard input and output. paybridged runs it for `charger.io = simulated`, so that the daemon
// links no simulator.
import ChargerLine
import ChargerSim
import Glibc
import Platform
import Timebase

let usage = """
usage: charger-sim --connectors N [--sim-ev plug=MS,charge=MS,power=W|none] [--relay-history FILE] [--check]

Reads the station's commands on standard input and writes the charger's inputs on standard
output, one JSON object per line (docs/charger-line.md). Exits at the end of standard input
(the station stopped or died), and on SIGTERM, SIGINT, SIGHUP or SIGABRT (systemd's stop and
watchdog), opening every closed relay first and recording that in the relay history.
--check: only check the options (and open the relay history), print "ok" or the problem on
standard output, and exit 0 or 2.
"""

func say(_ line: String) {
    _ = try? FileDescriptor.standardOutput.writeAll(Array((line + "\n").utf8), timeout: .seconds(5))
}

func log(_ line: String) {
    _ = try? FileDescriptor.standardError.writeAll(Array("charger-sim: \(line)\n".utf8), timeout: .seconds(1))
}

/// A refused option, in words.
struct OptionError: Error { var text: String }

struct Options {
    var connectors = 1
    var ev = SimulatedEVSettings()
    var relayHistory: String?
    var check = false

    /// The options, or the problem in words.
    static func parse(_ arguments: [String]) -> Result<Options, OptionError> {
        var o = Options()
        var args = arguments[...]
        while let flag = args.popFirst() {
            switch flag {
            case "--check": o.check = true
            case "--connectors", "--sim-ev", "--relay-history":
                guard let v = args.popFirst() else { return .failure(OptionError(text: "\(flag) needs a value")) }
                switch flag {
                case "--connectors":
                    guard let n = Int(v), (1...8).contains(n) else { return .failure(OptionError(text: "--connectors \(v): expected 1…8")) }
                    o.connectors = n
                case "--sim-ev":
                    switch SimulatedEVSettings.parse(v) {
                    case .success(let s): o.ev = s
                    case .failure(let e): return .failure(OptionError(text: "--sim-ev \(v): \(e)"))
                    }
                default: o.relayHistory = v
                }
            case "--help", "-h":
                print(usage)
                exit(0)
            default: return .failure(OptionError(text: "unknown option \(flag)"))
            }
        }
        return .success(o)
    }
}

let options: Options
switch Options.parse(Array(CommandLine.arguments.dropFirst())) {
case .success(let o): options = o
case .failure(let e):
    // With --check the daemon reads the problem from standard output.
    if CommandLine.arguments.contains("--check") { say(e.text) } else { log(e.text) }
    exit(2)
}

do {
    // Our own ends of the pipes: reads on the loop, writes that fail instead of killing us.
    try Signals.ignore(SIGPIPE)
    let loop = try EventLoop()
    let charger = try SimulatedCharger(loop: loop, connectors: options.connectors, historyPath: options.relayHistory, vehicles: options.ev)
    if options.check {
        say("ok")
        exit(0)
    }
    try FileDescriptor.standardInput.setNonBlocking()
    try FileDescriptor.standardOutput.setNonBlocking()
    charger.onInputs = { inputs in
        let text = inputs.compactMap(ChargerLine.encode).joined()
        do { try FileDescriptor.standardOutput.writeAll(Array(text.utf8), timeout: .seconds(5)) } catch {
            log("the station does not read its inputs (\(error)); exiting")
            exit(1)
        }
    }
    // The rule of every charger I/O: no relay stays closed once the station is gone. A real
    // contactor opens when its drive stops; the simulated one has to be told, on every way out.
    // systemd sends SIGTERM on stop, and on a watchdog timeout SIGABRT to the whole cgroup (then
    // SIGKILL); our parent's SIGKILL reaches us as the end of standard input.
    func leave(_ cause: String, status: Int32) -> Never {
        let opened = charger.openAll(cause: cause)
        if !opened.isEmpty { log("\(cause): opened the relays of connectors \(opened.map(String.init).joined(separator: ", "))") }
        exit(status)
    }
    for (signo, name) in [(SIGTERM, "SIGTERM"), (SIGINT, "SIGINT"), (SIGHUP, "SIGHUP"), (SIGABRT, "SIGABRT")] {
        try loop.onSignal(signo) { leave(name, status: 128 + signo) }
    }
    var splitter = ChargerLineSplitter()
    var malformed = 0
    var lastReport: Instant?
    func take(_ piece: ChargerLineSplitter.Piece) {
        let result: Result<ChargerCommand, ChargerLineError>
        switch piece {
        case .line(let line): result = ChargerLine.decodeCommand(line, connectors: options.connectors)
        case .refused(let e): result = .failure(e)
        }
        switch result {
        case .success(.relay(let c, let closed)): charger.setRelay(connector: c, closed: closed)
        case .success(.show(let c, let offer)): charger.show(connector: c, offer)
        case .failure(let e):
            malformed += 1
            // Counted; said at most once a second.
            let now = MonotonicClock.now()
            if lastReport.map({ now - $0 >= .seconds(1) }) ?? true {
                lastReport = now
                log("malformed command line skipped (\(malformed) so far): \(e)")
            }
        }
    }
    _ = loop.watch(.standardInput, read: true, write: false) { _ in
        while true {
            switch (try? FileDescriptor.standardInput.read(maxCount: 4096)) ?? .endOfFile {
            case .bytes(let bytes): for piece in splitter.feed(bytes) { take(piece) }
            case .wouldBlock: return
            case .endOfFile:
                if let piece = splitter.finish() { take(piece) }
                // The station is gone or done with us: nothing may stay closed behind it.
                leave("end of input", status: 0)
            }
        }
    }
    try loop.run()
} catch {
    log("\(error)")
    exit(1)
}
