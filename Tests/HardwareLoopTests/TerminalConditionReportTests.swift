import Foundation
import Testing
import Platform
import PSPLink
import PSPTerminal
import TerminalPort
import Timebase
import Transport

/// What the PSP terminal port tells the station about the terminal's conditions, against
/// terminal-sim as a process on a real pty.
@Suite(.serialized) struct TerminalConditionReports {
    final class Box { var conditions: [TerminalCondition] = [] }

    func port(_ sim: SimProcess) throws -> (EventLoop, PSPTerminalPort, Box) {
        let loop = try EventLoop()
        var config = PSPLinkConfig(family: .apollo, transport: .serial)
        config.timeouts.keepAlive = .milliseconds(700)
        config.timeouts.general = .seconds(2)
        let driver = PSPLinkDriver(loop: loop, endpoint: ptyEndpoint(sim), config: config,
                                   backoff: Backoff(initial: .milliseconds(100), cap: .milliseconds(500)))
        let port = PSPTerminalPort(loop: loop, driver: driver)
        let box = Box()
        port.onCondition = { box.conditions.append($0) }
        port.start()
        return (loop, port, box)
    }

    func alerts(_ box: Box) -> [String] {
        box.conditions.compactMap { if case .securityAlert(let t) = $0 { return t }; return nil }
    }

    @Test func theTerminalSaysWhoItIs() throws {
        let sim = try SimProcess(["--pty", "--serial", "APO-SWAP-7", "--firmware", "sim/9.9"])
        let (loop, port, box) = try port(sim)
        defer { port.stop() }
        #expect(try loop.run(until: { !box.conditions.isEmpty }, deadline: MonotonicClock.now() + .seconds(30)))
        guard case .identified(let inv)? = box.conditions.first else { Issue.record("\(box.conditions)"); return }
        #expect(inv.serialNumber == "APO-SWAP-7")
        #expect(inv.firmware == "sim/9.9")
    }

    @Test func aTerminalStartedTamperedIsReportedOnce() throws {
        let sim = try SimProcess(["--pty", "--tamper"])
        let (loop, port, box) = try port(sim)
        defer { port.stop() }
        #expect(try loop.run(until: { !alerts(box).isEmpty }, deadline: MonotonicClock.now() + .seconds(30)))
        // Several more bring-up attempts: still one report.
        _ = try loop.run(until: { port.driver.core.counters.securityRefusals >= 3 }, deadline: MonotonicClock.now() + .seconds(30))
        #expect(alerts(box).count == 1, "\(box.conditions)")
        #expect(alerts(box).first?.contains("0x0E") == true)
        #expect(!port.status.linkUp)
    }

    @Test func theTamperControlTripsARunningTerminal() throws {
        let sim = try SimProcess(["--pty"])
        let (loop, port, box) = try port(sim)
        defer { port.stop() }
        #expect(try loop.run(until: { port.status.linkUp && !box.conditions.isEmpty }, deadline: MonotonicClock.now() + .seconds(30)))
        #expect(alerts(box).isEmpty)
        try sim.control("tamper")
        #expect(try loop.run(until: { !alerts(box).isEmpty }, deadline: MonotonicClock.now() + .seconds(30)), "\(box.conditions)")
        #expect(sim.records("tamper").count == 1)
    }
}
