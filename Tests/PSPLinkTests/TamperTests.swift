import Testing
import PSPCodec
import PSPLink
import TerminalSim
import Timebase

/// The tamper signal as the link reads it ([INFERRED]: Setup / Enable refused with detailed
/// reason 0x0E, `PSPLinkConfig.securityRefusals`), against the simulated terminal that plays it.
@Suite struct TamperSignal {
    func alerts(_ w: LinkWorld) -> [LinkEvent] {
        w.events.filter { if case .securityAlert = $0 { return true }; return false }
    }

    @Test func aTamperedApolloIsReportedOnceAndNeverComesUp() {
        var w = apolloWorld { $0.tampered = true }
        #expect(w.run(within: .seconds(10)) { _ in false } == false)
        #expect(!w.isUp)
        #expect(alerts(w) == [.securityAlert(command: "Setup", reason: ResultReason.paymentApplicationInvalidState)], "\(w.events)")
        #expect(w.link.counters.securityRefusals >= 3, "the bring-up keeps trying; it is reported once")
    }

    @Test func aTamperDuringOperationIsSeenAtTheNextBringUp() {
        var w = apolloWorld { $0.faults = [ArmedFault(.tamper, on: .approved(1))] }
        #expect(w.run { $0.isUp })
        #expect(alerts(w).isEmpty)
        guard case .sessionApproved? = pay(&w) else { Issue.record("no approval: \(w.events)"); return }
        #expect(w.run { !alerts($0).isEmpty }, "\(w.events)")
        #expect(w.sim.tampered)
        #expect(!w.isUp)
    }

    @Test func eachFailedBringUpStreakIsReportedOnce() {
        let refusal = SimFault.reply(command: "Setup", header: 0x00, payload: [0x01, ResultReason.paymentApplicationInvalidState], count: 1)
        var w = apolloWorld { $0.faults = [ArmedFault(refusal, on: .command("Setup", 1)), ArmedFault(.reset, on: .approved(1)),
                                           ArmedFault(refusal, on: .command("Setup", 3))] }
        #expect(w.run { $0.isUp })
        #expect(alerts(w).count == 1)
        guard case .sessionApproved? = pay(&w) else { Issue.record("no approval: \(w.events)"); return }
        #expect(w.run { alerts($0).count == 2 }, "a refusal after the link was up again is news: \(w.events)")
        #expect(w.run { $0.isUp })
        #expect(alerts(w).count == 2)
    }

    @Test func anEmptySetTurnsTheReadingOff() {
        var w = apolloWorld({ $0.tampered = true }, link: { $0.securityRefusals = [] })
        #expect(w.run(within: .seconds(10)) { _ in false } == false)
        #expect(alerts(w).isEmpty)
        #expect(w.link.counters.securityRefusals == 0)
    }

    @Test func otherRefusalsOfSetupAreNoTamper() {
        var w = apolloWorld { $0.faults = [ArmedFault(.reply(command: "Setup", header: 0x00, payload: [0x01, 0x09], count: 2), on: .frames(1))] }
        #expect(w.run { $0.isUp })
        #expect(alerts(w).isEmpty)
    }

    @Test func aP6XGivesNoDetailedReasonSoItsTamperIsNotRead() {
        var w = p6xWorld { $0.tampered = true }
        #expect(w.run(within: .seconds(10)) { _ in false } == false)
        #expect(!w.isUp)
        #expect(alerts(w).isEmpty)
    }

    @Test func theScenarioSaysTamperAsADirectiveAFaultAndAControl() throws {
        var s = SimScenario()
        try ScenarioParser.parse("tampered on\nfamily p6x\nfault tamper on cardread 2\n", into: &s)
        #expect(s.tampered, "family keeps the tamper setting")
        #expect(s.faults == [ArmedFault(.tamper, on: .cardRead(2))])
        #expect(throws: ScenarioError.self) { try ScenarioParser.parse("tampered maybe", into: &s) }
        var core = TerminalSimCore(scenario: SimScenario())
        #expect(!core.tampered)
        let fx = core.control(["tamper"], now: .zero)
        #expect(core.tampered)
        #expect(fx.contains(.log("tamper: restarting into the security violation mode")))
    }
}
