import Foundation
import FakeTerminal
import Ledger
import PaymentEngine
import Platform
import Station
import TerminalConditions
import TerminalPort
import Testing
import Timebase

/// The station shell with the terminal's conditions: a terminal's report reaches the core
/// (`onCondition`), its records reach a real ledger, and a restart recovers them.
@Suite(.serialized) struct StationConditions {
    let first = TerminalInventory(serialNumber: "APO-1001", model: "Apollo", firmware: "3.1")
    let swapped = TerminalInventory(serialNumber: "APO-6666", model: "Apollo")

    func arms(_ t: FakeTerminal) -> Int { t.commands.filter { if case .arm = $0.command { return true }; return false }.count }

    /// Answers every command not yet answered, as a terminal would.
    func answer(_ t: FakeTerminal, from index: inout Int) {
        while index < t.commands.count {
            let (id, cmd) = t.commands[index]
            index += 1
            t.deliver(cmd == .cancel ? [.completed(id, cmd, .ok), .cancelled] : [.completed(id, cmd, .ok)])
        }
    }

    @Test func aSwapReportedByTheTerminalIsRecordedBlocksPaymentsAndSurvivesARestartUntilAccepted() throws {
        let dir = NSTemporaryDirectory() + "station-conditions-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var config = EngineConfig()
        config.connectors = 1
        config.tariff = Tariff(currency: "EUR", energyPricePerKWh: 40_000)
        let io = SwitchableLedgerIO()

        do {
            let loop = try EventLoop()
            let ledger = try Ledger.open(directory: dir, options: LedgerOptions(), io: io).ledger
            defer { ledger.close() }
            let terminal = FakeTerminal()
            let station = Station(loop: loop, engine: PaymentEngine(config: config), ledger: ledger, terminal: terminal,
                                  charger: RecordingRelays(io: io), decider: SilentDecider())
            station.start(recoveryEffects: [])
            var answered = 0
            terminal.deliver([.ready([])])
            answer(terminal, from: &answered)
            terminal.identify(first)
            #expect(arms(terminal) == 1)
            #expect(station.conditions.known == first)
            terminal.identify(swapped)
            answer(terminal, from: &answered)
            #expect(!station.engine.acceptingPayments)
            #expect(station.conditions.warnings.first?.contains("APO-6666") == true)
            #expect(arms(terminal) == 1, "no scan on a swapped terminal")
        }

        // Restarted: the swap is still pending, so payments stay off with the new terminal.
        let loop = try EventLoop()
        let (ledger, _, records) = try Ledger.open(directory: dir, options: LedgerOptions(), io: io)
        defer { ledger.close() }
        let recovered = TerminalConditions(records: records.map { ($0.kind, $0.body) })
        #expect(recovered.swap?.reported == swapped)
        let terminal = FakeTerminal()
        let station = Station(loop: loop, engine: PaymentEngine(config: config), ledger: ledger, terminal: terminal,
                              charger: RecordingRelays(io: io), decider: SilentDecider())
        station.recovered(conditions: recovered)
        station.configureConditions(.init(batteryWarnDays: 60, storageDays: 14, batteryBacked: false))
        #expect(station.conditions.settings == .init(batteryWarnDays: 60, storageDays: 14, batteryBacked: false))
        #expect(station.conditions.swap != nil, "the settings change nothing recovered")
        station.start(recoveryEffects: [])
        var answered = 0
        terminal.deliver([.ready([])])
        terminal.identify(swapped)
        answer(terminal, from: &answered)
        #expect(arms(terminal) == 0)
        #expect(!station.engine.acceptingPayments)

        let syncsBefore = io.syncs
        station.post(.conditions(.accepted(wallMillis: WallClock.nowMillisecondsSinceEpoch())))
        answer(terminal, from: &answered)
        #expect(io.syncs > syncsBefore, "the acceptance is synced")
        #expect(arms(terminal) == 1, "payments resume after the acceptance")
        #expect(station.conditions.known == swapped)
        #expect(station.conditions.paymentsBlockedReason == nil)
    }
}
