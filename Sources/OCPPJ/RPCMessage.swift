import JSONLines

/// The limits of the OCPP-J RPC framing, named so the codec, the core and the tests agree.
public enum RPCLimits {
    /// OCPP-J: a message id is a string of at most 36 characters, to allow for GUIDs.
    public static let maxMessageIDLength = 36
    /// Longer than any OCPP 2.1 action name (the longest, `PublishFirmwareStatusNotification`, has 33).
    public static let maxActionLength = 64
    /// A whole text message. The largest OCPP 2.1 request field is a certificate chain of 100 000
    /// characters (CertificateSigned), so 256 KiB leaves room without letting a peer make us parse
    /// megabytes; larger messages are refused before parsing.
    public static let maxMessageBytes = 256 << 10
    /// OCPP-J: errorDescription is at most 255 characters; ours are cut to it.
    public static let maxErrorDescriptionLength = 255
    /// errorDetails we send are at most this many bytes of JSON text; larger ones go out as `{}`
    /// so one diagnostic cannot make an answer unbounded.
    public static let maxErrorDetailsBytes = 1024
}

/// The OCPP-J 2.x RPC framework error codes (Part 4, "Valid Error Codes").
public enum RPCErrorCode: String, Sendable, CaseIterable {
    /// Payload for the action is syntactically incorrect (1.6 and 2.0 spelled it FormationViolation).
    case formatViolation = "FormatViolation"
    /// Any other error not covered by a more specific code; also what an unknown code is read as.
    case genericError = "GenericError"
    /// The receiver failed internally while processing the action.
    case internalError = "InternalError"
    /// A message type number the receiver does not implement.
    case messageTypeNotSupported = "MessageTypeNotSupported"
    /// The action is not known to the receiver.
    case notImplemented = "NotImplemented"
    /// The action is known but not supported by the receiver.
    case notSupported = "NotSupported"
    /// A field occurs too often or too rarely.
    case occurrenceConstraintViolation = "OccurrenceConstraintViolation"
    /// A field has an invalid value.
    case propertyConstraintViolation = "PropertyConstraintViolation"
    /// The message does not have the structure of its message type (elements missing or extra).
    case protocolError = "ProtocolError"
    /// Not a valid RPC message at all, e.g. its message id cannot be read.
    case rpcFrameworkError = "RpcFrameworkError"
    /// A security issue prevented processing.
    case securityError = "SecurityError"
    /// A field has the wrong data type.
    case typeConstraintViolation = "TypeConstraintViolation"

    /// Reads a code as a peer sends it: the 2.x names, plus OCPP 1.6's spellings
    /// (FormationViolation, OccurenceConstraintViolation) that older backends still send.
    public static func read(_ s: String) -> RPCErrorCode? {
        switch s {
        case "FormationViolation": return .formatViolation
        case "OccurenceConstraintViolation": return .occurrenceConstraintViolation
        default: return RPCErrorCode(rawValue: s)
        }
    }
}

/// An error as a CALLERROR or CALLRESULTERROR carries it; an `Error` so that answers can be
/// `Result`s and payload readers can throw it.
public struct RPCError: Error, Equatable, Sendable {
    public var code: RPCErrorCode
    public var description: String
    /// Always an object (`{}` when there is nothing to add).
    public var details: JSON

    public init(_ code: RPCErrorCode, _ description: String = "", details: JSON = .object([])) {
        self.code = code; self.description = description; self.details = details
    }
}

/// The OCPP-J message types (the first element of every message). CALLRESULTERROR and SEND are
/// new in OCPP 2.1.
public enum RPCMessageType: Int64, Sendable, CaseIterable {
    case call = 2
    case callResult = 3
    case callError = 4
    /// The answer to a CALLRESULT its receiver could not process.
    case callResultError = 5
    /// An unconfirmed message: never answered, not even with an error.
    case send = 6
}

/// One OCPP-J RPC message.
public enum RPCMessage: Equatable, Sendable {
    /// `[2, id, action, payload]`
    case call(id: String, action: String, payload: JSON)
    /// `[3, id, payload]`
    case callResult(id: String, payload: JSON)
    /// `[4, id, errorCode, errorDescription, errorDetails]`
    case callError(id: String, RPCError)
    /// `[5, id, errorCode, errorDescription, errorDetails]` (OCPP 2.1)
    case callResultError(id: String, RPCError)
    /// `[6, id, action, payload]` (OCPP 2.1)
    case send(id: String, action: String, payload: JSON)

    /// The message id.
    public var id: String {
        switch self {
        case .call(let id, _, _), .callResult(let id, _), .callError(let id, _), .callResultError(let id, _), .send(let id, _, _): return id
        }
    }

    /// The message as one JSON text. Error descriptions are cut to 255 characters and details
    /// larger than `RPCLimits.maxErrorDetailsBytes` are replaced by `{}`.
    public var text: String {
        switch self {
        case let .call(id, action, payload):
            return JSON.array([.int(RPCMessageType.call.rawValue), .string(id), .string(action), payload]).text
        case let .callResult(id, payload):
            return JSON.array([.int(RPCMessageType.callResult.rawValue), .string(id), payload]).text
        case let .callError(id, e):
            return RPCMessage.errorText(.callError, id, e)
        case let .callResultError(id, e):
            return RPCMessage.errorText(.callResultError, id, e)
        case let .send(id, action, payload):
            return JSON.array([.int(RPCMessageType.send.rawValue), .string(id), .string(action), payload]).text
        }
    }

    static func errorText(_ type: RPCMessageType, _ id: String, _ e: RPCError) -> String {
        let description = String(String.UnicodeScalarView(e.description.unicodeScalars.prefix(RPCLimits.maxErrorDescriptionLength)))
        var details = e.details
        if case .object = details, details.text.utf8.count <= RPCLimits.maxErrorDetailsBytes {} else { details = .object([]) }
        return JSON.array([.int(type.rawValue), .string(id), .string(e.code.rawValue), .string(description), details]).text
    }

    /// Whether `s` has the form of an OCPP action name: an ASCII letter, then letters and digits.
    public static func isActionName(_ s: String) -> Bool {
        let u = Array(s.utf8)
        guard !u.isEmpty, u.count <= RPCLimits.maxActionLength else { return false }
        func letter(_ b: UInt8) -> Bool { (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) }
        return letter(u[0]) && u.allSatisfy { letter($0) || ($0 >= 0x30 && $0 <= 0x39) }
    }

    /// Whether `s` is a usable message id: 1 to 36 characters.
    public static func isMessageID(_ s: String) -> Bool {
        let n = s.unicodeScalars.count
        return n >= 1 && n <= RPCLimits.maxMessageIDLength
    }

    /// Parses one text message with OCPP-J's formation rules.
    public static func parse(_ bytes: [UInt8]) throws(RPCFormationError) -> RPCMessage {
        guard bytes.count <= RPCLimits.maxMessageBytes else {
            throw RPCFormationError(.tooLarge(bytes.count), type: nil, id: nil)
        }
        let json: JSON
        do { json = try JSON.parse(bytes) } catch { throw RPCFormationError(.notJSON(error.description), type: nil, id: nil) }
        guard case .array(let a) = json else { throw RPCFormationError(.notAnArray, type: nil, id: nil) }
        // The id is read first so that every later failure can be answered when it is readable.
        var id: String?
        if a.count >= 2, case .string(let s) = a[1], isMessageID(s) { id = s }
        guard let first = a.first else { throw RPCFormationError(.emptyArray, type: nil, id: nil) }
        guard case .int(let typeNumber) = first else { throw RPCFormationError(.typeNotAnInteger, type: nil, id: id) }
        guard let type = RPCMessageType(rawValue: typeNumber) else {
            throw RPCFormationError(.unknownType(typeNumber), type: nil, id: id)
        }
        guard a.count >= 2, case .string(let rawID) = a[1] else { throw RPCFormationError(.idNotAString, type: type, id: nil) }
        guard let id else { throw RPCFormationError(.idLength(rawID.unicodeScalars.count), type: type, id: nil) }
        let expected: Int
        switch type {
        case .call, .send: expected = 4
        case .callResult: expected = 3
        case .callError, .callResultError: expected = 5
        }
        guard a.count == expected else { throw RPCFormationError(.elementCount(a.count, expected: expected), type: type, id: id) }
        switch type {
        case .call, .send:
            guard case .string(let action) = a[2] else { throw RPCFormationError(.actionNotAString, type: type, id: id) }
            guard isActionName(action) else { throw RPCFormationError(.actionFormat, type: type, id: id) }
            guard case .object = a[3] else { throw RPCFormationError(.payloadNotAnObject, type: type, id: id) }
            return type == .call ? .call(id: id, action: action, payload: a[3]) : .send(id: id, action: action, payload: a[3])
        case .callResult:
            guard case .object = a[2] else { throw RPCFormationError(.payloadNotAnObject, type: type, id: id) }
            return .callResult(id: id, payload: a[2])
        case .callError, .callResultError:
            guard case .string(let codeText) = a[2] else { throw RPCFormationError(.errorCodeNotAString, type: type, id: id) }
            guard case .string(let description) = a[3] else { throw RPCFormationError(.descriptionNotAString, type: type, id: id) }
            guard case .object = a[4] else { throw RPCFormationError(.detailsNotAnObject, type: type, id: id) }
            // An unknown code still answers our call: it is read as the catch-all GenericError,
            // with the peer's own code kept in front of its description.
            let code = RPCErrorCode.read(codeText)
            let e = RPCError(code ?? .genericError, code == nil ? "\(codeText): \(description)" : description, details: a[4])
            return type == .callError ? .callError(id: id, e) : .callResultError(id: id, e)
        }
    }

    /// Parses a message given as a string.
    public static func parse(_ text: String) throws(RPCFormationError) -> RPCMessage { try parse(Array(text.utf8)) }
}

/// Why a text message is not a well-formed OCPP-J message, and how (if at all) to answer it.
public struct RPCFormationError: Error, Equatable, Sendable, CustomStringConvertible {
    /// What is wrong.
    public enum Reason: Equatable, Sendable {
        /// More than `RPCLimits.maxMessageBytes`: refused unparsed.
        case tooLarge(Int)
        /// Not a JSON text (the parser's reason).
        case notJSON(String)
        /// JSON, but not an array.
        case notAnArray
        /// `[]`.
        case emptyArray
        /// The first element is not an integer.
        case typeNotAnInteger
        /// A message type number OCPP 2.1 does not define.
        case unknownType(Int64)
        /// The second element is missing or not a string.
        case idNotAString
        /// The id is empty or longer than 36 characters (its length).
        case idLength(Int)
        /// The wrong number of elements for the type.
        case elementCount(Int, expected: Int)
        /// The action is not a string.
        case actionNotAString
        /// The action is not a letter followed by letters and digits, or is too long.
        case actionFormat
        /// The payload (or a CALLRESULT's payload) is not an object.
        case payloadNotAnObject
        /// A CALLERROR's code is not a string.
        case errorCodeNotAString
        /// A CALLERROR's description is not a string.
        case descriptionNotAString
        /// A CALLERROR's details are not an object.
        case detailsNotAnObject
    }

    public var reason: Reason
    /// The message type, when it was read.
    public var type: RPCMessageType?
    /// The message id, when it was readable and valid.
    public var id: String?

    public init(_ reason: Reason, type: RPCMessageType?, id: String?) { self.reason = reason; self.type = type; self.id = id }

    /// The OCPP-J error code this failure is answered with.
    public var code: RPCErrorCode {
        switch reason {
        case .tooLarge, .notJSON, .notAnArray, .emptyArray, .typeNotAnInteger, .idNotAString, .idLength: return .rpcFrameworkError
        case .unknownType: return .messageTypeNotSupported
        case .elementCount: return .protocolError
        case .actionNotAString, .actionFormat: return .rpcFrameworkError
        case .payloadNotAnObject: return .formatViolation
        case .errorCodeNotAString, .descriptionNotAString, .detailsNotAnObject: return .typeConstraintViolation
        }
    }

    /// The answer to send, or nil when there is none: without a readable id nothing can be
    /// correlated; errors (4, 5) and SENDs (6) are never answered, so two peers cannot trade
    /// errors forever; a malformed CALLRESULT gets a CALLRESULTERROR (OCPP 2.1), everything
    /// else (a CALL, an unknown type) a CALLERROR.
    public var answer: RPCMessage? {
        guard let id else { return nil }
        let e = RPCError(code, description)
        switch type {
        case .callError?, .callResultError?, .send?: return nil
        case .callResult?: return .callResultError(id: id, e)
        case .call?, nil: return .callError(id: id, e)
        }
    }

    public var description: String {
        switch reason {
        case .tooLarge(let n): return "message of \(n) bytes exceeds \(RPCLimits.maxMessageBytes)"
        case .notJSON(let why): return "not JSON: \(why)"
        case .notAnArray: return "not a JSON array"
        case .emptyArray: return "empty array"
        case .typeNotAnInteger: return "message type is not an integer"
        case .unknownType(let n): return "message type \(n) is not supported"
        case .idNotAString: return "message id missing or not a string"
        case .idLength(let n): return "message id of \(n) characters (1 to \(RPCLimits.maxMessageIDLength) allowed)"
        case let .elementCount(n, expected): return "\(n) elements, \(expected) expected"
        case .actionNotAString: return "action is not a string"
        case .actionFormat: return "action is not an action name"
        case .payloadNotAnObject: return "payload is not an object"
        case .errorCodeNotAString: return "errorCode is not a string"
        case .descriptionNotAString: return "errorDescription is not a string"
        case .detailsNotAnObject: return "errorDetails is not an object"
        }
    }
}
