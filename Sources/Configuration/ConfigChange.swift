import PaymentEngine

extension DaemonConfig {
    /// The keys a SIGHUP applies at once: settings for sessions that start from now on, the
    /// heartbeat, the bearer token and the log level. Every other key waits for the next start:
    /// the terminal, the charger, the state directory and the cloud connection are opened once.
    public static let reloadableKeys: Set<String> = [
        "payment.preauth", "tariff.currency", "tariff.start_fee", "tariff.energy_per_kwh_milli",
        "tariff.time_per_minute_milli", "timeouts.plug_in_seconds", "timeouts.decision_seconds",
        "cloud.offline_policy", "cloud.heartbeat_seconds", "cloud.token_file", "log.level",
        // What the inventory shows: read at each request.
        "charger.serial", "terminal.transfer_number", "terminal.domain", "payment.processor",
    ]

    /// `key`'s value written as the configuration file writes it (empty for an unset optional);
    /// nil for a key that is not one of `keys`. Parsing `key = value` gives the same setting back.
    public func value(of key: String) -> String? {
        if let hardware = hardwareValue(of: key) { return hardware }
        switch key {
        case "terminal.family": return terminalFamily.rawValue
        case "terminal.transport": return transport.rawValue
        case "terminal.device": return device
        case "terminal.usb": return terminalUSB
        case "terminal.line": return line.description
        case "terminal.host": return host
        case "terminal.port": return String(port)
        case "terminal.lock_framing": return lockFraming ? "on" : "off"
        case "terminal.connection_info": return connectionInfo.rawValue
        case "terminal.battery_warn_days": return String(batteryWarnDays)
        case "terminal.storage_days": return String(storageDays)
        case "charger.connectors": return String(engine.connectors)
        case "charger.io": return chargerIO.rawValue
        case "charger.meter_timeout_seconds": return String(meterTimeoutSeconds)
        case "charger.max_power_w": return String(maxPowerW)
        case "payment.preauth": return String(engine.preauthAmount)
        case "tariff.currency": return engine.tariff.currency
        case "tariff.start_fee": return String(engine.tariff.startFee)
        case "tariff.energy_per_kwh_milli": return String(engine.tariff.energyPricePerKWh)
        case "tariff.time_per_minute_milli": return String(engine.tariff.timePricePerMinute)
        case "timeouts.plug_in_seconds": return String(engine.plugInTimeout.components.seconds)
        case "timeouts.decision_seconds": return String(engine.decisionTimeout.components.seconds)
        case "cloud.protocol": return cloudProtocol.rawValue
        case "cloud.url": return cloudURL ?? ""
        case "cloud.station_id": return stationId
        case "cloud.ca_file": return caFile ?? ""
        case "cloud.client_cert": return clientCertificate ?? ""
        case "cloud.client_key": return clientKey ?? ""
        case "cloud.token_file": return tokenFile ?? ""
        case "cloud.password_file": return passwordFile ?? ""
        case "cloud.ping_seconds": return String(pingSeconds)
        case "cloud.response_timeout_seconds": return String(responseTimeoutSeconds)
        case "cloud.ocpp201_fallback": return ocpp201Fallback ? "on" : "off"
        case "cloud.call_error_attempts": return String(callErrorAttempts)
        case "cloud.proxy": return cloudProxy ?? ""
        case "cloud.offline_policy": return engine.offlinePolicy.rawValue
        case "cloud.heartbeat_seconds": return String(heartbeatSeconds)
        case "state.directory": return stateDirectory
        case "state.disk_budget_bytes": return String(diskBudgetBytes)
        case "state.retention_days": return String(retentionDays)
        case "log.level": return logLevel
        case "diagnostics.socket": return diagnosticsSocket
        case "diagnostics.admin_group": return adminGroup
        case "diagnostics.max_clients": return String(maxDiagnosticsClients)
        case "diagnostics.metrics_file": return metricsFile ?? ""
        case "diagnostics.metrics_interval_seconds": return String(metricsIntervalSeconds)
        case "charger.serial": return chargerSerial
        case "terminal.transfer_number": return terminalTransferNumber
        case "terminal.domain": return terminalDomain
        case "payment.processor": return paymentProcessor.rawValue
        default: return nil
        }
    }

    /// The whole configuration as a file: every documented key with its value, in `keys` order.
    public var fileText: String {
        DaemonConfig.keys.map { "\($0.key) = \(value(of: $0.key) ?? "")" }.joined(separator: "\n") + "\n"
    }
}

/// What changed between the running configuration and a reloaded one, key by key: what a SIGHUP
/// applies and reports. Pure, so that what a reload does is decided by a function with tests
/// rather than by the signal handler.
public struct ConfigChange: Equatable, Sendable {
    /// Changed keys that take effect at once (`DaemonConfig.reloadableKeys`), in `keys` order.
    public var applied: [String] = []
    /// Changed keys kept at their running value until the next start, in `keys` order.
    public var needsRestart: [String] = []

    /// Compares every documented key of the two configurations.
    public init(from old: DaemonConfig, to new: DaemonConfig) {
        for (key, _) in DaemonConfig.keys where old.value(of: key) != new.value(of: key) {
            if DaemonConfig.reloadableKeys.contains(key) { applied.append(key) } else { needsRestart.append(key) }
        }
    }

    /// Nothing differs.
    public var isEmpty: Bool { applied.isEmpty && needsRestart.isEmpty }

    /// One line for the log: what changed now, and what waits for a restart.
    public var summary: String {
        if isEmpty { return "nothing changed" }
        var parts: [String] = []
        if !applied.isEmpty { parts.append("applied: " + applied.joined(separator: ", ")) }
        if !needsRestart.isEmpty { parts.append("changed but kept until the next start: " + needsRestart.joined(separator: ", ")) }
        return parts.joined(separator: "; ")
    }
}
