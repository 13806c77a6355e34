import CardSafety
import JSONLines

/// JSON renderings of decoded messages for technicians (`paybridgectl decode`) and records.
///
/// A technician pastes this output into tickets, so it shows a DOL value only for tags known to
/// hold no card data (`shownTags`), and even those only after `CardDataFilter` found nothing in
/// them; every other tag is shown by tag and length alone. The card tags (5A PAN, 57 and 9F6B
/// track 2, 56 and 9F1F track 1, 5F20 name, 5F24 expiry, DFAA6C encrypted card data, …) are never
/// on the list, and neither is an undocumented tag a terminal might fill with anything.
public enum PSPDescribe {
    /// How an allowed tag's value is shown.
    public enum Rendering: Sendable {
        /// Through `PANMask` (the terminal's masked number).
        case maskedPAN
        /// As text through the card-data filter.
        case text
        /// As text when printable, else hex; dropped when the filter finds card data.
        case reference
        /// As hex; dropped when the filter finds card data.
        case hex
        /// The terminal's card hash: hex, unless the whole value is a card number.
        case cardHash
    }

    /// The tags whose values may be shown. Payter's own (psp.md, the DOL page) and the EMV
    /// data elements that describe the transaction or the application, not the card holder.
    public static let shownTags: [UInt32: Rendering] = {
        var t: [UInt32: Rendering] = [
            DOLTag.maskedPAN: .maskedPAN,
            DOLTag.brandName: .text, DOLTag.hostResponseCode: .text,
            DOLTag.hostTransactionReference: .reference, DOLTag.itemReference: .reference,
            DOLTag.brandID: .hex,
            0x50: .text, 0x9F12: .text,                        // application label, preferred name
        ]
        for tag in DOLTag.cardHashCandidates { t[tag] = .cardHash }
        // Transaction and application data: amounts, currency, country, date, type, AID, AIP,
        // TVR, CVM results, cryptogram and its data, ATC, unpredictable number, PAN sequence number.
        for tag: UInt32 in [0x9F02, 0x9F03, 0x5F2A, 0x9F1A, 0x9A, 0x9C, 0x9F21, 0x4F, 0x84, 0x9F06, 0x82, 0x95,
                            0x9B, 0x9F34, 0x9F26, 0x9F27, 0x9F10, 0x9F36, 0x9F37, 0x5F34, 0x9F33, 0x9F35, 0x9F09,
                            0x9F41, 0x9F1E, 0x9F6E, 0x9F66, 0x8A] {
            t[tag] = .hex
        }
        return t
    }()

    public static func dol(_ items: [TLV]) -> JSON {
        .array(items.map { t in
            var f: [(String, JSON)] = [("tag", .string(t.tagHex)), ("length", .number(t.value.count))]
            let text = String(decoding: t.value, as: UTF8.self)
            switch shownTags[t.tag] {
            case .maskedPAN?:
                let c = CardData(maskedPAN: text)
                if let p = c.maskedPAN { f.append(("maskedPAN", .string(p))) } else { f.append(("withheld", .string("card data"))) }
            case .text?:
                let (clean, found) = CardDataFilter.scrub(text)
                f.append(found == nil ? ("text", .string(clean)) : ("withheld", .string("card data")))
            case .reference?:
                if CardDataFilter.find(in: t.value) != nil {
                    f.append(("withheld", .string("card data")))
                } else if CardDataFilter.isPrintableText(t.value) {
                    f.append(("text", .string(text)))
                } else {
                    f.append(("value", .string(hexString(t.value))))
                }
            case .hex?:
                f.append(CardDataFilter.find(in: t.value) == nil ? ("value", .string(hexString(t.value))) : ("withheld", .string("card data")))
            case .cardHash?:
                f.append(CardDataFilter.isCardData(wholeValue: t.value) ? ("withheld", .string("card data"))
                                                                          : ("value", .string(hexString(t.value))))
            case nil:
                f.append(("withheld", .string("not a tag known to hold no card data")))
            }
            return .object(f)
        })
    }

    static func card(_ items: [TLV]) -> [(String, JSON)] {
        let c = CardData(dol: items)
        var f: [(String, JSON)] = []
        if let p = c.maskedPAN { f.append(("maskedPAN", .string(p))) }
        if let h = c.cardHash { f.append(("cardHash", .string(hexString(h)))) }
        if let b = c.brand { f.append(("brand", .string(b))) }
        if let r = c.hostReference { f.append(("hostReference", .string(hexString(r)))) }
        return f
    }

    /// The decoded fields of a terminal → host message.
    public static func fields(_ m: TerminalMessage) -> [(String, JSON)] {
        switch m {
        case .result(let r):
            var f: [(String, JSON)] = [("ok", .bool(r.ok))]
            if let reason = r.reason { f += [("reason", .number(reason)), ("reasonText", .string(ResultReason.name(reason)))] }
            return f
        case .status(let s):
            return [("state", .string(s.state?.description ?? "unknown")), ("stateCode", .number(s.rawState)),
                    ("transactionRunning", .bool(s.transactionRunning))]
        case .synchronize, .sessionCancelled: return []
        case .identity(let id):
            var f: [(String, JSON)] = [("layout", .string(id.layout.rawValue)), ("serialNumber", .string(id.serialNumber))]
            if let m = id.model { f.append(("model", .string(m))) }
            if let fw = id.firmware { f.append(("firmware", .string(fw))) }
            if !id.applications.isEmpty { f.append(("applications", .array(id.applications.map { .string($0) }))) }
            if let s = id.simSerial { f.append(("simSerial", .string(s))) }
            if !id.samSerials.isEmpty { f.append(("samSerials", .array(id.samSerials.map { .string($0) }))) }
            if let mac = id.macAddress { f.append(("macAddress", .string(mac))) }
            return f
        case .uiEvent(let b): return [("buttonID", .string(b))]
        case let .sessionList(total, ids):
            return [("total", .number(total)), ("sessionIDs", .array(ids.map { .number($0) }))]
        case let .sessionApproved(id, d):
            return [("sessionID", .number(id)), ("dol", dol(d))] + card(d)
        case let .sessionDeclined(reason, d):
            var f: [(String, JSON)] = []
            if let reason { f += [("reason", .number(reason)), ("reasonText", .string(DeclineReason.name(reason)))] }
            return f + [("dol", dol(d))]
        case .cardRead(let d), .propCardRead(let d):
            return [("dol", dol(d))] + card(d)
        case let .sessionPartiallyApproved(id, amount, d):
            return [("sessionID", .number(id)), ("amount", .number(amount)), ("dol", dol(d))] + card(d)
        case .transactionEvent(let e):
            let names: [UInt8: String] = [0: "started", 1: "readingCard", 2: "cardReadComplete", 3: "transactionComplete"]
            return [("event", .number(e)), ("eventText", .string(names[e] ?? "unknown"))]
        case .updateSessionResult(let u):
            var f: [(String, JSON)] = [("outcome", .number(u.outcome)), ("sessionID", .number(u.sessionID)),
                                       ("authorisedTotal", .number(u.authorisedTotal)), ("delta", .number(u.delta))]
            if let r = u.declineReason { f.append(("declineReason", .number(r))) }
            return f
        case .receipt(let b): return [("receiptLength", .number(b.count))]
        case .connectionInfo(let c):
            switch c.reading {
            case .text(let t): return [("text", .string(t))]
            case .hex(let h): return [("hex", .string(h))]
            case .withheld: return [("withheld", .string("card data"))]
            }
        case .other: return []
        }
    }

    /// The decoded fields of a host → terminal command.
    public static func fields(_ c: HostCommand) -> [(String, JSON)] {
        func tags(_ t: [UInt32]) -> JSON { .array(t.map { .string(TLV(tag: $0, value: []).tagHex) }) }
        switch c {
        case .disable, .enable, .synchronize, .getStatus, .requestIDs, .authSession, .cancelSession, .removeSessions,
             .getConnectionInfo:
            return []
        case let .protocolSetup(v, o): return [("version", .number(v)), ("options", .number(o.rawValue))]
        case let .setup(t, a):
            return [("sessionTimeoutSeconds", .number(t)), ("timeoutAction", .string(a == .void ? "void" : "commitFull"))]
        case .uiRequest(let fields): return [("fields", .object(fields.map { ($0.key, .string($0.value)) }))]
        case .listSessions(let o): return [("offset", .number(o))]
        case .voidSession(let id), .getReceipt(let id): return [("sessionID", .number(id))]
        case .startSession(let s):
            var f: [(String, JSON)] = [("amount", .number(s.amount))]
            if let r = s.reference { f.append(("reference", .number(r))) }
            f.append(("dolTags", tags(s.dolTags)))
            if let q = s.qrURL { f.append(("qrURL", .string(q))) }
            if let r = s.referenceString { f.append(("referenceString", .string(r))) }
            return f
        case let .commitSession(id, amount): return [("sessionID", .number(id)), ("amount", .number(amount))]
        case .readCard(let r): return [("reference", .number(r.reference)), ("dolTags", tags(r.dolTags))]
        case .selectLanguage(let p): return [("payload", .string(hexString(p)))]
        case let .updateSession(id, total): return [("sessionID", .number(id)), ("total", .number(total))]
        case .control(let c): return [("command", .number(c))]
        case .raw: return []
        }
    }
}
