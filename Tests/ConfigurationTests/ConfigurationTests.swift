import Foundation
import Testing
import Configuration
import PaymentEngine
import Platform

@Suite struct ConfigurationFile {
    static var example: String {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("docs/paybridge.conf")
        return (try? String(contentsOf: url, encoding: .utf8)) ?? ""
    }

    @Test func theDocumentedExampleIsValidAndIsTheDefaults() {
        let (c, problems) = ConfigParser.parse(Self.example)
        #expect(!Self.example.isEmpty)
        #expect(problems.isEmpty, "\(problems)")
        #expect(c == DaemonConfig(), "the example documents the defaults")
        // Every documented key appears in the example.
        for (key, _) in DaemonConfig.keys { #expect(Self.example.contains("\n\(key) ="), "\(key) missing from docs/paybridge.conf") }
    }

    @Test func valuesAreRead() {
        let (c, problems) = ConfigParser.parse("""
        terminal.family = p6x
        terminal.transport = tcp
        terminal.host = 192.0.2.10   # an Apollo
        terminal.port = 1234
        charger.connectors = 2
        tariff.energy_per_kwh_milli = 39900
        cloud.offline_policy = deny
        cloud.url = https://cpo.example/ocpp
        cloud.protocol = https
        """)
        #expect(problems.isEmpty)
        #expect(c.terminalFamily == .p6x && c.transport == .tcp && c.host == "192.0.2.10" && c.port == 1234)
        #expect(c.engine.connectors == 2 && c.engine.tariff.energyPricePerKWh == 39_900 && c.engine.offlinePolicy == .deny)
        #expect(c.cloudURL == "https://cpo.example/ocpp")
    }

    /// Summaries are kept 400 days unless the file says otherwise, 1…3650; a reload does not change it.
    @Test func retentionDaysDefaultsTo400AndTakes1To3650() {
        #expect(ConfigParser.parse("").0.retentionDays == 400)
        #expect(ConfigParser.parse("state.retention_days = 1").0.retentionDays == 1)
        #expect(ConfigParser.parse("state.retention_days = 3650").0.retentionDays == 3650)
        for bad in ["0", "3651", "-1", "a year"] {
            let (c, problems) = ConfigParser.parse("state.retention_days = \(bad)")
            #expect(c.retentionDays == 400)
            #expect(problems.count == 1 && problems[0].message.contains("expected 1…3650"), "\(bad): \(problems)")
        }
        #expect(!DaemonConfig.reloadableKeys.contains("state.retention_days"))
    }

    /// The terminal's away rules: 80 and 30 days unless the file says otherwise, within their
    /// bounds; they wait for the next start like every terminal key.
    @Test func batteryAndStorageDaysDefaultAndAreBounded() {
        let (d, none) = ConfigParser.parse("")
        #expect(none.isEmpty && d.batteryWarnDays == 80 && d.storageDays == 30)
        let (c, problems) = ConfigParser.parse("terminal.battery_warn_days = 90\nterminal.storage_days = 1")
        #expect(problems.isEmpty && c.batteryWarnDays == 90 && c.storageDays == 1)
        for bad in ["0", "91", "-5", "eighty", ""] {
            let (c, problems) = ConfigParser.parse("terminal.battery_warn_days = \(bad)")
            #expect(c.batteryWarnDays == 80)
            #expect(problems.count == 1 && problems[0].message.contains("expected 1…90"), "\(bad): \(problems)")
        }
        for bad in ["0", "366", "a month"] {
            let (c, problems) = ConfigParser.parse("terminal.storage_days = \(bad)")
            #expect(c.storageDays == 30)
            #expect(problems.count == 1 && problems[0].message.contains("expected 1…365"), "\(bad): \(problems)")
        }
        #expect(!DaemonConfig.reloadableKeys.contains("terminal.battery_warn_days"))
        #expect(!DaemonConfig.reloadableKeys.contains("terminal.storage_days"))
    }

    /// The framing lock is on unless the file turns it off; nothing but on or off is taken.
    @Test func lockFramingIsOnByDefaultAndTakesOnOrOff() {
        #expect(ConfigParser.parse("").0.lockFraming)
        #expect(!ConfigParser.parse("terminal.lock_framing = off").0.lockFraming)
        #expect(ConfigParser.parse("terminal.lock_framing = on").0.lockFraming)
        let (_, problems) = ConfigParser.parse("terminal.lock_framing = yes")
        #expect(problems.count == 1 && problems[0].message.contains("expected on or off"), "\(problems)")
    }

    /// Get Connection Info is asked unless the file says off; it waits for a restart like every terminal key.
    @Test func connectionInfoIsAutoByDefaultAndTakesAutoOrOff() {
        #expect(ConfigParser.parse("").0.connectionInfo == .auto)
        #expect(ConfigParser.parse("terminal.connection_info = off").0.connectionInfo == .off)
        #expect(ConfigParser.parse("terminal.connection_info = auto").0.connectionInfo == .auto)
        let (_, problems) = ConfigParser.parse("terminal.connection_info = on")
        #expect(problems.count == 1 && problems[0].message.contains("expected auto or off"), "\(problems)")
        #expect(!DaemonConfig.reloadableKeys.contains("terminal.connection_info"))
    }

    @Test func everyProblemIsReportedWithItsLine() {
        let (_, problems) = ConfigParser.parse("""
        # a comment
        terminal.famly = apollo
        charger.connectors = 9
        terminal.line = 57600 9N1
        no equals sign here
        payment.preauth = 5000
        payment.preauth = 6000
        cloud.url = http://cpo.example
        terminal.transport = tcp
        cloud.client_cert = /etc/paybridge/cert.pem
        """)
        #expect(problems.map(\.line) == [2, 3, 4, 5, 7, 8, 9, 10], "\(problems)")
        #expect(problems[0].message.contains("unknown key 'terminal.famly'"))
        #expect(problems[4].message.contains("already set on line 6"))
        #expect(problems.contains { $0.message.contains("needs terminal.host") })
        #expect(problems.contains { $0.message.contains("go together") })
    }

    @Test func checkConfigOnTheRealBinary() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("conf-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "charger.connectors = 0\nbogus = 1\n".write(toFile: dir + "/bad.conf", atomically: true, encoding: .utf8)
        try Self.example.write(toFile: dir + "/good.conf", atomically: true, encoding: .utf8)
        let exe = ChildProcess.executableDirectory() + "/paybridged"
        func run(_ args: [String]) throws -> (Int32?, [String]) {
            let p = try ChildProcess.spawn(exe, args, pipeStdin: false)
            var lines: [String] = []
            while let l = try p.readLine(timeout: .seconds(10)) { lines.append(l) }
            return (p.wait(timeout: .seconds(10)), lines)
        }
        let (bad, badOut) = try run(["--check-config", dir + "/bad.conf"])
        #expect(bad == 1)
        #expect(badOut.contains { $0.contains("line 1: charger.connectors") })
        #expect(badOut.contains { $0.contains("line 2: unknown key 'bogus'") })
        let (good, goodOut) = try run(["--check-config", dir + "/good.conf"])
        #expect(good == 0, "\(goodOut)")
        let (missing, _) = try run(["--check-config", dir + "/missing.conf"])
        #expect(missing == 2)
    }
}

@Suite struct DefaultConfiguration {
    @Test(.enabled(if: !FileManager.default.fileExists(atPath: "/etc/paybridge/paybridge.conf"), "a configuration is installed here"))
    func withoutArgumentsTheInstalledFileIsReadAndItsAbsenceIsAClearError() throws {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("noargs-\(UUID().uuidString.prefix(8))").path
        defer { try? FileManager.default.removeItem(atPath: log) }
        let p = try ChildProcess.spawn("/bin/sh", ["-c", "exec \(ChildProcess.executableDirectory())/paybridged 2>\(log)"],
                                       captureStdout: false, pipeStdin: false)
        #expect(p.wait(timeout: .seconds(10)) == 2)
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(text.contains("cannot open /etc/paybridge/paybridge.conf"), "\(text)")
    }
}

@Suite(.serialized) struct Reload {
    @Test func sighupRereadsTheLogLevelAndRefusesABrokenFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hup-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let conf = dir + "/paybridge.conf"
        // No terminal there: the daemon keeps retrying the device and logs at debug level only.
        let base = "terminal.device = \(dir)/no-such-tty\nstate.directory = \(dir)/state\n"
        try (base + "log.level = warning\n").write(toFile: conf, atomically: true, encoding: .utf8)
        let log = dir + "/stderr"
        let p = try ChildProcess.spawn("/bin/sh", ["-c", "exec \(ChildProcess.executableDirectory())/paybridged --config \(conf) 2>\(log)"],
                                       captureStdout: false, pipeStdin: false)
        func text() -> String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }
        usleep(800_000)
        #expect(!text().contains("<6>"), "info lines at log level warning")
        try (base + "log.level = info\n").write(toFile: conf, atomically: true, encoding: .utf8)
        p.signal(SIGHUP)
        let deadline = Date().addingTimeInterval(20)
        while !text().contains("SIGHUP: reloaded"), Date() < deadline { usleep(50_000) }
        #expect(text().contains("<6>SIGHUP: reloaded"), "\(text())")
        #expect(text().contains("applied: log.level"), "the reload names what it changed: \(text())")
        try (base + "log.level = loud\n").write(toFile: conf, atomically: true, encoding: .utf8)
        p.signal(SIGHUP)
        let d2 = Date().addingTimeInterval(20)
        while !text().contains("nothing reloaded"), Date() < d2 { usleep(50_000) }
        #expect(text().contains("<3>SIGHUP:") && text().contains("nothing reloaded"), "\(text())")
        p.signal(SIGTERM)
        #expect(p.wait(timeout: .seconds(10)) == 0)
    }

    /// A reload refused at its last check (the token file) changes nothing, not even the log level
    /// it read on the way (it used to be set while the command line was parsed again).
    @Test func aRefusedReloadLeavesTheLogLevelAsItWas() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hup-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let token = dir + "/token"
        try "secret\n".write(toFile: token, atomically: true, encoding: .utf8)
        chmod(token, 0o600)
        let conf = dir + "/paybridge.conf"
        let base = "terminal.device = \(dir)/no-such-tty\nstate.directory = \(dir)/state\ncloud.url = http://127.0.0.1:9\ncloud.protocol = https\n"
        try (base + "cloud.token_file = \(token)\nlog.level = warning\n").write(toFile: conf, atomically: true, encoding: .utf8)
        let log = dir + "/stderr"
        let p = try ChildProcess.spawn("/bin/sh", ["-c", "exec \(ChildProcess.executableDirectory())/paybridged --config \(conf) 2>\(log)"],
                                       captureStdout: false, pipeStdin: false)
        func text() -> String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }
        usleep(800_000)
        try (base + "cloud.token_file = \(dir)/missing-token\nlog.level = debug\n").write(toFile: conf, atomically: true, encoding: .utf8)
        p.signal(SIGHUP)
        let deadline = Date().addingTimeInterval(20)
        while !text().contains("nothing reloaded"), Date() < deadline { usleep(50_000) }
        #expect(text().contains("<3>SIGHUP: token file") && text().contains("nothing reloaded"), "\(text())")
        p.signal(SIGTERM)
        #expect(p.wait(timeout: .seconds(10)) == 0)
        // "stopping" is an info line: at the level the daemon still runs with (warning) it is not written.
        #expect(!text().contains("<6>") && !text().contains("<7>"), "the refused reload changed the log level: \(text())")
    }
}
