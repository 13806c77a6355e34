/// Why text is not JSON.
public enum JSONParseError: Error, Equatable, Sendable {
    case unexpected(offset: Int)
    case tooDeep
    case trailingData(offset: Int)
}

extension JSON {
    /// Nesting deeper than this is refused: a hostile or broken answer cannot exhaust the stack.
    public static let maxDepth = 32

    /// Parses JSON text (RFC 8259). Integers become `.int`, other numbers `.decimal` with
    /// their literal text, so no value passes through binary floating point.
    public static func parse(_ bytes: [UInt8]) throws(JSONParseError) -> JSON {
        var p = Parser(b: bytes)
        p.space()
        let v = try p.value(depth: 0)
        p.space()
        guard p.i == bytes.count else { throw .trailingData(offset: p.i) }
        return v
    }

    struct Parser {
        let b: [UInt8]
        var i = 0

        mutating func space() { while i < b.count, [0x20, 0x09, 0x0A, 0x0D].contains(b[i]) { i += 1 } }

        mutating func expect(_ s: String) throws(JSONParseError) {
            for c in s.utf8 {
                guard i < b.count, b[i] == c else { throw .unexpected(offset: i) }
                i += 1
            }
        }

        mutating func value(depth: Int) throws(JSONParseError) -> JSON {
            guard depth < JSON.maxDepth else { throw .tooDeep }
            guard i < b.count else { throw .unexpected(offset: i) }
            switch b[i] {
            case 0x7B:   // {
                i += 1; space()
                var fields: [(String, JSON)] = []
                if i < b.count, b[i] == 0x7D { i += 1; return .object(fields) }
                while true {
                    space()
                    guard i < b.count, b[i] == 0x22 else { throw .unexpected(offset: i) }
                    let k = try string()
                    space(); try expect(":"); space()
                    fields.append((k, try value(depth: depth + 1)))
                    space()
                    guard i < b.count else { throw .unexpected(offset: i) }
                    if b[i] == 0x2C { i += 1; continue }
                    if b[i] == 0x7D { i += 1; return .object(fields) }
                    throw .unexpected(offset: i)
                }
            case 0x5B:   // [
                i += 1; space()
                var items: [JSON] = []
                if i < b.count, b[i] == 0x5D { i += 1; return .array(items) }
                while true {
                    space()
                    items.append(try value(depth: depth + 1))
                    space()
                    guard i < b.count else { throw .unexpected(offset: i) }
                    if b[i] == 0x2C { i += 1; continue }
                    if b[i] == 0x5D { i += 1; return .array(items) }
                    throw .unexpected(offset: i)
                }
            case 0x22: return .string(try string())
            case 0x74: try expect("true"); return .bool(true)
            case 0x66: try expect("false"); return .bool(false)
            case 0x6E: try expect("null"); return .null
            default: return try number()
            }
        }

        mutating func number() throws(JSONParseError) -> JSON {
            let start = i
            if i < b.count, b[i] == 0x2D { i += 1 }
            let intStart = i
            while i < b.count, b[i] >= 0x30, b[i] <= 0x39 { i += 1 }
            guard i > intStart else { throw .unexpected(offset: start) }
            var integral = true
            if i < b.count, b[i] == 0x2E {
                integral = false; i += 1
                let f = i
                while i < b.count, b[i] >= 0x30, b[i] <= 0x39 { i += 1 }
                guard i > f else { throw .unexpected(offset: i) }
            }
            if i < b.count, b[i] == 0x65 || b[i] == 0x45 {
                integral = false; i += 1
                if i < b.count, b[i] == 0x2B || b[i] == 0x2D { i += 1 }
                let e = i
                while i < b.count, b[i] >= 0x30, b[i] <= 0x39 { i += 1 }
                guard i > e else { throw .unexpected(offset: i) }
            }
            let text = String(decoding: b[start..<i], as: UTF8.self)
            if integral, let v = Int64(text) { return .int(v) }
            return .decimal(text)
        }

        mutating func string() throws(JSONParseError) -> String {
            i += 1   // opening quote
            var out: [UInt8] = []
            while i < b.count {
                let c = b[i]
                if c == 0x22 { i += 1; return String(decoding: out, as: UTF8.self) }
                if c < 0x20 { throw .unexpected(offset: i) }
                if c == 0x5C {
                    i += 1
                    guard i < b.count else { throw .unexpected(offset: i) }
                    switch b[i] {
                    case 0x22: out.append(0x22); case 0x5C: out.append(0x5C); case 0x2F: out.append(0x2F)
                    case 0x62: out.append(0x08); case 0x66: out.append(0x0C); case 0x6E: out.append(0x0A)
                    case 0x72: out.append(0x0D); case 0x74: out.append(0x09)
                    case 0x75:
                        guard i + 4 < b.count, let v = UInt32(String(decoding: b[(i + 1)...(i + 4)], as: UTF8.self), radix: 16) else {
                            throw .unexpected(offset: i)
                        }
                        i += 4
                        // Surrogate pairs are not joined: a lone or paired surrogate becomes U+FFFD.
                        let scalar = Unicode.Scalar(v) ?? "\u{FFFD}"
                        out += Array(String(scalar).utf8)
                    default: throw .unexpected(offset: i)
                    }
                    i += 1
                    continue
                }
                out.append(c)
                i += 1
            }
            throw .unexpected(offset: i)
        }
    }
}
