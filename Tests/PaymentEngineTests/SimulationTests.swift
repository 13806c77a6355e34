import Testing
import EngineSimulation
import PaymentEngine
import Glibc

/// The deterministic simulation: CI runs at least 100,000 sessions across seeds; set
/// SIM_SESSIONS to run more per seed, SIM_SEED to replay one seed.
@Suite struct EngineSimulationRuns {
    static var seeds: [UInt64] {
        if let p = getenv("SIM_SEED"), let s = UInt64(String(cString: p)) { return [s] }
        return (0..<100).map { 0x51_0000 + $0 }
    }
    static var perSeed: Int {
        if let p = getenv("SIM_SESSIONS"), let n = Int(String(cString: p)) { return n }
        return 1000
    }

    @Test(arguments: seeds)
    func everyApprovalIsSettledOnceThroughFaultsAndCrashes(seed: UInt64) {
        var settings = SimulationSettings()
        settings.sessions = Self.perSeed
        settings.terminalCanList = seed % 2 == 0
        var world = EngineWorld(seed: seed, settings: settings)
        do {
            let summary = try world.run()
            #expect(summary.approvals > 0, "seed \(seed)")
            if getenv("SIM_VERBOSE") != nil { print("seed \(seed): \(summary)") }
        } catch {
            Issue.record("\(error) (replay: SIM_SEED=\(seed) swift test --filter EngineSimulationRuns)")
        }
    }
}

/// The simulation runs the station's own core (`StationCore`), so the ordering that protects
/// money is what it exercises: crashes between any two effects, and head-on between a group
/// commit and the sends that waited for it.
@Suite struct StationCoreSimulation {
    @Test(arguments: [UInt64(0x52_0000), 0x52_0001, 0x52_0002, 0x52_0003])
    func aCrashBetweenGroupCommitAndSendLosesAndChangesNoMessage(seed: UInt64) {
        var settings = SimulationSettings()
        settings.sessions = 400
        settings.terminalCanList = seed % 2 == 0
        settings.crashPerMillionEffects = 0
        settings.crashesBetweenCommitAndSend = 60
        var world = EngineWorld(seed: seed, settings: settings)
        do {
            let summary = try world.run()
            #expect(summary.crashesBetweenCommitAndSend == 60, "seed \(seed): \(summary)")
            // Messages whose send was cut off are sent again after the restart, same id, same body.
            #expect(summary.duplicatesReceived < summary.messagesReceived, "seed \(seed): \(summary)")
            #expect(summary.messagesReceived > 0)
        } catch {
            Issue.record("\(error)")
        }
    }

    @Test func compactionRunsAndEverySessionItDropsLeftASummary() {
        var settings = SimulationSettings()
        settings.sessions = 1000
        settings.compactionEvery = 256
        var world = EngineWorld(seed: 0x53_0000, settings: settings)
        do {
            let summary = try world.run()
            #expect(summary.compactions > 10, "\(summary)")
            #expect(summary.summarised > 500, "\(summary)")
        } catch {
            Issue.record("\(error)")
        }
    }

    @Test func aSeedReplaysExactly() throws {
        var settings = SimulationSettings()
        settings.sessions = 200
        var a = EngineWorld(seed: 0x54_0000, settings: settings)
        var b = EngineWorld(seed: 0x54_0000, settings: settings)
        #expect(try a.run().description == b.run().description)
    }
}
