import JSONLines

/// The BootNotificationRequest payload (OCPP 2.1), with each field cut to the schema's limit so
/// a long firmware string cannot make the CSMS refuse the station's first message.
public enum BootPayload {
    /// Why the station booted (BootReasonEnumType).
    public enum Reason: String, Sendable, CaseIterable {
        case applicationReset = "ApplicationReset", firmwareUpdate = "FirmwareUpdate", localReset = "LocalReset",
             powerUp = "PowerUp", remoteReset = "RemoteReset", scheduledReset = "ScheduledReset",
             triggered = "Triggered", unknown = "Unknown", watchdog = "Watchdog"
    }

    /// ChargingStationType's limits: model 20, vendorName 50, serialNumber 25, firmwareVersion 50.
    public static let maxModel = 20, maxVendor = 50, maxSerial = 25, maxFirmware = 50

    public static func make(reason: Reason, vendor: String, model: String, serial: String? = nil, firmware: String? = nil) -> JSON {
        func cut(_ s: String, _ n: Int) -> JSON { .string(String(String.UnicodeScalarView(s.unicodeScalars.prefix(n)))) }
        var station: [(String, JSON)] = [("model", cut(model, maxModel)), ("vendorName", cut(vendor, maxVendor))]
        if let serial { station.append(("serialNumber", cut(serial, maxSerial))) }
        if let firmware { station.append(("firmwareVersion", cut(firmware, maxFirmware))) }
        return .object([("chargingStation", .object(station)), ("reason", .string(reason.rawValue))])
    }
}
