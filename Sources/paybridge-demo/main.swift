// paybridge-demo: the daemon's real link, payment engine, ledger and uplink against an embedded
// simulated terminal, cloud and charger, showing three drivers. `paybridged --demo` runs it; it
// is a program of its own so that the daemon links no simulator.
import DaemonLog
import Glibc
import Platform

let usage = """
usage: paybridge-demo [--demo-dir DIR] [--log-level error|warning|info|debug]

--demo-dir   keep the demo's files (both simulators' records, the relay history, the ledger) in DIR
--log-level  the daemon's log on standard error (default info)
"""

func die(_ message: String) -> Never {
    Log.error("paybridge-demo: \(message)")
    Log.lines(.error, usage)
    exit(2)
}

var directory: String?
var args = Array(CommandLine.arguments.dropFirst())
while !args.isEmpty {
    let flag = args.removeFirst()
    switch flag {
    case "--demo": break   // as paybridged was asked
    case "--demo-dir":
        guard let v = args.first else { die("--demo-dir needs a directory") }
        args.removeFirst()
        directory = v
    case "--log-level":
        guard let v = args.first, let level = LogLevel(name: v) else { die("--log-level takes error, warning, info or debug") }
        args.removeFirst()
        Log.threshold = level
    case "--help", "-h":
        print(usage)
        exit(0)
    default: die("unknown option \(flag)")
    }
}
do {
    try Signals.ignore(SIGPIPE)
    let loop = try EventLoop()
    Log.attach(to: loop)
    let ok = try Demo(loop: loop, directory: directory).run()
    exit(ok ? 0 : 1)
} catch {
    die("\(error)")
}
