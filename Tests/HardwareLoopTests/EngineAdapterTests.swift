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
        return a.inputs(for: .completed(request, a.hostCommand(for: command)!, linkOutcome))
    }

    @Test func anUnreadableAnswerIsAnUnknownOutcomeNotARefusal() {
        let garbled = RequestOutcome.unreadable(.truncated(field: "DOL"))
        for command in [TerminalCommand.authorise(amount: 5_000), .capture(7, amount: 100, reserved: 5_000), .release(7)] {
            #expect(outcome(of: garbled, for: command) == [.completed(9, command, .unknown)], "\(command)")
        }
        // A terminal's own "malformed message" refusal stays a refusal.
        #expect(outcome(of: .result(.notOK(ResultReason.malformed)), for: .authorise(amount: 5_000)) == [.completed(9, .authorise(amount: 5_000), .refused(notFound: false))])
    }
}

/// List Sessions pages (psp.md: while offset + k < total, ask again from offset + k).
@Suite struct EngineAdapterListing {
    @Test func theEngineHearsOfTheWholeListOnceEveryPageIsIn() {
        var a = PSPEngineAdapter(family: .p6x)
        var request = RequestID(value: 1)
        #expect(a.hostCommand(for: .listOpen) == .listSessions(offset: 0))
        a.submitted(request, for: 9, .listOpen)
        let pages: [[UInt32]] = [Array(1...8), Array(9...16), [17, 18]]
        var offsets: [UInt8] = [0]
        var inputs: [TerminalInput] = []
        for (i, page) in pages.enumerated() {
            inputs = a.inputs(for: .completed(request, .listSessions(offset: offsets.last!), .response(.sessionList(total: 18, sessionIDs: page))))
            if i < pages.count - 1 {
                #expect(inputs.isEmpty, "page \(i) reached the engine alone")
                guard let next = a.nextRequest() else { Issue.record("no request for page \(i + 1)"); return }
                guard case .listSessions(let o) = next.command else { Issue.record("\(next.command)"); return }
                #expect(next.id == 9 && next.engineCommand == .listOpen)
                offsets.append(o)
                request = RequestID(value: request.value + 1)
                a.submitted(request, for: next.id, next.engineCommand)
            }
        }
        #expect(offsets == [0, 8, 16])
        #expect(inputs == [.completed(9, .listOpen, .ok), .openSessions((1...18).map(TerminalHandle.init(reference:)))])
        #expect(a.nextRequest() == nil)
    }

    /// Session 8 closed on the terminal between the two requests: page 2 starts one later
    /// than asked, so 9 is seen twice. Each session reaches the engine once.
    @Test func aSessionSeenOnTwoPagesIsListedOnce() {
        var a = PSPEngineAdapter(family: .p6x)
        _ = a.hostCommand(for: .listOpen)
        a.submitted(RequestID(value: 1), for: 9, .listOpen)
        #expect(a.inputs(for: .completed(RequestID(value: 1), .listSessions(offset: 0), .response(.sessionList(total: 12, sessionIDs: Array(1...8))))).isEmpty)
        guard let next = a.nextRequest() else { Issue.record("no second page asked for"); return }
        #expect(next.command == .listSessions(offset: 8))
        a.submitted(RequestID(value: 2), for: 9, .listOpen)
        let inputs = a.inputs(for: .completed(RequestID(value: 2), .listSessions(offset: 8), .response(.sessionList(total: 12, sessionIDs: [8, 9, 10, 11]))))
        #expect(inputs == [.completed(9, .listOpen, .ok), .openSessions((1...11).map(TerminalHandle.init(reference:)))])
    }

    @Test func anEmptyPageShortOfTheTotalIsNoList() {
        var a = PSPEngineAdapter(family: .p6x)
        _ = a.hostCommand(for: .listOpen)
        a.submitted(RequestID(value: 1), for: 9, .listOpen)
        let inputs = a.inputs(for: .completed(RequestID(value: 1), .listSessions(offset: 0), .response(.sessionList(total: 5, sessionIDs: []))))
        #expect(inputs == [.completed(9, .listOpen, .unknown)])
        #expect(a.nextRequest() == nil)
    }

    @Test func anOKWithoutAListIsNoList() {
        var a = PSPEngineAdapter(family: .p6x)
        _ = a.hostCommand(for: .listOpen)
        a.submitted(RequestID(value: 1), for: 9, .listOpen)
        #expect(a.inputs(for: .completed(RequestID(value: 1), .listSessions(offset: 0), .result(.ok))) == [.completed(9, .listOpen, .unknown)])
    }
}
