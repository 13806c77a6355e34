import EnergyMeters
import ModbusRTU
import Timebase
import WireFormat

/// One simulated meter: a register map over an energy counter that advances with the power.
public struct SimulatedMeter: Equatable, Sendable {
    /// Its Modbus address.
    public let address: UInt8
    /// Its register map.
    public let model: MeterModel
    /// Its serial number (a 32-bit number, as both maps hold it).
    public var serial: UInt32
    /// The power it meters, W (0…`MeterSimLimits.maxPowerW`).
    public var powerW: Int64
    /// The import register, whole Wh.
    public private(set) var importWh: Int64
    /// Energy below one Wh not yet on the register, in W·ns (3.6e12 W·ns = 1 Wh), so that the
    /// register is exact whatever the poll rhythm.
    var remainderWattNanoseconds: Int64 = 0
    var advancedAt: Instant

    /// A meter at `importWh` drawing `powerW` from `now`.
    public init(address: UInt8, model: MeterModel, serial: UInt32, powerW: Int64, importWh: Int64, now: Instant) {
        self.address = address
        self.model = model
        self.serial = serial
        self.powerW = min(max(powerW, 0), MeterSimLimits.maxPowerW)
        self.importWh = max(importWh, 0)
        self.advancedAt = now
    }

    static let wattNanosecondsPerWh: Int64 = 3_600_000_000_000

    /// Brings the register to `now` at the current power.
    public mutating func advance(to now: Instant) {
        guard now > advancedAt else { return }
        // Both bounded (power ≤ 1 MW, one step ≤ 1000 s): the product stays below 1e18.
        let elapsed = min((now - advancedAt).nanosecondsClamped, MeterSimLimits.maxStepNanoseconds)
        advancedAt = now
        remainderWattNanoseconds += powerW * elapsed
        importWh += remainderWattNanoseconds / Self.wattNanosecondsPerWh
        remainderWattNanoseconds %= Self.wattNanosecondsPerWh
    }

    /// Sets the register (a meter swapped or reset, or a test's start value).
    public mutating func setRegister(_ wh: Int64) {
        importWh = max(wh, 0)
        remainderWattNanoseconds = 0
    }

    /// The meter's registers for one block of its map, or nil when the block is not one it has.
    func registers(for request: ReadRequest) -> [UInt16]? {
        let map = model.map
        let words = map.encode(MeterValues(importWh: importWh, powerW: powerW, serial: String(serial)))
        for (i, b) in map.blocks.enumerated() where b.function == request.function {
            // Any range inside a block the map reads is served; nothing else exists.
            let end = Int(b.start) + Int(b.count)
            if request.start >= b.start, Int(request.start) + Int(request.count) <= end {
                let offset = Int(request.start - b.start)
                return Array(words[i][offset..<offset + Int(request.count)])
            }
        }
        return nil
    }
}

/// Limits of the simulator's commands.
public enum MeterSimLimits {
    /// The highest power a simulated meter draws (1 MW).
    public static let maxPowerW: Int64 = 1_000_000
    /// The longest time one advance counts (1000 s): the arithmetic's bound.
    public static let maxStepNanoseconds: Int64 = 1_000_000_000_000
    /// Meters one simulator serves.
    public static let maxMeters = 16
    /// The most answers one fault command affects.
    public static let maxFaultCount = 1_000_000
}

/// A scripted fault, per meter.
public struct MeterFaults: Equatable, Sendable {
    /// Requests left unanswered (the meter is silent), from the next one.
    public var silentRequests = 0
    /// Answers sent with a wrong CRC.
    public var corruptAnswers = 0
    /// Requests answered with this exception, and how many.
    public var exception: (code: ModbusException, remaining: Int)?

    public init() {}

    public static func == (a: MeterFaults, b: MeterFaults) -> Bool {
        a.silentRequests == b.silentRequests && a.corruptAnswers == b.corruptAnswers
            && a.exception?.code == b.exception?.code && a.exception?.remaining == b.exception?.remaining
    }
}

/// Several meters on one simulated bus: requests in, answers out, with the faults a test or an
/// operator scripts (`command`). Pure: instants passed in.
public struct MeterSimCore: Sendable {
    /// The meters by address.
    public private(set) var meters: [UInt8: SimulatedMeter] = [:]
    /// Their pending faults.
    public private(set) var faults: [UInt8: MeterFaults] = [:]
    /// Requests answered, per address.
    public private(set) var answered: [UInt8: Int] = [:]
    /// Frames that were not a request this simulator could read (bad CRC, other functions are
    /// answered with exception 1 and counted in `answered`).
    public private(set) var unreadable = 0

    /// A bus of `meters`.
    public init(meters: [SimulatedMeter]) {
        for m in meters.prefix(MeterSimLimits.maxMeters) { self.meters[m.address] = m; faults[m.address] = MeterFaults() }
    }

    /// The answer to `frame`, or nil: a frame for no simulated meter, one this simulator cannot
    /// read, or a silenced meter.
    public mutating func handle(frame: [UInt8], now: Instant) -> [UInt8]? {
        let request: ReadRequest
        do {
            request = try ReadRequest.decode(frame)
        } catch .unsupportedFunction(let f) {
            // Answer in the real meter's way: exception 1 for a function it does not have.
            guard frame.count >= 2, meters[frame[0]] != nil else { return nil }
            return CRC16Modbus.appending(to: [frame[0], f | 0x80, ModbusException.illegalFunction.code])
        } catch {
            unreadable += 1
            return nil
        }
        guard var meter = meters[request.address], var f = faults[request.address] else { return nil }
        meter.advance(to: now)
        meters[request.address] = meter
        if f.silentRequests > 0 {
            f.silentRequests -= 1
            faults[request.address] = f
            return nil
        }
        var response: ReadResponse
        if let e = f.exception, e.remaining > 0 {
            response = .exception(e.code)
            f.exception = e.remaining > 1 ? (e.code, e.remaining - 1) : nil
        } else if let registers = meter.registers(for: request) {
            response = .registers(registers)
        } else {
            response = .exception(.illegalDataAddress)
        }
        var bytes = response.encode(for: request)
        if f.corruptAnswers > 0 {
            f.corruptAnswers -= 1
            bytes[bytes.count - 1] ^= 0xFF
        }
        faults[request.address] = f
        answered[request.address, default: 0] += 1
        return bytes
    }

    /// Carries out one control command (docs/meters.md, "meter-sim"); the reply for the control
    /// channel, or the problem in words.
    ///
    /// `power A W`, `energy A WH`, `backwards A WH`, `serial A N`, `silence A N|on|off`,
    /// `crc A N`, `exception A CODE [N]`, `clear A`, `show A`.
    public mutating func command(_ line: String, now: Instant) -> Result<String, MeterSimCommandError> {
        let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard let verb = words.first else { return .failure(.init(text: "empty command")) }
        guard words.count >= 2, let a = UInt8(words[1]), var meter = meters[a], var f = faults[a] else {
            return .failure(.init(text: "\(verb): expected a simulated meter's address"))
        }
        func number(_ i: Int, _ range: ClosedRange<Int64>) -> Int64? {
            guard words.count > i, let v = Int64(words[i]), range.contains(v) else { return nil }
            return v
        }
        meter.advance(to: now)
        switch verb {
        case "power":
            guard let w = number(2, 0...MeterSimLimits.maxPowerW) else { return .failure(.init(text: "power: expected 0…\(MeterSimLimits.maxPowerW) W")) }
            meter.powerW = w
        case "energy":
            guard let wh = number(2, 0...1_000_000_000_000) else { return .failure(.init(text: "energy: expected 0…1e12 Wh")) }
            meter.setRegister(wh)
        case "backwards":
            guard let wh = number(2, 1...1_000_000_000_000) else { return .failure(.init(text: "backwards: expected Wh ≥ 1")) }
            meter.setRegister(meter.importWh - wh)
        case "serial":
            guard let n = number(2, 0...Int64(UInt32.max)) else { return .failure(.init(text: "serial: expected a 32-bit number")) }
            meter.serial = UInt32(n)
        case "silence":
            let arg = words.count > 2 ? words[2] : ""
            if arg == "on" { f.silentRequests = MeterSimLimits.maxFaultCount }
            else if arg == "off" { f.silentRequests = 0 }
            else if let n = number(2, 1...Int64(MeterSimLimits.maxFaultCount)) { f.silentRequests = Int(n) }
            else { return .failure(.init(text: "silence: expected N, on or off")) }
        case "crc":
            guard let n = number(2, 1...Int64(MeterSimLimits.maxFaultCount)) else { return .failure(.init(text: "crc: expected a count")) }
            f.corruptAnswers = Int(n)
        case "exception":
            guard let code = number(2, 1...255) else { return .failure(.init(text: "exception: expected a code 1…255")) }
            let n = words.count > 3 ? number(3, 1...Int64(MeterSimLimits.maxFaultCount)) : 1
            guard let n else { return .failure(.init(text: "exception: expected a count")) }
            f.exception = (ModbusException(code: UInt8(code)), Int(n))
        case "clear":
            f = MeterFaults()
        case "show":
            break
        default:
            return .failure(.init(text: "unknown command \(verb)"))
        }
        meters[a] = meter
        faults[a] = f
        return .success("meter \(a) \(meter.model.rawValue) serial \(meter.serial) energy \(meter.importWh) Wh power \(meter.powerW) W")
    }
}

/// A control command the simulator refused, in words.
public struct MeterSimCommandError: Error, Equatable, Sendable {
    /// The problem.
    public var text: String
    public init(text: String) { self.text = text }
}

