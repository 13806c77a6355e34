import Glibc
import Testing
import Platform
import Timebase

/// The bounded backlog behind the non-blocking log sink (issue 11, the blocking-writes question).
@Suite struct LogBacklogTests {
    func line(_ n: Int, _ size: Int = 100) -> [UInt8] {
        var b = Array("<6>line \(n) ".utf8)
        b += [UInt8](repeating: 0x2E, count: size - b.count - 1) + [0x0A]
        return b
    }

    @Test func linesBeyondTheCapacityAreDroppedWholeAndCountedThenANoticeComesFirst() {
        var b = LogBacklog(capacity: 1000)
        for i in 0..<15 { b.offer(line(i)) }
        #expect(b.count == 1000)
        #expect(b.unreported == 5 && b.droppedTotal == 5)
        // The destination takes two lines: the notice goes in before the next line.
        b.consumed(200)
        let took = b.offer(line(15))
        #expect(took)
        let text = String(decoding: b.bytes, as: UTF8.self)
        let lines = text.split(separator: "\n")
        #expect(lines.first?.hasPrefix("<6>line 2 ") == true)
        #expect(lines.dropLast().last == "<4>5 log lines dropped: the log destination was not taking them")
        #expect(lines.last?.hasPrefix("<6>line 15 ") == true)
        #expect(b.unreported == 0 && b.droppedTotal == 5)
        // Every queued byte belongs to a whole line.
        #expect(b.bytes.last == 0x0A)
    }

    @Test func noLineOvertakesAnUnreportedDrop() {
        var b = LogBacklog(capacity: 1000)
        for i in 0..<10 { b.offer(line(i)) }
        let took = b.offer(line(10))
        #expect(!took)
        // Room for a short line but not for the notice: still dropped, so the notice stays first.
        b.consumed(30)
        let tookShort = b.offer(Array("<6>x\n".utf8))
        #expect(!tookShort)
        #expect(b.unreported == 2)
        b.consumed(b.count)
        #expect(String(decoding: b.bytes, as: UTF8.self) == "<4>2 log lines dropped: the log destination was not taking them\n")
    }

    @Test func theRestOfATornLineIsAlwaysKept() {
        var b = LogBacklog(capacity: 100)
        b.offer(line(0))
        b.keepRest(line(1)[40...])
        #expect(b.count == 160)
        b.discardAll()
        #expect(b.isEmpty && b.droppedTotal == 2)
    }
}

/// The sink on real pipes and sockets: it never blocks on a reader that does not read.
@Suite(.serialized) struct LogSinkTests {
    func readAll(_ fd: Int32) -> String {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &buf, buf.count)
            if n <= 0 { break }
            out += buf[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Fills `fd` (non-blocking through its own description) until it takes nothing more.
    func fill(_ fd: Int32) -> Int {
        let chunk = [UInt8](repeating: 0x23, count: 4096)
        var total = 0
        while true {
            let n = chunk.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL)) }
            if n > 0 { total += n; continue }
            if n < 0, errno == ENOTSOCK {
                let w = chunk.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                if w > 0 { total += w; continue }
            }
            return total
        }
    }

    func check(_ sink: LogSink, reader: Int32, writer: Int32) {
        let before = MonotonicClock.now()
        _ = fill(writer)
        for i in 0..<3000 { sink.emit(Array("<7>debug line \(i) with some words in it to take room\n".utf8)) }
        // 3000 lines into a full destination: no wait at all, the backlog holds what fits.
        #expect(MonotonicClock.now() - before < .seconds(2))
        #expect(sink.backlog.count <= LogSinkLimits.backlogBytes)
        #expect(sink.backlog.droppedTotal > 1000)
        let dropped = sink.backlog.droppedTotal
        // The reader catches up; the next line flushes the backlog and the notice.
        var text = readAll(reader)
        sink.emit(Array("<6>after\n".utf8))
        // A pipe holds 64 KiB: the backlog may take a few rounds.
        for _ in 0..<10 {
            text += readAll(reader)
            sink.flush()
        }
        text += readAll(reader)
        #expect(sink.backlog.isEmpty)
        #expect(text.contains("<4>\(dropped) log lines dropped"), "\(text.suffix(300))")
        #expect(text.hasSuffix("<6>after\n"))
        // The filler has no line break: the first line follows it on the same line.
        let logged = text.split(separator: "\n").filter { $0.contains("<7>debug line ") }
        #expect(logged.count + dropped == 3000, "\(logged.count) written, \(dropped) dropped")
        // Whole lines only: the 3000 numbers that arrived are in order and none is torn.
        let numbers = logged.compactMap { $0.split(separator: "<7>").last?.split(separator: " ").dropFirst(2).first.flatMap { Int($0) } }
        #expect(numbers.count == logged.count && numbers == numbers.sorted())
    }

    @Test func aPipeIsReopenedNonBlockingAndItsOwnDescriptionIsLeftAlone() throws {
        var ends: [Int32] = [0, 0]
        #expect(pipe(&ends) == 0)
        defer { close(ends[0]); close(ends[1]) }
        #expect(fcntl(ends[0], F_SETFL, O_NONBLOCK) == 0)
        let sink = LogSink(fd: ends[1])
        guard case .reopened = sink.destination else { Issue.record("\(sink.destination)"); return }
        // The descriptor we were given (the parent's description) stays blocking.
        #expect(fcntl(ends[1], F_GETFL) & O_NONBLOCK == 0)
        let writer = dup(ends[1]); defer { close(writer) }
        #expect(fcntl(writer, F_SETFL, O_NONBLOCK) == 0)   // for filling only; the same description
        check(sink, reader: ends[0], writer: writer)
        #expect(fcntl(writer, F_SETFL, 0) == 0)
    }

    @Test func aSocketIsWrittenWithDontWait() throws {
        var ends: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &ends) == 0)
        defer { close(ends[0]); close(ends[1]) }
        #expect(fcntl(ends[0], F_SETFL, O_NONBLOCK) == 0)
        let sink = LogSink(fd: ends[1])
        #expect(sink.destination == .socket)
        #expect(fcntl(ends[1], F_GETFL) & O_NONBLOCK == 0)
        check(sink, reader: ends[0], writer: ends[1])
    }

    @Test func aRegularFileIsWrittenAsBefore() throws {
        let path = "/tmp/log-sink-\(getpid()).log"
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        defer { close(fd); unlink(path) }
        let sink = LogSink(fd: fd)
        #expect(sink.destination == .file)
        sink.emit(Array("<6>one\n".utf8))
        let r = open(path, O_RDONLY)
        defer { close(r) }
        #expect(readAll(r) == "<6>one\n")
    }
}
