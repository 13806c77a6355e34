/// Which meter each connector's readings come from, by serial number (0-based connectors).
/// Pure. The engine bills the difference of one meter's register; a reading from another meter
/// (a swap, a wrong bus address, two connectors' meters crossed) is not the same register.
public struct MeterSerials: Equatable, Sendable {
    /// What a reading's serial number means.
    public enum Verdict: Equatable, Sendable {
        /// The serial seen before (or the first one, or none given): judge the reading.
        case same
        /// Another serial while the connector is not charging: a replaced meter, adopted; its
        /// register is judged afresh (`MeterGuard.rebase`).
        case replaced(previous: String)
        /// Another serial while the connector is charging: rejected; the session's meter stays
        /// the one it started with.
        case changedWhileCharging(expected: String)
    }

    /// The longest serial number kept (bytes of UTF-8); longer ones are compared on this prefix.
    public static let maxSerialBytes = 64

    /// Each connector's meter serial as last adopted.
    public private(set) var serials: [String?]

    public init(connectors: Int) { serials = Array(repeating: nil, count: max(1, connectors)) }

    /// Judges a reading's serial (nil: the meter gives none, nothing to compare) and adopts it
    /// unless the connector is charging.
    public mutating func check(connector c: Int, serial: String?, charging: Bool) -> Verdict {
        guard serials.indices.contains(c), let raw = serial else { return .same }
        let s = String(decoding: raw.utf8.prefix(Self.maxSerialBytes), as: UTF8.self)
        guard let known = serials[c] else {
            serials[c] = s
            return .same
        }
        if known == s { return .same }
        if charging { return .changedWhileCharging(expected: known) }
        serials[c] = s
        return .replaced(previous: known)
    }
}
