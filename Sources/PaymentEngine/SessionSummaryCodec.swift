// The binary form of a session summary (ledger kind 14), big-endian like the engine entries and
// written with the same writer and reader, so a shared wire module can take both over at once.

extension SessionSummary {
    /// Which optional fields a body carries (the presence byte).
    enum Present {
        static let connector: UInt8 = 1 << 0
        static let startedAt: UInt8 = 1 << 1
        static let endedAt: UInt8 = 1 << 2
        static let authorised: UInt8 = 1 << 3
        static let captured: UInt8 = 1 << 4
        static let energyWh: UInt8 = 1 << 5
        /// A technician's test transaction (issue 13); a daemon older than that refuses the body
        /// (unknown presence bit) and keeps the record, as for any record it cannot judge.
        static let test: UInt8 = 1 << 6
        /// The meter's start/end register readings and serial follow the note (issue 16); a
        /// daemon older than that refuses the body and keeps the record.
        static let meter: UInt8 = 1 << 7
        static let all: UInt8 = 0xFF
    }

    /// The record body: session key u64, format u8 (1), presence u8 (bit 0 connector, 1 start,
    /// 2 end, 3 authorised, 4 captured, 5 energy, 6 test transaction), connector u8, start i64, end i64, masked PAN,
    /// brand, currency, terminal reference (each u32 length + UTF-8), payment reference (u32
    /// length + bytes), authorised i64, captured i64, energy Wh i64, outcome u8 (0: none),
    /// note (u32 length + UTF-8). An absent field is written as zero, so the layout is fixed.
    /// With presence bit 7 (issue 16) the meter follows: which readings u8 (bit 0 start, 1 end),
    /// serial (u32 length + UTF-8), start register Wh i64, end register Wh i64.
    public func encodeBody() -> [UInt8] {
        var w = EntryWriter()
        w.u64(session)
        w.u8(Self.formatVersion)
        var present: UInt8 = 0
        if connector != nil { present |= Present.connector }
        if startedAt != nil { present |= Present.startedAt }
        if endedAt != nil { present |= Present.endedAt }
        if authorised != nil { present |= Present.authorised }
        if captured != nil { present |= Present.captured }
        if energyWh != nil { present |= Present.energyWh }
        if isTest { present |= Present.test }
        let hasMeter = registerStartWh != nil || registerEndWh != nil || !meterSerial.isEmpty
        if hasMeter { present |= Present.meter }
        w.u8(present)
        w.u8(UInt8(clamping: connector ?? 0))
        w.i64(startedAt ?? 0); w.i64(endedAt ?? 0)
        w.string(maskedPAN); w.string(brand); w.string(currency); w.string(terminalReference)
        w.bytes(Array(paymentReference.prefix(Self.maxReferenceBytes)))
        w.i64(authorised ?? 0); w.i64(captured ?? 0); w.i64(energyWh ?? 0)
        w.u8(outcome?.rawValue ?? 0)
        w.string(Self.cut(note, to: Self.maxNoteBytes))
        if hasMeter {
            w.u8((registerStartWh != nil ? 1 : 0) | (registerEndWh != nil ? 2 : 0))
            w.string(Self.cut(meterSerial, to: PaymentEngine.maxMeterSerialBytes))
            w.i64(registerStartWh ?? 0); w.i64(registerEndWh ?? 0)
        }
        return w.out
    }

    /// Reads a body `encodeBody` wrote. Throws `.unknownKind` for any kind but `recordKind`,
    /// `.truncated` for a body cut short, `.badValue` for another format, unknown presence bits
    /// or an unknown outcome.
    public static func decode(kind: UInt16, body: [UInt8]) throws(EntryDecodeError) -> SessionSummary {
        guard kind == recordKind else { throw .unknownKind(kind) }
        var r = EntryReader(body)
        var s = SessionSummary(session: try r.u64())
        let format = try r.u8()
        guard format == formatVersion else { throw .badValue("summary format \(format)") }
        let present = try r.u8()
        guard present & ~Present.all == 0 else { throw .badValue("summary presence bits") }
        func has(_ bit: UInt8) -> Bool { present & bit != 0 }
        let connector = Int(try r.u8()), startedAt = try r.i64(), endedAt = try r.i64()
        s.connector = has(Present.connector) ? connector : nil
        s.startedAt = has(Present.startedAt) ? startedAt : nil
        s.endedAt = has(Present.endedAt) ? endedAt : nil
        s.maskedPAN = try r.string(); s.brand = try r.string(); s.currency = try r.string()
        s.terminalReference = try r.string()
        s.paymentReference = try r.bytes()
        let authorised = try r.i64(), captured = try r.i64(), energyWh = try r.i64()
        s.authorised = has(Present.authorised) ? authorised : nil
        s.captured = has(Present.captured) ? captured : nil
        s.energyWh = has(Present.energyWh) ? energyWh : nil
        s.isTest = has(Present.test)
        let outcome = try r.u8()
        if outcome != 0 {
            guard let o = SessionOutcome(rawValue: outcome) else { throw .badValue("summary outcome") }
            s.outcome = o
        }
        s.note = try r.string()
        if has(Present.meter) {
            let which = try r.u8()
            guard which & ~3 == 0 else { throw .badValue("summary meter readings") }
            s.meterSerial = try r.string()
            let start = try r.i64(), end = try r.i64()
            s.registerStartWh = which & 1 != 0 ? start : nil
            s.registerEndWh = which & 2 != 0 ? end : nil
        }
        return s
    }
}
