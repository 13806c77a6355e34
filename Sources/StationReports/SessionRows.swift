import CardSafety
import PaymentEngine
import Uplink
import WireFormat

/// Where a session is, as `paybridgectl sessions` and the export name it. The open states
/// follow the engine's phases; the closed ones its outcomes.
public enum SessionState: String, Sendable, CaseIterable, CustomStringConvertible {
    /// Card read; the cloud decides whether it may charge.
    case deciding
    /// Authorisation asked of the terminal (the bank).
    case authorising
    /// Authorisation went unanswered: an approval may exist on the terminal.
    case authUnknown = "auth-unknown"
    /// Approved; waiting for the driver to plug in.
    case awaitingPlug = "awaiting-plug"
    case charging
    /// Capture or release asked of the terminal; waiting for its answer.
    case settling
    /// The ledger failed: the engine does nothing more with it until a restart recovers it.
    case frozen
    /// The ledger holds no ending for it and the engine holds no such session: a snapshot taken
    /// between the two, or a session a restart has not recovered yet. Counted as open.
    case unfinished
    /// Captured (`final_state` "settled"; the amount may be 0 for a session that drew nothing).
    case settled
    /// The reservation was released.
    case voided
    /// The terminal declined the card.
    case declined
    /// The flow ended without an approval (cancelled, refused by the cloud, card removed).
    case abandoned
    /// The terminal could not tell what happened: a person must look with the acquirer.
    case needsReconciliation = "needs-reconciliation"
    /// An operator's test transaction that ended without needing reconciliation (the row's
    /// `outcome` says how).
    case test

    /// Whether the session is still going (no end time; never exported).
    public var isOpen: Bool {
        switch self {
        case .deciding, .authorising, .authUnknown, .awaitingPlug, .charging, .settling, .frozen, .unfinished: return true
        case .settled, .voided, .declined, .abandoned, .needsReconciliation, .test: return false
        }
    }

    /// The state a closed session's outcome gives it.
    public init(_ outcome: SessionOutcome) {
        switch outcome {
        case .captured: self = .settled
        case .voided: self = .voided
        case .declined: self = .declined
        case .abandoned: self = .abandoned
        case .needsReconciliation: self = .needsReconciliation
        }
    }

    /// The state an open engine session's phase gives it.
    public init(_ phase: Session.Phase) {
        switch phase {
        case .deciding: self = .deciding
        case .authorising: self = .authorising
        case .authUnknown: self = .authUnknown
        case .awaitingPlug: self = .awaitingPlug
        case .charging: self = .charging
        case .disposing: self = .settling
        case .frozen: self = .frozen
        }
    }

    public var description: String { rawValue }
}

/// One session as people and the reconciliation export see it. Amounts are minor units of
/// `currency` (`currencyExponent` fraction digits); times are wall-clock milliseconds, UTC.
/// Card data is what the ledger keeps (masked PAN, brand), passed through CardSafety again:
/// these rows leave the device.
public struct SessionRow: Equatable, Sendable {
    /// The engine's key of the session.
    public var session: SessionKey
    /// The OCPP transactionId the uplink reports it under (nil when no station id was given).
    public var transactionId: String?
    /// The connector, counted from 1 as people do (the engine counts from 0); nil when no entry said.
    public var connector: Int?
    /// When the card was accepted and authorisation asked for; nil for a session still deciding.
    public var startedAt: Int64?
    /// The latest time the session's closing entries carried; nil while it is open.
    public var endedAt: Int64?
    /// First 6 and last 4 digits.
    public var maskedPAN: String = ""
    public var brand: String = ""
    /// The terminal's label of its payment handle.
    public var terminalReference: String = ""
    /// The payment reference, printable: as text when it is printable UTF-8 (as the uplink sends
    /// it), else `hex:` and its bytes in hex.
    public var paymentReference: String = ""
    public var authorised: Int64?
    public var captured: Int64?
    /// ISO 4217 code ("" when no entry said).
    public var currency: String = ""
    /// The currency's minor-unit exponent, as the uplink formats amounts with it.
    public var currencyExponent: Int = 2
    public var energyWh: Int64?
    /// The energy meter's serial number and its register at the start and end of charging
    /// (`LedgerEntry.meterReading`): what explains the energy billed; empty/nil where the
    /// connector's meter never named itself.
    public var meterSerial: String = ""
    public var meterStartWh: Int64?
    public var meterEndWh: Int64?
    public var state: SessionState
    /// How the session ended, as the ledger says; nil while it is open. A test transaction's
    /// `state` is `test` and this keeps what it did with the money (the export lists it by this).
    public var outcome: SessionOutcome?
    /// The reconciliation note.
    public var note: String = ""

    public init(session: SessionKey, state: SessionState) {
        self.session = session
        self.state = state
    }
}

/// Builds `SessionRow`s from what the daemon keeps: the engine's open sessions, the engine
/// entries still in the ledger and the summaries compaction left of closed sessions.
public enum SessionRows {
    /// The prefix that marks a payment reference shown as hex.
    public static let hexReferencePrefix = "hex:"

    /// One row per session: the ledger's summaries with its entries folded on top (the fold is
    /// `SessionSummary.all`, so a session with both appears once), then the engine's open
    /// sessions over them (the engine knows an open session's phase and amounts before its
    /// entries are durable, and a deciding session has none yet). Ordered by start, oldest
    /// first; a session without a start (still deciding) counts as the newest; ties by key.
    ///
    /// - Parameters:
    ///   - open: `PaymentEngine.sessions`.
    ///   - stationId: the uplink's station id; with it each row carries its OCPP transactionId.
    ///   - testSessions: the keys of operator test transactions: closed ones show `test`, unless
    ///     they need reconciliation (a person must still look at those).
    public static func rows(open: [SessionKey: Session], summaries: [SessionSummary], entries: [LedgerEntry],
                            stationId: String? = nil, testSessions: Set<SessionKey> = []) -> [SessionRow] {
        var byKey: [SessionKey: SessionRow] = [:]
        for s in SessionSummary.all(summaries: summaries, entries: entries) {
            byKey[s.session] = row(s, testSession: s.isTest || testSessions.contains(s.session))
        }
        for (k, s) in open {
            byKey[k] = row(s, ledger: byKey[k])
        }
        if let stationId {
            let reporter = TransactionReporter(stationId: stationId)
            for k in byKey.keys { byKey[k]?.transactionId = reporter.transactionId(k) }
        }
        return byKey.values.sorted(by: startOrder)
    }

    /// What `paybridgectl sessions` and the export ask for; every part optional.
    public struct Filter: Equatable, Sendable {
        /// Only sessions still going.
        public var openOnly = false
        /// Only the most recent this many (by start), after the other filters.
        public var last: Int?
        /// Only sessions that ended at or after this (wall millis); open sessions are left out.
        public var from: Int64?
        /// Only sessions that ended before this (wall millis, exclusive: `DateArgument.to` gives
        /// the first millisecond after the named day or second); open sessions are left out.
        public var to: Int64?

        public init(openOnly: Bool = false, last: Int? = nil, from: Int64? = nil, to: Int64? = nil) {
            self.openOnly = openOnly; self.last = last; self.from = from; self.to = to
        }
    }

    /// `rows` (in `rows(...)`'s order) narrowed by `filter`, order kept.
    public static func filter(_ rows: [SessionRow], _ filter: Filter) -> [SessionRow] {
        var out = rows.filter { r in
            if filter.openOnly && !r.state.isOpen { return false }
            if filter.from != nil || filter.to != nil {
                guard !r.state.isOpen, let end = r.endedAt else { return false }
                if let from = filter.from, end < from { return false }
                if let to = filter.to, end >= to { return false }
            }
            return true
        }
        if let n = filter.last {
            out = Array(out.sorted(by: startOrder).suffix(max(0, n)))
        }
        return out
    }

    /// A payment reference as people can read and copy it: printable UTF-8 as is (the uplink's
    /// `pspRef`), else the bytes in hex after `hexReferencePrefix`. A reference that is itself
    /// text starting with the prefix is shown in hex too, so the two never read alike.
    public static func printable(reference bytes: [UInt8]) -> String {
        guard !bytes.isEmpty else { return "" }
        var valid = true
        let text = String(decoding: bytes, as: UTF8.self)
        for u in text.unicodeScalars where u == "\u{FFFD}" || u.value < 0x20 || (0x7F...0x9F).contains(u.value) { valid = false; break }
        if valid && !text.hasPrefix(hexReferencePrefix) { return scrubbed(text) }
        return hexReferencePrefix + Hex.encode(bytes)
    }

    // MARK: private

    static func startOrder(_ a: SessionRow, _ b: SessionRow) -> Bool {
        switch (a.startedAt, b.startedAt) {
        case let (x?, y?) where x != y: return x < y
        case (nil, _?): return false
        case (_?, nil): return true
        default: return a.session < b.session
        }
    }

    static func row(_ s: SessionSummary, testSession: Bool) -> SessionRow {
        var state: SessionState = s.outcome.map(SessionState.init) ?? .unfinished
        if testSession && !state.isOpen && state != .needsReconciliation { state = .test }
        var r = SessionRow(session: s.session, state: state)
        r.outcome = s.outcome
        r.connector = s.connector.map { $0 + 1 }
        r.startedAt = s.startedAt
        r.endedAt = state.isOpen ? nil : s.endedAt
        r.maskedPAN = s.maskedPAN.isEmpty ? "" : PANMask.mask(s.maskedPAN)
        r.brand = scrubbed(s.brand)
        r.terminalReference = scrubbed(s.terminalReference)
        r.paymentReference = printable(reference: s.paymentReference)
        r.authorised = s.authorised
        r.captured = s.captured
        r.currency = s.currency
        r.currencyExponent = CurrencyExponent.of(s.currency)
        r.energyWh = s.energyWh
        r.meterSerial = scrubbed(s.meterSerial)
        r.meterStartWh = s.registerStartWh
        r.meterEndWh = s.registerEndWh
        r.note = scrubbed(s.note)
        return r
    }

    /// An open engine session over what its ledger entries said (start time, payment reference).
    static func row(_ s: Session, ledger: SessionRow?) -> SessionRow {
        var r = ledger ?? SessionRow(session: s.key, state: .deciding)
        r.state = SessionState(s.phase)
        r.outcome = nil
        r.endedAt = nil
        r.connector = s.connector + 1
        r.maskedPAN = s.card.maskedPAN.isEmpty ? "" : PANMask.mask(s.card.maskedPAN)
        r.brand = scrubbed(s.card.brand)
        r.currency = s.tariff.currency
        r.currencyExponent = CurrencyExponent.of(s.tariff.currency)
        if let handle = s.handle {
            r.terminalReference = scrubbed(handle.label)
            r.authorised = s.authorised
        }
        // The engine's reading is newer than the last one persisted (it persists every `meterPersistWh`).
        if s.phase == .charging || s.phase == .disposing || s.energyWh > 0 { r.energyWh = s.energyWh }
        return r
    }

    static func scrubbed(_ text: String) -> String { CardDataFilter.scrub(text).text }
}
