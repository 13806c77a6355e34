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
