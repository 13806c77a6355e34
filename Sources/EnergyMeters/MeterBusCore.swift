import ModbusRTU
import Timebase

/// One meter on the bus.
public struct MeterSpec: Equatable, Hashable, Sendable {
    /// Its Modbus address, 1…247.
    public let address: UInt8
    /// Its register map.
    public let model: MeterModel

    public init(address: UInt8, model: MeterModel) {
        self.address = address
        self.model = model
    }
}

/// Why a poll of one meter gave no reading.
public enum MeterFailure: Error, Equatable, Hashable, Sendable, CustomStringConvertible {
    /// A read failed on the bus (no answer, a damaged answer, an exception, the port closed):
    /// which block (0 energy, 1 power, 2 serial number) and how.
    case bus(block: Int, ModbusFailure)
    /// The meter answered, but its registers are not a reading.
    case registers(MeterDecodeError)

    /// For the log.
    public var description: String {
        switch self {
        case .bus(let b, let f): "\(["energy", "power", "serial number"][min(b, 2)]) read: \(f)"
        case .registers(let e): "\(e)"
        }
    }
}

/// What the shell must do for the bus, and what it reports.
public enum MeterBusEffect: Equatable, Sendable {
    /// Write this frame to the line.
    case send([UInt8])
    /// A meter was read: its values, at the instant its last block was answered.
    case reading(address: UInt8, MeterValues, at: Instant)
    /// A meter could not be read this poll.
    case failure(address: UInt8, MeterFailure)
}

/// Limits of a meter bus.
public enum MeterBusLimits {
    /// Meters one bus polls (RS-485 unit loads allow 32 devices; 16 meters is a large charger).
    public static let maxMeters = 16
    /// The shortest poll interval: at 9600 baud three reads of one meter take about 60 ms, so 16
    /// meters fit in one second.
    public static let minPollInterval: Duration = .milliseconds(200)
    /// The longest poll interval (the station's meter timeout is at least 5 s).
    public static let maxPollInterval: Duration = .seconds(60)
    /// The default poll interval.
    public static let defaultPollInterval: Duration = .seconds(1)
}

/// Why a meter bus configuration was refused.
public enum MeterBusConfigError: Error, Equatable, Sendable {
    /// No meters, or more than `MeterBusLimits.maxMeters`.
    case meterCount(Int)
    /// An address outside 1…247.
    case invalidAddress(UInt8)
    /// Two meters with one address: their answers would collide on the bus.
    case duplicateAddress(UInt8)
    /// The poll interval is outside `minPollInterval…maxPollInterval`.
    case pollInterval(Duration)
}

/// Polls the meters of one RS-485 bus, one request on the bus at a time: every `pollInterval` a
/// cycle reads each meter's blocks in turn, and reports a reading or a failure per meter. A
/// failed block ends that meter's poll at once (its remaining blocks are not read), so a dead
/// meter costs one read's retries per cycle and the others are still read. A cycle that is still
/// running when the next is due delays it (counted in `overruns`); cycles never overlap.
///
/// It judges nothing: a reading that goes backwards or changes serial number is reported as
/// read. Pure: frames and instants in, effects out; the shell calls `tick` at `nextDeadline`.
public struct MeterBusCore: Sendable {
    /// The meters, in poll order.
    public let meters: [MeterSpec]
    /// Time between the starts of two cycles.
    public let pollInterval: Duration
    /// The Modbus client underneath.
    public private(set) var client: ModbusClientCore
    /// Cycles started late because the previous one was still running.
    public private(set) var overruns = 0
    /// Cycles completed.
    public private(set) var cycles = 0

    var nextCycleAt: Instant?
    /// The cycle in progress: which meter, which block, the registers so far.
    var cursor: (meter: Int, block: Int, registers: [[UInt16]])?
    var cycleStartedAt: Instant = .zero

    /// A bus of `meters`, checked. Nothing is sent before `start`.
    public init(meters: [MeterSpec], pollInterval: Duration, client: ModbusClientConfig) throws(MeterBusConfigError) {
        guard (1...MeterBusLimits.maxMeters).contains(meters.count) else { throw .meterCount(meters.count) }
        var seen = Set<UInt8>()
        for m in meters {
            guard (1...ModbusLimits.maxServerAddress).contains(m.address) else { throw .invalidAddress(m.address) }
            guard seen.insert(m.address).inserted else { throw .duplicateAddress(m.address) }
        }
        guard pollInterval >= MeterBusLimits.minPollInterval, pollInterval <= MeterBusLimits.maxPollInterval else {
            throw .pollInterval(pollInterval)
        }
        self.meters = meters
        self.pollInterval = pollInterval
        self.client = ModbusClientCore(config: client)
    }

    /// When `tick` must run next.
    public var nextDeadline: Instant? {
        [client.nextDeadline, cursor == nil ? nextCycleAt : nil].compactMap { $0 }.min()
    }

    /// Starts polling: the first cycle at once.
    public mutating func start(now: Instant) -> [MeterBusEffect] {
        nextCycleAt = now
        return tick(now: now)
    }

    /// Stops polling after the current read (its outcome is still reported).
    public mutating func stop() { nextCycleAt = nil }

    /// A frame from the line.
    public mutating func receive(frame: [UInt8], now: Instant) -> [MeterBusEffect] {
        handle(client.receive(frame: frame, now: now), now: now)
    }

    /// Time passed.
    public mutating func tick(now: Instant) -> [MeterBusEffect] {
        var out = handle(client.tick(now: now), now: now)
        if cursor == nil, let due = nextCycleAt, now >= due {
            cycleStartedAt = now
            cursor = (0, 0, [])
            out += isLinkUp ? submitCurrent(now: now) : failRestOfCycle(.linkDown, now: now)
        }
        return out
    }

    /// Whether the port is open (`linkUp`/`linkDown`); while it is not, each cycle reports every
    /// meter as `linkDown` without sending.
    public private(set) var isLinkUp = false

    /// The port opened: the next cycle reads the meters.
    public mutating func linkUp() { isLinkUp = true }

    /// The port closed: the read in progress and the rest of this cycle fail with `linkDown`
    /// (each meter not yet read gets its failure); cycles go on, reporting `linkDown`, until
    /// `linkUp`.
    public mutating func linkDown(now: Instant) -> [MeterBusEffect] {
        isLinkUp = false
        _ = client.linkDown()  // at most the read in progress, reported below with its meter
        return failRestOfCycle(.linkDown, now: now)
    }

    mutating func failRestOfCycle(_ failure: ModbusFailure, now: Instant) -> [MeterBusEffect] {
        var out: [MeterBusEffect] = []
        while let c = cursor {
            out.append(.failure(address: meters[c.meter].address, .bus(block: c.block, failure)))
            advanceMeter(now: now)
        }
        return out
    }

    mutating func handle(_ effects: [ModbusClientEffect], now: Instant) -> [MeterBusEffect] {
        var out: [MeterBusEffect] = []
        for e in effects {
            switch e {
            case .send(let bytes): out.append(.send(bytes))
            case .waitUntil: break  // `nextDeadline` covers it
            case .completed(_, _, let result):
                guard var c = cursor else { continue }
                let meter = meters[c.meter]
                switch result {
                case .failure(let f):
                    out.append(.failure(address: meter.address, .bus(block: c.block, f)))
                    advanceMeter(now: now)
                case .success(let registers):
                    c.registers.append(registers)
                    c.block += 1
                    if c.block < meter.model.map.blocks.count {
                        cursor = c
                    } else {
                        do {
                            let values = try meter.model.map.decode(c.registers)
                            out.append(.reading(address: meter.address, values, at: now))
                        } catch {
                            out.append(.failure(address: meter.address, .registers(error)))
                        }
                        advanceMeter(now: now)
                    }
                }
                if cursor != nil { out += submitCurrent(now: now) }
            }
        }
        return out
    }

    /// Moves the cursor to the next meter's first block, or ends the cycle.
    mutating func advanceMeter(now: Instant) {
        guard let c = cursor else { return }
        if c.meter + 1 < meters.count {
            cursor = (c.meter + 1, 0, [])
            return
        }
        cursor = nil
        cycles += 1
        if nextCycleAt != nil {
            let planned = cycleStartedAt + pollInterval
            if planned < now { overruns += 1 }
            nextCycleAt = max(planned, now)
        }
    }

    mutating func submitCurrent(now: Instant) -> [MeterBusEffect] {
        guard let c = cursor else { return [] }
        let meter = meters[c.meter]
        let block = meter.model.map.blocks[c.block]
        // The address is checked at init and the blocks are constants within the limits.
        let request = try! ReadRequest(address: meter.address, function: block.function, start: block.start, count: block.count)
        let (_, effects) = client.submit(request, now: now)
        return handle(effects, now: now)
    }
}
