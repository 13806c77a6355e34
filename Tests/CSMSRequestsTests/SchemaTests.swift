import CSMSRequests
import Foundation
import JSONLines
import OCPPJ
import Testing
import Timebase

/// Valid requests of every handled action: the schema test's scenarios and the property test's seeds.
let validRequests: [(String, String)] = [
    ("GetTransactionStatus", #"{"transactionId":"tx-1"}"#),
    ("GetTransactionStatus", #"{"transactionId":"tx-0"}"#),
    ("GetTransactionStatus", "{}"),
    ("RequestStopTransaction", #"{"transactionId":"tx-1"}"#),
    ("RequestStopTransaction", #"{"transactionId":"tx-9","customData":{"vendorId":"acme","note":1}}"#),
    ("TriggerMessage", #"{"requestedMessage":"BootNotification"}"#),
    ("TriggerMessage", #"{"requestedMessage":"Heartbeat"}"#),
    ("TriggerMessage", #"{"requestedMessage":"StatusNotification","evse":{"id":1,"connectorId":1}}"#),
    ("TriggerMessage", #"{"requestedMessage":"StatusNotification","evse":{"id":4}}"#),
    ("TriggerMessage", #"{"requestedMessage":"TransactionEvent","evse":{"id":1}}"#),
    ("TriggerMessage", #"{"requestedMessage":"TransactionEvent","evse":{"id":2}}"#),
    ("TriggerMessage", #"{"requestedMessage":"MeterValues"}"#),
    ("TriggerMessage", #"{"requestedMessage":"CustomTrigger","customTrigger":"Diag"}"#),
    ("Reset", #"{"type":"OnIdle"}"#),
    ("Reset", #"{"type":"Immediate","evseId":0}"#),
    ("Reset", #"{"type":"ImmediateAndResume"}"#),
    ("Reset", #"{"type":"OnIdle","evseId":1}"#),
    ("Reset", #"{"type":"OnIdle","evseId":8}"#),
    ("ChangeAvailability", #"{"operationalStatus":"Inoperative","evse":{"id":2,"connectorId":1}}"#),
    ("ChangeAvailability", #"{"operationalStatus":"Inoperative","evse":{"id":1}}"#),
    ("ChangeAvailability", #"{"operationalStatus":"Operative"}"#),
    ("ChangeAvailability", #"{"operationalStatus":"Inoperative","evse":{"id":6}}"#),
    ("GetVariables", #"{"getVariableData":[{"component":{"name":"ChargingStation"},"variable":{"name":"Model"}},{"component":{"name":"EVSE","evse":{"id":1}},"variable":{"name":"AvailabilityState"},"attributeType":"Actual"},{"component":{"name":"DeviceDataCtrlr","instance":"x"},"variable":{"name":"ItemsPerMessage","instance":"GetVariables"}},{"component":{"name":"PaymentCtrlr"},"variable":{"name":"ICCID"},"attributeType":"MaxSet"},{"component":{"name":"Nope"},"variable":{"name":"Model"}}]}"#),
    ("SetVariables", #"{"setVariableData":[{"component":{"name":"OCPPCommCtrlr"},"variable":{"name":"HeartbeatInterval"},"attributeValue":"120"},{"component":{"name":"ChargingStation"},"variable":{"name":"Model"},"attributeValue":"X","attributeType":"Actual"},{"component":{"name":"AuthCtrlr"},"variable":{"name":"OfflineTxForUnknownIdEnabled"},"attributeValue":"maybe"},{"component":{"name":"OCPPCommCtrlr"},"variable":{"name":"HeartbeatInterval"},"attributeValue":"1","attributeType":"MinSet"}]}"#),
    ("GetBaseReport", #"{"requestId":5,"reportBase":"FullInventory"}"#),
    ("GetBaseReport", #"{"requestId":-1,"reportBase":"ConfigurationInventory"}"#),
    ("GetBaseReport", #"{"requestId":9223372036854775807,"reportBase":"SummaryInventory"}"#),
    ("UnlockConnector", #"{"evseId":2,"connectorId":1}"#),
    ("UnlockConnector", #"{"evseId":1,"connectorId":1}"#),
    ("UnlockConnector", #"{"evseId":0,"connectorId":0}"#),
    ("CancelReservation", #"{"reservationId":7}"#),
    ("CancelReservation", #"{"reservationId":0}"#),
]

/// The views the scenarios run against.
func scenarioViews() -> [StationView] {
    var fixed = idleView()
    fixed.unlockSupported = false
    fixed.bootAccepted = false
    fixed.terminal = .init()
    fixed.identity = .init(vendor: "V", model: "M")
    fixed.stationOperative = false
    return [sampleView(), idleView(), fixed]
}

/// Every answer, and every NotifyReport the station would send, against the official schemas.
@Suite struct CSMSRequestSchemas {
    /// The request, the answer and any report pages of one scenario, as (schema name, body).
    static func bodies(_ action: String, _ payload: JSON, _ result: Result<HandlerResult, RPCError>) -> [(String, JSON)] {
        guard case .success(let r) = result else { return [] }
        var out = [(action + "Response", r.payload)]
        for case .sendReport(_, let pages) in r.actions { out += pages.map { ("NotifyReport", $0) } }
        return out
    }

    @Test func everyAnswerAndReportValidates() throws {
        var bodies: [(String, JSON)] = []
        var reports = 0
        for view in scenarioViews() {
            for (action, text) in validRequests {
                let payload = parse(text)
                bodies.append((action + "Request", payload))
                let r = CSMSRequestHandler.handle(action: action, payload: payload, view: view, now: 1_796_000_000_000)
                #expect(r.errorCode == nil, "\(action) \(text): \(r)")
                let produced = Self.bodies(action, payload, r)
                reports += produced.filter { $0.0 == "NotifyReport" }.count
                bodies += produced
            }
        }
        #expect(reports >= 3 * 3)
        let (status, output, _) = try validateWithSchemas(bodies)
        #expect(status == 0, "\(output.joined(separator: "\n"))")
        #expect(output.last?.hasPrefix("validated \(bodies.count) bad 0") == true, "\(output.suffix(5))")
    }
}

/// Valid payloads mutated at random (fields removed, added, retyped, lengthened, out of range):
/// the handler never crashes; it refuses exactly the payloads the official schema refuses, with
/// a constraint-violation code, and everything it answers validates.
@Suite struct CSMSRequestProperties {
    enum Step: Equatable { case key(String), index(Int) }

    static func paths(_ json: JSON, _ prefix: [Step] = []) -> [[Step]] {
        var out = [prefix]
        switch json {
        case .object(let fields): for (k, v) in fields { out += paths(v, prefix + [.key(k)]) }
        case .array(let items): for (i, v) in items.enumerated() { out += paths(v, prefix + [.index(i)]) }
        default: break
        }
        return out
    }

    /// `json` with the node at `path` replaced (nil: removed).
    static func replacing(_ json: JSON, at path: ArraySlice<Step>, with new: JSON?) -> JSON {
        guard let step = path.first else { return new ?? json }
        switch (json, step) {
        case let (.object(fields), .key(k)):
            if path.count == 1, new == nil { return .object(fields.filter { $0.0 != k }) }
            return .object(fields.map { $0.0 == k ? ($0.0, replacing($0.1, at: path.dropFirst(), with: new)) : $0 })
        case let (.array(items), .index(i)):
            if path.count == 1, new == nil { var a = items; a.remove(at: i); return .array(a) }
            var a = items
            a[i] = replacing(a[i], at: path.dropFirst(), with: new)
            return .array(a)
        default: return json
        }
    }

    static func node(_ json: JSON, _ path: [Step]) -> JSON? {
        var j: JSON? = json
        for s in path {
            switch (j, s) {
            case let (.object(f)?, .key(k)): j = f.first { $0.0 == k }?.1
            case let (.array(a)?, .index(i)): j = i < a.count ? a[i] : nil
            default: return nil
            }
        }
        return j
    }

    static let words = ["Accepted", "OnIdle", "Immediate", "Operative", "Inoperative", "Heartbeat", "TransactionEvent", "FullInventory",
                        "heartbeat", "Actual", "Target", "id", "evse", "name", "", "tx-1", "ChargingStation", "HeartbeatInterval", "ÿ€😀"]

    static func randomValue(_ rng: inout SeededGenerator) -> JSON {
        switch rng.next() % 12 {
        case 0: return .null
        case 1: return .bool(rng.next() % 2 == 0)
        case 2: return .int(Int64(rng.next() % 10) - 2)
        case 3: return .int([Int64.max, Int64.min, 1 << 40, 2_147_483_648][Int(rng.next() % 4)])
        case 4: return .decimal(["1.5", "-0.25", "3e-1"][Int(rng.next() % 3)])
        case 5: return .string(words[Int(rng.next() % UInt64(words.count))])
        case 6: return .string(String(repeating: "a", count: [36, 37, 50, 51, 255, 256, 2500, 2501][Int(rng.next() % 8)]))
        case 7: return .array([])
        case 8: return .array([.int(1)])
        case 9: return .object([])
        case 10: return .object([("vendorId", .string("v"))])
        default: return .object([("id", .int(Int64(rng.next() % 4)))])
        }
    }

    static func mutate(_ json: JSON, _ rng: inout SeededGenerator) -> JSON {
        let all = paths(json)
        let path = all[Int(rng.next() % UInt64(all.count))]
        let target = node(json, path)
        switch rng.next() % 9 {
        case 7, 8:
            // A value of the same type: often still valid, so the accepting side is exercised too.
            switch target {
            case .int?: return replacing(json, at: path[...], with: .int(Int64(rng.next() % 10)))
            case .string?: return replacing(json, at: path[...], with: .string(words[Int(rng.next() % UInt64(words.count))]))
            case .object(var fields)? where !fields.contains(where: { $0.0 == "customData" }):
                fields.append(("customData", .object([("vendorId", .string("acme")), ("x", randomValue(&rng))])))
                return replacing(json, at: path[...], with: .object(fields))
            default: return json
            }
        case 0 where !path.isEmpty:
            return replacing(json, at: path[...], with: nil)
        case 1:
            // A field added to an object (an unknown one, or customData).
            guard case .object(var fields)? = target else { return replacing(json, at: path[...], with: randomValue(&rng)) }
            let key = ["extra", "customData", "id", "connectorId", "instance", "evse", "attributeType"][Int(rng.next() % 7)]
            guard !fields.contains(where: { $0.0 == key }) else { return json }
            fields.append((key, randomValue(&rng)))
            return replacing(json, at: path[...], with: .object(fields))
        case 2:
            // An array grown by copying one of its items, or emptied.
            guard case .array(let items)? = target, let first = items.first else { return replacing(json, at: path[...], with: randomValue(&rng)) }
            return replacing(json, at: path[...], with: rng.next() % 3 == 0 ? .array([]) : .array(items + [items[Int(rng.next() % UInt64(items.count))], first]))
        case 3:
            // An enumeration value in another case or another enumeration's value.
            guard case .string(let s)? = target else { return replacing(json, at: path[...], with: randomValue(&rng)) }
            return replacing(json, at: path[...], with: .string(rng.next() % 2 == 0 ? s.lowercased() : words[Int(rng.next() % UInt64(words.count))]))
        default:
            return replacing(json, at: path[...], with: randomValue(&rng))
        }
    }

    static let constraintCodes: Set<RPCErrorCode> = [.formatViolation, .typeConstraintViolation, .propertyConstraintViolation, .occurrenceConstraintViolation]

    @Test func mutatedPayloadsAreRefusedExactlyWhenTheSchemaRefusesThem() throws {
        let seed = UInt64(ProcessInfo.processInfo.environment["CSMS_SEED"] ?? "") ?? 0x15_C5_3A_11
        var rng = SeededGenerator(seed: seed)
        let views = scenarioViews()
        let cases = 1500
        var requests: [(String, JSON)] = []
        var outcomes: [Result<HandlerResult, RPCError>] = []
        var answers: [(String, JSON)] = []
        for _ in 0..<cases {
            let (action, text) = validRequests[Int(rng.next() % UInt64(validRequests.count))]
            var payload = parse(text)
            let mutations = [1, 1, 1, 2, 2, 3][Int(rng.next() % 6)]
            for _ in 0..<mutations { payload = Self.mutate(payload, &rng) }
            let view = views[Int(rng.next() % UInt64(views.count))]
            let r = CSMSRequestHandler.handle(action: action, payload: payload, view: view, now: Int64(rng.next() % 4_000_000_000_000))
            if case .failure(let e) = r, !Self.constraintCodes.contains(e.code) {
                Issue.record("seed \(seed): \(action) \(payload.text) → \(e.code) \(e.description)")
            }
            requests.append((action + "Request", payload))
            outcomes.append(r)
            answers += CSMSRequestSchemas.bodies(action, payload, r)
        }
        let (_, requestOutput, invalidRequests) = try validateWithSchemas(requests)
        #expect(requestOutput.last?.hasPrefix("validated \(cases) ") == true, "\(requestOutput.suffix(3))")
        var refused = 0
        for (i, r) in outcomes.enumerated() {
            let schemaRefuses = invalidRequests.contains(i)
            switch r {
            case .success where schemaRefuses:
                Issue.record("seed \(seed): accepted what the schema refuses: \(requests[i].0) \(requests[i].1.text)")
            case .failure(let e) where !schemaRefuses:
                Issue.record("seed \(seed): refused a valid request: \(requests[i].0) \(requests[i].1.text) → \(e.code) \(e.description)")
            case .failure: refused += 1
            default: break
            }
        }
        // The mutations reach both sides of the line.
        #expect(refused > cases / 4, "seed \(seed)")
        #expect(refused < cases * 9 / 10, "seed \(seed)")
        let (status, output, _) = try validateWithSchemas(answers)
        #expect(status == 0, "seed \(seed): \(output.suffix(10).joined(separator: "\n"))")
    }
}
