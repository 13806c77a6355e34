import Foundation
import Glibc
import Testing
import Platform
import Timebase

/// The real daemon's log under hostile or broken input (issue 11 items 3, 12, 13 and the
/// blocking-writes question): what reaches standard error, how often, and that logging never
/// holds up the loop.
@Suite(.serialized) struct LoggingTests {
    static var daemon: String { ChildProcess.executableDirectory() + "/paybridged" }

    func tempDir(_ name: String) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    /// The daemon's log lines, split where a reader (journald) splits them.
    func lines(_ log: String) -> [Substring] { log.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.isEmpty } }

    // MARK: item 3: strings from the terminal cannot start log lines

    /// A terminal whose identity strings carry a line break and a priority prefix: the daemon's
    /// log keeps them inside the identity line, escaped; no line starts with `<0>`, and every
    /// line starts with the daemon's own prefix.
    @Test func controlCharactersFromTheTerminalStayInsideTheirLine() throws {
        let dir = try tempDir("inject")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let tty = dir + "/ttyPSP"
        let sim = try SimProcess(["--pty", "--link", tty, "--family", "p6x", "--serial", "\n<0>EMERG",
                                  "--sim-serial", "89\r\u{1B}[2J", "--firmware", "fw\u{2028}<1>ALERT"])
        let log = dir + "/daemon.log"
        let p = try ChildProcess.spawn(Self.daemon, ["--terminal", "serial:\(tty)", "--family", "p6x", "--log-level", "info"],
                                       captureStdout: false, pipeStdin: false, standardErrorPath: log)
        defer { p.terminate() }
        #expect(waitUntil(.seconds(30)) { fileText(log).contains("terminal identity") }, "no identity logged:\n\(fileText(log))")
        p.signal(SIGTERM)
        #expect(p.wait(timeout: .seconds(10)) == 0)
        let text = fileText(log)
        let all = lines(text)
        #expect(!all.contains { $0.hasPrefix("<0>") || $0.hasPrefix("<1>") }, "a line at emergency or alert priority:\n\(text)")
        #expect(all.allSatisfy { $0.hasPrefix("<3>") || $0.hasPrefix("<4>") || $0.hasPrefix("<6>") || $0.hasPrefix("<7>") },
                "a line without the daemon's prefix:\n\(text)")
        #expect(!text.unicodeScalars.contains { $0 == "\r" || $0 == "\u{1B}" || $0 == "\u{2028}" }, "a control character reached the log")
        let identity = all.filter { $0.contains("terminal identity") }
        #expect(identity.count == 1)
        #expect(identity.first?.contains("serial \\n<0>EMERG") == true, "\(identity)")
        #expect(identity.first?.contains("firmware fw\\u{2028}<1>ALERT") == true, "\(identity)")
        #expect(identity.first?.contains("SIM 89\\r\\x1B[2J") == true, "\(identity)")
        _ = sim
    }
}
