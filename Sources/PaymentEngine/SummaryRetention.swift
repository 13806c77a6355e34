/// How long session summaries are kept and how much of the disk budget they may take.
public struct SummaryRetention: Equatable, Sendable {
    /// `state.retention_days` when the configuration does not say: a year and a bit, so that an
    /// export can answer for the past year.
    public static let defaultDays = 400
    /// The accepted range of `state.retention_days`: at least a day, at most ten years.
    public static let dayRange = 1...3650
    /// The share of `state.disk_budget_bytes` summaries may take; the rest stays for sessions
    /// and messages (new sessions are refused at 90 % of the whole).
    public static let budgetPercent = 25
    static let millisPerDay: Int64 = 86_400_000

    /// Days a summary is kept after its session's last fact.
    public var days: Int
    /// Bytes summary records may take in the ledger, headers included.
    public var budgetBytes: Int

    /// `days` of retention within `budgetPercent` of `diskBudgetBytes`.
    public init(days: Int = SummaryRetention.defaultDays, diskBudgetBytes: Int) {
        self.days = days
        budgetBytes = diskBudgetBytes * Self.budgetPercent / 100
    }

    /// The retention in milliseconds.
    public var millis: Int64 { Int64(days) * Self.millisPerDay }

    /// What the ledger holds of one session's summary records.
    public struct Held: Equatable, Sendable {
        public var session: SessionKey
        /// The latest time the summaries carry; nil: none (kept, its age unknown).
        public var endedAt: Int64?
        /// Bytes its records take in the ledger.
        public var bytes: Int
        public var needsReconciliation: Bool
        public init(session: SessionKey, endedAt: Int64?, bytes: Int, needsReconciliation: Bool) {
            self.session = session; self.endedAt = endedAt; self.bytes = bytes; self.needsReconciliation = needsReconciliation
        }
    }

    /// Which summaries stay, and why the others go.
    public struct Plan: Equatable, Sendable {
        /// The summaries kept, in the order given.
        public var kept: [Held] = []
        /// Sessions whose summary is older than the retention.
        public var expired: [SessionKey] = []
        /// Sessions whose summary was dropped, oldest first, to stay within `budgetBytes`.
        public var droppedForBudget: [SessionKey] = []
        /// Of `droppedForBudget`, those that needed reconciliation (dropped only when every
        /// other summary had gone): a person must hear of each.
        public var reconciliationDroppedForBudget: [SessionKey] = []
        /// Bytes the kept summaries take.
        public var keptBytes = 0
    }

    /// Decides, at wall-clock `now` (milliseconds), which summaries stay: those younger than the
    /// retention, within the budget. Over budget, the oldest go first, and a summary of a session
    /// that needs reconciliation only after every other one. Pure: time is passed in.
    public func plan(_ held: [Held], now: Int64) -> Plan {
        var plan = Plan()
        var young: [Held] = []
        for h in held {
            if let end = h.endedAt, now - end >= millis { plan.expired.append(h.session) } else { young.append(h) }
        }
        var total = young.reduce(0) { $0 + $1.bytes }
        var drop = Set<SessionKey>()
        if total > budgetBytes {
            // Ordinary summaries first, oldest first (no time: oldest of all); then reconciliation ones.
            let order = young.enumerated().sorted { a, b in
                if a.element.needsReconciliation != b.element.needsReconciliation { return !a.element.needsReconciliation }
                let ta = a.element.endedAt ?? .min, tb = b.element.endedAt ?? .min
                return ta != tb ? ta < tb : a.offset < b.offset
            }
            for (_, h) in order where total > budgetBytes {
                drop.insert(h.session)
                total -= h.bytes
                plan.droppedForBudget.append(h.session)
                if h.needsReconciliation { plan.reconciliationDroppedForBudget.append(h.session) }
            }
        }
        plan.kept = young.filter { !drop.contains($0.session) }
        plan.keptBytes = total
        return plan
    }
}
