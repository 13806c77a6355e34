import CSMSRequests
import JSONLines
import OCPPJ
import Testing

/// GetVariables, SetVariables and GetBaseReport over the station's device model.
@Suite struct DeviceModelRequests {
    static func get(_ items: [(String, String, String?)], _ view: StationView = sampleView()) -> [JSON] {
        let data = items.map { c, v, attr in
            #"{"component":{"name":"\#(c)"},"variable":{"name":"\#(v)"}\#(attr.map { #","attributeType":"\#($0)""# } ?? "")}"#
        }
        return answer("GetVariables", #"{"getVariableData":[\#(data.joined(separator: ","))]}"#, view)
            .payload?["getVariableResult"]?.arrayValue ?? []
    }

    @Test func getVariablesAnswersEachItemFromTheView() {
        let results = Self.get([
            ("ChargingStation", "Model", nil), ("ChargingStation", "VendorName", nil), ("ChargingStation", "SerialNumber", nil),
            ("ChargingStation", "FirmwareVersion", nil), ("OCPPCommCtrlr", "HeartbeatInterval", "Actual"),
            ("AuthCtrlr", "OfflineTxForUnknownIdEnabled", nil),
            ("PaymentCtrlr", "Model", nil), ("PaymentCtrlr", "SerialNumber", nil), ("PaymentCtrlr", "FirmwareVersion", nil),
            ("PaymentCtrlr", "ICCID", nil), ("PaymentCtrlr", "ProcessorOption", nil), ("PaymentCtrlr", "TransferNumber", nil),
            ("PaymentCtrlr", "VendorName", nil),
        ])
        let values = results.map { $0["attributeValue"]?.stringValue }
        #expect(values == ["PB-2", "Paybridge", "CS-0042", "1.4.0", "300", "false",
                           "P68", "P6800123", "3.2.1", "8931440000000000012", "platform", "TT-77", "Payter"])
        #expect(results.allSatisfy { $0["attributeStatus"] == .string("Accepted") })
        // The request's component and variable come back as given; attributeType only when asked.
        #expect(results[0]["component"] == .object([("name", .string("ChargingStation"))]))
        #expect(results[0]["attributeType"] == nil)
        #expect(results[4]["attributeType"] == .string("Actual"))
    }

    @Test func namesAreCaseInsensitiveAndUnknownsAreNamed() {
        let results = Self.get([("chargingstation", "MODEL", nil), ("Modem", "ICCID", nil), ("ChargingStation", "Colour", nil),
                                ("OCPPCommCtrlr", "HeartbeatInterval", "MaxSet")])
        #expect(results.map { $0["attributeStatus"]?.stringValue } == ["Accepted", "UnknownComponent", "UnknownVariable", "NotSupportedAttributeType"])
        #expect(results[0]["attributeValue"] == .string("PB-2"))
        #expect(results[1]["attributeValue"] == nil)
        let evse = answer("GetVariables", #"{"getVariableData":[{"component":{"name":"EVSE","evse":{"id":1}},"variable":{"name":"AvailabilityState"}},{"component":{"name":"EVSE","evse":{"id":2}},"variable":{"name":"AvailabilityState"}},{"component":{"name":"EVSE","evse":{"id":3}},"variable":{"name":"AvailabilityState"}},{"component":{"name":"ChargingStation","evse":{"id":1}},"variable":{"name":"Model"}},{"component":{"name":"DeviceDataCtrlr"},"variable":{"name":"ItemsPerMessage","instance":"getvariables"}},{"component":{"name":"DeviceDataCtrlr"},"variable":{"name":"ItemsPerMessage"}}]}"#)
            .payload?["getVariableResult"]?.arrayValue ?? []
        #expect(evse.map { $0["attributeStatus"]?.stringValue } == ["Accepted", "Accepted", "UnknownComponent", "UnknownComponent", "Accepted", "UnknownVariable"])
        // EVSE 1 charges; EVSE 2 holds reservation 7.
        #expect(evse[0]["attributeValue"] == .string("Occupied"))
        #expect(evse[1]["attributeValue"] == .string("Reserved"))
        #expect(evse[4]["attributeValue"] == .string(String(DeviceModelLimits.itemsPerGetVariables)))
    }

    @Test func unknownInventoryIsAnEmptyValueAndLongValuesAreCut() {
        var v = sampleView()
        v.terminal = .init(model: String(repeating: "m", count: 3000))
        let results = Self.get([("PaymentCtrlr", "ICCID", nil), ("PaymentCtrlr", "Model", nil)], v)
        #expect(results[0]["attributeStatus"] == .string("Accepted"))
        #expect(results[0]["attributeValue"] == .string(""))
        #expect(results[1]["attributeValue"]?.stringValue?.count == DeviceModelLimits.valueSize)
    }

    static func set(_ items: [(String, String, String)], _ view: StationView = sampleView()) -> (results: [JSON], actions: [StationAction]) {
        let data = items.map { c, v, value in #"{"component":{"name":"\#(c)"},"variable":{"name":"\#(v)"},"attributeValue":"\#(value)"}"# }
        let r = answer("SetVariables", #"{"setVariableData":[\#(data.joined(separator: ","))]}"#, view)
        return (r.payload?["setVariableResult"]?.arrayValue ?? [], r.actions ?? [])
    }

    @Test func setVariablesChangesOnlyWhatIsWritableAndValid() {
        let (results, actions) = Self.set([
            ("OCPPCommCtrlr", "HeartbeatInterval", "0060"),
            ("authctrlr", "offlinetxforunknownidenabled", "TRUE"),
            ("ChargingStation", "Model", "Hacked"),
            ("PaymentCtrlr", "ICCID", "89000"),
            ("OCPPCommCtrlr", "HeartbeatInterval", "86401"),
            ("OCPPCommCtrlr", "HeartbeatInterval", "-5"),
            ("OCPPCommCtrlr", "HeartbeatInterval", "99999999999999999999"),
            ("OCPPCommCtrlr", "HeartbeatInterval", "1m"),
            ("OCPPCommCtrlr", "HeartbeatInterval", ""),
            ("AuthCtrlr", "OfflineTxForUnknownIdEnabled", "yes"),
            ("Modem", "ICCID", "1"),
            ("OCPPCommCtrlr", "MessageTimeout", "30"),
        ])
        #expect(results.map { $0["attributeStatus"]?.stringValue } == [
            "Accepted", "Accepted", "Rejected", "Rejected", "Rejected", "Rejected", "Rejected", "Rejected", "Rejected", "Rejected",
            "UnknownComponent", "UnknownVariable",
        ])
        #expect(results.map { $0["attributeStatusInfo"]?["reasonCode"]?.stringValue } == [
            nil, nil, "ReadOnly", "ReadOnly", "ValueOutOfRange", "ValueOutOfRange", "ValueOutOfRange", "InvalidValue", "InvalidValue",
            "InvalidValue", nil, nil,
        ])
        // The device model's spelling and canonical values, in request order.
        #expect(actions == [.setVariable(component: "OCPPCommCtrlr", variable: "HeartbeatInterval", value: "60"),
                            .setVariable(component: "AuthCtrlr", variable: "OfflineTxForUnknownIdEnabled", value: "true")])
        let target = answer("SetVariables", #"{"setVariableData":[{"component":{"name":"OCPPCommCtrlr"},"variable":{"name":"HeartbeatInterval"},"attributeValue":"60","attributeType":"Target"}]}"#)
        #expect(target.payload?["setVariableResult"]?.arrayValue?.first?["attributeStatus"] == .string("NotSupportedAttributeType"))
        #expect(target.actions == [])
    }

    @Test func aMalformedItemRefusesTheWholeSetVariables() {
        let r = answer("SetVariables", #"{"setVariableData":[{"component":{"name":"OCPPCommCtrlr"},"variable":{"name":"HeartbeatInterval"},"attributeValue":"60"},{"component":{"name":"OCPPCommCtrlr"},"variable":{"name":"HeartbeatInterval"},"attributeValue":60}]}"#)
        #expect(r.errorCode == .typeConstraintViolation)
    }

    static func reportEntries(_ pages: [JSON]) -> [(String, Int64?, String, String?, String?)] {
        pages.flatMap { $0["reportData"]?.arrayValue ?? [] }.map {
            ($0["component"]?["name"]?.stringValue ?? "", { if case .int(let n)? = $0["component"]?["evse"]?["id"] { return n } else { return nil } }($0),
             $0["variable"]?["name"]?.stringValue ?? "", $0["variable"]?["instance"]?.stringValue,
             $0["variableAttribute"]?.arrayValue?.first?["value"]?.stringValue)
        }
    }

    @Test func getBaseReportIsAcceptedAndSentAsPagedNotifyReports() throws {
        let r = answer("GetBaseReport", #"{"requestId":42,"reportBase":"FullInventory"}"#, now: 1_796_000_000_123)
        #expect(r.status == "Accepted")
        guard case .sendReport(let requestId, let pages)? = r.actions?.first, r.actions?.count == 1 else {
            Issue.record("no report: \(String(describing: r.actions))"); return
        }
        #expect(requestId == 42)
        let model = DeviceModel.variables(sampleView())
        let size = DeviceModelLimits.reportPageSize
        #expect(pages.count == (model.count + size - 1) / size)
        for (i, page) in pages.enumerated() {
            #expect(page["requestId"] == .int(42))
            #expect(page["seqNo"] == .int(Int64(i)))
            #expect(page["tbc"] == .bool(i < pages.count - 1))
            #expect(page["generatedAt"] == .string("2026-11-30T00:53:20.123Z"))
            #expect((page["reportData"]?.arrayValue?.count ?? 0) <= size)
        }
        let entries = Self.reportEntries(pages)
        #expect(entries.count == model.count)
        #expect(entries.contains { $0.0 == "PaymentCtrlr" && $0.2 == "ICCID" && $0.4 == "8931440000000000012" })
        #expect(entries.contains { $0.0 == "EVSE" && $0.1 == 2 && $0.2 == "AvailabilityState" && $0.4 == "Reserved" })
        #expect(entries.contains { $0.0 == "DeviceDataCtrlr" && $0.3 == "SetVariables" })
    }

    @Test func reportBasesSelectTheirVariables() {
        func entries(_ base: String) -> [(String, Int64?, String, String?, String?)] {
            guard case .sendReport(_, let pages)? = answer("GetBaseReport", #"{"requestId":-3,"reportBase":"\#(base)"}"#).actions?.first else { return [] }
            return Self.reportEntries(pages)
        }
        let configuration = entries("ConfigurationInventory")
        #expect(configuration.map { "\($0.0).\($0.2)" } == ["OCPPCommCtrlr.HeartbeatInterval", "AuthCtrlr.OfflineTxForUnknownIdEnabled"])
        let summary = entries("SummaryInventory")
        #expect(!summary.isEmpty)
        #expect(summary.allSatisfy { ["Available", "AvailabilityState", "Enabled"].contains($0.2) })
        #expect(summary.contains { $0.0 == "EVSE" && $0.1 == 1 && $0.4 == "Occupied" })
    }

    @Test func notifyReportPagesAnyNumberOfVariables() {
        let model = DeviceModel.variables(sampleView())
        for count in [0, 1, 2, 5, model.count] {
            for size in [1, 2, 3, 100] {
                let pages = NotifyReport.request(requestId: 1, variables: Array(model.prefix(count)), generatedAtMillis: 0, pageSize: size)
                #expect(pages.count == max(1, (count + size - 1) / size), "\(count) by \(size)")
                #expect(Self.reportEntries(pages).map { "\($0.0)/\($0.2)/\($0.3 ?? "")/\($0.1 ?? 0)" }
                        == model.prefix(count).map { "\($0.component)/\($0.name)/\($0.instance ?? "")/\($0.evseId ?? 0)" })
                #expect(pages.last?["tbc"] == .bool(false))
                #expect(pages.dropLast().allSatisfy { $0["tbc"] == .bool(true) })
            }
        }
    }

    @Test func rfc3339FromMillis() {
        #expect(RFC3339.format(millis: 0) == "1970-01-01T00:00:00.000Z")
        #expect(RFC3339.format(millis: 951_782_400_000) == "2000-02-29T00:00:00.000Z")
        #expect(RFC3339.format(millis: 1_709_251_199_999) == "2024-02-29T23:59:59.999Z")
        #expect(RFC3339.format(millis: 4_102_444_800_000) == "2100-01-01T00:00:00.000Z")
        #expect(RFC3339.format(millis: -5) == "1970-01-01T00:00:00.000Z")
    }
}
