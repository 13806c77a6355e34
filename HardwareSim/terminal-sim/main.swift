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
                    [--idle-close MS] [--preamble BYTE] [--magic BYTE] [--protocol-version 1|2|3]
                    [--exit-with-stdin] [--tap-delay MS] [--auth-delay MS]
                    [--serial TEXT] [--firmware TEXT] [--sim-serial TEXT] [--tamper]
                    [--connection-info TEXT]

Prints "device PATH" or "listening HOST:PORT" on standard output when ready (again after a replug).
Standard input takes controls: tap | reset | garbage N | unplug MS | tamper | sessions | quit.
SPEC strings use the scenario-file syntax, e.g. --session "decline reason=9", --fault "reset on approved 1".
--serial, --firmware and --sim-serial replace those fields of the identity the simulator reports
(Request Ids), byte for byte (control characters included), after --family has chosen the layout.
--tamper starts the terminal in its security violation mode (Setup and Enable refused with 0x0E, as
the daemon reads a tampered Apollo [INFERRED]); --fault "tamper on approved 1" or the tamper control
trips it later.
--record FILE appends one JSON object per event (started, cardRead, authSession, approved, declined,
cancelled, committed, voided, updated, rejected, reset, tamper), each with "at": the simulator's
CLOCK_MONOTONIC in nanoseconds.
--connection-info makes an Apollo answer Get Connection Info (0x44) with TEXT, byte for byte (its
layout is undocumented); without it, and on a P6X, the command is refused as unknown (Not OK, 0x02).
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

typealias Mode = SimLine

/// Parsed command line.
struct Options {
    var mode: Mode
    var scenario: SimScenario
    var record: String?
    var exitWithStdin = false

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
        var exitWithStdin = false
        // Applied after everything else: `--family` replaces the whole scenario, identity included.
        var serial: String?, firmware: String?, simSerial: String?, connectionInfo: String?

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
                while fgets(&buf, Int32(buf.count), f) != nil {
                    let bytes = buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
                    text += String(decoding: bytes, as: UTF8.self)
                }
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
            case "--protocol-version": directive(["protocol-version", take(a)])
            case "--exit-with-stdin": exitWithStdin = true
            case "--tap-delay": directive(["tap-delay", take(a)])
            case "--auth-delay": directive(["auth-delay", take(a)])
            case "--serial": serial = take(a)
            case "--firmware": firmware = take(a)
            case "--sim-serial": simSerial = take(a)
            case "--connection-info": connectionInfo = take(a)
            case "--tamper": directive(["tampered", "on"])
            case "--help", "-h": say(usage); exit(0)
            default: fail("unknown option \(a)\n\(usage)")
            }
        }
        if let serial { scenario.identity.serialNumber = serial }
        if let firmware { scenario.identity.firmware = firmware }
        if let simSerial { scenario.identity.simSerial = simSerial }
        if let connectionInfo { scenario.connectionInfo = Array(connectionInfo.utf8) }
        if let devicePath { mode = .device(devicePath, line) }
        if let tcpPort { mode = .tcp(host: tcpHost, port: tcpPort) }
        if case .pty = mode { mode = .pty(link: linkPath) }
        guard let mode else { fail(usage) }
        if case .tcp = mode, scenario.idleCloseMilliseconds == nil, scenario.family == .apollo {
            scenario.idleCloseMilliseconds = 20_000
        }
        return Options(mode: mode, scenario: scenario, record: record, exitWithStdin: exitWithStdin)
    }
}

do {
    try Signals.ignore(SIGPIPE)
    let loop = try EventLoop()
    let options = Options.parse(Array(CommandLine.arguments.dropFirst()))
    let sim = try SimulatorShell(loop: loop, mode: options.mode, scenario: options.scenario, record: options.record)
    sim.announce = say
    sim.log = log
    sim.exitsWhenStandardInputCloses = options.exitWithStdin
    try loop.onSignal(SIGTERM) { exit(0) }
    try loop.onSignal(SIGINT) { exit(0) }
    try sim.start()
    try loop.run()
} catch {
    fail("\(error)")
}
