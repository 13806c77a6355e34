import EnergyMeters
import ModbusRTU
import Platform
import Timebase
import Transport

/// A meter bus's serial line and poll settings.
public struct MeterLinkSettings: Equatable, Sendable {
    /// The RS-485 adapter's device (`/dev/ttyMeter`, a pty in tests).
    public var path: String
    /// 9600 or 19200 baud, 8N1 or 8E1 (Eastron's default is 9600 8N1, ABB's 19200 8E1).
    public var line: LineSettings
    /// The meters on the bus.
    public var meters: [MeterSpec]
    /// Time between the starts of two poll cycles.
    public var pollInterval: Duration
    /// How long a meter may take to answer (beyond the time on the wire).
    public var responseTimeout: Duration
    /// How often one read is sent again.
    public var maxRetries: Int
    /// The silence that ends a frame; nil for the spec's t3.5. A USB adapter whose latency timer
    /// splits frames needs more (the FTDI default is 16 ms).
    public var frameSilence: Duration?

    /// Line rates a meter bus may use.
    public static let allowedBauds: Set<Int> = [9600, 19200]
    /// The longest frame silence a configuration may set: longer would eat into the response
    /// timeout and the poll cycle.
    public static let maxFrameSilence: Duration = .milliseconds(50)

    public init(path: String, line: LineSettings, meters: [MeterSpec],
                pollInterval: Duration = MeterBusLimits.defaultPollInterval,
                responseTimeout: Duration = ModbusClientConfig.defaultResponseTimeout,
                maxRetries: Int = ModbusClientConfig.defaultMaxRetries, frameSilence: Duration? = nil) {
        self.path = path
        self.line = line
        self.meters = meters
        self.pollInterval = pollInterval
        self.responseTimeout = responseTimeout
        self.maxRetries = maxRetries
        self.frameSilence = frameSilence
    }

    /// The line's RTU timing: 11 bits per character with parity or two stop bits, else 10.
    public var timing: ModbusTiming {
        ModbusTiming(baud: line.baud, bitsPerCharacter: 1 + line.dataBits + (line.parity == .none ? 0 : 1) + line.stopBits)
    }
}

/// Why a meter link was not created.
public enum MeterLinkSetupError: Error, Equatable, Sendable {
    /// The line is not 9600/19200 baud with 8 data bits.
    case unsupportedLine(LineSettings)
    /// The frame silence is not between t3.5 and `MeterLinkSettings.maxFrameSilence`.
    case frameSilence(Duration)
    /// The response timeout is outside `ModbusClientConfig.responseTimeoutRange`.
    case responseTimeout(Duration)
    /// The retries are outside `ModbusClientConfig.maxRetriesRange`.
    case retries(Int)
    /// The bus (meters, poll interval) was refused.
    case bus(MeterBusConfigError)
}

/// Polls the energy meters on one RS-485 bus over the project's serial port, on the event loop:
/// `MeterBusCore` (and its `ModbusClientCore`) decide, `ModbusFramer` cuts frames by silence,
/// `TerminalConnection` opens (exclusively) and reopens the port with backoff. One timer stands
/// at the earliest of the framer's and the core's deadlines.
///
/// It reports what the meters say, per address; judging a reading (backwards, a jump, a new
/// serial number) is the station's.
public final class ModbusMeterLink {
    /// The settings it was made with.
    public let settings: MeterLinkSettings
    /// The port.
    public let connection: TerminalConnection
    /// The poll and client state (counters included).
    public private(set) var core: MeterBusCore
    /// The framer (its counters: oversized runs and discarded bytes).
    public private(set) var framer: ModbusFramer

    /// A meter was read: address, total import Wh, power W (nil if the meter has none), serial
    /// number, and when (monotonic). On the loop thread.
    public var onReading: (_ address: UInt8, _ importWh: Int64, _ powerW: Int64?, _ serial: String, _ at: Instant) -> Void = { _, _, _, _, _ in }
    /// A meter could not be read this cycle, and why. On the loop thread.
    public var onFailure: (_ address: UInt8, _ error: MeterFailure) -> Void = { _, _ in }
    /// The port could not be opened or went away (the reason; it is retried with backoff).
    public var onPortProblem: (String) -> Void = { _ in }

    let loop: EventLoop
    lazy var timer = DeadlineTimer(loop: loop) { [unowned self] in self.timerFired() }

    /// A link for `settings`; nothing is opened before `start`.
    public init(loop: EventLoop, settings: MeterLinkSettings, backoff: Backoff = Backoff()) throws(MeterLinkSetupError) {
        guard MeterLinkSettings.allowedBauds.contains(settings.line.baud), settings.line.dataBits == 8 else {
            throw .unsupportedLine(settings.line)
        }
        let timing = settings.timing
        let silence = settings.frameSilence ?? timing.frameSilence
        guard silence >= timing.frameSilence, silence <= MeterLinkSettings.maxFrameSilence else {
            throw .frameSilence(silence)
        }
        guard ModbusClientConfig.responseTimeoutRange.contains(settings.responseTimeout) else {
            throw .responseTimeout(settings.responseTimeout)
        }
        guard ModbusClientConfig.maxRetriesRange.contains(settings.maxRetries) else { throw .retries(settings.maxRetries) }
        do {
            core = try MeterBusCore(meters: settings.meters, pollInterval: settings.pollInterval,
                                    client: ModbusClientConfig(timing: timing, responseTimeout: settings.responseTimeout,
                                                               maxRetries: settings.maxRetries))
        } catch {
            throw .bus(error)
        }
        self.loop = loop
        self.settings = settings
        self.framer = ModbusFramer(silence: silence)
        self.connection = TerminalConnection(loop: loop, endpoint: .serial(path: settings.path, settings: settings.line), backoff: backoff)
        connection.onUp = { [unowned self] in
            self.framer.reset()
            self.core.linkUp()
            self.rearm()
        }
        connection.onBytes = { [unowned self] bytes in
            let now = MonotonicClock.now()
            if let frame = self.framer.receive(bytes, at: now) {
                self.apply(self.core.receive(frame: frame, now: now))
            }
            self.rearm()
        }
        connection.onDown = { [unowned self] reason in
            self.onPortProblem(reason)
            self.framer.reset()
            self.apply(self.core.linkDown(now: MonotonicClock.now()))
        }
        connection.onOpenFailure = { [unowned self] reason in self.onPortProblem(reason) }
    }

    /// Opens the port and starts polling (the first cycle at once).
    public func start() {
        connection.start()
        apply(core.start(now: MonotonicClock.now()))
    }

    /// Stops polling and closes the port. Nothing is reported afterwards, not even the read that
    /// was in progress: the owner asked for the stop (and may be going away).
    public func stop() {
        core.stop()
        _ = core.linkDown(now: MonotonicClock.now())
        connection.stop()
        timer.disarm()
    }

    func timerFired() {
        let now = MonotonicClock.now()
        // A frame that ended in silence first: it may be the answer the timeout is waiting for.
        if let frame = framer.tick(now: now) { apply(core.receive(frame: frame, now: now)) }
        apply(core.tick(now: now))
    }

    func apply(_ effects: [MeterBusEffect]) {
        for e in effects {
            switch e {
            case .send(let bytes): connection.write(bytes)
            case .reading(let address, let v, let at): onReading(address, v.importWh, v.powerW, v.serial, at)
            case .failure(let address, let f): onFailure(address, f)
            }
        }
        rearm()
    }

    func rearm() {
        timer.arm(earliestOf: framer.nextDeadline, core.nextDeadline)
    }
}
