/// RFC 3986 percent-encoding of one URL path segment: the unreserved characters
/// (`A–Z a–z 0–9 - . _ ~`) stay, every other UTF-8 byte becomes `%XX` (uppercase hex), so a
/// station id with a `/`, a space or a non-ASCII letter stays one segment. Shared by the HTTPS
/// binding's URLs and the OCPP-J WebSocket path.
public enum PercentEncoding {
    /// `s` as a single path segment.
    public static func pathSegment(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for byte in s.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                out += "%" + Hex.encode(CollectionOfOne(byte))
            }
        }
        return out
    }
}
