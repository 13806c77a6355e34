import Foundation
import Glibc
import Platform
import Testing
import Timebase

/// One connection to the diagnostic socket as a script (or a misbehaving client) would hold it:
/// raw bytes out, reply lines in, nothing of paybridgectl's.
final class SocketClient {
    let fd: FileDescriptor
    private var buffer: [UInt8] = []
    /// The daemon closed the connection (recv returned 0 or failed).
    private(set) var atEnd = false

    init(_ path: String) throws { fd = try UnixSocket.connect(path: path) }
    deinit { fd.close() }

    /// Writes all of `bytes` (blocking).
    func send(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd.rawValue, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 { if errno == EINTR { continue }; return false }
            offset += n
        }
        return true
    }

    func send(_ line: String) -> Bool { send(Array(line.utf8)) }

    /// The next reply line; nil at the end of the stream or when `timeout` passes first.
    func readLine(timeout: Duration = .seconds(10)) -> String? {
        let deadline = MonotonicClock.now() + timeout
        while true {
            if let nl = buffer.firstIndex(of: 0x0A) {
                let line = String(decoding: buffer[..<nl], as: UTF8.self)
                buffer.removeSubrange(...nl)
                return line
            }
            if atEnd { return nil }
            let left = deadline.nanoseconds > MonotonicClock.now().nanoseconds ? deadline.nanoseconds - MonotonicClock.now().nanoseconds : 0
            if left == 0 { return nil }
            var p = pollfd(fd: fd.rawValue, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, Int32(min(left / 1_000_000 + 1, 1000))) > 0 else { continue }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = chunk.withUnsafeMutableBytes { recv(fd.rawValue, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n > 0 { buffer += chunk[0..<n] } else if n == 0 || (errno != EAGAIN && errno != EINTR) { atEnd = true }
        }
    }

    /// Sends `request` and parses the reply line.
    func ask(_ request: String, timeout: Duration = .seconds(10)) -> [String: Any] {
        guard send(request) else { return [:] }
        return Self.object(readLine(timeout: timeout))
    }

    static func object(_ line: String?) -> [String: Any] {
        guard let line else { return [:] }
        return (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]) ?? [:]
    }
}

func statusRequest(_ id: Int) -> String { "{\"v\":1,\"id\":\(id),\"cmd\":\"status\"}\n" }
func errorCode(_ reply: [String: Any]) -> String? { (reply["error"] as? [String: Any])?["code"] as? String }
func socketField(_ status: [String: Any], _ key: String) -> Int? { (status["socket"] as? [String: Any])?[key] as? Int }

/// The diagnostic socket's limits proved against the real paybridged on a bench (terminal-sim on
/// a pty, cloud-sim, the simulated charger): clients at once, bad input, a client that floods or
/// never reads, and the socket systemd passes.
@Suite(.serialized) struct DiagnosticsSocketLimits {
    static func socketPath() -> String { "/tmp/pb-lim-\(UUID().uuidString.prefix(8)).sock" }

    /// The documented default of `diagnostics.max_clients` (docs/diagnostics.md).
    static let maxClients = 16
    /// Unread output past which the daemon disconnects a client (docs/diagnostics.md, `DiagnosticsLimits.maxOutputBytes`).
    static let maxOutputBytes = 1 << 20

    @Test func sixteenClientsAreServedTheSeventeenthIsToldBusyAndASlotFreedIsReused() throws {
        let socket = Self.socketPath()
        let bench = try Bench(terminal: [], config: ["diagnostics.socket = \(socket)"], ev: "plug=100,charge=1500,power=3600000")
        defer { _ = bench.stop() }
        #expect(waitUntil(.seconds(10)) { access(socket, F_OK) == 0 })
        var clients: [SocketClient] = []
        for i in 0..<Self.maxClients {
            let c = try SocketClient(socket)
            let reply = c.ask(statusRequest(i + 1))
            #expect(reply["ok"] as? Bool == true && reply["id"] as? Int == i + 1, "client \(i + 1): \(reply)")
            clients.append(c)
        }
        #expect(socketField(clients[0].ask(statusRequest(100)), "clients") == Self.maxClients)

        // The one too many: told busy, then closed. It asks at once, as paybridgectl does; the
        // daemon closing with that request unread still lets it read the refusal first.
        let extra = try SocketClient(socket)
        // The send itself may fail (EPIPE) when the daemon has already written its refusal and
        // closed: that race is the point, and the refusal must be readable either way.
        _ = extra.send(statusRequest(17))
        let busy = SocketClient.object(extra.readLine())
        #expect(busy["ok"] as? Bool == false && errorCode(busy) == "busy", "\(busy)")
        #expect(busy["v"] as? Int == 1 && busy.keys.contains("id") && busy["id"] is NSNull)
        #expect(extra.readLine(timeout: .seconds(5)) == nil && extra.atEnd, "the busy client was not closed")
        // paybridgectl says so, every time: the daemon said no (exit 1), with its reason, although
        // the daemon may close before the request is even written.
        for _ in 0..<10 {
            let refused = try ctl(socket, ["--json", "status"])
            #expect(refused.status == 1 && errorCode(SocketClient.object(refused.out.first)) == "busy", "\(refused)")
        }
        // The others are still served, and the refusal is counted.
        let after = clients[5].ask(statusRequest(101))
        #expect(after["ok"] as? Bool == true && socketField(after, "clients") == Self.maxClients)
        #expect((socketField(after, "errors") ?? 0) >= 1)

        // One leaves and a newcomer connects at once, before the daemon has read the departure:
        // it is served in the freed slot, not told busy.
        clients.removeFirst()
        let newcomer = try SocketClient(socket)
        let served = newcomer.ask(statusRequest(200))
        #expect(served["ok"] as? Bool == true && served["id"] as? Int == 200, "\(served)")
        #expect(socketField(served, "clients") == Self.maxClients)
    }

    @Test func badInputIsAnsweredOnTheSameConnectionAndPaymentsGoOn() throws {
        let socket = Self.socketPath()
        let bench = try Bench(terminal: [], config: ["diagnostics.socket = \(socket)"], ev: "plug=100,charge=1500,power=3600000")
        defer { _ = bench.stop() }
        #expect(waitUntil(.seconds(10)) { access(socket, F_OK) == 0 })
        let c = try SocketClient(socket)
        let before = c.ask(statusRequest(1))
        let errorsBefore = socketField(before, "errors") ?? -1
        #expect(before["ok"] as? Bool == true && errorsBefore >= 0, "\(before)")
        let settledBefore = bench.settlements("Settled").count

        // Binary junk: every byte value but the newline, in a seeded order.
        var junk = Array(UInt8(0)...UInt8(255)).filter { $0 != 0x0A }
        var rng = SeededGenerator(seed: 0x5EED_0013)
        junk.shuffle(using: &rng)
        let cases: [(name: String, line: [UInt8], code: String, id: Int?)] = [
            ("bad JSON", Array("{\"v\":1,\"id\":2,\"cmd\":".utf8), "bad_json", nil),
            ("binary junk", junk, "bad_json", nil),
            ("a line over 64 KiB", Array(repeating: UInt8(ascii: "x"), count: 64 * 1024 + 4000), "line_too_long", nil),
            ("an unknown command", Array("{\"v\":1,\"id\":4,\"cmd\":\"reboot\"}".utf8), "unknown_command", 4),
            ("another version", Array("{\"v\":2,\"id\":5,\"cmd\":\"status\"}".utf8), "version_mismatch", 5),
            ("a missing field", Array("{\"v\":1,\"id\":6,\"cmd\":\"stop\"}".utf8), "missing_field", 6),
        ]
        for (i, bad) in cases.enumerated() {
            #expect(c.send(bad.line + [0x0A]))
            let reply = SocketClient.object(c.readLine())
            #expect(reply["ok"] as? Bool == false && errorCode(reply) == bad.code, "\(bad.name): \(reply)")
            if let id = bad.id { #expect(reply["id"] as? Int == id, "\(bad.name): \(reply)") } else { #expect(reply["id"] is NSNull, "\(bad.name): \(reply)") }
            // The same connection goes on.
            let status = c.ask(statusRequest(100 + i))
            #expect(status["ok"] as? Bool == true && status["id"] as? Int == 100 + i, "after \(bad.name): \(status)")
        }
        let after = c.ask(statusRequest(200))
        #expect(socketField(after, "errors") == errorsBefore + cases.count, "\(after["socket"] ?? "no socket")")
        #expect(socketField(after, "clients") == 1)
        // The daemon still takes payments: a session settles after all this.
        #expect(waitUntil(.seconds(40)) { bench.settlements("Settled").count > settledBefore },
                "no session settled after the bad input: terminal \(bench.sim.records().compactMap { $0["event"] as? String }), cloud \(bench.cloud.processed().compactMap { $0["action"] as? String }), status \(c.ask(statusRequest(300)))")
        #expect(bench.stop() == 0)
    }

    /// Card Read → Auth Session on the terminal, in milliseconds, for every session the record
    /// holds (each Card Read paired with the next Auth Session).
    func cardReadToAuth(_ records: [[String: Any]]) -> [Double] {
        var out: [Double] = [], read: Int64?
        for r in records {
            let at = (r["at"] as? NSNumber)?.int64Value
            switch r["event"] as? String {
            case "cardRead": read = at
            case "authSession":
                if let a = read, let b = at { out.append(Double(b - a) / 1e6) }
                read = nil
            default: break
            }
        }
        return out
    }

    func median(_ xs: [Double]) -> Double { let s = xs.sorted(); return s.isEmpty ? .nan : s[s.count / 2] }

    func residentKiB(_ pid: pid_t) -> Int {
        for line in fileText("/proc/\(pid)/status").split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0
        }
        return 0
    }

    @Test func aFloodingClientIsHeldBackAndCardsAreAuthorisedInTheUsualTime() throws {
        let socket = Self.socketPath()
        let bench = try Bench(terminal: [], config: ["diagnostics.socket = \(socket)"], ev: "plug=100,charge=300,power=3600000")
        defer { _ = bench.stop() }
        #expect(waitUntil(.seconds(10)) { access(socket, F_OK) == 0 })
        let sessionsEach = 3
        #expect(waitUntil(.seconds(40)) { cardReadToAuth(bench.sim.records()).count >= sessionsEach }, "no baseline sessions")
        let baseline = cardReadToAuth(bench.sim.records())
        guard let pid = bench.daemon?.pid else { Issue.record("no daemon"); return }
        let rssBefore = residentKiB(pid)

        // Two misbehaving clients: one sends status requests as fast as it can and never reads
        // a reply; the other sends one endless line without a newline.
        let flood = try SocketClient(socket), endless = try SocketClient(socket)
        for c in [flood, endless] { try c.fd.setNonBlocking() }
        // Requests of one length (ids 1000…1127, over and over), so that bytes sent count lines.
        let requestIDs = 1000..<1128
        let requests = Array(requestIDs.map { statusRequest($0) }.joined().utf8)
        let requestBytes = statusRequest(requestIDs.lowerBound).utf8.count
        let noNewline = [UInt8](repeating: UInt8(ascii: "{"), count: 16384)
        var floodBytes = 0, endlessBytes = 0, floodGone = false, endlessGone = false
        var lastFloodProgress = MonotonicClock.now()
        func push(_ c: SocketClient, _ bytes: [UInt8], _ total: inout Int, _ gone: inout Bool) -> Bool {
            guard !gone else { return false }
            let n = bytes.withUnsafeBytes { Glibc.send(c.fd.rawValue, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT)) }
            if n > 0 { total += n; return true }
            if n < 0 && errno != EAGAIN && errno != EINTR { gone = true }
            return false
        }
        let floodStart = MonotonicClock.now()
        var lastCheck = floodStart
        var flooded: [Double] = []
        while MonotonicClock.now() < floodStart + .seconds(40) {
            var progressed = false
            for _ in 0..<64 {
                let a = push(flood, Array(requests[(floodBytes % requests.count)...]), &floodBytes, &floodGone)
                let b = push(endless, noNewline, &endlessBytes, &endlessGone)
                if a { lastFloodProgress = MonotonicClock.now() }
                progressed = progressed || a || b
                if !a && !b { break }
            }
            if !progressed { usleep(1000) }
            if MonotonicClock.now() >= lastCheck + .milliseconds(100) {
                lastCheck = MonotonicClock.now()
                flooded = Array(cardReadToAuth(bench.sim.records()).dropFirst(baseline.count))
                // Enough sessions, and the flood either dropped or held back for a while.
                if flooded.count >= sessionsEach && (floodGone || MonotonicClock.now() - lastFloodProgress >= .seconds(1)) { break }
            }
        }
        let floodStalledFor = MonotonicClock.now() - lastFloodProgress
        let rssAfter = residentKiB(pid)
        let b = median(baseline), f = median(flooded)
        print("Card Read → Auth Session: baseline \(baseline.map { String(format: "%.1f", $0) }) ms (median \(String(format: "%.1f", b))), "
              + "flooded \(flooded.map { String(format: "%.1f", $0) }) ms (median \(String(format: "%.1f", f))); "
              + "flood client sent \(floodBytes) bytes (disconnected: \(floodGone), stalled for \(floodStalledFor)), endless line \(endlessBytes) bytes; "
              + "daemon RSS \(rssBefore) → \(rssAfter) KiB")
        #expect(flooded.count >= sessionsEach, "cards were not authorised during the flood: \(flooded)")
        #expect(f <= max(3 * b, b + 500), "flooded \(f) ms against a baseline of \(b) ms")
        // The flooding client was held back: disconnected, or its requests no longer read
        // (backpressure) so that its writes have stalled.
        #expect(floodGone || floodStalledFor >= .milliseconds(500), "the flood was still being read: \(floodBytes) bytes")
        #expect(floodBytes < 64 << 20, "the daemon read \(floodBytes) bytes of requests it could not answer")
        // Neither grew the daemon beyond the bounded buffers (1 MiB of unread output, a 64 KiB line).
        #expect(rssAfter - rssBefore < 16 * 1024, "RSS grew by \(rssAfter - rssBefore) KiB")
        // Others are still served, and the endless line, once ended, is refused as too long.
        let other = try SocketClient(socket)
        #expect(other.ask(statusRequest(1)).isEmpty == false)
        // Held back, not lost: once the flooding client reads, every request it sent is answered, in order.
        if !floodGone {
            var replies = 0, outOfOrder = 0
            let deadline = MonotonicClock.now() + .seconds(30)
            while MonotonicClock.now() < deadline {
                // The last line may be cut short: it is finished once the daemon reads again.
                if floodBytes % requestBytes != 0 {
                    let from = floodBytes % requests.count
                    _ = push(flood, Array(requests[from..<(from + requestBytes - floodBytes % requestBytes)]), &floodBytes, &floodGone)
                }
                guard let line = flood.readLine(timeout: .milliseconds(100)) else { if flood.atEnd { break }; continue }
                let reply = SocketClient.object(line)
                if reply["ok"] as? Bool != true || reply["id"] as? Int != requestIDs.lowerBound + replies % requestIDs.count { outOfOrder += 1 }
                replies += 1
                if floodBytes % requestBytes == 0 && replies == floodBytes / requestBytes { break }
            }
            #expect(replies == floodBytes / requestBytes && outOfOrder == 0 && !flood.atEnd,
                    "\(replies) replies (\(outOfOrder) out of order) to \(floodBytes / requestBytes) requests")
        }
        // The endless line is a stream, not a request: past maxDiscardedLineBytes (1 MiB) the
        // client is told line_too_long and disconnected.
        #expect(waitUntil(.seconds(20)) { _ = push(endless, noNewline, &endlessBytes, &endlessGone); return endlessGone },
                "an endless line still read after \(endlessBytes) bytes")
        #expect(endlessBytes < 4 << 20, "\(endlessBytes) bytes of one line read before the client was cut off")
        #expect(errorCode(SocketClient.object(endless.readLine(timeout: .seconds(5)))) == "line_too_long")
    }

    /// A script that sends many requests at once and only then reads (a pipeline) is answered
    /// in full: backpressure holds the requests of one read back too, instead of letting their
    /// replies pile up past the 1 MiB that disconnects a client that does not read.
    @Test func requestsSentTogetherAreAllAnsweredEvenWhenTheirRepliesAreLarge() throws {
        let socket = Self.socketPath()
        let bench = try Bench(terminal: [], config: ["diagnostics.socket = \(socket)"], ev: "plug=100,charge=100,power=3600000")
        defer { _ = bench.stop() }
        #expect(waitUntil(.seconds(10)) { access(socket, F_OK) == 0 })
        // Enough sessions that each `sessions` reply is about 14 KB: 117 of them pass the bound with room to spare.
        let sessions = 40
        #expect(waitUntil(.seconds(45)) { bench.sim.records("committed").count >= sessions }, "only \(bench.sim.records("committed").count) sessions")
        let c = try SocketClient(socket)
        #expect(c.send("{\"v\":1,\"id\":1,\"cmd\":\"sessions\"}\n"))
        let size = c.readLine()?.utf8.count ?? 0
        let one = "{\"v\":1,\"id\":1000,\"cmd\":\"sessions\"}\n".utf8.count
        // As many as fit in one of the daemon's reads, in one write, ids 1000… of one length.
        let count = min(9000, 4096 / one)
        #expect(c.send((0..<count).map { "{\"v\":1,\"id\":\(1000 + $0),\"cmd\":\"sessions\"}\n" }.joined()))
        usleep(500_000)
        var replies: [[String: Any]] = [], bytes = 0
        while replies.count < count, let line = c.readLine(timeout: .seconds(20)) {
            bytes += line.utf8.count + 1
            replies.append(SocketClient.object(line))
        }
        print("pipelined \(count) sessions requests (\(size) bytes each): \(replies.count) replies, \(bytes) bytes")
        #expect(replies.count == count && !c.atEnd, "\(replies.count) of \(count) replies; disconnected: \(c.atEnd)")
        #expect(size * count > Self.maxOutputBytes + 256 * 1024, "the replies (\(size * count) bytes) hardly pass the output bound: the test proves nothing")
        let inOrder = replies.enumerated().allSatisfy { $0.element["ok"] as? Bool == true && $0.element["id"] as? Int == 1000 + $0.offset }
        #expect(inOrder)

        // The same from a script that ends its side once it has sent (socat, `nc -N`) and reads
        // slowly: every reply still arrives, and only then does the daemon close.
        let script = try SocketClient(socket)
        #expect(script.send((0..<count).map { "{\"v\":1,\"id\":\(1000 + $0),\"cmd\":\"sessions\"}\n" }.joined()))
        #expect(shutdown(script.fd.rawValue, Int32(SHUT_WR)) == 0)
        var answered = 0
        while let line = script.readLine(timeout: .seconds(20)) {
            if SocketClient.object(line)["id"] as? Int == 1000 + answered { answered += 1 }
            usleep(5_000)
        }
        #expect(answered == count && script.atEnd, "\(answered) of \(count) replies before the daemon closed")
    }

    /// paybridgectl against `socket`: its exit status and standard output.
    func ctl(_ socket: String, _ args: [String]) throws -> (status: Int32?, out: [String]) {
        let p = try ChildProcess.spawn(ChildProcess.executableDirectory() + "/paybridgectl", ["--socket", socket] + args, pipeStdin: false)
        var out: [String] = []
        while let line = try p.readLine(timeout: .seconds(20)) { out.append(line) }
        return (p.wait(timeout: .seconds(10)), out)
    }

    /// A launcher that sets socket activation's variables (`LISTEN_PID`: `pid`, or the daemon's own
    /// pid, which the shell's `$$` is once it execs) and keeps the daemon's standard error.
    func activationLauncher(pid: Int32?, log: String) -> [String] {
        ["/bin/sh", "-c", "export LISTEN_PID=\(pid.map(String.init) ?? "$$") LISTEN_FDS=1; exec \"$0\" \"$@\" 2>\"\(log)\""]
    }

    @Test func theSocketSystemdPassesIsUsedInsteadOfTheConfiguredPath() throws {
        let passed = Self.socketPath(), configured = Self.socketPath(), log = Self.socketPath() + ".log"
        let listener = try UnixSocket.listen(path: passed)
        defer { listener.close(); unlink(log) }
        let bench = try Bench(terminal: [], config: ["diagnostics.socket = \(configured)", "log.level = info"], ev: "plug=100,charge=1500,power=3600000",
                              launcher: activationLauncher(pid: nil, log: log), passing: [listener.fd])
        defer { _ = bench.stop() }
        var answer: (status: Int32?, out: [String]) = (nil, [])
        #expect(waitUntil(.seconds(20)) {
            answer = (try? ctl(passed, ["--json", "status"])) ?? (nil, [])
            return answer.status == 0
        }, "no answer on the passed socket: \(answer) \(fileText(log))")
        #expect(SocketClient.object(answer.out.first)["ok"] as? Bool == true)
        #expect(access(configured, F_OK) != 0, "the configured path was opened as well")
        #expect(fileText(log).contains("diagnostics: using the socket systemd passed"), "\(fileText(log))")
        #expect(bench.stop() == 0)
        // The path is systemd's: the daemon leaves it in place when it stops.
        var st = stat()
        #expect(lstat(passed, &st) == 0 && (st.st_mode & S_IFMT) == S_IFSOCK, "the daemon removed systemd's socket")
    }

    @Test func socketsPassedToAnotherProcessAreIgnored() throws {
        let passed = Self.socketPath(), configured = Self.socketPath(), log = Self.socketPath() + ".log"
        let listener = try UnixSocket.listen(path: passed)
        defer { listener.close(); unlink(log) }
        // LISTEN_PID names this test process, not the daemon: the descriptors are not the daemon's.
        let bench = try Bench(terminal: [], config: ["diagnostics.socket = \(configured)", "log.level = info"], ev: "plug=100,charge=1500,power=3600000",
                              launcher: activationLauncher(pid: getpid(), log: log), passing: [listener.fd])
        defer { _ = bench.stop() }
        #expect(waitUntil(.seconds(20)) { (try? ctl(configured, ["status"]).status) == 0 }, "the configured socket does not answer: \(fileText(log))")
        #expect(!fileText(log).contains("socket systemd passed"), "\(fileText(log))")
        // Nobody answers on the passed socket (the kernel queues the connection; no one accepts it).
        let c = try SocketClient(passed)
        #expect(c.send(statusRequest(1)))
        #expect(c.readLine(timeout: .seconds(2)) == nil && !c.atEnd)
        #expect(bench.stop() == 0)
    }
}
