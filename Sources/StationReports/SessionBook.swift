import PaymentEngine

/// Every session the ledger knows, as summaries kept current in memory: built at start from the
/// summary records and entries recovery read, then folded with each record the station writes.
/// `sessions` and `export` are answered from here, so a technician's request never reads the
/// disk on the event loop.
public struct SessionBook: Sendable {
    /// Sessions held at most; beyond it the oldest closed ones are forgotten here (they stay in
    /// the ledger's summaries until retention drops them). Summaries are a few hundred bytes.
    public static let maxSessions = 20_000

    var byKey: [SessionKey: SessionSummary] = [:]
    /// Sessions forgotten because of `maxSessions`.
    public private(set) var forgotten = 0

    public init(summaries: [SessionSummary], entries: [LedgerEntry]) {
        for s in SessionSummary.all(summaries: summaries, entries: entries) { byKey[s.session] = s }
        trim()
    }

    /// Folds one written ledger record in (engine entries and summaries; other kinds are ignored).
    public mutating func record(kind: UInt16, body: [UInt8]) {
        if kind == SessionSummary.recordKind {
            guard let s = try? SessionSummary.decode(kind: kind, body: body) else { return }
            byKey[s.session] = byKey[s.session].map { $0.merged(with: s) } ?? s
        } else if let e = try? LedgerEntry.decode(kind: kind, body: body) {
            byKey[e.session] = (byKey[e.session] ?? SessionSummary(session: e.session)).applying(e)
        } else {
            return
        }
        if byKey.count > Self.maxSessions { trim() }
    }

    /// The summaries held, in no particular order.
    public var summaries: [SessionSummary] { Array(byKey.values) }

    mutating func trim() {
        guard byKey.count > Self.maxSessions else { return }
        let closed = byKey.values.filter { $0.outcome != nil }.sorted { ($0.endedAt ?? .min, $0.session) < ($1.endedAt ?? .min, $1.session) }
        for s in closed.prefix(byKey.count - Self.maxSessions) {
            byKey[s.session] = nil
            forgotten += 1
        }
    }
}
