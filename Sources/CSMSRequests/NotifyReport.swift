import JSONLines

/// The NotifyReportRequest payloads that answer a GetBaseReport.
public enum NotifyReport {
    /// The report's pages: at most `pageSize` entries each, `seqNo` from 0, `tbc` true on every
    /// page but the last, all with the same `generatedAt` (the time of the request). An empty
    /// list of variables gives one page without `reportData`, which the schema allows.
    public static func request(requestId: Int64, variables: [DeviceVariable], generatedAtMillis: Int64,
                               pageSize: Int = DeviceModelLimits.reportPageSize) -> [JSON] {
        let size = max(1, pageSize)
        let generatedAt = RFC3339.format(millis: generatedAtMillis)
        let pages = variables.isEmpty ? [[]] : stride(from: 0, to: variables.count, by: size).map {
            Array(variables[$0..<min($0 + size, variables.count)])
        }
        return pages.enumerated().map { seqNo, page in
            var fields: [(String, JSON)] = [("requestId", .int(requestId)), ("generatedAt", .string(generatedAt))]
            if !page.isEmpty { fields.append(("reportData", .array(page.map(reportData)))) }
            fields.append(("tbc", .bool(seqNo < pages.count - 1)))
            fields.append(("seqNo", .int(Int64(seqNo))))
            return .object(fields)
        }
    }

    /// One `ReportDataType`.
    static func reportData(_ v: DeviceVariable) -> JSON {
        var component: [(String, JSON)] = [("name", .string(v.component))]
        if let e = v.evseId { component.append(("evse", .object([("id", .number(e))]))) }
        var variable: [(String, JSON)] = [("name", .string(v.name))]
        if let i = v.instance { variable.append(("instance", .string(i))) }
        var attribute: [(String, JSON)] = [("type", .string("Actual")), ("value", .string(v.reportedValue)),
                                           ("mutability", .string(v.mutability.rawValue))]
        // Settings survive a restart (they live in the configuration); the rest is read anew.
        if v.setting != nil { attribute.append(("persistent", .bool(true))) }
        var characteristics: [(String, JSON)] = []
        if let u = v.unit { characteristics.append(("unit", .string(u))) }
        characteristics.append(("dataType", .string(v.dataType)))
        if let m = v.minLimit { characteristics.append(("minLimit", .int(m))) }
        if let m = v.maxLimit { characteristics.append(("maxLimit", .int(m))) }
        if let l = v.valuesList { characteristics.append(("valuesList", .string(l))) }
        characteristics.append(("supportsMonitoring", .bool(false)))
        return .object([("component", .object(component)), ("variable", .object(variable)),
                        ("variableAttribute", .array([.object(attribute)])), ("variableCharacteristics", .object(characteristics))])
    }
}

/// RFC 3339 UTC times from wall-clock milliseconds, without Foundation.
public enum RFC3339 {
    /// `2026-12-06T01:23:25.123Z`; times before 1970 are written as 1970-01-01T00:00:00.000Z, since a
    /// station clock that far off is unset and no date it gives is true.
    public static func format(millis: Int64) -> String {
        let ms = max(0, millis)
        let days = ms / 86_400_000
        let inDay = ms % 86_400_000
        // Howard Hinnant's civil-from-days.
        let z = days + 719_468
        let era = z / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        func pad(_ n: Int64, _ width: Int) -> String {
            let s = String(n)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T\(pad(inDay / 3_600_000, 2)):\(pad(inDay / 60_000 % 60, 2)):"
            + "\(pad(inDay / 1000 % 60, 2)).\(pad(inDay % 1000, 3))Z"
    }
}
