import Foundation
import Testing
import Platform

/// The daemon that goes on chargers links no simulated terminal or cloud: those live in
/// `paybridge-demo` (which `paybridged --demo` runs). Checked on the built binaries' symbols.
@Suite struct ShippedDaemon {
    /// Symbols of `binary` whose mangled name contains a module's (`11TerminalSim` is how Swift
    /// writes the module TerminalSim inside a symbol).
    func symbols(of binary: String, module: String) throws -> Int {
        try symbols(of: binary, pattern: "\(module.utf8.count)\(module)")
    }

    /// Symbols of `binary` whose (mangled) name contains `pattern`.
    func symbols(of binary: String, pattern: String) throws -> Int {
        try count("nm \"$0\" | grep -c \"$1\" || true", binary, pattern)
    }

    /// Symbols of `binary` whose demangled name contains `text` (Swift's mangling shares repeated
    /// words, so `SimulatedCharger` is not spelled out in a mangled name); nil without swift-demangle.
    func demangledSymbols(of binary: String, containing text: String) throws -> Int? {
        let tools = ProcessInfo.processInfo.environment["PATH", default: ""].split(separator: ":").map(String.init) + ["/opt/swift/usr/bin"]
        guard let demangle = tools.map({ $0 + "/swift-demangle" }).first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else { return nil }
        return try count("nm \"$0\" | \"$2\" | grep -c \"$1\" || true", binary, text, demangle)
    }

    func count(_ script: String, _ args: String...) throws -> Int {
        let p = try ChildProcess.spawn("/bin/sh", ["-c", script] + args, pipeStdin: false)
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

    /// Nor a simulated charger: `charger.io = simulated` runs the `charger-sim` process, which
    /// the daemon speaks to through the charger line protocol (ChargerLine).
    @Test func paybridgedLinksNoSimulatedCharger() throws {
        let dir = ChildProcess.executableDirectory()
        #expect(try symbols(of: dir + "/paybridged", module: "ChargerSim") == 0, "ChargerSim in paybridged")
        // Found where they are, so the check can fail: the demo (in-process) and charger-sim.
        for binary in ["paybridge-demo", "charger-sim"] {
            #expect(try symbols(of: dir + "/" + binary, module: "ChargerSim") > 0, "ChargerSim not found in \(binary)")
        }
        // The port the daemon talks through instead.
        #expect(try symbols(of: dir + "/paybridged", module: "ChargerLine") > 0, "ChargerLine not found in paybridged")
        // By name too, wherever a simulator type might have been copied to.
        for name in ["SimulatedCharger", "SimulatedEVSettings"] {
            guard let inDaemon = try demangledSymbols(of: dir + "/paybridged", containing: name),
                  let inSim = try demangledSymbols(of: dir + "/charger-sim", containing: name) else { continue }
            #expect(inDaemon == 0, "\(name) in paybridged")
            #expect(inSim > 0, "\(name) not found in charger-sim")
        }
    }
}
