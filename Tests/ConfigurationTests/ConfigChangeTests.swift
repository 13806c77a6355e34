import Testing
import Configuration
import PaymentEngine

/// What a SIGHUP applies is `ConfigChange`, a pure function of the running and the reloaded
/// configuration: every key is rendered, classified, and reported when it changes.
@Suite struct ConfigChangeTests {
    /// A value for every key that differs from its default and passes the file's checks.
    static let other: [String: String] = [
        "terminal.family": "p6x", "terminal.transport": "tcp", "terminal.device": "/dev/ttyUSB7",
        "terminal.line": "115200 8N2", "terminal.host": "192.0.2.10", "terminal.port": "3202",
"terminal.lock_framing": "off", "terminal.connection_info": "off", "terminal.battery_warn_days": "60", "terminal.storage_days": "14",
        "charger.connectors": "2", "charger.io": "simulated",
        "charger.meter_timeout_seconds": "45", "charger.max_power_w": "11000",
        "payment.preauth": "2500", "tariff.currency": "CHF", "tariff.start_fee": "50",
        "tariff.energy_per_kwh_milli": "39900", "tariff.time_per_minute_milli": "100",
        "timeouts.plug_in_seconds": "120", "timeouts.decision_seconds": "5",
        "cloud.url": "https://cpo.example/ocpp", "cloud.station_id": "CH-ZH-0042", "cloud.protocol": "https",
        "cloud.password_file": "/etc/paybridge/password", "cloud.ping_seconds": "30", "cloud.response_timeout_seconds": "20",
        "cloud.ocpp201_fallback": "on", "cloud.call_error_attempts": "3",
        "cloud.ca_file": "/etc/paybridge/ca.pem", "cloud.client_cert": "/etc/paybridge/client.pem",
        "cloud.client_key": "/etc/paybridge/client.key", "cloud.token_file": "/etc/paybridge/token",
        "cloud.proxy": "http://192.0.2.1:3128", "cloud.offline_policy": "deny", "cloud.heartbeat_seconds": "60",
        "state.directory": "/srv/paybridge", "state.disk_budget_bytes": "16777216", "state.retention_days": "30", "log.level": "debug",
        "diagnostics.socket": "/run/pb/ctl.sock", "diagnostics.admin_group": "chargeops", "diagnostics.max_clients": "4",
        "diagnostics.metrics_file": "/var/lib/node-exporter/paybridge.prom", "diagnostics.metrics_interval_seconds": "15",
        "charger.serial": "CHG-2026-0042", "terminal.transfer_number": "TTN 7781", "terminal.domain": "acme-cpo",
        "payment.processor": "own",
    ]

    /// The charger hardware keys (issue 16) need each other (gpio needs a relay per connector
    /// and a meter per connector): checked with `hardwareBase` below, not in `other`.
    static func isHardware(_ key: String) -> Bool {
        key == "terminal.usb" || ["meter.", "relay.", "charger.gpio.", "charger.meter."].contains { key.hasPrefix($0) }
    }
    static var plainKeys: [(key: String, help: String)] { DaemonConfig.keys.filter { !isHardware($0.key) } }

    /// A valid eight-connector GPIO charger with its meters.
    static let hardwareBase: [String: String] = {
        var d = ["charger.connectors": "8", "charger.io": "gpio", "meter.device": "/dev/ttyMeter"]
        for n in 1...8 {
            d["charger.gpio.\(n).relay"] = "io:relay-\(n)"
            d["charger.gpio.\(n).plug"] = "io:plug-\(n)"
            d["charger.meter.\(n)"] = "\(n):sdm630"
        }
        return d
    }()

    /// A different valid value for each hardware key, over `hardwareBase`.
    static func hardwareOther(_ key: String) -> String {
        switch key {
        case "meter.device": return "/dev/ttyUSB-meter"
        case "meter.line": return "19200 8E1"
        case "meter.poll_ms": return "250"
        case "meter.response_timeout_ms": return "200"
        case "meter.retries": return "0"
        case "meter.frame_silence_ms": return "16"
        case "relay.feedback_ms": return "300"
        case "charger.gpio.debounce_ms": return "5"
        case "terminal.usb": return "0403:6001:FT-TERM"
        default:
            if key.hasPrefix("charger.meter.") { return "\(100 + Int(key.split(separator: ".")[2])!):abb-b23" }
            if key.hasSuffix(".relay") { return "/dev/gpiochip1:3:active-low" }
            return "io:in-\(key.split(separator: ".")[2])"
        }
    }

    @Test func eachHardwareKeyIsReadRenderedAndNeedsARestart() {
        func text(_ d: [String: String]) -> String { d.map { "\($0.key) = \($0.value)" }.joined(separator: "\n") }
        let (old, p1) = ConfigParser.parse(text(Self.hardwareBase))
        #expect(p1.isEmpty, "\(p1)")
        for (key, _) in DaemonConfig.keys where Self.isHardware(key) {
            var changed = Self.hardwareBase
            changed[key] = Self.hardwareOther(key)
            let (new, p2) = ConfigParser.parse(text(changed))
            #expect(p2.isEmpty, "\(key): \(p2)")
            #expect(new.value(of: key) == Self.hardwareOther(key), "\(key)")
            let change = ConfigChange(from: old, to: new)
            #expect(change.applied == [] && change.needsRestart == [key], "\(key): \(change)")
            let (back, again) = ConfigParser.parse(new.fileText)
            #expect(again.isEmpty && back == new, "\(key): \(again)")
        }
    }

    @Test func everyKeyHasAnAlternativeAndAValue() {
        #expect(Set(Self.other.keys) == Set(Self.plainKeys.map(\.key)), "a key was added: give it a value here")
        for (key, _) in DaemonConfig.keys { #expect(DaemonConfig().value(of: key) != nil, "\(key)") }
        #expect(DaemonConfig().value(of: "terminal.famly") == nil)
        #expect(DaemonConfig.reloadableKeys.isSubset(of: Set(DaemonConfig.keys.map(\.key))))
    }

    /// A file written from a configuration reads back as that configuration.
    @Test func theFileTextReadsBackAsTheSameConfiguration() {
        let text = Self.plainKeys.map { "\($0.key) = \(Self.other[$0.key]!)" }.joined(separator: "\n")
        let (c, problems) = ConfigParser.parse(text)
        #expect(problems.isEmpty, "\(problems)")
        for (key, _) in Self.plainKeys { #expect(c.value(of: key) == Self.other[key], "\(key)") }
        let (back, again) = ConfigParser.parse(c.fileText)
        #expect(again.isEmpty && back == c)
        let (defaults, none) = ConfigParser.parse(DaemonConfig().fileText)
        #expect(none.isEmpty && defaults == DaemonConfig())
    }

    /// Changing one key changes exactly that key, in the bucket its kind says.
    @Test func eachKeyIsReportedAloneInItsBucket() {
        for (key, _) in Self.plainKeys {
            // Keys that need a partner to pass the whole-file checks get it in both versions.
            var base: [String: String] = [:]
            if key == "terminal.transport" { base["terminal.host"] = "192.0.2.10" }
            // An https URL needs the HTTPS binding (OCPP-J, the default, needs wss://).
            if key == "cloud.url" { base["cloud.protocol"] = "https" }
            if key == "cloud.client_cert" || key == "cloud.client_key" {
                base["cloud.client_cert"] = "/etc/a.pem"
                base["cloud.client_key"] = "/etc/a.key"
            }
            var changed = base
            changed[key] = Self.other[key]!
            func text(_ d: [String: String]) -> String { d.map { "\($0.key) = \($0.value)" }.joined(separator: "\n") }
            let (old, p1) = ConfigParser.parse(text(base))
            let (new, p2) = ConfigParser.parse(text(changed))
            #expect(p1.isEmpty && p2.isEmpty, "\(key): \(p1) \(p2)")
            let change = ConfigChange(from: old, to: new)
            let reloadable = DaemonConfig.reloadableKeys.contains(key)
            #expect(change.applied == (reloadable ? [key] : []) && change.needsRestart == (reloadable ? [] : [key]), "\(key): \(change)")
        }
    }

    @Test func theSummarySaysWhatWasAppliedAndWhatWaits() {
        var new = DaemonConfig()
        new.engine.preauthAmount = 2500
        new.logLevel = "debug"
        new.device = "/dev/ttyUSB1"
        let change = ConfigChange(from: DaemonConfig(), to: new)
        #expect(change.applied == ["payment.preauth", "log.level"] && change.needsRestart == ["terminal.device"])
        #expect(change.summary == "applied: payment.preauth, log.level; changed but kept until the next start: terminal.device")
        #expect(ConfigChange(from: new, to: new).isEmpty && ConfigChange(from: new, to: new).summary == "nothing changed")
    }
}
