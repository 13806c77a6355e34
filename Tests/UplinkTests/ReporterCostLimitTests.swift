import Foundation
import Testing
import PaymentEngine
import Uplink

/// The platform's own cost limit (`costLimited`, issue 15) sends nothing, but the Ended event's
/// total honours it, so the cost reported is the amount captured.
@Suite struct ReporterCostLimit {
    static func endedTotal(_ m: [OutboxMessage]) throws -> Decimal? {
        let bodies = try m.map { try #require(JSONSerialization.jsonObject(with: Data($0.body)) as? [String: Any]) }
        guard let ended = bodies.first(where: { $0["eventType"] as? String == "Ended" }) else { return nil }
        let total = (((ended["costDetails"] as? [String: Any])?["totalCost"] as? [String: Any])?["total"] as? [String: Any])?["inclTax"]
        return (total as? NSNumber)?.decimalValue
    }

    @Test func aLowerLimitCapsTheEndedTotalAndSendsNothingOfItsOwn() throws {
        var withLimit = Reporting.settled
        withLimit.insert(.costLimited(7, maxCost: 100, at: 1_764_054_500_000), at: 3)
        withLimit.insert(.costLimited(7, maxCost: 120, at: 1_764_054_600_000), at: 4)   // the lowest holds
        var r = TransactionReporter(stationId: "CS-0001")
        #expect(r.messages(for: .authRequested(7, connector: 0, amount: 5000, card: Reporting.card, tariff: Reporting.tariff, at: 1), offline: false, now: 1).isEmpty)
        #expect(r.messages(for: .costLimited(7, maxCost: 1, at: 2), offline: false, now: 2).isEmpty)
        let limited = Reporting.run(withLimit)
        let plain = Reporting.run(Reporting.settled)
        #expect(limited.map(\.action) == plain.map(\.action))
        #expect(limited.map(\.id) == plain.map(\.id))
        #expect(try Self.endedTotal(plain) == Decimal(string: "1.44"))
        #expect(try Self.endedTotal(limited) == Decimal(string: "1.00"))
        // A limit above the cost changes nothing.
        var high = Reporting.settled
        high.insert(.costLimited(7, maxCost: 4_000, at: 1_764_054_500_000), at: 3)
        #expect(try Self.endedTotal(Reporting.run(high)) == Decimal(string: "1.44"))
    }

    /// TriggerMessage(TransactionEvent), issue 15: the request is a ledger entry, so the event it
    /// makes takes its place in the transaction's order, and a replay of the same entries makes
    /// the same ids; without the entry, Ended would take the triggered event's seqNo and id.
    @Test func aRequestedReportIsAnUpdatedTriggerEventInOrderAndReplaysTheSame() throws {
        var entries = Reporting.settled
        entries.insert(.reportRequested(7, at: 1_764_054_001_500), at: 2)   // approved, waiting for the car
        entries.insert(.reportRequested(7, at: 1_764_054_500_000), at: 5)   // charging, after a meter reading
        let m = Reporting.run(entries)
        let bodies = try m.map { try #require(JSONSerialization.jsonObject(with: Data($0.body)) as? [String: Any]) }
        let events = bodies.filter { $0["eventType"] != nil }
        #expect(events.map { $0["seqNo"] as? Int } == [0, 1, 2, 3, 4])
        #expect(events.map { $0["eventType"] as? String } == ["Started", "Updated", "Updated", "Updated", "Ended"])
        #expect(events.map { $0["triggerReason"] as? String } == ["Authorized", "Trigger", "ChargingStateChanged", "Trigger", "EVDeparted"])
        #expect((events[1]["transactionInfo"] as? [String: Any])?["chargingState"] as? String == "Idle")
        #expect((events[3]["transactionInfo"] as? [String: Any])?["chargingState"] as? String == "Charging")
        let sampled = ((events[3]["meterValue"] as? [[String: Any]])?.first?["sampledValue"] as? [[String: Any]])?.first
        #expect(sampled?["value"] as? Int == 600)
        #expect(sampled?["context"] as? String == "Trigger")
        #expect(Set(m.map(\.id)).count == m.count)
        // Replay: the same ids, whatever the connection did.
        #expect(Reporting.run(entries, offline: true).map(\.id) == m.map(\.id))
        // Every id is one compaction keeps for the transaction.
        let kept = Set(TransactionReporter(stationId: "CS-0001").messageIDs(of: 7))
        #expect(m.allSatisfy { kept.contains($0.id) })
        try OCPPSchemas.validate(m.map { ($0.action, String(decoding: $0.body, as: UTF8.self)) })
        // After Ended, or before Started, a request makes nothing.
        var late = Reporting.settled
        late.insert(.reportRequested(7, at: 1_764_055_802_500), at: 5)
        #expect(Reporting.run(late).map(\.id) == Reporting.run(Reporting.settled).map(\.id))
        var early = Reporting.settled
        early.insert(.reportRequested(7, at: 1_764_054_000_500), at: 1)
        #expect(Reporting.run(early).map(\.id) == Reporting.run(Reporting.settled).map(\.id))
    }
}
