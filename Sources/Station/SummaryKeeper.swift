import Ledger
import PaymentEngine

/// Keeps a summary of every closed session through compaction (issue 12 item 8): before the
/// ledger deletes a segment, the entries it drops are folded into `SessionSummary` records that
/// are written, durably, ahead of the deletion; summary records then stay while younger than
/// `retention.days` and within `retention.budgetBytes`.
///
/// It knows what the ledger holds of each session's summaries (built from the records recovery
/// returned, kept up to date by each compaction), because the budget is about all of them, not
/// only those in the segments one compaction reads.
public struct SummaryKeeper: Sendable {
    /// What the ledger holds of one session's summary records.
    struct Held: Sendable {
        var facts: SummaryRetention.Held
        /// FNV-1a hashes of the bodies on disk: a summary written again (the same compaction
        /// repeated after a crash before its deletions) is recognised and not written twice.
        var bodies: Set<UInt64>
    }

    /// The limits in force.
    public let retention: SummaryRetention
    private var held: [SessionKey: Held] = [:]

    /// Sessions with a summary record in the ledger (for status and tests).
    public var sessionsHeld: Int { held.count }
    /// Bytes those records take (headers included).
    public var bytesHeld: Int { held.values.reduce(0) { $0 + $1.facts.bytes } }

    /// The summaries among `records` (what `Ledger.open` returned); other kinds are ignored.
    public init(retention: SummaryRetention, records: [LedgerRecord] = []) {
        self.retention = retention
        for r in records where r.kind == SessionSummary.recordKind {
            guard let s = try? SessionSummary.decode(kind: r.kind, body: r.body) else { continue }
            Self.note(s, body: r.body, in: &held)
        }
    }

    /// The ledger bytes one summary record takes: header, a relocation prefix (summaries are
    /// copied forward by every compaction that reaches them), body.
    static func cost(_ body: [UInt8]) -> Int {
        LedgerFormat.recordHeaderBytes + LedgerFormat.relocationPrefixBytes + body.count
    }

    /// Adds one summary record to what `held` says the ledger holds; a body already there adds nothing.
    private static func note(_ s: SessionSummary, body: [UInt8], in held: inout [SessionKey: Held]) {
        let hash = Self.fnv1a(body)
        var h = held[s.session] ?? Held(facts: SummaryRetention.Held(session: s.session, endedAt: nil, bytes: 0,
                                                                     needsReconciliation: false), bodies: [])
        guard !h.bodies.contains(hash) else { return }
        h.bodies.insert(hash)
        h.facts.bytes += Self.cost(body)
        h.facts.endedAt = [h.facts.endedAt, s.endedAt].compactMap { $0 }.max()
        h.facts.needsReconciliation = h.facts.needsReconciliation || s.needsReconciliation
        held[s.session] = h
    }

    /// What one compaction did to the summaries.
    public struct Report: Sendable {
        /// What the ledger did.
        public var ledger: CompactionReport
        /// Summary records written for the sessions whose entries went.
        public var written = 0
        /// Sessions whose summary went for being older than the retention.
        public var expired = 0
        /// Sessions whose summary went to keep summaries within the budget, oldest first.
        public var droppedForBudget = 0
        /// Of those, sessions that needed reconciliation.
        public var reconciliationDroppedForBudget: [SessionKey] = []
        /// What to tell the operator: at most one line per kind of loss.
        public var notices: [(NoticeSeverity, String)] {
            var n: [(NoticeSeverity, String)] = []
            if expired > 0 { n.append((.info, "ledger: \(expired) session summaries older than the retention dropped")) }
            let ordinary = droppedForBudget - reconciliationDroppedForBudget.count
            if ordinary > 0 {
                n.append((.warning, "ledger: \(ordinary) session summaries younger than the retention dropped, oldest first, "
                          + "to keep summaries within \(SummaryRetention.budgetPercent) % of the disk budget; "
                          + "raise state.disk_budget_bytes or lower state.retention_days"))
            }
            if !reconciliationDroppedForBudget.isEmpty {
                let shown = reconciliationDroppedForBudget.prefix(Self.keysShown).map(String.init).joined(separator: ", ")
                let more = reconciliationDroppedForBudget.count > Self.keysShown ? " and \(reconciliationDroppedForBudget.count - Self.keysShown) more" : ""
                n.append((.error, "ledger: summaries of \(reconciliationDroppedForBudget.count) sessions needing reconciliation "
                          + "dropped to stay within the disk budget (sessions \(shown)\(more)); raise state.disk_budget_bytes"))
            }
            return n
        }
        /// Session keys named in one notice; the rest are counted.
        public static let keysShown = 10
    }

    /// Compacts `ledger` at wall-clock `now` (milliseconds): engine and outbox records by the
    /// station's rule (`Station.isLive`; of the terminal's condition records the newest,
    /// generation `conditionsGeneration`, 0 keeps them all), summary records by age and budget;
    /// the entries of closed sessions that go are summarised first, durably.
    public mutating func compact(_ ledger: Ledger, openSessions: Set<SessionKey>, highestKey: SessionKey,
                                 keptMessages: Set<String> = [], conditionsGeneration: UInt64 = 0, now: Int64) throws(LedgerError) -> Report {
        // Summaries already held: those that are too old or over budget go with their segments.
        let before = retention.plan(held.keys.sorted().compactMap { held[$0]?.facts }, now: now)
        var expired = before.expired.count, droppedForBudget = before.droppedForBudget.count, written = 0
        var reconciliationDropped = before.reconciliationDroppedForBudget
        var kept = held
        for k in before.expired + before.droppedForBudget { kept[k] = nil }
        let keep = Set(kept.keys)

        var order: [SessionKey] = []
        var dropped: [SessionKey: SessionSummary] = [:]
        var next = kept
        let retention = self.retention
        let compaction = try ledger.compact(
            isLive: { record in
                guard record.kind == SessionSummary.recordKind else {
                    return Station.isLive(record, openSessions: openSessions, highestKey: highestKey, keptMessages: keptMessages,
                                          conditionsGeneration: conditionsGeneration)
                }
                // A summary this version cannot read stays: never drop what we cannot judge.
                guard let s = try? SessionSummary.decode(kind: record.kind, body: record.body) else { return true }
                return keep.contains(s.session)
            },
            dropping: { record in
                guard let e = try? LedgerEntry.decode(kind: record.kind, body: record.body) else { return }
                if dropped[e.session] == nil { order.append(e.session) }
                dropped[e.session] = (dropped[e.session] ?? SessionSummary(session: e.session)).applying(e)
            },
            carryForward: {
                var after = kept
                var fresh: [(SessionSummary, [UInt8])] = []
                for k in order {
                    guard let s = dropped[k] else { continue }
                    let body = s.encodeBody()
                    if kept[k]?.bodies.contains(Self.fnv1a(body)) == true { continue }
                    fresh.append((s, body))
                    Self.note(s, body: body, in: &after)
                }
                // With the new summaries: the budget may now ask for more room, oldest first.
                let plan = retention.plan(after.keys.sorted().compactMap { after[$0]?.facts }, now: now)
                for k in plan.expired + plan.droppedForBudget { after[k] = nil }
                expired += plan.expired.count
                droppedForBudget += plan.droppedForBudget.count
                reconciliationDropped += plan.reconciliationDroppedForBudget
                next = after
                let write = fresh.filter { after[$0.0.session] != nil }
                written = write.count
                return write.map { (kind: SessionSummary.recordKind, body: $0.1) }
            })
        held = next
        return Report(ledger: compaction, written: written, expired: expired, droppedForBudget: droppedForBudget,
                      reconciliationDroppedForBudget: reconciliationDropped)
    }

    /// Every session `records` (what `Ledger.open` returned, in order) still tells of, one
    /// summary each, in time order: the export's list (`SessionSummary.all`). Records this
    /// version cannot read and outbox records are left out.
    public static func summaries(in records: [LedgerRecord]) -> [SessionSummary] {
        var summaries: [SessionSummary] = []
        var entries: [LedgerEntry] = []
        for r in records {
            if r.kind == SessionSummary.recordKind {
                if let s = try? SessionSummary.decode(kind: r.kind, body: r.body) { summaries.append(s) }
            } else if let e = try? LedgerEntry.decode(kind: r.kind, body: r.body) {
                entries.append(e)
            }
        }
        return SessionSummary.all(summaries: summaries, entries: entries)
    }

    /// FNV-1a, 64 bits: tells bodies apart well enough to skip writing one that is already on disk.
    static func fnv1a(_ bytes: [UInt8]) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in bytes { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        return h
    }
}
