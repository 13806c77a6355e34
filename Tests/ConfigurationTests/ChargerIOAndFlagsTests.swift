import Foundation
import Glibc
import Testing
import Configuration

/// `charger.io`: a real charger never simulates its world unless told to.
@Suite struct ChargerIOKey {
    @Test func theDefaultIsNoChargerIO() {
        #expect(DaemonConfig().chargerIO == .none)
        let (c, problems) = ConfigParser.parse("terminal.device = /dev/ttyPSP\n")
        #expect(problems.isEmpty && c.chargerIO == .none)
    }

    @Test func simulatedMustBeSaid() {
        let (c, problems) = ConfigParser.parse("charger.io = simulated\n")
        #expect(problems.isEmpty && c.chargerIO == .simulated)
        for bad in ["Simulated", "sim", "GPIO", "Socket", ""] {
            let (c2, p2) = ConfigParser.parse("charger.io = \(bad)\n")
            #expect(p2.count == 1 && p2[0].line == 1 && p2[0].message.contains("expected none, simulated, socket or gpio"), "\(bad): \(p2)")
            #expect(c2.chargerIO == .none)
        }
    }

    @Test func theControllersSocketIsAccepted() {
        let (c, problems) = ConfigParser.parse("charger.io = socket\n")
        #expect(problems.isEmpty && c.chargerIO == .socket)
    }

    /// The controller's meter timeout and the connector's maximum power: defaults, bounds, and
    /// every value outside them refused with its line and the setting left at its default.
    @Test func meterTimeoutAndMaximumPowerAreBounded() {
        #expect(DaemonConfig().meterTimeoutSeconds == 30 && DaemonConfig().maxPowerW == 22_000)
        let (c, problems) = ConfigParser.parse("charger.io = socket\ncharger.meter_timeout_seconds = 5\ncharger.max_power_w = 1000000\n")
        #expect(problems.isEmpty, "\(problems)")
        #expect(c.meterTimeoutSeconds == 5 && c.maxPowerW == 1_000_000)
        let (top, p2) = ConfigParser.parse("charger.meter_timeout_seconds = 600\ncharger.max_power_w = 1\n")
        #expect(p2.isEmpty && top.meterTimeoutSeconds == 600 && top.maxPowerW == 1)
        for bad in ["4", "601", "0", "-30", "30s", "", "99999999999999999999"] {
            let (c3, p3) = ConfigParser.parse("\ncharger.meter_timeout_seconds = \(bad)\n")
            #expect(p3.count == 1 && p3[0].line == 2 && p3[0].message.contains("5…600"), "\(bad): \(p3)")
            #expect(c3.meterTimeoutSeconds == 30)
        }
        for bad in ["0", "1000001", "-22000", "22 kW", "", "1e6"] {
            let (c4, p4) = ConfigParser.parse("charger.max_power_w = \(bad)\n")
            #expect(p4.count == 1 && p4[0].line == 1 && p4[0].message.contains("1…1000000"), "\(bad): \(p4)")
            #expect(c4.maxPowerW == 22_000)
        }
    }
}

/// Issue 16: GPIO lines and Modbus meters, per connector, checked across keys.
@Suite struct ChargerHardwareKeys {
    static let twoConnectors = """
        charger.connectors = 2
        charger.io = gpio
        charger.gpio.1.relay = paybridge-io:relay-1
        charger.gpio.1.mirror = paybridge-io:mirror-1
        charger.gpio.1.plug = /dev/gpiochip0:7:active-low
        charger.gpio.2.relay = paybridge-io:12:active-low
        charger.gpio.2.plug = paybridge-io:plug-2
        charger.gpio.debounce_ms = 30
        relay.feedback_ms = 300
        meter.device = /dev/ttyMeter
        meter.line = 19200 8E1
        meter.poll_ms = 500
        charger.meter.1 = 1:sdm630
        charger.meter.2 = 2:abb-b23

        """

    @Test func aGPIOChargerWithItsMetersIsRead() {
        let (c, problems) = ConfigParser.parse(Self.twoConnectors)
        #expect(problems.isEmpty, "\(problems)")
        #expect(c.chargerIO == .gpio)
        #expect(c.gpio[1]?.relay == GPIOLineSetting(chip: "paybridge-io", line: "relay-1"))
        #expect(c.gpio[1]?.plug == GPIOLineSetting(chip: "/dev/gpiochip0", line: "7", activeLow: true))
        #expect(c.gpio[2]?.relay == GPIOLineSetting(chip: "paybridge-io", line: "12", activeLow: true) && c.gpio[2]?.mirror == nil)
        // Without its plug input a GPIO connector could never charge.
        #expect(ConfigParser.parse(Self.twoConnectors.replacingOccurrences(of: "charger.gpio.2.plug = paybridge-io:plug-2\n", with: "")).1
                    .contains { $0.message.contains("charger.gpio.2.plug") })
        #expect(c.gpioDebounceMs == 30 && c.relayFeedbackMs == 300 && c.meterPollMs == 500)
        #expect(c.meterLine.baud == 19200 && c.meterLine.parity == .even)
        #expect(c.meters == [1: MeterSetting(address: 1, model: "sdm630"), 2: MeterSetting(address: 2, model: "abb-b23")])
        // The file the configuration writes reads back the same.
        let (again, p2) = ConfigParser.parse(c.fileText)
        #expect(p2.isEmpty && again == c, "\(p2)")
    }

    @Test func eachMissingOrWrongPieceIsAProblemWithItsLine() {
        func problems(_ text: String) -> [String] { ConfigParser.parse(text).1.map(\.description) }
        // No meter: the energy billed must be a meter's.
        #expect(problems("charger.io = gpio\ncharger.gpio.1.relay = c:1\n").contains { $0.contains("needs meter.device") })
        // No relay line for a connector.
        #expect(problems("charger.io = gpio\nmeter.device = /dev/ttyM\ncharger.meter.1 = 1:sdm72\n").contains { $0.contains("charger.gpio.1.relay") })
        // GPIO keys without gpio, a meter beyond the connectors, two connectors on one address.
        #expect(problems("charger.gpio.1.relay = c:1\n").contains { $0.contains("charger.io is not gpio") })
        #expect(problems("meter.device = /dev/ttyM\ncharger.meter.1 = 1:sdm630\ncharger.meter.2 = 2:sdm630\n").contains { $0.contains("1 connector(s)") })
        #expect(problems("charger.connectors = 2\nmeter.device = /dev/ttyM\ncharger.meter.1 = 3:sdm630\ncharger.meter.2 = 3:sdm72\n").contains { $0.contains("address 3") })
        #expect(problems("charger.meter.1 = 1:sdm630\n").contains { $0.contains("meter.device is not") })
        #expect(problems("charger.io = simulated\nmeter.device = /dev/ttyM\ncharger.meter.1 = 1:sdm630\n").contains { $0.contains("invents its own") })
        // Values.
        for bad in ["0:sdm630", "248:sdm630", "1:sdm999", "1", "x:sdm630", "1:sdm630:2"] {
            let p = ConfigParser.parse("charger.meter.1 = \(bad)\n").1
            #expect(p.contains { $0.line == 1 && $0.message.contains("ADDRESS:MODEL") }, "\(bad): \(p)")
        }
        for bad in ["chip", ":3", "chip:", "::active-low"] {
            let p = ConfigParser.parse("charger.io = gpio\ncharger.gpio.1.relay = \(bad)\n").1
            #expect(p.contains { $0.line == 2 && $0.message.contains("CHIP:LINE") }, "\(bad): \(p)")
        }
        for bad in ["4800 8N1", "9600 7N1", "9600 8O1", "9600 8N2", "fast"] {
            #expect(ConfigParser.parse("meter.line = \(bad)\n").1.contains { $0.message.contains("8N1 or 8E1") }, "\(bad)")
        }
        #expect(ConfigParser.parse("charger.gpio.9.relay = c:1\n").1.first?.message.contains("unknown key") == true)
        // terminal.usb (issue 17): an identity or a port path, and only on a serial transport.
        for good in ["0403:6001", "0403:6001:FT12AB", "1-1.2", "3-2"] {
            let (c, p) = ConfigParser.parse("terminal.usb = \(good)\n")
            #expect(p.isEmpty && c.terminalUSB == good, "\(good): \(p)")
        }
        for bad in ["0403", "zz:6001", "1-", "usb0"] {
            #expect(ConfigParser.parse("terminal.usb = \(bad)\n").1.first?.message.contains("VID:PID[:SERIAL]") == true, "\(bad)")
        }
        #expect(ConfigParser.parse("terminal.transport = tcp\nterminal.host = 192.0.2.1\nterminal.usb = 0403:6001\n").1.contains { $0.message.contains("tcp has none") })
        #expect(ConfigParser.parse("relay.feedback_ms = 49\n").1.first?.message.contains("50…5000") == true)
        #expect(ConfigParser.parse("meter.poll_ms = 100\n").1.first?.message.contains("200…60000") == true)
    }
}

/// The configuration file is a regular file read whole, or an error; never the defaults.
@Suite struct ConfigFileReading {
    func tempDir() throws -> String {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("conf-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    @Test func aRegularFileAndALinkToOneAreRead() throws {
        let d = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: d) }
        try "payment.preauth = 777\n".write(toFile: d + "/a.conf", atomically: false, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: d + "/link.conf", withDestinationPath: d + "/a.conf")
        #expect(try ConfigFile.read(d + "/a.conf") == "payment.preauth = 777\n")
        #expect(try ConfigFile.read(d + "/link.conf") == "payment.preauth = 777\n")
    }

    @Test func aDirectoryAFIFOAndAMissingFileAreErrors() throws {
        let d = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: d) }
        #expect(throws: ConfigFileError.notRegularFile(path: d, kind: "directory")) { try ConfigFile.read(d) }
        #expect(mkfifo(d + "/fifo", 0o600) == 0)
        // O_NONBLOCK: a FIFO with no writer does not hang the daemon in open.
        #expect(throws: ConfigFileError.notRegularFile(path: d + "/fifo", kind: "FIFO")) { try ConfigFile.read(d + "/fifo") }
        do {
            _ = try ConfigFile.read(d + "/missing.conf")
            Issue.record("a missing file was read")
        } catch {
            guard case .cannotOpen(_, let e) = error else { Issue.record("\(error)"); return }
            #expect(e.errno == ENOENT)
        }
    }

    @Test func aFileLargerThanTheLimitIsRefused() throws {
        let d = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: d) }
        try String(repeating: "#\n", count: ConfigParser.maxBytes).write(toFile: d + "/big.conf", atomically: false, encoding: .utf8)
        #expect(throws: ConfigFileError.tooLarge(path: d + "/big.conf", bytes: 2 * ConfigParser.maxBytes)) { try ConfigFile.read(d + "/big.conf") }
    }

    @Test func wholeFileRulesApplyAfterOverridesToo() {
        var c = DaemonConfig()
        #expect(ConfigParser.apply("terminal.transport", "tcp", to: &c) == nil)
        #expect(ConfigParser.wholeFileProblems(c).map(\.message) == ["terminal.transport = tcp needs terminal.host"])
        #expect(ConfigParser.apply("terminal.host", "::1", to: &c) == nil)
        #expect(ConfigParser.wholeFileProblems(c).isEmpty)
    }
}

/// `--terminal`'s forms become configuration keys, checked by the file's rules.
@Suite struct TerminalFlagForms {
    func keys(_ s: String) -> [String]? {
        guard case .success(let k) = TerminalFlag.keys(s) else { return nil }
        return k.map { "\($0.key)=\($0.value)" }
    }

    @Test func addressesAndPorts() {
        #expect(keys("tcp:192.0.2.10") == ["terminal.transport=tcp", "terminal.host=192.0.2.10"])
        #expect(keys("tcp:192.0.2.10:3202") == ["terminal.transport=tcp", "terminal.host=192.0.2.10", "terminal.port=3202"])
        #expect(keys("tcp:[::1]:3202") == ["terminal.transport=tcp", "terminal.host=::1", "terminal.port=3202"])
        #expect(keys("tcp:[fe80::1%eth0]") == ["terminal.transport=tcp", "terminal.host=fe80::1%eth0"])
        #expect(keys("tcp:2001:db8::17") == ["terminal.transport=tcp", "terminal.host=2001:db8::17"])
        #expect(keys("serial:/dev/ttyPSP") == ["terminal.transport=serial", "terminal.device=/dev/ttyPSP"])
        #expect(keys("serial:/dev/ttyPSP,115200 8N1") == ["terminal.transport=serial", "terminal.device=/dev/ttyPSP", "terminal.line=115200 8N1"])
    }

    @Test func malformedFormsAreRefused() {
        for bad in ["tcp:10.0.0.5:3201:99", "tcp:[::1", "tcp:[::1]3201", "tcp:", "tcp:[]:1", "udp:1.2.3.4", "/dev/ttyPSP", "tcp:a:b:c"] {
            #expect(keys(bad) == nil, "\(bad) accepted")
        }
    }

    /// What the form yields is then checked key by key: a name or a bad port is the file's problem.
    @Test func theKeysGoThroughTheFilesChecks() {
        var c = DaemonConfig()
        guard case .success(let k) = TerminalFlag.keys("tcp:apollo.local:99999") else { Issue.record("form refused"); return }
        let problems = k.compactMap { ConfigParser.apply($0.key, $0.value, to: &c) }
        #expect(problems.count == 2, "\(problems)")
    }
}
