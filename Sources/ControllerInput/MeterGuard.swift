import Timebase

/// Why a meter reading from the charger's controller was not given to the engine. The engine
/// bills the energy register it is given, so a reading the connector could not have produced is
/// refused here rather than charged to a driver.
public enum MeterRejection: String, CaseIterable, Sendable, Error {
    /// The register is below zero: no energy meter counts that way.
    case negative
    /// The register is above `MeterGuard.absurdRegisterWh`: no connector's meter gets there.
    case absurd
    /// The reported power is below zero or above the connector's maximum (plus
    /// `MeterGuard.powerTolerancePercent`): the controller is reading something else.
    case implausiblePower = "implausible_power"
    /// The register is below the last accepted one (a meter swapped or reset, or a stale
    /// reading): the engine would never bill less, but nothing after it can be trusted either.
    case backwards
    /// More energy since the last accepted reading than the connector's maximum power could
    /// deliver in the time between them (plus `MeterGuard.toleranceWh`).
    case jump

    /// For the controller's error reply and the log.
    public var explanation: String {
        switch self {
        case .negative: return "the register is below zero"
        case .absurd: return "the register is beyond what any connector's meter reaches"
        case .implausiblePower: return "the power is negative or above the connector's maximum (charger.max_power_w)"
        case .backwards: return "the register went backwards from the last accepted reading"
        case .jump: return "more energy since the last reading than the connector's maximum power allows in that time"
        }
    }
}

/// A reading the guard accepted.
public struct MeterReading: Equatable, Sendable {
    /// The connector's energy register, cumulative Wh.
    public var registerWh: Int64
    /// The power the controller reported with it, W.
    public var powerW: Int64?
    /// When it arrived (monotonic, passed in).
    public var at: Instant

    public init(registerWh: Int64, powerW: Int64?, at: Instant) {
        self.registerWh = registerWh
        self.powerW = powerW
        self.at = at
    }
}

/// The plausibility check of the controller's meter readings and the meter's silence timer, per
/// connector (0-based). Pure: readings and instants in, verdicts out.
///
/// A reading is judged against the last *accepted* one, never the last received, so one bad
/// reading does not become the baseline of the next: the register is cumulative, and the next
/// plausible reading carries the energy a rejected one claimed, if it was real. A meter that
/// really jumped (swapped for another) keeps being rejected until the jump becomes plausible in
/// time; while a connector is charging, `silent(at:)` then stops the session on the last accepted
/// reading, which is the safe side for the driver.
public struct MeterGuard: Sendable {
    /// Above this register (1 TWh) a reading is absurd: a charger meter's display ends well below.
    public static let absurdRegisterWh: Int64 = 1_000_000_000_000
    /// Energy allowed beyond `maxPowerW × elapsed`: meter resolution and the jitter between when
    /// the meter was read and when its reading arrived (10 Wh is under 2 s at 22 kW).
    public static let toleranceWh: Int64 = 10
    /// Power allowed above `maxPowerW`, in percent: meters and controllers round and overshoot.
    public static let powerTolerancePercent: Int64 = 10

    /// The connector's maximum power (`charger.max_power_w`).
    public let maxPowerW: Int64
    /// The highest power a reading may report: `maxPowerW` plus `powerTolerancePercent`.
    public let maxPlausiblePowerW: Int64
    /// How long a watched connector may go without an accepted reading (`charger.meter_timeout_seconds`).
    public let timeout: Duration
    /// The last accepted reading per connector.
    public private(set) var lastAccepted: [MeterReading?]
    /// Rejected readings by reason, since start.
    public private(set) var rejections: [MeterRejection: Int] = [:]
    /// Accepted readings, since start.
    public private(set) var accepted = 0
    /// Per connector: since when it must be metered (its relay closed), or nil when not watched.
    public private(set) var watchedSince: [Instant?]
    /// Per connector: why its last reading was refused, until one is accepted, so that a silence
    /// fault can say the meter did answer, with readings that were refused.
    public private(set) var lastRefusal: [String?]

    public init(connectors: Int, maxPowerW: Int64, timeout: Duration) {
        let n = max(1, connectors)
        self.maxPowerW = max(0, maxPowerW)
        let (scaled, overflow) = self.maxPowerW.multipliedReportingOverflow(by: 100 + Self.powerTolerancePercent)
        maxPlausiblePowerW = overflow ? .max : scaled / 100
        self.timeout = timeout
        lastAccepted = Array(repeating: nil, count: n)
        watchedSince = Array(repeating: nil, count: n)
        lastRefusal = Array(repeating: nil, count: n)
    }

    /// Judges a reading without recording it: nil when it is plausible.
    public func judge(connector c: Int, registerWh: Int64, powerW: Int64?, at now: Instant) -> MeterRejection? {
        if registerWh < 0 { return .negative }
        if registerWh > Self.absurdRegisterWh { return .absurd }
        if let p = powerW, p < 0 || p > maxPlausiblePowerW { return .implausiblePower }
        guard lastAccepted.indices.contains(c), let last = lastAccepted[c] else { return nil }
        if registerWh < last.registerWh { return .backwards }
        // Both registers are within 0...absurdRegisterWh: the difference cannot overflow.
        if registerWh - last.registerWh > maxEnergyWh(over: now - last.at) { return .jump }
        return nil
    }

    /// Judges a reading and records it when accepted (the new baseline and the silence timer's
    /// start) or counts its rejection: nil when accepted.
    public mutating func check(connector c: Int, registerWh: Int64, powerW: Int64?, at now: Instant) -> MeterRejection? {
        if let r = judge(connector: c, registerWh: registerWh, powerW: powerW, at: now) {
            rejections[r, default: 0] += 1
            refused(connector: c, because: r.explanation)
            return r
        }
        guard lastAccepted.indices.contains(c) else { return nil }
        lastAccepted[c] = MeterReading(registerWh: registerWh, powerW: powerW, at: now)
        lastRefusal[c] = nil
        accepted += 1
        return nil
    }

    /// A reading refused for a reason outside the guard's rules (a meter whose serial number
    /// changed): remembered for the silence fault like the guard's own refusals.
    public mutating func refused(connector c: Int, because reason: String) {
        guard lastRefusal.indices.contains(c) else { return }
        lastRefusal[c] = reason
    }

    /// The fault text of a connector whose meter went silent: the timeout, and the last refusal's
    /// reason when the meter answered with readings that were refused.
    public func silenceFault(connector c: Int) -> String {
        let why = lastRefusal.indices.contains(c) ? lastRefusal[c].map { "; its last readings were refused: \($0)" } ?? "" : ""
        return "meter silent for \(timeout.components.seconds)s (no accepted reading\(why))"
    }

    /// Forgets the connector's last accepted reading, so the next one is judged on its own (a
    /// meter replaced between sessions, told by its serial number, starts from its own register).
    /// Never while the connector is charging: the register would then be trusted unchecked.
    public mutating func rebase(connector c: Int) {
        guard lastAccepted.indices.contains(c), watchedSince[c] == nil else { return }
        lastAccepted[c] = nil
    }

    /// The most energy the connector can deliver in `elapsed` (rounded up) plus `toleranceWh`;
    /// saturates rather than overflows, and a negative interval (readings out of order) counts as none.
    public func maxEnergyWh(over elapsed: Duration) -> Int64 {
        let ms = max(0, elapsed.nanosecondsClamped / 1_000_000)
        let (wattMs, overflow) = maxPowerW.multipliedReportingOverflow(by: ms)
        if overflow { return .max }
        let wh = wattMs / 3_600_000 + (wattMs % 3_600_000 == 0 ? 0 : 1)
        let (total, over2) = wh.addingReportingOverflow(Self.toleranceWh)
        return over2 ? .max : total
    }

    // MARK: silence

    /// The connector is charging from `now` on (its relay closed): it must be metered.
    public mutating func watch(connector c: Int, from now: Instant) {
        guard watchedSince.indices.contains(c), watchedSince[c] == nil else { return }
        watchedSince[c] = now
    }

    /// The connector stopped charging (its relay was told to open): its meter may be quiet.
    public mutating func unwatch(connector c: Int) {
        guard watchedSince.indices.contains(c) else { return }
        watchedSince[c] = nil
    }

    /// When a watched connector's meter counts as silent: `timeout` after the later of its
    /// last accepted reading and the start of the watch; nil when it is not watched.
    public func silenceDeadline(connector c: Int) -> Instant? {
        guard watchedSince.indices.contains(c), let since = watchedSince[c] else { return nil }
        let last = lastAccepted[c].map { max($0.at, since) } ?? since
        return last + timeout
    }

    /// The earliest silence deadline of any connector.
    public var nextDeadline: Instant? { watchedSince.indices.compactMap { silenceDeadline(connector: $0) }.min() }

    /// The watched connectors whose meter is silent at `now`; each stops being watched (one
    /// fault per silence, not one per tick).
    public mutating func silent(at now: Instant) -> [Int] {
        let due = watchedSince.indices.filter { silenceDeadline(connector: $0).map { now >= $0 } ?? false }
        for c in due { watchedSince[c] = nil }
        return due
    }
}
