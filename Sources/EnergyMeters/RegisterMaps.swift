import ModbusRTU

/// The meters whose register maps are known. Sources, per map, in the doc comments below and in
/// docs/meters.md.
public enum MeterModel: String, CaseIterable, Sendable {
    /// Eastron SDM630 (Modbus, MID; V2 and later firmware): IEEE-754 float input registers.
    case eastronSDM630 = "sdm630"
    /// Eastron SDM72D-M (V2): the SDM630's energy and power registers (its manual's table); the
    /// serial number register is the SDM630's, unverified on a real SDM72 (docs/meters.md).
    case eastronSDM72 = "sdm72"
    /// ABB B23 / B24 (direct and CT-connected): integer holding registers, energy as 64 bits in
    /// 0.01 kWh.
    case abbB23 = "abb-b23"

    /// The model named by a configuration's text (`sdm630`, `sdm72`, `abb-b23`; `abb-b24` is the
    /// B23's map), or nil.
    public static func named(_ text: String) -> MeterModel? {
        if text == "abb-b24" { return .abbB23 }
        return MeterModel(rawValue: text)
    }

    /// The model's register map.
    public var map: MeterRegisterMap { MeterRegisterMap(model: self) }
}

/// One block of registers a map reads.
public struct RegisterBlock: Equatable, Hashable, Sendable {
    /// Holding (03) or input (04).
    public let function: ModbusFunction
    /// The first register's address on the wire (0-based).
    public let start: UInt16
    /// How many registers.
    public let count: UInt16

    public init(_ function: ModbusFunction, _ start: UInt16, _ count: UInt16) {
        self.function = function
        self.start = start
        self.count = count
    }
}

/// What a meter says, converted to the engine's units.
public struct MeterValues: Equatable, Sendable {
    /// The total import active energy register, Wh.
    public var importWh: Int64
    /// The total active power, W (rounded to the nearest watt), or nil when the meter marks it
    /// not available.
    public var powerW: Int64?
    /// The meter's serial number, as decimal digits.
    public var serial: String

    public init(importWh: Int64, powerW: Int64?, serial: String) {
        self.importWh = importWh
        self.powerW = powerW
        self.serial = serial
    }
}

/// Why registers a meter answered are not a reading. Money is billed from the energy register,
/// so anything not a plain non-negative number of Wh is refused here, not guessed at.
public enum MeterDecodeError: Error, Equatable, Hashable, Sendable, CustomStringConvertible {
    /// A block came back with another number of registers than the map reads (a codec bug or a
    /// simulator fault; the codec already checks lengths).
    case wrongRegisterCount(block: Int, expected: Int, received: Int)
    /// The energy register is a float NaN or infinity.
    case energyNotANumber
    /// The energy register is below zero.
    case energyNegative
    /// The energy register does not fit in Int64 Wh, or is the meter's "not available" marker
    /// (ABB: all ones).
    case energyOutOfRange

    /// For the log.
    public var description: String {
        switch self {
        case .wrongRegisterCount(let b, let e, let r): "block \(b): \(r) registers, expected \(e)"
        case .energyNotANumber: "the energy register is not a number"
        case .energyNegative: "the energy register is negative"
        case .energyOutOfRange: "the energy register is out of range or marked not available"
        }
    }
}

/// A meter model's register map: the reads to make (energy, power, serial number, in this
/// order) and how their registers become `MeterValues`; and, for meter-sim, the other way.
///
/// Energy is converted exactly where the register allows: ABB's integer 0.01 kWh times 10 is
/// exact Wh. Eastron's float kWh is widened to Double, where multiplying by 1000 is exact (a
/// 24-bit significand times a 10-bit integer fits in 53 bits), then rounded to the nearest Wh,
/// halves away from zero. Below 16 384 kWh a float can hold every Wh that way (its spacing is
/// under 1 Wh), so a meter's reading survives the register unchanged; above, the register itself
/// moves in steps of 2 Wh (to 32 768 kWh) up to 16 Wh (to 131 072 kWh), and a session's
/// difference inherits that step: the meter's, not ours.
public struct MeterRegisterMap: Equatable, Sendable {
    /// Whose map.
    public let model: MeterModel

    /// The map of `model`.
    public init(model: MeterModel) { self.model = model }

    /// The reads of one poll: energy, power, serial number.
    ///
    /// Eastron SDM630 / SDM72D-M (Eastron "SDM630 Modbus Protocol" / SDM72D-M user manual,
    /// Modbus part: input registers 30053 "Total system power" at 0x0034 and 30073 "Total Import
    /// kWh" at 0x0048, 4-byte floats, function 04; holding register 464513 "Serial Number" at
    /// 0xFC00, unsigned 32-bit, read-only, function 03).
    ///
    /// ABB B23/B24 (ABB user manual 2CMC485003M0201, "Mapping tables": 0x5000 "Active import
    /// kWh", 4 registers, unsigned, resolution 0.01 kWh; 0x5B14 "Active power, Total", 2
    /// registers, signed, 0.01 W; 0x8900 serial number, 2 registers, unsigned; all read with
    /// function 03, the only read the meter has).
    public var blocks: [RegisterBlock] {
        switch model {
        case .eastronSDM630, .eastronSDM72:
            return [RegisterBlock(.readInputRegisters, 0x0048, 2),
                    RegisterBlock(.readInputRegisters, 0x0034, 2),
                    RegisterBlock(.readHoldingRegisters, 0xFC00, 2)]
        case .abbB23:
            return [RegisterBlock(.readHoldingRegisters, 0x5000, 4),
                    RegisterBlock(.readHoldingRegisters, 0x5B14, 2),
                    RegisterBlock(.readHoldingRegisters, 0x8900, 2)]
        }
    }

    /// ABB's marker for a 32-bit signed quantity the meter cannot give.
    public static let abbSigned32NotAvailable: UInt32 = 0x7FFF_FFFF

    /// The values in the registers of `blocks`, one array per block in order.
    public func decode(_ registers: [[UInt16]]) throws(MeterDecodeError) -> MeterValues {
        let blocks = self.blocks
        guard registers.count == blocks.count else {
            throw .wrongRegisterCount(block: registers.count, expected: blocks.count, received: registers.count)
        }
        for (i, b) in blocks.enumerated() where registers[i].count != Int(b.count) {
            throw .wrongRegisterCount(block: i, expected: Int(b.count), received: registers[i].count)
        }
        let serial = String(Self.u32(registers[2]))
        switch model {
        case .eastronSDM630, .eastronSDM72:
            let energy = Float(bitPattern: Self.u32(registers[0]))
            guard energy.isFinite else { throw .energyNotANumber }
            guard energy >= 0 else { throw .energyNegative }
            let wh = (Double(energy) * 1000).rounded(.toNearestOrAwayFromZero)
            guard wh < 9.0e18 else { throw .energyOutOfRange }
            let power = Float(bitPattern: Self.u32(registers[1]))
            let powerW: Int64? = power.isFinite && abs(power) < 1.0e12 ? Int64(Double(power).rounded(.toNearestOrAwayFromZero)) : nil
            return MeterValues(importWh: Int64(wh), powerW: powerW, serial: serial)
        case .abbB23:
            let hundredths = registers[0].reduce(UInt64(0)) { $0 << 16 | UInt64($1) }
            guard hundredths != .max, hundredths <= UInt64(Int64.max / 10) else { throw .energyOutOfRange }
            let raw = Self.u32(registers[1])
            var powerW: Int64?
            if raw != Self.abbSigned32NotAvailable {
                let centiwatts = Int64(Int32(bitPattern: raw))
                // Nearest watt, halves away from zero.
                powerW = centiwatts >= 0 ? (centiwatts + 50) / 100 : -((-centiwatts + 50) / 100)
            }
            return MeterValues(importWh: Int64(hundredths) * 10, powerW: powerW, serial: serial)
        }
    }

    /// The registers a meter of this model shows for `values` (meter-sim's side), one array per
    /// block. Energy is rounded the meter's way: to the nearest float kWh (Eastron), or down to
    /// 0.01 kWh (ABB, whose register counts whole hundredths). A serial that is not a 32-bit
    /// number is shown as 0.
    public func encode(_ values: MeterValues) -> [[UInt16]] {
        let serial = Self.words(UInt32(values.serial) ?? 0)
        switch model {
        case .eastronSDM630, .eastronSDM72:
            let kwh = Float(Double(values.importWh) / 1000)
            let power = Float(values.powerW ?? 0)
            return [Self.words(kwh.bitPattern), Self.words(power.bitPattern), serial]
        case .abbB23:
            let hundredths = UInt64(max(values.importWh, 0) / 10)
            let energy = (0..<4).map { UInt16(truncatingIfNeeded: hundredths >> (48 - 16 * $0)) }
            let power = values.powerW.map { UInt32(bitPattern: Int32(clamping: $0 * 100)) } ?? Self.abbSigned32NotAvailable
            return [energy, Self.words(power), serial]
        }
    }

    static func u32(_ r: [UInt16]) -> UInt32 { UInt32(r[0]) << 16 | UInt32(r[1]) }
    static func words(_ v: UInt32) -> [UInt16] { [UInt16(v >> 16), UInt16(v & 0xFFFF)] }
}
