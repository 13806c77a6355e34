import PaymentEngine
import Platform
import TerminalConditions
import USBCore

/// The daemon's settings, from `/etc/paybridge/paybridge.conf` (or `--config FILE`).
///
/// Format: one `key = value` per line (lines end with LF, CRLF or CR); `#` starts a comment; blank lines are ignored; keys are
/// the dotted names below. Every key has a default; an unknown key, a repeated key or a value
/// out of range is an error reported with its line, and `paybridged --check-config FILE` lists
/// every problem in the file at once.
public struct DaemonConfig: Equatable, Sendable {
    public enum TerminalFamilyName: String, Sendable { case apollo, p6x }
    public enum TransportName: String, Sendable { case serial, tcp }
    /// `terminal.connection_info`'s values.
    public enum ConnectionInfoName: String, Sendable {
        /// Ask an Apollo for its network information (Get Connection Info) once per link bring-up.
        case auto
        /// Never ask.
        case off
    }
    /// Where the charger's relays, plug state and meter come from.
    public enum ChargerIO: String, Sendable {
        /// None configured: the daemon talks to the terminal and settles what its ledger holds
        /// open, but takes no new payments (the terminal is never armed) and says why. The
        /// default, so that no configuration can make a real charger invent a car.
        case none
        /// Simulated relays, plugs and meter (HardwareSim's world): the demo and the tests only.
        case simulated
        /// The charger's own controller reports plugs, meters, faults and EVSE readiness and
        /// drives the contactors, over the daemon's diagnostic socket (`ControllerChargerPort`).
        case socket
        /// Relays, their mirror contacts and plug-detect inputs on GPIO lines (`charger.gpio.N.*`),
        /// the energy from Modbus meters (`meter.device`, `charger.meter.N`).
        case gpio
    }

    /// `charger.meter_timeout_seconds`: the bounds of how long a charging connector may go
    /// without an accepted meter reading before its session is stopped as faulted.
    public static let meterTimeoutRange: ClosedRange<Int64> = 5...600
    /// `charger.max_power_w`: the bounds of a connector's maximum power (1 MW covers HPC chargers).
    public static let maxPowerRange: ClosedRange<Int64> = 1...1_000_000

    public var terminalFamily = TerminalFamilyName.apollo
    public var transport = TransportName.serial
    public var device = "/dev/ttyPSP"
    public var line = LineSettings.psp
    public var host = ""
    public var port: UInt16 = 3201
    /// `terminal.lock_framing`: learn a P6X's preamble and magic at bring-up and accept only those
    /// (psp.md leaves them configurable on the terminal; the lock keeps line noise from forging frames).
    public var lockFraming = true
    /// `terminal.connection_info`: whether the inventory's network information is asked of an
    /// Apollo (Get Connection Info, whose layout Payter does not document) at each bring-up.
    public var connectionInfo = ConnectionInfoName.auto
    /// `terminal.battery_warn_days`: an Apollo away or unpowered longer than this is to be charged
    /// and checked for tampering (its tamper battery lasts about three months).
    public var batteryWarnDays = TerminalConditions.defaultBatteryWarnDays
    /// `terminal.storage_days`: after a terminal was away longer than this, a test transaction is recommended.
    public var storageDays = TerminalConditions.defaultStorageDays
    public var engine = EngineConfig()
    public var chargerIO = ChargerIO.none
    /// `terminal.usb`: the terminal's USB adapter by identity ("": use `device`).
    public var terminalUSB = ""
    /// `charger.meter_timeout_seconds` (`charger.io = socket`): a charging connector whose meter
    /// has sent no accepted reading this long is faulted, and its session captured as last read.
    public var meterTimeoutSeconds: Int64 = 30
    /// `charger.max_power_w` (`charger.io = socket`): the connector's maximum power, the bound of
    /// a plausible meter reading (energy since the last one, and the reported power).
    public var maxPowerW: Int64 = 22_000
    /// `meter.device`: the RS-485 adapter of the Modbus meters ("": none).
    public var meterDevice = ""
    /// `meter.line`.
    public var meterLine = LineSettings(baud: 9600, dataBits: 8, parity: .none, stopBits: 1)
    /// `meter.poll_ms`: how often every meter is read.
    public var meterPollMs: Int64 = 1_000
    /// `meter.response_timeout_ms`.
    public var meterResponseTimeoutMs: Int64 = 500
    /// `meter.retries`: a read sent again this many times before it fails.
    public var meterRetries: Int64 = 2
    /// `meter.frame_silence_ms` (0: t3.5 of the line).
    public var meterFrameSilenceMs: Int64 = 0
    /// `charger.meter.N`: each connector's (1-based) meter on the bus.
    public var meters: [Int: MeterSetting] = [:]
    /// `charger.gpio.N.*`: each connector's (1-based) GPIO lines.
    public var gpio: [Int: GPIOConnectorSetting] = [:]
    /// `charger.gpio.debounce_ms`: the mirror and plug inputs' debounce.
    public var gpioDebounceMs: Int64 = 20
    /// `relay.feedback_ms`: how long a relay's mirror contact has to follow a command.
    public var relayFeedbackMs: Int64 = 500
    public var cloudURL: String?
    public var stationId = "station"
    public var caFile: String?
    public var clientCertificate: String?
    public var clientKey: String?
    public var tokenFile: String?
    /// `cloud.proxy`: the one proxy the uplink may use; nil: none (the environment's are ignored).
    public var cloudProxy: String?
    public var heartbeatSeconds: Int64 = 300
    /// `cloud.protocol`: how the station speaks to the platform.
    public var cloudProtocol = CloudProtocol.ocppJ
    /// `cloud.password_file`: OCPP-J security profiles 1 and 2, HTTP Basic with the station id
    /// and this file's password (mode 0600); nil: no Basic auth (profile 3, or none).
    public var passwordFile: String?
    /// `cloud.ping_seconds`: the WebSocket ping interval (OCPP's WebSocketPingInterval); 0: none.
    public var pingSeconds: Int64 = 60
    /// `cloud.response_timeout_seconds`: how long an OCPP-J CALL waits for its answer.
    public var responseTimeoutSeconds: Int64 = 30
    /// `cloud.ocpp201_fallback`: also offer `ocpp2.0.1` in the WebSocket handshake.
    public var ocpp201Fallback = false
    /// `cloud.call_error_attempts`: CALLERRORs a queued message may get before it is dead-lettered.
    public var callErrorAttempts = 5

    /// `cloud.protocol`'s values.
    public enum CloudProtocol: String, Sendable {
        /// OCPP-J 2.1: JSON-RPC over a WebSocket the station opens (`ws://`, `wss://`).
        case ocppJ = "ocpp-j"
        /// One HTTPS POST per message to `{url}/{station}/{Action}` (paybridge's own binding).
        case https
    }
    public var stateDirectory = "/var/lib/paybridge"
    public var diskBudgetBytes = 64 << 20
    /// `state.retention_days`: how long a closed session's summary is kept for reconciliation.
    public var retentionDays = SummaryRetention.defaultDays
    public var logLevel = "info"
    /// `diagnostics.socket`: the technicians' and controller's Unix socket; empty: none. A socket
    /// systemd passes in (socket activation) is used instead of creating this one.
    public var diagnosticsSocket = "/run/paybridge/paybridged.sock"
    /// `diagnostics.admin_group`: members may run commands that change something.
    public var adminGroup = "paybridge"
    /// `diagnostics.max_clients`: clients connected at once.
    public var maxDiagnosticsClients = 16
    /// `diagnostics.metrics_file`: the `metrics` command's Prometheus text, written atomically
    /// (temporary beside it, renamed) every interval, mode 0644; nil: none.
    public var metricsFile: String?
    /// `diagnostics.metrics_interval_seconds`.
    public var metricsIntervalSeconds: Int64 = 60
    /// `charger.serial`: the charger's own serial number, for the inventory.
    public var chargerSerial = ""
    /// `terminal.transfer_number`: Payter's Terminal Transfer Number; empty when never transferred.
    public var terminalTransferNumber = ""
    /// `terminal.domain`: the Payter domain the terminal belongs to.
    public var terminalDomain = ""
    /// `payment.processor`: who acquires the payments (the platform's contract or the operator's own).
    public var paymentProcessor = PaymentProcessor.platform

    /// `payment.processor`'s values.
    public enum PaymentProcessor: String, Sendable { case platform, own }

    public init() {}

    /// The documented keys, in the order `--print-config` shows them.
    public static let keys: [(key: String, help: String)] = [
        ("terminal.family", "apollo | p6x"),
        ("terminal.transport", "serial | tcp"),
        ("terminal.device", "serial device of the terminal (a udev name such as /dev/ttyPSP)"),
        ("terminal.usb", "the terminal's USB serial adapter by identity, VID:PID[:SERIAL] (hex IDs) or a port path such as 1-1.2: its tty is found through sysfs before every open, over terminal.device (empty: terminal.device)"),
        ("terminal.line", "serial line settings, e.g. 57600 8N1 (9600…115200; ZVT uses 8N2)"),
        ("terminal.host", "Apollo on TCP: its IP address (IPv4 or IPv6; names are refused: resolving one would block)"),
        ("terminal.port", "Apollo on TCP: port, default 3201"),
        ("terminal.lock_framing", "on | off: accept only the preamble and magic a P6X answered bring-up with (off: any, as psp.md allows)"),
        ("terminal.connection_info", "auto | off: ask an Apollo for its network information (Get Connection Info, layout undocumented) once per link bring-up, for the inventory (off: never)"),
        ("terminal.battery_warn_days", "Apollo away or unpowered longer than this: warn to charge it and check it for tampering, 1…90"),
        ("terminal.storage_days", "terminal away longer than this: recommend a test transaction, 1…365"),
        ("charger.connectors", "connectors on this charger, 1…8"),
        ("charger.io", "none | simulated | socket | gpio: where relays, plugs and meters come from (none: no payments are taken; simulated: demo and tests only; socket: the charger's controller over the diagnostic socket; gpio: relays and plugs on GPIO lines, Modbus meters)"),
        ("charger.meter_timeout_seconds", "socket, gpio: a charging connector with no accepted meter reading this long is stopped as faulted, 5…600"),
        ("charger.max_power_w", "socket, gpio: a connector's maximum power in W, the bound of a plausible meter reading, 1…1000000"),
        ("charger.gpio.debounce_ms", "charger.io = gpio: the mirror and plug inputs' debounce, 0…1000"),
        ("relay.feedback_ms", "charger.io = gpio: how long a relay's mirror contact has to follow a command before it counts as refused or welded, 50…5000"),
        ("meter.device", "Modbus RTU meters on RS-485: the adapter's device, e.g. /dev/ttyMeter (empty: none; with charger.io = socket the controller's meter readings are used instead)"),
        ("meter.line", "the meter bus: 9600 or 19200 baud, 8N1 or 8E1"),
        ("meter.poll_ms", "how often every meter is read, 200…60000"),
        ("meter.response_timeout_ms", "how long a meter may take to answer, 50…5000"),
        ("meter.retries", "a meter read sent again this many times before it fails, 0…5"),
        ("meter.frame_silence_ms", "the silence that ends a Modbus frame (0: the line's t3.5; a USB adapter may need 16), 0…50"),
        ("payment.preauth", "amount reserved on the card, minor units"),
        ("tariff.currency", "ISO 4217 code, e.g. EUR"),
        ("tariff.start_fee", "minor units per session"),
        ("tariff.energy_per_kwh_milli", "price per kWh in thousandths of a minor unit (40000 = 0.40 EUR)"),
        ("tariff.time_per_minute_milli", "price per minute in thousandths of a minor unit"),
        ("timeouts.plug_in_seconds", "approved but not plugged in: release after this long"),
        ("timeouts.decision_seconds", "the cloud's time to decide on a card before the offline policy"),
        ("cloud.protocol", "ocpp-j | https: OCPP-J 2.1 over a WebSocket (cloud.url wss://..., the station id appended) or one HTTPS POST per message (cloud.url https://...)"),
        ("cloud.url", "the platform's URL: wss://host[:port]/path for ocpp-j, https://host[:port]/path for https (plain ws/http only to loopback; empty: no cloud)"),
        ("cloud.station_id", "this charger's id at the platform"),
        ("cloud.ca_file", "CA bundle to verify the platform (empty: the system's)"),
        ("cloud.client_cert", "client certificate for mutual TLS (with cloud.client_key)"),
        ("cloud.client_key", "client key for mutual TLS"),
        ("cloud.token_file", "https: bearer token file (mode 0600)"),
        ("cloud.password_file", "ocpp-j security profiles 1 and 2: HTTP Basic password file (mode 0600), the station id as user (empty: none, e.g. profile 3 with a client certificate)"),
        ("cloud.ping_seconds", "ocpp-j: WebSocket ping interval, 0 = none, 0…3600"),
        ("cloud.response_timeout_seconds", "ocpp-j: how long a CALL waits for its answer, 5…300"),
        ("cloud.ocpp201_fallback", "on | off: ocpp-j also offers ocpp2.0.1 in the handshake"),
        ("cloud.call_error_attempts", "ocpp-j: CALLERRORs a queued message may get before it becomes a dead letter, 1…100"),
        ("cloud.proxy", "http://HOST:PORT of a proxy for the platform's https traffic (empty: none; proxy environment variables are ignored)"),
        ("cloud.offline_policy", "allow | deny: what to do when the cloud does not answer in time"),
        ("cloud.heartbeat_seconds", "heartbeat after this much quiet, 0 = never"),
        ("state.directory", "where the ledger lives"),
        ("state.disk_budget_bytes", "ledger size limit; new sessions are refused at 90 %"),
        ("state.retention_days", "days a closed session's summary is kept for reconciliation, 1…3650 (within 25 % of the disk budget)"),
        ("log.level", "error | warning | info | debug"),
        ("diagnostics.socket", "the technicians' Unix socket (empty: none; a socket passed by systemd is used instead)"),
        ("diagnostics.admin_group", "group whose members may change something through the socket (stop, test transaction, controller inputs)"),
        ("diagnostics.max_clients", "clients connected to the socket at once, 1…64"),
        ("diagnostics.metrics_file", "the metrics command's Prometheus text, rewritten atomically every interval (temporary + rename, mode 0644; empty: none)"),
        ("diagnostics.metrics_interval_seconds", "how often the metrics file is written, 5…3600"),
        ("charger.serial", "the charger's serial number, for the inventory"),
        ("terminal.transfer_number", "Payter's Terminal Transfer Number (empty: never transferred)"),
        ("terminal.domain", "the Payter domain the terminal belongs to"),
        ("payment.processor", "platform | own: who acquires the payments"),
    ] + perConnectorKeys
}

/// One problem in a configuration file.
public struct ConfigProblem: Equatable, Sendable, CustomStringConvertible {
    public var line: Int
    public var message: String
    public var description: String { "line \(line): \(message)" }
}

public enum ConfigParser {
    /// A file larger than this is not a configuration file.
    public static let maxBytes = 64 * 1024

    /// Parses configuration text: the settings (defaults where a key is absent or wrong) and every problem found.
    public static func parse(_ text: String) -> (DaemonConfig, [ConfigProblem]) {
        var c = DaemonConfig()
        var problems: [ConfigProblem] = []
        var seen: [String: Int] = [:]
        let known = Set(DaemonConfig.keys.map(\.key))
        if text.utf8.count > maxBytes { problems.append(ConfigProblem(line: 0, message: "file larger than \(maxBytes) bytes")) }
        for (i, raw) in lines(text).enumerated() {
            let n = i + 1
            let content = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
            let trimmed = content.trimmingCharacters(in: " \t\r")
            if trimmed.isEmpty { continue }
            guard let eq = trimmed.firstIndex(of: "=") else {
                problems.append(ConfigProblem(line: n, message: "expected 'key = value'"))
                continue
            }
            let key = String(trimmed[..<eq]).trimmingCharacters(in: " \t")
            let value = String(trimmed[trimmed.index(after: eq)...]).trimmingCharacters(in: " \t")
            guard known.contains(key) else {
                problems.append(ConfigProblem(line: n, message: "unknown key '\(key)'"))
                continue
            }
            if let first = seen[key] {
                problems.append(ConfigProblem(line: n, message: "'\(key)' already set on line \(first)"))
                continue
            }
            seen[key] = n
            if let message = apply(key, value, to: &c) { problems.append(ConfigProblem(line: n, message: "\(key): \(message)")) }
        }
        for (key, message) in wholeFileProblems(c) {
            problems.append(ConfigProblem(line: key.compactMap { seen[$0] }.first ?? 0, message: message))
        }
        return (c, problems)
    }

    /// The rules that span keys, each with the keys whose line it is reported on: checked after
    /// a file is read and again after command-line overrides are applied over it.
    public static func wholeFileProblems(_ c: DaemonConfig) -> [(keys: [String], message: String)] {
        var problems: [(keys: [String], message: String)] = DaemonConfig.hardwareProblems(c)
        if c.transport == .tcp && !c.terminalUSB.isEmpty {
            problems.append((["terminal.usb"], "terminal.usb finds a serial adapter; terminal.transport = tcp has none"))
        }
        if c.transport == .tcp && c.host.isEmpty {
            problems.append((["terminal.transport"], "terminal.transport = tcp needs terminal.host"))
        }
        if let url = c.cloudURL {
            let lower = url.lowercased()
            let isWebSocket = lower.hasPrefix("ws://") || lower.hasPrefix("wss://")
            switch c.cloudProtocol {
            case .ocppJ where !isWebSocket:
                problems.append((["cloud.url", "cloud.protocol"], "cloud.protocol = ocpp-j (the default) needs a wss:// URL (ws:// only to loopback); for the HTTPS binding set cloud.protocol = https"))
            case .https where isWebSocket:
                problems.append((["cloud.url", "cloud.protocol"], "cloud.protocol = https needs an https:// URL; a ws:// or wss:// URL is for cloud.protocol = ocpp-j"))
            default: break
            }
        }
        if (c.clientCertificate == nil) != (c.clientKey == nil) {
            problems.append((["cloud.client_cert", "cloud.client_key"], "cloud.client_cert and cloud.client_key go together"))
        }
        return problems
    }

    /// The lines of `text`, each without its ending: LF, CRLF and a lone CR each end one line, so a
    /// file saved on Windows reads (and numbers its lines) like the same file saved here. Split by
    /// Unicode scalars: `split(separator: "\n")` compares Characters, and CRLF is one Character,
    /// so a CRLF file would be a single line (all of it a comment after a leading '#').
    static func lines(_ text: String) -> [String] {
        let scalars = text.unicodeScalars
        var lines: [String] = []
        var start = scalars.startIndex
        var i = start
        while i < scalars.endIndex {
            let c = scalars[i]
            guard c == "\n" || c == "\r" else { i = scalars.index(after: i); continue }
            lines.append(String(scalars[start..<i]))
            i = scalars.index(after: i)
            if c == "\r", i < scalars.endIndex, scalars[i] == "\n" { i = scalars.index(after: i) }
            start = i
        }
        lines.append(String(scalars[start...]))
        return lines
    }

    /// Sets one key from its text, with the file's checks: nil, or why `v` is refused. The
    /// command line's flags are overrides of keys and go through here too, so a flag can never
    /// accept what the file refuses.
    public static func apply(_ key: String, _ v: String, to c: inout DaemonConfig) -> String? {
        func int(_ range: ClosedRange<Int64>) -> Int64? {
            guard let n = Int64(v), range.contains(n) else { return nil }
            return n
        }
        func optional() -> String? { v.isEmpty ? nil : v }
        if let hardware = DaemonConfig.applyHardware(key, v, to: &c) { return hardware }
        if key == "terminal.usb" {
            if !v.isEmpty {
                do throws(USBSelectorError) { _ = try USBSelector.parse(v) } catch { return "expected VID:PID[:SERIAL] or a port path such as 1-1.2: \(error)" }
            }
            c.terminalUSB = v
            return nil
        }
        switch key {
        case "terminal.family":
            guard let f = DaemonConfig.TerminalFamilyName(rawValue: v) else { return "expected apollo or p6x, got '\(v)'" }
            c.terminalFamily = f
        case "terminal.transport":
            guard let t = DaemonConfig.TransportName(rawValue: v) else { return "expected serial or tcp, got '\(v)'" }
            c.transport = t
        case "terminal.device":
            guard v.hasPrefix("/") else { return "expected an absolute device path" }
            c.device = v
        case "terminal.line":
            guard let l = LineSettings.parse(v) else { return "expected e.g. '57600 8N1' with a supported speed" }
            c.line = l
        case "terminal.host":
            // Connecting resolves nothing (a DNS query would block the event loop): TCP takes numbers only.
            guard v.isEmpty || TCP.isNumericAddress(v) else {
                return "expected an IP address such as 192.0.2.10 or fe80::1%eth0, got '\(v)' (host names are not resolved)"
            }
            c.host = v
        case "terminal.port":
            guard let p = int(1...65535) else { return "expected 1…65535" }
            c.port = UInt16(p)
        case "terminal.lock_framing":
            switch v {
            case "on": c.lockFraming = true
            case "off": c.lockFraming = false
            default: return "expected on or off, got '\(v)'"
            }
        case "terminal.connection_info":
            guard let v = DaemonConfig.ConnectionInfoName(rawValue: v) else { return "expected auto or off, got '\(v)'" }
            c.connectionInfo = v
        case "terminal.battery_warn_days":
            let range = TerminalConditions.batteryWarnDayRange
            guard let n = int(Int64(range.lowerBound)...Int64(range.upperBound)) else { return "expected \(range.lowerBound)…\(range.upperBound)" }
            c.batteryWarnDays = Int(n)
        case "terminal.storage_days":
            let range = TerminalConditions.storageDayRange
            guard let n = int(Int64(range.lowerBound)...Int64(range.upperBound)) else { return "expected \(range.lowerBound)…\(range.upperBound)" }
            c.storageDays = Int(n)
        case "charger.connectors":
            guard let n = int(1...Int64(EngineConfig.maxConnectors)) else { return "expected 1…\(EngineConfig.maxConnectors)" }
            c.engine.connectors = Int(n)
        case "charger.io":
            guard let io = DaemonConfig.ChargerIO(rawValue: v) else { return "expected none, simulated, socket or gpio, got '\(v)'" }
            c.chargerIO = io
        case "charger.meter_timeout_seconds":
            let r = DaemonConfig.meterTimeoutRange
            guard let n = int(r) else { return "expected \(r.lowerBound)…\(r.upperBound) seconds" }
            c.meterTimeoutSeconds = n
        case "charger.max_power_w":
            let r = DaemonConfig.maxPowerRange
            guard let n = int(r) else { return "expected \(r.lowerBound)…\(r.upperBound) W" }
            c.maxPowerW = n
        case "payment.preauth":
            guard let n = int(1...Int64(UInt32.max)) else { return "expected a positive amount in minor units" }
            c.engine.preauthAmount = n
        case "tariff.currency":
            guard v.count == 3, v.allSatisfy({ $0.isASCII && $0.isUppercase }) else { return "expected an ISO 4217 code such as EUR" }
            c.engine.tariff.currency = v
        case "tariff.start_fee":
            guard let n = int(0...1_000_000_000) else { return "expected 0…1000000000 minor units" }
            c.engine.tariff.startFee = n
        case "tariff.energy_per_kwh_milli":
            guard let n = int(0...1_000_000_000) else { return "expected 0…1000000000" }
            c.engine.tariff.energyPricePerKWh = n
        case "tariff.time_per_minute_milli":
            guard let n = int(0...1_000_000_000) else { return "expected 0…1000000000" }
            c.engine.tariff.timePricePerMinute = n
        case "timeouts.plug_in_seconds":
            guard let n = int(10...86_400) else { return "expected 10…86400" }
            c.engine.plugInTimeout = .seconds(n)
        case "timeouts.decision_seconds":
            guard let n = int(1...120) else { return "expected 1…120" }
            c.engine.decisionTimeout = .seconds(n)
        case "cloud.url":
            // The connection's own rules: a URL it would refuse would have every message retried forever.
            let lower = v.lowercased()
            if lower.hasPrefix("ws://") || lower.hasPrefix("wss://") {
                let parsed: WebSocketURL
                do { parsed = try WebSocketURL(parsing: v) } catch { return "expected a wss:// URL with a host: \(error)" }
                // The stream is opened by the HTTPS client, so the same loopback rule applies.
                if let problem = CloudURL.problem(parsed.streamURL) {
                    return "expected a wss:// URL (plain ws only to 127.0.0.1, localhost or [::1]): \(problem)"
                }
            } else if !v.isEmpty, let problem = CloudURL.problem(v) {
                return "expected a wss:// or https:// URL with a host (plain ws/http only to 127.0.0.1, localhost or [::1]): \(problem)"
            }
            c.cloudURL = optional()
        case "cloud.protocol":
            guard let p = DaemonConfig.CloudProtocol(rawValue: v) else { return "expected ocpp-j or https, got '\(v)'" }
            c.cloudProtocol = p
        case "cloud.password_file": c.passwordFile = optional()
        case "cloud.ping_seconds":
            guard let n = int(0...3600) else { return "expected 0…3600" }
            c.pingSeconds = n
        case "cloud.response_timeout_seconds":
            guard let n = int(5...300) else { return "expected 5…300" }
            c.responseTimeoutSeconds = n
        case "cloud.ocpp201_fallback":
            guard v == "on" || v == "off" else { return "expected on or off" }
            c.ocpp201Fallback = v == "on"
        case "cloud.call_error_attempts":
            guard let n = int(1...100) else { return "expected 1…100" }
            c.callErrorAttempts = Int(n)
        case "cloud.station_id":
            guard !v.isEmpty, v.count <= 48, !v.contains("/"), !v.contains(" ") else { return "expected 1…48 characters without '/' or spaces" }
            c.stationId = v
        case "cloud.ca_file": c.caFile = optional()
        case "cloud.client_cert": c.clientCertificate = optional()
        case "cloud.client_key": c.clientKey = optional()
        case "cloud.token_file": c.tokenFile = optional()
        case "cloud.proxy":
            if !v.isEmpty, let problem = ProxyURL.problem(v) { return "expected http://HOST:PORT (empty: no proxy): \(problem)" }
            c.cloudProxy = optional()
        case "cloud.offline_policy":
            guard let p = OfflinePolicy(rawValue: v) else { return "expected allow or deny" }
            c.engine.offlinePolicy = p
        case "cloud.heartbeat_seconds":
            guard let n = int(0...86_400) else { return "expected 0…86400" }
            c.heartbeatSeconds = n
        case "state.directory":
            guard v.hasPrefix("/") else { return "expected an absolute path" }
            c.stateDirectory = v
        case "state.disk_budget_bytes":
            guard let n = int(4 << 20...(64 << 30)) else { return "expected 4 MiB…64 GiB" }
            c.diskBudgetBytes = Int(n)
        case "state.retention_days":
            let range = SummaryRetention.dayRange
            guard let n = int(Int64(range.lowerBound)...Int64(range.upperBound)) else { return "expected \(range.lowerBound)…\(range.upperBound)" }
            c.retentionDays = Int(n)
        case "log.level":
            guard ["error", "warning", "info", "debug"].contains(v) else { return "expected error, warning, info or debug" }
            c.logLevel = v
        case "diagnostics.socket":
            guard v.isEmpty || (v.hasPrefix("/") && v.utf8.count <= UnixSocket.maxPathBytes) else {
                return "expected an absolute path of at most \(UnixSocket.maxPathBytes) bytes, or empty for none"
            }
            c.diagnosticsSocket = v
        case "diagnostics.admin_group":
            guard !v.isEmpty, v.utf8.count <= 32, v.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "_-".contains($0)) }) else {
                return "expected a group name (letters, digits, _ and -, at most 32)"
            }
            c.adminGroup = v
        case "diagnostics.max_clients":
            guard let n = int(1...64) else { return "expected 1…64" }
            c.maxDiagnosticsClients = Int(n)
        case "diagnostics.metrics_file":
            guard v.isEmpty || v.hasPrefix("/") else { return "expected an absolute path, or empty for none" }
            c.metricsFile = optional()
        case "diagnostics.metrics_interval_seconds":
            guard let n = int(5...3600) else { return "expected 5…3600" }
            c.metricsIntervalSeconds = n
        case "charger.serial", "terminal.transfer_number", "terminal.domain":
            guard v.utf8.count <= 64, v.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) else {
                return "expected at most 64 printable ASCII characters"
            }
            switch key {
            case "charger.serial": c.chargerSerial = v
            case "terminal.transfer_number": c.terminalTransferNumber = v
            default: c.terminalDomain = v
            }
        case "payment.processor":
            guard let p = DaemonConfig.PaymentProcessor(rawValue: v) else { return "expected platform or own, got '\(v)'" }
            c.paymentProcessor = p
        default:
            return "unknown key"
        }
        return nil
    }
}

extension String {
    func trimmingCharacters(in set: String) -> String {
        let chars = Set(set)
        var s = Substring(self)
        while let f = s.first, chars.contains(f) { s = s.dropFirst() }
        while let l = s.last, chars.contains(l) { s = s.dropLast() }
        return String(s)
    }
}
