import Testing
import PSPCodec
import PSPLink
import Timebase

/// Bad input is summarised, at most one report per interval, and nothing is lost (issue 11 item 13).
@Suite struct LineNoiseSummaryTests {
    let t0 = Instant.zero + .seconds(100)

    @Test func theFirstEventIsReportedAtOnceTheRestOncePerInterval() {
        var s = LineNoiseSummary(interval: .seconds(10), now: t0)
        let first = s.malformed(.badChecksum, skipped: 5, now: t0)
        #expect(first?.malformedTotal == 1 && first?.bytesDiscarded == 5)
        // 600 more within the interval: no report, one deadline.
        for i in 0..<600 {
            let r = s.malformed(i % 2 == 0 ? .noPreamble : .badMagic, skipped: 3, now: t0 + .milliseconds(i))
            #expect(r == nil)
        }
        #expect(s.undecodable(header: 0x31, now: t0 + .seconds(1)) == nil)
        #expect(s.nextDeadline == t0 + .seconds(10))
        #expect(s.tick(now: t0 + .seconds(9)) == nil)
        let second = s.tick(now: t0 + .seconds(10))
        #expect(second?.malformedTotal == 600 && second?[.noPreamble] == 300 && second?[.badMagic] == 300)
        #expect(second?.bytesDiscarded == 1800 && second?.undecodable == [0x31: 1])
        #expect(s.nextDeadline == nil)
        // Totals: every event in exactly one report.
        #expect(s.total.malformedTotal == 601 && s.total.bytesDiscarded == 1805 && s.total.undecodableTotal == 1)
    }

    @Test func quietThenAgainIsAtOnceAndAFlushTakesWhatIsPending() {
        var s = LineNoiseSummary(interval: .seconds(10), now: t0)
        #expect(s.undecodable(header: 0x27, now: t0) != nil)
        #expect(s.malformed(.truncated, skipped: 9, now: t0 + .seconds(3)) == nil)
        let flushed = s.flush(now: t0 + .seconds(4))
        #expect(flushed?[.truncated] == 1 && flushed?.bytesDiscarded == 9)
        #expect(s.flush(now: t0 + .seconds(4)) == nil)
        // Long after the last report: at once again.
        #expect(s.malformed(.lengthTooLong, skipped: 1, now: t0 + .seconds(30)) != nil)
    }

    /// Any seeded sequence of events: at most one report per interval, and the reports add up to the totals.
    @Test func reportsAddUpAndAreNeverCloserThanTheInterval() {
        let seed = UInt64.random(in: 1...UInt64.max)
        var rng = SeededGenerator(seed: seed)
        var s = LineNoiseSummary(interval: .seconds(10), now: t0)
        var now = t0
        var reports: [(Instant, LineNoiseReport)] = []
        for _ in 0..<5000 {
            now = now + .milliseconds(Int64(rng.next() % 200))
            if let d = s.nextDeadline, d <= now, let r = s.tick(now: d) { reports.append((d, r)) }
            let r = rng.next() % 10 == 0
                ? s.undecodable(header: UInt8(rng.next() % 4), now: now)
                : s.malformed(MalformedKind.allCases[Int(rng.next() % 6)], skipped: Int(rng.next() % 50) + 1, now: now)
            if let r { reports.append((now, r)) }
        }
        if let r = s.flush(now: now) { reports.append((now, r)) }
        for (a, b) in zip(reports, reports.dropFirst().dropLast()) {
            #expect(b.0 - a.0 >= .seconds(10), "seed \(seed)")
        }
        #expect(reports.map(\.1.bytesDiscarded).reduce(0, +) == s.total.bytesDiscarded, "seed \(seed)")
        #expect(reports.map(\.1.malformedTotal).reduce(0, +) == s.total.malformedTotal, "seed \(seed)")
        #expect(reports.map(\.1.undecodableTotal).reduce(0, +) == s.total.undecodableTotal, "seed \(seed)")
        #expect(s.total.malformedTotal + s.total.undecodableTotal == 5000, "seed \(seed)")
    }
}

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
