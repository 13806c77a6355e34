import Testing
import PSPCodec
import PSPLink
import TerminalSim
import Timebase

/// An answer the link cannot decode says the command was answered, not how: the outcome is
/// `unreadable` (may or may not have taken effect), never a refusal. A refusal would make the
/// engine abandon an authorisation the terminal may hold as an approval.
@Suite struct UnreadableAnswers {
    @Test func aSessionApprovedWithAnUnreadableDOLCompletesAuthAsUnreadable() throws {
        // Session Approved, session id 42, a DOL whose length says 16 bytes with 2 following.
        var w = p6xWorld { $0.faults = [ArmedFault(.reply(command: "AuthSession", header: 0x31, payload: [0, 0, 0, 42, 0x10, 0xDF, 0xAA], count: 1),
                                                  on: .frames(1))] }
        #expect(w.run { $0.isUp })
        guard let start = w.request(.startSession(StartSession(amount: 5000, reference: 7))) else { Issue.record("no Start Session outcome"); return }
        if case .result(let r) = start { #expect(r.ok) }
        #expect(w.run { $0.messages().contains { if case .cardRead = $0 { return true }; return false } })
        let outcome = w.request(.authSession)
        guard case .unreadable? = outcome else { Issue.record("Auth Session ended \(String(describing: outcome))"); return }
        #expect(w.link.counters.undecodable == 1)
        #expect(w.isUp, "an unreadable answer is no reason to drop the link")
    }
}
