import DiagnosticsProtocol
import DiagnosticsSocket
import Glibc
import JSONLines
import Platform
import Testing
import Timebase

/// Answers `status` with a counter, streams `count` events to a watcher on `metrics`.
final class EchoHandler: DiagnosticsHandler {
    var handled: [DiagnosticsCommand] = []
    var floodLines = 0
    /// The size of the filler in each `sessions` reply.
    var sessionsReplyBytes = 0
    func handle(_ command: DiagnosticsCommand, id: Int64, client: DiagnosticsClient) {
        handled.append(command)
        switch command {
        case .sessions:
            client.reply(id, [("filler", .string(String(repeating: "s", count: sessionsReplyBytes)))])
        case .metrics:
            let filler = String(repeating: "x", count: 1000)
            for i in 0..<floodLines { client.event(id, kind: "flood", [("n", .number(i)), ("filler", .string(filler))]) }
        default:
            client.reply(id, [("command", .string(command.name)), ("admin", .bool(client.isAdministrator))])
        }
    }
}

func temporarySocketPath() -> String {
    "/tmp/pb-diag-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
}

/// A raw client: connects, writes, reads without blocking while the loop turns.
struct RawClient {
    let fd: FileDescriptor
    init(_ path: String) throws { fd = try UnixSocket.connect(path: path); try fd.setNonBlocking() }
    func write(_ s: String) {
        let b = Array(s.utf8)
        var off = 0
        while off < b.count {
            let n = b[off...].withUnsafeBytes { Glibc.send(fd.rawValue, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 { if errno == EAGAIN { continue }; return }
            off += n
        }
    }
    /// Whatever has arrived (empty when nothing; nil at EOF).
    func readAvailable() -> [UInt8]? {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { recv(fd.rawValue, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n > 0 { out += buf[0..<n]; continue }
            if n == 0 { return out.isEmpty ? nil : out }
            return out
        }
    }
}

@Suite(.serialized) struct DiagnosticsServerTests {
    func server(_ handler: DiagnosticsHandler, maxClients: Int = 16,
                stallTimeout: Duration = .seconds(DiagnosticsLimits.maxStalledSeconds)) throws -> (EventLoop, DiagnosticsServer, String) {
        let loop = try EventLoop()
        let path = temporarySocketPath()
        let listener = try UnixSocket.listen(path: path)
        let s = DiagnosticsServer(loop: loop, listener: listener, access: DiagnosticsAccess(daemonUID: getuid(), adminGID: nil),
                                  maxClients: maxClients, handler: handler, stallTimeout: stallTimeout)
        return (loop, s, path)
    }

    /// Turns the loop until `client` has received `lines` lines (or EOF), at most 5 s.
    func lines(_ loop: EventLoop, _ client: RawClient, _ count: Int) throws -> [JSON] {
        var got: [UInt8] = []
        var eof = false
        _ = try loop.run(until: {
            if let b = client.readAvailable() { got += b } else { eof = true }
            return eof || got.filter { $0 == 0x0A }.count >= count
        }, deadline: MonotonicClock.now() + .seconds(5))
        return try got.split(separator: 0x0A).map { try JSON.parse(Array($0)) }
    }

    @Test func theSocketIsCreated0660AndAStaleSocketIsReplacedButAFileIsNot() throws {
        let h = EchoHandler()
        let (_, s, path) = try server(h)
        var st = stat()
        #expect(lstat(path, &st) == 0 && (st.st_mode & 0o777) == 0o660 && (st.st_mode & S_IFMT) == S_IFSOCK)
        // A second listen on the same path replaces the stale socket (a crashed daemon's).
        let again = try UnixSocket.listen(path: path)
        again.close()
        #expect(access(path, F_OK) != 0)
        s.close()
        let file = temporarySocketPath()
        let fd = open(file, O_CREAT | O_WRONLY, 0o600)
        close(fd)
        defer { unlink(file) }
        #expect(throws: SystemError.self) { try UnixSocket.listen(path: file) }
        #expect(access(file, F_OK) == 0)
    }

    @Test func requestsAreAnsweredAndEveryBadLineGetsACountedErrorOnAnOpenConnection() throws {
        let h = EchoHandler()
        let (loop, s, _) = try server(h)
        defer { s.close() }
        let c = try RawClient(s.listener.path!)
        c.write(#"{"v":1,"id":1,"cmd":"status"}"# + "\n")
        c.write("garbage\n")
        c.write(String(repeating: "a", count: DiagnosticsLimits.maxLineBytes + 10) + "\n")
        c.write(#"{"v":9,"id":2,"cmd":"status"}"# + "\n")
        c.write(#"{"v":1,"id":3,"cmd":"selfdestruct"}"# + "\n")
        c.write("\n")
        c.write(#"{"v":1,"id":4,"cmd":"inventory"}"# + "\n")
        let replies = try lines(loop, c, 6)
        #expect(replies.count == 6)
        #expect(replies[0]["ok"] == .bool(true) && replies[0]["command"] == .string("status") && replies[0]["admin"] == .bool(true))
        #expect(replies[1]["error"]?["code"] == .string("bad_json"))
        #expect(replies[2]["error"]?["code"] == .string("line_too_long"))
        #expect(replies[3]["error"]?["code"] == .string("version_mismatch") && replies[3]["id"] == .int(2))
        #expect(replies[4]["error"]?["code"] == .string("unknown_command"))
        #expect(replies[5]["command"] == .string("inventory") && replies[5]["id"] == .int(4))
        #expect(s.counters.errorsTotal == 4)
        #expect(s.counters.errors[.lineTooLong] == 1)
        #expect(h.handled == [.status, .inventory])
    }

    @Test func theClientOverTheLimitIsToldBusyAndClosedWhileTheOthersStay() throws {
        let h = EchoHandler()
        let (loop, s, path) = try server(h, maxClients: 16)
        defer { s.close() }
        var clients: [RawClient] = []
        for _ in 0..<16 { clients.append(try RawClient(path)) }
        _ = try loop.run(until: { s.clients.count == 16 }, deadline: MonotonicClock.now() + .seconds(5))
        let extra = try RawClient(path)
        let refused = try lines(loop, extra, 1)
        #expect(refused.first?["error"]?["code"] == .string("busy"))
        #expect(s.counters.refusedBusy == 1 && s.clients.count == 16)
        clients[15].write(#"{"v":1,"id":9,"cmd":"status"}"# + "\n")
        #expect(try lines(loop, clients[15], 1).first?["ok"] == .bool(true))
    }

    @Test func aSlotFreedInTheSameTurnAsANewcomerArrivesIsGivenToIt() throws {
        let h = EchoHandler()
        let (loop, s, path) = try server(h, maxClients: 2)
        defer { s.close() }
        let first = try RawClient(path), second = try RawClient(path)
        _ = try loop.run(until: { s.clients.count == 2 }, deadline: MonotonicClock.now() + .seconds(5))
        // One leaves and another arrives before the loop turns: both are ready in the same poll.
        first.fd.close()
        let newcomer = try RawClient(path)
        newcomer.write(#"{"v":1,"id":7,"cmd":"status"}"# + "\n")
        let reply = try lines(loop, newcomer, 1).first
        #expect(reply?["ok"] == .bool(true) && reply?["id"] == .int(7), "\(String(describing: reply))")
        #expect(s.counters.refusedBusy == 0 && s.clients.count == 2)
        second.write(#"{"v":1,"id":8,"cmd":"status"}"# + "\n")
        #expect(try lines(loop, second, 1).first?["ok"] == .bool(true))
    }

    @Test func aClientThatDoesNotReadIsDisconnectedAndTheOthersAreServed() throws {
        let h = EchoHandler()
        h.floodLines = 3000   // ~3 MB of events: over the output bound
        let (loop, s, path) = try server(h)
        defer { s.close() }
        let slow = try RawClient(path)
        let other = try RawClient(path)
        slow.write(#"{"v":1,"id":1,"cmd":"metrics"}"# + "\n")
        _ = try loop.run(until: { s.counters.droppedSlow == 1 }, deadline: MonotonicClock.now() + .seconds(5))
        #expect(s.counters.droppedSlow == 1)
        #expect(s.clients.count == 1)
        other.write(#"{"v":1,"id":2,"cmd":"status"}"# + "\n")
        #expect(try lines(loop, other, 1).first?["ok"] == .bool(true))
    }

    /// Backpressure holds between the requests of one read, not only between reads: a client that
    /// sends many requests at once and reads its replies afterwards waits, it is not disconnected.
    @Test func requestsReadTogetherWaitForTheirRepliesToBeReadInsteadOfOverflowingTheOutput() throws {
        let h = EchoHandler()
        h.sessionsReplyBytes = 30_000
        let (loop, s, path) = try server(h)
        defer { s.close() }
        let c = try RawClient(path)
        // 100 requests in one write (within one 4 KiB read): 3 MB of replies, three times the bound.
        let requests = (0..<100).map { "{\"v\":1,\"id\":\(1000 + $0),\"cmd\":\"sessions\"}\n" }.joined()
        #expect(requests.utf8.count <= DiagnosticsLimits.readChunkBytes)
        c.write(requests)
        // Not reading yet: the loop turns, the client's output stays near the backpressure mark.
        var most = 0
        _ = try loop.run(until: {
            most = max(most, s.clients.first?.pendingOutput ?? 0)
            return false
        }, deadline: MonotonicClock.now() + .milliseconds(300))
        #expect(s.clients.count == 1 && s.counters.droppedSlow == 0, "a client that has not read yet was dropped")
        #expect(most <= DiagnosticsLimits.readPauseOutputBytes + 31_000, "\(most) bytes waiting")
        #expect(h.handled.count < 100, "every request was handled before any reply was read")
        // Reading now, it gets every reply in order.
        var got: [UInt8] = []
        _ = try loop.run(until: {
            if let b = c.readAvailable() { got += b }
            return got.filter { $0 == 0x0A }.count >= 100
        }, deadline: MonotonicClock.now() + .seconds(10))
        let ids = got.split(separator: 0x0A).compactMap { try? JSON.parse(Array($0)) }.map { $0["id"] }
        let inOrder = ids == (0..<100).map { JSON.int(1000 + Int64($0)) }
        #expect(inOrder, "\(ids.count) replies of 100")
        #expect(s.counters.droppedSlow == 0)
    }

    /// Held back is not for ever: a client that takes none of its replies for the stall timeout
    /// gives its slot up; one that reads slowly but keeps reading stays.
    @Test func aClientHeldBackWithoutReadingIsDisconnectedAfterTheStallTimeout() throws {
        let h = EchoHandler()
        h.sessionsReplyBytes = 30_000
        let (loop, s, path) = try server(h, stallTimeout: .milliseconds(600))
        defer { s.close() }
        let stuck = try RawClient(path), slow = try RawClient(path)
        let requests = (0..<100).map { "{\"v\":1,\"id\":\(1000 + $0),\"cmd\":\"sessions\"}\n" }.joined()
        stuck.write(requests)
        slow.write(requests)
        // The slow one reads what has arrived every 300 ms: in pauses, but within the timeout.
        // (A Unix socket turns writable again only once the reader has taken most of what is in
        // flight, so a trickle of small reads would not count as taking replies.) The loop is
        // turned in short slices: it sleeps until its next event otherwise.
        var slowGot = 0
        let end = MonotonicClock.now() + .milliseconds(1500)
        while MonotonicClock.now() < end {
            _ = try loop.run(until: { false }, deadline: MonotonicClock.now() + .milliseconds(300))
            slowGot += slow.readAvailable()?.count ?? 0
        }
        #expect(s.counters.droppedSlow == 1, "the client that never read was not let go")
        #expect(s.clients.count == 1, "\(s.clients.count) clients")
        #expect(slowGot > 0)
        // The stuck one sees its end once it reads what was sent before.
        var eof = false
        _ = try loop.run(until: { if stuck.readAvailable() == nil { eof = true }; return eof }, deadline: MonotonicClock.now() + .seconds(5))
        #expect(eof)
    }

    /// A client that ends its side after sending (socat, `nc -N`) gets every reply before the
    /// daemon closes: its end of stream ends the requests, not the replies.
    @Test func aClientThatHasFinishedSendingGetsEveryReplyAndThenTheEnd() throws {
        let h = EchoHandler()
        h.sessionsReplyBytes = 30_000
        let (loop, s, path) = try server(h)
        defer { s.close() }
        let c = try RawClient(path)
        c.write((0..<100).map { "{\"v\":1,\"id\":\(1000 + $0),\"cmd\":\"sessions\"}\n" }.joined())
        #expect(shutdown(c.fd.rawValue, Int32(SHUT_WR)) == 0)
        _ = try loop.run(until: { false }, deadline: MonotonicClock.now() + .milliseconds(200))
        #expect(s.clients.count == 1, "closed with replies unwritten")
        var got: [UInt8] = []
        var ended = false
        let deadline = MonotonicClock.now() + .seconds(20)
        while !ended && MonotonicClock.now() < deadline {
            // A slow reader: at most 64 KiB every few milliseconds, so the daemon's output keeps waiting.
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = chunk.withUnsafeMutableBytes { recv(c.fd.rawValue, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n > 0 { got += chunk[0..<n] } else if n == 0 { ended = true }
            _ = try loop.run(until: { false }, deadline: MonotonicClock.now() + .milliseconds(2))
        }
        let ids = got.split(separator: 0x0A).compactMap { try? JSON.parse(Array($0)) }.map { $0["id"] }
        let all = ids == (0..<100).map { JSON.int(1000 + Int64($0)) }
        #expect(all, "\(ids.count) replies of 100")
        #expect(ended && s.clients.isEmpty, "not closed after the last reply")
    }

    @Test func aPassedSocketIsTakenOnlyWhenLISTENPIDNamesThisProcess() throws {
        let env: [String: String] = ["LISTEN_PID": "\(getpid() + 1)", "LISTEN_FDS": "1"]
        #expect(SystemdSocketActivation.takeListener(environment: { env[$0] }) == nil)
        let bad: [String: String] = ["LISTEN_PID": "\(getpid())", "LISTEN_FDS": "x"]
        guard case .failure(.badCount)? = SystemdSocketActivation.takeListener(environment: { bad[$0] }) else {
            Issue.record("a bad LISTEN_FDS was taken"); return
        }
    }
}
