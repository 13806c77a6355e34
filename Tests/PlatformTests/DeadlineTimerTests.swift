import Platform
import Testing
import Timebase

@Suite struct DeadlineTimerTests {
    @Test func firesOnceAtTheEarliestDeadlineAndDisarmsBeforeTheHandler() throws {
        let loop = try EventLoop()
        let timer = DeadlineTimer(loop: loop)
        var fired: [Instant] = []
        var deadlineInHandler: Instant? = MonotonicClock.now()
        timer.onFire = { fired.append(MonotonicClock.now()); deadlineInHandler = timer.deadline }
        let start = MonotonicClock.now()
        timer.arm(earliestOf: nil, start + .milliseconds(30), start + .milliseconds(10), nil)
        #expect(timer.deadline == start + .milliseconds(10))
        _ = try loop.run(until: { false }, deadline: start + .milliseconds(80))
        #expect(fired.count == 1)
        #expect(fired.first.map { $0 >= start + .milliseconds(10) } == true)
        #expect(deadlineInHandler == nil)
        #expect(timer.deadline == nil)
    }

    @Test func movingTheDeadlineReschedulesAndNilCancels() throws {
        let loop = try EventLoop()
        var fired: [Instant] = []
        let timer = DeadlineTimer(loop: loop) { fired.append(MonotonicClock.now()) }
        let start = MonotonicClock.now()
        timer.arm(start + .milliseconds(10))
        timer.arm(start + .milliseconds(40))
        _ = try loop.run(until: { false }, deadline: start + .milliseconds(25))
        #expect(fired.isEmpty)  // the earlier one was moved, not kept beside the later
        _ = try loop.run(until: { !fired.isEmpty }, deadline: start + .seconds(2))
        #expect(fired.count == 1)
        #expect(fired.first.map { $0 >= start + .milliseconds(40) } == true)

        timer.arm(MonotonicClock.now() + .milliseconds(10))
        timer.disarm()
        _ = try loop.run(until: { false }, deadline: MonotonicClock.now() + .milliseconds(40))
        #expect(fired.count == 1)
    }

    /// The loop fires timers due together in scheduling order; re-arming at the same instant must
    /// leave the timer where it was, ahead of one scheduled after it.
    @Test func armingTheSameDeadlineAgainDoesNotReschedule() throws {
        let loop = try EventLoop()
        var order: [String] = []
        let timer = DeadlineTimer(loop: loop) { order.append("deadline timer") }
        let at = MonotonicClock.now() + .milliseconds(20)
        timer.arm(at)
        _ = loop.schedule(at: at) { order.append("plain timer") }
        timer.arm(at)
        timer.arm(earliestOf: at, nil, at + .seconds(5))
        _ = try loop.run(until: { order.count == 2 }, deadline: MonotonicClock.now() + .seconds(2))
        #expect(order == ["deadline timer", "plain timer"])
    }

    /// A deadline the core does not consume keeps coming back; the floor keeps that from spinning.
    @Test func aPastDeadlineFiresNoSoonerThanTheMinimumDelay() throws {
        let loop = try EventLoop()
        var firings = 0
        let timer = DeadlineTimer(loop: loop)
        let stuck = MonotonicClock.now()  // in the past from the first firing on
        timer.onFire = { firings += 1; timer.arm(stuck) }
        let start = MonotonicClock.now()
        timer.arm(stuck)
        _ = try loop.run(until: { false }, deadline: start + .milliseconds(50))
        // At most one firing per minimum delay (50 ms / 1 ms), and at least a few: it does fire.
        #expect(firings >= 3)
        #expect(firings <= 50)
    }
}
