import WireFormat

/// Why a client's Upgrade request is refused (the server role, RFC 6455 section 4.2.1). Each case
/// names the status it is answered with (`status`); `refusal` is that answer's bytes.
public enum WebSocketUpgradeError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The request line and header fields exceed `WebSocketLimits.maxRequestHeaderBytes`: 400.
    case headerTooLarge(limit: Int)
    /// More header fields than `WebSocketLimits.maxRequestHeaderFields`: 400.
    case tooManyHeaderFields(limit: Int)
    /// The request line is not `METHOD TARGET HTTP/x.y`: 400.
    case malformedRequestLine
    /// A header line without a colon, with an empty or non-token name, or folded (obsolete): 400.
    case malformedHeaderLine(number: Int)
    /// A method other than GET (RFC 6455 section 4.1: the handshake is a GET): 400.
    case methodNotGet(String)
    /// A version other than HTTP/1.1: an upgrade needs 1.1: 400.
    case unsupportedHTTPVersion(String)
    /// No `Host` field, or more than one: 400.
    case missingHost
    /// A target that is not an absolute path (`/...`): 400.
    case invalidTarget
    /// No `Upgrade: websocket`: 426, naming the protocol to upgrade to.
    case missingUpgrade
    /// No `Connection: Upgrade`: 400.
    case missingConnectionUpgrade
    /// `Sec-WebSocket-Version` missing, repeated or not 13 (what was sent, if anything): 426 with
    /// `Sec-WebSocket-Version: 13` (RFC 6455 section 4.4).
    case unsupportedVersion(String?)
    /// `Sec-WebSocket-Key` missing, repeated, or not 16 bytes in Base64 (what was sent): 400.
    case invalidKey(String?)
    /// None of the offered subprotocols (listed) is one the server speaks: 400. OCPP-J lets a CSMS
    /// accept and close at once instead; a refusal says why in one step, and a station reports
    /// both as a failed connection.
    case noSupportedSubprotocol(offered: [String])

    /// The HTTP status the refusal carries.
    public var status: Int {
        switch self {
        case .missingUpgrade, .unsupportedVersion: return 426
        default: return 400
        }
    }

    /// The whole refusal: status, the fields 426 requires, the description as the body, and
    /// `Connection: close`.
    public var refusal: [UInt8] {
        switch self {
        case .missingUpgrade, .unsupportedVersion:
            return WebSocketUpgradeResponse.refusal(status: status, message: description,
                                                    headers: [("Upgrade", "websocket"), ("Sec-WebSocket-Version", "13")])
        default:
            return WebSocketUpgradeResponse.refusal(status: status, message: description)
        }
    }

    public var description: String {
        switch self {
        case .headerTooLarge(let l): return "request header exceeds \(l) bytes"
        case .tooManyHeaderFields(let l): return "request has more than \(l) header fields"
        case .malformedRequestLine: return "malformed request line"
        case .malformedHeaderLine(let n): return "malformed header line \(n)"
        case .methodNotGet(let m): return "method \(m) (an upgrade is a GET)"
        case .unsupportedHTTPVersion(let v): return "\(v) (an upgrade needs HTTP/1.1)"
        case .missingHost: return "no single Host field"
        case .invalidTarget: return "request target is not an absolute path"
        case .missingUpgrade: return "no Upgrade: websocket"
        case .missingConnectionUpgrade: return "no Connection: Upgrade"
        case .unsupportedVersion(let v): return "Sec-WebSocket-Version \(v ?? "missing") (13 expected)"
        case .invalidKey(let k): return "Sec-WebSocket-Key \(k ?? "missing") is not 16 bytes in Base64"
        case .noSupportedSubprotocol(let offered):
            return "no supported subprotocol among [\(offered.joined(separator: ", "))]"
        }
    }
}

/// A client's acceptable Upgrade request, as the server read it.
public struct WebSocketUpgradeRequest: Sendable {
    /// The request target as sent (path and query, percent-encoded).
    public var target: String
    /// `Sec-WebSocket-Key` as sent.
    public var key: String
    /// The subprotocols the client offered, in its order.
    public var offeredSubprotocols: [String]
    /// The one the server chose: the first of its own list that the client offered.
    public var subprotocol: String
    /// Every header field, names as sent, in order.
    public var headers: [(name: String, value: String)]

    /// OCPP 2.1 first, then OCPP 2.0.1: what an OCPP-J CSMS speaks, in its order of preference.
    public static let ocppSubprotocols = [WebSocketRequest.ocpp21, WebSocketRequest.ocpp201]

    /// The first field named `name` (case-insensitive).
    public func header(_ name: String) -> String? {
        let wanted = name.lowercased()
        return headers.first { $0.name.lowercased() == wanted }?.value
    }

    /// The path's last segment, percent-decoded: the station id of OCPP-J's
    /// `ws://HOST:PORT/PATH/STATIONID`. Nil when it is empty or does not decode to UTF-8.
    public var lastPathSegment: String? {
        let path = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)[0]
        guard let last = path.split(separator: "/", omittingEmptySubsequences: false).last, !last.isEmpty else { return nil }
        var bytes: [UInt8] = []
        var it = Array(last.utf8).makeIterator()
        while let b = it.next() {
            guard b == UInt8(ascii: "%") else { bytes.append(b); continue }
            guard let h = it.next(), let l = it.next(), let decoded = try? Hex.decode(utf8: [h, l]) else { return nil }
            bytes += decoded
        }
        return String(validating: bytes, as: UTF8.self)
    }

    /// The 101 that accepts this request: `Sec-WebSocket-Accept` for its key and the chosen subprotocol.
    public var acceptResponse: [UInt8] { WebSocketUpgradeResponse.accept(key: key, subprotocol: subprotocol) }

    /// Checks a request whose head another parser already read (cloud-sim's HTTP parser, which
    /// serves both bindings on one port). `supported` is the server's subprotocols in its order
    /// of preference. The checks are RFC 6455 section 4.2.1's, in its order.
    public static func evaluate(method: String, target: String, version: String, headers: [(name: String, value: String)],
                                supported: [String] = ocppSubprotocols) throws(WebSocketUpgradeError) -> WebSocketUpgradeRequest {
        guard headers.count <= WebSocketLimits.maxRequestHeaderFields else {
            throw .tooManyHeaderFields(limit: WebSocketLimits.maxRequestHeaderFields)
        }
        guard method == "GET" else { throw .methodNotGet(method) }
        guard version == "HTTP/1.1" else { throw .unsupportedHTTPVersion(version) }
        guard target.hasPrefix("/") else { throw .invalidTarget }
        func values(_ name: String) -> [String] { headers.filter { $0.name.lowercased() == name }.map(\.value) }
        func tokens(_ name: String) -> [String] {
            values(name).flatMap { $0.split(separator: ",") }.map { trimmed(Substring($0)) }.filter { !$0.isEmpty }
        }
        guard values("host").count == 1 else { throw .missingHost }
        guard tokens("upgrade").contains(where: { $0.lowercased() == "websocket" }) else { throw .missingUpgrade }
        guard tokens("connection").contains(where: { $0.lowercased() == "upgrade" }) else { throw .missingConnectionUpgrade }
        let versions = values("sec-websocket-version")
        guard versions.count == 1, versions[0] == "13" else { throw .unsupportedVersion(versions.first) }
        let keys = values("sec-websocket-key")
        guard keys.count == 1, let nonce = try? Base64.decode(keys[0]), nonce.count == WebSocketLimits.nonceBytes else {
            throw .invalidKey(keys.first)
        }
        let offered = tokens("sec-websocket-protocol")
        // Subprotocol names are compared exactly: RFC 6455 makes them case-sensitive.
        guard let chosen = supported.first(where: { offered.contains($0) }) else { throw .noSupportedSubprotocol(offered: offered) }
        return WebSocketUpgradeRequest(target: target, key: keys[0], offeredSubprotocols: offered, subprotocol: chosen, headers: headers)
    }

    static func trimmed(_ s: Substring) -> String {
        var s = s
        while let c = s.first, c == " " || c == "\t" { s.removeFirst() }
        while let c = s.last, c == " " || c == "\t" { s.removeLast() }
        return String(s)
    }
}

/// The server's answers to an Upgrade request.
public enum WebSocketUpgradeResponse {
    /// `101 Switching Protocols` with the accept value for `key` and the chosen subprotocol. No
    /// extension is ever accepted.
    public static func accept(key: String, subprotocol: String) -> [UInt8] {
        let lines = ["HTTP/1.1 101 Switching Protocols",
                     "Upgrade: websocket",
                     "Connection: Upgrade",
                     "Sec-WebSocket-Accept: \(WebSocketHandshake.accept(forKey: key))",
                     "Sec-WebSocket-Protocol: \(subprotocol)"]
        return Array((lines.joined(separator: "\r\n") + "\r\n\r\n").utf8)
    }

    /// A refusal: `status` with `message` as a plain-text body and the connection closed after it.
    /// Header values with control characters are dropped (no injection through a reason).
    public static func refusal(status: Int, message: String, headers: [(name: String, value: String)] = []) -> [UInt8] {
        let body = Array((message + "\n").utf8)
        var head = "HTTP/1.1 \(status) \(reason(status))\r\n"
        for (name, value) in headers where WebSocketHandshake.isToken(name) && WebSocketHandshake.isCleanValue(value) {
            head += "\(name): \(value)\r\n"
        }
        head += "Content-Type: text/plain; charset=utf-8\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        return Array(head.utf8) + body
    }

    /// The reason phrases of the statuses a WebSocket server refuses with.
    public static func reason(_ status: Int) -> String {
        switch status {
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 426: return "Upgrade Required"
        case 429: return "Too Many Requests"
        case 500: return "Internal Server Error"
        case 503: return "Service Unavailable"
        default: return "Status \(status)"
        }
    }
}

/// The server's reading of a client's opening handshake: feed bytes as they arrive until it
/// returns the accepted request or throws; after either, the stream belongs to the frame decoder
/// (with `leftover`) or gets the error's `refusal`. Bounded: the head may not exceed
/// `WebSocketLimits.maxRequestHeaderBytes` nor `maxRequestHeaderFields` fields.
public struct WebSocketUpgradeRequestParser: Sendable {
    /// The server's subprotocols in its order of preference.
    public let supported: [String]
    private var buffer: [UInt8] = []
    /// Where the head ends, found as bytes arrive.
    private var boundary = HTTPHeadBoundary()

    /// The accepted request and the bytes after its head (the client's first frames, if it sent
    /// any without waiting for the 101).
    public struct Accepted: Sendable {
        public var request: WebSocketUpgradeRequest
        public var leftover: [UInt8]
    }

    public init(supported: [String] = WebSocketUpgradeRequest.ocppSubprotocols) { self.supported = supported }

    /// Adds bytes; the accepted request once the head is complete, nil while more are needed.
    public mutating func append(_ bytes: some Collection<UInt8>) throws(WebSocketUpgradeError) -> Accepted? {
        buffer.append(contentsOf: bytes)
        guard let (headEnd, bodyStart) = boundary.find(in: buffer) else {
            guard buffer.count <= WebSocketLimits.maxRequestHeaderBytes else { throw .headerTooLarge(limit: WebSocketLimits.maxRequestHeaderBytes) }
            return nil
        }
        guard bodyStart <= WebSocketLimits.maxRequestHeaderBytes else { throw .headerTooLarge(limit: WebSocketLimits.maxRequestHeaderBytes) }
        var lines = HTTPHeadBoundary.lines(buffer[0..<headEnd])
        // A client may send empty lines before the request line (RFC 9112 section 2.2).
        while let first = lines.first, first.isEmpty { lines.removeFirst() }
        guard !lines.isEmpty else { throw .malformedRequestLine }
        let parts = lines.removeFirst().split(separator: 0x20, omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, !parts[1].isEmpty,
              parts.allSatisfy({ $0.allSatisfy { $0 > 0x20 && $0 < 0x7F } }) else { throw .malformedRequestLine }
        guard lines.count <= WebSocketLimits.maxRequestHeaderFields else {
            throw .tooManyHeaderFields(limit: WebSocketLimits.maxRequestHeaderFields)
        }
        var fields: [(name: String, value: String)] = []
        for (n, line) in lines.enumerated() {
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")), let first = line.first, first != 0x20, first != 0x09 else {
                throw .malformedHeaderLine(number: n + 2)
            }
            let name = String(decoding: line[line.startIndex..<colon], as: UTF8.self)
            guard WebSocketHandshake.isToken(name) else { throw .malformedHeaderLine(number: n + 2) }
            let value = WebSocketUpgradeRequest.trimmed(Substring(String(decoding: line[(colon + 1)...], as: UTF8.self)))
            fields.append((name, value))
        }
        let request = try WebSocketUpgradeRequest.evaluate(method: String(decoding: parts[0], as: UTF8.self),
                                                           target: String(decoding: parts[1], as: UTF8.self),
                                                           version: String(decoding: parts[2], as: UTF8.self),
                                                           headers: fields, supported: supported)
        return Accepted(request: request, leftover: Array(buffer[bodyStart...]))
    }
}
