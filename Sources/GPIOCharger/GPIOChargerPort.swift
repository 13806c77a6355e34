import ChargerPort
import ControllerInput
import GPIOLines
import Glibc
import PaymentEngine
import Platform
import Timebase

/// Why a meter reading given to `GPIOChargerPort.meterReading` was not passed to the engine.
public enum GPIOMeterError: Error, Equatable, Sendable {
    /// The connector (0-based) is not one of this charger's.
    case connectorOutOfRange(Int, connectors: Int)
    /// The reading is implausible (ControllerInput's `MeterGuard`); the last accepted one stands.
    case meterRejected(MeterRejection)
    /// The meter's serial number is not the one this session started with: another meter (a
    /// swap, a wrong bus address) cannot be billed as the same register. Rejected until the
    /// session ends; the silence rule then stops it on the last accepted reading.
    case serialChanged(expected: String, got: String)
}

/// The connectors' relays, mirror contacts and plug-detect inputs on Linux GPIO lines (uAPI v2
/// character device), as the station's `ChargerPort`; meter readings come in through
/// `meterReading` from whoever reads the meter (the Modbus client).
///
/// - Relays: each coil driver is requested as an output already inactive (the request itself
///   sets the level, so it never glitches on), driven active only while the engine commands the
///   relay closed, and driven inactive on every open, on `shutdown()` and in deinit. What keeps
///   it open when the process dies without that (SIGKILL, a crash) is the hardware: see
///   docs/ARCHITECTURE.md "Relays on GPIO lines" (the pull on the driver's input, the unit's
///   `ExecStopPost`).
/// - Feedback: `MirroredRelays` (pure) judges each relay's mirror contact against the command
///   within `feedbackTimeout`: refused to close (the session ends), welded (the connector is out
///   of service until an operator clears it and the daemon restarts), opened uncommanded (a fault:
///   the session stops on what was metered). A relay with no mirror line is trusted on command.
/// - Inputs are watched on the event loop (edge events on the line fds, debounced by the kernel
///   where it can and always by `DebouncedLevel`); no polling. After each batch of edges the
///   line's level is read once, so a lost event cannot leave a stale level behind.
/// - Meter readings pass `MeterGuard` and a serial-number check; a connector charging (its close
///   confirmed) without an accepted reading for `meterTimeout` gets a fault.
///
/// Connectors are 0-based, as the engine counts. Inputs reach `onInputs` from the loop, never
/// from inside `setRelay` or `show`; `meterReading` delivers its `.meter` synchronously.
public final class GPIOChargerPort: ChargerPort {
    public var onInputs: ([EngineInput]) -> Void = { _ in }
    /// What the port has to say itself (a line that failed, a welded relay), for the log and STATUS=.
    public var onNotice: (NoticeSeverity, String) -> Void = { _, _ in }
    /// What a connector (0-based) offers a driver now, for LEDs or a display.
    public var onOffer: (Int, PaymentEngine.ConnectorOffer) -> Void = { _, _ in }

    /// The mirror's default time to follow a command (a contactor needs 20–100 ms; margin for the
    /// debounce, twice, and a busy loop).
    public static let defaultFeedbackTimeout: Duration = .milliseconds(500)
    /// The consumer name other tools (`gpioinfo`) see on the lines.
    public static let defaultConsumer = "paybridged"

    /// What the port counted since start (`relay.*`, `meter.*`, `plug.*`, `gpio.*`).
    public private(set) var counters: [String: Int] = [:]
    /// The relays' commands and mirrors (pure).
    public private(set) var relays: MirroredRelays
    /// The meter checks and silence timer (pure, ControllerInput's).
    public private(set) var meters: MeterGuard
    /// The plug inputs as debounced (nil: no plug line).
    public private(set) var plugs: [DebouncedLevel?]
    /// Each connector's meter serial number (pure).
    public private(set) var meterSerials: MeterSerials
    public let connectors: Int
    public let configs: [GPIOConnectorConfig]

    /// Which input of a connector an fd belongs to.
    enum Input: String { case mirror, plug }

    struct Lines {
        var relay: GPIOLineHandle
        var mirror: GPIOLineHandle?
        var plug: GPIOLineHandle?
        /// The level the relay output is driven to (active = energised).
        var driven = false
    }
    var lines: [Lines]
    var watches: [WatchToken] = []
    var isShutDown = false
    let loop: EventLoop
    /// Created at the end of init (not lazily: deinit's `shutdown` must not create one).
    var timer: DeadlineTimer?

    /// Requests every connector's lines (relays first, each inactive), reads the inputs' levels
    /// and starts watching them. Any failure releases what was requested and throws: a charger
    /// that cannot drive or watch one of its relays is not started half-way.
    /// `maxPowerW`: `charger.max_power_w`; `meterTimeout`: `charger.meter_timeout_seconds`.
    public convenience init(loop: EventLoop, connectors configs: [GPIOConnectorConfig], feedbackTimeout: Duration = GPIOChargerPort.defaultFeedbackTimeout,
                            maxPowerW: Int64, meterTimeout: Duration, consumer: String = GPIOChargerPort.defaultConsumer) throws(GPIOError) {
        var chips: [String: GPIOChip] = [:]
        try self.init(loop: loop, connectors: configs, feedbackTimeout: feedbackTimeout, maxPowerW: maxPowerW, meterTimeout: meterTimeout) {
            ref, settings throws(GPIOError) -> GPIOLineHandle in
            let chip: GPIOChip
            if let c = chips[ref.chip] { chip = c } else { chip = try GPIOChip.find(ref.chip); chips[ref.chip] = chip }
            let offset = try chip.offset(of: ref.line)
            do throws(GPIOError) { return try chip.request(offset: offset, consumer: consumer, settings) } catch {
                // A chip that cannot debounce (or whose driver refuses the attribute) still gives
                // edges; DebouncedLevel debounces them anyway.
                guard case .system(let e) = error, settings.debounce > .zero, e.errno == EINVAL || e.errno == 524 /* ENOTSUPP */ else { throw error }
                var s = settings
                s.debounce = .zero
                return try chip.request(offset: offset, consumer: consumer, s)
            }
        }
    }

    /// The port over lines `request` gives (the real chips above; fakes in tests). `request`
    /// receives each line's reference and settings, `activeLow` already applied.
    init(loop: EventLoop, connectors configs: [GPIOConnectorConfig], feedbackTimeout: Duration, maxPowerW: Int64, meterTimeout: Duration,
         request: (GPIOLineRef, GPIOLineSettings) throws(GPIOError) -> GPIOLineHandle) throws(GPIOError) {
        precondition(!configs.isEmpty && configs.count <= EngineConfig.maxConnectors, "1...\(EngineConfig.maxConnectors) connectors")
        self.loop = loop
        self.configs = configs
        connectors = configs.count
        var acquired: [GPIOLineHandle] = []
        func line(_ ref: GPIOLineRef, _ settings: GPIOLineSettings) throws(GPIOError) -> GPIOLineHandle {
            var s = settings
            s.activeLow = ref.activeLow
            let l = try request(ref, s)
            acquired.append(l)
            return l
        }
        var built: [Lines] = []
        do {
            for c in configs {
                built.append(Lines(relay: try line(c.relay, GPIOLineSettings(direction: .output(initiallyActive: false)))))
            }
            for (i, c) in configs.enumerated() {
                let input = GPIOLineSettings(direction: .input(edges: true), debounce: c.debounce)
                if let m = c.mirror { built[i].mirror = try line(m, input) }
                if let p = c.plug { built[i].plug = try line(p, input) }
            }
        } catch {
            for l in acquired { l.release() }
            throw error
        }
        lines = built
        let now = MonotonicClock.now()
        var mirrorLevels: [Bool?] = []
        var plugLevels: [Bool?] = []
        do {
            for l in built {
                mirrorLevels.append(try l.mirror?.get())
                plugLevels.append(try l.plug?.get())
            }
        } catch {
            for l in acquired { l.release() }
            throw error
        }
        relays = MirroredRelays(mirrorLevels: mirrorLevels, feedbackTimeout: feedbackTimeout, debounces: configs.map(\.debounce), at: now)
        plugs = configs.indices.map { i in plugLevels[i].map { DebouncedLevel(level: $0, debounce: configs[i].debounce, at: now) } }
        meters = MeterGuard(connectors: connectors, maxPowerW: maxPowerW, timeout: meterTimeout)
        meterSerials = MeterSerials(connectors: connectors)
        for c in 0..<connectors {
            for (kind, l) in [(Input.mirror, lines[c].mirror), (Input.plug, lines[c].plug)] {
                guard let l, let fd = l.fd else { continue }
                watches.append(loop.watch(fd, read: true, write: false) { [unowned self] _ in self.readable(connector: c, kind: kind) })
            }
        }
        // What is already true at start: a mirror closed before any command is welded; a cable
        // already in is a plug. Delivered from the loop, once the daemon has set onInputs.
        var initial: [EngineInput] = []
        for (c, o) in relays.start(at: now) { initial += handle(c, o, now) }
        for c in 0..<connectors where plugs[c]?.settled == true { initial.append(.plug(connector: c, pluggedIn: true)) }
        timer = DeadlineTimer(loop: loop) { [unowned self] in self.advance() }
        let unmirrored = (0..<connectors).filter { configs[$0].mirror == nil }
        _ = loop.schedule(at: now) { [weak self] in
            guard let self else { return }
            for c in unmirrored {
                self.note(.warning, "connector \(c + 1): relay \(self.configs[c].relay) has no mirror contact: trusted on command, a welded or refused relay cannot be detected")
            }
            if !initial.isEmpty { self.onInputs(initial) }
        }
    }

    /// Silent: whoever set `onNotice` may be going away too. Call `shutdown()` first to hear
    /// about a relay that could not be de-energised.
    deinit { close(reporting: false) }

    // MARK: ChargerPort (connectors 0-based)

    public func setRelay(connector c: Int, closed: Bool) {
        guard (0..<connectors).contains(c) else { return }
        let now = MonotonicClock.now()
        if !closed { meters.unwatch(connector: c) }
        if isShutDown {
            if closed { later([.relay(connector: c, .refusedToClose)]) }
            return
        }
        count(closed ? "relay.close_requests" : "relay.open_requests")
        var inputs: [EngineInput] = []
        for (k, o) in relays.command(connector: c, closed: closed, at: now) { inputs += handle(k, o, now) }
        inputs += syncOutputs()
        rearm()
        later(inputs)
    }

    public func show(connector c: Int, _ offer: PaymentEngine.ConnectorOffer) {
        guard (0..<connectors).contains(c) else { return }
        onOffer(c, offer)
    }

    /// The mirror contact's debounced level, inverted; nil without a mirror line.
    public func contactReadsOpen(connector c: Int) -> Bool? {
        guard relays.mirrors.indices.contains(c), let m = relays.mirrors[c] else { return nil }
        return !m.settled
    }

    /// The technician's clear-fault: the relay core may drive this relay again.
    public func weldCleared(connector c: Int) {
        guard (0..<connectors).contains(c) else { return }
        relays.clearWeld(connector: c)
        count("relay.weld_cleared")
    }

    // MARK: the meter

    /// A reading of the connector's meter (0-based): its import register (cumulative Wh), the
    /// power if known (W), its serial number if known, read at `now`. Judged by `MeterGuard`; a
    /// serial number other than the one seen while the relay is commanded closed is rejected (a
    /// new serial between sessions is a replaced meter: its register is judged afresh). Accepted
    /// readings reach the engine at once as `.meter`.
    public func meterReading(connector c: Int, registerWh: Int64, powerW: Int64?, serial: String?, at now: Instant) throws(GPIOMeterError) {
        guard (0..<connectors).contains(c) else { throw .connectorOutOfRange(c, connectors: connectors) }
        let charging = relays.commanded(connector: c) || meters.watchedSince[c] != nil
        switch meterSerials.check(connector: c, serial: serial, charging: charging) {
        case .same: break
        case .changedWhileCharging(let expected):
            count("meter.rejected.serial_changed")
            meters.refused(connector: c, because: "the meter's serial number changed from \(expected) to \(serial ?? "") while charging")
            throw .serialChanged(expected: expected, got: serial ?? "")
        case .replaced(let previous):
            count("meter.replaced")
            meters.rebase(connector: c)
            note(.warning, "connector \(c + 1): meter serial number changed from \(previous) to \(serial ?? "") between sessions")
        }
        if let r = meters.check(connector: c, registerWh: registerWh, powerW: powerW, at: now) {
            count("meter.rejected.\(r.rawValue)")
            throw .meterRejected(r)
        }
        count("meter.accepted")
        rearm()
        onInputs([.meter(connector: c, registerWh: registerWh)])
    }

    // MARK: shutdown

    /// Drives every relay inactive and releases every line. Idempotent; afterwards a close is
    /// refused. The daemon calls it on stop and on a ledger failure; deinit does the same silently.
    public func shutdown() { close(reporting: true) }

    func close(reporting: Bool) {
        guard !isShutDown else { return }
        isShutDown = true
        for w in watches { loop.unwatch(w) }
        watches = []
        timer?.disarm()
        for c in lines.indices {
            do { try lines[c].relay.set(active: false) } catch {
                if reporting { onNotice(.error, "connector \(c + 1): could not de-energise relay \(configs[c].relay) at shutdown: \(error); releasing it") }
            }
            lines[c].driven = false
            lines[c].relay.release()
            lines[c].mirror?.release()
            lines[c].plug?.release()
        }
    }

    /// For a unit's `ExecStopPost=` (after the daemon exited, however it exited): requests each
    /// relay line as an output driven inactive and releases it. On chips that keep driving a
    /// released line (most SoCs) the relay then stays de-energised; on chips that return it to
    /// its pull, the board's pull decides, as it does after any exit. Every relay is tried; the
    /// first error is thrown after the others were done. A line still held (the daemon running)
    /// is `lineBusy` and left alone.
    public static func deenergiseRelays(_ configs: [GPIOConnectorConfig], consumer: String = GPIOChargerPort.defaultConsumer) throws(GPIOError) {
        var first: GPIOError?
        for c in configs {
            do {
                let chip = try GPIOChip.find(c.relay.chip)
                let offset = try chip.offset(of: c.relay.line)
                let line = try chip.request(offset: offset, consumer: consumer,
                                            GPIOLineSettings(direction: .output(initiallyActive: false), activeLow: c.relay.activeLow))
                line.release()
            } catch {
                if first == nil { first = error }
            }
        }
        if let first { throw first }
    }

    // MARK: events and time

    func readable(connector c: Int, kind: Input) {
        guard !isShutDown, let line = kind == .mirror ? lines[c].mirror : lines[c].plug else { return }
        let now = MonotonicClock.now()
        do {
            var edges: [GPIOEdge]
            repeat {
                edges = try line.readEdges()
                for e in edges { sample(c, kind, e.active, at: min(e.at, now)) }
                count("gpio.edges", edges.count)
            } while edges.count == GPIOLine.maxEventsPerRead
            // A dropped event (the kernel's buffer full) must not leave a stale level.
            sample(c, kind, try line.get(), at: now)
        } catch {
            lineFailed(c, kind, error)
            return
        }
        advance()
    }

    func sample(_ c: Int, _ kind: Input, _ level: Bool, at t: Instant) {
        if kind == .mirror { relays.mirror(connector: c, closed: level, at: t) } else { plugs[c]?.sample(level, at: t) }
    }

    /// An input line that cannot be read any more: stop watching it (its fd would wake the loop
    /// forever) and fault the connector. A lost mirror also takes the relay open; if the mirror
    /// last showed it closed, that open can never be shown and ends welded (out of service until
    /// a restart): nothing can tell whether the contacts opened.
    func lineFailed(_ c: Int, _ kind: Input, _ error: GPIOError) {
        count("gpio.line_failed")
        let l = kind == .mirror ? lines[c].mirror : lines[c].plug
        if let fd = l?.fd { loop.unwatchAll(fd) }
        note(.error, "connector \(c + 1): \(kind.rawValue) line failed: \(error)")
        var inputs: [EngineInput] = [.fault(connector: c, "\(kind.rawValue) input failed")]
        if kind == .mirror {
            meters.unwatch(connector: c)
            for (k, o) in relays.command(connector: c, closed: false, at: MonotonicClock.now()) { inputs += handle(k, o, MonotonicClock.now()) }
            inputs += syncOutputs()
        }
        rearm()
        onInputs(inputs)
    }

    func advance() {
        guard !isShutDown else { return }
        let now = MonotonicClock.now()
        var inputs: [EngineInput] = []
        for (c, o) in relays.advance(to: now) { inputs += handle(c, o, now) }
        for c in plugs.indices {
            if let p = plugs[c]?.advance(to: now) {
                count("plug.\(p ? "in" : "out")")
                inputs.append(.plug(connector: c, pluggedIn: p))
            }
        }
        for c in meters.silent(at: now) {
            count("meter.timeouts")
            inputs.append(.fault(connector: c, meters.silenceFault(connector: c)))
        }
        inputs += syncOutputs()
        rearm()
        if !inputs.isEmpty { onInputs(inputs) }
    }

    /// What an outcome means for the engine (and the meter's silence timer).
    func handle(_ c: Int, _ o: MirroredRelays.Outcome, _ now: Instant) -> [EngineInput] {
        switch o {
        case .confirmed(let closed):
            count(closed ? "relay.confirmed_closed" : "relay.confirmed_open")
            if closed { meters.watch(connector: c, from: now) }
            return [.relay(connector: c, closed ? .closed : .opened)]
        case .refusedToClose:
            count("relay.refused_to_close")
            meters.unwatch(connector: c)
            return [.relay(connector: c, .refusedToClose)]
        case .weldedOnOpen, .closedUncommanded:
            count(o == .weldedOnOpen ? "relay.welded_on_open" : "relay.closed_uncommanded")
            note(.error, "connector \(c + 1): relay \(configs[c].relay) welded: its mirror contact \(o == .weldedOnOpen ? "stayed closed after the open" : "closed without a command")")
            return [.relay(connector: c, .welded)]
        case .openedUncommanded:
            count("relay.opened_uncommanded")
            meters.unwatch(connector: c)
            return [.fault(connector: c, "relay opened without a command (mirror contact)")]
        }
    }

    /// Drives each relay output to its commanded level. A close that cannot be driven stays
    /// pending and is refused when its feedback time runs out (or at once without a mirror); an
    /// open that cannot be driven is welded: nothing else can open that relay.
    func syncOutputs() -> [EngineInput] {
        var inputs: [EngineInput] = []
        for c in lines.indices {
            let want = relays.commanded(connector: c) && !isShutDown
            guard lines[c].driven != want else { continue }
            do {
                try lines[c].relay.set(active: want)
                lines[c].driven = want
            } catch {
                count("gpio.drive_failed")
                note(.error, "connector \(c + 1): could not \(want ? "energise" : "de-energise") relay \(configs[c].relay): \(error)")
                if !want {
                    inputs.append(.relay(connector: c, .welded))
                } else if configs[c].mirror == nil {
                    _ = relays.command(connector: c, closed: false, at: MonotonicClock.now())
                    inputs.append(.relay(connector: c, .refusedToClose))
                }
            }
        }
        return inputs
    }

    func rearm() {
        let plugDue = plugs.compactMap { $0?.settleAt }.min()
        timer?.arm(earliestOf: relays.nextDeadline, plugDue, meters.nextDeadline)
    }

    func later(_ inputs: [EngineInput]) {
        guard !inputs.isEmpty else { return }
        _ = loop.schedule(at: MonotonicClock.now()) { [weak self] in self?.onInputs(inputs) }
    }

    func note(_ severity: NoticeSeverity, _ text: String) { onNotice(severity, text) }

    func count(_ key: String, _ n: Int = 1) { if n > 0 { counters[key, default: 0] += n } }
}
