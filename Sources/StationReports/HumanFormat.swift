import Uplink

/// Ages and amounts as the technicians' tables show them.
public enum HumanFormat {
    /// An age in its two largest units: `0s`, `42s`, `3m12s`, `2h05m`, `4d03h` (the second unit
    /// two digits wide, rounded down). A negative age (a wall clock stepped back) is `0s`.
    public static func age(seconds: Int64) -> String {
        let s = max(0, seconds)
        func two(_ v: Int64) -> String { v < 10 ? "0\(v)" : String(v) }
        if s < 60 { return "\(s)s" }
        if s < 3_600 { return "\(s / 60)m\(two(s % 60))s" }
        if s < 86_400 { return "\(s / 3_600)h\(two(s / 60 % 60))m" }
        return "\(s / 86_400)d\(two(s / 3_600 % 24))h"
    }

    /// `12.34 EUR`: minor units as an exact decimal with the currency's exponent (as the uplink
    /// formats amounts), then the code. Without a currency, the number alone (two decimals).
    public static func amount(minor: Int64, currency: String) -> String {
        let number = ReconciliationExport.decimal(minor: minor, exponent: CurrencyExponent.of(currency))
        return currency.isEmpty ? number : "\(number) \(currency)"
    }
}

/// A plain-text table for the terminal: columns as wide as their widest cell, two spaces apart,
/// text left-aligned and numbers right-aligned, no trailing spaces.
public struct TextTable: Sendable {
    /// How a column's cells line up.
    public enum Alignment: Sendable, Equatable { case left, right }

    /// The space between two columns.
    public static let gap = "  "

    public var header: [String]
    public var rows: [[String]]
    /// One per column; nil: right for a column whose every non-empty cell is a number (an amount
    /// with its currency or unit counts: `12.34 EUR`, `1234 Wh`), left for the rest.
    public var alignments: [Alignment]?

    public init(header: [String], rows: [[String]], alignments: [Alignment]? = nil) {
        self.header = header; self.rows = rows; self.alignments = alignments
    }

    /// The table, one line per row after the header, each ending in "\n". Rows shorter than the
    /// header are padded with empty cells; longer ones widen the table.
    public func render() -> String {
        let columns = ([header] + rows).map(\.count).max() ?? 0
        func cell(_ r: [String], _ c: Int) -> String { c < r.count ? r[c] : "" }
        let widths = (0..<columns).map { c in ([header] + rows).map { cell($0, c).count }.max() ?? 0 }
        let align = (0..<columns).map { c -> Alignment in
            if let a = alignments, c < a.count { return a[c] }
            let cells = rows.map { cell($0, c) }.filter { !$0.isEmpty }
            return !cells.isEmpty && cells.allSatisfy(Self.isNumeric) ? .right : .left
        }
        var out = ""
        for r in [header] + rows {
            var line = ""
            for c in 0..<columns {
                let text = cell(r, c), pad = String(repeating: " ", count: widths[c] - text.count)
                if c > 0 { line += Self.gap }
                line += align[c] == .right ? pad + text : text + pad
            }
            while line.last == " " { line.removeLast() }
            out += line + "\n"
        }
        return out
    }

    /// A number, optionally signed, with `.`/`,` inside, optionally followed by one space and a
    /// unit of letters.
    static func isNumeric(_ s: String) -> Bool {
        let parts = s.split(separator: " ", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count) else { return false }
        var n = Substring(parts[0])
        if n.first == "-" || n.first == "+" { n = n.dropFirst() }
        guard let first = n.first, first.isASCII, first.isNumber, let last = n.last, last.isASCII, last.isNumber,
              n.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == "." || $0 == ",") }) else { return false }
        if parts.count == 2 { return !parts[1].isEmpty && parts[1].allSatisfy { $0.isASCII && $0.isLetter } }
        return true
    }
}
