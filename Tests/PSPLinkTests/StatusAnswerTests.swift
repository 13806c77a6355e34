import Testing
import PSPCodec
import PSPLink
import TerminalSim
import Timebase

/// A Get Status the terminal refuses: Result and Get Status Response share header 0x00 (psp.md §4.2).
@Suite struct RefusedGetStatus {
    /// Apollo with detailed codes: every Get Status from the first keep-alive on is refused with
    /// `[0x01, 0x05]` (Not OK, not allowed in this state), which also reads as OFFLINE.
    @Test func aRefusalIsNotATerminalResetAndRechecksAreBounded() {
        var w = apolloWorld {
            $0.faults = [ArmedFault(.reply(command: "GetStatus", header: 0x00, payload: [0x01, 0x05], count: 1000), on: .command("RequestIds", 1))]
            $0.delays["GetStatus"] = 300
        }
        #expect(w.run { $0.isUp })
        // A refused command schedules a status check at once; a request waits behind that check.
        let voidID = w.submit(.voidSession(sessionID: 4242))
        #expect(w.events.contains(.completed(voidID, .voidSession(sessionID: 4242), .result(.notOK(ResultReason.sessionNotFound)))))
        let receiptID = w.submit(.getReceipt(sessionID: 4242))
        #expect(w.run { w in w.events.contains { if case .completed(receiptID, _, _) = $0 { return true }; return false } })
        #expect(w.events.contains { if case .completed(receiptID, _, .response(.receipt)) = $0 { return true }; return false },
                "the request queued behind the refused Get Status was not failed as linkLost")
        let start = w.now
        w.run(within: .seconds(60)) { _ in false }
        #expect(!w.events.contains(.terminalReset))
        #expect(w.isUp)
        #expect(w.link.counters.bringUps == 1)
        #expect(w.link.counters.terminalResets == 0)
        #expect(w.link.terminalState == .enabled, "an ambiguous answer changes no state")
        #expect(w.link.counters.statusUnknown >= 3)
        // Bounded: after the rechecks, Get Status only at the keep-alive interval (10 s).
        let checks = w.sent(0x26).filter { $0 >= start }
        #expect(checks.count <= 60 / 10 + 3, "\(checks.count) Get Status in 60 s")
        guard case .sessionApproved(let id, _)? = pay(&w) else { Issue.record("no approval"); return }
        #expect(w.request(.commitSession(sessionID: id, amount: 500)) == .result(.ok))
    }

    /// P6X without detailed codes: a bare Not OK `[0x01]` is a Result (a status has two bytes).
    @Test func aBareNotOKToGetStatusIsARefusal() {
        var w = p6xWorld {
            $0.faults = [ArmedFault(.reply(command: "GetStatus", header: 0x00, payload: [0x01], count: 1000), on: .command("RequestIds", 1))]
        }
        #expect(w.run { $0.isUp })
        _ = w.submit(.getStatus)
        w.run(within: .seconds(45)) { _ in false }
        #expect(!w.events.contains(.terminalReset))
        #expect(w.link.counters.bringUps == 1)
        #expect(w.link.counters.statusUnknown >= 4)
        #expect(w.events.contains { if case .completed(_, .getStatus, .result(.notOK(nil))) = $0 { return true }; return false },
                "the caller of Get Status sees the refusal, not OFFLINE")
    }

    /// A refusal is rechecked soon; the recheck's genuine OFFLINE is still a terminal reset.
    @Test func aGenuineOfflineAfterARefusalIsStillDetected() {
        var w = apolloWorld {
            $0.faults = [ArmedFault(.reply(command: "GetStatus", header: 0x00, payload: [0x01, 0x11], count: 1), on: .command("RequestIds", 1)),
                         ArmedFault(.reset, on: .command("GetStatus", 2))]
        }
        #expect(w.run { $0.isUp })
        #expect(w.run(within: .seconds(15)) { w in w.events.contains(.terminalReset) })
        let refused = w.sent(0x26)
        #expect(refused.count == 2)
        if refused.count == 2 { #expect(refused[1] - refused[0] <= .seconds(2), "rechecked soon, not at the next keep-alive") }
        #expect(w.link.counters.statusUnknown == 1)
        #expect(w.run { $0.isUp })
    }
}
