/// What a session costs. Integer minor units everywhere: prices carry three extra decimal
/// places (milli-minor units) so a price like 0.4567 EUR/kWh is exact, and the total is rounded
/// once, half up, at the end. No binary floating point touches money.
public struct Tariff: Equatable, Sendable {
    /// ISO 4217 code, e.g. "EUR".
    public var currency: String
    /// Charged once per session, minor units.
    public var startFee: Int64
    /// Price per kWh in milli-minor units (45670 = 0.4567 EUR/kWh when minor units are cents).
    public var energyPricePerKWh: Int64
    /// Price per minute of charging time in milli-minor units, prorated by the second.
    public var timePricePerMinute: Int64

    public init(currency: String, startFee: Int64 = 0, energyPricePerKWh: Int64 = 0, timePricePerMinute: Int64 = 0) {
        self.currency = currency; self.startFee = startFee
        self.energyPricePerKWh = energyPricePerKWh; self.timePricePerMinute = timePricePerMinute
    }

    /// The largest energy (Wh) or time (s) the engine feeds into a cost: a meter that reports
    /// more than 10 GWh or a session of more than 10 years is a fault, and the bound keeps
    /// every product below Int64 overflow.
    public static let maxEnergyWh: Int64 = 10_000_000_000
    public static let maxSeconds: Int64 = 315_360_000

    /// Cost in minor units of `energyWh` delivered over `seconds` of charging; `Int64.max` when
    /// the tariff is so large the arithmetic would overflow (the cap then limits the capture).
    public func cost(energyWh: Int64, seconds: Int64) -> Int64 {
        let e = min(max(energyWh, 0), Tariff.maxEnergyWh)
        let s = min(max(seconds, 0), Tariff.maxSeconds)
        // Each term is kept exact over the common denominator 60 000 000 (= 1000 Wh/kWh ·
        // 1000 milli · 60 s/min) until the single rounding; every step is overflow-checked.
        func mul(_ a: Int64, _ b: Int64) -> Int64? { let r = a.multipliedReportingOverflow(by: b); return r.overflow ? nil : r.partialValue }
        func add(_ a: Int64, _ b: Int64) -> Int64? { let r = a.addingReportingOverflow(b); return r.overflow ? nil : r.partialValue }
        guard let fee = mul(max(startFee, 0), 60_000_000),
              let energyRate = mul(max(energyPricePerKWh, 0), 60), let energy = mul(e, energyRate),
              let timeRate = mul(max(timePricePerMinute, 0), 1000), let time = mul(s, timeRate),
              let sum1 = add(fee, energy), let sum = add(sum1, time), let rounded = add(sum, 30_000_000)
        else { return .max }
        return rounded / 60_000_000
    }
}

/// A session's running cost against its authorised amount.
public struct CostMeter: Equatable, Sendable {
    public var tariff: Tariff
    /// The amount the bank authorised: the capture never exceeds it.
    public var authorised: Int64

    public init(tariff: Tariff, authorised: Int64) { self.tariff = tariff; self.authorised = authorised }

    /// The amount to capture for this consumption: the tariff's cost, capped at the authorisation.
    public func capture(energyWh: Int64, seconds: Int64) -> Int64 {
        min(tariff.cost(energyWh: energyWh, seconds: seconds), authorised)
    }

    /// Whether charging must stop because the cost reached the authorised amount.
    public func reachedCap(energyWh: Int64, seconds: Int64) -> Bool {
        tariff.cost(energyWh: energyWh, seconds: seconds) >= authorised
    }
}
