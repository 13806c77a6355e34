import WireFormat

/// The money facts the engine writes ahead. Each one is durable before the effect it
/// justifies: `authRequested` before Auth is sent, `charging` before the relay closes,
/// `captureRequested`/`voidRequested` before the terminal is told to capture or release.
public enum LedgerEntry: Equatable, Sendable {
    case authRequested(SessionKey, connector: Int, amount: Int64, card: CardIdentity, tariff: Tariff, at: Int64)
    /// The terminal approved: its handle for the payment, what it authorised, the payment reference.
    case approved(SessionKey, handle: TerminalHandle, authorised: Int64, pspRef: [UInt8], at: Int64)
    case declined(SessionKey, reason: UInt8?, at: Int64)
    /// The flow ended without an approval (cancelled, refused by the cloud, card removed).
    case abandoned(SessionKey, at: Int64)
    case charging(SessionKey, at: Int64)
    /// Energy (Wh) and charging time (s) delivered so far: the capture is computed from the last one.
    case meter(SessionKey, energyWh: Int64, seconds: Int64)
    case stopped(SessionKey, reason: StopReason, energyWh: Int64, seconds: Int64, at: Int64)
    case captureRequested(SessionKey, amount: Int64)
    case captured(SessionKey, amount: Int64, at: Int64)
    case voidRequested(SessionKey)
    case voided(SessionKey, at: Int64)
    /// The terminal cannot tell what happened: a person must look. The session is closed for the engine.
    case needsReconciliation(SessionKey, note: String)
    /// The session is a technician's test transaction (written after its `authRequested`, in the
    /// same sync): an approval is voided at once, no relay closes. Kind 15, added by issue 13.
    case testTransaction(SessionKey, at: Int64)
    /// The charging platform lowered the session's cost cap to `maxCost` (minor units; OCPP's
    /// `transactionLimit.maxCost`): from here on the session stops, and captures at most, the
    /// lower of this and what the bank authorised. Written only when it lowers the cap, before
    /// the cap is lowered. Kind 16, added by issue 15.
    case costLimited(SessionKey, maxCost: Int64, at: Int64)
    /// The charging platform asked for the transaction's state (OCPP TriggerMessage for
    /// TransactionEvent): the reporter answers with an Updated event (triggerReason Trigger) in
    /// the transaction's order. A fact in the ledger, not only a message in the outbox, because
    /// a restart rebuilds every event of a transaction, and its seqNo and message id, from these
    /// entries: an event the entries did not account for would shift every later one onto an id
    /// the cloud had already seen. Kind 17, added by issue 15.
    case reportRequested(SessionKey, at: Int64)
    /// A register reading of the connector's energy meter at the start or the end of charging,
    /// with the serial number the meter gave: what a capture is explained with to the acquirer
    /// and the driver (the energy billed is the end register less the start one). Written only
    /// for a meter that named itself (`EngineInput.meterIdentity`): the start one with
    /// `charging` (before the relay closes) or at the first reading after it, the end one before
    /// `stopped`. Kind 18, added by issue 16.
    case meterReading(SessionKey, MeterReadingRole, registerWh: Int64, meterSerial: String, at: Int64)

    /// The format entries are written in. Format 2 (issue 12) stores an approval's terminal handle
    /// as opaque bytes and a label (kind 13) instead of a 32-bit reference (kind 2, format 1).
    /// Every kind of both formats is read; only the current one is written.
    public static let formatVersion = 2

    /// The ledger's record kind for this entry.
    public var kind: UInt16 {
        switch self {
        case .authRequested: return 1
        case .approved: return 13
        case .declined: return 3
        case .abandoned: return 4
        case .charging: return 5
        case .meter: return 6
        case .stopped: return 7
        case .captureRequested: return 8
        case .captured: return 9
        case .voidRequested: return 10
        case .voided: return 11
        case .needsReconciliation: return 12
        case .testTransaction: return 15
        case .costLimited: return 16
        case .reportRequested: return 17
        case .meterReading: return 18
        }
    }

    public var session: SessionKey {
        switch self {
        case .authRequested(let k, _, _, _, _, _), .approved(let k, _, _, _, _), .declined(let k, _, _), .abandoned(let k, _),
             .charging(let k, _), .meter(let k, _, _), .stopped(let k, _, _, _, _), .captureRequested(let k, _),
             .captured(let k, _, _), .voidRequested(let k), .voided(let k, _), .needsReconciliation(let k, _), .testTransaction(let k, _),
             .costLimited(let k, _, _), .reportRequested(let k, _),
             .meterReading(let k, _, _, _, _):
            return k
        }
    }

    /// Whether this entry ends the session for the engine (nothing left to do with the terminal).
    public var closesSession: Bool {
        switch self {
        case .declined, .abandoned, .captured, .voided, .needsReconciliation: return true
        default: return false
        }
    }

    // MARK: binary form (big-endian; strings and byte strings length-prefixed)

    public func encodeBody() -> [UInt8] {
        var w = EntryWriter()
        w.u64(session)
        switch self {
        case let .authRequested(_, connector, amount, card, tariff, at):
            w.u8(UInt8(clamping: connector)); w.i64(amount)
            w.string(card.maskedPAN); w.bytes(card.hash); w.string(card.brand)
            w.string(tariff.currency); w.i64(tariff.startFee); w.i64(tariff.energyPricePerKWh); w.i64(tariff.timePricePerMinute)
            w.i64(at)
        case let .approved(_, handle, authorised, pspRef, at):
            w.bytes(handle.bytes); w.string(handle.label); w.i64(authorised); w.bytes(pspRef); w.i64(at)
        case let .declined(_, reason, at): w.u8(reason == nil ? 0 : 1); w.u8(reason ?? 0); w.i64(at)
        case let .abandoned(_, at), let .charging(_, at), let .voided(_, at), let .testTransaction(_, at), let .reportRequested(_, at): w.i64(at)
        case let .meter(_, e, s): w.i64(e); w.i64(s)
        case let .stopped(_, reason, e, s, at): w.u8(reason.rawValue); w.i64(e); w.i64(s); w.i64(at)
        case let .captureRequested(_, amount): w.i64(amount)
        case let .captured(_, amount, at): w.i64(amount); w.i64(at)
        case .voidRequested: break
        case let .needsReconciliation(_, note): w.string(note)
        case let .costLimited(_, maxCost, at): w.i64(maxCost); w.i64(at)
        case let .meterReading(_, role, register, serial, at): w.u8(role.rawValue); w.i64(register); w.string(serial); w.i64(at)
        }
        return w.out
    }

    public static func decode(kind: UInt16, body: [UInt8]) throws(EntryDecodeError) -> LedgerEntry {
        guard (1...13).contains(kind) || (15...18).contains(kind) else { throw .unknownKind(kind) }
        var r = EntryReader(body)
        let k = try r.u64()
        switch kind {
        case 1:
            let connector = Int(try r.u8()), amount = try r.i64()
            let card = CardIdentity(maskedPAN: try r.string(), hash: try r.bytes(), brand: try r.string())
            let tariff = Tariff(currency: try r.string(), startFee: try r.i64(), energyPricePerKWh: try r.i64(), timePricePerMinute: try r.i64())
            return .authRequested(k, connector: connector, amount: amount, card: card, tariff: tariff, at: try r.i64())
        case 2:
            // Format 1: a 32-bit terminal reference (PSP's session id, the only kind there was).
            return .approved(k, handle: TerminalHandle(reference: try r.u32()), authorised: try r.i64(), pspRef: try r.bytes(), at: try r.i64())
        case 13:
            let bytes = try r.bytes(), label = try r.string()
            guard let handle = TerminalHandle(bytes: bytes, label: label) else { throw .badValue("terminal handle") }
            return .approved(k, handle: handle, authorised: try r.i64(), pspRef: try r.bytes(), at: try r.i64())
        case 3:
            let has = try r.u8(), reason = try r.u8()
            return .declined(k, reason: has == 1 ? reason : nil, at: try r.i64())
        case 4: return .abandoned(k, at: try r.i64())
        case 5: return .charging(k, at: try r.i64())
        case 6: return .meter(k, energyWh: try r.i64(), seconds: try r.i64())
        case 7:
            guard let reason = StopReason(rawValue: try r.u8()) else { throw .badValue("stop reason") }
            return .stopped(k, reason: reason, energyWh: try r.i64(), seconds: try r.i64(), at: try r.i64())
        case 8: return .captureRequested(k, amount: try r.i64())
        case 9: return .captured(k, amount: try r.i64(), at: try r.i64())
        case 10: return .voidRequested(k)
        case 11: return .voided(k, at: try r.i64())
        case 12: return .needsReconciliation(k, note: try r.string())
        case 15: return .testTransaction(k, at: try r.i64())
        case 16:
            let maxCost = try r.i64()
            // The engine writes only a limit it took, never a negative one.
            guard maxCost >= 0 else { throw .badValue("cost limit") }
            return .costLimited(k, maxCost: maxCost, at: try r.i64())
        case 17: return .reportRequested(k, at: try r.i64())
        case 18:
            guard let role = MeterReadingRole(rawValue: try r.u8()) else { throw .badValue("meter reading role") }
            let register = try r.i64(), serial = try r.string()
            guard serial.utf8.count <= PaymentEngine.maxMeterSerialBytes else { throw .badValue("meter serial") }
            return .meterReading(k, role, registerWh: register, meterSerial: serial, at: try r.i64())
        default: throw .unknownKind(kind)
        }
    }
}

/// Which end of charging a `LedgerEntry.meterReading` is.
public enum MeterReadingRole: UInt8, Sendable, CaseIterable {
    /// The register as charging began: the last reading before the relay closed, or the first after.
    case start = 1
    /// The last accepted register when charging stopped.
    case end = 2
}

/// A ledger record the engine cannot read: a newer format, or a bug. Recovery reports it.
public enum EntryDecodeError: Error, Equatable, Sendable {
    case unknownKind(UInt16)
    case truncated
    case badValue(String)
}

/// The entry layout's two shapes over WireFormat's writer: integers big-endian, strings and byte
/// strings after a big-endian UInt32 count. The names are the layout's, not new code.
struct EntryWriter {
    private var w = ByteWriter()
    var out: [UInt8] { w.bytes }
    mutating func u8(_ v: UInt8) { w.u8(v) }
    mutating func u32(_ v: UInt32) { w.u32be(v) }
    mutating func u64(_ v: UInt64) { w.u64be(v) }
    mutating func i64(_ v: Int64) { w.u64be(UInt64(bitPattern: v)) }
    mutating func bytes(_ b: [UInt8]) { w.lengthPrefixed32be(b) }
    mutating func string(_ s: String) { w.lengthPrefixed32be(s.utf8) }
}

/// The reader of `EntryWriter`'s layout; any short read is `EntryDecodeError.truncated`, as recovery reports it.
struct EntryReader {
    private var r: ByteReader
    init(_ d: [UInt8]) { r = ByteReader(d[...]) }
    /// Every read goes through here: WireFormat says where, the ledger's error says only that.
    private mutating func read<T>(_ body: (inout ByteReader) throws(WireFormatError) -> T) throws(EntryDecodeError) -> T {
        do { return try body(&r) } catch { throw .truncated }
    }
    mutating func u8() throws(EntryDecodeError) -> UInt8 { try read { r throws(WireFormatError) in try r.u8("entry") } }
    mutating func u32() throws(EntryDecodeError) -> UInt32 { try read { r throws(WireFormatError) in try r.u32be("entry") } }
    mutating func u64() throws(EntryDecodeError) -> UInt64 { try read { r throws(WireFormatError) in try r.u64be("entry") } }
    mutating func i64() throws(EntryDecodeError) -> Int64 { Int64(bitPattern: try u64()) }
    mutating func bytes() throws(EntryDecodeError) -> [UInt8] { Array(try read { r throws(WireFormatError) in try r.lengthPrefixed32be("entry") }) }
    mutating func string() throws(EntryDecodeError) -> String { String(decoding: try bytes(), as: UTF8.self) }
}
