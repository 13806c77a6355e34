import PaymentEngine
import Platform

/// One GPIO line as the configuration names it: `CHIP:LINE` or `CHIP:LINE:active-low`, the chip a
/// path (`/dev/gpiochip0`) or its label, the line an offset or its name.
public struct GPIOLineSetting: Equatable, Sendable, CustomStringConvertible {
    public var chip: String
    public var line: String
    public var activeLow: Bool

    public init(chip: String, line: String, activeLow: Bool = false) { self.chip = chip; self.line = line; self.activeLow = activeLow }

    /// Reads `CHIP:LINE[:active-low]`; nil when malformed. Split from the right, so a chip label
    /// may itself contain a colon.
    public static func parse(_ text: String) -> GPIOLineSetting? {
        var parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        var activeLow = false
        if parts.count >= 3, parts.last == "active-low" { activeLow = true; parts.removeLast() }
        guard parts.count >= 2, let line = parts.last, !line.isEmpty else { return nil }
        let chip = parts.dropLast().joined(separator: ":")
        guard !chip.isEmpty, chip.utf8.count <= 64, line.utf8.count <= 32 else { return nil }
        return GPIOLineSetting(chip: chip, line: line, activeLow: activeLow)
    }

    public var description: String { "\(chip):\(line)\(activeLow ? ":active-low" : "")" }
}

/// One connector's GPIO lines (`charger.gpio.N.relay`, `.mirror`, `.plug`).
public struct GPIOConnectorSetting: Equatable, Sendable {
    public var relay: GPIOLineSetting?
    public var mirror: GPIOLineSetting?
    public var plug: GPIOLineSetting?
    public init() {}
}

/// A connector's meter on the Modbus bus (`charger.meter.N = ADDRESS:MODEL`).
public struct MeterSetting: Equatable, Sendable, CustomStringConvertible {
    /// Its Modbus address, 1…247.
    public var address: UInt8
    /// The register map's name (`sdm630`, `sdm72`, `abb-b23`, `abb-b24`).
    public var model: String

    public init(address: UInt8, model: String) { self.address = address; self.model = model }

    /// The models the daemon has register maps for (EnergyMeters' `MeterModel` names).
    public static let models = ["sdm630", "sdm72", "abb-b23", "abb-b24"]

    public static func parse(_ text: String) -> MeterSetting? {
        let parts = text.split(separator: ":").map(String.init)
        guard parts.count == 2, let a = UInt8(parts[0]), (1...247).contains(a), models.contains(parts[1]) else { return nil }
        return MeterSetting(address: a, model: parts[1])
    }

    public var description: String { "\(address):\(model)" }
}

extension DaemonConfig {
    /// The per-connector keys, for connectors 1…`EngineConfig.maxConnectors`.
    static let perConnectorKeys: [(key: String, help: String)] = (1...EngineConfig.maxConnectors).flatMap { n in [
        ("charger.gpio.\(n).relay", "charger.io = gpio: connector \(n)'s relay coil output, CHIP:LINE[:active-low] (chip path or label, line offset or name)"),
        ("charger.gpio.\(n).mirror", "charger.io = gpio: connector \(n)'s relay auxiliary (mirror) contact input (empty: none; the relay is trusted on command)"),
        ("charger.gpio.\(n).plug", "charger.io = gpio: connector \(n)'s plug-detect input (empty: none)"),
        ("charger.meter.\(n)", "connector \(n)'s meter on meter.device, ADDRESS:MODEL (1…247; sdm630, sdm72, abb-b23, abb-b24)"),
    ] }

    /// `meter.poll_ms`'s bounds (EnergyMeters' `MeterBusLimits`).
    public static let meterPollRange: ClosedRange<Int64> = 200...60_000
    /// `meter.response_timeout_ms`'s bounds (ModbusRTU's `ModbusClientConfig.responseTimeoutRange`).
    public static let meterResponseTimeoutRange: ClosedRange<Int64> = 50...5_000
    /// `meter.retries`'s bounds.
    public static let meterRetriesRange: ClosedRange<Int64> = 0...5
    /// `meter.frame_silence_ms`'s bounds (0: the spec's t3.5).
    public static let meterFrameSilenceRange: ClosedRange<Int64> = 0...50
    /// `charger.gpio.debounce_ms`'s bounds.
    public static let gpioDebounceRange: ClosedRange<Int64> = 0...1_000
    /// `relay.feedback_ms`'s bounds.
    public static let relayFeedbackRange: ClosedRange<Int64> = 50...5_000

    /// A per-connector key's connector (1-based) and the rest, or nil.
    static func connectorKey(_ key: String, _ prefix: String) -> (Int, String)? {
        guard key.hasPrefix(prefix) else { return nil }
        let rest = key.dropFirst(prefix.count)
        let parts = rest.split(separator: ".", maxSplits: 1).map(String.init)
        guard let n = Int(parts[0]), (1...EngineConfig.maxConnectors).contains(n) else { return nil }
        return (n, parts.count > 1 ? parts[1] : "")
    }

    /// Applies a hardware key (`meter.*`, `relay.*`, `charger.gpio.*`, `charger.meter.N`); nil
    /// when `key` is not one, else the problem or "" when applied.
    static func applyHardware(_ key: String, _ v: String, to c: inout DaemonConfig) -> String?? {
        func int(_ range: ClosedRange<Int64>) -> Int64? {
            guard let n = Int64(v), range.contains(n) else { return nil }
            return n
        }
        func ranged(_ range: ClosedRange<Int64>, _ unit: String, _ set: (Int64) -> Void) -> String? {
            guard let n = int(range) else { return "expected \(range.lowerBound)…\(range.upperBound)\(unit)" }
            set(n)
            return nil
        }
        switch key {
        case "meter.device": c.meterDevice = v; return .some(nil)
        case "meter.line":
            guard let l = LineSettings.parse(v), [9600, 19200].contains(l.baud), l.dataBits == 8, l.stopBits == 1, l.parity != .odd else {
                return .some("expected 9600 or 19200 baud, 8N1 or 8E1, e.g. 9600 8N1")
            }
            c.meterLine = l
            return .some(nil)
        case "meter.poll_ms": return .some(ranged(meterPollRange, " ms") { c.meterPollMs = $0 })
        case "meter.response_timeout_ms": return .some(ranged(meterResponseTimeoutRange, " ms") { c.meterResponseTimeoutMs = $0 })
        case "meter.retries": return .some(ranged(meterRetriesRange, "") { c.meterRetries = $0 })
        case "meter.frame_silence_ms": return .some(ranged(meterFrameSilenceRange, " ms (0: t3.5)") { c.meterFrameSilenceMs = $0 })
        case "relay.feedback_ms": return .some(ranged(relayFeedbackRange, " ms") { c.relayFeedbackMs = $0 })
        case "charger.gpio.debounce_ms": return .some(ranged(gpioDebounceRange, " ms") { c.gpioDebounceMs = $0 })
        default: break
        }
        if let (n, what) = connectorKey(key, "charger.meter.") , what.isEmpty {
            if v.isEmpty { c.meters[n] = nil; return .some(nil) }
            guard let m = MeterSetting.parse(v) else { return .some("expected ADDRESS:MODEL, address 1…247, model \(MeterSetting.models.joined(separator: ", "))") }
            c.meters[n] = m
            return .some(nil)
        }
        if let (n, what) = connectorKey(key, "charger.gpio."), ["relay", "mirror", "plug"].contains(what) {
            var s = c.gpio[n] ?? GPIOConnectorSetting()
            let line: GPIOLineSetting?
            if v.isEmpty { line = nil } else {
                guard let l = GPIOLineSetting.parse(v) else { return .some("expected CHIP:LINE or CHIP:LINE:active-low") }
                line = l
            }
            switch what {
            case "relay": s.relay = line
            case "mirror": s.mirror = line
            default: s.plug = line
            }
            c.gpio[n] = s.relay == nil && s.mirror == nil && s.plug == nil ? nil : s
            return .some(nil)
        }
        return nil
    }

    /// A hardware key's value as the file would hold it; nil when `key` is not one.
    func hardwareValue(of key: String) -> String?? {
        switch key {
        case "meter.device": return .some(meterDevice)
        case "meter.line": return .some(meterLine.description)
        case "meter.poll_ms": return .some(String(meterPollMs))
        case "meter.response_timeout_ms": return .some(String(meterResponseTimeoutMs))
        case "meter.retries": return .some(String(meterRetries))
        case "meter.frame_silence_ms": return .some(String(meterFrameSilenceMs))
        case "relay.feedback_ms": return .some(String(relayFeedbackMs))
        case "charger.gpio.debounce_ms": return .some(String(gpioDebounceMs))
        default: break
        }
        if let (n, what) = Self.connectorKey(key, "charger.meter."), what.isEmpty { return .some(meters[n]?.description ?? "") }
        if let (n, what) = Self.connectorKey(key, "charger.gpio.") {
            let s = gpio[n]
            switch what {
            case "relay": return .some(s?.relay?.description ?? "")
            case "mirror": return .some(s?.mirror?.description ?? "")
            case "plug": return .some(s?.plug?.description ?? "")
            default: return nil
            }
        }
        return nil
    }

    /// The rules across the hardware keys.
    static func hardwareProblems(_ c: DaemonConfig) -> [(keys: [String], message: String)] {
        var problems: [(keys: [String], message: String)] = []
        let n = c.engine.connectors
        for k in c.meters.keys where k > n {
            problems.append((["charger.meter.\(k)"], "charger.meter.\(k): this charger has \(n) connector(s) (charger.connectors)"))
        }
        if !c.meterDevice.isEmpty {
            let missing = (1...n).filter { c.meters[$0] == nil }
            if !missing.isEmpty {
                problems.append((["meter.device"], "meter.device is set: every connector needs its meter (charger.meter.\(missing[0]) is missing)"))
            }
            var byAddress: [UInt8: Int] = [:]
            for (k, m) in c.meters.sorted(by: { $0.key < $1.key }) {
                if let other = byAddress[m.address] {
                    problems.append((["charger.meter.\(k)"], "charger.meter.\(k): address \(m.address) is connector \(other)'s meter too"))
                }
                byAddress[m.address] = k
            }
        } else if let k = c.meters.keys.min() {
            problems.append((["charger.meter.\(k)"], "charger.meter.\(k) is set but meter.device is not"))
        }
        for k in c.gpio.keys where k > n {
            problems.append((["charger.gpio.\(k).relay"], "charger.gpio.\(k): this charger has \(n) connector(s) (charger.connectors)"))
        }
        if c.chargerIO == .gpio {
            for k in 1...n where c.gpio[k]?.relay == nil {
                problems.append((["charger.io"], "charger.io = gpio needs charger.gpio.\(k).relay (every connector's relay coil)"))
            }
            // Nothing else can say a car is plugged in with gpio: without the input no session could charge.
            for k in 1...n where c.gpio[k]?.relay != nil && c.gpio[k]?.plug == nil {
                problems.append((["charger.gpio.\(k).relay"], "charger.io = gpio needs charger.gpio.\(k).plug (the plug-detect input: nothing else says a car is there)"))
            }
            if c.meterDevice.isEmpty {
                problems.append((["charger.io"], "charger.io = gpio needs meter.device and charger.meter.N: the energy billed is the meter's"))
            }
        } else if let k = c.gpio.keys.min() {
            problems.append((["charger.gpio.\(k).relay"], "charger.gpio.\(k).* is set but charger.io is not gpio"))
        }
        if c.chargerIO == .simulated && !c.meterDevice.isEmpty {
            problems.append((["meter.device"], "meter.device is for real meters; charger.io = simulated invents its own"))
        }
        return problems
    }
}
