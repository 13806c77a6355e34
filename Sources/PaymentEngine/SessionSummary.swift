/// How a session ended, as an acquirer reconciliation lists it.
public enum SessionOutcome: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// The terminal took the capture.
    case captured = 1
    /// The reservation was released.
    case voided
    /// The terminal declined the card.
    case declined
    /// The flow ended without an approval.
    case abandoned
    /// The terminal could not tell what happened: a person must look.
    case needsReconciliation

    public var description: String {
        switch self {
        case .captured: return "captured"
        case .voided: return "voided"
        case .declined: return "declined"
        case .abandoned: return "abandoned"
        case .needsReconciliation: return "needsReconciliation"
        }
    }
}

/// The facts of one session an acquirer reconciliation needs, folded from its engine entries.
/// Compaction writes one (ledger kind `recordKind`) before it deletes a closed session's entries,
/// so the facts outlive them for `state.retention_days`.
///
/// A field is nil (or empty) when no entry folded in so far said it: compaction can drop the
/// early entries of a session whose later ones sit in a segment it keeps, and then writes a
/// partial summary; `merged(with:)` joins the parts again. Times are wall-clock milliseconds.
public struct SessionSummary: Equatable, Sendable {
    /// The engine's key of the session.
    public var session: SessionKey
    /// The connector it charged on (0-based, as the engine counts).
    public var connector: Int?
    /// `authRequested`'s time: the card was accepted and authorisation asked for.
    public var startedAt: Int64?
    /// The latest time any entry carried (the outcome's, when it has one).
    public var endedAt: Int64?
    /// The card as the ledger keeps it: first 6 and last 4 digits.
    public var maskedPAN: String = ""
    /// The card brand the terminal named.
    public var brand: String = ""
    /// The tariff's ISO 4217 currency: the unit of every amount here.
    public var currency: String = ""
    /// The terminal's label of its payment handle (`TerminalHandle.label`).
    public var terminalReference: String = ""
    /// The terminal's payment reference (the acquirer's), cut to `maxReferenceBytes`.
    public var paymentReference: [UInt8] = []
    /// The amount the terminal authorised, minor units.
    public var authorised: Int64?
    /// The amount captured, minor units (0 when the reservation was released).
    public var captured: Int64?
    /// The last energy reading (meter or stop), in Wh.
    public var energyWh: Int64?
    /// nil while no closing entry was folded in.
    public var outcome: SessionOutcome?
    /// A technician's test transaction (pre-authorised and voided, no energy), not a driver's session.
    public var isTest = false
    /// The reconciliation note, cut to `maxNoteBytes`.
    public var note: String = ""
    /// The energy meter's serial number the readings below came with (`LedgerEntry.meterReading`).
    public var meterSerial: String = ""
    /// The meter's register as charging began, Wh.
    public var registerStartWh: Int64?
    /// The meter's register when charging stopped, Wh.
    public var registerEndWh: Int64?

    /// The ledger record kind of a summary: the next after the engine entries 1–13 (15 and 16 came later), well below
    /// the outbox's (100–103).
    public static let recordKind: UInt16 = 14
    /// The body format written. A body of another format is refused with `.badValue`, and the
    /// station keeps such a record (it never drops what it cannot judge).
    public static let formatVersion: UInt8 = 1
    /// A note longer than this (UTF-8 bytes) is cut: the summary stays small whatever the engine wrote.
    public static let maxNoteBytes = 256
    /// A payment reference longer than this is cut (a PSP reference is a few dozen bytes).
    public static let maxReferenceBytes = 128

    /// An empty summary of `session`: nothing known yet.
    public init(session: SessionKey) { self.session = session }

    /// Whether a person must look at this session with the acquirer.
    public var needsReconciliation: Bool { outcome == .needsReconciliation }

    /// This summary with one more of the session's entries folded in, in ledger order.
    /// Entries of another session are ignored.
    public func applying(_ entry: LedgerEntry) -> SessionSummary {
        guard entry.session == session else { return self }
        var s = self
        func saw(_ at: Int64) { s.endedAt = max(s.endedAt ?? at, at) }
        switch entry {
        case let .authRequested(_, connector, _, card, tariff, at):
            s.connector = connector
            s.startedAt = at
            s.maskedPAN = card.maskedPAN
            s.brand = card.brand
            s.currency = tariff.currency
            saw(at)
        case let .approved(_, handle, authorised, pspRef, at):
            s.terminalReference = handle.label
            s.authorised = authorised
            s.paymentReference = Array(pspRef.prefix(Self.maxReferenceBytes))
            saw(at)
        case let .declined(_, _, at): s.outcome = .declined; saw(at)
        case let .abandoned(_, at): s.outcome = .abandoned; saw(at)
        case let .charging(_, at): saw(at)
        case let .meter(_, energyWh, _): s.energyWh = energyWh
        case let .stopped(_, _, energyWh, _, at): s.energyWh = energyWh; saw(at)
        case .captureRequested, .voidRequested: break
        case let .captured(_, amount, at): s.captured = amount; s.outcome = .captured; saw(at)
        case let .voided(_, at): s.captured = 0; s.outcome = .voided; saw(at)
        case let .needsReconciliation(_, note):
            s.outcome = .needsReconciliation
            s.note = Self.cut(note, to: Self.maxNoteBytes)
        case let .testTransaction(_, at): s.isTest = true; saw(at)
        // The capture entry says what the lower cap came to; the limit itself is not a reconciliation fact.
        case let .costLimited(_, _, at): saw(at)
        // The platform's question is not a reconciliation fact either; the events it caused are in the outbox.
        case let .reportRequested(_, at): saw(at)
        case let .meterReading(_, role, register, serial, at):
            s.meterSerial = serial
            switch role {
            case .start: s.registerStartWh = register
            case .end: s.registerEndWh = register
            }
            saw(at)
        }
        return s
    }

    /// One summary per session in `entries`, each folded in ledger order; sessions in order of
    /// first appearance.
    public static func summarise(_ entries: [LedgerEntry]) -> [SessionSummary] {
        var order: [SessionKey] = []
        var byKey: [SessionKey: SessionSummary] = [:]
        for e in entries {
            if byKey[e.session] == nil { order.append(e.session) }
            byKey[e.session] = (byKey[e.session] ?? SessionSummary(session: e.session)).applying(e)
        }
        return order.compactMap { byKey[$0] }
    }

    /// This summary joined with `later`, a summary of the same session written after it (or the
    /// same facts again): what `later` knows wins, the span covers both. Merging a summary with
    /// itself changes nothing, which is why a summary written twice (a compaction repeated after
    /// a crash) is read back once.
    public func merged(with later: SessionSummary) -> SessionSummary {
        guard later.session == session else { return self }
        var s = self
        s.connector = later.connector ?? connector
        s.startedAt = [startedAt, later.startedAt].compactMap { $0 }.min()
        s.endedAt = [endedAt, later.endedAt].compactMap { $0 }.max()
        if !later.maskedPAN.isEmpty { s.maskedPAN = later.maskedPAN }
        if !later.brand.isEmpty { s.brand = later.brand }
        if !later.currency.isEmpty { s.currency = later.currency }
        if !later.terminalReference.isEmpty { s.terminalReference = later.terminalReference }
        if !later.paymentReference.isEmpty { s.paymentReference = later.paymentReference }
        s.authorised = later.authorised ?? authorised
        s.captured = later.captured ?? captured
        s.energyWh = later.energyWh ?? energyWh
        s.outcome = later.outcome ?? outcome
        if !later.note.isEmpty { s.note = later.note }
        if !later.meterSerial.isEmpty { s.meterSerial = later.meterSerial }
        s.registerStartWh = later.registerStartWh ?? registerStartWh
        s.registerEndWh = later.registerEndWh ?? registerEndWh
        s.isTest = isTest || later.isTest
        return s
    }

    /// Every session the ledger still knows, one summary each, in time order (start, else end,
    /// then key): the summary records (in ledger order, de-duplicated by session key) with the
    /// entries still in the ledger folded on top. What the export lists.
    public static func all(summaries: [SessionSummary], entries: [LedgerEntry]) -> [SessionSummary] {
        var byKey: [SessionKey: SessionSummary] = [:]
        for s in summaries { byKey[s.session] = byKey[s.session].map { $0.merged(with: s) } ?? s }
        for e in entries { byKey[e.session] = (byKey[e.session] ?? SessionSummary(session: e.session)).applying(e) }
        return byKey.values.sorted { a, b in
            let ta = a.startedAt ?? a.endedAt ?? .min, tb = b.startedAt ?? b.endedAt ?? .min
            return ta != tb ? ta < tb : a.session < b.session
        }
    }

    static func cut(_ text: String, to limit: Int) -> String {
        var t = Substring(text)
        while t.utf8.count > limit { t = t.dropLast() }
        return String(t)
    }
}
