import Testing
import PSPCodec
import PSPLink
import TerminalSim
import Timebase
import JSONLines

/// terminal-sim's record says when the terminal read the card and when the host asked it to
/// authorise, on the simulator's own clock: what a latency test compares with and without load.
@Suite struct SimRecordTimes {
    func at(_ record: JSON?) -> Int64? { if case .int(let i)? = record?["at"] { return i } else { return nil } }

    @Test func cardReadAndAuthSessionAreRecordedWithTheirInstants() {
        var w = p6xWorld()
        #expect(w.run { $0.isUp })
        guard let start = w.request(.startSession(StartSession(amount: 5000, reference: 7))) else { Issue.record("no start"); return }
        if case .result(let r) = start { #expect(r.ok) }
        #expect(w.run { $0.messages().contains { if case .cardRead = $0 { return true }; return false } })
        let cardSeen = w.now
        // The host takes its time before asking: the record must show that gap.
        w.run(within: .milliseconds(250)) { _ in false }
        let asked = w.now
        #expect(asked.nanoseconds - cardSeen.nanoseconds >= 250_000_000)
        guard case .response(.sessionApproved)? = w.request(.authSession) else { Issue.record("no approval"); return }
        let cardRead = at(w.recorded("cardRead").first), authSession = at(w.recorded("authSession").first)
        #expect(cardRead != nil && cardRead! <= Int64(cardSeen.nanoseconds), "\(w.records)")
        #expect(authSession != nil && authSession! >= Int64(asked.nanoseconds), "\(w.records)")
        #expect(w.recorded("authSession").first?["amount"] == .int(5000))
        // Every record carries its instant.
        #expect(!w.records.isEmpty && w.records.allSatisfy { at($0) != nil })
    }
}
