import DaemonLog
import EnergyMeters
import MeterLink
import PaymentEngine
import Platform
import Timebase

/// The Modbus meters of `meter.device`, read for the charger port: each reading goes to the
/// connector whose meter it is, through the port's plausibility checks (`deliver`), and the
/// meter's serial number to the engine (`onIdentity`) before the first reading it vouches for,
/// so the session's start and end registers are written with it.
///
/// A meter is one connector's for the whole run (`charger.meter.N`); the port judges a reading
/// (backwards, a jump, a serial number that changed while charging) and the silence rule of the
/// port stops a session whose meter stops answering. What the bus says goes to the log at most
/// once per `failureLogInterval` per meter (a dead bus fails every meter every cycle), and all of
/// it to the counters that `status` shows.
final class MeterFeed {
    /// Failures of one meter logged at most this often (the first at once).
    static let failureLogInterval: Duration = .seconds(60)

    /// The state of one meter, for `status` and the log.
    struct Meter {
        var connector: Int
        var model: MeterModel
        var serial: String?
        var registerWh: Int64?
        var readAt: Instant?
        var accepted = 0
        var rejected = 0
        var failures = 0
        var lastProblem: String?
        var lastLogged: Instant?
        var lastRefusal: String?
        var refusalLogged: Instant?
    }

    let link: ModbusMeterLink
    private(set) var meters: [UInt8: Meter]
    /// Gives a reading to the port: nil when accepted, else why it was refused.
    let deliver: (_ connector: Int, _ registerWh: Int64, _ powerW: Int64?, _ serial: String, _ at: Instant) -> String?
    /// The engine must learn a connector's (new) meter serial.
    let onIdentity: (_ connector: Int, _ serial: String) -> Void
    /// Whether a connector (0-based) is charging now: a serial number announced then would be a
    /// meter swapped under a running session, which the port refuses anyway.
    let isCharging: (Int) -> Bool
    /// The serial number announced to the engine per connector.
    private(set) var announced: [Int: String] = [:]
    private(set) var portProblems = 0
    private(set) var lastPortProblem: String?

    init(loop: EventLoop, settings: MeterLinkSettings, connectorOf: [UInt8: (connector: Int, model: MeterModel)],
         deliver: @escaping (Int, Int64, Int64?, String, Instant) -> String?,
         onIdentity: @escaping (Int, String) -> Void, isCharging: @escaping (Int) -> Bool) throws(MeterLinkSetupError) {
        link = try ModbusMeterLink(loop: loop, settings: settings)
        meters = connectorOf.mapValues { Meter(connector: $0.connector, model: $0.model) }
        self.deliver = deliver
        self.onIdentity = onIdentity
        self.isCharging = isCharging
        link.onReading = { [unowned self] address, wh, w, serial, at in self.reading(address, wh, w, serial, at) }
        link.onFailure = { [unowned self] address, failure in self.failure(address, "\(failure)") }
        link.onPortProblem = { [unowned self] reason in
            self.portProblems += 1
            if self.lastPortProblem != reason { Log.warning("meter bus \(settings.path): \(reason)") }
            self.lastPortProblem = reason
        }
    }

    func start() { link.start() }
    func stop() { link.stop() }

    func reading(_ address: UInt8, _ wh: Int64, _ w: Int64?, _ serial: String, _ at: Instant) {
        guard var m = meters[address] else { return }
        if m.lastProblem != nil { Log.info("meter \(address) (connector \(m.connector + 1)): answering again") }
        m.lastProblem = nil
        lastPortProblem = nil
        // The engine learns who the meter is before the reading it vouches for; while charging a
        // new serial is the port's to refuse, not the engine's to adopt.
        if announced[m.connector] != serial, !isCharging(m.connector) {
            announced[m.connector] = serial
            onIdentity(m.connector, serial)
        }
        if let refusal = deliver(m.connector, wh, w, serial, at) {
            m.rejected += 1
            // A new reason at once, the same one at most once a `failureLogInterval`.
            if m.lastRefusal != refusal || m.refusalLogged.map({ at - $0 >= Self.failureLogInterval }) ?? true {
                Log.warning("meter \(address) (connector \(m.connector + 1)): reading \(wh) Wh from \(serial) refused: \(refusal)")
                m.refusalLogged = at
            }
            m.lastRefusal = refusal
        } else {
            m.accepted += 1
            m.serial = serial
            m.registerWh = wh
            m.readAt = at
        }
        meters[address] = m
    }

    func failure(_ address: UInt8, _ problem: String) {
        guard var m = meters[address] else { return }
        m.failures += 1
        let now = MonotonicClock.now()
        if m.lastProblem != problem || m.lastLogged.map({ now - $0 >= Self.failureLogInterval }) ?? true {
            Log.warning("meter \(address) (connector \(m.connector + 1)): \(problem)")
            m.lastLogged = now
        }
        m.lastProblem = problem
        meters[address] = m
    }
}
