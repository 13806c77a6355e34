// paybridged: bridges the charger's card terminal to the charging platform.
//
// At this stage (issue 2) the daemon runs the PSP link: it brings the terminal up, keeps it
// alive, recovers from unplugs, resets and dropped connections, and logs what the terminal
// reports. The payment engine, ledger, uplink and configuration file come with issues 3-5.
import Glibc
import Platform
import PSPCodec
import PSPLink
import PSPTerminal
import TerminalSim
import Timebase
import Transport

let usage = """
usage: paybridged --terminal serial:PATH[,BAUD 8N1] | tcp:HOST[:PORT] [--family apollo|p6x] [--log-level LEVEL]
       paybridged --demo [--demo-dir DIR] [--log-level LEVEL]

--terminal   where the payment terminal is (serial device, or an Apollo on TCP port 3201 by default)
--family     apollo (default) or p6x
--demo       run against an embedded simulated terminal on a pseudo-terminal and show a few sessions
--demo-dir   keep the demo's files (the simulator's record) in DIR
--log-level  error, warning, info (default) or debug
"""

func die(_ message: String) -> Never {
    Log.error("paybridged: \(message)")
    exit(2)
}

struct Arguments {
    var endpoint: Endpoint?
    var family = TerminalFamily.apollo
    var demo = false
    var demoDir: String?

    static func parse(_ list: [String]) -> Arguments {
        var a = Arguments()
        var args = list
        func value(_ flag: String) -> String {
            guard !args.isEmpty else { die("\(flag) needs a value\n\(usage)") }
            return args.removeFirst()
        }
        while !args.isEmpty {
            let flag = args.removeFirst()
            switch flag {
            case "--terminal": a.endpoint = parseEndpoint(value(flag))
            case "--family":
                guard let f = TerminalFamily(rawValue: value(flag)) else { die("--family is apollo or p6x") }
                a.family = f
            case "--demo": a.demo = true
            case "--demo-dir": a.demoDir = value(flag); a.demo = true
            case "--log-level":
                guard let l = LogLevel(name: value(flag)) else { die("--log-level is error, warning, info or debug") }
                Log.threshold = l
            case "--help", "-h":
                print(usage)
                exit(0)
            default: die("unknown option \(flag)\n\(usage)")
            }
        }
        return a
    }

    static func parseEndpoint(_ s: String) -> Endpoint {
        if s.hasPrefix("serial:") {
            let rest = s.dropFirst("serial:".count)
            let parts = rest.split(separator: ",", maxSplits: 1).map(String.init)
            guard let path = parts.first, !path.isEmpty else { die("serial endpoint needs a device path") }
            var settings = LineSettings.psp
            if parts.count == 2 {
                guard let l = LineSettings.parse(parts[1]) else { die("bad line settings '\(parts[1])' (e.g. 57600 8N1)") }
                settings = l
            }
            return .serial(path: path, settings: settings)
        }
        if s.hasPrefix("tcp:") {
            let parts = s.dropFirst("tcp:".count).split(separator: ":").map(String.init)
            guard let host = parts.first, !host.isEmpty else { die("tcp endpoint needs a host") }
            var port: UInt16 = 3201
            if parts.count == 2 {
                guard let p = UInt16(parts[1]), p > 0 else { die("bad TCP port '\(parts[1])'") }
                port = p
            }
            return .tcp(host: host, port: port)
        }
        die("terminal must be serial:PATH or tcp:HOST[:PORT]")
    }
}

/// Log lines for link events; card data only as the codec's masked form.
func describe(_ e: LinkEvent) -> (LogLevel, String) {
    switch e {
    case .up: return (.info, "terminal link up: ENABLED")
    case .down(let reason): return (.warning, "terminal link down: \(reason)")
    case .terminalReset: return (.warning, "terminal reset: PSP state lost, bringing the link up again")
    case .terminalState(let s): return (.debug, "terminal state \(s)")
    case .identity(let id):
        var parts = ["serial \(id.serialNumber)"]
        if let m = id.model { parts.append("model \(m)") }
        if let f = id.firmware { parts.append("firmware \(f)") }
        if let sim = id.simSerial { parts.append("SIM \(sim)") }
        return (.info, "terminal identity: " + parts.joined(separator: ", "))
    case let .completed(id, cmd, outcome): return (.debug, "request \(id) \(cmd.name): \(outcome)")
    case .message(let m):
        switch m {
        case .cardRead(let dol), .propCardRead(let dol):
            let c = CardData(dol: dol)
            return (.info, "card read: \(c.maskedPAN ?? "no PAN")\(c.brand.map { " \($0)" } ?? "")")
        case let .sessionApproved(id, _): return (.info, "session \(id) approved")
        case let .sessionPartiallyApproved(id, amount, _): return (.info, "session \(id) partially approved for \(amount)")
        case .sessionDeclined(let r, _): return (.info, "session declined\(r.map { ": \(DeclineReason.name($0))" } ?? "")")
        case .sessionCancelled: return (.info, "session cancelled")
        default: return (.debug, "terminal: \(m.name)")
        }
    case let .malformed(kind, n): return (.warning, "discarded \(n) bytes from the terminal (\(kind.rawValue))")
    case let .undecodable(h, err): return (.warning, "undecodable frame 0x\(String(h, radix: 16)): \(err)")
    }
}

let arguments = Arguments.parse(Array(CommandLine.arguments.dropFirst()))
do {
    try Signals.ignore(SIGPIPE)
    let loop = try EventLoop()
    if arguments.demo {
        let ok = try LinkDemo(loop: loop, directory: arguments.demoDir).run()
        exit(ok ? 0 : 1)
    }
    guard let endpoint = arguments.endpoint else { die("no terminal given\n\(usage)") }
    let transport: LinkTransportKind = { if case .tcp = endpoint { return .tcp } else { return .serial } }()
    let driver = PSPLinkDriver(loop: loop, endpoint: endpoint, config: PSPLinkConfig(family: arguments.family, transport: transport))
    driver.onEvent = { e in let (level, text) = describe(e); Log.write(level, text) }
    try loop.onSignal(SIGTERM) { Log.info("stopping"); loop.stop() }
    try loop.onSignal(SIGINT) { Log.info("stopping"); loop.stop() }
    Log.info("paybridged: terminal \(endpoint) (\(arguments.family.rawValue))")
    driver.start()
    try loop.run()
    driver.stop()
} catch {
    die("\(error)")
}
