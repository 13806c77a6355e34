import Testing
import PaymentEngine
import Platform
import PSPLink
import PSPTerminal
import TerminalPort
import Timebase

/// The PSP terminal behind the station's port: engine commands in, engine inputs out, in order.
@Suite struct PSPTerminalPortTests {
    func port() throws -> (EventLoop, PSPTerminalPort, Box) {
        let loop = try EventLoop()
        // A device that does not exist: the link never comes up, so every command is answered at once.
        let driver = PSPLinkDriver(loop: loop, endpoint: .serial(path: "/nonexistent/ttyPSP", settings: .psp),
                                   config: PSPLinkConfig(family: .p6x, transport: .serial))
        let port = PSPTerminalPort(loop: loop, driver: driver)
        let box = Box()
        port.onInputs = { box.inputs += $0 }
        port.onNotice = { box.notices.append("\($0): \($1)") }
        return (loop, port, box)
    }

    final class Box { var inputs: [TerminalInput] = []; var notices: [String] = [] }

    /// The link refuses a command synchronously (not ready) from inside the submit: the answer
    /// must still reach the engine, after the adapter learned which engine command it was.
    @Test func anAnswerGivenDuringTheSubmitIsNotLost() throws {
        let (_, port, box) = try port()
        port.perform(7, .arm(amount: 5000, reference: 1))
        port.perform(8, .release(TerminalHandle(reference: 7465)))
        #expect(box.inputs == [.completed(7, .arm(amount: 5000, reference: 1), .notSent),
                               .completed(8, .release(TerminalHandle(reference: 7465)), .notSent)], "\(box.inputs)")
    }

    /// A payment another kind of terminal approved has no PSP session id: the terminal cannot
    /// know it, which the engine hears on the next turn (never from inside `perform`).
    @Test func aHandlePSPCannotNameIsNotFoundOnTheNextTurn() throws {
        let (loop, port, box) = try port()
        let zvt = TerminalHandle(bytes: [0x00, 0x12, 0x34, 0x00, 0x56, 0x78], label: "receipt 1234 trace 5678")!
        port.perform(9, .capture(zvt, amount: 100, reserved: 5000))
        #expect(box.inputs.isEmpty)
        _ = try loop.run(until: { !box.inputs.isEmpty }, deadline: MonotonicClock.now() + .seconds(2))
        #expect(box.inputs == [.completed(9, .capture(zvt, amount: 100, reserved: 5000), .refused(notFound: true))])
        #expect(box.notices.count == 1 && box.notices[0].hasPrefix("warning"), "\(box.notices)")
    }

    @Test func theSnapshotSaysWhatTheTerminalIs() throws {
        let (_, port, _) = try port()
        let s = port.status
        #expect(s.protocolName == "PSP" && s.family == "p6x" && !s.linkUp && s.identity == nil)
        #expect(s.capabilities == [.listOpenSessions])
        #expect(s.endpoint.hasPrefix("/nonexistent/ttyPSP"))
        #expect(s.counters["framesSent"] == 0)
    }
}
