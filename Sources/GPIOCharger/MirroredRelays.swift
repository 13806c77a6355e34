import ControllerInput
import Timebase

/// The relays as commanded and as their auxiliary (mirror) contacts show them, per connector
/// (0-based). Pure: commands, mirror levels and instants in, outcomes out.
///
/// The command/confirmation bookkeeping is ControllerInput's `RelayConfirmations` (the same rules
/// as a controller's word: a confirmation answers the pending request, the same level said again
/// changes nothing); what differs is where the word comes from and what silence means:
/// - The word is the mirror's *settled* level (`DebouncedLevel`): it changes only after holding
///   for the debounce, and a request the mirror already shows is confirmed at once (a level
///   sends no new edge).
/// - A close the mirror does not show within `feedbackTimeout` is refused to close; the relay is
///   then commanded open (the port de-energises the coil) and that open must be shown in time too.
/// - An open the mirror does not show within `feedbackTimeout` is welded on open: unlike a
///   controller's silence, a mirror that still reads closed is evidence the contacts are stuck.
/// - A relay without a mirror input is trusted on command: each request is confirmed at once.
///   Nothing can then detect a refused or welded contact; the installer chooses that by leaving
///   the mirror line out, and the configuration should say so in its log line.
/// - A welded connector is latched (`welded`) until `clearWeld` (an operator's act): no further
///   outcome is reported for it, and `mayClose` is false.
public struct MirroredRelays: Sendable {
    /// What happened to a connector's relay, for the engine.
    public enum Outcome: Equatable, Sendable {
        /// The mirror shows the requested state (or, without a mirror, it was requested).
        case confirmed(closed: Bool)
        /// A close not shown by the mirror within the feedback time: the relay is commanded open.
        case refusedToClose
        /// An open not shown by the mirror within the feedback time: the contacts are stuck closed.
        case weldedOnOpen
        /// The mirror opened while commanded closed, nothing pending: the contactor dropped out
        /// (its own protection, an emergency stop, a lost coil supply).
        case openedUncommanded
        /// The mirror closed while commanded open, nothing pending: energy nobody asked for.
        case closedUncommanded
    }

    /// The longest feedback time accepted (10 s): a contactor takes tens of milliseconds.
    public static let maxFeedbackTimeout: Duration = .seconds(10)

    /// The commands and what confirmed them (ControllerInput's core).
    public private(set) var confirmations: RelayConfirmations
    /// Each connector's mirror, or nil when it has none (trusted on command).
    public private(set) var mirrors: [DebouncedLevel?]
    /// Latched welded connectors.
    public private(set) var welded: [Bool]

    /// `mirrorLevels[c]`: the mirror's level when its line was requested (closed = true), or nil
    /// for a relay without a mirror. Every relay starts commanded open.
    public init(mirrorLevels: [Bool?], feedbackTimeout: Duration, debounce: Duration, at now: Instant) {
        self.init(mirrorLevels: mirrorLevels, feedbackTimeout: feedbackTimeout,
                  debounces: Array(repeating: debounce, count: mirrorLevels.count), at: now)
    }

    /// As above, with each mirror's own debounce (`debounces[c]`; a missing one is zero).
    public init(mirrorLevels: [Bool?], feedbackTimeout: Duration, debounces: [Duration], at now: Instant) {
        let n = max(1, mirrorLevels.count)
        let timeout = min(max(feedbackTimeout, .milliseconds(1)), Self.maxFeedbackTimeout)
        confirmations = RelayConfirmations(connectors: n, confirmTimeout: timeout)
        mirrors = (0..<n).map { c in
            guard mirrorLevels.indices.contains(c), let level = mirrorLevels[c] else { return nil }
            return DebouncedLevel(level: level, debounce: debounces.indices.contains(c) ? debounces[c] : .zero, at: now)
        }
        welded = Array(repeating: false, count: n)
    }

    /// The feedback time.
    public var feedbackTimeout: Duration { confirmations.confirmTimeout }

    /// What the relay is commanded to be now (the port drives the coil to this).
    public func commanded(connector c: Int) -> Bool {
        confirmations.commanded.indices.contains(c) ? confirmations.commanded[c] : false
    }

    /// Whether the connector may be closed: known and not latched welded.
    public func mayClose(connector c: Int) -> Bool { welded.indices.contains(c) && !welded[c] }

    /// A mirror that already closed at start (before any command) is welded: call once after init.
    public mutating func start(at now: Instant) -> [(connector: Int, outcome: Outcome)] {
        var out: [(connector: Int, outcome: Outcome)] = []
        for c in mirrors.indices where mirrors[c]?.settled == true {
            welded[c] = true
            out.append((c, .closedUncommanded))
        }
        return out
    }

    /// The engine asks for a relay. A close on a welded connector is refused at once.
    public mutating func command(connector c: Int, closed: Bool, at now: Instant) -> [(connector: Int, outcome: Outcome)] {
        guard welded.indices.contains(c) else { return [] }
        if closed && welded[c] { return [(c, .refusedToClose)] }
        confirmations.request(connector: c, closed: closed, at: now)
        guard let m = mirrors[c] else {
            _ = confirmations.feedback(connector: c, closed: closed)
            return [(c, .confirmed(closed: closed))]
        }
        // A level sends no edge: a mirror that already settled where asked (and is not moving
        // away) confirms now.
        if m.settled == closed && m.raw == closed { return report(c, confirmations.feedback(connector: c, closed: closed)) }
        return []
    }

    /// The mirror's raw level at `now` (an edge, or a read); nothing counts before `advance`.
    public mutating func mirror(connector c: Int, closed: Bool, at now: Instant) {
        guard mirrors.indices.contains(c) else { return }
        mirrors[c]?.sample(closed, at: now)
    }

    /// An operator cleared a welded connector (after inspecting it): outcomes are reported again.
    public mutating func clearWeld(connector c: Int) {
        guard welded.indices.contains(c) else { return }
        welded[c] = false
    }

    /// Everything due by `now`, in the order it happened: mirrors settling and feedback times
    /// running out (a settle at the same instant as a deadline counts first).
    public mutating func advance(to now: Instant) -> [(connector: Int, outcome: Outcome)] {
        var out: [(connector: Int, outcome: Outcome)] = []
        while true {
            let settle = mirrors.indices.compactMap { c in mirrors[c]?.settleAt.map { (c, $0) } }
                .filter { $0.1 <= now }.min { $0.1 < $1.1 }
            let expiry = confirmations.nextDeadline.flatMap { $0 <= now ? $0 : nil }
            if let (c, at) = settle, expiry.map({ at <= $0 }) ?? true {
                guard let level = mirrors[c]?.advance(to: at) else { continue }
                out += report(c, confirmations.feedback(connector: c, closed: level))
            } else if let d = expiry {
                for (c, closed) in confirmations.expired(at: d) {
                    if welded[c] { continue }
                    if closed {
                        // De-energise and expect the mirror to show it, like any open.
                        confirmations.request(connector: c, closed: false, at: d)
                        out.append((c, .refusedToClose))
                        if let m = mirrors[c], !m.settled, !m.raw { _ = confirmations.feedback(connector: c, closed: false) }
                    } else {
                        welded[c] = true
                        out.append((c, .weldedOnOpen))
                    }
                }
            } else {
                return out
            }
        }
    }

    /// The earliest instant `advance` has something to do.
    public var nextDeadline: Instant? {
        ([confirmations.nextDeadline] + mirrors.map { $0?.settleAt }).compactMap { $0 }.min()
    }

    mutating func report(_ c: Int, _ o: RelayConfirmations.Outcome) -> [(connector: Int, outcome: Outcome)] {
        if welded[c] { return [] }
        switch o {
        case .confirmed(let closed): return [(c, .confirmed(closed: closed))]
        case .refusedToClose: return [(c, .refusedToClose)]
        case .openedUncommanded: return [(c, .openedUncommanded)]
        case .closedUncommanded:
            welded[c] = true
            return [(c, .closedUncommanded)]
        case .stale, .repeated: return []
        }
    }
}
