import Glibc
import PaymentEngine
import Platform

/// What the CSMS set that must outlive a restart: OCPP keeps an EVSE made Inoperative by
/// ChangeAvailability inoperative across a reboot, and a device-model variable written by
/// SetVariables keeps its value. The heartbeat interval is not here: every accepted Boot sets it
/// again from the CSMS's answer.
struct CSMSSettings: Equatable, Sendable {
    /// Connectors (0-based) the CSMS made inoperative.
    var inoperative: Set<Int> = []
    /// `AuthCtrlr.OfflineTxForUnknownIdEnabled` as the CSMS set it; nil: the configuration
    /// file's `cloud.offline_policy` holds.
    var offlineAllowed: Bool?

    /// The engine's settings with the CSMS's over the configuration file's.
    func applied(to engine: EngineConfig) -> EngineConfig {
        var e = engine
        if let allowed = offlineAllowed { e.offlinePolicy = allowed ? .allow : .deny }
        return e
    }
}

/// `STATE/csms-settings`: `CSMSSettings` as `key=value` lines (`inoperative=1,3`, connectors
/// 1-based; `offline_tx_for_unknown_id=true|false`), replaced whole (`SmallStateFile`) on every
/// change. Unknown keys and bad values are skipped with a reason, never fatal: the file holds
/// what an operator set remotely, and a damaged one must not stop the station from starting.
enum CSMSSettingsFile {
    static let name = "csms-settings"
    /// Far above what eight connectors and one flag take.
    static let maxBytes = 1024

    static func path(_ state: String) -> String { state + "/" + name }

    /// The settings and what was skipped in the file (for the log); empty settings when there is none.
    static func read(state: String, connectors: Int) -> (CSMSSettings, skipped: [String]) {
        var s = CSMSSettings()
        var skipped: [String] = []
        guard let text = SmallStateFile.read(path(state), maxBytes: maxBytes) else { return (s, []) }
        for line in text.split(separator: "\n") where !line.isEmpty {
            let parts = line.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { skipped.append("'\(line)': not key=value"); continue }
            switch parts[0] {
            case "inoperative":
                for n in parts[1].split(separator: ",") {
                    if let c = Int(n), c >= 1, c <= connectors { s.inoperative.insert(c - 1) } else { skipped.append("inoperative connector '\(n)'") }
                }
            case "offline_tx_for_unknown_id":
                switch parts[1] {
                case "true": s.offlineAllowed = true
                case "false": s.offlineAllowed = false
                default: skipped.append("offline_tx_for_unknown_id '\(parts[1])'")
                }
            default: skipped.append("unknown key '\(parts[0])'")
            }
        }
        return (s, skipped)
    }

    static func text(_ s: CSMSSettings) -> String {
        var lines: [String] = []
        if !s.inoperative.isEmpty { lines.append("inoperative=" + s.inoperative.sorted().map { String($0 + 1) }.joined(separator: ",")) }
        if let allowed = s.offlineAllowed { lines.append("offline_tx_for_unknown_id=\(allowed)") }
        return lines.map { $0 + "\n" }.joined()
    }

    /// Keeps `s`: durable when this returns.
    static func write(_ s: CSMSSettings, state: String) throws(SystemError) {
        try SmallStateFile.write(text(s), to: path(state), directory: state)
    }
}
