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

    // MARK: the blocking-writes question: a log nobody reads never stalls the loop

    /// A pipe for the daemon's standard error that is already full when it starts, as a
    /// stalled journald or a forgotten `| reader` would leave it. The write end the child gets
    /// is blocking (its parent's choice); only our read end is non-blocking.
    final class StalledPipe {
        let read: FileDescriptor
        var write: FileDescriptor?
        /// The filler's bytes, all whole lines.
        private(set) var filled = 0
        static let filler = Array("<6>filler: the reader of this pipe has stopped reading.....\n".utf8)

        /// `socket`: a Unix stream socket pair instead, as journald's stdout stream is.
        init(socket: Bool = false) throws {
            var ends: [Int32] = [-1, -1]
            if socket {
                guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &ends) == 0 else { throw SystemError(call: "socketpair", errno: errno) }
            } else {
                guard Glibc.pipe(&ends) == 0 else { throw SystemError(call: "pipe", errno: errno) }
            }
            read = FileDescriptor(rawValue: ends[0])
            write = FileDescriptor(rawValue: ends[1])
            try read.setNonBlocking()
            try read.setCloseOnExec()
            try write?.setCloseOnExec()
            let line = Self.filler
            if socket {
                while line.withUnsafeBytes({ send(ends[1], $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }) == line.count { filled += line.count }
            } else {
                // Filled through the shared description, non-blocking only while filling.
                let flags = fcntl(ends[1], F_GETFL)
                _ = fcntl(ends[1], F_SETFL, flags | O_NONBLOCK)
                while line.withUnsafeBytes({ Glibc.write(ends[1], $0.baseAddress, $0.count) }) == line.count { filled += line.count }
                _ = fcntl(ends[1], F_SETFL, flags)
            }
        }

        /// After the child has its copy: ours closes, so end of file comes when the child exits.
        func closeWriteEnd() { write?.close(); write = nil }

        /// Everything readable now; nil at end of file.
        func drain() -> String? {
            var out: [UInt8] = []
            var buf = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = buf.withUnsafeMutableBytes { Glibc.read(read.rawValue, $0.baseAddress, $0.count) }
                if n > 0 { out += buf[0..<n]; continue }
                if n == 0, out.isEmpty { return nil }
                return String(decoding: out, as: UTF8.self)
            }
        }

        deinit { closeWriteEnd(); read.close() }
    }

    /// With its standard error a full pipe (or stream socket) nobody reads and logging at debug, the daemon still
    /// takes a whole payment (Card Read → Authorize → approval → charge → commit). When the
    /// reader comes back it gets whole lines and a notice of how many were dropped; SIGTERM
    /// still stops the daemon with status 0.
    @Test(arguments: [false, true])
    func aLogNobodyReadsDoesNotHoldUpAPayment(socket: Bool) throws {
        let pipe = try StalledPipe(socket: socket)
        let b = try Bench(terminal: ["--session", "approve", "--fallback", "nocard"], config: ["log.level = debug"],
                          ev: "plug=100,charge=1500,power=3600000", standardError: pipe.write)
        pipe.closeWriteEnd()
        #expect(waitUntil(.seconds(60)) { !b.sim.records("committed").isEmpty },
                "no commit while the log was stalled: \(b.sim.records())")
        // Still stalled: more than the backlog holds. Each SIGHUP is a reload and an info line of
        // about 250 bytes (signals that arrive together count once). (Sent after the commit:
        // hundreds of reloads during a simulated charge end it early, logging or not.)
        for _ in 0..<600 { b.daemon?.signal(SIGHUP); usleep(2_000) }
        #expect(b.daemon?.wait(timeout: .milliseconds(500)) == nil, "the daemon ended")
        // The reader comes back: the backlog and the drop notice follow, written from the loop.
        var text = ""
        #expect(waitUntil(.seconds(20)) {
            text += pipe.drain() ?? ""
            return text.contains("log lines dropped")
        }, "no drop notice after the reader came back:\n\(text.suffix(2000))")
        #expect(b.stop() == 0)
        while let more = pipe.drain() { text += more; usleep(10_000) }
        let all = lines(text)
        let dropped = all.compactMap { l -> Int? in
            guard l.contains("log lines dropped") else { return nil }
            return Int(l.dropFirst(3).split(separator: " ").first ?? "")
        }
        #expect(dropped.count == 1 && (dropped.first ?? 0) > 0, "\(dropped)")
        // Whole lines only, each with its prefix; the filler came first and intact.
        #expect(all.allSatisfy { $0.count >= 3 && $0.hasPrefix("<") && $0.dropFirst(2).hasPrefix(">") },
                "a torn line:\n\(all.filter { !$0.hasPrefix("<") }.prefix(5))")
        #expect(all.prefix { $0.hasPrefix("<6>filler") }.count * StalledPipe.filler.count == pipe.filled)
        #expect(all.contains { $0.hasPrefix("<7>") }, "no debug line got through after the reader came back")
        print("stalled log (\(socket ? "socket" : "pipe")): \(pipe.filled) bytes of filler, \(dropped.first ?? 0) lines dropped, \(all.count) lines read")
    }

    /// The same stalled pipe, or a stalled stream socket (journald's kind): a daemon with
    /// nothing to do but log (debug, link only) stops on SIGTERM at once, its last lines waited
    /// for at most `LogSinkLimits.exitFlushTimeout`.
    @Test(arguments: [false, true])
    func aLogNobodyReadsDoesNotHoldUpSIGTERM(socket: Bool) throws {
        let dir = try tempDir("stalled")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let tty = dir + "/ttyPSP"
        let sim = try SimProcess(["--pty", "--link", tty])
        let pipe = try StalledPipe(socket: socket)
        #expect(pipe.filled > 4096, "\(pipe.filled)")   // a socket holds less than a pipe (per-buffer overhead)
        let p = try ChildProcess.spawn(Self.daemon, ["--terminal", "serial:\(tty)", "--log-level", "debug"],
                                       captureStdout: false, pipeStdin: false, standardError: pipe.write)
        pipe.closeWriteEnd()
        defer { p.terminate() }
        // The link comes up and keeps logging its keep-alives at debug, all of it into the full pipe.
        usleep(2_000_000)
        let asked = MonotonicClock.now()
        p.signal(SIGTERM)
        #expect(p.wait(timeout: .seconds(10)) == 0, "SIGTERM did not stop a daemon whose log is not read")
        #expect(MonotonicClock.now() - asked < .seconds(3))
        _ = sim
    }

    // MARK: item 12: a terminal that cannot be opened, or never answers, is logged once

    /// The daemon pointed at a device that does not exist: one warning with the reason, not
    /// one per retry. Then a pty appears there that never answers: one warning after the
    /// bring-up patience. Then the real (simulated) terminal: an info line with the time away.
    @Test func aTerminalThatIsAwayIsLoggedOncePerReasonAndWhenItIsBack() throws {
        let dir = try tempDir("away")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let tty = dir + "/ttyPSP"
        let log = dir + "/daemon.log"
        let started = MonotonicClock.now()
        let p = try ChildProcess.spawn(Self.daemon, ["--terminal", "serial:\(tty)", "--log-level", "debug"],
                                       captureStdout: false, pipeStdin: false, standardErrorPath: log)
        defer { p.terminate() }
        func warnings(_ what: String) -> [Substring] { lines(fileText(log)).filter { $0.hasPrefix("<4>") && $0.contains(what) } }
        // About five retries (250 ms doubling) in six seconds.
        usleep(6_000_000)
        let missing = warnings("cannot be opened")
        #expect(missing.count == 1, "expected one warning for the missing device:\n\(fileText(log))")
        #expect(missing.first?.contains("\(tty) not found") == true, "\(missing)")

        // A line that opens but where nobody answers (a powered-off terminal on a live adapter).
        let silent = try PseudoTerminal.open()
        #expect(symlink(silent.path, tty) == 0)
        #expect(waitUntil(.seconds(45)) { !warnings("has not answered bring-up").isEmpty }, "no silence warning:\n\(fileText(log))")
        usleep(3_000_000)
        #expect(warnings("has not answered bring-up").count == 1, "\(fileText(log))")
        #expect(warnings("cannot be opened").count == 1, "\(fileText(log))")

        // The terminal arrives: the silent line goes (hang-up), terminal-sim takes the name.
        unlink(tty)
        silent.close()
        let sim = try SimProcess(["--pty", "--link", tty])
        var back: Substring?
        #expect(waitUntil(.seconds(45)) {
            back = lines(fileText(log)).first { $0.hasPrefix("<6>terminal link up after ") }
            return back != nil
        }, "no line for the terminal coming back:\n\(fileText(log))")
        let elapsed = Double((MonotonicClock.now() - started).nanosecondsClamped) / 1e9
        let away = back.flatMap { Double($0.dropFirst("<6>terminal link up after ".count).split(separator: " ").first ?? "") } ?? -1
        // Away since the start: at least the six seconds and the patience above, at most the whole run.
        #expect(away >= 16 && away <= elapsed + 0.5, "away \(away) s of \(elapsed) s: \(String(describing: back))")
        print("terminal away: \(back.map(String.init) ?? "-"); warnings: \(lines(fileText(log)).filter { $0.hasPrefix("<4>") })")
        p.signal(SIGTERM)
        #expect(p.wait(timeout: .seconds(10)) == 0)
        _ = sim
    }

    /// An Apollo address where nobody listens: one warning with the reason over several
    /// seconds of retries, not one per refused connection.
    @Test func aTCPTerminalNobodyListensForIsLoggedOnce() throws {
        let dir = try tempDir("refused")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // A port that was free a moment ago: bound, then released.
        let probe = try TCPListener.listen(host: "127.0.0.1", port: 0)
        let port = probe.port
        probe.close()
        let log = dir + "/daemon.log"
        let p = try ChildProcess.spawn(Self.daemon, ["--terminal", "tcp:127.0.0.1:\(port)", "--log-level", "debug"],
                                       captureStdout: false, pipeStdin: false, standardErrorPath: log)
        defer { p.terminate() }
        usleep(6_000_000)
        p.signal(SIGTERM)
        #expect(p.wait(timeout: .seconds(10)) == 0)
        let warnings = lines(fileText(log)).filter { $0.hasPrefix("<4>") }
        #expect(warnings.count == 1, "\(fileText(log))")
        #expect(warnings.first?.contains("cannot be opened") == true && warnings.first?.contains("Connection refused") == true, "\(warnings)")
    }

    // MARK: item 13: garbage from the terminal is summarised, not logged frame by frame

    /// 200 KB of seeded random bytes from the terminal while the daemon runs: at most three log
    /// lines about them, each one's counts add up, and together they account for the bytes.
    @Test func garbageFromTheTerminalIsSummarised() throws {
        let seed = UInt64.random(in: 1...UInt64(Int64.max))
        let garbage = 200 * 1024
        print("garbage seed \(seed)")
        let dir = try tempDir("garbage")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let tty = dir + "/ttyPSP"
        // A P6X: any preamble byte may start a frame, so random bytes make every kind of bad frame.
        let sim = try SimProcess(["--pty", "--link", tty, "--family", "p6x", "--seed", "\(seed)"])
        let log = dir + "/daemon.log"
        let p = try ChildProcess.spawn(Self.daemon, ["--terminal", "serial:\(tty)", "--family", "p6x", "--log-level", "info"],
                                       captureStdout: false, pipeStdin: false, standardErrorPath: log)
        defer { p.terminate() }
        #expect(waitUntil(.seconds(30)) { fileText(log).contains("terminal link up") }, "seed \(seed):\n\(fileText(log))")
        try sim.control("garbage \(garbage)")
        usleep(4_000_000)
        p.signal(SIGTERM)
        #expect(p.wait(timeout: .seconds(10)) == 0)
        let about = lines(fileText(log)).filter { $0.contains("bad input") || $0.contains("discarded") || $0.contains("undecodable") }
        print("seed \(seed): \(about.count) log lines about \(garbage) bytes of garbage:\n\(about.prefix(5).joined(separator: "\n"))")
        #expect(about.count <= 3 && about.count >= 1, "seed \(seed): \(about.count) lines")
        func number(_ line: Substring, before word: String) -> Int? {
            guard let r = line.range(of: " " + word) else { return nil }
            return Int(line[..<r.lowerBound].split(separator: " ").last ?? "")
        }
        var discarded = 0
        for line in about {
            // "N malformed (kindA a, kindB b), M bytes discarded; K undecodable (0x31 k, …); since start: …"
            let head = line.split(separator: ";").first.map(String.init) ?? ""
            let period = line.components(separatedBy: "; since start:").first ?? ""
            if let malformed = number(Substring(head), before: "malformed (") {
                let kinds = head.components(separatedBy: "malformed (").last?.components(separatedBy: ")").first ?? ""
                let sum = kinds.split(separator: ",").compactMap { Int($0.split(separator: " ").last ?? "") }.reduce(0, +)
                #expect(sum == malformed, "seed \(seed): kinds do not add up in \(line)")
                discarded += number(Substring(head), before: "bytes discarded") ?? 0
            }
            if period.contains("undecodable (") {
                let part = period.components(separatedBy: "; ").first { $0.contains("undecodable (") } ?? ""
                let n = number(Substring(part), before: "undecodable (") ?? -1
                let byHeader = part.components(separatedBy: "(").last?.components(separatedBy: ")").first ?? ""
                #expect(byHeader.split(separator: ",").compactMap { Int($0.split(separator: " ").last ?? "") }.reduce(0, +) == n,
                        "seed \(seed): headers do not add up in \(line)")
            }
        }
        // The periods add up to the total since start, which accounts for the garbage: all of
        // it discarded except what happened to read as frames. On a P6X (any preamble, any
        // magic) one position in about 256 passes the checksum and takes up to 258 bytes with
        // it, so a good third of random bytes read as frames; more than the garbage never.
        let total = about.last.flatMap { $0.components(separatedBy: "since start: ").last }.map { Substring($0) }
        let totalDiscarded = total.flatMap { number($0, before: "bytes discarded") } ?? -1
        #expect(discarded == totalDiscarded, "seed \(seed): the lines say \(discarded), the total \(totalDiscarded)")
        #expect(totalDiscarded <= garbage + 4096 && totalDiscarded >= garbage / 3, "seed \(seed): \(totalDiscarded) of \(garbage)")
    }
}
