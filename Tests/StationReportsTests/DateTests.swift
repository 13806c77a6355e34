import Testing
import StationReports
import Timebase
import Uplink

/// UTC calendar dates without Foundation: ISO 8601 times for the export and the `--from`/`--to`
/// arguments.
@Suite struct DateTests {
    static func millis(_ y: Int64, _ m: Int64, _ d: Int64, _ h: Int64 = 0, _ mi: Int64 = 0, _ s: Int64 = 0) -> Int64 {
        (UTCDate.days(year: y, month: m, day: d) * 86_400 + h * 3_600 + mi * 60 + s) * 1000
    }

    @Test func knownDates() {
        #expect(UTCDate.iso8601(millis: 0) == "1970-01-01T00:00:00Z")
        #expect(UTCDate.iso8601(millis: -1) == "1969-12-31T23:59:59Z", "milliseconds round down, before 1970 too")
        #expect(UTCDate.iso8601(millis: 999) == "1970-01-01T00:00:00Z")
        #expect(UTCDate.iso8601(millis: 951_782_400_000) == "2000-02-29T00:00:00Z", "2000 is a leap year (divisible by 400)")
        #expect(UTCDate.iso8601(millis: 951_868_800_000) == "2000-03-01T00:00:00Z")
        #expect(UTCDate.iso8601(millis: 1_709_164_800_000) == "2024-02-29T00:00:00Z")
        #expect(UTCDate.iso8601(millis: -2_203_891_200_000) == "1900-03-01T00:00:00Z", "1900 is not (divisible by 100)")
        #expect(UTCDate.iso8601(millis: -2_203_977_600_000) == "1900-02-28T00:00:00Z")
        #expect(UTCDate.iso8601(millis: 4_107_542_400_000) == "2100-03-01T00:00:00Z")
        #expect(UTCDate.iso8601(millis: 4_102_444_799_999) == "2099-12-31T23:59:59Z")
        #expect(UTCDate.iso8601(millis: 1_796_450_462_000) == "2026-12-05T06:01:02Z")
        #expect(UTCDate.iso8601(millis: 253_402_300_799_000) == "9999-12-31T23:59:59Z")
        #expect(Self.millis(2026, 12, 5, 6, 1, 2) == 1_796_450_462_000)
        #expect(UTCDate.days(year: 1970, month: 1, day: 1) == 0 && UTCDate.days(year: 1969, month: 12, day: 31) == -1)
    }

    /// The straightforward way: walk years, then months, from 1970.
    static func reference(days: Int64) -> (Int64, Int64, Int64) {
        var y: Int64 = 1970, rest = days
        func yearLength(_ y: Int64) -> Int64 { (y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)) ? 366 : 365 }
        while rest < 0 { y -= 1; rest += yearLength(y) }
        while rest >= yearLength(y) { rest -= yearLength(y); y += 1 }
        let lengths: [Int64] = [31, yearLength(y) == 366 ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        var m = 0
        while rest >= lengths[m] { rest -= lengths[m]; m += 1 }
        return (y, Int64(m + 1), rest + 1)
    }

    @Test(arguments: Seeds.sample(6))
    func randomDaysAgreeWithTheReferenceAndRoundTrip(seed: UInt64) {
        var g = Seeds.generator(seed, "civil from days")
        // 1600 to 2400: the leap centuries (1600, 2000, 2400) and the common ones (1700, 1800, 1900, 2100).
        let low = UTCDate.days(year: 1600, month: 1, day: 1), high = UTCDate.days(year: 2400, month: 12, day: 31)
        for _ in 0..<2_000 {
            let z = Int64.random(in: low...high, using: &g)
            let c = UTCDate.civil(fromDays: z)
            let (y, m, d) = Self.reference(days: z)
            #expect(c.year == y && c.month == m && c.day == d, "seed \(seed) day \(z)")
            #expect(UTCDate.days(year: c.year, month: c.month, day: c.day) == z, "seed \(seed) day \(z)")
            // And the time of day, against the uplink's RFC 3339 (which has its own conversion).
            let ms = z * 86_400_000 + Int64.random(in: 0..<86_400_000, using: &g)
            if z >= 0 {
                #expect(UTCDate.iso8601(millis: ms) == String(RFC3339.format(millis: ms).prefix(19)) + "Z", "seed \(seed) millis \(ms)")
            }
        }
    }

    @Test func dateArgumentsNameDaysAndSeconds() throws {
        #expect(try DateArgument.from("2026-12-05") == Self.millis(2026, 12, 5))
        #expect(try DateArgument.to("2026-12-05") == Self.millis(2026, 12, 6), "--to includes the day it names")
        #expect(try DateArgument.to("2026-12-31") == Self.millis(2027, 1, 1))
        #expect(try DateArgument.from("2024-02-29") == Self.millis(2024, 2, 29))
        #expect(try DateArgument.from("2026-12-05T06:01:02Z") == 1_796_450_462_000)
        #expect(try DateArgument.to("2026-12-05T06:01:02Z") == 1_796_450_463_000, "and the second it names")
        #expect(try DateArgument.from("1969-12-31T23:59:59Z") == -1_000)
        let p = try DateArgument.period(from: "2026-12-01", to: "2026-12-01")
        #expect(p.from == Self.millis(2026, 12, 1) && p.to == Self.millis(2026, 12, 2))
        let open = try DateArgument.period(from: nil, to: "2026-12-01")
        #expect(open.from == nil && open.to == Self.millis(2026, 12, 2))
    }

    @Test func badDatesAreRefusedWithTheirReason() {
        for text in ["", "2026-1-05", "2026/12/05", "20261205", "2026-12-05T06:01Z", "2026-12-05 06:01:02Z",
                     "2026-12-05T06:01:02", "2026-12-05T06:01:02+01", "2026-12-0a", "２026-12-05", "+026-12-05", "2026-12-05T06:01:02z"] {
            #expect(throws: DateArgumentError.malformed(text), "\(text)") { try DateArgument.from(text) }
        }
        #expect(throws: DateArgumentError.noSuchMonth(13)) { try DateArgument.from("2026-13-01") }
        #expect(throws: DateArgumentError.noSuchMonth(0)) { try DateArgument.to("2026-00-01") }
        #expect(throws: DateArgumentError.noSuchDay(year: 2026, month: 2, day: 29)) { try DateArgument.from("2026-02-29") }
        #expect(throws: DateArgumentError.noSuchDay(year: 1900, month: 2, day: 29)) { try DateArgument.from("1900-02-29") }
        #expect(throws: DateArgumentError.noSuchDay(year: 2024, month: 2, day: 30)) { try DateArgument.from("2024-02-30") }
        #expect(throws: DateArgumentError.noSuchDay(year: 2026, month: 4, day: 31)) { try DateArgument.from("2026-04-31") }
        #expect(throws: DateArgumentError.noSuchDay(year: 2026, month: 1, day: 0)) { try DateArgument.from("2026-01-00") }
        #expect(throws: DateArgumentError.noSuchTime("24:00:00")) { try DateArgument.from("2026-01-01T24:00:00Z") }
        #expect(throws: DateArgumentError.noSuchTime("23:60:00")) { try DateArgument.from("2026-01-01T23:60:00Z") }
        #expect(throws: DateArgumentError.noSuchTime("23:59:60")) { try DateArgument.from("2026-06-30T23:59:60Z") }
        #expect(throws: DateArgumentError.emptyPeriod(from: Self.millis(2026, 12, 2), to: Self.millis(2026, 12, 2))) {
            try DateArgument.period(from: "2026-12-02", to: "2026-12-01")
        }
        #expect(DateArgumentError.noSuchDay(year: 2026, month: 2, day: 29).description == "2026-02 has no day 29")
    }
}
