// paybridgectl: the technicians' tool. `decode psp` reads captured terminal traffic; every other
// command asks the running daemon over its socket (docs/diagnostics.md).
import Glibc

let arguments = Array(CommandLine.arguments.dropFirst())
if arguments.first == "decode" { runDecode(Array(arguments.dropFirst())) }
if arguments.isEmpty || ["--help", "-h", "help"].contains(arguments[0]) {
    writeOut(controlUsage)
    writeOut("")
    writeOut(decodeUsage)
    exit(arguments.isEmpty ? ControlExit.usage : 0)
}
exit(runControl(arguments))
