import PSPCodec
import PSPLink
import Platform
import Timebase
import Transport

/// Runs the pure `PSPLinkCore` over a `TerminalConnection` on an event loop: the only
/// place where PSP meets file descriptors and the clock. It applies the core's effects in
/// order (writes, events, transport resets) and keeps one timer at the core's next deadline.
public final class PSPLinkDriver {
    public private(set) var core: PSPLinkCore
    public let connection: TerminalConnection
    /// Every link event, in order, on the loop thread.
    public var onEvent: (LinkEvent) -> Void
    /// The terminal being away and back, for the log: once per reason, not per retry.
    public var onAvailability: (AvailabilityReport) -> Void = { _ in }
    public private(set) var availability: LinkAvailability

    let loop: EventLoop
    /// At the earliest of the core's deadline and the silence report's.
    lazy var timer = DeadlineTimer(loop: loop) { [unowned self] in
        let now = MonotonicClock.now()
        self.report(self.availability.tick(now: now))
        self.apply(self.core.tick(now: now))
    }

    public init(loop: EventLoop, endpoint: Endpoint, config: PSPLinkConfig, backoff: Backoff = Backoff(),
                onEvent: @escaping (LinkEvent) -> Void = { _ in }) {
        self.loop = loop
        self.core = PSPLinkCore(config: config)
        self.connection = TerminalConnection(loop: loop, endpoint: endpoint, backoff: backoff)
        self.onEvent = onEvent
        self.availability = LinkAvailability(now: MonotonicClock.now())
        connection.onUp = { [unowned self] in
            let now = MonotonicClock.now()
            self.availability.opened(now: now)
            self.apply(self.core.transportUp(now: now))
        }
        connection.onBytes = { [unowned self] bytes in self.apply(self.core.receive(bytes, now: MonotonicClock.now())) }
        connection.onDown = { [unowned self] reason in
            let now = MonotonicClock.now()
            self.report(self.availability.lost(reason, now: now))
            self.apply(self.core.transportDown(reason: reason, now: now))
        }
        connection.onOpenFailure = { [unowned self] reason in
            self.report(self.availability.openFailed(reason, now: MonotonicClock.now()))
            self.rearm()
        }
    }

    func report(_ r: AvailabilityReport?) {
        if let r { onAvailability(r) }
    }

    /// Opens the transport and starts bring-up (retrying until it works).
    public func start() { connection.start() }

    /// Closes the transport; outstanding requests complete as `linkLost`.
    public func stop() {
        connection.stop()
        apply(core.transportDown(reason: "stopped", now: MonotonicClock.now()))
    }

    /// Submits a command; its outcome arrives as `.completed` through `onEvent`.
    @discardableResult
    public func submit(_ command: HostCommand) -> RequestID {
        let (id, fx) = core.submit(command, now: MonotonicClock.now())
        apply(fx)
        return id
    }

    func apply(_ effects: [LinkEffect]) {
        for e in effects {
            switch e {
            case .write(let bytes): connection.write(bytes)
            case .event(let ev):
                onEvent(ev)
                switch ev {
                case .up: report(availability.up(now: MonotonicClock.now()))
                case .terminalReset: availability.restarted(now: MonotonicClock.now())
                default: break
                }
            case .resetTransport(let reason):
                connection.reset(reason: reason)
            }
        }
        rearm()
    }

    func rearm() {
        timer.arm(earliestOf: core.nextDeadline, availability.nextDeadline)
    }
}
