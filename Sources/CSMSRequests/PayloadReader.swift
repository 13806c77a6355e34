import JSONLines
import OCPPJ

// The request schemas are small and fixed, so each handler reads its payload through this one
// reader instead of a general schema engine: every field is checked for presence, type and range
// as the official schema states it, and the first violation becomes the CALLERROR.
//
// Which OCPP-J code answers which violation (Part 4, "Valid Error Codes"):
// - a payload that is not an object: FormatViolation, as the RPC layer answers it;
// - not an object, a string where a number belongs, a fraction where an integer belongs:
//   TypeConstraintViolation;
// - a required field missing, a field the schema does not define (`additionalProperties` is false
//   everywhere), too few or too many array items, a key given twice: OccurrenceConstraintViolation;
// - a value of the right type outside its range: too long, below the minimum, not one of the
//   enumeration's values: PropertyConstraintViolation.
// Integers are JSON integers; a number written with a fraction or exponent (`1.0`, `1e0`) is a
// type violation even when its value is whole: no CSMS has a reason to send one, and reading it
// would need decimal arithmetic this module otherwise does without.

/// The violation a payload reader found, as the CALLERROR that answers it.
func violation(_ code: RPCErrorCode, _ path: String, _ what: String) -> RPCError {
    RPCError(code, "\(path): \(what)")
}

/// One JSON object of a request payload, read field by field against its schema.
struct PayloadObject {
    /// Where this object sits in the payload, for error descriptions (`evse`, `getVariableData[2].component`).
    let path: String
    let fields: [(String, JSON)]

    /// Checks that `json` is an object whose keys are all in `allowed` (plus `customData`, which
    /// every OCPP 2.1 object may carry), each at most once.
    init(_ json: JSON, path: String, allowed: Set<String>) throws(RPCError) {
        guard case .object(let fields) = json else {
            // A payload that is not an object at all is what the RPC layer calls a FormatViolation.
            if path.isEmpty { throw violation(.formatViolation, "payload", "not an object") }
            throw violation(.typeConstraintViolation, path, "expected an object")
        }
        self.path = path
        self.fields = fields
        var seen = Set<String>()
        for (key, value) in fields {
            guard seen.insert(key).inserted else { throw violation(.occurrenceConstraintViolation, name(key), "given more than once") }
            if key == "customData" {
                try PayloadObject.customData(value, path: name(key))
            } else if !allowed.contains(key) {
                throw violation(.occurrenceConstraintViolation, name(key), "not a field of this message")
            }
        }
    }

    /// `customData` is an object with a `vendorId` (string, at most 255) and anything else the vendor likes.
    static func customData(_ json: JSON, path: String) throws(RPCError) {
        guard case .object(let fields) = json else { throw violation(.typeConstraintViolation, path, "expected an object") }
        guard let vendor = fields.first(where: { $0.0 == "vendorId" })?.1 else {
            throw violation(.occurrenceConstraintViolation, path + ".vendorId", "required")
        }
        guard case .string(let s) = vendor else { throw violation(.typeConstraintViolation, path + ".vendorId", "expected a string") }
        guard s.unicodeScalars.count <= 255 else { throw violation(.propertyConstraintViolation, path + ".vendorId", "longer than 255 characters") }
    }

    func name(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    subscript(key: String) -> JSON? { fields.first { $0.0 == key }?.1 }

    func required(_ key: String) throws(RPCError) -> JSON {
        guard let v = self[key] else { throw violation(.occurrenceConstraintViolation, name(key), "required") }
        return v
    }

    /// An optional string of at most `maxLength` characters (JSON Schema counts code points).
    func string(_ key: String, maxLength: Int) throws(RPCError) -> String? {
        guard let v = self[key] else { return nil }
        guard case .string(let s) = v else { throw violation(.typeConstraintViolation, name(key), "expected a string") }
        guard s.unicodeScalars.count <= maxLength else {
            throw violation(.propertyConstraintViolation, name(key), "longer than \(maxLength) characters")
        }
        return s
    }

    func requiredString(_ key: String, maxLength: Int) throws(RPCError) -> String {
        _ = try required(key)
        return try string(key, maxLength: maxLength)!
    }

    /// An optional integer, at least `minimum` when one is given.
    func int(_ key: String, minimum: Int64? = nil) throws(RPCError) -> Int64? {
        guard let v = self[key] else { return nil }
        guard case .int(let n) = v else { throw violation(.typeConstraintViolation, name(key), "expected an integer") }
        if let minimum, n < minimum { throw violation(.propertyConstraintViolation, name(key), "below \(minimum)") }
        return n
    }

    func requiredInt(_ key: String, minimum: Int64? = nil) throws(RPCError) -> Int64 {
        _ = try required(key)
        return try int(key, minimum: minimum)!
    }

    /// An optional value of a string enumeration.
    func enumeration<E: RawRepresentable>(_ key: String, _ type: E.Type) throws(RPCError) -> E? where E.RawValue == String {
        guard let s = try string(key, maxLength: Int.max) else { return nil }
        guard let e = E(rawValue: s) else { throw violation(.propertyConstraintViolation, name(key), "not a value of its enumeration") }
        return e
    }

    func requiredEnumeration<E: RawRepresentable>(_ key: String, _ type: E.Type) throws(RPCError) -> E where E.RawValue == String {
        _ = try required(key)
        return try enumeration(key, type)!
    }

    /// An optional nested object with the keys `allowed`.
    func object(_ key: String, allowed: Set<String>) throws(RPCError) -> PayloadObject? {
        guard let v = self[key] else { return nil }
        return try PayloadObject(v, path: name(key), allowed: allowed)
    }

    func requiredObject(_ key: String, allowed: Set<String>) throws(RPCError) -> PayloadObject {
        _ = try required(key)
        return try object(key, allowed: allowed)!
    }

    /// A required array with `minItems`...`maxItems` elements.
    func requiredArray(_ key: String, minItems: Int, maxItems: Int) throws(RPCError) -> [JSON] {
        guard case .array(let items) = try required(key) else { throw violation(.typeConstraintViolation, name(key), "expected an array") }
        guard items.count >= minItems else { throw violation(.occurrenceConstraintViolation, name(key), "fewer than \(minItems) items") }
        guard items.count <= maxItems else { throw violation(.occurrenceConstraintViolation, name(key), "more than \(maxItems) items") }
        return items
    }
}

/// The schemas' `EVSEType`: `{id ≥ 0, connectorId ≥ 0}`.
struct EVSERef: Equatable {
    var id: Int64
    var connectorId: Int64?

    static func read(_ o: PayloadObject, _ key: String) throws(RPCError) -> EVSERef? {
        guard let e = try o.object(key, allowed: ["id", "connectorId"]) else { return nil }
        return EVSERef(id: try e.requiredInt("id", minimum: 0), connectorId: try e.int("connectorId", minimum: 0))
    }
}
