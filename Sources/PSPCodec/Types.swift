/// PSP terminal state as reported by Get Status Response (codes are single bits but one state at a time).
public enum TerminalState: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case offline = 0x01, online = 0x02, disabled = 0x04, enabled = 0x08, waitCard = 0x10, waitAuth = 0x20

    public var description: String {
        switch self {
        case .offline: return "OFFLINE"
        case .online: return "ONLINE"
        case .disabled: return "DISABLED"
        case .enabled: return "ENABLED"
        case .waitCard: return "WAIT_CARD"
        case .waitAuth: return "WAIT_AUTH"
        }
    }
}

/// Protocol (0x13) option bits.
public struct ProtocolOptions: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// Terminal sends Transaction Event (0x38) during the payment flow.
    public static let transactionEvents = ProtocolOptions(rawValue: 0x01)
    /// Session Approved carries the authorisation DOLs.
    public static let authorizationDOL = ProtocolOptions(rawValue: 0x02)
    /// Extended block format (4-byte length) from the Protocol response on. Apollo only.
    public static let extendedFormat = ProtocolOptions(rawValue: 0x04)
    /// Second Result byte and Session Declined reason byte. Apollo only.
    public static let detailedResults = ProtocolOptions(rawValue: 0x08)
    /// DOL data on declines. Apollo only.
    public static let declinedDOL = ProtocolOptions(rawValue: 0x10)
}

/// What the terminal does when an approved session outlives the Setup timeout.
public enum SessionTimeoutAction: UInt8, Sendable {
    /// Commit the full pre-authorised amount: never right for EV charging.
    case commitFull = 0x00
    /// Void the reservation.
    case void = 0x01
}

/// Result (0x00) reason codes, sent when detailed result codes are on.
public enum ResultReason {
    public static func name(_ code: UInt8) -> String {
        switch code {
        case 0x02: return "unknown command"
        case 0x03: return "malformed message"
        case 0x04: return "bad checksum"
        case 0x05: return "not allowed in current state"
        case 0x06: return "unknown card"
        case 0x07: return "transaction cancelled"
        case 0x08: return "incorrect UI screen"
        case 0x09: return "internal error"
        case 0x0A: return "no transaction running"
        case 0x0B: return "duplicate session ID"
        case 0x0C: return "session ID not found"
        case 0x0D: return "service not supported"
        case 0x0E: return "payment application in invalid state"
        case 0x0F: return "overflow"
        case 0x10: return "access denied"
        case 0x11: return "not ready"
        default: return "code \(code)"
        }
    }
    public static let unknownCommand: UInt8 = 0x02
    public static let malformed: UInt8 = 0x03
    public static let badChecksum: UInt8 = 0x04
    public static let wrongState: UInt8 = 0x05
    public static let sessionNotFound: UInt8 = 0x0C
    public static let duplicateSession: UInt8 = 0x0B
    /// "Payment application in an invalid state for the request": what an Apollo in its security
    /// violation mode is taken to answer to Setup and Enable ([INFERRED], `PSPLinkConfig.securityRefusals`).
    public static let paymentApplicationInvalidState: UInt8 = 0x0E
}

/// Session Declined reason codes (detailed codes on).
public enum DeclineReason {
    public static func name(_ code: UInt8) -> String {
        switch code {
        case 0x00: return "not set"
        case 0x01: return "card read failure"
        case 0x02: return "card read timeout"
        case 0x03: return "host error"
        case 0x04: return "invalid merchant"
        case 0x05: return "refer to card issuer"
        case 0x06: return "invalid account"
        case 0x07: return "PIN failure"
        case 0x08: return "host timeout"
        case 0x09: return "insufficient funds"
        case 0x0A: return "withdrawal limit exceeded"
        case 0x0B: return "withdrawal frequency exceeded"
        case 0x0C: return "transaction database not reachable"
        default: return "other (\(code))"
        }
    }
}

/// The generic Result (0x00 when a Result is expected).
public struct PSPResult: Equatable, Sendable {
    public var ok: Bool
    /// Detailed reason (Apollo, Protocol option 0x08), when present.
    public var reason: UInt8?

    public init(ok: Bool, reason: UInt8? = nil) { self.ok = ok; self.reason = reason }
    public static let ok = PSPResult(ok: true)
    public static func notOK(_ reason: UInt8? = nil) -> PSPResult { PSPResult(ok: false, reason: reason) }
}

/// Get Status Response.
public struct TerminalStatus: Equatable, Sendable {
    /// Known state, or nil with `rawState` for a code outside the table.
    public var state: TerminalState?
    public var rawState: UInt8
    public var transactionRunning: Bool

    public init(rawState: UInt8, transactionRunning: Bool) {
        self.rawState = rawState; self.state = TerminalState(rawValue: rawState)
        self.transactionRunning = transactionRunning
    }
    public init(_ state: TerminalState, transactionRunning: Bool = false) {
        self.init(rawState: state.rawValue, transactionRunning: transactionRunning)
    }
}

/// Request Ids Response: the terminal's inventory (serials for the technicians' inventory).
public struct TerminalIdentity: Equatable, Sendable {
    public enum Layout: String, Sendable { case apollo, p6x }
    public var layout: Layout
    public var serialNumber: String
    /// Apollo: model ID. P6X: nil.
    public var model: String?
    /// Apollo: platform id/version/release. P6X: firmware name.
    public var firmware: String?
    /// Apollo: "name/version" per application.
    public var applications: [String]
    /// P6X: SIM serial (present when SIM status is 0x01).
    public var simSerial: String?
    /// P6X: SAM serials by slot (hex), for the slots reported present.
    public var samSerials: [String]
    /// P6X: MAC address, "aa:bb:cc:dd:ee:ff".
    public var macAddress: String?
    /// Fields the terminal sent with card data in them, masked by the decoder (`CardDataFilter`):
    /// nothing a terminal reports as its identity may carry a card number into a log or a status.
    public var redactedFields: [String] = []

    public init(layout: Layout, serialNumber: String, model: String? = nil, firmware: String? = nil,
                applications: [String] = [], simSerial: String? = nil, samSerials: [String] = [], macAddress: String? = nil) {
        self.layout = layout; self.serialNumber = serialNumber; self.model = model; self.firmware = firmware
        self.applications = applications; self.simSerial = simSerial; self.samSerials = samSerials; self.macAddress = macAddress
    }
}

/// Update Session Result (0x43, Apollo).
public struct UpdateSessionResult: Equatable, Sendable {
    /// 0 approved, 1 partially approved, 2 declined.
    public var outcome: UInt8
    public var sessionID: UInt32
    public var authorisedTotal: UInt32
    public var delta: UInt32
    public var declineReason: UInt8?

    public init(outcome: UInt8, sessionID: UInt32, authorisedTotal: UInt32, delta: UInt32, declineReason: UInt8?) {
        self.outcome = outcome; self.sessionID = sessionID; self.authorisedTotal = authorisedTotal
        self.delta = delta; self.declineReason = declineReason
    }
}

/// Start Session (0x34) fields. Fields are positional: an optional field is sent only with all
/// earlier ones, so the encoder fills gaps with the documented "none" values.
public struct StartSession: Equatable, Sendable {
    /// Amount to reserve, minor units.
    public var amount: UInt32
    public var reference: UInt32?
    /// DOL tags to return; empty = the terminal's defaults.
    public var dolTags: [UInt32]
    // Apollo-only trailing fields.
    public var paymentMethods: UInt8?
    public var logo: String?
    public var hideAmount: Bool?
    public var qrURL: String?
    public var referenceString: String?
    public var secondReference: String?

    public init(amount: UInt32, reference: UInt32? = nil, dolTags: [UInt32] = [], paymentMethods: UInt8? = nil,
                logo: String? = nil, hideAmount: Bool? = nil, qrURL: String? = nil,
                referenceString: String? = nil, secondReference: String? = nil) {
        self.amount = amount; self.reference = reference; self.dolTags = dolTags
        self.paymentMethods = paymentMethods; self.logo = logo; self.hideAmount = hideAmount
        self.qrURL = qrURL; self.referenceString = referenceString; self.secondReference = secondReference
    }
}

/// Read Card (Apollo): read a card without paying, e.g. to identify a driver for tap-to-stop.
public struct ReadCard: Equatable, Sendable {
    public var reference: UInt32
    public var dolTags: [UInt32]
    public var paymentMethods: UInt8?
    public var logo: String?
    public var qrURL: String?
    public var referenceString: String?
    public var secondReference: String?
    public var presentCardMessage: String?

    public init(reference: UInt32, dolTags: [UInt32] = [], paymentMethods: UInt8? = nil, logo: String? = nil,
                qrURL: String? = nil, referenceString: String? = nil, secondReference: String? = nil,
                presentCardMessage: String? = nil) {
        self.reference = reference; self.dolTags = dolTags; self.paymentMethods = paymentMethods; self.logo = logo
        self.qrURL = qrURL; self.referenceString = referenceString; self.secondReference = secondReference
        self.presentCardMessage = presentCardMessage
    }
}

/// One key/value pair of a UI Request.
public struct UIField: Equatable, Sendable {
    public var key: String
    public var value: String
    public init(_ key: String, _ value: String) { self.key = key; self.value = value }
}
