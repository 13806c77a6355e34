import Foundation
import Testing
import Ledger
import PaymentEngine
import Station
import TerminalConditions
import TerminalPort

/// The terminal's condition records through a real compaction (the station's `SummaryKeeper`):
/// only the newest snapshot survives, and recovery afterwards knows what it knew before.
@Suite struct ConditionCompaction {
    @Test func theNewestConditionRecordSurvivesCompactionAndOlderOnesGo() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("conditions-\(UUID().uuidString.prefix(8))").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let options = LedgerOptions(segmentBytes: 8 << 10, maxRecordBytes: 1 << 10, diskBudgetBytes: 8 << 20, preallocate: false)
        let (ledger, _, _) = try Ledger.open(directory: dir, options: options)
        let card = CardIdentity(maskedPAN: "476173******0119", hash: [1, 2, 3])
        let tariff = Tariff(currency: "EUR", energyPricePerKWh: 40_000)
        var conditions = TerminalConditions()
        let t0: Int64 = 1_780_000_000_000, hour: Int64 = 3_600_000
        func persist(_ fx: [TerminalConditions.Effect]) throws {
            for case let .persist(kind, body) in fx { try ledger.append(kind: kind, body: body) }
        }
        func session(_ k: SessionKey) throws {
            for e: LedgerEntry in [.authRequested(k, connector: 0, amount: 5000, card: card, tariff: tariff, at: 1),
                                   .approved(k, handle: TerminalHandle(reference: UInt32(k)), authorised: 5000, pspRef: [], at: 2),
                                   .charging(k, at: 3), .stopped(k, reason: .unplugged, energyWh: 500, seconds: 5, at: 4),
                                   .captureRequested(k, amount: 70), .captured(k, amount: 70, at: 5)] {
                try ledger.append(kind: e.kind, body: e.encodeBody())
            }
        }
        try persist(conditions.handle(.linkUp(wallMillis: t0)))
        try persist(conditions.handle(.identified(TerminalInventory(serialNumber: "APO-1001", firmware: "3.1"), wallMillis: t0)))
        // A day of charging with the terminal up: an hourly "last seen" among closed sessions.
        var k: SessionKey = 0
        for h in 1...24 {
            for _ in 0..<3 { k += 1; try session(k) }
            try persist(conditions.handle(.stillUp(wallMillis: t0 + Int64(h) * hour)))
        }
        try persist(conditions.handle(.identified(TerminalInventory(serialNumber: "APO-6666"), wallMillis: t0 + 25 * hour)))
        for _ in 0..<30 { k += 1; try session(k) }
        try ledger.sync()
        ledger.close()

        let (reopened, _, before) = try Ledger.open(directory: dir, options: options)
        let kind = TerminalConditions.recordKind
        #expect(before.filter { $0.kind == kind }.count == 27)
        let expected = TerminalConditions(records: before.map { ($0.kind, $0.body) })
        #expect(expected.swap?.reported.serialNumber == "APO-6666")

        var keeper = SummaryKeeper(retention: SummaryRetention(diskBudgetBytes: options.diskBudgetBytes), records: before)
        let report = try keeper.compact(reopened, openSessions: [], highestKey: k, conditionsGeneration: expected.generation,
                                        now: t0 + 26 * hour)
        #expect(report.ledger.segmentsDeleted > 0)
        reopened.close()

        let (after, _, records) = try Ledger.open(directory: dir, options: options)
        defer { after.close() }
        let left = records.filter { $0.kind == kind }
        #expect(left.count == 1, "only the newest snapshot stays: \(left.count)")
        let recovered = TerminalConditions(records: records.map { ($0.kind, $0.body) })
        #expect(recovered == expected)
        #expect(recovered.paymentsBlockedReason != nil, "the pending swap survives compaction")
        #expect(recovered.lastSeenUpMillis == t0 + 24 * hour)
    }
}
