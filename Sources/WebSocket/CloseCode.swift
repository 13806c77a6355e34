/// A close status code (RFC 6455 section 7.4).
public struct WebSocketCloseCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public init(_ rawValue: UInt16) { self.rawValue = rawValue }

    /// 1000: the purpose of the connection was fulfilled.
    public static let normal = WebSocketCloseCode(1000)
    /// 1001: the endpoint is going away (shutdown, restart).
    public static let goingAway = WebSocketCloseCode(1001)
    /// 1002: the peer broke the protocol.
    public static let protocolError = WebSocketCloseCode(1002)
    /// 1003: a data type the endpoint cannot accept.
    public static let unsupportedData = WebSocketCloseCode(1003)
    /// 1005: reported locally when the peer's close frame had no code. Never sent.
    public static let noStatusReceived = WebSocketCloseCode(1005)
    /// 1006: reported locally when the connection ended without a close frame. Never sent.
    public static let abnormalClosure = WebSocketCloseCode(1006)
    /// 1007: a text message or close reason that is not UTF-8.
    public static let invalidPayload = WebSocketCloseCode(1007)
    /// 1008: a message that violates the endpoint's policy.
    public static let policyViolation = WebSocketCloseCode(1008)
    /// 1009: a frame or message too big to process.
    public static let messageTooBig = WebSocketCloseCode(1009)
    /// 1010: the client expected an extension the server did not negotiate.
    public static let mandatoryExtension = WebSocketCloseCode(1010)
    /// 1011: the server hit an unexpected condition.
    public static let internalError = WebSocketCloseCode(1011)
    /// 1015: reported locally for a failed TLS handshake. Never sent.
    public static let tlsHandshake = WebSocketCloseCode(1015)

    /// Whether the code may appear in a close frame: 1000–1003, 1007–1011, the IANA-registered
    /// 1012–1014 (service restart, try again later, bad gateway: a CSMS under load or restarting
    /// says so, and that is a reason to back off, not a protocol error), and 3000–4999 (libraries
    /// and applications). Never 1004–1006 or 1015, nor anything unassigned.
    public var isValidOnWire: Bool {
        switch rawValue {
        case 1000...1003, 1007...1014, 3000...4999: return true
        default: return false
        }
    }

    public var description: String { String(rawValue) }
}
