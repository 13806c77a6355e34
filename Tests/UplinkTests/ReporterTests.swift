import Foundation
import Testing
import JSONLines
import PaymentEngine
import Uplink

/// The engine's ledger entries become OCPP messages in transaction order, and they validate.
@Suite struct Reporting {
    static let card = CardIdentity(maskedPAN: "476173******0119", hash: [0xA1, 0xB2], brand: "VISA")
    static let tariff = Tariff(currency: "EUR", startFee: 50, energyPricePerKWh: 39_900, timePricePerMinute: 1_500)

    static func run(_ entries: [LedgerEntry], offline: Bool = false) -> [OutboxMessage] {
        var r = TransactionReporter(stationId: "CS-0001")
        return entries.flatMap { r.messages(for: $0, offline: offline, now: 1_764_054_044_000) }
    }

    static let settled: [LedgerEntry] = [
        .authRequested(7, connector: 0, amount: 5000, card: card, tariff: tariff, at: 1_764_054_000_000),
        .approved(7, handle: 7465, authorised: 5000, pspRef: Array("PSPREF7465".utf8), at: 1_764_054_001_000),
        .charging(7, at: 1_764_054_002_000),
        .meter(7, energyWh: 600, seconds: 900),
        .stopped(7, reason: .unplugged, energyWh: 1234, seconds: 1800, at: 1_764_055_802_000),
        .captureRequested(7, amount: 144),
        .captured(7, amount: 144, at: 1_764_055_803_000),
    ]

    @Test func aSettledSessionIsStartedUpdatedEndedThenSettled() throws {
        let m = Self.run(Self.settled)
        #expect(m.map(\.action) == [.transactionEvent, .transactionEvent, .transactionEvent, .notifySettlement])
        #expect(Set(m.map(\.queue)) == ["CS-0001-7"])
        #expect(Set(m.map(\.id)).count == 4)
        let bodies = try m.map { try #require(JSONSerialization.jsonObject(with: Data($0.body)) as? [String: Any]) }
        #expect(bodies.prefix(3).map { $0["seqNo"] as? Int } == [0, 1, 2])
        #expect(bodies.prefix(3).map { $0["eventType"] as? String } == ["Started", "Updated", "Ended"])
        let limit = ((bodies[0]["transactionInfo"] as? [String: Any])?["transactionLimit"] as? [String: Any])?["maxCost"]
        #expect((limit as? NSNumber)?.decimalValue == Decimal(string: "50.00"))
        let total = (((bodies[2]["costDetails"] as? [String: Any])?["totalCost"] as? [String: Any])?["total"] as? [String: Any])?["inclTax"]
        #expect((total as? NSNumber)?.decimalValue == Decimal(string: "1.44"))
        #expect(bodies[3]["status"] as? String == "Settled")
        #expect(bodies[3]["pspRef"] as? String == "PSPREF7465")
        #expect(String(decoding: m[2].body, as: UTF8.self).contains("\"settlementAmount\"") == false)
        #expect(String(decoding: m[3].body, as: UTF8.self).contains("\"settlementAmount\":1.44"))
    }

    @Test func replayingTheLedgerGivesTheSameIds() {
        #expect(Self.run(Self.settled).map(\.id) == Self.run(Self.settled, offline: true).map(\.id))
        #expect(MessageIDs.derive("a") == MessageIDs.derive("a"))
        #expect(MessageIDs.derive("a") != MessageIDs.derive("b"))
        #expect(Array(MessageIDs.derive("a"))[14] == "4")
    }

    @Test func offlineEventsAreMarked() {
        let m = Self.run(Self.settled, offline: true)
        #expect(m.filter { $0.action == .transactionEvent }.allSatisfy { String(decoding: $0.body, as: UTF8.self).contains("\"offline\":true") })
    }

    @Test func declinesVoidsAndReconciliationsAreSettlementsAndAllValidate() throws {
        var all = Self.run(Self.settled)
        all += Self.run([.authRequested(8, connector: 1, amount: 5000, card: Self.card, tariff: Self.tariff, at: 1),
                         .declined(8, reason: 9, at: 2)])
        all += Self.run([.authRequested(9, connector: 0, amount: 5000, card: Self.card, tariff: Self.tariff, at: 1),
                         .approved(9, handle: 1, authorised: 5000, pspRef: [], at: 2), .voidRequested(9), .voided(9, at: 3)])
        all += Self.run([.authRequested(10, connector: 0, amount: 5000, card: Self.card, tariff: Self.tariff, at: 1),
                         .needsReconciliation(10, note: "authorisation went unanswered")])
        let statuses = all.filter { $0.action == .notifySettlement }.map { String(decoding: $0.body, as: UTF8.self) }
        #expect(statuses.contains { $0.contains("\"Rejected\"") })
        #expect(statuses.contains { $0.contains("\"Canceled\"") })
        #expect(statuses.contains { $0.contains("\"Failed\"") })
        try OCPPSchemas.validate(all.map { ($0.action, String(decoding: $0.body, as: UTF8.self)) })
    }

    @Test func outboxRecordsRoundTripThroughTheLedgerCodec() {
        let m = Self.run(Self.settled)[0]
        for r in [OutboxRecord.queued(m), .acknowledged(id: m.id), .deadLettered(id: m.id, status: 400, response: "{\"e\":1}"), .thinned(id: m.id)] {
            #expect(OutboxRecord.decode(kind: r.kind, body: r.encodeBody()) == r)
            #expect(OutboxRecord.kinds.contains(r.kind))
        }
        #expect(OutboxRecord.decode(kind: 100, body: [0, 0, 0, 9]) == nil)
    }
}
