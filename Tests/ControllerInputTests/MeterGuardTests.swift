import ControllerInput
import Testing
import Timebase

/// `MeterGuard` and `RelayConfirmations`: the pure parts of the controller's port, on a virtual clock.
@Suite struct MeterGuardTests {
    static let t0 = Instant(nanoseconds: 5_000_000_000_000)

    /// 22 kW, 30 s timeout, one connector with a first reading of 1000 Wh at t0.
    func guardWithBaseline() -> MeterGuard {
        var g = MeterGuard(connectors: 2, maxPowerW: 22_000, timeout: .seconds(30))
        #expect(g.check(connector: 0, registerWh: 1_000, powerW: nil, at: Self.t0) == nil)
        return g
    }

    @Test func aRegisterThatGoesBackwardsIsRejectedAndTheBaselineStays() {
        var g = guardWithBaseline()
        #expect(g.check(connector: 0, registerWh: 999, powerW: nil, at: Self.t0 + .seconds(1)) == .backwards)
        #expect(g.lastAccepted[0]?.registerWh == 1_000)
        #expect(g.rejections == [.backwards: 1])
        // Equal is no energy, not backwards.
        #expect(g.check(connector: 0, registerWh: 1_000, powerW: 0, at: Self.t0 + .seconds(2)) == nil)
    }

    /// 22 kW for 10 s is 61.1 Wh: with the tolerance, 62 + 10 Wh more is the most accepted.
    @Test func aJumpBeyondTheMaximumPowerIsRejected() {
        var g = guardWithBaseline()
        let later = Self.t0 + .seconds(10)
        #expect(g.maxEnergyWh(over: .seconds(10)) == 62 + MeterGuard.toleranceWh)
        #expect(g.judge(connector: 0, registerWh: 1_072, powerW: nil, at: later) == nil)
        #expect(g.check(connector: 0, registerWh: 1_073, powerW: nil, at: later) == .jump)
        #expect(g.check(connector: 0, registerWh: 51_000, powerW: 22_000, at: later) == .jump)
        #expect(g.rejections == [.jump: 2])
        // The next reading is judged against the last accepted one, not the rejected jump.
        #expect(g.check(connector: 0, registerWh: 1_070, powerW: 21_900, at: later) == nil)
        #expect(g.lastAccepted[0] == MeterReading(registerWh: 1_070, powerW: 21_900, at: later))
        // The other connector has its own baseline.
        #expect(g.check(connector: 1, registerWh: 400_000, powerW: nil, at: later) == nil)
    }

    @Test func aReadingWithAPlausiblePowerIsAcceptedAndAnImplausibleOneIsNot() {
        var g = guardWithBaseline()
        let later = Self.t0 + .seconds(60)
        #expect(g.maxPlausiblePowerW == 24_200)
        #expect(g.check(connector: 0, registerWh: 1_300, powerW: 22_000, at: later) == nil)
        #expect(g.check(connector: 0, registerWh: 1_301, powerW: 24_200, at: later) == nil)
        #expect(g.check(connector: 0, registerWh: 1_302, powerW: 24_201, at: later) == .implausiblePower)
        #expect(g.check(connector: 0, registerWh: 1_302, powerW: -1, at: later) == .implausiblePower)
        #expect(g.accepted == 3)
    }

    @Test func negativeAndAbsurdRegistersAreRejectedEvenAsTheFirstReading() {
        var g = MeterGuard(connectors: 1, maxPowerW: 22_000, timeout: .seconds(30))
        #expect(g.check(connector: 0, registerWh: -1, powerW: nil, at: Self.t0) == .negative)
        #expect(g.check(connector: 0, registerWh: .max, powerW: nil, at: Self.t0) == .absurd)
        #expect(g.check(connector: 0, registerWh: MeterGuard.absurdRegisterWh + 1, powerW: nil, at: Self.t0) == .absurd)
        #expect(g.lastAccepted[0] == nil)
        #expect(g.check(connector: 0, registerWh: MeterGuard.absurdRegisterWh, powerW: nil, at: Self.t0) == nil)
    }

    /// A meter replaced between sessions starts from its own register once rebased; while the
    /// connector is charging the baseline cannot be dropped.
    @Test func rebaseForgetsTheBaselineOnlyWhenNotCharging() {
        var g = guardWithBaseline()
        g.watch(connector: 0, from: Self.t0)
        g.rebase(connector: 0)
        #expect(g.check(connector: 0, registerWh: 10, powerW: nil, at: Self.t0 + .seconds(1)) == .backwards)
        g.unwatch(connector: 0)
        g.rebase(connector: 0)
        #expect(g.lastAccepted[0] == nil)
        #expect(g.check(connector: 0, registerWh: 10, powerW: nil, at: Self.t0 + .seconds(2)) == nil)
    }

    /// No interval and no maximum power can trap: the allowance saturates.
    @Test func theAllowanceSaturates() {
        let g = MeterGuard(connectors: 1, maxPowerW: .max, timeout: .seconds(30))
        #expect(g.maxEnergyWh(over: .seconds(Int64.max)) == .max)
        #expect(g.maxPlausiblePowerW == .max)
        #expect(guardWithBaseline().maxEnergyWh(over: .seconds(-5)) == MeterGuard.toleranceWh)
    }

    /// Random readings from a seeded generator: every accepted reading is plausible against the
    /// previous accepted one, and every rejection is counted under its reason.
    @Test(arguments: [UInt64(0xC0FFEE), 7, 0xDEADBEEF]) func acceptedReadingsAreAlwaysPlausible(seed: UInt64) {
        var rng = SeededGenerator(seed: seed)
        var g = MeterGuard(connectors: 1, maxPowerW: 11_000, timeout: .seconds(30))
        var t = Self.t0
        var register: Int64 = 5_000
        var previous: MeterReading?
        var offered = 0
        for _ in 0..<2_000 {
            t = t + .milliseconds(Int64(rng.next() % 5_000))
            switch rng.next() % 10 {
            case 0: register -= Int64(rng.next() % 50)
            case 1: register += Int64(rng.next() % 1_000_000)
            case 2: register = -Int64(rng.next() % 10)
            default: register += Int64(rng.next() % 20)
            }
            let power: Int64? = rng.next() % 3 == 0 ? nil : Int64(rng.next() % 13_000) - 100
            offered += 1
            if g.check(connector: 0, registerWh: register, powerW: power, at: t) == nil {
                if let p = previous {
                    let ok = register >= p.registerWh && register - p.registerWh <= g.maxEnergyWh(over: t - p.at)
                    #expect(ok, "seed \(seed): \(p) then \(register) at \(t)")
                    if !ok { return }
                }
                #expect(register >= 0 && (power ?? 0) >= 0 && (power ?? 0) <= g.maxPlausiblePowerW, "seed \(seed)")
                previous = MeterReading(registerWh: register, powerW: power, at: t)
            }
            if register < 0 { register = previous?.registerWh ?? 0 }
        }
        #expect(g.accepted + g.rejections.values.reduce(0, +) == offered, "seed \(seed)")
        #expect(g.accepted > 100 && !g.rejections.isEmpty, "seed \(seed): the generator should exercise both")
    }

    @Test func aWatchedConnectorFallsSilentOnceAfterTheTimeout() {
        var g = guardWithBaseline()
        #expect(g.nextDeadline == nil)
        g.watch(connector: 0, from: Self.t0 + .seconds(5))
        #expect(g.silenceDeadline(connector: 0) == Self.t0 + .seconds(35))   // the watch started after the reading
        #expect(g.check(connector: 0, registerWh: 1_010, powerW: nil, at: Self.t0 + .seconds(20)) == nil)
        #expect(g.nextDeadline == Self.t0 + .seconds(50))
        // A rejected reading does not keep the meter alive.
        #expect(g.check(connector: 0, registerWh: 900, powerW: nil, at: Self.t0 + .seconds(40)) == .backwards)
        #expect(g.silent(at: Self.t0 + .seconds(49)) == [])
        #expect(g.silent(at: Self.t0 + .seconds(50)) == [0])
        #expect(g.silent(at: Self.t0 + .seconds(90)) == [])
        #expect(g.nextDeadline == nil)
        g.watch(connector: 1, from: Self.t0)
        g.unwatch(connector: 1)
        #expect(g.nextDeadline == nil)
    }
}

@Suite struct RelayConfirmationTests {
    static let t0 = Instant(nanoseconds: 1_000_000_000_000)

    @Test func aConfirmedCloseAndOpen() {
        var r = RelayConfirmations(connectors: 2, confirmTimeout: .seconds(5))
        r.request(connector: 0, closed: true, at: Self.t0)
        #expect(r.nextDeadline == Self.t0 + .seconds(5))
        #expect(r.feedback(connector: 0, closed: true) == .confirmed(closed: true))
        #expect(r.feedback(connector: 0, closed: true) == .repeated)
        #expect(r.nextDeadline == nil)
        r.request(connector: 0, closed: false, at: Self.t0 + .seconds(60))
        #expect(r.feedback(connector: 0, closed: false) == .confirmed(closed: false))
        #expect(r.commanded == [false, false])
    }

    @Test func aCloseAnsweredOpenOrUnansweredIsRefused() {
        var r = RelayConfirmations(connectors: 2, confirmTimeout: .seconds(5))
        r.request(connector: 0, closed: true, at: Self.t0)
        #expect(r.feedback(connector: 0, closed: false) == .refusedToClose)
        r.request(connector: 1, closed: true, at: Self.t0)
        #expect(r.expired(at: Self.t0 + .milliseconds(4_999)).isEmpty)
        let due = r.expired(at: Self.t0 + .seconds(5))
        #expect(due.map(\.connector) == [1] && due.map(\.closed) == [true])
        #expect(r.commanded == [false, false])
        #expect(r.expired(at: Self.t0 + .seconds(50)).isEmpty)
    }

    /// A close's late answer crossing the open request is not a welded contactor; a contactor
    /// that closes or opens with nothing asked is reported.
    @Test func staleAndUncommandedFeedback() {
        var r = RelayConfirmations(connectors: 1, confirmTimeout: .seconds(5))
        r.request(connector: 0, closed: true, at: Self.t0)
        r.request(connector: 0, closed: false, at: Self.t0 + .milliseconds(10))
        #expect(r.feedback(connector: 0, closed: true) == .stale)
        #expect(r.feedback(connector: 0, closed: false) == .confirmed(closed: false))
        #expect(r.feedback(connector: 0, closed: true) == .closedUncommanded)
        r.request(connector: 0, closed: true, at: Self.t0 + .seconds(1))
        #expect(r.feedback(connector: 0, closed: true) == .confirmed(closed: true))
        #expect(r.feedback(connector: 0, closed: false) == .openedUncommanded)
        #expect(r.commanded == [false])
    }
}
