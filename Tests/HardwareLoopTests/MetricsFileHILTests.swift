import Foundation
import Glibc
import Platform
import Testing

/// `diagnostics.metrics_file` with the real daemon: written with the socket disabled, readable
/// as Prometheus text, and rewritten as the station's figures change.
@Suite(.serialized) struct MetricsFileHIL {
    /// Each sample line of `text` (`name{labels} value`) with its family's `# TYPE`; nil when a
    /// line is neither a comment nor a sample of a typed family.
    func samples(_ text: String) -> [String: Double]? {
        var typed: Set<String> = []
        var out: [String: Double] = [:]
        for line in text.split(separator: "\n").map(String.init) {
            if line.hasPrefix("# TYPE ") {
                let parts = line.split(separator: " ")
                guard parts.count == 4, ["counter", "gauge", "histogram"].contains(String(parts[3])) else { return nil }
                typed.insert(String(parts[2]))
                continue
            }
            if line.hasPrefix("# HELP ") { continue }
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { return nil }
            let series = String(line[..<space])
            let name = String(series.prefix { $0 != "{" })
            let family = ["_bucket", "_sum", "_count"].first { name.hasSuffix($0) && typed.contains(String(name.dropLast($0.count))) }
                .map { String(name.dropLast($0.count)) } ?? name
            guard typed.contains(family) else { return nil }
            out[series] = value
        }
        return out
    }

    @Test func theMetricsFileAppearsParsesAndFollowsASettledSession() throws {
        let textfiles = FileManager.default.temporaryDirectory.appendingPathComponent("textfile-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: textfiles, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: textfiles) }
        let path = textfiles + "/paybridge.prom"
        let b = try Bench(terminal: ["--session", "approve", "--fallback", "nocard"],
                          config: ["diagnostics.socket = ", "diagnostics.metrics_file = \(path)", "diagnostics.metrics_interval_seconds = 5"],
                          ev: "plug=100,charge=1500,power=3600000")
        #expect(waitUntil(.seconds(15)) { access(path, F_OK) == 0 }, "no metrics file")
        let first = fileText(path)
        let before = samples(first)
        #expect(before != nil, "not Prometheus text: \(first)")
        #expect(first.contains("# TYPE paybridge_sessions_total counter\n"))
        #expect(before?["paybridge_sessions_total{outcome=\"settled\"}"] == 0)
        var st = stat()
        #expect(stat(path, &st) == 0 && st.st_mode & 0o777 == 0o644)
        #expect(waitUntil(.seconds(60)) { !b.settlements("Settled").isEmpty }, "no settlement reached the cloud")
        // Within an interval (5 s) the file shows the settled session and the ledger's syncs.
        var after: [String: Double]?
        #expect(waitUntil(.seconds(12)) {
            after = samples(fileText(path))
            return after?["paybridge_sessions_total{outcome=\"settled\"}"] == 1
        }, "the file was not rewritten: \(fileText(path))")
        #expect((after?["paybridge_ledger_syncs_total"] ?? 0) > (before?["paybridge_ledger_syncs_total"] ?? 0))
        #expect((after?["paybridge_relay_operations_total"] ?? 0) >= 2)
        #expect(after?["paybridge_metrics_file_failures_total"] == 0)
        let seriesBefore = Set((before ?? [:]).keys), seriesAfter = Set((after ?? [:]).keys)
        #expect(seriesAfter.isSuperset(of: seriesBefore), "a series went missing")
        #expect(try FileManager.default.contentsOfDirectory(atPath: textfiles) == ["paybridge.prom"], "a temporary was left behind")
        #expect(b.stop() == 0)
    }
}
