import GPIOCharger
import Testing
import Timebase

/// Seeded random contactors against `MirroredRelays`. Each run draws a contactor (how long its
/// mirror takes to follow the coil; whether it refuses one close, or welds from some close on),
/// a debounce, a feedback time, contact bounce, and alternating commands. The simulated contact
/// follows the coil the core commands (so a refusal's de-energising is part of the physics), and
/// an oracle that knows the physics names each command's outcomes and their instants; the core
/// must say exactly that. The seed is in every failed expectation.
@Suite struct MirroredRelaysPropertyTests {
    enum Fault: Equatable { case none, refusesAt(Int), weldsFrom(Int) }

    struct Contactor: CustomStringConvertible {
        var debounce: Duration
        var feedback: Duration
        var delay: Duration
        var fault: Fault
        var commands: Int
        var bounces: Bool
        var description: String { "debounce \(debounce) feedback \(feedback) delay \(delay) \(fault) commands \(commands) bounces \(bounces)" }
    }

    static func draw(_ rng: inout SeededGenerator) -> Contactor {
        let debounceMs = Int64(rng.next() % 40)
        let feedbackMs = 100 + Int64(rng.next() % 900)
        // Mostly in time; sometimes just too slow (closed before the deadline, settled after);
        // sometimes far too slow (still moving when the coil is de-energised).
        let delayMs: Int64 = switch rng.next() % 6 {
        case 0: feedbackMs - debounceMs + 1 + Int64(rng.next() % UInt64(debounceMs + 1))
        case 1: feedbackMs + 1 + Int64(rng.next() % 300)
        default: Int64(rng.next() % UInt64(feedbackMs - debounceMs + 1))
        }
        let commands = 2 + Int(rng.next() % 10)
        let fault: Fault = switch rng.next() % 4 {
        case 0: .refusesAt(2 * Int(rng.next() % UInt64((commands + 1) / 2)))
        case 1: .weldsFrom(2 * Int(rng.next() % UInt64((commands + 1) / 2)))
        default: .none
        }
        return Contactor(debounce: .milliseconds(debounceMs), feedback: .milliseconds(feedbackMs), delay: .milliseconds(delayMs),
                         fault: fault, commands: commands, bounces: rng.next() % 2 == 0)
    }

    @Test(arguments: (1...300).map { UInt64($0) &* 0x9E37_79B9_7F4A_7C15 })
    func theCoreSaysWhatThePhysicsSays(seed: UInt64) {
        var rng = SeededGenerator(seed: seed)
        let k = Self.draw(&rng)
        let ctx = "seed \(seed): \(k)"
        let t0 = Instant(nanoseconds: 10_000_000_000)
        var r = MirroredRelays(mirrorLevels: [false], feedbackTimeout: k.feedback, debounce: k.debounce, at: t0)
        var contact = false                            // the aux contact as it physically is
        var coil = false                               // what the core commands
        var pending: (at: Instant, level: Bool)?       // the contact on its way
        var welded = false
        var refusing = false                           // this close's contact never moves
        var latched = false
        var now = t0
        let spacing = k.feedback * 2 + k.delay + k.debounce + .milliseconds(50)

        /// The contact follows the coil after `delay`, unless it refuses (closing) or is welded (opening).
        func coilChanged(at t: Instant) {
            let c = r.commanded(connector: 0)
            guard c != coil else { return }
            coil = c
            pending = nil
            if c && refusing { return }
            if !c && welded { return }
            if c != contact { pending = (t + k.delay, c) }
        }

        func run(until: Instant) -> [(Instant, MirroredRelays.Outcome)] {
            var seen: [(Instant, MirroredRelays.Outcome)] = []
            while let t = [r.nextDeadline, pending?.at].compactMap({ $0 }).filter({ $0 <= until }).min() {
                if let p = pending, p.at == t {
                    contact = p.level
                    r.mirror(connector: 0, closed: p.level, at: t)
                    pending = nil
                }
                for (_, o) in r.advance(to: t) { seen.append((t, o)) }
                coilChanged(at: t)
            }
            return seen
        }

        for i in 0..<k.commands {
            let close = i % 2 == 0
            if k.bounces, k.debounce > .milliseconds(2) {
                let b = now + .milliseconds(5)
                r.mirror(connector: 0, closed: !contact, at: b)
                r.mirror(connector: 0, closed: contact, at: b + .milliseconds(1))
                let quiet = r.advance(to: b + .milliseconds(2))
                #expect(quiet.isEmpty, "bounce gave \(quiet) — \(ctx)")
                now = b + .milliseconds(2)
            }
            let T = now
            if close {
                refusing = k.fault == .refusesAt(i)
                if case .weldsFrom(let w) = k.fault, w <= i { welded = true }
            }
            let wasConfirmedClosed = coil && contact
            var seen = r.command(connector: 0, closed: close, at: T).map { (T, $0.outcome) }
            coilChanged(at: T)
            seen += run(until: T + spacing)

            // The oracle.
            let inTime = k.delay + k.debounce <= k.feedback
            let expected: [(Instant, MirroredRelays.Outcome)]
            if latched {
                expected = close ? [(T, .refusedToClose)] : []
            } else if close {
                if refusing || k.delay > k.feedback { expected = [(T + k.feedback, .refusedToClose)] }
                else if inTime { expected = [(T + k.delay + k.debounce, .confirmed(closed: true))] }
                // Closed just before the deadline, settled after it: refused, and as slow to open.
                else { expected = [(T + k.feedback, .refusedToClose), (T + k.feedback * 2, .weldedOnOpen)] }
            } else if wasConfirmedClosed {
                expected = welded ? [(T + k.feedback, .weldedOnOpen)] : [(T + k.delay + k.debounce, .confirmed(closed: false))]
            } else {
                expected = [(T, .confirmed(closed: false))]   // already open: a level confirms at once
            }
            #expect(seen.map(\.0) == expected.map(\.0) && seen.map(\.1) == expected.map(\.1),
                    "command \(i) (\(close ? "close" : "open")): got \(seen) expected \(expected) — \(ctx)")
            if seen.map(\.1) != expected.map(\.1) { return }
            if expected.contains(where: { $0.1 == .weldedOnOpen }) { latched = true }
            #expect(r.welded[0] == latched, "\(ctx)")
            #expect(r.commanded(connector: 0) == (close && expected.last?.1 == .confirmed(closed: true)), "commanded after \(i) — \(ctx)")
            now = T + spacing
        }
    }
}
