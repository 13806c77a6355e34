import Timebase

/// How long a terminal that is open may stay silent before it is reported.
public enum AvailabilityLimits {
    /// An open device or connection whose terminal has not answered bring-up (Synchronize is
    /// polled every second) in this time: a powered-off terminal on a live adapter, the wrong
    /// device, a wrong line speed. Long enough for a booting terminal.
    public static let bringUpPatience: Duration = .seconds(10)
}

/// What the log says about the terminal being away.
public enum AvailabilityReport: Equatable, Sendable {
    /// The terminal could not be opened or connected to, for a reason not yet reported while away.
    case unreachable(reason: String)
    /// The link went down (hang-up, closed connection, a reset the link asked for), for a reason
    /// not yet reported while away.
    case lost(reason: String)
    /// The terminal is open but has not answered bring-up for `after`.
    case silent(after: Duration)
    /// The link is up again, `away` after it was lost (or after the start), following a report.
    case back(away: Duration)
}

/// Whether the terminal link is away, since when and what has been said about it, so that a
/// terminal that stays away is reported when it goes and when the reason changes, never on
/// every retry: each reason (and the silence) at most once per absence, so that two reasons
/// taking turns (open, silence, hang-up, open, …) cannot flood the log either. Pure: the driver
/// feeds it what the connection and the link do.
public struct LinkAvailability: Sendable {
    public let patience: Duration
    /// Since when the link has not been up; nil while it is up.
    public private(set) var awaySince: Instant?
    /// The problems reported during this absence (reasons, and the silence).
    var reported: Set<String> = []
    /// The connection opened at this instant and bring-up has not finished yet.
    var openedAt: Instant?

    static let silenceKey = "\u{0}silent"

    /// Starts away: the link is not up until bring-up says so.
    public init(patience: Duration = AvailabilityLimits.bringUpPatience, now: Instant) {
        self.patience = patience
        awaySince = now
    }

    /// Opening or connecting failed.
    public mutating func openFailed(_ reason: String, now: Instant) -> AvailabilityReport? {
        goneAway(now)
        openedAt = nil
        return note(reason, .unreachable(reason: reason))
    }

    /// The connection opened; bring-up starts.
    public mutating func opened(now: Instant) {
        openedAt = now
    }

    /// The connection went down.
    public mutating func lost(_ reason: String, now: Instant) -> AvailabilityReport? {
        goneAway(now)
        openedAt = nil
        return note(reason, .lost(reason: reason))
    }

    /// The terminal lost its state and bring-up starts again on the open connection. Reported
    /// by the link itself, so nothing is reported here; the silence after it is.
    public mutating func restarted(now: Instant) {
        goneAway(now)
        reported.insert("terminal reset")
        openedAt = now
    }

    /// Bring-up finished: the link is up.
    public mutating func up(now: Instant) -> AvailabilityReport? {
        defer { awaySince = nil; reported = []; openedAt = nil }
        guard !reported.isEmpty, let since = awaySince else { return nil }
        return .back(away: now - since)
    }

    /// When an open terminal's silence is due to be reported.
    public var nextDeadline: Instant? {
        guard let o = openedAt, !reported.contains(Self.silenceKey) else { return nil }
        return o + patience
    }

    public mutating func tick(now: Instant) -> AvailabilityReport? {
        guard let due = nextDeadline, now >= due else { return nil }
        reported.insert(Self.silenceKey)
        return .silent(after: patience)
    }

    mutating func goneAway(_ now: Instant) {
        if awaySince == nil { awaySince = now }
    }

    mutating func note(_ reason: String, _ report: AvailabilityReport) -> AvailabilityReport? {
        guard reported.insert(reason).inserted else { return nil }
        return report
    }
}
