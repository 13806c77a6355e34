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
}
