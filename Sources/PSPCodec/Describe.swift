import JSONLines

/// JSON renderings of decoded messages for technicians (`paybridgectl decode`) and records.
/// Card data goes through `PANMask`; encrypted card data is shown by length only.
public enum PSPDescribe {
    public static func dol(_ items: [TLV]) -> JSON {
        .array(items.map { t in
            var f: [(String, JSON)] = [("tag", .string(t.tagHex)), ("length", .number(t.value.count))]
            switch t.tag {
            case DOLTag.maskedPAN:
                f.append(("maskedPAN", .string(PANMask.mask(String(decoding: t.value, as: UTF8.self)))))
            case DOLTag.encryptedCardData:
                break
            case DOLTag.brandName, DOLTag.hostResponseCode:
                f.append(("text", .string(String(decoding: t.value, as: UTF8.self))))
            default:
                let text = String(decoding: t.value, as: UTF8.self)
                // A terminal that puts a full number in an undocumented tag must not leak it here.
                if PANMask.containsPANLikeRun(text) {
                    f.append(("redacted", .bool(true)))
                } else {
                    f.append(("value", .string(hexString(t.value))))
                }
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
        case .other: return []
        }
    }

    /// The decoded fields of a host → terminal command.
    public static func fields(_ c: HostCommand) -> [(String, JSON)] {
        func tags(_ t: [UInt32]) -> JSON { .array(t.map { .string(TLV(tag: $0, value: []).tagHex) }) }
        switch c {
        case .disable, .enable, .synchronize, .getStatus, .requestIDs, .authSession, .cancelSession, .removeSessions:
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
