import JSONLines
import PaymentEngine

/// The OCPP 2.1 actions the uplink sends (POST {baseURL}/{stationId}/{Action}).
public enum OCPPAction: String, Sendable, CaseIterable {
    case authorize = "Authorize"
    case transactionEvent = "TransactionEvent"
    case notifySettlement = "NotifySettlement"
    case securityEventNotification = "SecurityEventNotification"
    case statusNotification = "StatusNotification"
    case heartbeat = "Heartbeat"
    /// The device model report a GetBaseReport asked for (OCPP-J only).
    case notifyReport = "NotifyReport"
}

/// RFC 3339 UTC timestamps from wall-clock milliseconds, without Foundation.
public enum RFC3339 {
    /// E.g. `2026-11-25T10:04:05.123Z`; correct before 1970 too.
    public static func format(millis ms: Int64) -> String {
        let days = floorDiv(ms, 86_400_000)
        let inDay = ms - days * 86_400_000
        let (y, m, d) = civil(fromDays: days)
        let h = inDay / 3_600_000, mi = inDay / 60_000 % 60, s = inDay / 1000 % 60, milli = inDay % 1000
        func pad(_ v: Int64, _ width: Int) -> String {
            let t = String(v)
            return String(repeating: "0", count: max(0, width - t.count)) + t
        }
        return "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))T\(pad(h, 2)):\(pad(mi, 2)):\(pad(s, 2)).\(pad(milli, 3))Z"
    }

    /// `a / b` rounded towards negative infinity (dates before 1970 fall on the right day).
    public static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
        let q = a / b
        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
    }

    /// Proleptic Gregorian date from days since 1970-01-01 (H. Hinnant's civil_from_days).
    public static func civil(fromDays z0: Int64) -> (Int64, Int64, Int64) {
        let z = z0 + 719_468
        let era = floorDiv(z, 146_097)
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }
}

/// ISO 4217 minor-unit exponents for the currencies a charger is likely to bill in.
public enum CurrencyExponent {
    public static func of(_ code: String) -> Int {
        switch code {
        case "JPY", "KRW", "ISK", "CLP", "VND": return 0
        case "BHD", "KWD", "OMR", "JOD", "TND": return 3
        default: return 2
        }
    }
}

/// Builders for OCPP 2.1 request payloads. Amounts are exact decimals in major units; card data
/// is the BIN, the last four digits, the brand and the terminal's hash (never a full number).
public enum OCPPPayload {
    /// The DirectPayment idToken: the terminal's card hash, with what PCI allows alongside it.
    public static func idToken(_ card: CardIdentity) -> JSON {
        var info: [JSON] = []
        let digits = card.maskedPAN.filter { $0.isASCII && $0.isNumber }
        if card.maskedPAN.count >= 10, digits.count >= 10 {
            info.append(.object([("additionalIdToken", .string(String(digits.prefix(6)))), ("type", .string("CardBin"))]))
            info.append(.object([("additionalIdToken", .string(String(digits.suffix(4)))), ("type", .string("CardLast4Digits"))]))
        }
        if let brand = paymentBrand(card.brand) {
            info.append(.object([("additionalIdToken", .string(brand)), ("type", .string("PaymentBrand"))]))
        }
        let token = card.hash.isEmpty ? "unknown" : card.hash.map { b -> String in
            let h = String(b, radix: 16, uppercase: true)
            return h.count == 1 ? "0" + h : h
        }.joined()
        var fields: [(String, JSON)] = [("idToken", .string(String(token.prefix(255)))), ("type", .string("DirectPayment"))]
        if !info.isEmpty { fields.append(("additionalInfo", .array(info))) }
        return .object(fields)
    }

    /// OCPP's PaymentBrand names for what terminals report.
    static func paymentBrand(_ brand: String) -> String? {
        switch brand.uppercased() {
        case "VISA": return "Visa"
        case "MASTERCARD", "MC": return "Mastercard"
        case "MAESTRO": return "Maestro"
        case "AMEX", "AMERICAN EXPRESS": return "AMEX"
        case "GIROCARD": return "Girocard"
        case "VPAY", "V PAY": return "VPay"
        case "JCB": return "JCB"
        case "DISCOVER": return "Discover"
        case "DINERS": return "Diners"
        case "UNIONPAY": return "UnionPay"
        default: return nil
        }
    }

    public static func authorize(card: CardIdentity) -> JSON {
        .object([("idToken", idToken(card))])
    }

    /// What a TransactionEvent says about where a session is.
    public enum Stage: Sendable, Equatable {
        /// Approved: the transaction starts; maxCost is the authorised amount.
        case started(authorised: Int64)
        case charging
        case meter(energyWh: Int64, seconds: Int64)
        /// The platform asked for the transaction's state (TriggerMessage): charging or still
        /// waiting for the car, with the energy and time of the last durable meter reading.
        case triggered(charging: Bool, energyWh: Int64, seconds: Int64)
        case ended(StopReason, energyWh: Int64, seconds: Int64, cost: CostBreakdown)
    }

    /// The final cost, split as the tariff computed it (minor units).
    public struct CostBreakdown: Sendable, Equatable {
        public var fixed: Int64, energy: Int64, time: Int64, total: Int64
        public init(fixed: Int64, energy: Int64, time: Int64, total: Int64) {
            self.fixed = fixed; self.energy = energy; self.time = time; self.total = total
        }
    }

    public static func transactionEvent(transactionId: String, seqNo: Int, stage: Stage, at millis: Int64, offline: Bool,
                                        card: CardIdentity, connector: Int, currency: String) -> JSON {
        let exp = CurrencyExponent.of(currency)
        var info: [(String, JSON)] = [("transactionId", .string(String(transactionId.prefix(36))))]
        let eventType: String, trigger: String
        var extra: [(String, JSON)] = []
        switch stage {
        case .started(let authorised):
            eventType = "Started"; trigger = "Authorized"
            info.append(("transactionLimit", .object([("maxCost", .decimal(minor: authorised, exponent: exp))])))
            extra.append(("idToken", idToken(card)))
        case .charging:
            eventType = "Updated"; trigger = "ChargingStateChanged"
            info.append(("chargingState", .string("Charging")))
        case let .meter(energy, seconds):
            eventType = "Updated"; trigger = "MeterValuePeriodic"
            info.append(("chargingState", .string("Charging")))
            info.append(("timeSpentCharging", .number(seconds)))
            extra.append(("meterValue", meterValue(energy, millis, context: "Sample.Periodic")))
        case let .triggered(charging, energy, seconds):
            eventType = "Updated"; trigger = "Trigger"
            // Approved and waiting for the car is EVConnected once the cable is in, but the
            // reporter only knows the relay: Idle until it closed is the state it can vouch for.
            info.append(("chargingState", .string(charging ? "Charging" : "Idle")))
            info.append(("timeSpentCharging", .number(seconds)))
            extra.append(("meterValue", meterValue(energy, millis, context: "Trigger")))
        case let .ended(reason, energy, seconds, cost):
            eventType = "Ended"
            trigger = triggerReason(reason)
            info.append(("chargingState", .string("Idle")))
            info.append(("timeSpentCharging", .number(seconds)))
            info.append(("stoppedReason", .string(stoppedReason(reason))))
            extra.append(("meterValue", meterValue(energy, millis, context: "Transaction.End")))
            func price(_ minor: Int64) -> JSON { .object([("inclTax", .decimal(minor: minor, exponent: exp))]) }
            extra.append(("costDetails", .object([
                ("totalCost", .object([("currency", .string(currency)), ("typeOfCost", .string("NormalCost")),
                                       ("fixed", price(cost.fixed)), ("energy", price(cost.energy)), ("chargingTime", price(cost.time)),
                                       ("total", price(cost.total))])),
                ("totalUsage", .object([("energy", .number(energy)), ("chargingTime", .number(seconds)), ("idleTime", .number(0))])),
            ])))
        }
        var fields: [(String, JSON)] = [("eventType", .string(eventType)), ("timestamp", .string(RFC3339.format(millis: millis))),
                                        ("triggerReason", .string(trigger)), ("seqNo", .number(seqNo))]
        if offline { fields.append(("offline", .bool(true))) }
        fields.append(("transactionInfo", .object(info)))
        fields.append(("evse", .object([("id", .number(connector + 1)), ("connectorId", .number(1))])))
        return .object(fields + extra)
    }

    static func meterValue(_ energyWh: Int64, _ millis: Int64, context: String) -> JSON {
        .array([.object([("timestamp", .string(RFC3339.format(millis: millis))),
                         ("sampledValue", .array([.object([("value", .number(energyWh)),
                                                           ("measurand", .string("Energy.Active.Import.Register")),
                                                           ("context", .string(context)),
                                                           ("unitOfMeasure", .object([("unit", .string("Wh"))]))])]))])])
    }

    static func triggerReason(_ r: StopReason) -> String {
        switch r {
        case .tapToStop: return "StopAuthorized"
        case .unplugged: return "EVDeparted"
        case .costLimit: return "CostLimitReached"
        case .operatorCommand: return "RemoteStop"
        case .fault, .relayRefused: return "AbnormalCondition"
        case .shutdown: return "ResetCommand"
        case .recovery: return "TxResumed"
        }
    }

    static func stoppedReason(_ r: StopReason) -> String {
        switch r {
        case .tapToStop: return "Local"
        case .unplugged: return "EVDisconnected"
        case .costLimit: return "LocalOutOfCredit"
        case .operatorCommand: return "Remote"
        case .fault, .relayRefused: return "Other"
        case .shutdown: return "Reboot"
        case .recovery: return "PowerLoss"
        }
    }

    /// NotifySettlement: the capture (Settled), a release (Canceled), a refusal (Rejected) or a failure.
    public enum Settlement: String, Sendable { case settled = "Settled", canceled = "Canceled", rejected = "Rejected", failed = "Failed" }

    public static func notifySettlement(transactionId: String, pspRef: String, status: Settlement, amount: Int64, currency: String,
                                        at millis: Int64, statusInfo: String? = nil, receiptId: String? = nil) -> JSON {
        var f: [(String, JSON)] = [("transactionId", .string(String(transactionId.prefix(36)))), ("pspRef", .string(String(pspRef.prefix(255)))),
                                   ("status", .string(status.rawValue)),
                                   ("settlementAmount", .decimal(minor: amount, exponent: CurrencyExponent.of(currency))),
                                   ("settlementTime", .string(RFC3339.format(millis: millis)))]
        if let statusInfo { f.append(("statusInfo", .string(String(statusInfo.prefix(500))))) }
        if let receiptId { f.append(("receiptId", .string(String(receiptId.prefix(50))))) }
        return .object(f)
    }

    public static func securityEvent(type: String, at millis: Int64, techInfo: String?) -> JSON {
        var f: [(String, JSON)] = [("type", .string(String(type.prefix(50)))), ("timestamp", .string(RFC3339.format(millis: millis)))]
        if let techInfo { f.append(("techInfo", .string(String(techInfo.prefix(255))))) }
        return .object(f)
    }

    public enum ConnectorStatus: String, Sendable { case available = "Available", occupied = "Occupied", unavailable = "Unavailable", faulted = "Faulted" }

    public static func statusNotification(connector: Int, status: ConnectorStatus, at millis: Int64) -> JSON {
        .object([("timestamp", .string(RFC3339.format(millis: millis))), ("connectorStatus", .string(status.rawValue)),
                 ("evseId", .number(connector + 1)), ("connectorId", .number(1))])
    }

    public static func heartbeat() -> JSON { .object([]) }
}
