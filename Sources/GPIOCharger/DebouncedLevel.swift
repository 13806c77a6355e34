import Timebase

/// A contact's level as the daemon believes it: a new raw level counts (`settled`) only once it
/// has held for `debounce` with no change. Pure: samples and instants in. Used for the relay's
/// mirror contact and the plug-detect input, on top of whatever debounce the chip itself does
/// (the kernel's debounce attribute, or gpiolib's software one), so that a chip without
/// debounce still gives settled levels and the rule is tested here rather than trusted there.
public struct DebouncedLevel: Equatable, Sendable {
    /// The longest debounce accepted (1 s): longer, and a plug or a contact reads as absent.
    public static let maxDebounce: Duration = .seconds(1)

    /// How long a new level must hold before it counts.
    public let debounce: Duration
    /// The level that counts.
    public private(set) var settled: Bool
    /// The last level seen, and since when.
    public private(set) var raw: Bool
    public private(set) var rawSince: Instant

    /// Starts settled at `level` (the level read when the line was requested).
    public init(level: Bool, debounce: Duration, at now: Instant) {
        self.debounce = min(max(debounce, .zero), Self.maxDebounce)
        settled = level
        raw = level
        rawSince = now
    }

    /// The raw level at `now` (an edge, or a read after events were lost). Instants before the
    /// last one seen (an edge timestamped before a read) count as that one.
    public mutating func sample(_ level: Bool, at now: Instant) {
        guard level != raw else { return }
        raw = level
        rawSince = max(now, rawSince)
    }

    /// When the raw level will count, if it differs from the settled one.
    public var settleAt: Instant? { raw != settled ? rawSince + debounce : nil }

    /// Settles the raw level if it has held long enough by `now`: the new settled level, or nil.
    public mutating func advance(to now: Instant) -> Bool? {
        guard let at = settleAt, now >= at else { return nil }
        settled = raw
        return settled
    }
}
