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
