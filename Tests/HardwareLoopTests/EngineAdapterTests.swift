import Testing
import PSPCodec
@testable import PSPLink
import PaymentEngine
import PSPTerminal

/// How the link's outcomes reach the engine.
@Suite struct EngineAdapterOutcomes {
    func outcome(of linkOutcome: RequestOutcome, for command: TerminalCommand) -> [TerminalInput] {
        var a = PSPEngineAdapter(family: .p6x)
        let request = RequestID(value: 1)
        _ = a.hostCommand(for: command)
        a.submitted(request, for: 9, command)
        return a.inputs(for: .completed(request, a.hostCommand(for: command), linkOutcome))
    }

    @Test func anUnreadableAnswerIsAnUnknownOutcomeNotARefusal() {
        let garbled = RequestOutcome.unreadable(.truncated(field: "DOL"))
        for command in [TerminalCommand.authorise, .capture(terminalRef: 7, amount: 100), .release(terminalRef: 7)] {
            #expect(outcome(of: garbled, for: command) == [.completed(9, command, .unknown)], "\(command)")
        }
        // A terminal's own "malformed message" refusal stays a refusal.
        #expect(outcome(of: .result(.notOK(ResultReason.malformed)), for: .authorise) == [.completed(9, .authorise, .refused(notFound: false))])
    }
}
