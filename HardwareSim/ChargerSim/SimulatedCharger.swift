import ChargerPort
import Glibc
import PaymentEngine
import Platform
import Timebase

/// The simulated charger of the demo and the tests (`charger.io = simulated`): relays with
/// contact feedback (which a test can make refuse to close or weld), and simulated vehicles:
/// after an approval the driver plugs in, the car draws `powerW` while the relay is closed and the
/// register counts it, and the driver unplugs after `chargeFor`. Every relay change is appended to
/// a history file (one JSON object per line) that tests read. Nothing here is ever used on a real
/// charger, nor linked into the daemon: `paybridge-demo` runs it in process, and `charger-sim`
/// hosts it behind the charger line protocol for a daemon with `charger.io = simulated`.
public final class SimulatedCharger: ChargerPort {
    public var onInputs: ([EngineInput]) -> Void = { _ in }
    public private(set) var closed: [Bool]
    public private(set) var plugged: [Bool]
    /// Each connector's energy register, cumulative Wh.
    public private(set) var register: [Int64]
    /// Connectors whose relay refuses to close / welds on the next open.
    public var refuseToClose = Set<Int>()
    public var weldOnOpen = Set<Int>()
    /// The simulated meter reads this often while a car draws energy.
    public static let meterInterval: Duration = .seconds(1)

    let loop: EventLoop
    let history: FileDescriptor?
    let vehicles: SimulatedEVSettings
    /// Sessions a driver was already sent to (each approval gets one driver).
    var served = Set<SessionKey>()
    var plugTimers = Set<Int>()
    var meterTimer: TimerToken?
    var lastReading: Instant?

    public init(loop: EventLoop, connectors: Int, historyPath: String?, vehicles: SimulatedEVSettings) throws {
        self.loop = loop
        self.vehicles = vehicles
        closed = Array(repeating: false, count: connectors)
        plugged = Array(repeating: false, count: connectors)
        register = Array(repeating: 0, count: connectors)
        history = try historyPath.map { try FileDescriptor.open($0, flags: O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW, mode: 0o644) }
    }

    public func setRelay(connector c: Int, closed wantClosed: Bool) {
        guard closed.indices.contains(c) else { return }
        read()   // energy so far counts at the old state
        let feedback: RelayFeedback
        if wantClosed {
            if refuseToClose.contains(c) { feedback = .refusedToClose } else { closed[c] = true; feedback = .closed }
        } else {
            if weldOnOpen.contains(c) { feedback = .welded } else { closed[c] = false; feedback = .opened }
        }
        record(connector: c, cause: nil)
        runMeter()
        // Feedback comes back like a contactor's auxiliary contact: a moment later, on the loop.
        _ = loop.schedule(at: MonotonicClock.now() + .milliseconds(1)) { [weak self] in self?.onInputs([.relay(connector: c, feedback)]) }
    }

    /// Opens every closed relay at once, without the station asking: what a real contactor does
    /// when the coil loses its drive because the controller is gone. Each change is recorded with
    /// `cause` (the history then shows why the last state is open). The connectors opened.
    @discardableResult
    public func openAll(cause: String) -> [Int] {
        let opened = closed.indices.filter { closed[$0] }
        read()
        for c in opened {
            closed[c] = false
            record(connector: c, cause: cause)
        }
        runMeter()
        return opened
    }

    /// Appends a relay's state to the history file.
    func record(connector c: Int, cause: String?) {
        guard let history else { return }
        let because = cause.map { ",\"cause\":\"\($0)\"" } ?? ""
        let line = "{\"connector\":\(c),\"closed\":\(closed[c])\(because),\"t\":\(WallClock.nowMillisecondsSinceEpoch())}\n"
        try? history.writeAll(Array(line.utf8), timeout: .seconds(1))
    }

    public func show(connector c: Int, _ offer: PaymentEngine.ConnectorOffer) {
        guard case .awaitingPlug(let k) = offer, let plugAfter = vehicles.plugAfter, plugged.indices.contains(c),
              !plugged[c], !plugTimers.contains(c), served.insert(k).inserted else { return }
        let n = served.count - 1
        if n < vehicles.plugs.count, !vehicles.plugs[n] { return }   // this driver never plugs in
        plugTimers.insert(c)
        _ = loop.schedule(at: MonotonicClock.now() + plugAfter) { [weak self] in
            guard let self else { return }
            // The registers as the car plugs in: the engine counts a session's energy from here.
            let readings = self.read()
            self.plugged[c] = true
            self.runMeter()
            self.onInputs(readings + [.plug(connector: c, pluggedIn: true)])
            _ = self.loop.schedule(at: MonotonicClock.now() + self.vehicles.chargeFor) { [weak self] in
                guard let self else { return }
                let readings = self.read()
                self.plugged[c] = false
                self.plugTimers.remove(c)
                self.runMeter()
                self.onInputs(readings + [.plug(connector: c, pluggedIn: false)])
            }
        }
    }

    /// Connectors where a car draws energy: relay closed and plugged in.
    var drawing: [Int] { closed.indices.filter { closed[$0] && plugged[$0] } }

    /// Counts the energy drawn since the last reading into the registers; the readings of every
    /// connector. Bounded settings make the product small, but a stalled loop must not trap the
    /// daemon: it saturates, and so does the register.
    @discardableResult
    func read() -> [EngineInput] {
        let now = MonotonicClock.now()
        let elapsedMs = lastReading.map { (now - $0).millisecondsClamped } ?? 0
        lastReading = drawing.isEmpty ? nil : now
        for c in drawing {
            let (energy, over) = vehicles.powerW.multipliedReportingOverflow(by: elapsedMs)
            let wh = over ? Int64.max / 3_600_000 : energy / 3_600_000
            register[c] = register[c].addingReportingOverflow(wh).overflow ? Int64.max : register[c] + wh
        }
        return register.indices.map { .meter(connector: $0, registerWh: register[$0]) }
    }

    /// Reads once a `meterInterval` while a car draws energy; an idle charger has no timer.
    func runMeter() {
        if drawing.isEmpty {
            if let t = meterTimer { loop.cancel(t); meterTimer = nil }
            lastReading = nil
            return
        }
        if lastReading == nil { lastReading = MonotonicClock.now() }
        guard meterTimer == nil else { return }
        meterTimer = loop.schedule(at: MonotonicClock.now() + SimulatedCharger.meterInterval) { [weak self] in
            guard let self else { return }
            self.meterTimer = nil
            let readings = self.read()
            self.runMeter()
            self.onInputs(readings)
        }
    }
}

/// Simulated vehicles: after an approval the driver plugs in, the car draws `powerW` while the
/// relay is closed, and the driver unplugs after `chargeFor`. `plugAfter == nil`: nobody plugs in.
public struct SimulatedEVSettings: Sendable {
    public var plugAfter: Duration?
    public var chargeFor: Duration
    public var powerW: Int64
    /// Per approval, in order: whether that driver plugs in at all (the rest do).
    public var plugs: [Bool]
    public init(plugAfter: Duration? = .milliseconds(500), chargeFor: Duration = .seconds(3), powerW: Int64 = 22_000, plugs: [Bool] = []) {
        self.plugAfter = plugAfter; self.chargeFor = chargeFor; self.powerW = powerW; self.plugs = plugs
    }

    /// Bounds of the settings, so that no value given on a command line can overflow the meter's
    /// arithmetic: a car plugs in within an hour, charges for at most a day, and draws at most
    /// 100 MW (no connector carries a hundredth of it; tests use megawatts to charge in seconds).
    public static let maxPlugAfterMs: Int64 = 3_600_000
    public static let maxChargeForMs: Int64 = 86_400_000
    public static let maxPowerW: Int64 = 100_000_000

    /// Parses "plug=MS,charge=MS,power=W" (any subset, each once) or "none"; the reason when
    /// a field is unknown, repeated, not a number or out of its bounds.
    public static func parse(_ s: String) -> Result<SimulatedEVSettings, SimulatedEVError> {
        if s == "none" { return .success(SimulatedEVSettings(plugAfter: nil)) }
        var out = SimulatedEVSettings()
        var seen = Set<String>()
        for part in s.split(separator: ",", omittingEmptySubsequences: false) {
            let kv = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            guard kv.count == 2 else { return .failure(.malformed(String(part))) }
            let bound: Int64
            switch kv[0] {
            case "plug": bound = maxPlugAfterMs
            case "charge": bound = maxChargeForMs
            case "power": bound = maxPowerW
            default: return .failure(.unknownField(kv[0]))
            }
            guard seen.insert(kv[0]).inserted else { return .failure(.repeated(kv[0])) }
            guard let v = Int64(kv[1]), (0...bound).contains(v) else { return .failure(.outOfRange(kv[0], kv[1], bound)) }
            switch kv[0] {
            case "plug": out.plugAfter = .milliseconds(v)
            case "charge": out.chargeFor = .milliseconds(v)
            default: out.powerW = v
            }
        }
        return .success(out)
    }
}

/// Why a simulated-vehicle setting was refused.
public enum SimulatedEVError: Error, Equatable, CustomStringConvertible {
    /// A field that is not `name=value`.
    case malformed(String)
    /// A name other than plug, charge or power.
    case unknownField(String)
    /// A name given twice.
    case repeated(String)
    /// Not a whole number within 0…bound.
    case outOfRange(String, String, Int64)

    public var description: String {
        switch self {
        case .malformed(let f): return "'\(f)' is not name=value (plug=MS,charge=MS,power=W or none)"
        case .unknownField(let n): return "unknown field '\(n)' (plug, charge, power)"
        case .repeated(let n): return "'\(n)' given twice"
        case let .outOfRange(n, v, bound): return "\(n)=\(v): expected a whole number 0…\(bound)"
        }
    }
}
