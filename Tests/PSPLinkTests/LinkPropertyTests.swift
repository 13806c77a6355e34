import Testing
import PSPCodec
import PSPLink
import TerminalSim
import Timebase
import JSONLines
import Glibc

/// Seeded random faults against the link in the deterministic world. Whatever the terminal and
/// its cable do, the link comes back, and every approval it saw can still be disposed of once.
@Suite struct LinkUnderRandomFaults {
    static let seeds: [UInt64] = {
        if let p = getenv("PSP_SEED"), let s = UInt64(String(cString: p)) { return [s] }
        return (0..<200).map { 0xFA17_0000 + $0 }
    }()

    static func randomFaults(_ g: inout SeededGenerator) -> [ArmedFault] {
        var faults: [ArmedFault] = []
        for _ in 0..<Int.random(in: 1...5, using: &g) {
            let trigger: SimTrigger
            switch Int.random(in: 0..<4, using: &g) {
            case 0: trigger = .approved(Int.random(in: 1...4, using: &g))
            case 1: trigger = .cardRead(Int.random(in: 1...4, using: &g))
            case 2: trigger = .frames(Int.random(in: 5...80, using: &g))
            default: trigger = .command(["GetStatus", "StartSession", "CommitSession", "Enable"].randomElement(using: &g)!, Int.random(in: 1...3, using: &g))
            }
            let fault: SimFault
            switch Int.random(in: 0..<5, using: &g) {
            case 0: fault = .garbage(count: Int.random(in: 1...120, using: &g))
            case 1: fault = .corruptNext
            case 2: fault = .reset
            case 3: fault = .unplug(milliseconds: Int.random(in: 100...5000, using: &g))
            default: fault = .silent(command: ["GetStatus", "Synchronize", "Enable", "Setup"].randomElement(using: &g)!, count: Int.random(in: 1...4, using: &g))
            }
            faults.append(ArmedFault(fault, on: trigger))
        }
        return faults
    }

    @Test(arguments: seeds)
    func linkRecoversAndApprovalsAreDisposedOnce(seed: UInt64) {
        var g = SeededGenerator(seed: seed)
        let family: SimFamily = Bool.random(using: &g) ? .apollo : .p6x
        var s = SimScenario.defaults(for: family)
        s.seed = seed
        s.splitBytes = Int.random(in: 0..<4, using: &g) == 0
        s.startResult = Bool.random(using: &g)
        s.faults = Self.randomFaults(&g)
        var c = PSPLinkConfig(family: family == .apollo ? .apollo : .p6x, transport: Bool.random(using: &g) ? .tcp : .serial)
        c.timeouts.keepAlive = .seconds(2)
        var w = LinkWorld(link: c, sim: s)
        w.connect()

        var approved: [UInt32] = []
        for _ in 0..<4 {
            guard w.run(within: .seconds(120), until: { $0.isUp }) else { break }
            if case .sessionApproved(let id, _)? = pay(&w) { approved.append(id) }
        }
        // Dispose of every approval the host saw, retrying across link drops as an engine would.
        for id in approved {
            var done = false
            for _ in 0..<10 where !done {
                guard w.run(within: .seconds(120), until: { $0.isUp }) else { continue }
                switch w.request(.commitSession(sessionID: id, amount: 100)) {
                case .result(let r)? where r.ok:
                    done = true
                case .result(let r)? where r.reason == ResultReason.sessionNotFound:
                    // The terminal already took an earlier commit whose answer was lost.
                    done = true
                case .result(let r)? where r.reason == nil && family == .p6x:
                    // A bare Not OK (no detailed codes on P6X): List Sessions tells whether it is still open.
                    if case .response(.sessionList(_, let open))? = w.request(.listSessions(offset: 0)) {
                        done = !open.contains(id)
                    }
                default:
                    break
                }
            }
            #expect(done, "seed \(seed): session \(id) could not be committed")
        }
        #expect(w.run(within: .seconds(120)) { $0.isUp }, "seed \(seed): link did not come back")
        // The terminal's own books: no session committed twice, and every approval the host saw is closed.
        let committed = w.recorded("committed").compactMap { r -> Int64? in if case .int(let i)? = r["sessionId"] { return i } else { return nil } }
        #expect(Set(committed).count == committed.count, "seed \(seed): a session was committed twice")
        for id in approved { #expect(w.sim.openSessions[id] == nil, "seed \(seed): session \(id) left open") }
    }
}
