/// The one rule for the charging platform's URL, applied by the configuration (`cloud.url`) and by
/// the HTTPS client to every request, so a URL the client would refuse is a problem in the
/// configuration file rather than a message retried forever. Pure: no resolving, no libcurl.
///
/// - `https://` with a non-empty host (optional `:port` of digits, 0…65535);
/// - plain `http://` only to this machine: the host is exactly `127.0.0.1`, `localhost` or
///   `[::1]`, with no user information (`http://localhost:80@elsewhere/` goes elsewhere);
/// - no control characters, spaces or backslashes (which URL parsers disagree about).
///
/// Scheme and host compare case-insensitively. The authority is what follows `scheme://` up to
/// the first `/`, `?` or `#`.
public enum CloudURL {
    /// Why `url` is refused, or nil when it is acceptable.
    public static func problem(_ url: String) -> String? {
        guard !url.utf8.contains(where: { $0 < 0x21 || $0 == 0x7F }) else { return "contains a control character or space" }
        guard let (scheme, authority) = split(url) else { return "not an https:// URL (plain http only to loopback)" }
        guard !authority.contains(0x5C) else { return "backslash in the host part" }
        if scheme == "http" {
            guard let host = host(of: authority), !authority.contains(0x40),
                  ["127.0.0.1", "localhost", "[::1]"].contains(host.lowercased())
            else { return "plain http only to loopback (127.0.0.1, localhost or [::1]); anything else needs https://" }
            return nil
        }
        let hostPort = authority.lastIndex(of: 0x40).map { authority[($0 + 1)...] } ?? authority[...]
        guard let host = host(of: hostPort) else { return "malformed host or port" }
        guard !host.isEmpty, host != "[]" else { return "no host" }
        return nil
    }

    /// Whether `url` is plain HTTP to this machine (acceptable by `problem`): libcurl is then
    /// allowed the http protocol for it, and https only otherwise.
    public static func isLoopbackHTTP(_ url: String) -> Bool {
        guard let (scheme, _) = split(url) else { return false }
        return scheme == "http" && problem(url) == nil
    }

    /// For plain http to `localhost`, the libcurl `CURLOPT_RESOLVE` entry that pins the name to
    /// the loopback addresses (`localhost:PORT:127.0.0.1,[::1]`, PORT 80 when the URL names
    /// none); nil for any other URL. Whether `localhost` is this machine must not depend on
    /// `/etc/hosts`, NSS or the libcurl version: a hosts file without the name, or one an
    /// intruder edited, would otherwise send plain http (bearer token included) off the charger.
    public static func localhostPinning(_ url: String) -> String? {
        guard let (scheme, authority) = split(url), scheme == "http", problem(url) == nil,
              let host = host(of: authority), host.lowercased() == "localhost" else { return nil }
        let digits = authority.dropFirst(host.utf8.count).dropFirst()   // after ':'
        let port = digits.isEmpty ? 80 : Int(String(decoding: digits, as: UTF8.self)) ?? 80
        return "localhost:\(port):127.0.0.1,[::1]"
    }

    /// The lower-cased scheme (`http` or `https` only) and the authority's bytes.
    private static func split(_ url: String) -> (String, [UInt8])? {
        let bytes = Array(url.utf8)
        let lower = bytes.map { $0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0 }
        let scheme: String
        let rest: ArraySlice<UInt8>
        if lower.starts(with: Array("https://".utf8)) {
            scheme = "https"; rest = bytes[8...]
        } else if lower.starts(with: Array("http://".utf8)) {
            scheme = "http"; rest = bytes[7...]
        } else {
            return nil
        }
        let end = rest.firstIndex { $0 == 0x2F || $0 == 0x3F || $0 == 0x23 } ?? rest.endIndex   // / ? #
        return (scheme, Array(rest[rest.startIndex..<end]))
    }

    /// The host of `host[:port]` (an IPv6 literal keeps its brackets) when the port, if any, is a
    /// number 0…65535; nil when malformed.
    private static func host(of hostPort: some Collection<UInt8>) -> String? {
        let bytes = Array(hostPort)
        let hostEnd: Int
        if bytes.first == 0x5B {   // [
            guard let close = bytes.firstIndex(of: 0x5D) else { return nil }
            hostEnd = close + 1
        } else {
            hostEnd = bytes.firstIndex(of: 0x3A) ?? bytes.count
        }
        let port = bytes[hostEnd...]
        if let colon = port.first {
            guard colon == 0x3A else { return nil }
            let digits = port.dropFirst()
            guard digits.count <= 5, digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
            if !digits.isEmpty, let n = Int(String(decoding: digits, as: UTF8.self)), n > 65535 { return nil }
        }
        return String(decoding: bytes[..<hostEnd], as: UTF8.self)
    }
}

/// The one rule for `cloud.proxy`, shared by the configuration and the HTTPS client: the daemon
/// uses a proxy only when its configuration names one, never one from the environment.
///
/// Accepted: `http://HOST:PORT` with an optional trailing `/`, where HOST is an IPv4 address, a
/// bracketed IPv6 address or a DNS name (letters, digits, `-` and `.`; libcurl resolves it on
/// its resolver thread, like the cloud's host) and PORT is 1…65535 (no default: a proxy port is
/// a deliberate setting). Refused: user information (credentials do not belong in the
/// configuration file), a path or query, any other scheme (an `https://` or SOCKS proxy would
/// need settings of its own). Requests to the cloud go through it as a CONNECT tunnel, so TLS
/// stays end to end and the proxy sees only the cloud's host and port.
public enum ProxyURL {
    /// Why `url` is refused as a proxy, or nil when it is acceptable.
    public static func problem(_ url: String) -> String? {
        let bytes = Array(url.utf8)
        guard !bytes.contains(where: { $0 < 0x21 || $0 >= 0x7F }) else { return "contains a space, control or non-ASCII character" }
        let lower = bytes.map { $0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0 }
        guard lower.starts(with: Array("http://".utf8)) else { return "expected http://HOST:PORT" }
        var authority = Array(bytes[7...])
        if authority.last == 0x2F { authority.removeLast() }   // one trailing /
        guard !authority.contains(where: { $0 == 0x2F || $0 == 0x3F || $0 == 0x23 || $0 == 0x5C }) else {
            return "no path, query or backslash after the port"
        }
        guard !authority.contains(0x40) else { return "no user information (user:password@) in the proxy URL" }
        let hostEnd: Int
        if authority.first == 0x5B {   // [IPv6]
            guard let close = authority.firstIndex(of: 0x5D), close > 1,
                  authority[1..<close].allSatisfy({ isHexDigit($0) || $0 == 0x3A || $0 == 0x2E }) else { return "malformed IPv6 address" }
            hostEnd = close + 1
        } else {
            guard let colon = authority.firstIndex(of: 0x3A), colon > 0,
                  authority[..<colon].allSatisfy({ isHostCharacter($0) }),
                  authority.first != 0x2D, authority.first != 0x2E else { return "expected http://HOST:PORT with a host name or address" }
            hostEnd = colon
        }
        let rest = authority[hostEnd...]
        guard rest.first == 0x3A else { return "expected :PORT after the host" }
        let digits = rest.dropFirst()
        guard !digits.isEmpty, digits.count <= 5, digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
              let port = Int(String(decoding: digits, as: UTF8.self)), (1...65535).contains(port) else { return "the port must be 1…65535" }
        return nil
    }

    private static func isHexDigit(_ b: UInt8) -> Bool {
        (0x30...0x39).contains(b) || (0x41...0x46).contains(b) || (0x61...0x66).contains(b)
    }

    private static func isHostCharacter(_ b: UInt8) -> Bool {
        (0x30...0x39).contains(b) || (0x41...0x5A).contains(b) || (0x61...0x7A).contains(b) || b == 0x2D || b == 0x2E
    }
}
