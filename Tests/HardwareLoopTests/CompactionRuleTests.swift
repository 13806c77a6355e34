import Foundation
import Testing
import Ledger
import PaymentEngine
import Station

/// The station's compaction rule on a real ledger: closed sessions' records go, open ones and
/// the highest key stay, and recovery afterwards sees the same open sessions.
@Suite struct CompactionRule {
    @Test func closedSessionsAreDroppedOpenOnesAndTheHighestKeySurvive() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("compact-\(UUID().uuidString.prefix(8))").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Small segments so a few hundred records span many of them.
        let options = LedgerOptions(segmentBytes: 8 << 10, maxRecordBytes: 1 << 10, diskBudgetBytes: 8 << 20, preallocate: false)
        let (ledger, _, _) = try Ledger.open(directory: dir, options: options)
        let card = CardIdentity(maskedPAN: "476173******0119", hash: [1, 2, 3])
        let tariff = Tariff(currency: "EUR", startFee: 50, energyPricePerKWh: 40_000)
        func write(_ e: LedgerEntry) throws { try ledger.append(kind: e.kind, body: e.encodeBody()) }
        // Sessions 1...40 closed (captured), session 41 open (charging), session 42 closed last.
        for k: SessionKey in 1...42 {
            try write(.authRequested(k, connector: 0, amount: 5000, card: card, tariff: tariff, at: 1))
            try write(.approved(k, handle: TerminalHandle(reference: UInt32(k)), authorised: 5000, pspRef: [], at: 2))
            try write(.charging(k, at: 3))
            for i in 0..<5 { try write(.meter(k, energyWh: Int64(i * 100), seconds: Int64(i))) }
            if k != 41 {
                try write(.stopped(k, reason: .unplugged, energyWh: 500, seconds: 5, at: 4))
                try write(.captureRequested(k, amount: 70))
                try write(.captured(k, amount: 70, at: 5))
            }
        }
        try ledger.sync()
        let before = ledger.segmentNames.count
        let report = try ledger.compact { Station.isLive($0, openSessions: [41], highestKey: 42) }
        #expect(report.segmentsDeleted > 0)
        #expect(ledger.segmentNames.count < before)
        ledger.close()

        let (reopened, _, records) = try Ledger.open(directory: dir, options: options)
        defer { reopened.close() }
        let entries = try records.map { try LedgerEntry.decode(kind: $0.kind, body: $0.body) }
        #expect(entries.filter { $0.session == 41 }.count == 8, "every record of the open session survives")
        #expect(entries.contains { $0.session == 42 }, "the highest key survives")
        #expect(!entries.contains { $0.session == 1 }, "the oldest closed session is gone")
        let (engine, _, recovery) = PaymentEngine.recover(config: EngineConfig(), entries: entries, at: Moment(monotonic: .zero, wallMillis: 0))
        #expect(recovery.openSessions == 1)
        #expect(engine.sessions[41] != nil)
    }
}
