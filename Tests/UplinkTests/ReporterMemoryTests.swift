import Testing
import PaymentEngine
@testable import Uplink

/// The reporter holds a transaction only while its session is open: every entry that closes a
/// session (declined, abandoned, captured, voided, needs reconciliation) lets it go.
@Suite struct ReporterMemory {
    static let card = CardIdentity(maskedPAN: "476173******0119", hash: [0xA1, 0xB2], brand: "VISA")
    static let tariff = Tariff(currency: "EUR", startFee: 50, energyPricePerKWh: 39_900, timePricePerMinute: 1_500)

    @Test func abandonedAuthorisationsLeaveNothingBehind() {
        var r = TransactionReporter(stationId: "CS-0001")
        for k in SessionKey(1)...10_000 {
            let requested = LedgerEntry.authRequested(k, connector: 0, amount: 5000, card: Self.card, tariff: Self.tariff, at: 1_000)
            #expect(r.messages(for: requested, offline: false, now: 1_000).isEmpty)
            #expect(r.messages(for: .abandoned(k, at: 2_000), offline: false, now: 2_000).isEmpty)
        }
        #expect(r.txs.count == 0, "transactions kept after 10,000 abandoned authorisations")
    }

    @Test func everyClosingEntryLetsItsTransactionGo() {
        var r = TransactionReporter(stationId: "CS-0001")
        let closing: [(SessionKey) -> LedgerEntry] = [
            { .declined($0, reason: nil, at: 2) }, { .abandoned($0, at: 2) }, { .captured($0, amount: 1, at: 2) },
            { .voided($0, at: 2) }, { .needsReconciliation($0, note: "n") },
        ]
        for (i, close) in closing.enumerated() {
            let k = SessionKey(i + 1)
            _ = r.messages(for: .authRequested(k, connector: 0, amount: 5000, card: Self.card, tariff: Self.tariff, at: 1), offline: false, now: 1)
            let entry = close(k)
            #expect(entry.closesSession)
            _ = r.messages(for: entry, offline: false, now: 2)
            #expect(r.txs[k] == nil, "\(entry) kept its transaction")
        }
    }
}
