import EnergyMeters
import MeterLink
import MeterSim
import ModbusRTU
import Platform
import Testing
import Timebase

/// `ModbusMeterLink` on a real pty, the simulated meters serving its other side (in process, on
/// the same event loop; the last test runs the meter-sim executable instead).
final class PtyBench {
    let loop: EventLoop
    let pty: PseudoTerminal
    let server: MeterSimServer
    let link: ModbusMeterLink
    var readings: [(address: UInt8, importWh: Int64, powerW: Int64?, serial: String, at: Instant)] = []
    var failures: [(address: UInt8, failure: MeterFailure)] = []

    /// 300 ms: far above what a pty needs, so that a loaded test machine does not turn a late
    /// answer into a failure the test did not script.
    init(meters: [SimulatedMeter], responseTimeout: Duration = .milliseconds(300), retries: Int = 1) throws {
        loop = try EventLoop()
        pty = try PseudoTerminal.open()
        let line = LineSettings(baud: 9600, dataBits: 8, parity: .none, stopBits: 1)
        let settings = MeterLinkSettings(path: pty.path, line: line, meters: meters.map { MeterSpec(address: $0.address, model: $0.model) },
                                         pollInterval: .milliseconds(200), responseTimeout: responseTimeout, maxRetries: retries)
        server = MeterSimServer(loop: loop, fd: pty.master, core: MeterSimCore(meters: meters), timing: settings.timing)
        link = try ModbusMeterLink(loop: loop, settings: settings)
        link.onReading = { [unowned self] a, wh, w, serial, at in self.readings.append((a, wh, w, serial, at)) }
        link.onFailure = { [unowned self] a, f in self.failures.append((a, f)) }
        server.start()
        link.start()
    }

    deinit {
        link.stop()
        server.stop()
        pty.close()
    }

    /// Runs the loop until `condition` or 5 s; whether it held.
    @discardableResult
    func run(until condition: () -> Bool) throws -> Bool {
        try loop.run(until: condition, deadline: MonotonicClock.now() + .seconds(5))
    }

    func command(_ line: String) {
        if case .failure(let e) = server.command(line) { Issue.record("meter-sim refused \(line): \(e.text)") }
    }
}

@Suite(.serialized) struct MeterLinkOverPtyTests {
    static func meters() -> [SimulatedMeter] {
        let now = MonotonicClock.now()
        // 360 kW: 100 Wh a second, so a register that advances shows it within one poll.
        return [SimulatedMeter(address: 1, model: .eastronSDM630, serial: 4_000_001, powerW: 360_000, importWh: 2_000_000, now: now),
                SimulatedMeter(address: 5, model: .abbB23, serial: 4_000_005, powerW: 360_000, importWh: 7_000_000, now: now)]
    }

    @Test func bothMetersAreReadAndTheirRegistersAdvance() throws {
        let b = try PtyBench(meters: Self.meters())
        #expect(try b.run { b.readings.filter { $0.address == 1 }.count >= 4 && b.readings.filter { $0.address == 5 }.count >= 4 })
        #expect(b.failures.isEmpty, "\(b.failures)")
        for a in [UInt8(1), 5] {
            let r = b.readings.filter { $0.address == a }
            #expect(zip(r, r.dropFirst()).allSatisfy { $0.importWh < $1.importWh && $0.at < $1.at }, "meter \(a): \(r.map(\.importWh))")
            // 100 Wh/s: the register's growth follows the time between the readings (ABB's 10 Wh
            // steps and the read latency within 30 Wh).
            let wh = r.last!.importWh - r.first!.importWh
            let expected = (r.last!.at - r.first!.at).nanosecondsClamped / 10_000_000
            #expect(abs(wh - expected) <= 30, "meter \(a): \(wh) Wh over \(expected) expected")
            #expect(r.allSatisfy { $0.powerW == 360_000 })
        }
        #expect(b.readings.first { $0.address == 1 }?.serial == "4000001")
        #expect(b.readings.first { $0.address == 5 }?.serial == "4000005")
    }

    @Test func aSilentMeterIsNoResponseAndTheOtherIsStillRead() throws {
        let b = try PtyBench(meters: Self.meters())
        #expect(try b.run { b.readings.count >= 2 })
        b.command("silence 5 on")
        let before = b.readings.filter { $0.address == 1 }.count
        #expect(try b.run { !b.failures.isEmpty && b.readings.filter { $0.address == 1 }.count >= before + 2 })
        #expect(b.failures.allSatisfy { $0.address == 5 && $0.failure == .bus(block: 0, .noResponse(attempts: 2)) }, "\(b.failures)")
    }

    @Test func aDamagedCRCIsInvalidResponse() throws {
        let b = try PtyBench(meters: Self.meters())
        #expect(try b.run { b.readings.count >= 2 })
        b.command("crc 1 2")
        #expect(try b.run { !b.failures.isEmpty })
        guard case .bus(block: 0, .invalidResponse(.crcMismatch, attempts: 2)) = b.failures[0].failure, b.failures[0].address == 1 else {
            Issue.record("expected a CRC failure of meter 1, got \(b.failures)")
            return
        }
        #expect(b.link.core.client.counters.invalidFrames["crc"] == 2)
    }

    @Test(arguments: [(UInt8(2), ModbusException.illegalDataAddress), (4, .serverDeviceFailure), (6, .serverDeviceBusy), (11, .gatewayTargetFailedToRespond)])
    func anExceptionCodeIsReportedAsItsCase(code: UInt8, expected: ModbusException) throws {
        let b = try PtyBench(meters: Self.meters())
        #expect(try b.run { b.readings.count >= 2 })
        b.command("exception 5 \(code)")
        #expect(try b.run { !b.failures.isEmpty })
        #expect(b.failures.map(\.failure) == [.bus(block: 0, .exception(expected))])
        #expect(b.failures.map(\.address) == [5])
    }

    @Test func aBackwardsRegisterAndASerialChangeArriveAsRead() throws {
        let b = try PtyBench(meters: Self.meters())
        #expect(try b.run { b.readings.filter { $0.address == 1 }.count >= 2 })
        let last = b.readings.last { $0.address == 1 }!.importWh
        b.command("power 1 0")
        b.command("backwards 1 50000")
        b.command("serial 1 31337")
        let count = b.readings.count
        #expect(try b.run { b.readings.dropFirst(count).contains { $0.address == 1 } })
        let next = b.readings.dropFirst(count).first { $0.address == 1 }!
        #expect(next.importWh < last - 40_000)
        #expect(next.serial == "31337")
        #expect(next.powerW == 0)
    }

    @Test func theLinkRefusesLinesAndSilencesOutsideTheBus() throws {
        let loop = try EventLoop()
        let meters = [MeterSpec(address: 1, model: .abbB23)]
        #expect(throws: MeterLinkSetupError.unsupportedLine(LineSettings(baud: 57600, dataBits: 8, parity: .none, stopBits: 1))) {
            try ModbusMeterLink(loop: loop, settings: MeterLinkSettings(path: "/dev/null", line: LineSettings(baud: 57600, dataBits: 8, parity: .none, stopBits: 1), meters: meters))
        }
        let line = LineSettings(baud: 19200, dataBits: 8, parity: .even, stopBits: 1)
        #expect(MeterLinkSettings(path: "", line: line, meters: meters).timing.frameSilence == .nanoseconds(2_005_208))
        #expect(throws: MeterLinkSetupError.frameSilence(.milliseconds(1))) {
            try ModbusMeterLink(loop: loop, settings: MeterLinkSettings(path: "/dev/null", line: line, meters: meters, frameSilence: .milliseconds(1)))
        }
        #expect(throws: MeterLinkSetupError.responseTimeout(.seconds(10))) {
            try ModbusMeterLink(loop: loop, settings: MeterLinkSettings(path: "/dev/null", line: line, meters: meters, responseTimeout: .seconds(10)))
        }
        #expect(throws: MeterLinkSetupError.retries(6)) {
            try ModbusMeterLink(loop: loop, settings: MeterLinkSettings(path: "/dev/null", line: line, meters: meters, maxRetries: 6))
        }
        #expect(throws: MeterLinkSetupError.bus(.duplicateAddress(1))) {
            try ModbusMeterLink(loop: loop, settings: MeterLinkSettings(path: "/dev/null", line: line, meters: meters + meters))
        }
    }

    /// The executable: prints its pty, serves the maps, takes fault commands on standard input.
    @Test func meterSimAsAProcessServesTheLinkAndTakesCommands() throws {
        let exe = ChildProcess.executableDirectory() + "/meter-sim"
        let child = try ChildProcess.spawn(exe, ["--meter", "3:sdm72:555:36000:1000", "--meter", "4:abb-b23:666:0:120"])
        defer { child.terminate() }
        guard let first = try child.readLine(timeout: .seconds(5)), first.hasPrefix("pty ") else {
            Issue.record("meter-sim did not print its pty")
            return
        }
        let loop = try EventLoop()
        let settings = MeterLinkSettings(path: String(first.dropFirst(4)), line: LineSettings(baud: 9600, dataBits: 8, parity: .none, stopBits: 1),
                                         meters: [MeterSpec(address: 3, model: .eastronSDM72), MeterSpec(address: 4, model: .abbB23)],
                                         pollInterval: .milliseconds(200), responseTimeout: .milliseconds(200), maxRetries: 1)
        let link = try ModbusMeterLink(loop: loop, settings: settings)
        var readings: [(UInt8, Int64, String)] = []
        var failures: [(UInt8, MeterFailure)] = []
        link.onReading = { a, wh, _, serial, _ in readings.append((a, wh, serial)) }
        link.onFailure = { a, f in failures.append((a, f)) }
        link.start()
        defer { link.stop() }
        #expect(try loop.run(until: { readings.count >= 4 }, deadline: MonotonicClock.now() + .seconds(5)))
        #expect(readings.first { $0.0 == 4 }?.1 == 120)
        #expect(readings.first { $0.0 == 4 }?.2 == "666")
        #expect(readings.filter { $0.0 == 3 }.allSatisfy { $0.1 >= 1000 && $0.2 == "555" })
        try child.writeLine("serial 3 777")
        #expect(try child.readLine(timeout: .seconds(5))?.hasPrefix("ok meter 3 sdm72 serial 777") == true)
        try child.writeLine("exception 4 2")
        #expect(try child.readLine(timeout: .seconds(5))?.hasPrefix("ok ") == true)
        try child.writeLine("bogus 4")
        #expect(try child.readLine(timeout: .seconds(5)) == "error unknown command bogus")
        let n = readings.count
        #expect(try loop.run(until: { readings.dropFirst(n).contains { $0.0 == 3 && $0.2 == "777" } && !failures.isEmpty },
                             deadline: MonotonicClock.now() + .seconds(5)))
        #expect(failures.map(\.1) == [.bus(block: 0, .exception(.illegalDataAddress))])
        child.closeStdin()
        #expect(child.wait(timeout: .seconds(5)) == 0, "meter-sim ends at the end of its input")
    }
}
