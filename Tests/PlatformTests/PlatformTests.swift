import Glibc
import Platform
import Testing
import Timebase

// Every wait below is bounded by a deadline of a few seconds, so a regression
// fails the test instead of hanging the suite.

/// Reads exactly `count` bytes from a non-blocking descriptor, or fewer on timeout.
private func read(_ fd: FileDescriptor, count: Int, within timeout: Duration = .seconds(2)) throws -> [UInt8] {
    let deadline = MonotonicClock.now() + timeout
    var received: [UInt8] = []
    while received.count < count {
        switch try fd.read(maxCount: count - received.count) {
        case .bytes(let bytes): received += bytes
        case .endOfFile: return received
        case .wouldBlock:
            let remaining = deadline - MonotonicClock.now()
            if remaining <= .zero { return received }
            var entry = [pollfd(fd: fd.rawValue, events: Int16(POLLIN), revents: 0)]
            _ = try Poll.wait(&entry, timeout: remaining)
        }
    }
    return received
}

/// A port number that nothing listens on (bound, read back, released).
private func closedPort() throws -> UInt16 {
    let listener = try TCPListener.listen(port: 0)
    listener.close()
    return listener.port
}

@Suite struct SerialOverPTYTests {
    /// Bytes a cooked tty would eat or rewrite: CR, LF, ETX (^C), XON, XOFF, 0xFF, DEL, NUL.
    static let awkward: [UInt8] = [0x0D, 0x0A, 0x03, 0x11, 0x13, 0xFF, 0x7F, 0x00, 0x1A, 0x1C, 0x04]

    @Test func rawModePassesEveryByteBothWays() throws {
        let pty = try PseudoTerminal.open()
        defer { pty.close() }
        let serial = try SerialPort.open(path: pty.path, settings: .psp)
        defer { SerialPort.close(serial) }

        let inbound = Self.awkward + (0...255).map { UInt8($0) }
        try pty.master.writeAll(inbound, timeout: .seconds(2))
        #expect(try read(serial, count: inbound.count) == inbound)

        let outbound = (0...255).reversed().map { UInt8($0) } + Self.awkward
        try serial.writeAll(outbound, timeout: .seconds(2))
        #expect(try read(pty.master, count: outbound.count) == outbound)
    }

    @Test func idleNonBlockingReadIsWouldBlockNotEndOfFile() throws {
        let pty = try PseudoTerminal.open()
        defer { pty.close() }
        let serial = try SerialPort.open(path: pty.path, settings: .psp)
        defer { SerialPort.close(serial) }
        var byte: UInt8 = 0
        let result = try withUnsafeMutableBytes(of: &byte) { try serial.read(into: $0) }
        #expect(result == .wouldBlock)
    }

    @Test func secondOpenIsBusy() throws {
        let pty = try PseudoTerminal.open()
        defer { pty.close() }
        let serial = try SerialPort.open(path: pty.path, settings: .psp)
        #expect(throws: SerialOpenError.busy(pty.path)) {
            try SerialPort.open(path: pty.path, settings: .psp)
        }
        SerialPort.close(serial)
        // Released on close: the daemon can reopen after a link reset.
        let reopened = try SerialPort.open(path: pty.path, settings: LineSettings.parse("115200 8E2")!)
        SerialPort.close(reopened)
    }

    @Test func missingDeviceIsNotFound() {
        #expect(throws: SerialOpenError.notFound("/dev/ttyPAYBRIDGE-missing")) {
            try SerialPort.open(path: "/dev/ttyPAYBRIDGE-missing", settings: .psp)
        }
    }

    @Test func unsupportedSettingsAreRejectedBeforeOpening() {
        let odd = LineSettings(baud: 12345, dataBits: 8, parity: .none, stopBits: 1)
        #expect(throws: SerialOpenError.unsupportedSettings("unsupported baud rate 12345")) {
            try SerialPort.open(path: "/dev/null", settings: odd)
        }
    }

    @Test func closingTheMasterIsSeenAsHangUp() throws {
        let pty = try PseudoTerminal.open()
        let serial = try SerialPort.open(path: pty.path, settings: .psp)
        defer { SerialPort.close(serial) }
        pty.close()

        var entry = [pollfd(fd: serial.rawValue, events: Int16(POLLIN), revents: 0)]
        #expect(try Poll.wait(&entry, timeout: .seconds(2)) == 1)
        let sawHangUp = Int32(entry[0].revents) & POLLHUP != 0
        var readSawEIO = false
        do {
            _ = try serial.read(maxCount: 16)
        } catch {
            readSawEIO = error.errno == EIO
        }
        #expect(sawHangUp || readSawEIO)
    }
}

@Suite struct LineSettingsTests {
    @Test func parsesTheUsualForms() {
        #expect(LineSettings.parse("57600 8N1") == .psp)
        #expect(LineSettings.parse("9600 8N2") == LineSettings(baud: 9600, dataBits: 8, parity: .none, stopBits: 2))
        #expect(LineSettings.parse("115200 8E2") == LineSettings(baud: 115200, dataBits: 8, parity: .even, stopBits: 2))
        #expect(LineSettings.parse("9600 7O1") == LineSettings(baud: 9600, dataBits: 7, parity: .odd, stopBits: 1))
        #expect(LineSettings.parse("  19200\t8n1 ")?.description == "19200 8N1")
    }

    @Test func rejectsNonsense() {
        for text in ["57600 9N1", "12345 8N1", "57600 8X1", "57600 8N3", "57600", "57600 8N1 x", "fast 8N1", "57600 8N", ""] {
            #expect(LineSettings.parse(text) == nil, "\(text)")
        }
    }

    @Test func descriptionRoundTrips() {
        for baud in LineSettings.supportedBauds {
            let settings = LineSettings(baud: baud, dataBits: 7, parity: .odd, stopBits: 2)
            #expect(LineSettings.parse(settings.description) == settings)
        }
        #expect(LineSettings.psp.description == "57600 8N1")
    }
}

@Suite struct TCPTests {
    @Test func loopbackExchange() throws {
        let listener = try TCPListener.listen(port: 0)
        defer { listener.close() }
        #expect(listener.port != 0)

        let client = try TCP.connect(host: "127.0.0.1", port: listener.port, timeout: .seconds(2))
        defer { client.close() }
        var entry = [pollfd(fd: listener.fd.rawValue, events: Int16(POLLIN), revents: 0)]
        #expect(try Poll.wait(&entry, timeout: .seconds(2)) == 1)
        let server = try #require(try listener.accept())
        #expect(try listener.accept() == nil)

        let request: [UInt8] = [0x02, 0x00, 0x03, 0x0D, 0x0A, 0xFF]
        try client.writeAll(request, timeout: .seconds(2))
        #expect(try read(server, count: request.count) == request)
        try server.writeAll([0x06], timeout: .seconds(2))
        #expect(try read(client, count: 1) == [0x06])

        server.close()
        #expect(try read(client, count: 1) == [])  // end of file
    }

    @Test func refusedConnectionFailsFast() throws {
        let port = try closedPort()
        let started = MonotonicClock.now()
        do {
            let fd = try TCP.connect(host: "127.0.0.1", port: port, timeout: .seconds(3))
            fd.close()
            Issue.record("connected to a closed port")
        } catch {
            #expect(error.errno == ECONNREFUSED)
        }
        #expect(MonotonicClock.now() - started < .seconds(1))
    }

    @Test func unresolvableHostFails() {
        do {
            let fd = try TCP.connect(host: "no such host", port: 1, timeout: .seconds(1))
            fd.close()
            Issue.record("resolved a host name with spaces")
        } catch {
            #expect(error.call.hasPrefix("getaddrinfo"))
        }
    }
}

@Suite struct EventLoopTests {
    @Test func timersFireInDeadlineOrderAndCancelledOnesDoNot() throws {
        let loop = try EventLoop()
        let base = MonotonicClock.now()
        var fired: [String] = []
        _ = loop.schedule(at: base + .milliseconds(30)) { fired.append("c") }
        _ = loop.schedule(at: base + .milliseconds(10)) { fired.append("a") }
        let cancelled = loop.schedule(at: base + .milliseconds(20)) { fired.append("cancelled") }
        _ = loop.schedule(at: base + .milliseconds(20)) { fired.append("b1") }
        _ = loop.schedule(at: base + .milliseconds(20)) { fired.append("b2") }
        _ = loop.schedule(at: base) {
            fired.append("now")
            // Scheduled from a handler, already due: runs on the next pass, not this one.
            _ = loop.schedule(at: .zero) { fired.append("nested") }
        }
        loop.cancel(cancelled)
        loop.cancel(cancelled)

        #expect(try loop.run(until: { fired.count == 6 }, deadline: base + .seconds(2)))
        #expect(fired == ["now", "nested", "a", "b1", "b2", "c"])
        #expect(MonotonicClock.now() - base >= .milliseconds(30))
        // No timers left: an idle loop with a deadline just sleeps to it.
        let wakeUps = loop.wakeUps
        #expect(try !loop.run(until: { false }, deadline: MonotonicClock.now() + .milliseconds(20)))
        #expect(loop.wakeUps - wakeUps <= 2)
    }

    @Test func manyDueTimersFireSortedDespiteCancellations() throws {
        let loop = try EventLoop()
        var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
        func nextRandom() -> UInt64 {
            seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return seed >> 33
        }
        let base = MonotonicClock.now()
        var fired: [Int] = []
        var scheduled: [(deadline: UInt64, index: Int, token: TimerToken)] = []
        for index in 0..<400 {
            // All already due, in scrambled order and with ties.
            let deadline = Instant(nanoseconds: base.nanoseconds - (nextRandom() % 200) * 1_000)
            scheduled.append((deadline.nanoseconds, index, loop.schedule(at: deadline) { fired.append(index) }))
        }
        // Cancelling three in four makes the heap purge its dead entries.
        for entry in scheduled where entry.index % 4 != 0 { loop.cancel(entry.token) }
        try loop.runOnce(maxWait: .zero)
        let expected = scheduled.filter { $0.index % 4 == 0 }
            .sorted { ($0.deadline, $0.index) < ($1.deadline, $1.index) }
            .map(\.index)
        #expect(fired == expected)
    }

    @Test func watchesReportReadinessAndUnwatchStopsDelivery() throws {
        let loop = try EventLoop()
        let pipe = try FileDescriptor.pipe()
        defer { pipe.write.close() }  // the read end is closed mid-test
        var events: [PollEvents] = []
        var token: WatchToken?
        token = loop.watch(pipe.read, read: true, write: false) { ready in
            events.append(ready)
            loop.unwatch(token!)
        }
        let deadline = MonotonicClock.now() + .seconds(2)
        #expect(try !loop.run(until: { !events.isEmpty }, deadline: MonotonicClock.now() + .milliseconds(20)))
        try pipe.write.writeAll([1], timeout: .seconds(1))
        #expect(try loop.run(until: { !events.isEmpty }, deadline: deadline))
        #expect(events == [.readable])
        // Still readable (never drained), but unwatched: no further calls.
        try loop.runOnce(maxWait: .milliseconds(20))
        #expect(events.count == 1)

        let writer = loop.watch(pipe.write, read: false, write: true) { events.append($0) }
        try loop.runOnce(maxWait: .seconds(1))
        #expect(events.last == .writable)
        loop.update(writer, read: false, write: false)
        pipe.read.close()  // the write end now reports an error, but the watch is paused
        let before = events.count
        try loop.runOnce(maxWait: .milliseconds(20))
        #expect(events.count == before)

        loop.update(writer, read: false, write: true)
        try loop.runOnce(maxWait: .seconds(1))
        #expect(events.last?.contains(.error) == true)
        loop.unwatchAll(pipe.write)
        try loop.runOnce(maxWait: .milliseconds(20))
        #expect(events.count == before + 1)
    }

    @Test func stopEndsRun() throws {
        let loop = try EventLoop()
        _ = loop.schedule(at: MonotonicClock.now() + .milliseconds(5)) { loop.stop() }
        #expect(try !loop.run(until: { false }, deadline: MonotonicClock.now() + .seconds(2)))
    }

    @Test func signalReachesTheLoopThread() throws {
        let loop = try EventLoop()
        var received = 0
        try loop.onSignal(SIGUSR1) { received += 1 }
        raise(SIGUSR1)
        raise(SIGUSR1)
        #expect(try loop.run(until: { received > 0 }, deadline: MonotonicClock.now() + .seconds(2)))
        #expect(received == 1)  // coalesced, like the kernel's own pending set
    }
}

@Suite struct ChildProcessTests {
    @Test func catEchoesALine() throws {
        let cat = try ChildProcess.spawn("/bin/cat", [])
        try cat.writeLine("hello 0x03 \u{00e9}")
        #expect(try cat.readLine(timeout: .seconds(2)) == "hello 0x03 \u{00e9}")
        cat.closeStdin()
        #expect(try cat.readLine(timeout: .seconds(2)) == nil)
        #expect(cat.wait(timeout: .seconds(2)) == 0)
    }

    @Test func exitStatusAndEnvironment() throws {
        let sh = try ChildProcess.spawn("/bin/sh", ["-c", "printf '%s' \"$GREETING\"; exit 3"],
                                        environment: ["GREETING=partial line"], pipeStdin: false)
        #expect(try sh.readLine(timeout: .seconds(2)) == "partial line")
        #expect(try sh.readLine(timeout: .seconds(2)) == nil)
        #expect(sh.wait(timeout: .seconds(2)) == 3)
    }

    @Test func terminateStopsALongRunningChild() throws {
        let sleeper = try ChildProcess.spawn("/bin/sleep", ["30"], captureStdout: false, pipeStdin: false)
        #expect(sleeper.wait(timeout: .milliseconds(20)) == nil)
        sleeper.terminate()
        #expect(sleeper.exitStatus == 128 + SIGTERM)
    }

    @Test func passedDescriptorsArriveFromThreeOnInOrder() throws {
        let first = try FileDescriptor.pipe(), second = try FileDescriptor.pipe()
        defer { for fd in [first.read, first.write, second.read, second.write] { fd.close() } }
        // Our close-on-exec write ends are passed second-first: the child finds them at 3 and 4.
        let sh = try ChildProcess.spawn("/bin/sh", ["-c", "printf to-second >&3 && printf to-first >&4"],
                                        captureStdout: false, pipeStdin: false, passing: [second.write, first.write])
        #expect(sh.wait(timeout: .seconds(5)) == 0)
        #expect(try first.read.read(maxCount: 64) == .bytes(Array("to-first".utf8)))
        #expect(try second.read.read(maxCount: 64) == .bytes(Array("to-second".utf8)))
        // Without passing, nothing is at 3.
        let none = try ChildProcess.spawn("/bin/sh", ["-c", "printf x >&3"], captureStdout: false, pipeStdin: false)
        #expect(none.wait(timeout: .seconds(5)) != 0)
    }

    @Test func missingExecutableFails() {
        #expect(throws: SystemError(call: "posix_spawn /nonexistent/terminal-sim", errno: ENOENT)) {
            try ChildProcess.spawn("/nonexistent/terminal-sim", [])
        }
    }

    @Test func executableDirectoryIsAbsolute() {
        let directory = ChildProcess.executableDirectory()
        #expect(directory.hasPrefix("/"))
        #expect(access(directory, X_OK) == 0)
    }
}

@Suite struct SmallPiecesTests {
    @Test func openErrorsCarryTheCallAndErrno() {
        #expect(throws: SystemError(call: "open /nonexistent/paybridge.log", errno: ENOENT)) {
            try FileDescriptor.open("/nonexistent/paybridge.log", flags: O_RDONLY)
        }
        #expect(SerialOpenError.busy("/dev/ttyS1").description == "serial port /dev/ttyS1 is in use by another process")
    }

    @Test func systemErrorDescription() {
        #expect(SystemError(call: "open /dev/ttyUSB0", errno: ENOENT).description
                == "open /dev/ttyUSB0: No such file or directory (errno 2)")
        #expect(FileDescriptor.standardError.description == "fd 2")
    }

    @Test func pollRoundsSubMillisecondTimeoutsUp() throws {
        var none: [pollfd] = []
        let started = MonotonicClock.now()
        #expect(try Poll.wait(&none, timeout: .microseconds(300)) == 0)
        #expect(MonotonicClock.now() - started >= .microseconds(300))
    }

    @Test func clocks() {
        let a = MonotonicClock.now()
        let b = MonotonicClock.now()
        #expect(b >= a)
        #expect(WallClock.nowMillisecondsSinceEpoch() > 1_700_000_000_000)
    }
}
