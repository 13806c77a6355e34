import Foundation
import Testing
import Platform
import PSPCodec
import PSPLink
import Transport

func ptyEndpoint(_ sim: SimProcess) -> Endpoint { .serial(path: sim.devicePath, settings: .psp) }
func tcpEndpoint(_ sim: SimProcess) -> Endpoint { .tcp(host: "127.0.0.1", port: sim.port) }
func tempLink() -> String { FileManager.default.temporaryDirectory.appendingPathComponent("ttyPSP-\(UUID().uuidString.prefix(8))").path }

/// The link against terminal-sim as a separate process, on a real pty and over loopback TCP.
@Suite(.serialized) struct LinkOverPTY {
    @Test func fullExchangeStartCardReadAuthApprovedCommit() throws {
        let sim = try SimProcess(["--pty", "--family", "p6x"])
        let host = try Host(ptyEndpoint(sim), family: .p6x)
        #expect(try host.run { $0.isUp })
        guard case .sessionApproved(let id, _)? = try host.pay(amount: 2500) else { Issue.record("no approval"); return }
        let card = host.messages().compactMap { if case .cardRead(let d) = $0 { return CardData(dol: d) } else { return nil } }.first
        #expect(card?.maskedPAN == "476173******0119")
        #expect(try host.request(.commitSession(sessionID: id, amount: 1899)) == .result(.ok))
        #expect(sim.records("approved").first?["amount"] as? Int == 2500)
        let committed = sim.records("committed")
        #expect(committed.count == 1)
        #expect(committed.first?["amount"] as? Int == 1899)
        #expect(committed.first?["sessionId"] as? Int == Int(id))
    }

    @Test func decline() throws {
        let sim = try SimProcess(["--pty", "--session", "decline reason=9"])
        let host = try Host(ptyEndpoint(sim), family: .apollo)
        #expect(try host.run { $0.isUp })
        #expect(try host.pay(amount: 2500) == .sessionDeclined(reason: 9, dol: []))
        #expect(sim.records("declined").count == 1)
        #expect(sim.records("approved").isEmpty)
    }

    @Test func cancelWhileWaitingForACard() throws {
        let sim = try SimProcess(["--pty", "--session", "nocard"])
        let host = try Host(ptyEndpoint(sim), family: .apollo)
        #expect(try host.run { $0.isUp })
        #expect(try host.request(.startSession(StartSession(amount: 100, reference: 1))) == .result(.ok))
        #expect(try host.request(.cancelSession) == .response(.sessionCancelled))
        #expect(sim.records("cancelled").first?["by"] as? String == "host")
    }

    @Test func unplugAndReplugResumesWithoutARestart() throws {
        let link = tempLink()
        defer { unlink(link) }
        let sim = try SimProcess(["--pty", "--link", link, "--family", "p6x"])
        let host = try Host(.serial(path: link, settings: .psp), family: .p6x)
        #expect(try host.run { $0.isUp })
        guard case .sessionApproved(let id, _)? = try host.pay(amount: 3000) else { Issue.record("no approval"); return }
        // The technician pulls the cable mid-charge; the device node disappears and comes back.
        try sim.control("unplug 800")
        #expect(try host.run { h in h.events.contains { if case .down = $0 { return true }; return false } })
        #expect(try host.run { $0.isUp }, "link did not come back after replug")
        #expect(host.driver.connection.counters.opens >= 2)
        #expect(try host.request(.commitSession(sessionID: id, amount: 2000)) == .result(.ok))
        #expect(sim.records("committed").first?["amount"] as? Int == 2000)
    }

    @Test func terminalResetMidSessionThenCommit() throws {
        let sim = try SimProcess(["--pty", "--fault", "reset on approved 1"])
        let host = try Host(ptyEndpoint(sim), family: .apollo)
        #expect(try host.run { $0.isUp })
        guard case .sessionApproved(let id, _)? = try host.pay(amount: 4000) else { Issue.record("no approval"); return }
        #expect(try host.run { h in h.events.contains(.terminalReset) })
        #expect(try host.run { $0.isUp })
        #expect(try host.request(.commitSession(sessionID: id, amount: 3999)) == .result(.ok))
        #expect(sim.records("reset").count == 1)
        #expect(sim.records("committed").first?["amount"] as? Int == 3999)
    }

    @Test func garbageCorruptionAndSingleByteWritesOnTheLine() throws {
        let sim = try SimProcess(["--pty", "--split", "--fault", "garbage 80 on cardread 1", "--fault", "corrupt on command GetStatus 2"])
        let host = try Host(ptyEndpoint(sim), family: .apollo)
        #expect(try host.run { $0.isUp })
        guard case .sessionApproved(let id, _)? = try host.pay(amount: 1000) else { Issue.record("no approval"); return }
        #expect(try host.request(.commitSession(sessionID: id, amount: 1000)) == .result(.ok))
        #expect(host.driver.core.counters.malformed.malformedTotal >= 1)
        #expect(sim.records("committed").count == 1)
    }

    @Test func aSecondProcessCannotOpenTheSameTerminal() throws {
        let sim = try SimProcess(["--pty"])
        let host = try Host(ptyEndpoint(sim), family: .apollo)
        #expect(try host.run { $0.isUp })
        #expect(throws: SerialOpenError.busy(sim.devicePath)) { _ = try SerialPort.open(path: sim.devicePath, settings: .psp) }
    }
}

@Suite(.serialized) struct LinkOverTCP {
    @Test func fullExchangeOverLoopback() throws {
        let sim = try SimProcess(["--tcp", "0"])
        let host = try Host(tcpEndpoint(sim), family: .apollo)
        #expect(try host.run { $0.isUp })
        guard case .sessionApproved(let id, _)? = try host.pay(amount: 5000) else { Issue.record("no approval"); return }
        #expect(try host.request(.commitSession(sessionID: id, amount: 4321)) == .result(.ok))
        #expect(sim.records("committed").first?["amount"] as? Int == 4321)
    }

    @Test func framesSplitAcrossReadsAreReassembled() throws {
        let sim = try SimProcess(["--tcp", "0", "--split"])
        let host = try Host(tcpEndpoint(sim), family: .apollo) { $0.protocolOptions = [.extendedFormat, .authorizationDOL, .detailedResults] }
        #expect(try host.run { $0.isUp })
        #expect(host.driver.core.format == .extended)
        guard case .sessionApproved(let id, _)? = try host.pay(amount: 5000) else { Issue.record("no approval"); return }
        #expect(try host.request(.voidSession(sessionID: id)) == .result(.ok))
        #expect(sim.records("voided").count == 1)
    }

    @Test func keepAliveHoldsTheConnectionPastTheIdleClose() throws {
        // Keep-alive every 0.7 s against a 3 s idle close: a wide margin for a loaded machine.
        let sim = try SimProcess(["--tcp", "0", "--idle-close", "3000"])
        let host = try Host(tcpEndpoint(sim), family: .apollo)
        #expect(try host.run { $0.isUp })
        try host.run(timeout: .seconds(7)) { _ in false }
        #expect(host.isUp)
        #expect(host.driver.connection.counters.opens == 1, "the terminal closed an idle connection")
    }

    @Test func keepsRetryingUntilTheTerminalListens() throws {
        // A free port: bind, read it back, release it.
        let probe = try TCPListener.listen(port: 0)
        let port = probe.port
        probe.close()
        let host = try Host(.tcp(host: "127.0.0.1", port: port), family: .apollo)
        try host.run(timeout: .milliseconds(1500)) { _ in false }
        #expect(!host.isUp)
        #expect(host.driver.connection.counters.openFailures >= 2, "refused connects are retried with backoff")
        let sim = try SimProcess(["--tcp", String(port)])
        #expect(sim.port == port)
        #expect(try host.run { $0.isUp })
    }

    @Test func reconnectsAfterTheTerminalDropsTheConnection() throws {
        let sim = try SimProcess(["--tcp", "0", "--fault", "unplug 500 on approved 1"])
        let host = try Host(tcpEndpoint(sim), family: .apollo)
        #expect(try host.run { $0.isUp })
        guard case .sessionApproved(let id, _)? = try host.pay(amount: 700) else { Issue.record("no approval"); return }
        #expect(try host.run { h in h.events.contains { if case .down = $0 { return true }; return false } })
        #expect(try host.run { $0.isUp })
        #expect(try host.request(.commitSession(sessionID: id, amount: 700)) == .result(.ok))
    }
}
