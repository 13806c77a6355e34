import Foundation
import Glibc
import Platform
import Testing

/// Issue 16's meter on the bench: the real paybridged reading meter-sim (Modbus RTU on a pty) as
/// `meter.device`, with the charger's controller (paybridgectl, `charger.io = socket`) driving the
/// contactor and the plug, terminal-sim and cloud-sim. The capture is the tariff on the meter's
/// own register difference, and each meter fault has its documented outcome.
@Suite(.serialized) struct ModbusMeterSessionTests {
    /// meter-sim with one SDM630 at address 1, serial 4711, at 1 000 kWh and no power.
    final class MeterSim {
        let process: ChildProcess
        let pty: String
        init() throws {
            process = try ChildProcess.spawn(ChildProcess.executableDirectory() + "/meter-sim", ["--meter", "1:sdm630:4711:0:1000000"])
            guard let first = try process.readLine(timeout: .seconds(5)), first.hasPrefix("pty ") else { throw TestError("meter-sim printed no pty") }
            pty = String(first.dropFirst(4))
        }
        /// Sends a command; its answer line.
        @discardableResult
        func command(_ line: String) throws -> String {
            try process.writeLine(line)
            return try process.readLine(timeout: .seconds(5)) ?? ""
        }
        /// The register now, Wh.
        func registerWh() throws -> Int64? {
            let words = try command("show 1").split(separator: " ")
            guard let i = words.firstIndex(of: "energy"), i + 1 < words.count else { return nil }
            return Int64(words[i + 1])
        }
        deinit { process.terminate() }
    }

    struct TestError: Error, CustomStringConvertible {
        var description: String
        init(_ d: String) { description = d }
    }

    let socketTests = ControllerSocketTests()

    /// 0.50 start fee and 0.40 per kWh (400 000 thousandths of a cent).
    static func settings(_ socket: String, _ meter: MeterSim, timeout: Int = 30) -> [String] {
        ["diagnostics.socket = \(socket)", "charger.io = socket", "charger.max_power_w = 1000000", "charger.meter_timeout_seconds = \(timeout)",
         "tariff.start_fee = 50", "tariff.energy_per_kwh_milli = 400000", "tariff.time_per_minute_milli = 0", "payment.preauth = 2500",
         "meter.device = \(meter.pty)", "meter.poll_ms = 200", "meter.response_timeout_ms = 100", "meter.retries = 1", "charger.meter.1 = 1:sdm630"]
    }

    /// A bench charging on connector 1 with the meter at the start register; `body` gets the
    /// socket, bench, controller and meter.
    func charging(meterTimeout: Int = 30, _ body: (String, Bench, ControllerSocketTests.Controller, MeterSim) throws -> Void) throws {
        let meter = try MeterSim()
        let socket = DiagnosticsSocketTests.socketPath()
        let bench = try Bench(terminal: ["--session", "approve", "--fallback", "nocard"], config: Self.settings(socket, meter, timeout: meterTimeout),
                              ev: nil, keepLog: true)
        defer { _ = bench.stop() }
        #expect(waitUntil(.seconds(10)) { access(socket, F_OK) == 0 })
        let controller = try ControllerSocketTests.Controller(socket: socket)
        defer { controller.process.terminate() }
        // The meter is read and named before any session.
        #expect(waitUntil(.seconds(10)) { meters(socket).first?["serial"] as? String == "4711" }, "\(meters(socket)) \(bench.daemonLog.suffix(800))")
        #expect(waitUntil(.seconds(30)) { controller.pump(); return controller.events("offer").contains { $0["offer"] as? String == "awaiting-plug" } },
                "\(controller.lines)")
        #expect(try socketTests.ctl(socket, ["plug", "1", "in"]).status == 0)
        #expect(waitUntil(.seconds(10)) { controller.pump(); return socketTests.phase(socket) == "charging" }, "\(socketTests.connector1(socket))")
        try body(socket, bench, controller, meter)
    }

    func meters(_ socket: String) -> [[String: Any]] {
        ((socketTests.status(socket)["energy_meters"] as? [String: Any])?["meters"] as? [[String: Any]]) ?? []
    }

    func lastSession(_ socket: String) -> [String: Any] {
        let out = (try? socketTests.ctl(socket, ["--json", "sessions"]))?.out.first
        return ((socketTests.json(out)["sessions"] as? [[String: Any]])?.last) ?? [:]
    }

    /// 50 + energy × 0.4 cents, rounded half up.
    static func tariff(_ wh: Int64) -> Int { Int(50 + (wh * 400 + 500) / 1000) }

    @Test func theCaptureIsTheTariffOnTheMetersRegisterDifference() throws {
        try charging { socket, bench, _, meter in
            // 360 kW: 100 Wh a second while the contactor is closed.
            try meter.command("power 1 360000")
            usleep(2_500_000)
            try meter.command("power 1 0")
            usleep(600_000)   // a reading or two at rest
            let register = try #require(try meter.registerWh())
            #expect(waitUntil(.seconds(5)) { (meters(socket).first?["register_wh"] as? Int).map(Int64.init) == register }, "\(meters(socket))")
            #expect(try socketTests.ctl(socket, ["plug", "1", "out"]).status == 0)
            #expect(waitUntil(.seconds(30)) { !bench.sim.records("committed").isEmpty }, "no commit: \(bench.daemonLog.suffix(1500))")
            let session = lastSession(socket)
            let start = try #require(session["meter_start_wh"] as? Int), end = try #require(session["meter_end_wh"] as? Int)
            #expect(session["meter_serial"] as? String == "4711")
            #expect(start == 1_000_000 && Int64(end) == register, "start \(start) end \(end) meter \(register)")
            #expect(session["energy_wh"] as? Int == end - start)
            #expect(end - start >= 200, "too little energy to tell anything: \(end - start) Wh")
            let captured = bench.sim.records("committed").first?["amount"] as? Int
            #expect(captured == Self.tariff(Int64(end - start)), "captured \(String(describing: captured)) for \(end - start) Wh")
            // The reconciliation export explains it with the same numbers.
            let export = try socketTests.ctl(socket, ["export", "--format", "json"])
            #expect(export.out.contains { $0.contains("\"meter_serial\":\"4711\"") && $0.contains("\"meter_start_wh\":\(start)") && $0.contains("\"meter_end_wh\":\(end)") },
                    "\(export.out)")
            // The controller's own meter readings are not billed while the daemon reads the meter.
            let refused = try socketTests.ctl(socket, ["meter", "1", "2000000"])
            #expect(refused.status == 1)
        }
    }

    /// CRC damage and an exception are failures of a read (counted, retried next cycle, the session
    /// goes on); a register that goes backwards is refused; a meter whose serial number changes
    /// while charging is refused from then on, so the silence rule stops the session on the last
    /// reading of the meter it started with, and that is what is captured.
    @Test func eachMeterFaultHasItsOutcomeAndTheCaptureIsTheLastGoodReading() throws {
        try charging(meterTimeout: 5) { socket, bench, _, meter in
            try meter.command("power 1 360000")
            usleep(1_200_000)
            // Two damaged answers: the read and its retry fail.
            #expect(try meter.command("crc 1 2").hasPrefix("ok"))
            #expect(waitUntil(.seconds(5)) { (meters(socket).first?["failures"] as? Int ?? 0) >= 1 }, "\(meters(socket))")
            let afterCRC = meters(socket).first?["failures"] as? Int ?? 0
            // An exception is the meter's answer: not retried, a failure of its own.
            #expect(try meter.command("exception 1 4 1").hasPrefix("ok"))
            #expect(waitUntil(.seconds(5)) { (meters(socket).first?["failures"] as? Int ?? 0) > afterCRC }, "\(meters(socket))")
            #expect(bench.daemonLog.contains("CRC mismatch") && bench.daemonLog.contains("exception"), "\(bench.daemonLog.suffix(800))")
            #expect(socketTests.phase(socket) == "charging", "a failed read stopped the session")
            #expect(try meter.command("backwards 1 150").hasPrefix("ok"))
            #expect(waitUntil(.seconds(5)) { (meters(socket).first?["rejected"] as? Int ?? 0) >= 1 }, "\(meters(socket))")
            // Past the backwards step the register climbs above the last accepted reading again.
            usleep(1_000_000)
            try meter.command("power 1 0")
            usleep(600_000)
            let lastGood = try #require(meters(socket).first?["register_wh"] as? Int)
            #expect(try meter.command("serial 1 9999").hasPrefix("ok"))
            try meter.command("power 1 360000")
            // Refused from here: no accepted reading for 5 s stops the session.
            #expect(waitUntil(.seconds(20)) { !bench.sim.records("committed").isEmpty }, "the swapped meter did not stop the session: \(bench.daemonLog.suffix(1500))")
            #expect(bench.daemonLog.contains("serial number changed from 4711 to 9999 while charging"), "\(bench.daemonLog.suffix(1000))")
            #expect(bench.daemonLog.contains("went backwards"), "\(bench.daemonLog.suffix(1000))")
            let session = lastSession(socket)
            #expect(session["meter_end_wh"] as? Int == lastGood && session["meter_serial"] as? String == "4711", "\(session)")
            let start = session["meter_start_wh"] as? Int ?? 0
            #expect(bench.sim.records("committed").first?["amount"] as? Int == Self.tariff(Int64(lastGood - start)))
        }
    }

    /// A meter that stops answering while charging (`charger.meter_timeout_seconds`, 5 s here)
    /// stops the session, captured on its last good reading; nothing it said later is billed.
    @Test func aSilentMeterStopsTheSessionOnItsLastGoodReading() throws {
        try charging(meterTimeout: 5) { socket, bench, _, meter in
            try meter.command("power 1 360000")
            usleep(1_000_000)
            try meter.command("power 1 0")
            usleep(600_000)
            let lastGood = try #require(meters(socket).first?["register_wh"] as? Int)
            let silentFrom = Date()
            #expect(try meter.command("silence 1 on").hasPrefix("ok"))
            try meter.command("power 1 360000")
            #expect(waitUntil(.seconds(20)) { !bench.sim.records("committed").isEmpty }, "the silent meter did not stop the session: \(bench.daemonLog.suffix(1000))")
            #expect(Date().timeIntervalSince(silentFrom) >= 4.5, "stopped before the meter timeout")
            #expect(bench.daemonLog.contains("meter silent for 5s"))
            let session = lastSession(socket)
            let start = session["meter_start_wh"] as? Int ?? 0
            #expect(session["meter_end_wh"] as? Int == lastGood, "\(session)")
            #expect(bench.sim.records("committed").first?["amount"] as? Int == Self.tariff(Int64(lastGood - start)))
            #expect((meters(socket).first?["failures"] as? Int ?? 0) >= 1)
        }
    }
}
