import CardSafety
import WireFormat

/// How to read a 0x00 frame: Payter gives Result and Get Status Response the same header,
/// so the reading depends on which request is outstanding.
public enum ZeroHeaderReading: String, Sendable {
    case result, status
}

/// What the terminal→host decoder needs besides the bytes.
public struct TerminalDecodeContext: Equatable, Sendable {
    public var zeroHeader: ZeroHeaderReading
    /// DOL length fields are 2 bytes in extended mode; the other width is still accepted when
    /// only it fits the payload (the docs are silent for Card Read).
    public var wideDOLLength: Bool
    /// Request Ids layout; nil guesses from the payload.
    public var identityLayout: TerminalIdentity.Layout?

    public init(zeroHeader: ZeroHeaderReading = .result, wideDOLLength: Bool = false,
                identityLayout: TerminalIdentity.Layout? = nil) {
        self.zeroHeader = zeroHeader; self.wideDOLLength = wideDOLLength; self.identityLayout = identityLayout
    }
}

/// The ways a 0x00 frame answering Get Status can be read (`TerminalMessage.zeroHeaderReadings`).
public struct ZeroHeaderReadings: Equatable, Sendable {
    /// The Get Status Response reading, when the payload fits that layout.
    public var status: TerminalStatus?
    /// The Result reading, when the payload fits that layout.
    public var result: PSPResult?
    public init(status: TerminalStatus?, result: PSPResult?) { self.status = status; self.result = result }
    /// Both readings fit: the frame alone does not tell a status from a refusal.
    public var isAmbiguous: Bool { status != nil && result != nil }
}

/// What the simulator needs to encode terminal→host payloads the way a configured terminal does.
public struct TerminalEncodeOptions: Equatable, Sendable {
    public var wideDOLLength: Bool
    public init(wideDOLLength: Bool = false) { self.wideDOLLength = wideDOLLength }
}

/// A response or unsolicited event from the terminal.
public enum TerminalMessage: Equatable, Sendable {
    case result(PSPResult)
    case status(TerminalStatus)
    /// Synchronize echo: the terminal is now ONLINE.
    case synchronize
    case identity(TerminalIdentity)
    case uiEvent(buttonID: String)
    case sessionList(total: UInt8, sessionIDs: [UInt32])
    case sessionApproved(sessionID: UInt32, dol: [TLV])
    case sessionDeclined(reason: UInt8?, dol: [TLV])
    case sessionCancelled
    case cardRead(dol: [TLV])
    case sessionPartiallyApproved(sessionID: UInt32, amount: UInt32, dol: [TLV])
    case transactionEvent(UInt8)
    case propCardRead(dol: [TLV])
    case updateSessionResult(UpdateSessionResult)
    case receipt([UInt8])
    /// Get Connection Info Response (0x44, Apollo), read without a documented layout.
    case connectionInfo(ConnectionInfo)
    /// A header this codec does not model (or one whose layout is undocumented), byte for byte.
    case other(header: UInt8, payload: [UInt8])

    public var header: UInt8 {
        switch self {
        case .result, .status: return 0x00
        case .synchronize: return 0x24
        case .identity: return 0x27
        case .uiEvent: return 0x29
        case .sessionList: return 0x30
        case .sessionApproved: return 0x31
        case .sessionDeclined: return 0x32
        case .sessionCancelled: return 0x33
        case .cardRead: return 0x34
        case .sessionPartiallyApproved: return 0x35
        case .transactionEvent: return 0x38
        case .propCardRead: return 0x40
        case .updateSessionResult: return 0x43
        case .receipt: return 0x45
        case .connectionInfo: return 0x44
        case .other(let h, _): return h
        }
    }

    public var name: String {
        switch self {
        case .result: return "Result"
        case .status: return "GetStatusResponse"
        case .synchronize: return "Synchronize"
        case .identity: return "RequestIdsResponse"
        case .uiEvent: return "UIEvent"
        case .sessionList: return "ListSessionsResponse"
        case .sessionApproved: return "SessionApproved"
        case .sessionDeclined: return "SessionDeclined"
        case .sessionCancelled: return "SessionCancelled"
        case .cardRead: return "CardRead"
        case .sessionPartiallyApproved: return "SessionPartiallyApproved"
        case .transactionEvent: return "TransactionEvent"
        case .propCardRead: return "PropCardRead"
        case .updateSessionResult: return "UpdateSessionResult"
        case .receipt: return "Receipt"
        case .connectionInfo: return "GetConnectionInfoResponse"
        case .other(let h, _): return TerminalMessage.otherName(h)
        }
    }

    static func otherName(_ h: UInt8) -> String {
        switch h {
        case 0x39: return "ReadFileResponse"
        case 0x42: return "PropCardResponse"
        case 0x44: return "GetConnectionInfoResponse"
        case 0x46: return "TransactionRecord"
        default: return "Unknown"
        }
    }

    /// Decodes a terminal → host payload.
    public static func decode(header: UInt8, payload: ArraySlice<UInt8>, context: TerminalDecodeContext = .init())
        throws(PSPMessageError) -> TerminalMessage {
        var r = ByteReader(payload)
        switch header {
        case 0x00:
            if context.zeroHeader == .status {
                // The status reading when the payload admits one (also when it reads as a Result
                // too: `zeroHeaderReadings` tells), else the Result it can only be.
                let readings = zeroHeaderReadings(payload)
                if let s = readings.status { return .status(s) }
                if let res = readings.result { return .result(res) }
                throw .truncated(field: "state")
            }
            return .result(try decodeResult(payload))
        case 0x24: return .synchronize
        case 0x27: return .identity(scrubbed(try decodeIdentity(payload, layout: context.identityLayout)))
        case 0x29: return .uiEvent(buttonID: r.isAtEnd ? "" : CardDataFilter.scrub(try r.cString("button ID")).text)
        case 0x30:
            let total = try r.u8("total")
            var ids: [UInt32] = []
            while r.remaining >= 4 { ids.append(try r.u32be("session ID")) }
            return .sessionList(total: total, sessionIDs: ids)
        case 0x31:
            let id = try r.u32be("session ID")
            return .sessionApproved(sessionID: id, dol: try readDOL(&r, wide: context.wideDOLLength))
        case 0x32:
            // Empty, a reason byte, or a reason byte then DOL data (Declined DOL on).
            let reason = r.isAtEnd ? nil : try r.u8("decline reason")
            return .sessionDeclined(reason: reason, dol: try readDOL(&r, wide: context.wideDOLLength))
        case 0x33: return .sessionCancelled
        case 0x34: return .cardRead(dol: try readDOL(&r, wide: context.wideDOLLength))
        case 0x35:
            let id = try r.u32be("session ID")
            let amount = try r.u32be("authorised amount")
            return .sessionPartiallyApproved(sessionID: id, amount: amount, dol: try readDOL(&r, wide: context.wideDOLLength))
        case 0x38: return .transactionEvent(try r.u8("event"))
        case 0x40: return .propCardRead(dol: try readDOL(&r, wide: context.wideDOLLength))
        case 0x43:
            // The page's length (0x14) and its fields (14 bytes) disagree; both are accepted.
            let outcome = try r.u8("outcome")
            let id = try r.u32be("session ID")
            let total = try r.u32be("authorised total")
            let delta = try r.u32be("delta")
            let reason = r.isAtEnd ? nil : try r.u8("decline reason")
            return .updateSessionResult(UpdateSessionResult(outcome: outcome, sessionID: id, authorisedTotal: total,
                                                            delta: delta, declineReason: reason))
        case 0x45: return .receipt(Array(payload))
        case 0x44: return .connectionInfo(try ConnectionInfo.read(payload))
        default: return .other(header: header, payload: Array(payload))
        }
    }

    /// The readings of a 0x00 frame that answers Get Status. Payter gives Result and Get Status
    /// Response the same header (psp.md §4.2), but not the same layout:
    /// - Get Status Response is two bytes: a state (0x01–0x20) and the transaction-running flag
    ///   (0x01 true, otherwise false). One byte is not a status; more are taken as a status with
    ///   fields we do not know. State 0x00 does not exist.
    /// - Result is one byte (0x00 OK, 0x01 Not OK, or a reason code itself), or two with detailed
    ///   codes, the reason (0x02–0x11) last. A second byte of 0x00 or 0x01 is no reason code.
    /// So `[0x01]` is a refusal, `[0x01, 0x00]` is OFFLINE, and `[0x01, 0x05]` reads both ways
    /// (OFFLINE with an undocumented flag value, or Not OK "not allowed in this state").
    public static func zeroHeaderReadings(_ p: ArraySlice<UInt8>) -> ZeroHeaderReadings {
        guard let b0 = p.first else { return ZeroHeaderReadings(status: nil, result: nil) }
        let b1: UInt8? = p.count >= 2 ? p[p.startIndex + 1] : nil
        var status: TerminalStatus?
        if b0 != 0x00, let b1 { status = TerminalStatus(rawState: b0, transactionRunning: b1 == 0x01) }
        var result: PSPResult?
        if b0 == 0x00 || p.count == 1 || (p.count == 2 && b1! > 0x01) { result = try? decodeResult(p) }
        return ZeroHeaderReadings(status: status, result: result)
    }

    /// Result: byte 0 = 0x00 is OK; anything else is Not OK, with the reason in the last byte of a
    /// 2-byte payload, or in byte 0 itself when it is a reason code (both readings accepted).
    static func decodeResult(_ p: ArraySlice<UInt8>) throws(PSPMessageError) -> PSPResult {
        guard let b0 = p.first else { throw .truncated(field: "result") }
        if b0 == 0x00 { return PSPResult(ok: true, reason: p.count >= 2 && p.last! != 0 ? p.last! : nil) }
        if p.count >= 2 { return .notOK(p.last!) }
        return .notOK(b0 > 0x01 ? b0 : nil)
    }

    /// DOL data: a 1- or 2-byte length then BER-TLV. An absent field means no data.
    static func readDOL(_ r: inout ByteReader, wide: Bool) throws(PSPMessageError) -> [TLV] {
        let remaining = r.remaining
        guard remaining > 0 else { return [] }
        let rest = r.rest()
        func length(_ w: Int) -> Int? {
            guard rest.count >= w else { return nil }
            return w == 1 ? Int(rest[rest.startIndex]) : Int(rest[rest.startIndex]) << 8 | Int(rest[rest.startIndex + 1])
        }
        let first = wide ? 2 : 1, second = wide ? 1 : 2
        // Prefer the width whose length accounts for the payload exactly.
        for w in [first, second] {
            if let n = length(w), w + n == remaining {
                return try BERTLV.parse(rest.dropFirst(w))
            }
        }
        // Otherwise the preferred width if it fits (trailing bytes ignored), else the other.
        for w in [first, second] {
            if let n = length(w), w + n <= remaining {
                return try BERTLV.parse(rest.dropFirst(w).prefix(n))
            }
        }
        throw .truncated(field: "DOL data")
    }

    /// Every string of an identity through the card-data filter; an ICCID in the SIM-serial
    /// field is inventory and stays whole (`CardDataFilter.isICCID`).
    static func scrubbed(_ id: TerminalIdentity) -> TerminalIdentity {
        var out = id
        var redacted: [String] = []
        func clean(_ s: String, _ name: String) -> String {
            let (text, found) = CardDataFilter.scrub(s)
            if found != nil { redacted.append(name) }
            return text
        }
        out.serialNumber = clean(id.serialNumber, "serialNumber")
        out.model = id.model.map { clean($0, "model") }
        out.firmware = id.firmware.map { clean($0, "firmware") }
        out.applications = id.applications.map { clean($0, "applications") }
        out.simSerial = id.simSerial.map { CardDataFilter.isICCID($0) ? $0 : clean($0, "simSerial") }
        out.samSerials = id.samSerials.map { clean($0, "samSerials") }
        out.macAddress = id.macAddress.map { clean($0, "macAddress") }
        out.redactedFields = redacted
        return out
    }

    static func decodeIdentity(_ p: ArraySlice<UInt8>, layout: TerminalIdentity.Layout?) throws(PSPMessageError) -> TerminalIdentity {
        let guess: TerminalIdentity.Layout
        if let layout { guess = layout } else {
            // The P6X layout is fixed-offset and at least 82 bytes with SAM status bytes of 0/1.
            let b = Array(p)
            let p6xLike = b.count >= 82 && [15, 24, 33].allSatisfy { b[$0] <= 1 } && b[48] <= 1
            guess = p6xLike ? .p6x : .apollo
        }
        var r = ByteReader(p)
        if guess == .apollo {
            var strings: [String] = []
            while !r.isAtEnd { strings.append(try r.cString("identity string")) }
            guard let serial = strings.first else { throw .truncated(field: "serial number") }
            return TerminalIdentity(layout: .apollo, serialNumber: serial,
                                    model: strings.count > 1 ? strings[1] : nil,
                                    firmware: strings.count > 2 ? strings[2] : nil,
                                    applications: Array(strings.dropFirst(3)))
        }
        func fixedString(_ s: ArraySlice<UInt8>) -> String {
            String(decoding: s.prefix { $0 != 0 }, as: UTF8.self)
        }
        // Fixed offsets (psp.md §4.1). An answer cut short keeps every field it holds in full
        // (the serial even when shorter than its 15 bytes); the firmware name runs to the first
        // NUL or the end, however long. Only an empty answer holds nothing.
        guard !r.isAtEnd else { throw .truncated(field: "serial number") }
        let serial = fixedString(try r.take(min(15, r.remaining), "serial number"))
        var sams: [String] = []
        var mac: String?, sim: String?, fw: String?
        fields: do {
            for _ in 0..<3 {
                guard r.remaining >= 9 else { break fields }
                let present = try r.u8("SAM status")
                let s = try r.take(8, "SAM serial")
                if present == 1 { sams.append(hexString(s)) }
            }
            guard r.remaining >= 6 else { break fields }
            mac = try r.take(6, "MAC address").map { hexString([$0]).lowercased() }.joined(separator: ":")
            guard r.remaining >= 34 else { break fields }
            let simPresent = try r.u8("SIM status")
            let simSerial = fixedString(try r.take(33, "SIM serial"))
            if simPresent == 1 { sim = simSerial }
            if !r.isAtEnd { fw = fixedString(r.rest()) }
        }
        return TerminalIdentity(layout: .p6x, serialNumber: serial, firmware: fw, simSerial: sim,
                                samSerials: sams, macAddress: mac)
    }

    /// Encodes the payload (simulator side).
    public func encodePayload(_ options: TerminalEncodeOptions = .init()) -> [UInt8] {
        var w = ByteWriter()
        func dol(_ items: [TLV]) {
            let data = BERTLV.encode(items)
            if options.wideDOLLength { w.u16be(UInt16(clamping: data.count)) } else { w.u8(UInt8(clamping: data.count)) }
            w.append(data)
        }
        switch self {
        case .result(let r):
            w.u8(r.ok ? 0x00 : 0x01)
            if let reason = r.reason { w.u8(reason) }
        case .status(let s): w.u8(s.rawState); w.u8(s.transactionRunning ? 1 : 0)
        case .synchronize, .sessionCancelled: break
        case .identity(let id):
            switch id.layout {
            case .apollo:
                w.cString(id.serialNumber); w.cString(id.model ?? ""); w.cString(id.firmware ?? "")
                for a in id.applications { w.cString(a) }
            case .p6x:
                func fixed(_ s: String, _ n: Int) {
                    var b = Array(s.utf8.prefix(n - 1)); b += Array(repeating: 0, count: n - b.count); w.append(b)
                }
                fixed(id.serialNumber, 15)
                for slot in 0..<3 {
                    if slot < id.samSerials.count, let hex = hexBytes(id.samSerials[slot]), hex.count == 8 {
                        w.u8(1); w.append(hex)
                    } else { w.u8(0); w.append([UInt8](repeating: 0, count: 8)) }
                }
                let mac = (id.macAddress ?? "").split(separator: ":").compactMap { UInt8($0, radix: 16) }
                w.append(mac.count == 6 ? mac : [UInt8](repeating: 0, count: 6))
                w.u8(id.simSerial == nil ? 0 : 1)
                fixed(id.simSerial ?? "", 33)
                w.cString(id.firmware ?? "")
            }
        case .uiEvent(let b): w.cString(b)
        case let .sessionList(total, ids): w.u8(total); for i in ids { w.u32be(i) }
        case let .sessionApproved(id, d): w.u32be(id); dol(d)
        case let .sessionDeclined(reason, d):
            if let reason { w.u8(reason); if !d.isEmpty { dol(d) } }
        case .cardRead(let d), .propCardRead(let d): dol(d)
        case let .sessionPartiallyApproved(id, amount, d): w.u32be(id); w.u32be(amount); dol(d)
        case .transactionEvent(let e): w.u8(e)
        case .updateSessionResult(let u):
            w.u8(u.outcome); w.u32be(u.sessionID); w.u32be(u.authorisedTotal); w.u32be(u.delta); w.u8(u.declineReason ?? 0)
        case .receipt(let b): w.append(b)
        case .connectionInfo(let c): w.append(c.payload)
        case .other(_, let p): w.append(p)
        }
        return w.bytes
    }
}
