import GPIOCharger
import Testing
import Timebase

@Suite struct DebouncedLevelTests {
    static let t0 = Instant(nanoseconds: 1_000_000_000_000)

    @Test func aLevelCountsOnlyAfterHoldingForTheDebounce() {
        var d = DebouncedLevel(level: false, debounce: .milliseconds(20), at: Self.t0)
        d.sample(true, at: Self.t0 + .milliseconds(5))
        #expect(d.settleAt == Self.t0 + .milliseconds(25))
        #expect(d.advance(to: Self.t0 + .milliseconds(24)) == nil)
        #expect(d.settled == false)
        #expect(d.advance(to: Self.t0 + .milliseconds(25)) == true)
        #expect(d.settled && d.settleAt == nil)
        #expect(d.advance(to: Self.t0 + .seconds(5)) == nil)
    }

    @Test func aBounceShorterThanTheDebounceNeverCounts() {
        var d = DebouncedLevel(level: true, debounce: .milliseconds(20), at: Self.t0)
        d.sample(false, at: Self.t0 + .milliseconds(1))
        d.sample(true, at: Self.t0 + .milliseconds(19))
        #expect(d.settleAt == nil)
        #expect(d.advance(to: Self.t0 + .seconds(1)) == nil)
        #expect(d.settled)
        // Each change restarts the wait.
        d.sample(false, at: Self.t0 + .milliseconds(100))
        d.sample(true, at: Self.t0 + .milliseconds(110))
        d.sample(false, at: Self.t0 + .milliseconds(115))
        #expect(d.settleAt == Self.t0 + .milliseconds(135))
    }

    @Test func anOutOfOrderSampleDoesNotMoveTimeBackAndTheDebounceIsBounded() {
        var d = DebouncedLevel(level: false, debounce: .seconds(9), at: Self.t0)
        #expect(d.debounce == DebouncedLevel.maxDebounce)
        d.sample(true, at: Instant(nanoseconds: Self.t0.nanoseconds - 500_000_000))
        #expect(d.rawSince == Self.t0)
        var z = DebouncedLevel(level: false, debounce: .zero, at: Self.t0)
        z.sample(true, at: Self.t0)
        #expect(z.advance(to: Self.t0) == true)
    }
}
