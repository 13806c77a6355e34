/// Why a `cloud.url` is not a WebSocket URL the station can connect to.
public enum WebSocketURLError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Not `ws://` or `wss://`.
    case scheme(String)
    /// No host, or a host with characters a host cannot have.
    case host(String)
    /// A port that is not a number in 1...65535.
    case port(String)
    /// User information (`user:pw@`), a query or a fragment: credentials come from the password
    /// file and OCPP-J URLs carry neither queries nor fragments.
    case notAllowed(String)
    /// Longer than `WebSocketURL.maxLength`.
    case tooLong(Int)

    public var description: String {
        switch self {
        case .scheme(let s): return "\(s): not a ws:// or wss:// URL"
        case .host(let s): return "\(s): no valid host"
        case .port(let s): return "\(s): the port must be a number from 1 to 65535"
        case .notAllowed(let s): return "\(s): user information, a query or a fragment is not allowed"
        case .tooLong(let n): return "URL of \(n) characters (limit \(WebSocketURL.maxLength))"
        }
    }
}

/// A parsed OCPP-J endpoint (`cloud.url`): `wss://csms.example/ocpp` → host `csms.example`, port
/// 443, secure, path prefix `/ocpp`; the station id is appended to the prefix at connect time
/// (`WebSocketRequest.ocpp`). Pure: no name resolution, no rule on loopback (the connection's
/// shell applies that one, as for HTTPS).
public struct WebSocketURL: Equatable, Sendable {
    /// Longest URL accepted: a configuration value, not a place for data.
    public static let maxLength = 512

    public var host: String
    public var port: Int
    /// `wss://`: TLS.
    public var secure: Bool
    /// The path before the station id, `/` when the URL has none.
    public var pathPrefix: String

    /// The URL of the same endpoint for a byte stream: `https://host:port/` for `wss`,
    /// `http://host:port/` for `ws` (what `HTTPClient.openStream` connects to).
    public var streamURL: String {
        let h = host.contains(":") ? "[" + host + "]" : host
        return (secure ? "https://" : "http://") + h + ":" + String(port) + "/"
    }

    /// The `Host` header's host as RFC 3986 writes it (IPv6 in brackets).
    public var hostForHeader: String { host.contains(":") ? "[" + host + "]" : host }

    public init(parsing text: String) throws(WebSocketURLError) {
        guard text.utf8.count <= Self.maxLength else { throw .tooLong(text.utf8.count) }
        let lower = text.lowercased()
        let rest: Substring
        if lower.hasPrefix("wss://") { secure = true; rest = text.dropFirst(6) }
        else if lower.hasPrefix("ws://") { secure = false; rest = text.dropFirst(5) }
        else { throw .scheme(text) }
        if rest.contains("?") || rest.contains("#") { throw .notAllowed(text) }
        let authority = rest.prefix { $0 != "/" }
        let path = rest.dropFirst(authority.count)
        if authority.contains("@") { throw .notAllowed(text) }
        var hostPart: Substring
        var portPart: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw .host(text) }
            hostPart = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw .host(text) }
                portPart = after.dropFirst()
            }
            guard !hostPart.isEmpty, hostPart.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) else { throw .host(text) }
        } else {
            if let colon = authority.firstIndex(of: ":") {
                hostPart = authority[..<colon]
                portPart = authority[authority.index(after: colon)...]
            } else {
                hostPart = authority
            }
            let allowed: (Character) -> Bool = { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "." || $0 == "_") }
            guard !hostPart.isEmpty, hostPart.allSatisfy(allowed) else { throw .host(text) }
        }
        host = String(hostPart).lowercased()
        if let p = portPart {
            guard !p.isEmpty, p.count <= 5, p.allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int(p), (1...65535).contains(n) else { throw .port(text) }
            port = n
        } else {
            port = secure ? 443 : 80
        }
        pathPrefix = path.isEmpty ? "/" : String(path)
    }
}
