import JSONLines
import PaymentEngine

/// Why a JSON value is not a `SessionRow` (what the diagnostic socket carried is damaged or from
/// another version).
public enum SessionRowDecodeError: Error, Equatable, Sendable {
    /// The value is not a JSON object.
    case notAnObject
    /// A required key is missing (its name).
    case missing(String)
    /// A key holds a value of the wrong kind or out of range (its name).
    case badValue(String)
}

extension SessionRow {
    /// The currency exponents a decoded row may carry: ISO 4217's go up to 4; more would be a
    /// damaged value, and the amount's text would be mostly zeros.
    public static let currencyExponents: ClosedRange<Int64> = 0...9

    /// The row as one JSON object, lossless: what the diagnostic socket sends `paybridgectl`.
    /// Amounts stay integers in minor units (`*_minor`, with `currency_exponent`), times wall
    /// milliseconds (`*_ms`); a missing value is `null`.
    public var json: JSON {
        func opt(_ v: Int64?) -> JSON { v.map { JSON.int($0) } ?? .null }
        return .object([
            ("session", .number(session)),
            ("transaction_id", transactionId.map(JSON.string) ?? .null),
            ("connector", connector.map { JSON.number($0) } ?? .null),
            ("start_ms", opt(startedAt)),
            ("end_ms", opt(endedAt)),
            ("masked_card", .string(maskedPAN)),
            ("brand", .string(brand)),
            ("terminal_reference", .string(terminalReference)),
            ("payment_reference", .string(paymentReference)),
            ("authorised_minor", opt(authorised)),
            ("captured_minor", opt(captured)),
            ("currency", .string(currency)),
            ("currency_exponent", .number(currencyExponent)),
            ("energy_wh", opt(energyWh)),
            ("meter_serial", .string(meterSerial)),
            ("meter_start_wh", opt(meterStartWh)),
            ("meter_end_wh", opt(meterEndWh)),
            ("state", .string(state.rawValue)),
            ("outcome", outcome.map { JSON.string(SessionState($0).rawValue) } ?? .null),
            ("note", .string(note)),
        ])
    }

    /// The row `json` made.
    public init(json: JSON) throws(SessionRowDecodeError) {
        guard case .object = json else { throw .notAnObject }
        func value(_ key: String) throws(SessionRowDecodeError) -> JSON {
            guard let v = json[key] else { throw .missing(key) }
            return v
        }
        func int(_ key: String) throws(SessionRowDecodeError) -> Int64? {
            switch try value(key) {
            case .null: return nil
            case .int(let v): return v
            default: throw .badValue(key)
            }
        }
        func text(_ key: String) throws(SessionRowDecodeError) -> String {
            guard let s = try value(key).stringValue else { throw .badValue(key) }
            return s
        }
        guard let key = try int("session"), key >= 0 else { throw .badValue("session") }
        guard let state = SessionState(rawValue: try text("state")) else { throw .badValue("state") }
        self.init(session: SessionKey(key), state: state)
        switch try value("transaction_id") {
        case .null: transactionId = nil
        case .string(let s): transactionId = s
        default: throw .badValue("transaction_id")
        }
        if let c = try int("connector") {
            guard (1...Int64(Int32.max)).contains(c) else { throw .badValue("connector") }
            connector = Int(c)
        }
        startedAt = try int("start_ms")
        endedAt = try int("end_ms")
        maskedPAN = try text("masked_card")
        brand = try text("brand")
        terminalReference = try text("terminal_reference")
        paymentReference = try text("payment_reference")
        authorised = try int("authorised_minor")
        captured = try int("captured_minor")
        currency = try text("currency")
        guard let e = try int("currency_exponent"), Self.currencyExponents.contains(e) else { throw .badValue("currency_exponent") }
        currencyExponent = Int(e)
        energyWh = try int("energy_wh")
        // Added by issue 16: absent from an older daemon's rows.
        if json["meter_serial"] != nil { meterSerial = try text("meter_serial") }
        if json["meter_start_wh"] != nil { meterStartWh = try int("meter_start_wh") }
        if json["meter_end_wh"] != nil { meterEndWh = try int("meter_end_wh") }
        switch try value("outcome") {
        case .null: outcome = nil
        case .string(let s):
            guard let o = SessionOutcome.allCases.first(where: { SessionState($0).rawValue == s }) else { throw .badValue("outcome") }
            outcome = o
        default: throw .badValue("outcome")
        }
        note = try text("note")
    }
}

/// `paybridgectl sessions`' table: one line per row, amounts in major units with their
/// currency, times in UTC, how long each session has run (open) or ran (closed).
public enum SessionTable {
    public static let header = ["SESSION", "CONN", "STATE", "STARTED", "DURATION", "CARD", "BRAND",
                                "AUTHORISED", "CAPTURED", "ENERGY_WH", "NOTE"]

    /// The rows as a `TextTable`; `now` (wall millis) measures how long open sessions have run.
    public static func table(_ rows: [SessionRow], now: Int64) -> TextTable {
        TextTable(header: header, rows: rows.map { r in
            let duration = r.startedAt.map { start in HumanFormat.age(seconds: ((r.endedAt ?? now) - start) / 1000) } ?? ""
            func amount(_ v: Int64?) -> String { v.map { HumanFormat.amount(minor: $0, currency: r.currency) } ?? "" }
            // A note is one cell: its line breaks would break the table.
            let note = String(r.note.map { $0 == "\n" || $0 == "\r" || $0 == "\r\n" ? " " : $0 })
            return [r.transactionId ?? String(r.session), r.connector.map { String($0) } ?? "", r.state.rawValue,
                    r.startedAt.map(UTCDate.iso8601) ?? "", duration, r.maskedPAN, r.brand,
                    amount(r.authorised), amount(r.captured), r.energyWh.map { String($0) } ?? "", note]
        }, alignments: [.left, .right, .left, .left, .right, .left, .left, .right, .right, .right, .left])
    }
}
