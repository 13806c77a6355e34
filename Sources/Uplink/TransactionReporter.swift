import JSONLines
import PaymentEngine

/// Turns the engine's durable facts into the OCPP messages the cloud must get, in order, per
/// transaction. Pure and rebuilt from the ledger on restart (it sees the same entries again,
/// and `seqNo` continues from what the outbox already holds).
public struct TransactionReporter: Sendable {
    public let stationId: String

    struct Tx: Sendable {
        var connector: Int
        var card: CardIdentity
        var tariff: Tariff
        var authorised: Int64 = 0
        /// The charging platform's lower cost cap, if it set one: the Ended event's total respects it, as the capture does.
        var costLimit: Int64?
        var pspRef: String = ""
        var seqNo = 0
        var started = false
        /// The relay closed (a Charging event went out); a triggered report says Charging from then on.
        var charging = false
        /// The Ended event went out: the transaction is over for the platform.
        var ended = false
        var energyWh: Int64 = 0
        var seconds: Int64 = 0
        /// A technician's test transaction: its settlement says so.
        var test = false
    }

    var txs: [SessionKey: Tx] = [:]

    public init(stationId: String) { self.stationId = stationId }

    /// The OCPP transactionId of a session (at most 36 characters).
    public func transactionId(_ k: SessionKey) -> String { String("\(stationId.prefix(20))-\(k)".prefix(36)) }

    /// Continues sequence numbers after a restart: `count` messages of this transaction already exist.
    public mutating func resume(queue: String, messages count: Int) {
        guard let k = txs.keys.first(where: { transactionId($0) == queue }) else { return }
        let current = txs[k]?.seqNo ?? 0
        txs[k]?.seqNo = max(current, count)
        txs[k]?.started = true
    }

    /// A transaction has at most this many TransactionEvents: Started, Updated (charging), Ended;
    /// the rest is headroom, so that the ids below cover every event ever made for it.
    public static let maxEventsPerTransaction = 8

    /// The ids every message of a session's transaction has or will have (ids are derived from
    /// the transaction and the message's place in it). While compaction keeps a session's
    /// entries, it must keep these messages' records too: a restart replays the entries, and a
    /// message whose record it cannot find is made again, possibly differently (`offline`),
    /// under an id the cloud has already seen.
    public func messageIDs(of k: SessionKey) -> [String] {
        let queue = transactionId(k)
        return (0..<TransactionReporter.maxEventsPerTransaction).map { MessageIDs.derive("\(queue)/TransactionEvent/\($0)") }
            + [MessageIDs.derive("\(queue)/NotifySettlement")]
    }

    /// The messages one durable entry calls for. `offline`: the cloud is unreachable now;
    /// `now` (wall milliseconds) dates entries that carry no time of their own.
    ///
    /// Message ids are derived from the station, the transaction and the message's place in it,
    /// so replaying the ledger after a crash yields the same ids: a message whose queued record
    /// did not reach the disk is recreated under the id the cloud may already have seen.
    public mutating func messages(for entry: LedgerEntry, offline: Bool, now: Int64) -> [OutboxMessage] {
        let k = entry.session
        let queue = transactionId(k)
        func tx(_ stage: OCPPPayload.Stage, _ kind: OutboxMessage.Kind, _ at: Int64) -> OutboxMessage? {
            guard var t = txs[k] else { return nil }
            let body = OCPPPayload.transactionEvent(transactionId: queue, seqNo: t.seqNo, stage: stage, at: at, offline: offline,
                                                    card: t.card, connector: t.connector, currency: t.tariff.currency)
            let id = MessageIDs.derive("\(queue)/TransactionEvent/\(t.seqNo)")
            t.seqNo += 1
            txs[k] = t
            return OutboxMessage(id: id, queue: queue, action: .transactionEvent, kind: kind, body: Array(body.text.utf8))
        }
        func settlement(_ status: OCPPPayload.Settlement, _ amount: Int64, _ at: Int64, info: String? = nil) -> OutboxMessage? {
            guard let t = txs[k] else { return nil }
            let body = OCPPPayload.notifySettlement(transactionId: queue, pspRef: t.pspRef, status: status, amount: amount,
                                                    currency: t.tariff.currency, at: at, statusInfo: info)
            return OutboxMessage(id: MessageIDs.derive("\(queue)/NotifySettlement"), queue: queue, action: .notifySettlement,
                                 kind: .settlement, body: Array(body.text.utf8))
        }
        switch entry {
        case let .authRequested(_, connector, _, card, tariff, _):
            txs[k] = Tx(connector: connector, card: card, tariff: tariff)
            return []
        case let .approved(_, ref, authorised, pspRef, at):
            if txs[k] == nil {
                // An approval released without a session of ours (orphan): report its release only.
                txs[k] = Tx(connector: 0, card: CardIdentity(maskedPAN: "", hash: []), tariff: Tariff(currency: "EUR"))
            }
            txs[k]?.authorised = authorised
            let text = String(decoding: pspRef, as: UTF8.self)
            txs[k]?.pspRef = pspRef.isEmpty || text.contains("\u{FFFD}") ? "terminal-\(ref)" : text
            guard txs[k]?.card.maskedPAN.isEmpty == false else { return [] }
            txs[k]?.started = true
            return [tx(.started(authorised: authorised), .started, at)].compactMap { $0 }
        case .charging(_, let at):
            txs[k]?.charging = true
            return [tx(.charging, .updated, at)].compactMap { $0 }
        case let .meter(_, e, s):
            txs[k]?.energyWh = e; txs[k]?.seconds = s
            return []   // meter values ride on the Ended event; periodic ones would only be thinned
        case let .stopped(_, reason, e, s, at):
            guard let t = txs[k], t.started else { return [] }
            txs[k]?.energyWh = e; txs[k]?.seconds = s
            txs[k]?.ended = true
            let cap = min(t.authorised, t.costLimit ?? t.authorised)
            let total = CostMeter(tariff: t.tariff, authorised: cap).capture(energyWh: e, seconds: s)
            let fixed = min(t.tariff.startFee, total)
            let energy = min(Tariff(currency: t.tariff.currency, energyPricePerKWh: t.tariff.energyPricePerKWh).cost(energyWh: e, seconds: 0), total - fixed)
            let cost = OCPPPayload.CostBreakdown(fixed: fixed, energy: energy, time: total - fixed - energy, total: total)
            return [tx(.ended(reason, energyWh: e, seconds: s, cost: cost), .ended, at)].compactMap { $0 }
        case let .captured(_, amount, at):
            defer { txs[k] = nil }
            return [settlement(.settled, amount, at)].compactMap { $0 }
        case .voided(_, let at):
            defer { txs[k] = nil }
            return [settlement(.canceled, 0, at, info: txs[k]?.test == true ? "technician's test transaction" : nil)].compactMap { $0 }
        case .testTransaction:
            txs[k]?.test = true
            return []
        case let .declined(_, reason, at):
            defer { txs[k] = nil }
            return [settlement(.rejected, 0, at, info: reason.map { "declined, reason \($0)" } ?? "declined")].compactMap { $0 }
        case .needsReconciliation(_, let note):
            defer { txs[k] = nil }
            return [settlement(.failed, 0, now, info: note)].compactMap { $0 }
        case .abandoned:
            // Closes the session like declined, without a message: nothing was authorised, and
            // nothing was reported for it yet. Kept, it would stay here for the life of the process.
            txs[k] = nil
            return []
        case .captureRequested, .voidRequested:
            return []
        case .meterReading:
            // The meter's own register and serial explain a capture to the acquirer (export);
            // the platform gets the energy on the Ended event.
            return []
        case .costLimited(_, let maxCost, _):
            // The platform set it: nothing to tell it, but the Ended event's cost must honour it.
            if let earlier = txs[k]?.costLimit { txs[k]?.costLimit = min(earlier, maxCost) } else { txs[k]?.costLimit = maxCost }
            return []
        case .reportRequested(_, let at):
            // Only a transaction the platform knows of (Started sent) and that has not ended;
            // the engine writes the entry only for such a session, and replay sees the same.
            guard let t = txs[k], t.started, !t.ended else { return [] }
            return [tx(.triggered(charging: t.charging, energyWh: t.energyWh, seconds: t.seconds), .updated, at)].compactMap { $0 }
        }
    }
}
