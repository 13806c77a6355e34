// paybridgectl: the technicians' tool. `decode psp` reads captured terminal traffic; every other
// command asks the running daemon over its socket (docs/diagnostics.md).
import Glibc

let arguments = Array(CommandLine.arguments.dropFirst())

/// Whether the command line asks for help: as the command, among the global options, or right
/// after the command (`paybridgectl status --help`). Not further on: `fault 1 TEXT` and
/// `stop 1 --reason TEXT` take free text, which may be anything.
func asksForHelp(_ args: [String]) -> Bool {
    let help: Set<String> = ["--help", "-h"]
    var i = 0
    while i < args.count, args[i].hasPrefix("-") {
        if help.contains(args[i]) { return true }
        i += args[i] == "--socket" ? 2 : 1
    }
    guard i < args.count else { return false }
    if args[i] == "help" { return true }
    return i + 1 < args.count && help.contains(args[i + 1])
}

if arguments.first == "decode" {
    // `decode --help`, `decode psp --help`: the decoder's own usage.
    if arguments.dropFirst().prefix(2).contains(where: { $0 == "--help" || $0 == "-h" }) { writeOut(decodeUsage); exit(0) }
    runDecode(Array(arguments.dropFirst()))
}
if arguments.isEmpty || asksForHelp(arguments) {
    writeOut(controlUsage)
    writeOut("")
    writeOut(decodeUsage)
    exit(arguments.isEmpty ? ControlExit.usage : 0)
}
exit(runControl(arguments))
