import Foundation
import Testing
import Platform

/// The README's main command: the demo must run to its summary with nothing left open, and
/// keep the simulators' records when asked to.
@Suite(.serialized) struct Demo {
    @Test func demoSettlesVoidsDeclinesAndLeavesNothingOpen() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("demo-\(UUID().uuidString.prefix(8))").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let p = try ChildProcess.spawn(ChildProcess.executableDirectory() + "/paybridged", ["--demo", "--demo-dir", dir], pipeStdin: false)
        var lines: [String] = []
        while let l = try p.readLine(timeout: .seconds(90)) { lines.append(l) }
        #expect(p.wait(timeout: .seconds(10)) == 0, "\(lines.suffix(5))")
        let summary = lines.first { $0.hasPrefix("summary:") } ?? ""
        #expect(summary.contains("settled=1 voided=1 declined=1 open=0"), "\(summary)")
        let terminal = fileText(dir + "/terminal-sim.record.jsonl")
        #expect(terminal.contains("\"event\":\"committed\"") && terminal.contains("\"event\":\"voided\"") && terminal.contains("\"event\":\"declined\""))
        let cloud = fileText(dir + "/cloud-sim.record.jsonl")
        #expect(cloud.contains("\"action\":\"NotifySettlement\""))
        #expect(FileManager.default.fileExists(atPath: dir + "/ledger"))
        // Cards appear masked only (first 6, last 4).
        #expect(lines.contains { $0.contains("476173******0119") })
    }
}
