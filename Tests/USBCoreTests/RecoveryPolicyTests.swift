import Testing
import Timebase
import USBCore

extension Instant {
    static func s(_ seconds: UInt64) -> Instant { Instant(nanoseconds: seconds * 1_000_000_000) }
}

@Suite struct RecoveryPolicyTests {
    static let settings = USBRecoveryPolicy.Settings(failuresBeforeReset: 3, minimumResetInterval: .seconds(300), powerCycle: false)

    @Test func theNthConsecutiveFailureAsksForAReset() {
        var p = USBRecoveryPolicy(settings: Self.settings)
        #expect(p.bringUpFailed(at: .s(10)) == USBRecoveryPolicy.Decision.none)
        #expect(p.bringUpFailed(at: .s(20)) == USBRecoveryPolicy.Decision.none)
        #expect(p.bringUpFailed(at: .s(30)) == .reset(powerCycle: false))
        #expect(p.counters.resets == 1)
        #expect(p.consecutiveFailures == 0)
    }

    @Test func aSuccessStartsTheCountAgain() {
        var p = USBRecoveryPolicy(settings: Self.settings)
        _ = p.bringUpFailed(at: .s(1))
        _ = p.bringUpFailed(at: .s(2))
        p.bringUpSucceeded()
        #expect(p.bringUpFailed(at: .s(3)) == USBRecoveryPolicy.Decision.none)
        #expect(p.bringUpFailed(at: .s(4)) == USBRecoveryPolicy.Decision.none)
        #expect(p.bringUpFailed(at: .s(5)) == .reset(powerCycle: false))
    }

    @Test func resetsAreRateLimitedAndTheHeldBackOnesCounted() {
        var p = USBRecoveryPolicy(settings: USBRecoveryPolicy.Settings(failuresBeforeReset: 1, minimumResetInterval: .seconds(300), powerCycle: true))
        #expect(p.bringUpFailed(at: .s(100)) == .reset(powerCycle: true))
        #expect(p.bringUpFailed(at: .s(200)) == .suppressed(notBefore: .s(400)))
        #expect(p.bringUpFailed(at: .s(399)) == .suppressed(notBefore: .s(400)))
        #expect(p.bringUpFailed(at: .s(400)) == .reset(powerCycle: true))
        #expect(p.counters.resets == 2 && p.counters.suppressed == 2 && p.counters.resetFailures == 0)
        p.resetFailed()
        #expect(p.counters.resetFailures == 1)
        #expect(p.bringUpFailed(at: .s(401)) == .suppressed(notBefore: .s(700)), "a failed reset still holds the rate limit")
    }

    @Test func settingsOutsideTheirRangesAreNamed() {
        #expect(USBRecoveryPolicy.Settings(failuresBeforeReset: 0, minimumResetInterval: .seconds(300), powerCycle: false).problem == .failuresOutOfRange(0))
        #expect(USBRecoveryPolicy.Settings(failuresBeforeReset: 3, minimumResetInterval: .seconds(29), powerCycle: false).problem == .intervalOutOfRange(.seconds(29)))
        #expect(USBRecoveryPolicy.Settings.defaults.problem == nil)
    }

    /// Whatever the rhythm of failures and successes: resets are at least the interval apart, and
    /// each follows at least N failures with no success or reset in between.
    @Test func resetsNeverComeFasterThanTheIntervalNorBeforeNFailures() {
        for seed in UInt64(1)...200 {
            var random = SeededGenerator(seed: seed)
            let n = 1 + Int(random.next() % 5)
            let interval = Duration.seconds(30 + Int64(random.next() % 600))
            var p = USBRecoveryPolicy(settings: .init(failuresBeforeReset: n, minimumResetInterval: interval, powerCycle: false))
            var now = Instant.s(1)
            var lastReset: Instant?
            var failuresSince = 0
            var resets = 0
            for _ in 0..<300 {
                now = now + .milliseconds(Int64(random.next() % 120_000))
                if random.next() % 4 == 0 {
                    p.bringUpSucceeded()
                    failuresSince = 0
                    continue
                }
                failuresSince += 1
                if case .reset = p.bringUpFailed(at: now) {
                    #expect(failuresSince >= n, "seed \(seed)")
                    if let lastReset { #expect(now - lastReset >= interval, "seed \(seed)") }
                    lastReset = now
                    failuresSince = 0
                    resets += 1
                }
            }
            #expect(p.counters.resets == resets, "seed \(seed)")
        }
    }
}
