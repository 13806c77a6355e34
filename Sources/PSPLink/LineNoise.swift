import PSPCodec
import Timebase

/// How often bad input from the terminal may be reported.
public enum LineNoiseLimits {
    /// At most one report per interval: a terminal (or a cable) sending garbage produced one
    /// log line per malformed frame, 611 lines for 200 KB, enough to bury everything else and
    /// fill a small journal. Ten seconds keeps a fault visible while it lasts.
    public static let reportInterval: Duration = .seconds(10)
}

/// Bad input from the terminal over one period: malformed-frame episodes by kind, the bytes
/// they discarded, and frames whose checksum was good but whose payload did not decode.
public struct LineNoiseReport: Equatable, Sendable {
    /// Episodes by kind, in `MalformedKind.allCases` order.
    public var malformed: [Int] = Array(repeating: 0, count: MalformedKind.allCases.count)
    public var bytesDiscarded = 0
    /// Undecodable frames by header.
    public var undecodable: [UInt8: Int] = [:]
    /// When the first and the last event of the period happened.
    public var first: Instant
    public var last: Instant

    public init(at now: Instant) { first = now; last = now }

    public subscript(kind: MalformedKind) -> Int { malformed[MalformedKind.allCases.firstIndex(of: kind)!] }
    public var malformedTotal: Int { malformed.reduce(0, +) }
    public var undecodableTotal: Int { undecodable.values.reduce(0, +) }
}

/// Turns the link's `.malformed` and `.undecodable` events into at most one report per
/// `interval`. Pure: events and instants in, reports out; the shell logs them and calls
/// `tick` at `nextDeadline`.
///
/// The first event after a quiet interval is reported at once (a fault is seen when it starts);
/// what follows within the interval is counted and reported when it ends. Nothing is lost: every
/// event is in exactly one report, and the totals since the start are kept as well.
public struct LineNoiseSummary: Sendable {
    public let interval: Duration
    /// Everything ever counted, reported or still pending.
    public private(set) var total: LineNoiseReport
    /// Counted since the last report.
    public private(set) var pending: LineNoiseReport?
    var lastReport: Instant?

    public init(interval: Duration = LineNoiseLimits.reportInterval, now: Instant) {
        self.interval = interval
        total = LineNoiseReport(at: now)
    }

    /// A malformed-frame episode that discarded `skipped` bytes.
    public mutating func malformed(_ kind: MalformedKind, skipped: Int, now: Instant) -> LineNoiseReport? {
        let i = MalformedKind.allCases.firstIndex(of: kind)!
        count(now) { $0.malformed[i] += 1; $0.bytesDiscarded += skipped }
        return reportIfAllowed(now: now)
    }

    /// A frame with a good checksum whose payload did not fit its header's layout.
    public mutating func undecodable(header: UInt8, now: Instant) -> LineNoiseReport? {
        count(now) { $0.undecodable[header, default: 0] += 1 }
        return reportIfAllowed(now: now)
    }

    /// When the pending counts are due to be reported; nil when nothing is pending.
    public var nextDeadline: Instant? {
        guard pending != nil else { return nil }
        return lastReport.map { $0 + interval }
    }

    /// The pending report, when its time has come.
    public mutating func tick(now: Instant) -> LineNoiseReport? { reportIfAllowed(now: now) }

    /// Whatever is pending, now (the daemon is stopping).
    public mutating func flush(now: Instant) -> LineNoiseReport? {
        guard let p = pending else { return nil }
        pending = nil
        lastReport = now
        return p
    }

    mutating func count(_ now: Instant, _ change: (inout LineNoiseReport) -> Void) {
        var p = pending ?? LineNoiseReport(at: now)
        change(&p)
        p.last = now
        pending = p
        change(&total)
        total.last = now
    }

    mutating func reportIfAllowed(now: Instant) -> LineNoiseReport? {
        guard pending != nil else { return nil }
        if let l = lastReport, now < l + interval { return nil }
        return flush(now: now)
    }
}
