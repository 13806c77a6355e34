import GPIOCharger
import Testing
import Timebase

typealias Outcome = MirroredRelays.Outcome

/// `MirroredRelays` on a virtual clock: 500 ms feedback, 20 ms debounce.
@Suite struct MirroredRelaysTests {
    static let t0 = Instant(nanoseconds: 2_000_000_000_000)
    static func at(_ ms: Int64) -> Instant { t0 + .milliseconds(ms) }

    func relays(mirrors: [Bool?] = [false]) -> MirroredRelays {
        MirroredRelays(mirrorLevels: mirrors, feedbackTimeout: .milliseconds(500), debounce: .milliseconds(20), at: Self.t0)
    }

    func outcomes(_ list: [(connector: Int, outcome: Outcome)]) -> [Outcome] { list.map(\.outcome) }

    @Test func aRelayWithoutAMirrorIsTrustedOnCommand() {
        var r = relays(mirrors: [nil])
        #expect(outcomes(r.command(connector: 0, closed: true, at: Self.at(0))) == [.confirmed(closed: true)])
        #expect(r.commanded(connector: 0))
        #expect(r.nextDeadline == nil)
        #expect(outcomes(r.command(connector: 0, closed: false, at: Self.at(10))) == [.confirmed(closed: false)])
        #expect(r.advance(to: Self.at(100_000)).isEmpty)
    }

    @Test func aMirrorThatFollowsConfirmsAfterItsDebounce() {
        var r = relays()
        #expect(r.command(connector: 0, closed: true, at: Self.at(0)).isEmpty)
        r.mirror(connector: 0, closed: true, at: Self.at(30))
        #expect(r.nextDeadline == Self.at(50))
        #expect(r.advance(to: Self.at(49)).isEmpty)
        #expect(outcomes(r.advance(to: Self.at(50))) == [.confirmed(closed: true)])
        #expect(r.nextDeadline == nil)
        #expect(r.command(connector: 0, closed: false, at: Self.at(1_000)).isEmpty)
        r.mirror(connector: 0, closed: false, at: Self.at(1_040))
        #expect(outcomes(r.advance(to: Self.at(1_060))) == [.confirmed(closed: false)])
        #expect(!r.welded[0])
    }

    /// A level sends no edge: asking for what the mirror already shows confirms at once.
    @Test func aRequestTheMirrorAlreadyShowsIsConfirmedAtOnce() {
        var r = relays()
        #expect(outcomes(r.command(connector: 0, closed: false, at: Self.at(0))) == [.confirmed(closed: false)])
    }

    @Test func aCloseTheMirrorDoesNotShowIsRefusedAndTheRelayCommandedOpen() {
        var r = relays()
        _ = r.command(connector: 0, closed: true, at: Self.at(0))
        #expect(r.advance(to: Self.at(499)).isEmpty)
        #expect(outcomes(r.advance(to: Self.at(500))) == [.refusedToClose])
        #expect(!r.commanded(connector: 0))
        // The mirror stayed open, so the open that followed is already shown: nothing pending.
        #expect(r.nextDeadline == nil)
        #expect(r.mayClose(connector: 0))
    }

    /// A contactor that closes late, after the refusal de-energised it, and drops out again in
    /// time is not welded; one that stays closed is.
    @Test func aLateCloseAfterARefusalIsNotWeldedUnlessItStays() {
        var late = relays()
        _ = late.command(connector: 0, closed: true, at: Self.at(0))
        late.mirror(connector: 0, closed: true, at: Self.at(495))
        #expect(outcomes(late.advance(to: Self.at(500))) == [.refusedToClose])
        // Settled closed at 515 while the open is pending: the answer to the close, stale.
        #expect(late.advance(to: Self.at(515)).isEmpty)
        #expect(late.mirrors[0]?.settled == true)
        late.mirror(connector: 0, closed: false, at: Self.at(560))
        #expect(outcomes(late.advance(to: Self.at(2_000))) == [.confirmed(closed: false)])
        #expect(!late.welded[0])

        var stuck = relays()
        _ = stuck.command(connector: 0, closed: true, at: Self.at(0))
        stuck.mirror(connector: 0, closed: true, at: Self.at(495))
        #expect(outcomes(stuck.advance(to: Self.at(2_000))) == [.refusedToClose, .weldedOnOpen])
        #expect(stuck.welded[0])
    }

    @Test func anOpenTheMirrorDoesNotShowIsWeldedAndLatched() {
        var r = relays()
        _ = r.command(connector: 0, closed: true, at: Self.at(0))
        r.mirror(connector: 0, closed: true, at: Self.at(30))
        #expect(outcomes(r.advance(to: Self.at(50))) == [.confirmed(closed: true)])
        _ = r.command(connector: 0, closed: false, at: Self.at(1_000))
        #expect(r.advance(to: Self.at(1_499)).isEmpty)
        #expect(outcomes(r.advance(to: Self.at(1_500))) == [.weldedOnOpen])
        #expect(r.welded[0] && !r.mayClose(connector: 0))
        // Latched: nothing more is reported, and a close is refused without driving anything.
        r.mirror(connector: 0, closed: false, at: Self.at(3_000))
        #expect(r.advance(to: Self.at(4_000)).isEmpty)
        #expect(outcomes(r.command(connector: 0, closed: true, at: Self.at(5_000))) == [.refusedToClose])
        #expect(!r.commanded(connector: 0))
        r.clearWeld(connector: 0)
        #expect(r.mayClose(connector: 0))
    }

    @Test func aMirrorThatOpensOrClosesByItselfIsReported() {
        var r = relays(mirrors: [false, false])
        _ = r.command(connector: 0, closed: true, at: Self.at(0))
        r.mirror(connector: 0, closed: true, at: Self.at(10))
        #expect(outcomes(r.advance(to: Self.at(30))) == [.confirmed(closed: true)])
        r.mirror(connector: 0, closed: false, at: Self.at(5_000))
        let dropped = r.advance(to: Self.at(5_020))
        #expect(dropped.map(\.connector) == [0] && outcomes(dropped) == [.openedUncommanded])
        #expect(!r.commanded(connector: 0))

        r.mirror(connector: 1, closed: true, at: Self.at(6_000))
        let closed = r.advance(to: Self.at(6_020))
        #expect(closed.map(\.connector) == [1] && outcomes(closed) == [.closedUncommanded])
        #expect(r.welded == [false, true])
    }

    @Test func bouncesShorterThanTheDebounceChangeNothing() {
        var r = relays()
        _ = r.command(connector: 0, closed: true, at: Self.at(0))
        r.mirror(connector: 0, closed: true, at: Self.at(10))
        #expect(outcomes(r.advance(to: Self.at(30))) == [.confirmed(closed: true)])
        for k in 0..<50 {
            r.mirror(connector: 0, closed: false, at: Self.at(100 + Int64(k) * 40))
            r.mirror(connector: 0, closed: true, at: Self.at(115 + Int64(k) * 40))
        }
        #expect(r.advance(to: Self.at(10_000)).isEmpty)
        #expect(r.commanded(connector: 0))
    }

    @Test func aMirrorClosedAtStartIsWelded() {
        var r = relays(mirrors: [true, false, nil])
        #expect(r.start(at: Self.t0).map(\.connector) == [0])
        #expect(r.welded == [true, false, false])
    }

    /// A timer that fires late still sees events in the order they happened: a mirror that
    /// settled before the deadline confirms, even when `advance` runs long after both.
    @Test func lateAdvanceKeepsTheOrderOfEvents() {
        var r = relays()
        _ = r.command(connector: 0, closed: true, at: Self.at(0))
        r.mirror(connector: 0, closed: true, at: Self.at(480))
        #expect(outcomes(r.advance(to: Self.at(9_000))) == [.confirmed(closed: true)])
        // Settling exactly at the deadline still counts.
        var tie = relays()
        _ = tie.command(connector: 0, closed: true, at: Self.at(0))
        tie.mirror(connector: 0, closed: true, at: Self.at(480))
        #expect(outcomes(tie.advance(to: Self.at(500))) == [.confirmed(closed: true)])
    }
}
