import Testing
import PSPCodec
import PSPLink
import TerminalSim
import Timebase

/// A Request Ids answer the link cannot read (or that is refused) leaves the identity unknown;
/// it is an inventory query, never a reason to restart the link.
@Suite struct UnreadableIdentity {
    func identities(_ w: LinkWorld) -> [TerminalIdentity] {
        w.events.compactMap { if case .identity(let i) = $0 { return i } else { return nil } }
    }

    @Test func apolloWithAnEmptyRequestIdsAnswerComesUpOnceAndTakesPayments() {
        // Every Request Ids is answered with header 0x27 and no payload: nothing to read.
        var w = apolloWorld { $0.faults = [ArmedFault(.reply(command: "RequestIds", header: 0x27, payload: [], count: 1000), on: .frames(1))] }
        #expect(w.run { $0.isUp })
        w.run(within: .seconds(34)) { _ in false }
        #expect(w.isUp)
        #expect(w.link.counters.bringUps == 1, "the link restarted \(w.link.counters.bringUps - 1) times for an inventory query")
        #expect(w.count { $0 == .up } == 1)
        #expect(w.link.counters.identityUnavailable == 1)
        #expect(identities(w).isEmpty, "identity unknown")
        #expect(w.count { if case .undecodable(0x27, _) = $0 { return true }; return false } == 1, "reported once for the log")
        guard case .sessionApproved(let id, _)? = pay(&w) else { Issue.record("no approval"); return }
        #expect(w.request(.commitSession(sessionID: id, amount: 1200)) == .result(.ok))
    }

    @Test func p6xWithAShortRequestIdsAnswerKeepsWhatItCanRead() {
        // Serial (15) and SAM 0 (1 + 8), then the answer stops: 24 of the 82 fixed bytes.
        var short = Array("P68-SHORT-7".utf8) + [UInt8](repeating: 0, count: 4)
        short += [0x01, 1, 2, 3, 4, 5, 6, 7, 8]
        var w = p6xWorld { $0.faults = [ArmedFault(.reply(command: "RequestIds", header: 0x27, payload: short, count: 1000), on: .frames(1))] }
        #expect(w.run { $0.isUp })
        w.run(within: .seconds(34)) { _ in false }
        #expect(w.isUp)
        #expect(w.link.counters.bringUps == 1)
        let id = identities(w)
        #expect(id.count == 1)
        #expect(id.first?.serialNumber == "P68-SHORT-7")
        #expect(id.first?.samSerials == ["0102030405060708"])
        #expect(id.first?.macAddress == nil && id.first?.simSerial == nil)
        guard case .sessionApproved? = pay(&w) else { Issue.record("no approval"); return }
    }

    @Test func aRefusedRequestIdsIsCountedAndTheLinkStaysUp() {
        var w = apolloWorld { $0.faults = [ArmedFault(.reply(command: "RequestIds", header: 0x00, payload: [0x01, 0x02], count: 1000), on: .frames(1))] }
        #expect(w.run { $0.isUp })
        w.run(within: .seconds(30)) { _ in false }
        #expect(w.link.counters.bringUps == 1)
        #expect(w.link.counters.identityUnavailable == 1)
        #expect(identities(w).isEmpty)
    }
}
