import JSONLines
import Uplink

/// `paybridgectl export`: every settled, voided, declined and reconciliation-needed session, one
/// record each, for the operator's reconciliation with the acquirer. Pure: rows in, text out.
public enum ReconciliationExport {
    /// The columns, in order: the CSV header and the JSON keys.
    public static let columns = ["station_id", "session_id", "connector", "start_utc", "end_utc", "masked_card", "brand",
                                 "terminal_reference", "payment_reference", "authorised", "captured", "currency", "energy_wh",
                                 "final_state", "note", "meter_serial", "meter_start_wh", "meter_end_wh"]

    /// The outcomes exported, as `final_state` names them: open sessions and abandoned flows
    /// (nothing was authorised) are not. A test transaction is exported by its outcome like any
    /// other (the acquirer saw it), its note starting with `testNote`.
    public static let exportedStates: Set<SessionState> = [.settled, .voided, .declined, .needsReconciliation]

    /// What a test transaction's note starts with.
    public static let testNote = "test transaction"

    /// The CSV line break (RFC 4180).
    public static let lineBreak = "\r\n"

    /// The rows that are exported, order kept.
    public static func exported(_ rows: [SessionRow]) -> [SessionRow] {
        rows.filter { finalState($0) != nil }
    }

    /// The `final_state` of a closed session whose outcome is exported; nil for the rest.
    public static func finalState(_ r: SessionRow) -> SessionState? {
        guard !r.state.isOpen, let o = r.outcome, exportedStates.contains(SessionState(o)) else { return nil }
        return SessionState(o)
    }

    /// RFC 4180 CSV with a header row, CRLF line breaks (after the last record too). A missing
    /// value (no start, no amount) is an empty field.
    ///
    /// Spreadsheet formula injection: a field that starts with `=`, `+`, `-`, `@`, a tab or a CR and
    /// is not a plain number gets a leading apostrophe (OWASP's advice), which spreadsheets show
    /// as text and do not evaluate; the field is then quoted by the usual rule if it needs to be.
    /// A plain number (`-0.05`) is left alone, so amounts stay numbers. The apostrophe changes the
    /// value: a reader of the CSV that is not a spreadsheet sees it (the JSON form has no such prefix).
    public static func csv(_ rows: [SessionRow], stationId: String) -> String {
        var out = columns.map(csvField).joined(separator: ",") + lineBreak
        for r in exported(rows) {
            out += fields(r, stationId: stationId).map { csvField(neutralised($0 ?? "")) }.joined(separator: ",") + lineBreak
        }
        return out
    }

    /// One JSON object per line (JSONLines' `JSON`), keys as `columns`; amounts exact decimals in
    /// major units, connector and energy integers, a missing value `null`. Every line ends in "\n".
    public static func json(_ rows: [SessionRow], stationId: String) -> String {
        var out = ""
        for r in exported(rows) {
            jsonObject(r, stationId: stationId).write(to: &out)
            out += "\n"
        }
        return out
    }

    /// The JSON object of one row (whatever its state).
    public static func jsonObject(_ r: SessionRow, stationId: String) -> JSON {
        let text = fields(r, stationId: stationId)
        func str(_ i: Int) -> JSON { text[i].map(JSON.string) ?? .null }
        func amount(_ v: Int64?) -> JSON { v.map { JSON.decimal(minor: $0, exponent: r.currencyExponent) } ?? .null }
        let values: [JSON] = [str(0), str(1), r.connector.map { JSON.number($0) } ?? .null, str(3), str(4), str(5), str(6), str(7), str(8),
                              amount(r.authorised), amount(r.captured), str(11), r.energyWh.map { JSON.number($0) } ?? .null, str(13), str(14),
                              str(15), r.meterStartWh.map { JSON.number($0) } ?? .null, r.meterEndWh.map { JSON.number($0) } ?? .null]
        return .object(Array(zip(columns, values)))
    }

    /// One row's fields as text, in `columns` order; nil where the row has no value. The
    /// session_id is the OCPP transactionId the uplink reported the session under (station id,
    /// '-', the engine's session key), so that the platform's records match it.
    public static func fields(_ r: SessionRow, stationId: String) -> [String?] {
        func amount(_ v: Int64?) -> String? { v.map { decimal(minor: $0, exponent: r.currencyExponent) } }
        let note = r.state != .test ? r.note : r.note.isEmpty ? testNote : "\(testNote); \(r.note)"
        return [stationId, TransactionReporter(stationId: stationId).transactionId(r.session), r.connector.map { String($0) },
                r.startedAt.map(UTCDate.iso8601), r.endedAt.map(UTCDate.iso8601),
                r.maskedPAN, r.brand, r.terminalReference, r.paymentReference,
                amount(r.authorised), amount(r.captured), r.currency, r.energyWh.map { String($0) },
                (finalState(r) ?? r.state).rawValue, note,
                r.meterSerial.isEmpty ? nil : r.meterSerial, r.meterStartWh.map { String($0) }, r.meterEndWh.map { String($0) }]
    }

    /// `minor` units as an exact decimal in major units ("12.34"), the way the uplink writes amounts.
    public static func decimal(minor: Int64, exponent: Int) -> String {
        if case .decimal(let text) = JSON.decimal(minor: minor, exponent: exponent) { return text }
        return String(minor)
    }

    /// The field quoted when it holds a comma, a quote, CR or LF (quotes doubled).
    public static func csvField(_ field: String) -> String {
        var needs = false
        for u in field.unicodeScalars where u == "," || u == "\"" || u == "\r" || u == "\n" { needs = true; break }
        guard needs else { return field }
        var out = "\""
        for c in field.unicodeScalars {
            if c == "\"" { out += "\"\"" } else { out.unicodeScalars.append(c) }
        }
        return out + "\""
    }

    /// The field with a leading apostrophe when a spreadsheet would take it for a formula.
    public static func neutralised(_ field: String) -> String {
        guard let first = field.unicodeScalars.first, "=+-@\t\r".unicodeScalars.contains(first), !isPlainNumber(field) else { return field }
        return "'" + field
    }

    /// `-?digits(.digits)?`: what the export writes for amounts, which must stay numbers.
    static func isPlainNumber(_ s: String) -> Bool {
        var b = Array(s.utf8)[...]
        if b.first == UInt8(ascii: "-") { b = b.dropFirst() }
        let parts = b.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count) else { return false }
        return parts.allSatisfy { !$0.isEmpty && $0.allSatisfy { $0 >= 0x30 && $0 <= 0x39 } }
    }
}
