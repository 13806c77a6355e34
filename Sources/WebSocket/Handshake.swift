import WireFormat

/// HTTP Basic credentials for OCPP security profile 1: the station id as user, the password as
/// bytes (OCPP's BasicAuthPassword may be any bytes; it is never turned into a String, so it
/// cannot end up in a log line). `description` shows the user only.
public struct BasicCredentials: Sendable, CustomStringConvertible {
    public var user: String
    public var password: [UInt8]

    public init(user: String, password: [UInt8]) {
        self.user = user
        self.password = password
    }

    public var description: String { "BasicCredentials(user: \(user), password: <\(password.count) bytes>)" }
}

/// What the client asks for in its opening handshake.
public struct WebSocketRequest: Sendable {
    /// The server's host name or address, as it goes in `Host` (an IPv6 literal in brackets).
    public var host: String
    public var port: Int
    /// wss (default port 443) or ws (default port 80): only decides whether `Host` names the port.
    public var secure: Bool
    /// The request target: `/ocpp/STATION`, already percent-encoded (`ocpp(...)` does that).
    public var path: String
    /// Subprotocols in order of preference.
    public var subprotocols: [String]
    public var credentials: BasicCredentials?
    /// More header fields, sent after ours. None may be one the handshake owns.
    public var extraHeaders: [(name: String, value: String)]

    public init(host: String, port: Int, secure: Bool, path: String, subprotocols: [String],
                credentials: BasicCredentials? = nil, extraHeaders: [(name: String, value: String)] = []) {
        self.host = host
        self.port = port
        self.secure = secure
        self.path = path
        self.subprotocols = subprotocols
        self.credentials = credentials
        self.extraHeaders = extraHeaders
    }

    /// The OCPP-J request: `<pathPrefix>/<station id>` (the id percent-encoded), `ocpp2.1` offered
    /// first and `ocpp2.0.1` after it only when `offerOCPP201`, and Basic credentials with the
    /// station id as user when a password is given (security profile 1 or 2).
    public static func ocpp(host: String, port: Int, secure: Bool, pathPrefix: String, stationId: String,
                            offerOCPP201: Bool = false, password: [UInt8]? = nil,
                            extraHeaders: [(name: String, value: String)] = []) -> WebSocketRequest {
        var prefix = pathPrefix
        while prefix.hasSuffix("/") { prefix.removeLast() }
        if !prefix.hasPrefix("/") { prefix = "/" + prefix }
        return WebSocketRequest(host: host, port: port, secure: secure, path: prefix + "/" + PercentEncoding.pathSegment(stationId),
                                subprotocols: offerOCPP201 ? [ocpp21, ocpp201] : [ocpp21],
                                credentials: password.map { BasicCredentials(user: stationId, password: $0) },
                                extraHeaders: extraHeaders)
    }

    /// OCPP 2.1's subprotocol name.
    public static let ocpp21 = "ocpp2.1"
    /// OCPP 2.0.1's subprotocol name.
    public static let ocpp201 = "ocpp2.0.1"
}

/// Why a request could not be built. Each is a configuration mistake, found before connecting.
public enum WebSocketRequestError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The nonce is not 16 bytes.
    case nonceLength(Int)
    /// No subprotocol offered: OCPP requires one.
    case noSubprotocol
    /// A subprotocol, header name or the Basic user is not a token / contains what it must not.
    case invalidToken(String)
    /// A header value, host or path with a control character (CR, LF, NUL ...): header injection.
    case invalidValue(field: String)
    /// An extra header the handshake itself writes (Host, Upgrade, Connection, Sec-WebSocket-*, Authorization).
    case reservedHeader(String)
    /// The Basic user contains ':' (RFC 7617: the user-id cannot).
    case colonInUser
    /// A port outside 1–65535.
    case invalidPort(Int)

    public var description: String {
        switch self {
        case .nonceLength(let n): return "nonce of \(n) bytes (need 16)"
        case .noSubprotocol: return "no subprotocol offered"
        case .invalidToken(let t): return "'\(t)' is not an HTTP token"
        case .invalidValue(let f): return "control character in \(f)"
        case .reservedHeader(let h): return "header \(h) is written by the handshake itself"
        case .colonInUser: return "Basic user contains ':'"
        case .invalidPort(let p): return "port \(p) out of range"
        }
    }
}

/// The client's side of the opening handshake (RFC 6455 section 4.1): the request bytes, and what
/// the response must say.
public struct WebSocketHandshake: Sendable {
    /// The HTTP/1.1 Upgrade request. Contains the credentials when given: write it, never log it.
    public let requestBytes: [UInt8]
    /// `Sec-WebSocket-Key`: the nonce in Base64.
    public let key: String
    /// The `Sec-WebSocket-Accept` the server must answer: Base64(SHA-1(key + GUID)).
    public let expectedAccept: String
    /// The subprotocols offered, one of which the server must choose.
    public let offeredSubprotocols: [String]

    /// RFC 6455's GUID appended to the key before hashing.
    public static let acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    /// The accept value for `key`.
    public static func accept(forKey key: String) -> String {
        Base64.encode(SHA1.hash(Array((key + acceptGUID).utf8)))
    }

    /// Builds the request. `nonce` is 16 bytes from the caller's random source (getrandom in the
    /// shell, fixed in tests).
    public init(request: WebSocketRequest, nonce: [UInt8]) throws(WebSocketRequestError) {
        guard nonce.count == WebSocketLimits.nonceBytes else { throw .nonceLength(nonce.count) }
        guard !request.subprotocols.isEmpty else { throw .noSubprotocol }
        guard (1...65535).contains(request.port) else { throw .invalidPort(request.port) }
        for p in request.subprotocols where !Self.isToken(p) { throw .invalidToken(p) }
        guard Self.isCleanValue(request.host), !request.host.isEmpty else { throw .invalidValue(field: "host") }
        guard Self.isCleanValue(request.path), request.path.hasPrefix("/"), !request.path.utf8.contains(0x20) else { throw .invalidValue(field: "path") }

        key = Base64.encode(nonce)
        expectedAccept = Self.accept(forKey: key)
        offeredSubprotocols = request.subprotocols

        let defaultPort = request.secure ? 443 : 80
        let lines = ["GET \(request.path) HTTP/1.1",
                     "Host: " + (request.port == defaultPort ? request.host : "\(request.host):\(request.port)"),
                     "Upgrade: websocket",
                     "Connection: Upgrade",
                     "Sec-WebSocket-Key: \(key)",
                     "Sec-WebSocket-Version: 13",
                     "Sec-WebSocket-Protocol: " + request.subprotocols.joined(separator: ", ")]
        var bytes: [UInt8] = []
        for line in lines { bytes += Array(line.utf8) + [0x0D, 0x0A] }
        if let c = request.credentials {
            guard !c.user.utf8.contains(UInt8(ascii: ":")) else { throw .colonInUser }
            guard Self.isCleanValue(c.user) else { throw .invalidValue(field: "Basic user") }
            bytes += Array("Authorization: Basic ".utf8) + Array(Base64.encode(Array(c.user.utf8) + [UInt8(ascii: ":")] + c.password).utf8) + [0x0D, 0x0A]
        }
        for (name, value) in request.extraHeaders {
            guard Self.isToken(name) else { throw .invalidToken(name) }
            guard Self.isCleanValue(value) else { throw .invalidValue(field: name) }
            let lower = name.lowercased()
            guard !["host", "upgrade", "connection", "authorization", "content-length", "transfer-encoding"].contains(lower),
                  !lower.hasPrefix("sec-websocket-") else { throw .reservedHeader(name) }
            bytes += Array("\(name): \(value)".utf8) + [0x0D, 0x0A]
        }
        bytes += [0x0D, 0x0A]
        requestBytes = bytes
    }

    /// RFC 7230 token characters.
    static func isToken(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.allSatisfy { b in
            switch b {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"): return true
            default: return Array("!#$%&'*+-.^_`|~".utf8).contains(b)
            }
        }
    }

    /// No control characters (tab allowed): nothing that could end a header line early.
    static func isCleanValue(_ s: String) -> Bool {
        s.utf8.allSatisfy { $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) }
    }
}

/// Why the opening handshake failed.
public enum WebSocketHandshakeError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The server answered with a status other than 101: 401/403 (credentials or station id not
    /// accepted), 404 (unknown station), 503 ... `retryAfterSeconds` is the `Retry-After` header
    /// when it is a number of seconds (an HTTP date is not parsed: no clock here), `retryAfter`
    /// the raw value either way.
    case refused(status: Int, reason: String, retryAfterSeconds: Int?, retryAfter: String?)
    /// The header block is longer than `WebSocketLimits.maxResponseHeaderBytes`.
    case headerTooLarge(limit: Int)
    /// More header fields than `WebSocketLimits.maxResponseHeaderFields`.
    case tooManyHeaderFields(limit: Int)
    /// The status line is not `HTTP/1.1 NNN reason`.
    case malformedStatusLine
    /// A header line without a colon, with an empty or non-token name, or folded (obsolete).
    case malformedHeaderLine(number: Int)
    /// 101 without `Upgrade: websocket`.
    case missingUpgrade
    /// 101 without `Connection: Upgrade`.
    case missingConnectionUpgrade
    /// 101 without `Sec-WebSocket-Accept`, or with more than one.
    case missingAccept
    /// `Sec-WebSocket-Accept` is not the value the key asks for.
    case acceptMismatch(received: String)
    /// 101 without `Sec-WebSocket-Protocol`: OCPP requires the server to choose one.
    case missingSubprotocol
    /// A subprotocol we did not offer, or more than one.
    case unofferedSubprotocol(String)
    /// `Sec-WebSocket-Extensions` in the answer: we offered none.
    case unrequestedExtension(String)

    public var description: String {
        switch self {
        case .refused(let s, let r, let secs, let raw):
            var text = "server refused the upgrade: \(s) \(r)"
            if let secs { text += ", retry after \(secs) s" } else if let raw { text += ", retry after \(raw)" }
            return text
        case .headerTooLarge(let l): return "response header exceeds \(l) bytes"
        case .tooManyHeaderFields(let l): return "response has more than \(l) header fields"
        case .malformedStatusLine: return "malformed status line"
        case .malformedHeaderLine(let n): return "malformed header line \(n)"
        case .missingUpgrade: return "101 without Upgrade: websocket"
        case .missingConnectionUpgrade: return "101 without Connection: Upgrade"
        case .missingAccept: return "101 without exactly one Sec-WebSocket-Accept"
        case .acceptMismatch(let r): return "Sec-WebSocket-Accept \(r) does not match the key"
        case .missingSubprotocol: return "101 without Sec-WebSocket-Protocol"
        case .unofferedSubprotocol(let p): return "subprotocol \(p) was not offered"
        case .unrequestedExtension(let e): return "extension \(e) was not requested"
        }
    }
}

/// The accepted handshake.
public struct WebSocketHandshakeResult: Equatable, Sendable {
    /// The subprotocol the server chose (one of those offered).
    public var subprotocol: String
    /// Bytes that came after the header block: the server's first frames, for the frame decoder.
    public var leftover: [UInt8]

    public init(subprotocol: String, leftover: [UInt8]) {
        self.subprotocol = subprotocol
        self.leftover = leftover
    }
}

/// Parses the server's handshake response incrementally: feed bytes as they arrive until it returns
/// a result or throws; after either, the parser is done and the stream belongs to the frame decoder
/// (or is closed). Bounded: the header block may not exceed `maxResponseHeaderBytes`.
public struct WebSocketResponseParser: Sendable {
    private let handshake: WebSocketHandshake
    private var buffer: [UInt8] = []
    /// Where the head ends, found as bytes arrive.
    private var boundary = HTTPHeadBoundary()

    public init(handshake: WebSocketHandshake) { self.handshake = handshake }

    /// Adds bytes; the result once the header block is complete and acceptable, nil while more are needed.
    public mutating func append(_ bytes: some Collection<UInt8>) throws(WebSocketHandshakeError) -> WebSocketHandshakeResult? {
        buffer.append(contentsOf: bytes)
        guard let (headerEnd, bodyStart) = boundary.find(in: buffer) else {
            guard buffer.count <= WebSocketLimits.maxResponseHeaderBytes else { throw .headerTooLarge(limit: WebSocketLimits.maxResponseHeaderBytes) }
            return nil
        }
        guard bodyStart <= WebSocketLimits.maxResponseHeaderBytes else { throw .headerTooLarge(limit: WebSocketLimits.maxResponseHeaderBytes) }
        let result = try Self.evaluate(Array(buffer[0..<headerEnd]), handshake: handshake)
        return WebSocketHandshakeResult(subprotocol: result, leftover: Array(buffer[bodyStart...]))
    }

    private static func evaluate(_ header: [UInt8], handshake: WebSocketHandshake) throws(WebSocketHandshakeError) -> String {
        var lines = HTTPHeadBoundary.lines(header[...])
        let statusLine = lines.removeFirst()
        let (status, reason) = try parseStatusLine(statusLine)
        guard lines.count <= WebSocketLimits.maxResponseHeaderFields else { throw .tooManyHeaderFields(limit: WebSocketLimits.maxResponseHeaderFields) }
        var fields: [(name: String, value: String)] = []
        for (n, line) in lines.enumerated() {
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")), let first = line.first, first != 0x20, first != 0x09 else {
                throw .malformedHeaderLine(number: n + 2)
            }
            let name = String(decoding: line[line.startIndex..<colon], as: UTF8.self)
            guard WebSocketHandshake.isToken(name) else { throw .malformedHeaderLine(number: n + 2) }
            let value = String(decoding: trimmed(line[(colon + 1)...]), as: UTF8.self)
            fields.append((name.lowercased(), value))
        }
        func values(_ name: String) -> [String] { fields.filter { $0.name == name }.map(\.value) }
        func tokens(_ name: String) -> [String] {
            values(name).flatMap { $0.split(separator: ",") }.map { String(decoding: trimmed(ArraySlice($0.utf8)), as: UTF8.self).lowercased() }
        }

        guard status == 101 else {
            let retry = values("retry-after").first
            throw .refused(status: status, reason: reason, retryAfterSeconds: retry.flatMap { Int($0) }.flatMap { $0 >= 0 ? $0 : nil }, retryAfter: retry)
        }
        guard tokens("upgrade").contains("websocket") else { throw .missingUpgrade }
        guard tokens("connection").contains("upgrade") else { throw .missingConnectionUpgrade }
        let accepts = values("sec-websocket-accept")
        guard accepts.count == 1 else { throw .missingAccept }
        guard accepts[0] == handshake.expectedAccept else { throw .acceptMismatch(received: accepts[0]) }
        if let ext = values("sec-websocket-extensions").first(where: { !$0.isEmpty }) { throw .unrequestedExtension(ext) }
        let protocols = values("sec-websocket-protocol")
        guard let chosen = protocols.first else { throw .missingSubprotocol }
        guard protocols.count == 1, handshake.offeredSubprotocols.contains(chosen) else { throw .unofferedSubprotocol(protocols.joined(separator: ", ")) }
        return chosen
    }

    private static func parseStatusLine(_ line: ArraySlice<UInt8>) throws(WebSocketHandshakeError) -> (Int, String) {
        // "HTTP/1.1 101 Switching Protocols": an upgrade needs HTTP/1.1; the reason may be empty.
        let prefix = Array("HTTP/1.1 ".utf8)
        guard line.count >= prefix.count + 3, line.prefix(prefix.count).elementsEqual(prefix) else { throw .malformedStatusLine }
        let digits = line.dropFirst(prefix.count).prefix(3)
        guard digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { throw .malformedStatusLine }
        let status = digits.reduce(0) { $0 * 10 + Int($1 - 0x30) }
        let rest = line.dropFirst(prefix.count + 3)
        guard rest.isEmpty || rest.first == 0x20 else { throw .malformedStatusLine }
        return (status, String(decoding: rest.dropFirst().filter { $0 >= 0x20 && $0 != 0x7F }, as: UTF8.self))
    }

    private static func trimmed(_ s: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        var s = s
        while let f = s.first, f == 0x20 || f == 0x09 { s.removeFirst() }
        while let l = s.last, l == 0x20 || l == 0x09 { s.removeLast() }
        return s
    }
}
