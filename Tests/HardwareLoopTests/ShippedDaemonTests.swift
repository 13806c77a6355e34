import Foundation
import Testing
import Platform

/// The daemon that goes on chargers links no simulated terminal or cloud: those live in
/// `paybridge-demo` (which `paybridged --demo` runs). Checked on the built binaries' symbols.
@Suite struct ShippedDaemon {
    /// Symbols of `binary` whose mangled name contains a module's (`11TerminalSim` is how Swift
    /// writes the module TerminalSim inside a symbol).
    func symbols(of binary: String, module: String) throws -> Int {
        let p = try ChildProcess.spawn("/bin/sh", ["-c", "nm \"$0\" | grep -c \"$1\" || true", binary, "\(module.utf8.count)\(module)"],
                                       pipeStdin: false)
        let line = try p.readLine(timeout: .seconds(60)) ?? ""
        _ = p.wait(timeout: .seconds(10))
        return Int(line.trimmingCharacters(in: .whitespaces)) ?? -1
    }

    @Test func paybridgedLinksNoSimulatedTerminalOrCloud() throws {
        let dir = ChildProcess.executableDirectory()
        for module in ["TerminalSim", "CloudSim"] {
            #expect(try symbols(of: dir + "/paybridged", module: module) == 0, "\(module) in paybridged")
            // The same check finds them where they are, so it can fail.
            #expect(try symbols(of: dir + "/paybridge-demo", module: module) > 0, "\(module) not found in paybridge-demo")
        }
    }
}
