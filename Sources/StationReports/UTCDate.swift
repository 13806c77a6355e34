import Uplink
/// Calendar dates in UTC (proleptic Gregorian) from and to wall-clock milliseconds, without
/// Foundation: the export's ISO 8601 times and the `--from`/`--to` arguments.
public enum UTCDate {
    public static let millisPerDay: Int64 = 86_400_000

    /// `2026-12-05T06:01:02Z`: whole seconds (the milliseconds are dropped, rounding down, also
    /// before 1970). Years before 0 or after 9999 are written as many digits as they need.
    public static func iso8601(millis ms: Int64) -> String {
        let days = floorDiv(ms, millisPerDay)
        let inDay = ms - days * millisPerDay
        let (y, m, d) = civil(fromDays: days)
        let h = inDay / 3_600_000, mi = inDay / 60_000 % 60, s = inDay / 1000 % 60
        return "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))T\(pad(h, 2)):\(pad(mi, 2)):\(pad(s, 2))Z"
    }

    /// Year, month (1–12) and day (1–31) of the day `days` after 1970-01-01 (negative: before):
    /// the uplink's `RFC3339.civil`, H. Hinnant's civil_from_days.
    public static func civil(fromDays days: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let (y, m, d) = RFC3339.civil(fromDays: days)
        return (y, m, d)
    }

    /// Days from 1970-01-01 to the date (the inverse of `civil(fromDays:)`; the date must exist).
    public static func days(year y0: Int64, month m: Int64, day d: Int64) -> Int64 {
        let y = m <= 2 ? y0 - 1 : y0
        let era = floorDiv(y, 400)
        let yoe = y - era * 400
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// Whether `year` has a 29 February.
    public static func isLeap(_ year: Int64) -> Bool { year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) }

    /// The number of days of `month` (1–12) in `year`.
    public static func daysIn(month: Int64, year: Int64) -> Int64 {
        switch month {
        case 2: return isLeap(year) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 { RFC3339.floorDiv(a, b) }

    static func pad(_ v: Int64, _ width: Int) -> String {
        let t = String(v.magnitude)
        return (v < 0 ? "-" : "") + String(repeating: "0", count: max(0, width - t.count)) + t
    }
}

/// Why a `--from`/`--to` argument is not a date.
public enum DateArgumentError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Neither `YYYY-MM-DD` nor `YYYY-MM-DDTHH:MM:SSZ` (the text as given).
    case malformed(String)
    /// A month outside 1–12.
    case noSuchMonth(Int64)
    /// A day the month does not have (30 February, 31 April, 29 February of a common year).
    case noSuchDay(year: Int64, month: Int64, day: Int64)
    /// An hour over 23, a minute or second over 59 (leap seconds are not accepted).
    case noSuchTime(String)
    /// `--from` is not before `--to`: the period holds no instant.
    case emptyPeriod(from: Int64, to: Int64)

    public var description: String {
        switch self {
        case .malformed(let t): return "'\(t)' is not a date: use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC)"
        case .noSuchMonth(let m): return "there is no month \(m)"
        case let .noSuchDay(y, m, d): return "\(UTCDate.pad(y, 4))-\(UTCDate.pad(m, 2)) has no day \(d)"
        case .noSuchTime(let t): return "'\(t)' is not a time of day"
        case let .emptyPeriod(from, to):
            return "the period from \(UTCDate.iso8601(millis: from)) to \(UTCDate.iso8601(millis: to)) is empty"
        }
    }
}

/// The export's `--from DATE` and `--to DATE`: `YYYY-MM-DD` (a whole UTC day) or
/// `YYYY-MM-DDTHH:MM:SSZ`. A period is half-open, [from, to): `from` gives the first millisecond
/// of the named day or second, `to` the first millisecond after it, so that `--to` includes the
/// day (or the second) it names.
public enum DateArgument {
    /// The first millisecond of the day or second `text` names.
    public static func from(_ text: String) throws(DateArgumentError) -> Int64 {
        try parse(text).start
    }

    /// The first millisecond after the day or second `text` names (exclusive end).
    public static func to(_ text: String) throws(DateArgumentError) -> Int64 {
        let p = try parse(text)
        return p.start + p.length
    }

    /// Both ends, either optional, checked to make a non-empty period.
    public static func period(from: String?, to: String?) throws(DateArgumentError) -> (from: Int64?, to: Int64?) {
        let f = try from.map { (t: String) throws(DateArgumentError) -> Int64 in try Self.from(t) }
        let t = try to.map { (t: String) throws(DateArgumentError) -> Int64 in try Self.to(t) }
        if let f, let t, f >= t { throw .emptyPeriod(from: f, to: t) }
        return (f, t)
    }

    /// The instant the text starts at and how long what it names lasts (a day or a second).
    static func parse(_ text: String) throws(DateArgumentError) -> (start: Int64, length: Int64) {
        let b = Array(text.utf8)
        func number(_ range: Range<Int>) throws(DateArgumentError) -> Int64 {
            var v: Int64 = 0
            for i in range {
                guard b[i] >= 0x30 && b[i] <= 0x39 else { throw .malformed(text) }
                v = v * 10 + Int64(b[i] - 0x30)
            }
            return v
        }
        guard b.count == 10 || b.count == 20, b[4] == UInt8(ascii: "-"), b[7] == UInt8(ascii: "-") else { throw .malformed(text) }
        let y = try number(0..<4), m = try number(5..<7), d = try number(8..<10)
        guard (1...12).contains(m) else { throw .noSuchMonth(m) }
        guard d >= 1, d <= UTCDate.daysIn(month: m, year: y) else { throw .noSuchDay(year: y, month: m, day: d) }
        let day = UTCDate.days(year: y, month: m, day: d) * UTCDate.millisPerDay
        if b.count == 10 { return (day, UTCDate.millisPerDay) }
        guard b[10] == UInt8(ascii: "T"), b[13] == UInt8(ascii: ":"), b[16] == UInt8(ascii: ":"), b[19] == UInt8(ascii: "Z")
        else { throw .malformed(text) }
        let h = try number(11..<13), mi = try number(14..<16), s = try number(17..<19)
        guard h <= 23, mi <= 59, s <= 59 else { throw .noSuchTime(String(text.dropFirst(11).prefix(8))) }
        return (day + ((h * 60 + mi) * 60 + s) * 1000, 1000)
    }
}
