import JSONLines
import OCPPJ

/// The station's answers to the CSMS's requests (issue 15): pure functions of the action, its
/// payload, a `StationView` and the time. A malformed payload is answered with the OCPP-J error
/// its schema violation calls for (see PayloadReader.swift); a well-formed one with the schema's
/// response and the `StationAction`s the station must carry out after sending it.
public enum CSMSRequestHandler {
    /// The actions `handle` answers; the RPC core answers every other one itself.
    public static let handledActions: Set<String> = [
        "GetTransactionStatus", "RequestStopTransaction", "TriggerMessage", "Reset", "ChangeAvailability",
        "GetVariables", "SetVariables", "GetBaseReport", "UnlockConnector", "CancelReservation",
    ]

    /// Answers one request. `now` is wall-clock time in milliseconds since 1970 (the
    /// NotifyReport's `generatedAt`). An action outside `handledActions` is answered as the RPC
    /// core would: NotSupported when OCPP 2.1 defines it, NotImplemented otherwise.
    public static func handle(action: String, payload: JSON, view: StationView, now nowMillis: Int64) -> Result<HandlerResult, RPCError> {
        do throws(RPCError) {
            switch action {
            case "GetTransactionStatus": return .success(try getTransactionStatus(payload, view))
            case "RequestStopTransaction": return .success(try requestStopTransaction(payload, view))
            case "TriggerMessage": return .success(try triggerMessage(payload, view))
            case "Reset": return .success(try reset(payload, view))
            case "ChangeAvailability": return .success(try changeAvailability(payload, view))
            case "GetVariables": return .success(try getVariables(payload, view))
            case "SetVariables": return .success(try setVariables(payload, view))
            case "GetBaseReport": return .success(try getBaseReport(payload, view, nowMillis))
            case "UnlockConnector": return .success(try unlockConnector(payload, view))
            case "CancelReservation": return .success(try cancelReservation(payload, view))
            default:
                return .failure(OCPP21Actions.all.contains(action)
                    ? RPCError(.notSupported, "\(action) is not supported") : RPCError(.notImplemented, "unknown action"))
            }
        } catch {
            return .failure(error)
        }
    }

    // MARK: answers

    /// `{status}` with an optional `statusInfo.reasonCode` (a reason code of the appendix).
    static func status(_ status: String, reason: String? = nil) -> JSON {
        var fields: [(String, JSON)] = [("status", .string(status))]
        if let reason { fields.append(("statusInfo", .object([("reasonCode", .string(reason))]))) }
        return .object(fields)
    }

    /// E14: about one transaction, whether it is still going and whether messages of it wait in
    /// the outbox; without one, whether any transaction's messages wait.
    static func getTransactionStatus(_ payload: JSON, _ view: StationView) throws(RPCError) -> HandlerResult {
        let p = try PayloadObject(payload, path: "", allowed: ["transactionId"])
        guard let id = try p.string("transactionId", maxLength: 36) else {
            return HandlerResult(payload: .object([("messagesInQueue", .bool(view.transactions.contains { $0.messagesInQueue }))]))
        }
        let t = view.transactions.first { $0.id == id }
        let ongoing = (t?.ongoing ?? false) || view.evses.contains { $0.transactionId == id }
        return HandlerResult(payload: .object([("ongoingIndicator", .bool(ongoing)), ("messagesInQueue", .bool(t?.messagesInQueue ?? false))]))
    }

    /// F03: a transaction ongoing on some EVSE is stopped; any other id is refused (TxNotFound).
    static func requestStopTransaction(_ payload: JSON, _ view: StationView) throws(RPCError) -> HandlerResult {
        let p = try PayloadObject(payload, path: "", allowed: ["transactionId"])
        let id = try p.requiredString("transactionId", maxLength: 36)
        guard view.evses.contains(where: { $0.transactionId == id }) || view.transactions.contains(where: { $0.id == id && $0.ongoing }) else {
            return HandlerResult(payload: status("Rejected", reason: "TxNotFound"))
        }
        return HandlerResult(payload: status("Accepted"), actions: [.stopTransaction(transactionId: id)])
    }

    /// `MessageTriggerEnumType`, every value the schema allows.
    enum RequestedMessage: String {
        case bootNotification = "BootNotification", logStatusNotification = "LogStatusNotification"
        case firmwareStatusNotification = "FirmwareStatusNotification", heartbeat = "Heartbeat", meterValues = "MeterValues"
        case signChargingStationCertificate = "SignChargingStationCertificate", signV2GCertificate = "SignV2GCertificate"
        case signV2G20Certificate = "SignV2G20Certificate", statusNotification = "StatusNotification"
        case transactionEvent = "TransactionEvent", signCombinedCertificate = "SignCombinedCertificate"
        case publishFirmwareStatusNotification = "PublishFirmwareStatusNotification", customTrigger = "CustomTrigger"
    }

    /// F06: the station sends what it has (BootNotification, Heartbeat, StatusNotification,
    /// TransactionEvent); the rest of the enumeration is NotImplemented. An EVSE it does not
    /// have is refused (UnknownEvse), a StatusNotification without its EVSE and connector
    /// (MissingParam, F06.FR.12), a BootNotification after the CSMS accepted the last one
    /// (F06.FR.17), and a TransactionEvent where no transaction in scope can be reported
    /// (none ongoing, or asked about `PaymentEngine.maxReportsPerSession` times already).
    static func triggerMessage(_ payload: JSON, _ view: StationView) throws(RPCError) -> HandlerResult {
        let p = try PayloadObject(payload, path: "", allowed: ["evse", "requestedMessage", "customTrigger"])
        let requested = try p.requiredEnumeration("requestedMessage", RequestedMessage.self)
        let evse = try EVSERef.read(p, "evse")
        _ = try p.string("customTrigger", maxLength: 50)
        let message: TriggeredMessage
        switch requested {
        case .bootNotification: message = .bootNotification
        case .heartbeat: message = .heartbeat
        case .statusNotification: message = .statusNotification
        case .transactionEvent: message = .transactionEvent
        default: return HandlerResult(payload: status("NotImplemented"))
        }
        // EVSE 0 is the station as a whole, as no EVSE at all.
        var evseId: Int?
        if let e = evse, e.id != 0 {
            guard let known = view.evse(e.id) else { return HandlerResult(payload: status("Rejected", reason: "UnknownEvse")) }
            if let c = e.connectorId, c < 1 || c > Int64(known.connectors) {
                return HandlerResult(payload: status("Rejected", reason: "UnknownConnectorId"))
            }
            evseId = known.id
        }
        switch message {
        case .bootNotification:
            if view.bootAccepted { return HandlerResult(payload: status("Rejected")) }
            return HandlerResult(payload: status("Accepted"), actions: [.trigger(.bootNotification, evseId: nil)])
        case .heartbeat:
            return HandlerResult(payload: status("Accepted"), actions: [.trigger(.heartbeat, evseId: nil)])
        case .statusNotification:
            // F06.FR.12: a StatusNotification is about one connector, so both must be named.
            guard let evseId, evse?.connectorId != nil else { return HandlerResult(payload: status("Rejected", reason: "MissingParam")) }
            return HandlerResult(payload: status("Accepted"), actions: [.trigger(.statusNotification, evseId: evseId)])
        case .transactionEvent:
            let inScope = view.evses.filter { evseId == nil || $0.id == evseId }
            guard inScope.contains(where: { $0.transactionReportable }) else { return HandlerResult(payload: status("Rejected")) }
            return HandlerResult(payload: status("Accepted"), actions: [.trigger(.transactionEvent, evseId: evseId)])
        }
    }

    /// `ResetEnumType`.
    enum ResetType: String { case immediate = "Immediate", onIdle = "OnIdle", immediateAndResume = "ImmediateAndResume" }

    /// B11/B12: the whole station only. Immediate is accepted; OnIdle is Scheduled while a session
    /// has not settled, Accepted otherwise; ImmediateAndResume (resuming transactions after the
    /// restart) is refused, the engine settles an interrupted session instead of resuming it.
    static func reset(_ payload: JSON, _ view: StationView) throws(RPCError) -> HandlerResult {
        let p = try PayloadObject(payload, path: "", allowed: ["type", "evseId"])
        let type = try p.requiredEnumeration("type", ResetType.self)
        if let e = try p.int("evseId", minimum: 0), e != 0 {
            // An EVSE cannot be restarted apart from the station that runs it.
            return HandlerResult(payload: status("Rejected", reason: view.evse(e) == nil ? "UnknownEvse" : "UnsupportedRequest"))
        }
        switch type {
        case .immediate: return HandlerResult(payload: status("Accepted"), actions: [.reset(.immediate)])
        case .onIdle:
            return HandlerResult(payload: view.anySessionOngoing ? status("Scheduled", reason: "TxInProgress") : status("Accepted"),
                                 actions: [.reset(.onIdle)])
        case .immediateAndResume: return HandlerResult(payload: status("Rejected", reason: "UnsupportedRequest"))
        }
    }

    /// `OperationalStatusEnumType`.
    enum OperationalStatus: String { case inoperative = "Inoperative", operative = "Operative" }

    /// G03/G04: per EVSE (a connector only where it is its EVSE's one connector) or the whole
    /// station. Inoperative while a session is under way there is Scheduled; the terminal stops
    /// arming the connector at once and the change completes when the session has settled.
    static func changeAvailability(_ payload: JSON, _ view: StationView) throws(RPCError) -> HandlerResult {
        let p = try PayloadObject(payload, path: "", allowed: ["evse", "operationalStatus"])
        let wanted = try p.requiredEnumeration("operationalStatus", OperationalStatus.self)
        let evse = try EVSERef.read(p, "evse")
        let operative = wanted == .operative
        guard let e = evse, e.id != 0 else {
            if evse?.connectorId != nil { return HandlerResult(payload: status("Rejected", reason: "UnknownConnectorId")) }
            let busy = !operative && view.anySessionOngoing
            let actions: [StationAction] = view.stationOperative == operative ? [] : [.setAvailability(evseId: nil, operative: operative)]
            return HandlerResult(payload: busy ? status("Scheduled", reason: "TxInProgress") : status("Accepted"), actions: actions)
        }
        guard let known = view.evse(e.id) else { return HandlerResult(payload: status("Rejected", reason: "UnknownEvse")) }
        if let c = e.connectorId {
            guard c >= 1, c <= Int64(known.connectors) else { return HandlerResult(payload: status("Rejected", reason: "UnknownConnectorId")) }
            // Availability is kept per EVSE: one connector of several cannot be switched alone.
            guard known.connectors == 1 else { return HandlerResult(payload: status("Rejected", reason: "UnsupportedRequest")) }
        }
        let busy = !operative && known.busy
        let actions: [StationAction] = known.operative == operative ? [] : [.setAvailability(evseId: known.id, operative: operative)]
        return HandlerResult(payload: busy ? status("Scheduled", reason: "TxInProgress") : status("Accepted"), actions: actions)
    }

    /// F05: Unlocked (the station then releases the lock) unless the connector is unknown, an
    /// authorised transaction holds it, or the charger has no lock it can release (FixedCable).
    static func unlockConnector(_ payload: JSON, _ view: StationView) throws(RPCError) -> HandlerResult {
        let p = try PayloadObject(payload, path: "", allowed: ["evseId", "connectorId"])
        let evseId = try p.requiredInt("evseId", minimum: 0)
        let connectorId = try p.requiredInt("connectorId", minimum: 0)
        guard let e = view.evse(evseId), connectorId >= 1, connectorId <= Int64(e.connectors) else {
            return HandlerResult(payload: status("UnknownConnector"))
        }
        if e.transactionId != nil { return HandlerResult(payload: status("OngoingAuthorizedTransaction", reason: "TxInProgress")) }
        guard view.unlockSupported else { return HandlerResult(payload: status("UnlockFailed", reason: "FixedCable")) }
        return HandlerResult(payload: status("Unlocked"), actions: [.unlockConnector(evseId: e.id, connectorId: Int(connectorId))])
    }

    /// H03: an open reservation is cancelled; an unknown id is refused.
    static func cancelReservation(_ payload: JSON, _ view: StationView) throws(RPCError) -> HandlerResult {
        let p = try PayloadObject(payload, path: "", allowed: ["reservationId"])
        let id = try p.requiredInt("reservationId", minimum: 0)
        guard view.reservations.contains(where: { $0.id == id }) else { return HandlerResult(payload: status("Rejected", reason: "NotFound")) }
        return HandlerResult(payload: status("Accepted"), actions: [.cancelReservation(id: id)])
    }

    // MARK: device model

    /// B06: each item on its own (Accepted with the value, UnknownComponent, UnknownVariable,
    /// NotSupportedAttributeType for anything but Actual); more than
    /// `DeviceModelLimits.itemsPerGetVariables` items is an OccurrenceConstraintViolation.
    static func getVariables(_ payload: JSON, _ view: StationView) throws(RPCError) -> HandlerResult {
        let p = try PayloadObject(payload, path: "", allowed: ["getVariableData"])
        let items = try p.requiredArray("getVariableData", minItems: 1, maxItems: DeviceModelLimits.itemsPerGetVariables)
        let model = DeviceModel.variables(view)
        var results: [JSON] = []
        for (i, item) in items.enumerated() {
            let o = try PayloadObject(item, path: "getVariableData[\(i)]", allowed: ["attributeType", "component", "variable"])
            let attribute = try o.enumeration("attributeType", AttributeType.self)
            let component = try ComponentRef.read(o, "component")
            let variable = try VariableRef.read(o, "variable")
            var fields: [(String, JSON)] = []
            switch DeviceModel.lookup(model, component: component, variable: variable) {
            case .unknownComponent: fields.append(("attributeStatus", .string("UnknownComponent")))
            case .unknownVariable: fields.append(("attributeStatus", .string("UnknownVariable")))
            case .found(let v):
                if let attribute, attribute != .actual {
                    fields.append(("attributeStatus", .string("NotSupportedAttributeType")))
                } else {
                    fields.append(("attributeStatus", .string("Accepted")))
                    fields.append(("attributeValue", .string(v.reportedValue)))
                }
            }
            if let attribute { fields.append(("attributeType", .string(attribute.rawValue))) }
            fields += [("component", component.json), ("variable", variable.json)]
            results.append(.object(fields))
        }
        return HandlerResult(payload: .object([("getVariableResult", .array(results))]))
    }

    /// B05: each item on its own: read-only variables are Rejected (ReadOnly), a value the
    /// variable cannot take is Rejected (InvalidValue, ValueOutOfRange), an accepted one becomes
    /// a `setVariable` action with the canonical value, in request order.
    static func setVariables(_ payload: JSON, _ view: StationView) throws(RPCError) -> HandlerResult {
        let p = try PayloadObject(payload, path: "", allowed: ["setVariableData"])
        let items = try p.requiredArray("setVariableData", minItems: 1, maxItems: DeviceModelLimits.itemsPerSetVariables)
        let model = DeviceModel.variables(view)
        // Every item is read before anything is decided, so a malformed last item refuses the
        // whole request and no setting is half-applied.
        var parsed: [(AttributeType?, String, ComponentRef, VariableRef)] = []
        for (i, item) in items.enumerated() {
            let o = try PayloadObject(item, path: "setVariableData[\(i)]", allowed: ["attributeType", "attributeValue", "component", "variable"])
            parsed.append((try o.enumeration("attributeType", AttributeType.self),
                           try o.requiredString("attributeValue", maxLength: DeviceModelLimits.valueSize),
                           try ComponentRef.read(o, "component"), try VariableRef.read(o, "variable")))
        }
        var results: [JSON] = []
        var actions: [StationAction] = []
        for (attribute, value, component, variable) in parsed {
            var statusText: String
            var reason: String?
            switch DeviceModel.lookup(model, component: component, variable: variable) {
            case .unknownComponent: statusText = "UnknownComponent"
            case .unknownVariable: statusText = "UnknownVariable"
            case .found(let v):
                if let attribute, attribute != .actual {
                    statusText = "NotSupportedAttributeType"
                } else if let setting = v.setting {
                    switch setting.canonical(value) {
                    case .accepted(let canonical):
                        statusText = "Accepted"
                        actions.append(.setVariable(component: v.component, variable: v.name, value: canonical))
                    case .rejected(let why):
                        statusText = "Rejected"; reason = why
                    }
                } else {
                    statusText = "Rejected"; reason = "ReadOnly"
                }
            }
            var fields: [(String, JSON)] = []
            if let attribute { fields.append(("attributeType", .string(attribute.rawValue))) }
            fields.append(("attributeStatus", .string(statusText)))
            if let reason { fields.append(("attributeStatusInfo", .object([("reasonCode", .string(reason))]))) }
            fields += [("component", component.json), ("variable", variable.json)]
            results.append(.object(fields))
        }
        return HandlerResult(payload: .object([("setVariableResult", .array(results))]), actions: actions)
    }

    /// B07: Accepted, then the report as NotifyReportRequest pages (`sendReport`); a base that
    /// selects nothing is EmptyResultSet.
    static func getBaseReport(_ payload: JSON, _ view: StationView, _ nowMillis: Int64) throws(RPCError) -> HandlerResult {
        let p = try PayloadObject(payload, path: "", allowed: ["requestId", "reportBase"])
        let requestId = try p.requiredInt("requestId")
        let base = try p.requiredEnumeration("reportBase", ReportBase.self)
        let variables = DeviceModel.report(base, view)
        guard !variables.isEmpty else { return HandlerResult(payload: status("EmptyResultSet")) }
        let pages = NotifyReport.request(requestId: requestId, variables: variables, generatedAtMillis: nowMillis)
        return HandlerResult(payload: status("Accepted"), actions: [.sendReport(requestId: requestId, report: pages)])
    }
}
