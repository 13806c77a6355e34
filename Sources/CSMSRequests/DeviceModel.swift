import JSONLines
import OCPPJ

/// The limits of the device-model requests, named so the answers, the report and the tests agree.
public enum DeviceModelLimits {
    /// `DeviceDataCtrlr.ItemsPerMessage[GetVariables]`: more items in one request are refused
    /// (OccurrenceConstraintViolation), so one request cannot make an answer of unbounded size.
    public static let itemsPerGetVariables = 32
    /// `DeviceDataCtrlr.ItemsPerMessage[SetVariables]`, enforced the same way.
    public static let itemsPerSetVariables = 32
    /// `DeviceDataCtrlr.ItemsPerMessage[GetReport]`: report entries per NotifyReportRequest page.
    public static let reportPageSize = 16
    /// `DeviceDataCtrlr.BytesPerMessage[…]`: the RPC layer's own message limit.
    public static let bytesPerMessage = RPCLimits.maxMessageBytes
    /// The schemas' limit on attributeValue and VariableAttribute.value; longer values (a
    /// terminal's string, say) are cut to it rather than making the answer invalid.
    public static let valueSize = 2500
}

/// The attribute types of a variable; the station keeps only `Actual` values.
enum AttributeType: String { case actual = "Actual", target = "Target", minSet = "MinSet", maxSet = "MaxSet" }

/// What the CSMS may do to a variable.
public enum Mutability: String, Equatable, Sendable {
    /// GetVariables reads it; SetVariables is Rejected (ReadOnly).
    case readOnly = "ReadOnly"
    /// SetVariables may change it (a `Setting`).
    case readWrite = "ReadWrite"
}

/// The variables the CSMS may change, each with the value rules SetVariables checks.
public enum Setting: Equatable, Sendable {
    /// `OCPPCommCtrlr.HeartbeatInterval`: whole seconds, 0 (never) to `heartbeatRange.upperBound`.
    case heartbeatInterval
    /// `AuthCtrlr.OfflineTxForUnknownIdEnabled`: `true` or `false`.
    case offlineTxForUnknownId

    /// The range `cloud.heartbeat_seconds` takes, so a value the CSMS sets is one the configuration could hold.
    public static let heartbeatRange: ClosedRange<Int64> = 0...86_400

    /// What SetVariables makes of a value.
    enum Outcome: Equatable { case accepted(canonical: String), rejected(reasonCode: String) }

    /// The canonical form of `value`, or the reason code that refuses it.
    func canonical(_ value: String) -> Outcome {
        switch self {
        case .heartbeatInterval:
            let digits = value.hasPrefix("-") ? value.utf8.dropFirst() : value.utf8[...]
            guard !digits.isEmpty, digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return .rejected(reasonCode: "InvalidValue") }
            // A well-formed number that is negative or does not fit is out of range, not malformed.
            guard let n = Int64(value), Setting.heartbeatRange.contains(n) else { return .rejected(reasonCode: "ValueOutOfRange") }
            return .accepted(canonical: String(n))
        case .offlineTxForUnknownId:
            // OCPP booleans are "true"/"false"; any capitalisation is read as the same word.
            switch value.lowercased() {
            case "true": return .accepted(canonical: "true")
            case "false": return .accepted(canonical: "false")
            default: return .rejected(reasonCode: "InvalidValue")
            }
        }
    }
}

/// One variable of the station's device model with its value now.
public struct DeviceVariable: Equatable, Sendable {
    /// The component's name (`ChargingStation`, `PaymentCtrlr`, …); no component here has an instance.
    public var component: String
    /// The EVSE a per-EVSE component (`EVSE`) belongs to.
    public var evseId: Int?
    /// The variable's name and, where the appendix keys it, its instance (`ItemsPerMessage[GetVariables]`).
    public var name: String
    public var instance: String?
    public var mutability: Mutability
    /// `DataEnumType`: string, integer, boolean, OptionList.
    public var dataType: String
    /// The report's `variableCharacteristics`: unit, limits of an integer, an OptionList's values.
    public var unit: String?
    public var minLimit: Int64?
    public var maxLimit: Int64?
    public var valuesList: String?
    /// The Actual value ("" where the station does not know it).
    public var value: String
    /// Non-nil for the variables SetVariables may change.
    public var setting: Setting?
    /// Part of a SummaryInventory report (availability).
    public var summary: Bool

    /// The value as answers carry it: at most `DeviceModelLimits.valueSize` characters.
    var reportedValue: String {
        value.unicodeScalars.count <= DeviceModelLimits.valueSize ? value
            : String(String.UnicodeScalarView(value.unicodeScalars.prefix(DeviceModelLimits.valueSize)))
    }
}

/// The station's device model (OCPP 2.1 Part 2 appendices' component and variable names):
/// `ChargingStation` (identity, availability), `EVSE` per EVSE (availability), `OCPPCommCtrlr`
/// (HeartbeatInterval), `AuthCtrlr` (OfflineTxForUnknownIdEnabled, the offline policy),
/// `DeviceDataCtrlr` (the request limits) and `PaymentCtrlr` (the terminal's inventory, its SIM's
/// ICCID included). `PaymentCtrlr.ProcessorOption` and `PaymentCtrlr.TransferNumber` are this
/// station's own variables; the appendix has no name for either.
public enum DeviceModel {
    /// Every variable, in report order.
    public static func variables(_ view: StationView) -> [DeviceVariable] {
        func v(_ component: String, _ name: String, _ value: String?, instance: String? = nil, evse: Int? = nil,
               type: String = "string", mutability: Mutability = .readOnly, unit: String? = nil,
               min: Int64? = nil, max: Int64? = nil, values: String? = nil, setting: Setting? = nil, summary: Bool = false) -> DeviceVariable {
            DeviceVariable(component: component, evseId: evse, name: name, instance: instance, mutability: mutability,
                           dataType: type, unit: unit, minLimit: min, maxLimit: max, valuesList: values, value: value ?? "",
                           setting: setting, summary: summary)
        }
        let availability = "Available,Occupied,Reserved,Unavailable,Faulted"
        var out: [DeviceVariable] = [
            v("ChargingStation", "VendorName", view.identity.vendor),
            v("ChargingStation", "Model", view.identity.model),
            v("ChargingStation", "SerialNumber", view.identity.serialNumber),
            v("ChargingStation", "FirmwareVersion", view.identity.firmwareVersion),
            v("ChargingStation", "Available", "true", type: "boolean", summary: true),
            v("ChargingStation", "AvailabilityState", view.stationOperative ? "Available" : "Unavailable",
              type: "OptionList", values: availability, summary: true),
        ]
        for e in view.evses {
            let state: String
            if e.busy { state = "Occupied" }
            else if !e.operative || !view.stationOperative { state = "Unavailable" }
            else if view.reservations.contains(where: { $0.evseId == e.id }) { state = "Reserved" }
            else { state = "Available" }
            out.append(v("EVSE", "Available", "true", evse: e.id, type: "boolean", summary: true))
            out.append(v("EVSE", "AvailabilityState", state, evse: e.id, type: "OptionList", values: availability, summary: true))
        }
        out += [
            v("OCPPCommCtrlr", "HeartbeatInterval", String(view.settings.heartbeatIntervalSeconds), type: "integer",
              mutability: .readWrite, unit: "s", min: Setting.heartbeatRange.lowerBound, max: Setting.heartbeatRange.upperBound,
              setting: .heartbeatInterval),
            v("AuthCtrlr", "OfflineTxForUnknownIdEnabled", view.settings.offlineChargingAllowed ? "true" : "false", type: "boolean",
              mutability: .readWrite, setting: .offlineTxForUnknownId),
        ]
        for (instance, items) in [("GetReport", DeviceModelLimits.reportPageSize), ("GetVariables", DeviceModelLimits.itemsPerGetVariables),
                                  ("SetVariables", DeviceModelLimits.itemsPerSetVariables)] {
            out.append(v("DeviceDataCtrlr", "ItemsPerMessage", String(items), instance: instance, type: "integer"))
            out.append(v("DeviceDataCtrlr", "BytesPerMessage", String(DeviceModelLimits.bytesPerMessage), instance: instance, type: "integer"))
        }
        let t = view.terminal
        out += [
            v("PaymentCtrlr", "Enabled", "true", type: "boolean", summary: true),
            v("PaymentCtrlr", "VendorName", t.vendor),
            v("PaymentCtrlr", "Model", t.model),
            v("PaymentCtrlr", "SerialNumber", t.serialNumber),
            v("PaymentCtrlr", "FirmwareVersion", t.firmwareVersion),
            v("PaymentCtrlr", "ICCID", t.simSerial),
            v("PaymentCtrlr", "ProcessorOption", t.processorOption),
            v("PaymentCtrlr", "TransferNumber", t.transferNumber),
        ]
        return out
    }

    /// How a requested component and variable resolve against the model.
    enum Lookup: Equatable {
        case found(DeviceVariable)
        case unknownComponent
        case unknownVariable
    }

    /// Names are case-insensitive in OCPP (identifier strings); instances too. A component named
    /// with an EVSE matches only a per-EVSE component of that EVSE, and a connector narrows it
    /// further, which no component here has.
    static func lookup(_ model: [DeviceVariable], component: ComponentRef, variable: VariableRef) -> Lookup {
        let candidates = model.filter {
            same($0.component, component.name) && component.instance == nil
                && $0.evseId.map(Int64.init) == component.evse?.id && component.evse?.connectorId == nil
        }
        guard !candidates.isEmpty else { return .unknownComponent }
        guard let hit = candidates.first(where: { same($0.name, variable.name) && sameInstance($0.instance, variable.instance) }) else {
            return .unknownVariable
        }
        return .found(hit)
    }

    static func same(_ a: String, _ b: String) -> Bool { a.lowercased() == b.lowercased() }
    static func sameInstance(_ a: String?, _ b: String?) -> Bool {
        switch (a, b) {
        case (nil, nil): return true
        case let (x?, y?): return same(x, y)
        default: return false
        }
    }

    /// The variables a GetBaseReport of this base lists.
    static func report(_ base: ReportBase, _ view: StationView) -> [DeviceVariable] {
        let all = variables(view)
        switch base {
        case .fullInventory: return all
        case .configurationInventory: return all.filter { $0.mutability == .readWrite }
        case .summaryInventory: return all.filter { $0.summary }
        }
    }
}

/// `ReportBaseEnumType`.
enum ReportBase: String { case configurationInventory = "ConfigurationInventory", fullInventory = "FullInventory", summaryInventory = "SummaryInventory" }

/// The schemas' `ComponentType` as a request gives it.
struct ComponentRef: Equatable {
    var name: String
    var instance: String?
    var evse: EVSERef?
    /// Exactly the JSON the request carried, echoed in the result.
    var json: JSON

    static func read(_ o: PayloadObject, _ key: String) throws(RPCError) -> ComponentRef {
        let c = try o.requiredObject(key, allowed: ["name", "instance", "evse"])
        return ComponentRef(name: try c.requiredString("name", maxLength: 50), instance: try c.string("instance", maxLength: 50),
                            evse: try EVSERef.read(c, "evse"), json: o[key]!)
    }
}

/// The schemas' `VariableType` as a request gives it.
struct VariableRef: Equatable {
    var name: String
    var instance: String?
    var json: JSON

    static func read(_ o: PayloadObject, _ key: String) throws(RPCError) -> VariableRef {
        let v = try o.requiredObject(key, allowed: ["name", "instance"])
        return VariableRef(name: try v.requiredString("name", maxLength: 50), instance: try v.string("instance", maxLength: 50), json: o[key]!)
    }
}
