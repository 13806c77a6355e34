import WireFormat

/// Header numbers that Payter's own pages disagree on, made configurable (psp.md §4).
public struct PSPHeaderMap: Equatable, Sendable {
    /// Read Card: 0x40 per the command list, 0x41 per its own page.
    public var readCard: UInt8
    /// Select Language: 0x41 per the command list, 0x40 per the setup page.
    public var selectLanguage: UInt8

    public init(readCard: UInt8 = 0x40, selectLanguage: UInt8 = 0x41) {
        self.readCard = readCard; self.selectLanguage = selectLanguage
    }
    public static let standard = PSPHeaderMap()
}

/// A request from the host (charger controller) to the terminal.
public enum HostCommand: Equatable, Sendable {
    case disable
    case enable
    /// Protocol (0x13): version (3 recommended) and option bits. Allowed in ONLINE only.
    case protocolSetup(version: UInt8, options: ProtocolOptions)
    /// Setup (0x23): approved-session lifetime and what the terminal does when it expires.
    case setup(sessionTimeoutSeconds: UInt32, action: SessionTimeoutAction)
    case synchronize
    case getStatus
    case requestIDs
    case uiRequest([UIField])
    /// List Sessions (P6X): open sessions from `offset`.
    case listSessions(offset: UInt8)
    case voidSession(sessionID: UInt32)
    case startSession(StartSession)
    /// Commit Session: capture `amount` (minor units) of an approved session.
    case commitSession(sessionID: UInt32, amount: UInt32)
    /// Auth Session: authorise the amount given in Start Session (payload empty).
    case authSession
    case cancelSession
    case readCard(ReadCard)
    case selectLanguage([UInt8])
    /// Update Session (Apollo): new total to authorise.
    case updateSession(sessionID: UInt32, total: UInt32)
    case getReceipt(sessionID: UInt32)
    /// Control (Apollo): 0x00 = reboot.
    case control(UInt8)
    /// Get Connection Info (0x44, Apollo): the terminal's network information. Sent with an empty
    /// payload [INFERRED]: psp.md §4 names the command but its payload layout is [NOT FOUND].
    case getConnectionInfo
    case removeSessions
    /// Anything else, kept byte for byte.
    case raw(header: UInt8, payload: [UInt8])

    /// The command's name as in Payter's command list.
    public var name: String {
        switch self {
        case .disable: return "Disable"
        case .enable: return "Enable"
        case .protocolSetup: return "Protocol"
        case .setup: return "Setup"
        case .synchronize: return "Synchronize"
        case .getStatus: return "GetStatus"
        case .requestIDs: return "RequestIds"
        case .uiRequest: return "UIRequest"
        case .listSessions: return "ListSessions"
        case .voidSession: return "VoidSession"
        case .startSession: return "StartSession"
        case .commitSession: return "CommitSession"
        case .authSession: return "AuthSession"
        case .cancelSession: return "CancelSession"
        case .readCard: return "ReadCard"
        case .selectLanguage: return "SelectLanguage"
        case .updateSession: return "UpdateSession"
        case .getReceipt: return "GetReceipt"
        case .control: return "Control"
        case .getConnectionInfo: return "GetConnectionInfo"
        case .removeSessions: return "RemoveSessions"
        case .raw(let h, _): return HostCommand.rawName(h)
        }
    }

    static func rawName(_ h: UInt8) -> String {
        switch h {
        case 0x38: return "PropCardExchange"
        case 0x39: return "ReadFile"
        case 0x43: return "Mifare"
        case 0x44: return "GetConnectionInfo"
        case 0x46: return "GetTransactionRecord"
        default: return "Unknown"
        }
    }

    /// Header byte and payload.
    public func encode(headers: PSPHeaderMap = .standard) -> (header: UInt8, payload: [UInt8]) {
        var w = ByteWriter()
        let header: UInt8
        switch self {
        case .disable: header = 0x11
        case .enable: header = 0x12
        case let .protocolSetup(v, o): header = 0x13; w.u8(v); w.u32be(o.rawValue)
        case let .setup(t, a): header = 0x23; w.u32be(t); w.u8(a.rawValue)
        case .synchronize: header = 0x24
        case .getStatus: header = 0x26
        case .requestIDs: header = 0x27
        case .uiRequest(let fields): header = 0x28; for f in fields { w.cString(f.key); w.cString(f.value) }
        case .listSessions(let o): header = 0x30; w.u8(o)
        case .voidSession(let id): header = 0x33; w.u32be(id)
        case .startSession(let s):
            header = 0x34
            w.u32be(s.amount)
            w.u32be(s.reference ?? 0)
            let tags = BERTLV.encodeTagList(s.dolTags)
            w.u8(UInt8(clamping: tags.count)); w.append(tags.prefix(255))
            let last = [s.paymentMethods != nil, s.logo != nil, s.hideAmount != nil, s.qrURL != nil,
                        s.referenceString != nil, s.secondReference != nil].lastIndex(of: true) ?? -1
            if last >= 0 { w.u8(s.paymentMethods ?? 0) }
            if last >= 1 { w.cString(s.logo ?? "") }
            if last >= 2 { w.u8((s.hideAmount ?? false) ? 1 : 0) }
            if last >= 3 { w.cString(s.qrURL ?? "") }
            if last >= 4 { w.cString(s.referenceString ?? "") }
            if last >= 5 { w.cString(s.secondReference ?? "") }
        case let .commitSession(id, amount): header = 0x35; w.u32be(id); w.u32be(amount)
        case .authSession: header = 0x36
        case .cancelSession: header = 0x37
        case .readCard(let r):
            header = headers.readCard
            w.u32be(r.reference)
            let tags = BERTLV.encodeTagList(r.dolTags)
            w.u8(UInt8(clamping: tags.count)); w.append(tags.prefix(255))
            let last = [r.paymentMethods != nil, r.logo != nil, r.qrURL != nil, r.referenceString != nil,
                        r.secondReference != nil, r.presentCardMessage != nil].lastIndex(of: true) ?? -1
            if last >= 0 { w.u8(r.paymentMethods ?? 0) }
            if last >= 1 { w.cString(r.logo ?? "") }
            if last >= 2 { w.cString(r.qrURL ?? "") }
            if last >= 3 { w.cString(r.referenceString ?? "") }
            if last >= 4 { w.cString(r.secondReference ?? "") }
            if last >= 5 { w.cString(r.presentCardMessage ?? "") }
        case .selectLanguage(let p): header = headers.selectLanguage; w.append(p)
        case let .updateSession(id, total): header = 0x42; w.u32be(id); w.u32be(total)
        case .getReceipt(let id): header = 0x45; w.u32be(id)
        case .control(let c): header = 0x48; w.u8(c)
        case .getConnectionInfo: header = 0x44
        case .removeSessions: header = 0x56
        case let .raw(h, p): header = h; w.append(p)
        }
        return (header, w.bytes)
    }

    /// Decodes a host → terminal frame (the simulator's side, and `paybridgectl decode --from host`).
    /// Lenient where Payter's docs are: Start Session of 4, 8 or ≥9 bytes, missing NULs at the end.
    public static func decode(header: UInt8, payload: ArraySlice<UInt8>, headers: PSPHeaderMap = .standard)
        throws(PSPMessageError) -> HostCommand {
        var r = ByteReader(payload)
        switch header {
        case 0x11: return .disable
        case 0x12: return .enable
        case 0x13:
            let v = try r.u8("version")
            // Options absent: version 3 with no options is the documented default.
            let o = r.isAtEnd ? 0 : try r.u32be("options")
            return .protocolSetup(version: v, options: ProtocolOptions(rawValue: o))
        case 0x23:
            let t = try r.u32be("session timeout")
            // The page says length 4 but lists 5 bytes; a missing action byte reads as void.
            let a = r.isAtEnd ? SessionTimeoutAction.void.rawValue : try r.u8("timeout action")
            guard let action = SessionTimeoutAction(rawValue: a) else { throw .invalid(field: "timeout action") }
            return .setup(sessionTimeoutSeconds: t, action: action)
        case 0x24: return .synchronize
        case 0x26: return .getStatus
        case 0x27: return .requestIDs
        case 0x28:
            var fields: [UIField] = []
            while !r.isAtEnd {
                let k = try r.cString("key")
                let v = r.isAtEnd ? "" : try r.cString("value")
                fields.append(UIField(k, v))
            }
            return .uiRequest(fields)
        case 0x30: return .listSessions(offset: r.isAtEnd ? 0 : try r.u8("offset"))
        case 0x33: return .voidSession(sessionID: try r.u32be("session ID"))
        case 0x34:
            var s = StartSession(amount: try r.u32be("amount"))
            if r.remaining >= 4 { s.reference = try r.u32be("reference") }
            if !r.isAtEnd {
                let n = Int(try r.u8("DOL list length"))
                s.dolTags = try BERTLV.parseTagList(try r.take(n, "DOL list"))
            }
            if !r.isAtEnd { s.paymentMethods = try r.u8("payment methods") }
            if !r.isAtEnd { s.logo = try r.cString("logo") }
            if !r.isAtEnd { s.hideAmount = try r.u8("hide amount") != 0 }
            if !r.isAtEnd { s.qrURL = try r.cString("QR URL") }
            if !r.isAtEnd { s.referenceString = try r.cString("reference string") }
            if !r.isAtEnd { s.secondReference = try r.cString("second reference") }
            return .startSession(s)
        case 0x35: return .commitSession(sessionID: try r.u32be("session ID"), amount: try r.u32be("amount"))
        case 0x36: return .authSession
        case 0x37: return .cancelSession
        case headers.readCard:
            var c = ReadCard(reference: try r.u32be("reference"))
            if !r.isAtEnd {
                let n = Int(try r.u8("DOL list length"))
                c.dolTags = try BERTLV.parseTagList(try r.take(n, "DOL list"))
            }
            if !r.isAtEnd { c.paymentMethods = try r.u8("payment methods") }
            if !r.isAtEnd { c.logo = try r.cString("logo") }
            if !r.isAtEnd { c.qrURL = try r.cString("QR URL") }
            if !r.isAtEnd { c.referenceString = try r.cString("reference string") }
            if !r.isAtEnd { c.secondReference = try r.cString("second reference") }
            if !r.isAtEnd { c.presentCardMessage = try r.cString("present card message") }
            return .readCard(c)
        case headers.selectLanguage: return .selectLanguage(Array(payload))
        case 0x42: return .updateSession(sessionID: try r.u32be("session ID"), total: try r.u32be("total"))
        case 0x45: return .getReceipt(sessionID: try r.u32be("session ID"))
        case 0x48: return .control(try r.u8("control command"))
        // Whatever payload comes with it: its layout is undocumented, and we send none.
        case 0x44: return .getConnectionInfo
        case 0x56: return .removeSessions
        default: return .raw(header: header, payload: Array(payload))
        }
    }
}
