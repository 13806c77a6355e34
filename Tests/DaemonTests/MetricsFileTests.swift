import Configuration
@testable import Daemon
import DaemonLog
import FakeTerminal
import Foundation
import Glibc
import Platform
import Testing
import Timebase

/// `diagnostics.metrics_file`: the atomic writer on real files, what the log says about failures,
/// the timer on a real event loop, and the daemon writing its metrics with the socket disabled.
@Suite(.serialized) struct MetricsFileTests {
    func directory() throws -> String {
        let dir = NSTemporaryDirectory() + "metrics-file-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    func mode(_ path: String) -> mode_t? {
        var st = stat()
        return lstat(path, &st) == 0 ? st.st_mode & 0o7777 : nil
    }

    @Test func theFileIsReplacedWholeWithMode0644WhateverTheUmask() throws {
        let dir = try directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/paybridge.prom"
        try MetricsFileWriter.write("old 1\n", to: path)
        // A reader holding the old file keeps reading the old file: it was replaced, not rewritten in place.
        let reader = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
        defer { try? reader.close() }
        let previous = umask(0o077)
        defer { umask(previous) }
        let text = String(repeating: "paybridge_x 1\n", count: 5000)
        try MetricsFileWriter.write(text, to: path)
        #expect(fileText(path) == text)
        #expect(mode(path) == 0o644)
        #expect(String(decoding: reader.readDataToEndOfFile(), as: UTF8.self) == "old 1\n")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["paybridge.prom"], "a temporary was left behind")
    }

    @Test func aLinkPlantedAtTheTemporaryNameIsNotWrittenThrough() throws {
        let dir = try directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/paybridge.prom"
        try "precious\n".write(toFile: dir + "/victim", atomically: false, encoding: .utf8)
        #expect(symlink(dir + "/victim", path + MetricsFileWriter.temporarySuffix) == 0)
        try MetricsFileWriter.write("paybridge_x 1\n", to: path)
        #expect(fileText(dir + "/victim") == "precious\n")
        #expect(fileText(path) == "paybridge_x 1\n")
        #expect(mode(path + MetricsFileWriter.temporarySuffix) == nil)
    }

    @Test func aMissingDirectoryIsAnErrorNamingIt() throws {
        let path = NSTemporaryDirectory() + "no-such-dir-\(UUID().uuidString.prefix(8))/paybridge.prom"
        #expect(throws: MetricsFileError.cannotCreate(path: path + MetricsFileWriter.temporarySuffix, errno: ENOENT)) {
            try MetricsFileWriter.write("x 1\n", to: path)
        }
    }

    @Test func eachReasonIsLoggedOncePerRunOfFailuresAndEveryFailureCounted() {
        let full = MetricsFileError.cannotWrite(path: "/m/p.prom.tmp", errno: ENOSPC)
        let gone = MetricsFileError.cannotCreate(path: "/m/p.prom.tmp", errno: ENOENT)
        var o = MetricsFileOutcomes()
        #expect(o.record(nil) == nil)
        #expect(o.record(full) == .failed(full))
        #expect(o.record(full) == nil)
        #expect(o.record(gone) == .failed(gone))
        #expect(o.record(full) == nil)
        #expect(o.failures == 4 && o.failuresInARow == 4)
        #expect(o.record(nil) == .recovered(failures: 4))
        #expect(o.record(nil) == nil)
        // A new run of failures is news again.
        #expect(o.record(full) == .failed(full))
        #expect(o.writes == 3 && o.failures == 5 && o.failuresInARow == 1)
    }

    @Test func aLoopThatFellBehindWritesOnceAndResumesTheInterval() {
        let t0 = Instant(nanoseconds: 1_000_000_000)
        #expect(MetricsFile.nextWrite(after: t0, now: t0 + .milliseconds(10), interval: .seconds(5)) == t0 + .seconds(5))
        #expect(MetricsFile.nextWrite(after: t0, now: t0 + .seconds(12), interval: .seconds(5)) == t0 + .seconds(17))
    }

    @Test func theLoopRewritesTheFileAndADirectoryThatGoesAwayIsLoggedOnce() throws {
        let dir = try directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/paybridge.prom"
        let loop = try EventLoop()
        var n = 0
        var logged: [(LogLevel, String)] = []
        let file = MetricsFile(loop: loop, path: path, interval: .milliseconds(30), text: { n += 1; return "paybridge_n \(n)\n" },
                               log: { logged.append(($0, $1)) })
        file.start()
        #expect(fileText(path) == "paybridge_n 1\n", "written at start")
        #expect(try loop.run(until: { file.outcomes.writes >= 3 }, deadline: MonotonicClock.now() + .seconds(10)))
        #expect(fileText(path) == "paybridge_n \(n)\n")
        try FileManager.default.removeItem(atPath: dir)
        #expect(try loop.run(until: { file.outcomes.failures >= 4 }, deadline: MonotonicClock.now() + .seconds(10)))
        #expect(logged.count == 1, "\(logged)")
        #expect(logged.first?.0 == .warning && logged.first?.1.contains(dir) == true && logged.first?.1.contains("No such file") == true,
                "\(logged)")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        #expect(try loop.run(until: { access(path, F_OK) == 0 }, deadline: MonotonicClock.now() + .seconds(10)))
        #expect(logged.count == 2 && logged.last?.0 == .info && logged.last?.1.contains("written again") == true, "\(logged)")
        file.stop()
        let writes = file.outcomes.writes
        _ = try loop.run(until: { false }, deadline: MonotonicClock.now() + .milliseconds(100))
        #expect(file.outcomes.writes == writes, "written after stop")
    }

    func daemon(_ dir: String, metricsFile: String) throws -> StationDaemon {
        var config = DaemonConfig()
        config.stateDirectory = dir + "/state"
        config.diagnosticsSocket = ""
        config.metricsFile = metricsFile
        let a = try arguments(writing: config, to: dir + "/paybridge.conf")
        return StationDaemon(loop: try EventLoop(), arguments: a, terminal: .port(FakeTerminal()))
    }

    @Test func theDaemonWritesTheMetricsCommandsTextWithoutTheSocket() throws {
        let dir = try directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let d = try daemon(dir, metricsFile: dir + "/paybridge.prom")
        try d.boot()
        defer { d.finish() }
        #expect(d.diagnosticsServer == nil)
        let text = fileText(dir + "/paybridge.prom")
        #expect(text.contains("# TYPE paybridge_sessions_total counter\n"))
        #expect(text == d.diagnostics?.metrics().prometheusText())
        #expect(d.metricsFile?.interval == .seconds(DaemonConfig().metricsIntervalSeconds))
        d.stop()
    }

    @Test func aMetricsFileThatCannotBeWrittenLeavesTheDaemonRunningAndIsCounted() throws {
        let dir = try directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let d = try daemon(dir, metricsFile: dir + "/missing/paybridge.prom")
        try d.boot()
        defer { d.finish() }
        #expect(d.station != nil)
        #expect(d.metricsFile?.outcomes.failures == 1)
        #expect(d.diagnostics?.metrics().prometheusText().contains("paybridge_metrics_file_failures_total 1\n") == true)
        d.stop()
    }
}

func fileText(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }
