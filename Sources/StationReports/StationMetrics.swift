import PaymentEngine

/// How long the ledger's syncs (fdatasync of a group commit) take, in fixed buckets: what the
/// daemon times and `paybridgectl metrics` shows. A value: observe, copy, render.
public struct SyncLatencyHistogram: Equatable, Sendable {
    /// The bucket upper bounds, nanoseconds: 0.5 ms to 1 s. A flash card's sync takes a few ms;
    /// past a second the station's answers to the terminal are late.
    public static let bucketBoundsNanoseconds: [UInt64] = [
        500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000, 25_000_000,
        50_000_000, 100_000_000, 250_000_000, 500_000_000, 1_000_000_000,
    ]

    /// Observations per bucket (not cumulative); the last counts those over every bound.
    public private(set) var counts: [UInt64] = Array(repeating: 0, count: bucketBoundsNanoseconds.count + 1)
    /// The sum of every observation, nanoseconds (saturating).
    public private(set) var sumNanoseconds: UInt64 = 0
    /// How many observations.
    public private(set) var count: UInt64 = 0

    public init() {}

    /// One sync that took `nanoseconds` (it lands in the first bucket whose bound is at least that).
    public mutating func observe(nanoseconds: UInt64) {
        let i = Self.bucketBoundsNanoseconds.firstIndex { nanoseconds <= $0 } ?? Self.bucketBoundsNanoseconds.count
        counts[i] &+= 1
        count &+= 1
        let (sum, overflow) = sumNanoseconds.addingReportingOverflow(nanoseconds)
        sumNanoseconds = overflow ? .max : sum
    }

    /// The buckets as Prometheus wants them: (bound in seconds, observations at or under it).
    public var cumulativeBuckets: [(upperBound: Double, cumulativeCount: UInt64)] {
        var running: UInt64 = 0
        return Self.bucketBoundsNanoseconds.enumerated().map { i, bound in
            running &+= counts[i]
            return (Double(bound) / 1e9, running)
        }
    }
}

/// The numbers the daemon has, for `paybridgectl metrics`: a plain value the lead fills from the
/// station's state, rendered by `prometheusText()`.
public struct StationMetrics: Equatable, Sendable {
    /// Closed sessions per outcome since the daemon started (or as the ledger says: the caller chooses).
    public var sessionsByOutcome: [SessionOutcome: Int] = [:]
    /// Captured amounts per ISO 4217 currency, minor units.
    public var capturedMinorByCurrency: [String: Int64] = [:]
    /// Times the terminal link went down.
    public var linkDrops: Int = 0
    /// Frames from the terminal that were refused (bad checksum, length, layout).
    public var framesBad: Int = 0
    /// Messages waiting in the outbox for the cloud.
    public var outboxDepth: Int = 0
    /// The age of the oldest message waiting, seconds (0 when none waits).
    public var outboxOldestAgeSeconds: Double = 0
    /// Messages the cloud refused for good, kept for a person.
    public var deadLetters: Int = 0
    /// Ledger syncs (group commits) done.
    public var ledgerSyncs: Int = 0
    /// How long those syncs took.
    public var syncLatency = SyncLatencyHistogram()
    /// Relay open and close commands given.
    public var relayOperations: Int = 0
    /// Warnings in force now (the station's status shows them).
    public var activeWarnings: Int = 0
    /// Writes of `diagnostics.metrics_file` that failed since start.
    public var metricsFileFailures: Int = 0

    public init() {}

    /// Every metric's name; each starts with `prefix`.
    public static let prefix = "paybridge_"
    public static let sessionsName = "paybridge_sessions_total"
    public static let capturedName = "paybridge_captured_minor_units_total"
    public static let linkDropsName = "paybridge_terminal_link_drops_total"
    public static let framesBadName = "paybridge_terminal_frames_bad_total"
    public static let outboxDepthName = "paybridge_outbox_depth"
    public static let outboxOldestAgeName = "paybridge_outbox_oldest_age_seconds"
    public static let deadLettersName = "paybridge_outbox_dead_letters"
    public static let ledgerSyncsName = "paybridge_ledger_syncs_total"
    public static let syncLatencyName = "paybridge_ledger_sync_duration_seconds"
    public static let relayOperationsName = "paybridge_relay_operations_total"
    public static let activeWarningsName = "paybridge_active_warnings"
    public static let metricsFileFailuresName = "paybridge_metrics_file_failures_total"

    /// The Prometheus text exposition (0.0.4). Every outcome is listed, 0 included, so that a
    /// series exists before its first session; currencies in code order.
    public func prometheusText() -> String {
        var w = PrometheusText()
        do {
            try w.counter(Self.sessionsName, help: "Closed payment sessions by outcome.",
                          SessionOutcome.allCases.map { ([("outcome", Self.label($0))], .int(Int64(sessionsByOutcome[$0] ?? 0))) })
            try w.counter(Self.capturedName, help: "Amounts captured, in minor units of the currency (cents for EUR).",
                          capturedMinorByCurrency.sorted { $0.key < $1.key }.map { ([("currency", $0.key)], .int($0.value)) })
            try w.counter(Self.linkDropsName, help: "Times the payment terminal link went down.", .int(Int64(linkDrops)))
            try w.counter(Self.framesBadName, help: "Frames from the payment terminal that were refused.", .int(Int64(framesBad)))
            try w.gauge(Self.outboxDepthName, help: "Messages waiting to be sent to the charging platform.", .int(Int64(outboxDepth)))
            try w.gauge(Self.outboxOldestAgeName, help: "Age of the oldest message waiting to be sent, in seconds.", .double(outboxOldestAgeSeconds))
            try w.gauge(Self.deadLettersName, help: "Messages the charging platform refused for good, kept for a person.", .int(Int64(deadLetters)))
            try w.counter(Self.ledgerSyncsName, help: "Ledger syncs (group commits) done.", .int(Int64(ledgerSyncs)))
            try w.histogram(Self.syncLatencyName, help: "Time one ledger sync took, in seconds.",
                            buckets: syncLatency.cumulativeBuckets,
                            sum: .double(Double(syncLatency.sumNanoseconds) / 1e9), count: syncLatency.count)
            try w.counter(Self.relayOperationsName, help: "Relay open and close commands given.", .int(Int64(relayOperations)))
            try w.gauge(Self.activeWarningsName, help: "Warnings in force now.", .int(Int64(activeWarnings)))
            try w.counter(Self.metricsFileFailuresName, help: "Times the metrics file could not be written.", .int(Int64(metricsFileFailures)))
        } catch {
            // Every name and label above is a constant the tests check: this is a bug, not input.
            preconditionFailure("StationMetrics: \(error)")
        }
        return w.text
    }

    /// An outcome as a label value, in the export's words.
    static func label(_ o: SessionOutcome) -> String { SessionState(o).rawValue }
}
