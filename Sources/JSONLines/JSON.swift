/// A JSON value small enough for log lines, records and the technicians' tool.
///
/// Hand-written rather than Foundation's JSONEncoder so the daemon's hot
/// modules need no Foundation; object keys keep insertion order so output
/// is stable and diffable.
public indirect enum JSON: Equatable, Sendable {
    case null
    case bool(Bool)
    case int(Int64)
    /// An exact decimal number written as is (money in major units: "12.34"); build it with
    /// `decimal(minor:exponent:)` so it is always a valid JSON number, never a binary float.
    case decimal(String)
    case string(String)
    case array([JSON])
    case object([(String, JSON)])

    public static func == (a: JSON, b: JSON) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case let (.bool(x), .bool(y)): return x == y
        case let (.int(x), .int(y)): return x == y
        case let (.decimal(x), .decimal(y)): return x == y
        case let (.string(x), .string(y)): return x == y
        case let (.array(x), .array(y)): return x == y
        case let (.object(x), .object(y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    /// Convenience for integers of any width.
    public static func number<T: BinaryInteger>(_ v: T) -> JSON { .int(Int64(clamping: v)) }

    /// `minor` units as an exact decimal with `exponent` fraction digits (ISO 4217: 2 for EUR,
    /// 0 for JPY, 3 for KWD): 1234, 2 → 12.34; -5, 2 → -0.05.
    public static func decimal(minor: Int64, exponent: Int) -> JSON {
        guard exponent > 0 else { return .decimal(String(minor)) }
        let negative = minor < 0
        let magnitude = minor.magnitude
        var digits = String(magnitude)
        if digits.count <= exponent { digits = String(repeating: "0", count: exponent - digits.count + 1) + digits }
        let split = digits.index(digits.endIndex, offsetBy: -exponent)
        return .decimal((negative ? "-" : "") + digits[..<split] + "." + digits[split...])
    }

    /// Compact serialisation on one line (no newline).
    public var text: String {
        var out = ""
        write(to: &out)
        return out
    }

    public func write(to out: inout String) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .decimal(let d): out += d
        case .string(let s): JSON.quote(s, into: &out)
        case .array(let items):
            out += "["
            for (i, v) in items.enumerated() {
                if i > 0 { out += "," }
                v.write(to: &out)
            }
            out += "]"
        case .object(let fields):
            out += "{"
            for (i, (k, v)) in fields.enumerated() {
                if i > 0 { out += "," }
                JSON.quote(k, into: &out)
                out += ":"
                v.write(to: &out)
            }
            out += "}"
        }
    }

    static let hexDigits = Array("0123456789abcdef".utf8)

    /// RFC 8259 string escaping; control characters as \u00XX.
    public static func quote(_ s: String, into out: inout String) {
        out += "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 {
                    out += "\\u00"
                    out.unicodeScalars.append(Unicode.Scalar(hexDigits[Int(u.value >> 4)]))
                    out.unicodeScalars.append(Unicode.Scalar(hexDigits[Int(u.value & 0xF)]))
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        out += "\""
    }

    /// Field lookup on objects (first match); nil elsewhere.
    public subscript(key: String) -> JSON? {
        if case .object(let fields) = self { return fields.first { $0.0 == key }?.1 }
        return nil
    }
}
