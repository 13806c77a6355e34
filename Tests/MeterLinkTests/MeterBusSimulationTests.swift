import EnergyMeters
import MeterSim
import ModbusRTU
import Testing
import Timebase

/// `MeterBusCore` against `MeterSimCore` in virtual time: the poll, the register maps both ways
/// and each scripted fault, without a line.
struct BusHarness {
    var bus: MeterBusCore
    var sim: MeterSimCore
    var now = Instant(nanoseconds: 1_000_000_000)
    var inbox: [(at: Instant, frame: [UInt8])] = []
    var readings: [(address: UInt8, values: MeterValues, at: Instant)] = []
    var failures: [(address: UInt8, failure: MeterFailure, at: Instant)] = []
    /// How long the simulated meter takes to answer.
    var answerDelay: Duration = .milliseconds(20)

    init(meters: [SimulatedMeter], poll: Duration = .seconds(1), retries: Int = 2, start: Bool = true) throws {
        bus = try MeterBusCore(meters: meters.map { MeterSpec(address: $0.address, model: $0.model) }, pollInterval: poll,
                               client: ModbusClientConfig(timing: ModbusTiming(baud: 9600, bitsPerCharacter: 10), maxRetries: retries))
        sim = MeterSimCore(meters: meters)
        bus.linkUp()
        if start { self.start() }
    }

    mutating func start() { apply(bus.start(now: now)) }

    mutating func apply(_ effects: [MeterBusEffect]) {
        for e in effects {
            switch e {
            case .send(let bytes):
                if let reply = sim.handle(frame: bytes, now: now) { inbox.append((now + answerDelay, reply)) }
            case .reading(let a, let v, let at): readings.append((a, v, at))
            case .failure(let a, let f): failures.append((a, f, now))
            }
        }
    }

    mutating func run(for d: Duration) {
        let end = now + d
        while true {
            guard let t = [bus.nextDeadline, inbox.first?.at].compactMap({ $0 }).min(), t <= end else { break }
            now = max(now, t)
            if let first = inbox.first, first.at <= now {
                inbox.removeFirst()
                apply(bus.receive(frame: first.frame, now: now))
            } else {
                apply(bus.tick(now: now))
            }
        }
        now = end
    }

    mutating func command(_ line: String) {
        if case .failure(let e) = sim.command(line, now: now) { Issue.record("meter-sim refused \(line): \(e.text)") }
    }
}

@Suite struct MeterBusSimulationTests {
    static func meters(now: Instant = Instant(nanoseconds: 1_000_000_000)) -> [SimulatedMeter] {
        [SimulatedMeter(address: 1, model: .eastronSDM630, serial: 2301_0001, powerW: 7200, importWh: 1_000_000, now: now),
         SimulatedMeter(address: 2, model: .abbB23, serial: 7_654_321, powerW: 11000, importWh: 500_000, now: now)]
    }

    @Test func bothMapsAreReadEveryCycleWithTheEnergyAdvancing() throws {
        var h = try BusHarness(meters: Self.meters())
        h.run(for: .milliseconds(10_500))
        let one = h.readings.filter { $0.address == 1 }
        let two = h.readings.filter { $0.address == 2 }
        #expect(one.count == 11)
        #expect(two.count == 11)
        #expect(h.failures.isEmpty)
        #expect(one.allSatisfy { $0.values.serial == "23010001" && $0.values.powerW == 7200 })
        #expect(two.allSatisfy { $0.values.serial == "7654321" && $0.values.powerW == 11000 })
        // 7.2 kW for 10 s between the first and the last reading is 20 Wh, give or take the
        // register's last Wh (ABB: 10 Wh steps) and the reads' own few milliseconds.
        let d1 = one.last!.values.importWh - one.first!.values.importWh
        #expect((19...21).contains(d1), "\(d1)")
        let d2 = two.last!.values.importWh - two.first!.values.importWh
        #expect((20...40).contains(d2), "\(d2)")
        #expect(zip(one, one.dropFirst()).allSatisfy { $0.values.importWh <= $1.values.importWh })
    }

    @Test func aSilentMeterFailsAfterItsRetriesAndTheOtherIsStillRead() throws {
        var h = try BusHarness(meters: Self.meters())
        h.run(for: .milliseconds(500))
        h.command("silence 1 on")
        // Each cycle now waits out meter 1's three attempts (about 1.55 s) before meter 2.
        h.run(for: .seconds(5))
        let failures = h.failures.filter { $0.address == 1 }
        #expect(!failures.isEmpty)
        #expect(failures.allSatisfy { $0.failure == .bus(block: 0, .noResponse(attempts: 3)) })
        #expect(h.failures.allSatisfy { $0.address == 1 })
        #expect(h.readings.filter { $0.address == 2 }.count >= 3)
        h.command("silence 1 off")
        let before = h.readings.filter { $0.address == 1 }.count
        h.run(for: .seconds(3))
        #expect(h.readings.filter { $0.address == 1 }.count > before, "the meter is read again once it answers")
    }

    @Test func damagedAnswersAreRetriedThenReportedAsTheirCheck() throws {
        var h = try BusHarness(meters: Self.meters())
        h.command("crc 1 2")
        h.run(for: .milliseconds(500))
        #expect(h.failures.isEmpty, "two damaged answers are within the retries")
        #expect(h.readings.filter { $0.address == 1 }.count == 1)
        h.command("crc 2 3")
        h.run(for: .seconds(1))
        guard case .bus(block: 0, .invalidResponse(.crcMismatch, attempts: 3))? = h.failures.first(where: { $0.address == 2 })?.failure else {
            Issue.record("expected a CRC failure for meter 2, got \(h.failures)")
            return
        }
    }

    @Test func anExceptionIsReportedAtOnceWithItsCode() throws {
        var h = try BusHarness(meters: Self.meters(), start: false)
        h.command("exception 2 2")
        h.command("exception 1 4")
        h.start()
        h.run(for: .milliseconds(500))
        #expect(h.failures.map(\.failure) == [.bus(block: 0, .exception(.serverDeviceFailure)), .bus(block: 0, .exception(.illegalDataAddress))])
        #expect(h.bus.client.counters.retries == 0)
    }

    @Test func aRegisterGoingBackwardsAndANewSerialAreReportedAsRead() throws {
        var h = try BusHarness(meters: Self.meters())
        h.run(for: .milliseconds(500))
        let first = h.readings.last { $0.address == 1 }!.values
        h.command("backwards 1 5000")
        h.command("serial 2 99")
        h.run(for: .seconds(1))
        let after = h.readings.last { $0.address == 1 }!.values
        #expect(after.importWh < first.importWh, "no judging here: the station's guard does that")
        #expect(h.readings.last { $0.address == 2 }!.values.serial == "99")
    }

    @Test func aClosedPortFailsTheCycleWithoutSending() throws {
        var h = try BusHarness(meters: Self.meters())
        h.run(for: .milliseconds(500))
        h.apply(h.bus.linkDown(now: h.now))
        h.run(for: .seconds(2))
        #expect(h.failures.count >= 4)
        #expect(h.failures.allSatisfy { $0.failure == .bus(block: 0, .linkDown) })
        #expect(h.sim.answered.values.reduce(0, +) == 6, "nothing was sent after the link went down")
    }

    @Test func theBusConfigurationIsChecked() {
        let c = ModbusClientConfig(timing: ModbusTiming(baud: 9600, bitsPerCharacter: 10))
        #expect(throws: MeterBusConfigError.meterCount(0)) { try MeterBusCore(meters: [], pollInterval: .seconds(1), client: c) }
        #expect(throws: MeterBusConfigError.duplicateAddress(3)) {
            try MeterBusCore(meters: [MeterSpec(address: 3, model: .abbB23), MeterSpec(address: 3, model: .eastronSDM72)], pollInterval: .seconds(1), client: c)
        }
        #expect(throws: MeterBusConfigError.invalidAddress(0)) { try MeterBusCore(meters: [MeterSpec(address: 0, model: .abbB23)], pollInterval: .seconds(1), client: c) }
        #expect(throws: MeterBusConfigError.pollInterval(.milliseconds(10))) {
            try MeterBusCore(meters: [MeterSpec(address: 1, model: .abbB23)], pollInterval: .milliseconds(10), client: c)
        }
    }

    /// Random faults on three meters: each cycle gives every meter exactly one outcome, in poll
    /// order; every meter is read again once its faults are cleared (time alone moves the bus
    /// on); readings stay within what the simulated registers can hold.
    @Test(arguments: Seeds.sample(6))
    func everyCycleGivesEachMeterOneOutcomeWhateverTheFaults(seed: UInt64) throws {
        var g = Seeds.generator(seed, "meter bus")
        var meters = Self.meters()
        meters.append(SimulatedMeter(address: 9, model: .eastronSDM72, serial: 5, powerW: 3700, importWh: 0, now: Instant(nanoseconds: 1_000_000_000)))
        var h = try BusHarness(meters: meters, poll: .milliseconds(Int64.random(in: 200...2000, using: &g)), retries: Int.random(in: 0...3, using: &g))
        let verbs = ["silence A 1", "silence A 4", "crc A 1", "crc A 5", "exception A 4", "exception A 6 2", "backwards A 100", "serial A 42", "power A 0", "power A 22000", "clear A"]
        for _ in 0..<60 {
            let a = [1, 2, 9].randomElement(using: &g)!
            h.command(verbs.randomElement(using: &g)!.split(separator: " ").map { $0 == "A" ? String(a) : String($0) }.joined(separator: " "))
            h.run(for: .milliseconds(Int64.random(in: 50...3000, using: &g)))
        }
        h.command("clear 1"); h.command("clear 2"); h.command("clear 9")
        h.run(for: .seconds(30))
        // The cycle in progress at the end has given its first meters' outcomes only.
        let counts = [UInt8(1), 2, 9].map { a in h.readings.filter { $0.address == a }.count + h.failures.filter { $0.address == a }.count }
        #expect(counts.allSatisfy { $0 == h.bus.cycles || $0 == h.bus.cycles + 1 }, "seed \(seed): \(counts) outcomes in \(h.bus.cycles) cycles")
        #expect(counts == counts.sorted(by: >), "seed \(seed): meters are polled in order")
        for a in [UInt8(1), 2, 9] {
            #expect(h.readings.contains { $0.address == a && $0.at > h.now.advanced(by: .seconds(-5)) }, "seed \(seed): meter \(a) read again after the faults")
        }
        for r in h.readings {
            #expect(r.values.importWh >= 0 && r.values.importWh < 2_000_000, "seed \(seed)")
        }
    }
}
