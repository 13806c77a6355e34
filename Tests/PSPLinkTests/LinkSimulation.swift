import PSPCodec
import PSPLink
import TerminalSim
import Timebase
import JSONLines

/// A deterministic world: the link core and the simulated terminal wired back to back,
/// a virtual clock, and a wire that can be cut. No I/O, no wall clock.
struct LinkWorld {
    var now = Instant(nanoseconds: 1_000_000_000)
    var link: PSPLinkCore
    var sim: TerminalSimCore
    var events: [LinkEvent] = []
    var records: [JSON] = []
    var wireUp = false
    /// When the cable is plugged back in (after an unplug) or the host reconnects.
    var plugBackAt: Instant?
    var reconnectDelay: Duration = .seconds(1)
    var hostToTerminalBytes = 0
    /// Headers of the frames the host wrote, in order, with the virtual time of each write.
    var sentHeaders: [(header: UInt8, at: Instant)] = []

    init(link config: PSPLinkConfig, sim scenario: SimScenario) {
        link = PSPLinkCore(config: config)
        sim = TerminalSimCore(scenario: scenario)
    }

    mutating func connect() {
        wireUp = true
        apply(sim.connected(now: now))
        apply(link.transportUp(now: now))
    }

    mutating func apply(_ fx: [LinkEffect]) {
        for e in fx {
            switch e {
            case .write(let b):
                hostToTerminalBytes += b.count
                let h = link.format == .extended ? 6 : 3
                if b.count > h { sentHeaders.append((b[h], now)) }
                if wireUp { apply(sim.receive(b, now: now)) }
            case .event(let ev): events.append(ev)
            case .resetTransport:
                cut(for: reconnectDelay)
            }
        }
    }

    mutating func apply(_ fx: [SimEffect]) {
        for e in fx {
            switch e {
            case .write(let b): if wireUp { apply(link.receive(b, now: now)) }
            case .record(let r): records.append(r)
            case .unplug(let ms): cut(for: .milliseconds(ms))
            case .disconnect: cut(for: reconnectDelay)
            case .log: break
            }
        }
    }

    mutating func cut(for d: Duration) {
        guard wireUp else { return }
        wireUp = false
        plugBackAt = now + d
        apply(link.transportDown(reason: "cable", now: now))
    }

    /// Advances the clock to the next thing that happens, up to `limit`.
    mutating func step(limit: Instant) -> Bool {
        let candidates = [link.nextDeadline, sim.nextDeadline, plugBackAt].compactMap { $0 }
        guard let next = candidates.min(), next <= limit else { now = limit; return false }
        if next > now { now = next }
        if let p = plugBackAt, p <= now {
            plugBackAt = nil
            connect()
        }
        apply(sim.tick(now: now))
        apply(link.tick(now: now))
        return true
    }

    /// Runs until `done` holds, or `within` of virtual time passed. Returns whether it held.
    @discardableResult
    mutating func run(within: Duration = .seconds(30), until done: (LinkWorld) -> Bool) -> Bool {
        let limit = now + within
        var guardSteps = 0
        while !done(self) {
            guardSteps += 1
            if guardSteps > 1_000_000 { return false }
            if !step(limit: limit) { return done(self) }
        }
        return true
    }

    mutating func submit(_ c: HostCommand) -> RequestID {
        let (id, fx) = link.submit(c, now: now)
        apply(fx)
        return id
    }

    /// Submits and runs until the request completes; returns its outcome.
    mutating func request(_ c: HostCommand, within: Duration = .seconds(300)) -> RequestOutcome? {
        let id = submit(c)
        var outcome: RequestOutcome?
        run(within: within) { w in
            for e in w.events { if case let .completed(i, _, _) = e, i == id { return true } }
            return false
        }
        for e in events { if case let .completed(i, _, o) = e, i == id { outcome = o } }
        return outcome
    }

    func messages() -> [TerminalMessage] {
        events.compactMap { if case .message(let m) = $0 { return m } else { return nil } }
    }

    func recorded(_ event: String) -> [JSON] {
        records.filter { $0["event"] == .string(event) }
    }

    var isUp: Bool { link.phase == .ready }

    /// The instants at which frames with this header were written by the host.
    func sent(_ header: UInt8) -> [Instant] { sentHeaders.filter { $0.header == header }.map(\.at) }

    func count(_ match: (LinkEvent) -> Bool) -> Int { events.filter(match).count }
}
