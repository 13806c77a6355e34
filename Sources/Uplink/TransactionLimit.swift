import JSONLines
import PaymentEngine

/// The cost limit a TransactionEventResponse sets (`transactionLimit.maxCost`, issue 15), read
/// for `EngineInput.costLimit`: major units of the session's currency in, minor units out.
public enum TransactionLimit {
    /// What a response says about the cost limit.
    public enum Reading: Equatable, Sendable {
        /// No `transactionLimit.maxCost`: the cap stays as it is.
        case absent
        /// The limit in minor units, rounded down (so the capture never exceeds what the platform
        /// allowed); a limit beyond `Int64` is `Int64.max`, which lowers no cap.
        case maxCost(Int64)
        /// A `maxCost` that is not a number, or is negative: the platform's mistake, for the log.
        case unreadable(String)
    }

    /// A number longer than this (characters) is not read: a limit never needs more.
    public static let maxNumberLength = 64

    /// `transactionLimit.maxCost` of a TransactionEventResponse payload, in minor units of `currency`
    /// (`CurrencyExponent`).
    public static func maxCost(inResponse payload: JSON, currency: String) -> Reading {
        guard let limit = payload["transactionLimit"], let value = limit["maxCost"] else { return .absent }
        let text: String
        switch value {
        case .int(let i): text = String(i)
        case .decimal(let d): text = d
        default: return .unreadable("transactionLimit.maxCost is not a number")
        }
        return minorUnits(text, exponent: CurrencyExponent.of(currency))
    }

    /// A JSON number's text (`-`? digits (`.` digits)? (`e` sign? digits)?) times 10^`exponent`,
    /// rounded down, exactly: no binary floating point touches the limit.
    static func minorUnits(_ text: String, exponent: Int) -> Reading {
        guard text.utf8.count <= maxNumberLength else { return .unreadable("transactionLimit.maxCost is too long") }
        var bytes = Substring(text).utf8[...]
        if bytes.first == UInt8(ascii: "-") {
            // -0 and -0.0 are zero; anything else below zero is no limit a session can have.
            let rest = bytes.dropFirst()
            if !rest.isEmpty, rest.allSatisfy({ $0 == UInt8(ascii: "0") || $0 == UInt8(ascii: ".") }) { return .maxCost(0) }
            return .unreadable("transactionLimit.maxCost is negative")
        }
        func digits(_ b: inout Substring.UTF8View.SubSequence) -> [UInt8] {
            var out: [UInt8] = []
            while let c = b.first, c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") { out.append(c - UInt8(ascii: "0")); b = b.dropFirst() }
            return out
        }
        let whole = digits(&bytes)
        guard !whole.isEmpty else { return .unreadable("transactionLimit.maxCost is not a number") }
        var fraction: [UInt8] = []
        if bytes.first == UInt8(ascii: ".") {
            bytes = bytes.dropFirst()
            fraction = digits(&bytes)
            guard !fraction.isEmpty else { return .unreadable("transactionLimit.maxCost is not a number") }
        }
        var power = 0
        if let e = bytes.first, e == UInt8(ascii: "e") || e == UInt8(ascii: "E") {
            bytes = bytes.dropFirst()
            var negative = false
            if let s = bytes.first, s == UInt8(ascii: "+") || s == UInt8(ascii: "-") { negative = s == UInt8(ascii: "-"); bytes = bytes.dropFirst() }
            let p = digits(&bytes)
            guard !p.isEmpty, p.count <= 4 else { return .unreadable("transactionLimit.maxCost has an unreadable exponent") }
            power = p.reduce(0) { $0 * 10 + Int($1) } * (negative ? -1 : 1)
        }
        guard bytes.isEmpty else { return .unreadable("transactionLimit.maxCost is not a number") }
        // The value is 0.d1d2… · 10^(whole.count + power); minor units keep `exponent` more places.
        let all = whole + fraction
        let keep = whole.count + power + exponent   // how many of `all`'s digits are whole minor units
        var result: Int64 = 0
        if keep > 0 {
            for i in 0..<keep {
                let d = i < all.count ? Int64(all[i]) : 0
                let (m, o1) = result.multipliedReportingOverflow(by: 10)
                let (a, o2) = m.addingReportingOverflow(d)
                if o1 || o2 { return .maxCost(.max) }
                result = a
            }
        }
        return .maxCost(result)
    }
}

extension TransactionReporter {
    /// The session whose transaction this is (`transactionId(_:)` backwards); nil for another
    /// station's or an unknown form. What the daemon needs to post a response's cost limit.
    public func session(ofTransactionId id: String) -> SessionKey? {
        let prefix = "\(stationId.prefix(20))-"
        guard id.hasPrefix(prefix), let k = SessionKey(id.dropFirst(prefix.count)), transactionId(k) == id else { return nil }
        return k
    }
}
