import Foundation
import Glibc
import Platform
import Testing

/// `charger.io = socket`: the real paybridged whose charger is the controller on its diagnostic
/// socket, played here by the real paybridgectl (`controller --confirm-relays` for the
/// contactors, `plug` and `meter` by hand), with terminal-sim on a pty and cloud-sim.
@Suite(.serialized) struct ControllerSocketTests {
    static let ctlPath = ChildProcess.executableDirectory() + "/paybridgectl"

    func ctl(_ socket: String, _ args: [String]) throws -> (status: Int32?, out: [String]) {
        try paybridgectl(["--socket", socket] + args)
    }

    func json(_ line: String?) -> [String: Any] { jsonObject(line) }

    func status(_ socket: String) -> [String: Any] { json((try? ctl(socket, ["--json", "status"]))?.out.first) }

    func payments(_ socket: String) -> (enabled: Bool, reason: String) {
        let p = status(socket)["payments"] as? [String: Any]
        return (p?["enabled"] as? Bool ?? false, p?["reason"] as? String ?? "")
    }

    func connector1(_ socket: String) -> [String: Any] {
        ((status(socket)["connectors"] as? [[String: Any]])?.first) ?? [:]
    }

    func phase(_ socket: String) -> String? { (connector1(socket)["session"] as? [String: Any])?["phase"] as? String }

    /// The controller's lines (paybridgectl --json controller), read as they come.
    final class Controller {
        let process: ChildProcess
        var lines: [[String: Any]] = []
        init(socket: String) throws {
            process = try ChildProcess.spawn(ControllerSocketTests.ctlPath,
                                             ["--socket", socket, "--json", "controller", "--confirm-relays"], pipeStdin: false)
        }
        /// Reads what has arrived (up to `timeout` for the next line).
        func pump(_ timeout: Duration = .milliseconds(100)) {
            while let line = try? process.readLine(timeout: timeout),
                  let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] {
                lines.append(o)
            }
        }
        func events(_ kind: String) -> [[String: Any]] { lines.filter { $0["event"] as? String == kind } }
    }

    static let settings = ["charger.io = socket", "charger.max_power_w = 1000000", "charger.meter_timeout_seconds = 30",
                           "tariff.start_fee = 50", "tariff.energy_per_kwh_milli = 400000", "tariff.time_per_minute_milli = 0",
                           "payment.preauth = 2500"]

    @Test func aSessionDrivenByTheControllersPlugAndMeterCapturesTheTariffOnItsReadings() throws {
        let socket = DiagnosticsSocketTests.socketPath()
        let bench = try Bench(terminal: ["--session", "approve", "--fallback", "nocard"],
                              config: ["diagnostics.socket = \(socket)"] + Self.settings, ev: nil)
        defer { _ = bench.stop() }
        #expect(waitUntil(.seconds(10)) { access(socket, F_OK) == 0 })

        // No controller: no payments, and the reason says so.
        #expect(waitUntil(.seconds(10)) { payments(socket).reason.contains("no charger controller is connected") }, "\(payments(socket))")
        #expect(!payments(socket).enabled)
        #expect(bench.sim.records("approved").isEmpty)
        // A meter reading without a session is taken (it is the hardware's truth), a bad connector is not.
        #expect(try ctl(socket, ["meter", "1", "10000"]).status == 0)
        #expect(try ctl(socket, ["meter", "3", "10000"]).status == 1)

        let controller = try Controller(socket: socket)
        defer { controller.process.terminate() }
        controller.pump(.seconds(2))
        #expect(controller.lines.first?["controller"] as? Bool == true, "\(controller.lines)")
        // On connecting it is asked for every connector's contactor state (open) and told the offers.
        #expect(controller.events("relay").contains { $0["connector"] as? Int == 1 && $0["closed"] as? Bool == false })
        #expect(waitUntil(.seconds(10)) { payments(socket).enabled }, "\(payments(socket))")
        // A second controller is refused while the first is connected.
        let second = try ctl(socket, ["--json", "controller"])
        #expect(second.status == 1 && (json(second.out.first)["error"] as? [String: Any])?["code"] as? String == "refused")

        // The card is tapped and approved: the connector waits for the plug, the relay stays open.
        #expect(waitUntil(.seconds(30)) { controller.pump(); return controller.events("offer").contains { $0["offer"] as? String == "awaiting-plug" } },
                "\(controller.lines)")
        #expect(!controller.events("relay").contains { $0["closed"] as? Bool == true }, "relay asked closed before the plug")
        // A technician follows it live.
        let watch = try ChildProcess.spawn(Self.ctlPath, ["--socket", socket, "watch"], pipeStdin: false)
        defer { watch.terminate() }
        #expect(try watch.readLine(timeout: .seconds(5))?.hasPrefix("watching") == true)
        #expect(try ctl(socket, ["plug", "1", "in"]).status == 0)
        #expect(waitUntil(.seconds(10)) { controller.pump(); return phase(socket) == "charging" }, "\(connector1(socket))")
        var watched: [String] = []
        while let line = try watch.readLine(timeout: .milliseconds(500)) { watched.append(line) }
        for text in ["connector 1: relay close commanded", "connector 1: relay closed", "session 1 charging on connector 1"] {
            #expect(watched.contains { $0.hasSuffix(text) }, "watch did not show '\(text)': \(watched)")
        }
        #expect(controller.events("relay").contains { $0["closed"] as? Bool == true })
        #expect(connector1(socket)["relay"] as? String == "closed")

        // Readings: the first sets the start; 1 MW allows 277 Wh a second, so these are plausible.
        #expect(try ctl(socket, ["meter", "1", "10000"]).status == 0)
        usleep(1_100_000)
        #expect(try ctl(socket, ["meter", "1", "10150", "--power", "500000"]).status == 0)
        // Backwards, and more than the connector could deliver: refused, counted, the last reading stands.
        let backwards = try ctl(socket, ["--json", "meter", "1", "10100"])
        #expect(backwards.status == 1 && ((json(backwards.out.first)["error"] as? [String: Any])?["message"] as? String ?? "").contains("backwards"))
        #expect(try ctl(socket, ["meter", "1", "900000"]).status == 1)
        usleep(1_100_000)
        #expect(try ctl(socket, ["meter", "1", "10300"]).status == 0)
        #expect(waitUntil(.seconds(5)) { ((connector1(socket)["session"] as? [String: Any])?["energy_wh"] as? Int) == 300 }, "\(connector1(socket))")
        let counters = (status(socket)["controller"] as? [String: Any])?["counters"] as? [String: Any]
        #expect(counters?["meter.rejected.backwards"] as? Int == 1 && counters?["meter.rejected.jump"] as? Int == 1, "\(String(describing: counters))")

        // The car leaves: stopped, relay opened (asked of the controller), captured for 300 Wh.
        #expect(try ctl(socket, ["plug", "1", "out"]).status == 0)
        #expect(waitUntil(.seconds(30)) { !bench.sim.records("committed").isEmpty }, "no commit")
        // 0.50 start + 300 Wh at 4.00/kWh = 1.70
        #expect(bench.sim.records("committed").first?["amount"] as? Int == 170, "\(bench.sim.records("committed"))")
        #expect(waitUntil(.seconds(30)) { minor(bench.settlements("Settled").first?["settlementAmount"]) == 170 })
        controller.pump()
        #expect(controller.events("relay").last?["closed"] as? Bool == false)
        #expect(connector1(socket)["relay"] as? String == "open")

        // The controller goes away: payments stop again, with the reason.
        controller.process.signal(SIGKILL)
        _ = controller.process.wait(timeout: .seconds(5))
        #expect(waitUntil(.seconds(10)) { !payments(socket).enabled && payments(socket).reason.contains("controller") }, "\(payments(socket))")
    }

    @Test func losingTheControllerWhileChargingStopsAndCapturesWhatWasMetered() throws {
        try charging(from: 5000) { (socket: String, bench: Bench, controller: Controller) throws in
            usleep(1_100_000)
            #expect(try ctl(socket, ["meter", "1", "5100"]).status == 0)
            #expect(waitUntil(.seconds(5)) { ((connector1(socket)["session"] as? [String: Any])?["energy_wh"] as? Int) == 100 })
            controller.process.signal(SIGKILL)
            // Nothing can meter or open the contactor for us now: the session stops as faulted and
            // is captured for the 100 Wh read (0.50 + 0.40).
            #expect(waitUntil(.seconds(30)) { !bench.sim.records("committed").isEmpty }, "no commit")
            #expect(bench.sim.records("committed").first?["amount"] as? Int == 90, "\(bench.sim.records("committed"))")
            #expect(!payments(socket).enabled)
        }
    }

    /// One approved session on a bench whose controller is paybridgectl, charging from the
    /// register `start` when `body` runs (one session per bench: terminal-sim's scripted sessions
    /// would otherwise be taken by the tap-to-stop scans while charging).
    func charging(from start: Int, meterTimeout: Int = 30, _ body: (String, Bench, Controller) throws -> Void) throws {
        let socket = DiagnosticsSocketTests.socketPath()
        let settings = Self.settings.filter { !$0.hasPrefix("charger.meter_timeout_seconds") } + ["charger.meter_timeout_seconds = \(meterTimeout)"]
        let bench = try Bench(terminal: ["--session", "approve", "--fallback", "nocard"],
                              config: ["diagnostics.socket = \(socket)", "log.level = info"] + settings, ev: nil, keepLog: true)
        defer { _ = bench.stop() }
        #expect(waitUntil(.seconds(10)) { access(socket, F_OK) == 0 })
        let controller = try Controller(socket: socket)
        defer { controller.process.terminate() }
        #expect(waitUntil(.seconds(30)) { phase(socket) == "awaiting-plug" }, "\(connector1(socket))")
        #expect(try ctl(socket, ["plug", "1", "in"]).status == 0)
        #expect(waitUntil(.seconds(10)) { phase(socket) == "charging" }, "\(connector1(socket))")
        #expect(try ctl(socket, ["meter", "1", String(start)]).status == 0)
        try body(socket, bench, controller)
        if bench.sim.records("committed").count + bench.sim.records("voided").count != 1 { Issue.record("daemon log: \(bench.daemonLog)") }
    }

    @Test func aMeterThatFallsSilentStopsTheSessionOnItsLastReading() throws {
        try charging(from: 1000, meterTimeout: 5) { (socket: String, bench: Bench, _: Controller) throws in
            usleep(1_100_000)
            #expect(try ctl(socket, ["meter", "1", "1050"]).status == 0)
            let silentFrom = Date()
            #expect(waitUntil(.seconds(20)) { bench.sim.records("committed").count == 1 }, "the silent meter did not stop the session")
            #expect(Date().timeIntervalSince(silentFrom) >= 4.5, "stopped before the meter timeout")
            // 0.50 + 50 Wh at 4.00/kWh = 0.70
            #expect(bench.sim.records("committed").last?["amount"] as? Int == 70)
            #expect(bench.daemonLog.contains("meter silent for 5s"))
        }
    }

    @Test func aFaultFromTheControllerStopsTheSessionAtOnce() throws {
        try charging(from: 2000) { (socket: String, bench: Bench, _: Controller) throws in
            usleep(1_100_000)
            #expect(try ctl(socket, ["meter", "1", "2100"]).status == 0)
            #expect(try ctl(socket, ["fault", "1"]).status == 2, "a fault without a text is a usage error")
            #expect(try ctl(socket, ["fault", "1", "RCD", "tripped"]).status == 0)
            #expect(waitUntil(.seconds(10)) { bench.sim.records("committed").count == 1 }, "the fault did not stop the session")
            // 0.50 + 100 Wh at 4.00/kWh = 0.90
            #expect(bench.sim.records("committed").last?["amount"] as? Int == 90)
            #expect(bench.daemonLog.contains("connector 1 fault: controller: RCD tripped"))
        }
    }

    @Test func aConnectorTheChargerCannotServeStopsItsSessionAndTakesNoOther() throws {
        try charging(from: 3000) { (socket: String, bench: Bench, controller: Controller) throws in
            #expect(try ctl(socket, ["evse-ready", "1", "no"]).status == 0)
            #expect(waitUntil(.seconds(10)) { bench.sim.records("voided").count == 1 },
                    "evse-ready no did not stop the session")
            #expect(waitUntil(.seconds(10)) { connector1(socket)["status"] as? String == "unavailable" }, "\(connector1(socket))")
            #expect(waitUntil(.seconds(5)) { controller.pump(); return controller.events("offer").last?["offer"] as? String == "unavailable" })
            #expect(try ctl(socket, ["evse-ready", "1", "yes"]).status == 0)
            #expect(waitUntil(.seconds(10)) { connector1(socket)["status"] as? String != "unavailable" })
            // Stopped before any energy flowed: the reservation is released, nothing is captured.
            #expect(bench.sim.records("voided").count == 1 && bench.sim.records("committed").isEmpty)
        }
    }

    /// Issue 16: a contactor that reads closed while commanded open is welded; the latch is on
    /// disk at once, outlives a SIGKILL and restart, keeps the connector out of service, and
    /// only a technician's clear-fault (refused while the contact still reads closed) lifts it.
    @Test func aWeldedContactorIsLatchedAcrossARestartUntilATechnicianClearsIt() throws {
        let socket = DiagnosticsSocketTests.socketPath()
        let bench = try Bench(terminal: ["--fallback", "nocard"], config: ["diagnostics.socket = \(socket)"] + Self.settings, ev: nil, keepLog: true)
        defer { _ = bench.stop() }
        let latchFile = bench.dir + "/state/connector-faults"
        #expect(waitUntil(.seconds(10)) { access(socket, F_OK) == 0 })
        var controller = try Controller(socket: socket)
        #expect(waitUntil(.seconds(10)) { payments(socket).enabled }, "\(payments(socket))")
        #expect(try ctl(socket, ["clear-fault", "1"]).status == 1, "nothing latched yet")

        // Commanded open, the controller says closed: welded.
        #expect(try ctl(socket, ["relay", "1", "closed"]).status == 0)
        #expect(waitUntil(.seconds(10)) { connector1(socket)["status"] as? String == "faulted" }, "\(connector1(socket))")
        #expect(connector1(socket)["latched"] as? String == "welded relay")
        #expect(fileText(latchFile) == "welded=1\n")
        // The platform is told: the connector's StatusNotification says Faulted.
        #expect(waitUntil(.seconds(15)) { bench.cloudBodies("StatusNotification").contains { $0["connectorStatus"] as? String == "Faulted" } },
                "\(bench.cloudBodies("StatusNotification"))")
        let early = try ctl(socket, ["--json", "clear-fault", "1"])
        #expect(early.status == 1 && ((json(early.out.first)["error"] as? [String: Any])?["message"] as? String ?? "").contains("still reads closed"),
                "\(early)")

        // Killed and started again: still out of service.
        controller.process.terminate()
        bench.daemon?.signal(SIGKILL)
        _ = bench.daemon?.wait(timeout: .seconds(10))
        bench.daemon = try bench.launch()
        #expect(waitUntil(.seconds(10)) { connector1(socket)["latched"] as? String == "welded relay" }, "\(connector1(socket))")
        #expect(connector1(socket)["status"] as? String == "faulted")
        #expect(bench.daemonLog.contains("latched out of service until a technician clears it"))
        controller = try Controller(socket: socket)
        defer { controller.process.terminate() }
        #expect(waitUntil(.seconds(10)) { payments(socket).enabled }, "\(payments(socket))")
        #expect(connector1(socket)["status"] as? String == "faulted", "a new controller lifted the latch")

        // The contactor reads open again (the controller confirmed the open it was asked for):
        // the technician clears it.
        let cleared = try ctl(socket, ["clear-fault", "1"])
        #expect(cleared.status == 0, "\(cleared)")
        #expect(waitUntil(.seconds(10)) { connector1(socket)["status"] as? String == "available" }, "\(connector1(socket))")
        #expect(connector1(socket)["latched"] is NSNull)
        #expect(access(latchFile, F_OK) != 0, "the latch file is still there")
        #expect(bench.daemonLog.contains("welded-relay latch cleared by uid"))
    }
}
