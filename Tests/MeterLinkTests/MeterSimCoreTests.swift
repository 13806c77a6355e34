import EnergyMeters
import MeterSim
import ModbusRTU
import Testing
import Timebase
import WireFormat

@Suite struct MeterSimCoreTests {
    /// The register is the power's integral, whatever the rhythm it is read at: many small steps
    /// give the same Wh as one step over the same time.
    @Test(arguments: Seeds.sample(6))
    func energyIsExactWhateverTheReadRhythm(seed: UInt64) {
        var g = Seeds.generator(seed, "meter-sim energy")
        let power = Int64.random(in: 0...MeterSimLimits.maxPowerW, using: &g)
        let start = Instant(nanoseconds: 5_000_000_000)
        var stepped = SimulatedMeter(address: 1, model: .abbB23, serial: 1, powerW: power, importWh: 100, now: start)
        var once = stepped
        var now = start
        for _ in 0..<500 {
            now = now + .nanoseconds(Int64.random(in: 0...2_000_000_000, using: &g))
            stepped.advance(to: now)
        }
        once.advance(to: now)
        #expect(stepped.importWh == once.importWh, "seed \(seed)")
        // W × ns / 3.6e12 Wh, rounded down.
        let ns = (now - start).nanosecondsClamped
        let exact = 100 + Int64((Double(power) * Double(ns) / 3.6e12).rounded(.down))
        #expect(abs(once.importWh - exact) <= 1, "seed \(seed): \(once.importWh) vs \(exact)")
    }

    @Test func commandsAreCheckedAndAnsweredWithTheMetersState() {
        let now = Instant(nanoseconds: 1)
        var sim = MeterSimCore(meters: [SimulatedMeter(address: 2, model: .eastronSDM630, serial: 9, powerW: 0, importWh: 1000, now: now)])
        #expect(sim.command("show 2", now: now) == .success("meter 2 sdm630 serial 9 energy 1000 Wh power 0 W"))
        #expect(sim.command("backwards 2 400", now: now) == .success("meter 2 sdm630 serial 9 energy 600 Wh power 0 W"))
        #expect(sim.command("backwards 2 4000", now: now) == .success("meter 2 sdm630 serial 9 energy 0 Wh power 0 W"))
        for bad in ["", "show", "show 3", "power 2", "power 2 -1", "power 2 1000001", "silence 2 maybe", "crc 2 0", "exception 2 0", "exception 2 300", "serial 2 4294967296", "jump 2"] {
            if case .success = sim.command(bad, now: now) { Issue.record("\"\(bad)\" was taken") }
        }
    }

    @Test func theMeterAnswersLikeTheRealOne() throws {
        let now = Instant(nanoseconds: 1)
        var sim = MeterSimCore(meters: [SimulatedMeter(address: 2, model: .abbB23, serial: 9, powerW: 0, importWh: 1230, now: now)])
        let energy = try ReadRequest(address: 2, function: .readHoldingRegisters, start: 0x5000, count: 4)
        #expect(try ReadResponse.decode(sim.handle(frame: energy.encode(), now: now)!, for: energy) == .registers([0, 0, 0, 123]))
        // A part of a block is served; a register outside the map is exception 2; input registers
        // (which the ABB does not have) too.
        let low = try ReadRequest(address: 2, function: .readHoldingRegisters, start: 0x5003, count: 1)
        #expect(try ReadResponse.decode(sim.handle(frame: low.encode(), now: now)!, for: low) == .registers([123]))
        let outside = try ReadRequest(address: 2, function: .readHoldingRegisters, start: 0x4FFF, count: 2)
        #expect(try ReadResponse.decode(sim.handle(frame: outside.encode(), now: now)!, for: outside) == .exception(.illegalDataAddress))
        let input = try ReadRequest(address: 2, function: .readInputRegisters, start: 0x5000, count: 4)
        #expect(try ReadResponse.decode(sim.handle(frame: input.encode(), now: now)!, for: input) == .exception(.illegalDataAddress))
        // Another function: exception 1; another address or a bad CRC: silence.
        let write = CRC16Modbus.appending(to: [2, 0x06, 0, 1, 0, 1])
        #expect(sim.handle(frame: write, now: now) == CRC16Modbus.appending(to: [2, 0x86, 0x01]))
        #expect(sim.handle(frame: try ReadRequest(address: 3, function: .readHoldingRegisters, start: 0x5000, count: 4).encode(), now: now) == nil)
        var damaged = energy.encode()
        damaged[3] ^= 1
        #expect(sim.handle(frame: damaged, now: now) == nil)
        #expect(sim.unreadable == 1)
    }
}
