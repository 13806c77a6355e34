import Testing
import PSPCodec
import PSPLink
import Timebase

/// A terminal that is away is reported once per reason and when it is back (issue 11 item 12).
@Suite struct LinkAvailabilityTests {
    let t0 = Instant.zero + .seconds(100)

    @Test func aMissingDeviceIsReportedOnceThenWhenItComesBack() {
        var a = LinkAvailability(patience: .seconds(10), now: t0)
        #expect(a.openFailed("open /dev/ttyPSP: No such file or directory", now: t0) == .unreachable(reason: "open /dev/ttyPSP: No such file or directory"))
        for i in 1...20 { #expect(a.openFailed("open /dev/ttyPSP: No such file or directory", now: t0 + .seconds(i)) == nil) }
        #expect(a.openFailed("open /dev/ttyPSP: Permission denied", now: t0 + .seconds(21)) == .unreachable(reason: "open /dev/ttyPSP: Permission denied"))
        a.opened(now: t0 + .seconds(42))
        #expect(a.up(now: t0 + .milliseconds(42_300)) == .back(away: .milliseconds(42_300)))
        // Up again: the next outage is reported afresh.
        #expect(a.lost("hang-up", now: t0 + .seconds(50)) == .lost(reason: "hang-up"))
        #expect(a.awaySince == t0 + .seconds(50))
    }

    @Test func anOpenTerminalThatNeverAnswersIsReportedOnceAfterThePatience() {
        var a = LinkAvailability(patience: .seconds(10), now: t0)
        a.opened(now: t0)
        #expect(a.nextDeadline == t0 + .seconds(10))
        #expect(a.tick(now: t0 + .seconds(9)) == nil)
        #expect(a.tick(now: t0 + .seconds(10)) == .silent(after: .seconds(10)))
        #expect(a.nextDeadline == nil && a.tick(now: t0 + .seconds(30)) == nil)
        // Hang-ups and silences taking turns: each reported once.
        #expect(a.lost("hang-up", now: t0 + .seconds(31)) == .lost(reason: "hang-up"))
        a.opened(now: t0 + .seconds(32))
        #expect(a.nextDeadline == nil)
        #expect(a.lost("hang-up", now: t0 + .seconds(33)) == nil)
        #expect(a.up(now: t0 + .seconds(40)) == .back(away: .seconds(40)))
    }

    @Test func aQuickStartIsNotAnAbsence() {
        var a = LinkAvailability(patience: .seconds(10), now: t0)
        a.opened(now: t0)
        #expect(a.up(now: t0 + .milliseconds(300)) == nil)
        #expect(a.nextDeadline == nil)
    }
}
