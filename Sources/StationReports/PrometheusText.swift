/// Why a metric cannot be written in the Prometheus text format.
public enum PrometheusError: Error, Equatable, Sendable {
    /// A metric name outside `[a-zA-Z_:][a-zA-Z0-9_:]*`.
    case invalidMetricName(String)
    /// A label name outside `[a-zA-Z_][a-zA-Z0-9_]*`, or one starting with `__` (reserved).
    case invalidLabelName(String)
    /// `le` on a histogram's own labels: the format uses it for the bucket bounds.
    case reservedLabel(String)
    /// A family written twice: the format allows each name once.
    case duplicateMetric(String)
    /// A histogram whose bucket bounds do not increase strictly, or whose cumulative counts go
    /// down or exceed its count.
    case invalidBuckets(String)
}

/// A writer of the Prometheus text exposition format 0.0.4: one family per call, each with its
/// `# HELP` and `# TYPE` lines, label values escaped. Pure: the text accumulates in `text`.
public struct PrometheusText: Sendable {
    /// The Content-Type a scrape answer carries.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// A sample's value: integers are written exactly (a Double would lose a counter past 2^53).
    public enum Value: Equatable, Sendable, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral {
        case int(Int64)
        case double(Double)
        public init(integerLiteral v: Int64) { self = .int(v) }
        public init(floatLiteral v: Double) { self = .double(v) }

        /// As the format writes it: `+Inf`, `-Inf`, `NaN` for the special values.
        public var text: String {
            switch self {
            case .int(let v): return String(v)
            case .double(let d):
                if d.isNaN { return "NaN" }
                if d.isInfinite { return d < 0 ? "-Inf" : "+Inf" }
                return d.description
            }
        }
    }

    /// Label names and values, in the order written.
    public typealias Labels = [(String, String)]

    /// The exposition so far; ends with a line break once anything was written.
    public private(set) var text = ""
    private var written: Set<String> = []

    public init() {}

    /// A counter family: one sample per label set (a counter's name should end in `_total`).
    public mutating func counter(_ name: String, help: String, _ samples: [(Labels, Value)]) throws(PrometheusError) {
        try family(name, "counter", help, samples)
    }

    /// A counter without labels.
    public mutating func counter(_ name: String, help: String, _ value: Value) throws(PrometheusError) {
        try family(name, "counter", help, [([], value)])
    }

    /// A gauge family: one sample per label set.
    public mutating func gauge(_ name: String, help: String, _ samples: [(Labels, Value)]) throws(PrometheusError) {
        try family(name, "gauge", help, samples)
    }

    /// A gauge without labels.
    public mutating func gauge(_ name: String, help: String, _ value: Value) throws(PrometheusError) {
        try family(name, "gauge", help, [([], value)])
    }

    /// A histogram: `buckets` are (upper bound, cumulative count) with strictly increasing bounds
    /// and no `+Inf` (written here, equal to `count`), then `_sum` and `_count`.
    public mutating func histogram(_ name: String, help: String, labels: Labels = [], buckets: [(upperBound: Double, cumulativeCount: UInt64)],
                                   sum: Value, count: UInt64) throws(PrometheusError) {
        try Self.checkName(name)
        for (l, _) in labels {
            try Self.checkLabel(l)
            if l == "le" { throw .reservedLabel(l) }
        }
        var previous: (Double, UInt64)?
        for b in buckets {
            guard b.upperBound.isFinite, b.cumulativeCount <= count,
                  previous.map({ $0.0 < b.upperBound && $0.1 <= b.cumulativeCount }) ?? true
            else { throw .invalidBuckets(name) }
            previous = (b.upperBound, b.cumulativeCount)
        }
        try header(name, "histogram", help)
        for b in buckets {
            line(name + "_bucket", labels + [("le", Value.double(b.upperBound).text)], .int(Int64(clamping: b.cumulativeCount)))
        }
        line(name + "_bucket", labels + [("le", "+Inf")], .int(Int64(clamping: count)))
        line(name + "_sum", labels, sum)
        line(name + "_count", labels, .int(Int64(clamping: count)))
    }

    /// Whether `name` is a valid metric name.
    public static func isValidMetricName(_ name: String) -> Bool {
        let b = Array(name.utf8)
        guard let first = b.first, isLetter(first) || first == UInt8(ascii: "_") || first == UInt8(ascii: ":") else { return false }
        return b.allSatisfy { isLetter($0) || isDigit($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ":") }
    }

    /// Whether `name` is a valid label name (and not reserved by a `__` prefix).
    public static func isValidLabelName(_ name: String) -> Bool {
        let b = Array(name.utf8)
        guard let first = b.first, isLetter(first) || first == UInt8(ascii: "_"), !name.hasPrefix("__") else { return false }
        return b.allSatisfy { isLetter($0) || isDigit($0) || $0 == UInt8(ascii: "_") }
    }

    /// A label value as the format quotes it: backslash, double quote and line feed escaped.
    public static func escapeLabelValue(_ v: String) -> String {
        var out = ""
        for u in v.unicodeScalars {
            switch u {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(u)
            }
        }
        return out
    }

    /// HELP text as the format escapes it: backslash and line feed (a quote stays as is).
    public static func escapeHelp(_ v: String) -> String {
        var out = ""
        for u in v.unicodeScalars {
            switch u {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(u)
            }
        }
        return out
    }

    // MARK: private

    private mutating func family(_ name: String, _ type: String, _ help: String, _ samples: [(Labels, Value)]) throws(PrometheusError) {
        try Self.checkName(name)
        for (labels, _) in samples { for (l, _) in labels { try Self.checkLabel(l) } }
        try header(name, type, help)
        for (labels, value) in samples { line(name, labels, value) }
    }

    private mutating func header(_ name: String, _ type: String, _ help: String) throws(PrometheusError) {
        guard written.insert(name).inserted else { throw .duplicateMetric(name) }
        text += "# HELP \(name) \(Self.escapeHelp(help))\n# TYPE \(name) \(type)\n"
    }

    private mutating func line(_ name: String, _ labels: Labels, _ value: Value) {
        text += name
        if !labels.isEmpty {
            text += "{" + labels.map { "\($0.0)=\"\(Self.escapeLabelValue($0.1))\"" }.joined(separator: ",") + "}"
        }
        text += " " + value.text + "\n"
    }

    private static func checkName(_ name: String) throws(PrometheusError) {
        guard isValidMetricName(name) else { throw .invalidMetricName(name) }
    }

    private static func checkLabel(_ name: String) throws(PrometheusError) {
        guard isValidLabelName(name) else { throw .invalidLabelName(name) }
    }

    private static func isLetter(_ c: UInt8) -> Bool { (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) }
    private static func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }
}
