// engine-sim: the deterministic payment simulation on demand, e.g. a million sessions:
//   swift run -c release engine-sim --seeds 100 --sessions 10000
import EngineSimulation
import Glibc

struct Options {
    var seed: UInt64 = 0x51_0000
    var seeds = 1
    var sessions = 1000
    var canList: Bool?

    static func parse(_ list: [String]) -> Options {
        var o = Options()
        var args = list
        func value() -> String {
            guard !args.isEmpty else { print("engine-sim: missing value"); exit(2) }
            return args.removeFirst()
        }
        while !args.isEmpty {
            switch args.removeFirst() {
            case "--seed": o.seed = UInt64(value()) ?? o.seed
            case "--seeds": o.seeds = Int(value()) ?? o.seeds
            case "--sessions": o.sessions = Int(value()) ?? o.sessions
            case "--apollo": o.canList = false
            case "--p6x": o.canList = true
            default:
                print("usage: engine-sim [--seed N] [--seeds K] [--sessions M] [--apollo|--p6x]")
                exit(2)
            }
        }
        return o
    }
}
let o = Options.parse(Array(CommandLine.arguments.dropFirst()))
let seed = o.seed, seeds = o.seeds, sessions = o.sessions, canList = o.canList
var failures = 0
var total = 0
for i in 0..<seeds {
    let s = seed + UInt64(i)
    var settings = SimulationSettings()
    settings.sessions = sessions
    settings.terminalCanList = canList ?? (s % 2 == 0)
    var world = EngineWorld(seed: s, settings: settings)
    do {
        let summary = try world.run()
        total += summary.sessions
        print("seed \(s): ok \(summary)")
    } catch {
        failures += 1
        print("seed \(s): FAILED \(error)")
    }
}
print("\(seeds - failures) passed, \(failures) failed (\(total) sessions)")
exit(failures == 0 ? 0 : 1)
