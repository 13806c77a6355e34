@testable import GPIOCharger
import GPIOLines
import Glibc
import PaymentEngine
import Platform
import Testing
import Timebase

/// A line without a chip: an output remembers what it is driven to; an input's level is set by
/// the test, which queues an edge and makes the fd readable (a pipe), as the kernel would.
final class FakeLine: GPIOLineHandle {
    let settings: GPIOLineSettings
    var driven: [Bool] = []
    var level = false
    var failDrive = false
    var released = false
    var edges: [GPIOEdge] = []
    let pipe: (read: FileDescriptor, write: FileDescriptor)

    init(_ settings: GPIOLineSettings) throws {
        self.settings = settings
        pipe = try FileDescriptor.pipe()
        if case .output(let active) = settings.direction { driven = [active] }
    }

    deinit {
        pipe.read.close()
        pipe.write.close()
    }

    var fd: FileDescriptor? { released ? nil : pipe.read }
    var isActive: Bool { driven.last ?? false }

    func set(active: Bool) throws(GPIOError) {
        if failDrive { throw .system(SystemError(call: "fake set", errno: EIO)) }
        driven.append(active)
    }
    func get() throws(GPIOError) -> Bool { level }
    func readEdges() throws(GPIOError) -> [GPIOEdge] {
        var b = [UInt8](repeating: 0, count: 64)
        _ = b.withUnsafeMutableBytes { try? pipe.read.read(into: $0) }
        defer { edges = [] }
        return edges
    }
    func release() { released = true }

    /// The input changes now (an edge) and the fd becomes readable.
    func change(to active: Bool) {
        level = active
        edges.append(GPIOEdge(active: active, at: MonotonicClock.now(), sequence: UInt32(edges.count + 1)))
        _ = try? pipe.write.writeAll([1], timeout: .seconds(1))
    }
}

final class PortRig {
    let loop: EventLoop
    let port: GPIOChargerPort
    var lines: [String: FakeLine] = [:]
    var inputs: [EngineInput] = []
    var notices: [String] = []

    /// One connector: relay `r`, mirror `m` (unless `mirror` is false), plug `p`; 100 ms feedback, 5 ms debounce.
    init(mirror: Bool = true, mirrorClosedAtStart: Bool = false, meterTimeout: Duration = .seconds(30)) throws {
        loop = try EventLoop()
        var made: [String: FakeLine] = [:]
        let config = GPIOConnectorConfig(relay: GPIOLineRef(chip: "sim", line: "r", activeLow: true),
                                         mirror: mirror ? GPIOLineRef(chip: "sim", line: "m") : nil,
                                         plug: GPIOLineRef(chip: "sim", line: "p"), debounce: .milliseconds(5))
        port = try GPIOChargerPort(loop: loop, connectors: [config], feedbackTimeout: .milliseconds(100), maxPowerW: 22_000,
                                   meterTimeout: meterTimeout) { ref, settings throws(GPIOError) -> GPIOLineHandle in
            guard let l = try? FakeLine(settings) else { throw .chipNotFound("pipe") }
            if ref.line == "m" { l.level = mirrorClosedAtStart }
            made[ref.line] = l
            return l
        }
        lines = made
        port.onInputs = { [unowned self] in inputs += $0 }
        port.onNotice = { [unowned self] _, t in notices.append(t) }
        run(.milliseconds(5))
    }

    var relay: FakeLine { lines["r"]! }
    var mirror: FakeLine? { lines["m"] }
    var plug: FakeLine { lines["p"]! }

    func run(_ d: Duration) { _ = try? loop.run(until: { false }, deadline: MonotonicClock.now() + d) }

    /// Runs the loop until an input arrives (or 2 s); returns and forgets what arrived.
    func next() -> [EngineInput] {
        _ = try? loop.run(until: { !self.inputs.isEmpty }, deadline: MonotonicClock.now() + .seconds(2))
        defer { inputs = [] }
        return inputs
    }
}

/// `GPIOChargerPort` over fake lines and a real event loop: what it drives and what it tells the engine.
@Suite(.serialized) struct GPIOChargerPortTests {
    @Test func theCoilIsRequestedInactiveAndFollowsTheCommandConfirmedByTheMirror() throws {
        let r = try PortRig()
        #expect(r.relay.settings.direction == .output(initiallyActive: false))
        #expect(r.relay.settings.activeLow)
        #expect(r.mirror?.settings.direction == .input(edges: true) && r.mirror?.settings.debounce == .milliseconds(5))
        r.port.setRelay(connector: 0, closed: true)
        #expect(r.relay.isActive)
        #expect(r.inputs.isEmpty)
        r.mirror?.change(to: true)
        #expect(r.next() == [.relay(connector: 0, .closed)])
        r.port.setRelay(connector: 0, closed: false)
        #expect(!r.relay.isActive)
        r.mirror?.change(to: false)
        #expect(r.next() == [.relay(connector: 0, .opened)])
        #expect(r.port.counters["relay.confirmed_closed"] == 1 && r.port.counters["relay.confirmed_open"] == 1)
    }

    @Test func aCloseTheMirrorDoesNotShowIsRefusedAndTheCoilDeEnergised() throws {
        let r = try PortRig()
        r.port.setRelay(connector: 0, closed: true)
        #expect(r.relay.isActive)
        #expect(r.next() == [.relay(connector: 0, .refusedToClose)])
        #expect(!r.relay.isActive)
    }

    @Test func aMirrorStuckClosedAfterTheOpenIsWeldedAndNoCloseIsDrivenAfter() throws {
        let r = try PortRig()
        r.port.setRelay(connector: 0, closed: true)
        r.mirror?.change(to: true)
        #expect(r.next() == [.relay(connector: 0, .closed)])
        r.port.setRelay(connector: 0, closed: false)
        #expect(r.next() == [.relay(connector: 0, .welded)])
        let drives = r.relay.driven.count
        r.port.setRelay(connector: 0, closed: true)
        #expect(r.next() == [.relay(connector: 0, .refusedToClose)])
        #expect(r.relay.driven.count == drives && !r.relay.isActive)
        #expect(r.notices.contains { $0.hasPrefix("connector 1: relay sim:r (active low) welded") })
    }

    @Test func aMirrorClosedAtStartIsWeldedAndAPlugIsDebounced() throws {
        let r = try PortRig(mirrorClosedAtStart: true)
        #expect(r.next() == [.relay(connector: 0, .welded)])
        r.plug.change(to: true)
        r.plug.change(to: false)
        r.run(.milliseconds(30))
        #expect(r.inputs.isEmpty)
        r.plug.change(to: true)
        #expect(r.next() == [.plug(connector: 0, pluggedIn: true)])
    }

    @Test func withoutAMirrorTheRelayIsTrustedAndAFailedDriveIsRefusedOrWelded() throws {
        let r = try PortRig(mirror: false)
        #expect(r.notices.contains { $0.contains("no mirror contact") })
        r.port.setRelay(connector: 0, closed: true)
        #expect(r.next() == [.relay(connector: 0, .closed)])
        r.relay.failDrive = true
        r.port.setRelay(connector: 0, closed: false)
        #expect(r.next() == [.relay(connector: 0, .opened), .relay(connector: 0, .welded)])
    }

    @Test func shutdownDeEnergisesAndReleasesEveryLineAndRefusesCloses() throws {
        let r = try PortRig()
        r.port.setRelay(connector: 0, closed: true)
        r.port.shutdown()
        #expect(!r.relay.isActive)
        #expect(r.relay.released && r.mirror?.released == true && r.plug.released)
        r.port.setRelay(connector: 0, closed: true)
        #expect(r.next() == [.relay(connector: 0, .refusedToClose)])
    }

    @Test func meterReadingsAreGuardedAndASerialChangeWhileChargingIsRejected() throws {
        let r = try PortRig(meterTimeout: .milliseconds(200))
        let t = MonotonicClock.now()
        try r.port.meterReading(connector: 0, registerWh: 1_000, powerW: 0, serial: "SDM-1", at: t)
        #expect(r.inputs == [.meter(connector: 0, registerWh: 1_000)])
        r.inputs = []
        r.port.setRelay(connector: 0, closed: true)
        r.mirror?.change(to: true)
        #expect(r.next() == [.relay(connector: 0, .closed)])
        #expect(throws: GPIOMeterError.serialChanged(expected: "SDM-1", got: "SDM-2")) {
            try r.port.meterReading(connector: 0, registerWh: 1_001, powerW: 100, serial: "SDM-2", at: MonotonicClock.now())
        }
        #expect(throws: GPIOMeterError.meterRejected(.backwards)) {
            try r.port.meterReading(connector: 0, registerWh: 999, powerW: 100, serial: "SDM-1", at: MonotonicClock.now())
        }
        #expect(throws: GPIOMeterError.connectorOutOfRange(1, connectors: 1)) {
            try r.port.meterReading(connector: 1, registerWh: 1, powerW: nil, serial: nil, at: MonotonicClock.now())
        }
        #expect(r.inputs.isEmpty)
        // Rejected readings are no sign of life: the meter is silent 200 ms after the close.
        let silent = r.next()
        guard case .fault(0, let text)? = silent.first, silent.count == 1 else {
            Issue.record("expected one fault, got \(silent)")
            return
        }
        #expect(text.hasPrefix("meter silent"))
        // It answered, with readings the guard refused: the fault says so, with the last reason.
        #expect(text.contains("its last readings were refused: the register went backwards"), "\(text)")
        #expect(r.port.counters["meter.rejected.serial_changed"] == 1 && r.port.counters["meter.timeouts"] == 1)
    }
}
