import Glibc
import Testing
import PaymentEngine
import Platform
import StationReports

/// The Prometheus text exposition (0.0.4): the writer line by line, the station's metrics, the
/// sync-latency histogram, and the reference parser's reading of it (python's prometheus_client).
@Suite struct PrometheusTests {
    @Test func countersAndGaugesWithHelpTypeAndEscapedLabels() throws {
        var w = PrometheusText()
        try w.counter("x_total", help: "A counter\\with a backslash\nand a line", [([("a", "q\"uote"), ("b", "back\\slash")], 3),
                                                                                   ([("a", "new\nline"), ("b", "")], .int(-4))])
        try w.gauge("g", help: "a \"gauge\"", 0.25)
        try w.gauge("special", help: "h", [([("k", "inf")], .double(.infinity)), ([("k", "minf")], .double(-.infinity)), ([("k", "nan")], .double(.nan))])
        #expect(w.text.split(separator: "\n", omittingEmptySubsequences: false) == [
            "# HELP x_total A counter\\\\with a backslash\\nand a line",
            "# TYPE x_total counter",
            "x_total{a=\"q\\\"uote\",b=\"back\\\\slash\"} 3",
            "x_total{a=\"new\\nline\",b=\"\"} -4",
            "# HELP g a \"gauge\"",
            "# TYPE g gauge",
            "g 0.25",
            "# HELP special h",
            "# TYPE special gauge",
            "special{k=\"inf\"} +Inf",
            "special{k=\"minf\"} -Inf",
            "special{k=\"nan\"} NaN",
            "",
        ])
    }

    @Test func aHistogramHasCumulativeBucketsInfSumAndCount() throws {
        var w = PrometheusText()
        try w.histogram("h_seconds", help: "h", labels: [("disk", "sd")], buckets: [(0.5, 1), (1, 3), (2.5, 3)], sum: 4.75, count: 5)
        #expect(w.text == """
            # HELP h_seconds h
            # TYPE h_seconds histogram
            h_seconds_bucket{disk="sd",le="0.5"} 1
            h_seconds_bucket{disk="sd",le="1.0"} 3
            h_seconds_bucket{disk="sd",le="2.5"} 3
            h_seconds_bucket{disk="sd",le="+Inf"} 5
            h_seconds_sum{disk="sd"} 4.75
            h_seconds_count{disk="sd"} 5

            """)
    }

    @Test func namesAreValidatedAndFamiliesWrittenOnce() throws {
        #expect(PrometheusText.isValidMetricName("paybridge_x:y_total") && PrometheusText.isValidMetricName("_a") && PrometheusText.isValidMetricName(":a"))
        for bad in ["", "1x", "a-b", "a b", "é", "a{b}", "a\n"] {
            #expect(!PrometheusText.isValidMetricName(bad), "\(bad)")
            var w = PrometheusText()
            #expect(throws: PrometheusError.invalidMetricName(bad)) { try w.gauge(bad, help: "", 1) }
            #expect(w.text.isEmpty, "nothing is written for a refused family")
        }
        for bad in ["", "1a", "a:b", "__reserved", "a-b"] {
            var w = PrometheusText()
            #expect(throws: PrometheusError.invalidLabelName(bad)) { try w.counter("c", help: "", [([(bad, "v")], 1)]) }
        }
        var w = PrometheusText()
        #expect(throws: PrometheusError.reservedLabel("le")) { try w.histogram("h", help: "", labels: [("le", "1")], buckets: [], sum: 0, count: 0) }
        try w.gauge("once", help: "", 1)
        #expect(throws: PrometheusError.duplicateMetric("once")) { try w.counter("once", help: "", 1) }
        #expect(throws: PrometheusError.invalidBuckets("h")) { try w.histogram("h", help: "", buckets: [(1, 1), (1, 2)], sum: 0, count: 2) }
        #expect(throws: PrometheusError.invalidBuckets("h")) { try w.histogram("h", help: "", buckets: [(1, 2), (2, 1)], sum: 0, count: 2) }
        #expect(throws: PrometheusError.invalidBuckets("h")) { try w.histogram("h", help: "", buckets: [(1, 3)], sum: 0, count: 2) }
        #expect(throws: PrometheusError.invalidBuckets("h")) { try w.histogram("h", help: "", buckets: [(.infinity, 1)], sum: 0, count: 2) }
    }

    @Test func syncLatencyBucketsAreInclusiveUpperBounds() {
        var h = SyncLatencyHistogram()
        let bounds = SyncLatencyHistogram.bucketBoundsNanoseconds
        #expect(bounds.first == 500_000 && bounds.last == 1_000_000_000 && zip(bounds, bounds.dropFirst()).allSatisfy { $0 < $1 })
        h.observe(nanoseconds: 0)
        h.observe(nanoseconds: 500_000)       // on the first bound: in it
        h.observe(nanoseconds: 500_001)       // just over: the next
        h.observe(nanoseconds: 7_000_000)
        h.observe(nanoseconds: 2_000_000_000) // over every bound: only in +Inf
        #expect(h.count == 5 && h.sumNanoseconds == 2_008_000_001)
        let cumulative = h.cumulativeBuckets.map(\.cumulativeCount)
        #expect(cumulative == [2, 3, 3, 3, 4, 4, 4, 4, 4, 4, 4])
        #expect(h.cumulativeBuckets.map(\.upperBound) == [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0])
        var full = SyncLatencyHistogram()
        full.observe(nanoseconds: .max)
        full.observe(nanoseconds: 5)
        #expect(full.sumNanoseconds == .max, "the sum saturates")
    }

    static func sample() -> StationMetrics {
        var m = StationMetrics()
        m.sessionsByOutcome = [.captured: 12, .voided: 3, .needsReconciliation: 1]
        m.capturedMinorByCurrency = ["EUR": 123_456, "CHF": 700]
        m.linkDrops = 2
        m.framesBad = 5
        m.outboxDepth = 4
        m.outboxOldestAgeSeconds = 37.5
        m.deadLetters = 1
        m.ledgerSyncs = 3
        m.syncLatency.observe(nanoseconds: 400_000)
        m.syncLatency.observe(nanoseconds: 3_000_000)
        m.syncLatency.observe(nanoseconds: 60_000_000)
        m.relayOperations = 24
        m.activeWarnings = 1
        m.metricsFileFailures = 2
        return m
    }

    @Test func stationMetricsLineByLine() {
        let lines = Self.sample().prometheusText().split(separator: "\n").map(String.init)
        let expected = [
            "# HELP paybridge_sessions_total Closed payment sessions by outcome.",
            "# TYPE paybridge_sessions_total counter",
            "paybridge_sessions_total{outcome=\"settled\"} 12",
            "paybridge_sessions_total{outcome=\"voided\"} 3",
            "paybridge_sessions_total{outcome=\"declined\"} 0",
            "paybridge_sessions_total{outcome=\"abandoned\"} 0",
            "paybridge_sessions_total{outcome=\"needs-reconciliation\"} 1",
            "# HELP paybridge_captured_minor_units_total Amounts captured, in minor units of the currency (cents for EUR).",
            "# TYPE paybridge_captured_minor_units_total counter",
            "paybridge_captured_minor_units_total{currency=\"CHF\"} 700",
            "paybridge_captured_minor_units_total{currency=\"EUR\"} 123456",
            "# HELP paybridge_terminal_link_drops_total Times the payment terminal link went down.",
            "# TYPE paybridge_terminal_link_drops_total counter",
            "paybridge_terminal_link_drops_total 2",
            "# HELP paybridge_terminal_frames_bad_total Frames from the payment terminal that were refused.",
            "# TYPE paybridge_terminal_frames_bad_total counter",
            "paybridge_terminal_frames_bad_total 5",
            "# HELP paybridge_outbox_depth Messages waiting to be sent to the charging platform.",
            "# TYPE paybridge_outbox_depth gauge",
            "paybridge_outbox_depth 4",
            "# HELP paybridge_outbox_oldest_age_seconds Age of the oldest message waiting to be sent, in seconds.",
            "# TYPE paybridge_outbox_oldest_age_seconds gauge",
            "paybridge_outbox_oldest_age_seconds 37.5",
            "# HELP paybridge_outbox_dead_letters Messages the charging platform refused for good, kept for a person.",
            "# TYPE paybridge_outbox_dead_letters gauge",
            "paybridge_outbox_dead_letters 1",
            "# HELP paybridge_ledger_syncs_total Ledger syncs (group commits) done.",
            "# TYPE paybridge_ledger_syncs_total counter",
            "paybridge_ledger_syncs_total 3",
            "# HELP paybridge_ledger_sync_duration_seconds Time one ledger sync took, in seconds.",
            "# TYPE paybridge_ledger_sync_duration_seconds histogram",
            "paybridge_ledger_sync_duration_seconds_bucket{le=\"0.0005\"} 1",
            "paybridge_ledger_sync_duration_seconds_bucket{le=\"0.001\"} 1",
            "paybridge_ledger_sync_duration_seconds_bucket{le=\"0.0025\"} 1",
            "paybridge_ledger_sync_duration_seconds_bucket{le=\"0.005\"} 2",
            "paybridge_ledger_sync_duration_seconds_bucket{le=\"0.01\"} 2",
            "paybridge_ledger_sync_duration_seconds_bucket{le=\"0.025\"} 2",
            "paybridge_ledger_sync_duration_seconds_bucket{le=\"0.05\"} 2",
            "paybridge_ledger_sync_duration_seconds_bucket{le=\"0.1\"} 3",
            "paybridge_ledger_sync_duration_seconds_bucket{le=\"0.25\"} 3",
            "paybridge_ledger_sync_duration_seconds_bucket{le=\"0.5\"} 3",
            "paybridge_ledger_sync_duration_seconds_bucket{le=\"1.0\"} 3",
            "paybridge_ledger_sync_duration_seconds_bucket{le=\"+Inf\"} 3",
            "paybridge_ledger_sync_duration_seconds_sum 0.0634",
            "paybridge_ledger_sync_duration_seconds_count 3",
            "# HELP paybridge_relay_operations_total Relay open and close commands given.",
            "# TYPE paybridge_relay_operations_total counter",
            "paybridge_relay_operations_total 24",
            "# HELP paybridge_active_warnings Warnings in force now.",
            "# TYPE paybridge_active_warnings gauge",
            "paybridge_active_warnings 1",
            "# HELP paybridge_metrics_file_failures_total Times the metrics file could not be written.",
            "# TYPE paybridge_metrics_file_failures_total counter",
            "paybridge_metrics_file_failures_total 2",
        ]
        #expect(lines.count == expected.count)
        for (i, (got, want)) in zip(lines, expected).enumerated() { #expect(got == want, "line \(i + 1)") }
        // Every sample's name is a paybridge_ one, and every family is typed before its samples.
        var typed: Set<String> = []
        for l in lines {
            if l.hasPrefix("# TYPE ") { typed.insert(String(l.split(separator: " ")[2])) }
            if l.hasPrefix("#") { continue }
            #expect(l.hasPrefix(StationMetrics.prefix))
            let name = String(l.prefix { $0 != "{" && $0 != " " })
            #expect(typed.contains(name) || ["_bucket", "_sum", "_count"].contains { name.hasSuffix($0) && typed.contains(String(name.dropLast($0.count))) }, "\(name)")
        }
    }

    @Test func anEmptyStationStillListsEverySeries() {
        let text = StationMetrics().prometheusText()
        #expect(text.contains("paybridge_sessions_total{outcome=\"abandoned\"} 0\n"))
        #expect(text.contains("# TYPE paybridge_captured_minor_units_total counter\n# HELP paybridge_terminal_link_drops_total"),
                "a family without samples keeps its HELP and TYPE")
        #expect(text.contains("paybridge_ledger_sync_duration_seconds_bucket{le=\"+Inf\"} 0\npaybridge_ledger_sync_duration_seconds_sum 0.0\n"))
    }

    @Test(.enabled(if: PythonPrometheus.available, "python3 with prometheus_client is not installed (pip install prometheus_client)"))
    func theReferenceParserReadsEveryFamily() throws {
        var m = Self.sample()
        m.capturedMinorByCurrency["X\"Y\\Z\nW"] = 1   // a label value with every character that needs escaping
        let text = m.prometheusText()
        var template = Array("/tmp/paybridge-prom-XXXXXX".utf8CString)
        let fd = mkstemp(&template)
        try #require(fd >= 0)
        let path = String(cString: template)
        defer { unlink(path) }
        let bytes = Array(text.utf8)
        #expect(bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } == bytes.count)
        close(fd)
        let script = """
            import sys
            from prometheus_client.parser import text_string_to_metric_families
            for f in text_string_to_metric_families(open(sys.argv[1]).read()):
                for s in f.samples:
                    print(f.name, f.type, s.name, sorted(s.labels.items()), repr(float(s.value)))
            """
        let p = try ChildProcess.spawn("/usr/bin/env", ["python3", "-c", script, path], pipeStdin: false)
        var out: [String] = []
        while let line = try p.readLine(timeout: .seconds(60)) { out.append(line) }
        #expect(p.wait(timeout: .seconds(10)) == 0, "\(out)")
        // prometheus_client names a counter family without its _total.
        #expect(out.contains("paybridge_sessions counter paybridge_sessions_total [('outcome', 'settled')] 12.0"))
        #expect(out.contains("paybridge_captured_minor_units counter paybridge_captured_minor_units_total [('currency', 'X\"Y\\\\Z\\nW')] 1.0"))
        #expect(out.contains("paybridge_ledger_sync_duration_seconds histogram paybridge_ledger_sync_duration_seconds_bucket [('le', '0.005')] 2.0"))
        #expect(out.contains("paybridge_ledger_sync_duration_seconds histogram paybridge_ledger_sync_duration_seconds_bucket [('le', '+Inf')] 3.0"))
        #expect(out.contains("paybridge_ledger_sync_duration_seconds histogram paybridge_ledger_sync_duration_seconds_sum [] 0.0634"))
        #expect(out.contains("paybridge_outbox_oldest_age_seconds gauge paybridge_outbox_oldest_age_seconds [] 37.5"))
        #expect(out.contains("paybridge_active_warnings gauge paybridge_active_warnings [] 1.0"))
        #expect(out.contains("paybridge_metrics_file_failures counter paybridge_metrics_file_failures_total [] 2.0"))
        let samples = text.split(separator: "\n").filter { !$0.hasPrefix("#") }.count
        #expect(out.count == samples, "every sample line parsed: \(out.count) of \(samples)")
    }
}
