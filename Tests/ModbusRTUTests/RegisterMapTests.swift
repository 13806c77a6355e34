import EnergyMeters
import ModbusRTU
import Testing
import Timebase

@Suite struct RegisterMapTests {
    static func words(_ f: Float) -> [UInt16] { [UInt16(f.bitPattern >> 16), UInt16(f.bitPattern & 0xFFFF)] }

    @Test func theMapsReadWhatTheRegisterTablesSay() {
        #expect(MeterModel.eastronSDM630.map.blocks == [RegisterBlock(.readInputRegisters, 0x0048, 2),
                                                       RegisterBlock(.readInputRegisters, 0x0034, 2),
                                                       RegisterBlock(.readHoldingRegisters, 0xFC00, 2)])
        #expect(MeterModel.eastronSDM72.map.blocks == MeterModel.eastronSDM630.map.blocks)
        #expect(MeterModel.abbB23.map.blocks == [RegisterBlock(.readHoldingRegisters, 0x5000, 4),
                                                RegisterBlock(.readHoldingRegisters, 0x5B14, 2),
                                                RegisterBlock(.readHoldingRegisters, 0x8900, 2)])
        #expect(MeterModel.named("abb-b24") == .abbB23)
        #expect(MeterModel.named("sdm120") == nil)
    }

    @Test func eastronFloatsBecomeWattHours() throws {
        let map = MeterModel.eastronSDM630.map
        // 998.0 kWh is 0x44798000.
        let v = try map.decode([[0x4479, 0x8000], Self.words(7360.4), [0x0098, 0x9680]])
        #expect(v == MeterValues(importWh: 998_000, powerW: 7360, serial: "10000000"))
        // 12.3456 kWh is not a float; the nearest float is 12.345600128173828 → 12346 Wh.
        #expect(try map.decode([Self.words(12.3456), Self.words(-0.5), [0, 1]]).importWh == 12_346)
        #expect(try map.decode([Self.words(12.3456), Self.words(-0.5), [0, 1]]).powerW == -1)
        #expect(try map.decode([Self.words(12.3456), Self.words(.nan), [0, 1]]).powerW == nil)
    }

    @Test func eastronEnergyThatIsNotAPlainNumberIsRefused() {
        let map = MeterModel.eastronSDM72.map
        #expect(throws: MeterDecodeError.energyNotANumber) { try map.decode([Self.words(.nan), Self.words(0), [0, 1]]) }
        #expect(throws: MeterDecodeError.energyNotANumber) { try map.decode([Self.words(.infinity), Self.words(0), [0, 1]]) }
        #expect(throws: MeterDecodeError.energyNegative) { try map.decode([Self.words(-1), Self.words(0), [0, 1]]) }
        #expect(throws: MeterDecodeError.energyOutOfRange) { try map.decode([Self.words(1e30), Self.words(0), [0, 1]]) }
        #expect(throws: MeterDecodeError.wrongRegisterCount(block: 1, expected: 2, received: 1)) { try map.decode([Self.words(1), [0], [0, 1]]) }
    }

    @Test func abbIntegersAreExact() throws {
        let map = MeterModel.abbB23.map
        // 1234567.89 kWh = 123456789 hundredths → 1234567890 Wh; power 736055 cW → 7361 W.
        let v = try map.decode([[0, 0, 0x075B, 0xCD15], [0x000B, 0x3B37], [0x1234, 0x5678]])
        #expect(v == MeterValues(importWh: 1_234_567_890, powerW: 7361, serial: String(0x1234_5678)))
        // Negative power (export), rounded half away from zero: -150 cW → -2 W.
        let minus = UInt32(bitPattern: -150)
        #expect(try map.decode([[0, 0, 0, 1], [UInt16(minus >> 16), UInt16(minus & 0xFFFF)], [0, 1]]).powerW == -2)
        #expect(try map.decode([[0, 0, 0, 1], [0x7FFF, 0xFFFF], [0, 1]]).powerW == nil)
        #expect(throws: MeterDecodeError.energyOutOfRange) { try map.decode([[0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF], [0, 0], [0, 1]]) }
        #expect(throws: MeterDecodeError.energyOutOfRange) { try map.decode([[0x1000, 0, 0, 0], [0, 0], [0, 1]]) }
    }

    /// Meter-sim shows values through the same maps: below 16 384 kWh a float holds every Wh, so
    /// Eastron's round trip is exact; ABB's is exact for whole hundredths of a kWh.
    @Test(arguments: Seeds.sample(8))
    func energyRoundTripsThroughTheRegisters(seed: UInt64) throws {
        var g = Seeds.generator(seed, "register maps")
        for _ in 0..<2000 {
            let wh = Int64.random(in: 0..<16_384_000, using: &g)
            let power = Int64.random(in: -50_000...50_000, using: &g)
            let serial = String(UInt32.random(in: 0...UInt32.max, using: &g))
            let values = MeterValues(importWh: wh, powerW: power, serial: serial)
            let sdm = MeterModel.eastronSDM630.map
            #expect(try sdm.decode(sdm.encode(values)) == values, "seed \(seed) \(values)")
            let abb = MeterModel.abbB23.map
            let tens = MeterValues(importWh: Int64.random(in: 0...(Int64.max / 10), using: &g) / 10 * 10, powerW: power, serial: serial)
            #expect(try abb.decode(abb.encode(tens)) == tens, "seed \(seed) \(tens)")
        }
        // Above 16 384 kWh the float's own step shows: still within half a step.
        for _ in 0..<500 {
            let wh = Int64.random(in: 16_384_000...131_072_000, using: &g)
            let sdm = MeterModel.eastronSDM630.map
            let back = try sdm.decode(sdm.encode(MeterValues(importWh: wh, powerW: 0, serial: "1"))).importWh
            #expect(abs(back - wh) <= 8, "seed \(seed) \(wh) → \(back)")
        }
    }
}
