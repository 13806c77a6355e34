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

    /// A full disk: the daemon's own mount namespace puts a full 16 KiB tmpfs where the file goes.
    /// The daemon keeps running, counts every failed write, says so once, and writes the file
    /// again once there is room.
    @Test(.enabled(if: getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/unshare"), "needs root and unshare"))
    func aFullDiskIsLoggedOnceCountedAndOutlived() throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("fulldisk-\(UUID().uuidString.prefix(8))").path
        let textfiles = work + "/textfile", log = work + "/daemon.log"
        try FileManager.default.createDirectory(atPath: textfiles, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let socket = DiagnosticsSocketTests.socketPath()
        let fill = "mount -t tmpfs -o size=16k tmpfs \(textfiles) && { dd if=/dev/zero of=\(textfiles)/fill bs=1k count=64 2>/dev/null; true; }"
        let b = try Bench(terminal: ["--fallback", "nocard"],
                          config: ["diagnostics.socket = \(socket)", "diagnostics.metrics_file = \(textfiles)/paybridge.prom",
                                   "diagnostics.metrics_interval_seconds = 5", "log.level = info"],
                          ev: nil,
                          launcher: ["/usr/bin/unshare", "-m", "--propagation", "private", "/bin/sh", "-c",
                                     "\(fill) && exec \"$0\" \"$@\" 2>>\(log)"])
        defer { _ = b.stop() }
        func failures() -> Double? {
            let text = (try? paybridgectl(["--socket", socket, "metrics"]).out) ?? []
            return text.first { $0.hasPrefix("paybridge_metrics_file_failures_total ") }.flatMap { Double($0.split(separator: " ")[1]) }
        }
        // At start and at two intervals: three failed writes, one log line.
        #expect(waitUntil(.seconds(25)) { (failures() ?? 0) >= 3 }, "failures counted: \(String(describing: failures())); \(fileText(log))")
        let said = fileText(log).split(separator: "\n").filter { $0.contains("metrics file:") && $0.contains("No space left on device") }
        #expect(said.count == 1, "\(fileText(log))")
        #expect(jsonObject(try paybridgectl(["--socket", socket, "--json", "status"]).out.first)["ok"] as? Bool == true, "the daemon stopped answering")
        // Room again (seen through the daemon's own mount namespace): the next interval writes the file.
        let pid = try #require(b.daemon?.pid)
        let inside = "/proc/\(pid)/root\(textfiles)"
        #expect(unlink(inside + "/fill") == 0, "cannot reach the daemon's tmpfs: errno \(errno)")
        #expect(waitUntil(.seconds(12)) { access(inside + "/paybridge.prom", F_OK) == 0 }, "not written once there was room")
        #expect(samples(fileText(inside + "/paybridge.prom")) != nil)
        #expect(waitUntil(.seconds(5)) { fileText(log).contains("written again after") }, "\(fileText(log))")
        #expect(access(inside + "/paybridge.prom" + ".tmp", F_OK) != 0, "a temporary was left behind")
    }
}
