// ledger-bench [--dir DIR] [--records N] [--rounds R]
//
// On one disk, in one run: fdatasync after every raw write of a record-sized
// buffer vs the ledger's appendDurably (same 276-byte records: 20-byte header
// plus a 256-byte body), growing and preallocated files; group commit with
// 16/64/256 appends per sync; recovery of a 100,000-record ledger. Rounds
// alternate raw and ledger runs so that drift in the disk's speed hits both;
// the median round is reported. Prints a table and `RESULT name=... value=...` lines.
import Glibc
import Ledger
import Platform
import Timebase
import WireFormat

struct Arguments {
    var directory = "/tmp"
    var records = 3000
    var rounds = 3
    var recoveryRecords = 100_000
}

func usage() -> Never {
    print("usage: ledger-bench [--dir DIR] [--records N] [--rounds R] [--recovery-records N]")
    exit(2)
}

func parseArguments() -> Arguments {
    var arguments = Arguments()
    var argv = CommandLine.arguments.dropFirst()
    func text() -> String {
        guard let value = argv.popFirst() else { usage() }
        return value
    }
    func number() -> Int {
        guard let value = Int(text()), value > 0 else { usage() }
        return value
    }
    while let a = argv.popFirst() {
        switch a {
        case "--dir": arguments.directory = text()
        case "--records": arguments.records = number()
        case "--rounds": arguments.rounds = number()
        case "--recovery-records": arguments.recoveryRecords = number()
        default: usage()
        }
    }
    return arguments
}
let arguments = parseArguments()

let bodyBytes = 256
let recordBytes = LedgerFormat.recordHeaderBytes + bodyBytes
let body = [UInt8]((0..<bodyBytes).map { UInt8(truncatingIfNeeded: $0 &* 37) })

func seconds(_ d: Duration) -> Double {
    let (s, atto) = d.components
    return Double(s) + Double(atto) / 1e18
}

func fixed(_ value: Double, _ decimals: Int) -> String {
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let rounded = (value * scale).rounded() / scale
    var text = "\(rounded)"
    if let dot = text.firstIndex(of: ".") {
        let have = text.distance(from: dot, to: text.endIndex) - 1
        if decimals == 0 { text = String(text[..<dot]) } else if have < decimals { text += String(repeating: "0", count: decimals - have) }
    }
    return text
}

func pad(_ s: String, _ width: Int, left: Bool = false) -> String {
    let padding = String(repeating: " ", count: max(0, width - s.count))
    return left ? s + padding : padding + s
}

func check<T>(_ what: String, _ body: () throws -> T) -> T {
    do { return try body() } catch {
        print("ledger-bench: \(what): \(error)")
        exit(1)
    }
}

/// Removes a directory of plain files.
func removeTree(_ path: String) {
    for name in (try? SystemLedgerIO().listDirectory(path)) ?? [] { _ = unlink(path + "/" + name) }
    _ = rmdir(path)
}

func scratchDirectory(_ label: String) -> String {
    let parentDirectory = arguments.directory
    var template = Array("\(parentDirectory)/ledger-bench-\(label)-XXXXXX".utf8CString)
    guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
        print("ledger-bench: cannot create a directory in \(parentDirectory): errno \(errno)")
        exit(1)
    }
    return String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// Per-append durations of one run, and its rate.
struct Run {
    var total: Duration
    var latencies: [Duration]
    var count: Int
    var perSecond: Double { Double(count) / seconds(total) }
    func percentile(_ p: Double) -> Double {
        let sorted = latencies.sorted()
        guard !sorted.isEmpty else { return 0 }
        return seconds(sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]) * 1e6
    }
}

/// pwrite + fdatasync per record, no ledger: the floor the ledger is compared with.
func rawRun(records: Int, preallocate: Bool) -> Run {
    let dir = scratchDirectory("raw")
    defer { removeTree(dir) }
    let fd = check("open") { try FileDescriptor.open(dir + "/raw.log", flags: O_RDWR | O_CREAT | O_TRUNC) }
    defer { fd.close() }
    if preallocate {
        _ = posix_fallocate(fd.rawValue, 0, off_t(records * recordBytes + 4096))
        _ = fsync(fd.rawValue)
    }
    var record = [UInt8](repeating: 0, count: recordBytes)
    record.replaceSubrange(LedgerFormat.recordHeaderBytes..., with: body)
    var latencies: [Duration] = []
    latencies.reserveCapacity(records)
    let start = MonotonicClock.now()
    record.withUnsafeBytes { raw in
        for i in 0..<records {
            let t = MonotonicClock.now()
            guard pwrite(fd.rawValue, raw.baseAddress, raw.count, off_t(i * recordBytes)) == raw.count,
                  fdatasync(fd.rawValue) == 0 else {
                print("ledger-bench: raw write failed: errno \(errno)")
                exit(1)
            }
            latencies.append(MonotonicClock.now() - t)
        }
    }
    return Run(total: MonotonicClock.now() - start, latencies: latencies, count: records)
}

/// The ledger, one sync per `group` appends (1: appendDurably).
func ledgerRun(records: Int, group: Int, preallocate: Bool) -> Run {
    let dir = scratchDirectory("ledger")
    defer { removeTree(dir) }
    let options = LedgerOptions(diskBudgetBytes: 1 << 30, preallocate: preallocate)
    let (ledger, _, _) = check("open") { try Ledger.open(directory: dir, options: options) }
    defer { ledger.close() }
    var latencies: [Duration] = []
    latencies.reserveCapacity(records / group + 1)
    let start = MonotonicClock.now()
    var written = 0
    check("append") {
        while written < records {
            let t = MonotonicClock.now()
            if group == 1 {
                try ledger.appendDurably(kind: 1, body: body)
                written += 1
            } else {
                for _ in 0..<min(group, records - written) { try ledger.append(kind: 1, body: body) }
                try ledger.sync()
                written += min(group, records - written)
            }
            latencies.append(MonotonicClock.now() - t)
        }
    }
    return Run(total: MonotonicClock.now() - start, latencies: latencies, count: records)
}

func median(_ values: [Double]) -> Double {
    let s = values.sorted()
    return s[s.count / 2]
}

print("ledger-bench: \(arguments.records) records of \(recordBytes) bytes (\(bodyBytes)-byte body) per run, "
      + "\(arguments.rounds) rounds, in \(arguments.directory)")

// Durable appends, one sync each: raw and ledger interleaved.
var rates: [String: [Double]] = [:]
var p99: [String: [Double]] = [:]
for _ in 0..<arguments.rounds {
    for (name, run) in [
        ("raw_growing", { rawRun(records: arguments.records, preallocate: false) }),
        ("ledger_growing", { ledgerRun(records: arguments.records, group: 1, preallocate: false) }),
        ("raw_preallocated", { rawRun(records: arguments.records, preallocate: true) }),
        ("ledger_preallocated", { ledgerRun(records: arguments.records, group: 1, preallocate: true) }),
    ] as [(String, () -> Run)] {
        let r = run()
        rates[name, default: []].append(r.perSecond)
        p99[name, default: []].append(r.percentile(0.99))
    }
}
// Group commit (the ledger's default, preallocated segments).
let groups = [16, 64, 256]
for _ in 0..<arguments.rounds {
    for g in groups {
        let r = ledgerRun(records: arguments.records * g / 4, group: g, preallocate: true)
        rates["group_\(g)", default: []].append(r.perSecond)
        p99["group_\(g)", default: []].append(r.percentile(0.99))
    }
}

// Recovery of a large ledger: written with group commit, then opened cold
// (recovery syncs each segment, drops its cache and reads it from the device).
let recoveryDirectory = scratchDirectory("recovery")
check("build") {
    let (ledger, _, _) = try Ledger.open(directory: recoveryDirectory, options: LedgerOptions(diskBudgetBytes: 1 << 30))
    for i in 0..<arguments.recoveryRecords {
        try ledger.append(kind: 1, body: body)
        if i % 256 == 255 { try ledger.sync() }
    }
    try ledger.sync()
    ledger.close()
}
var recoveryTimes: [Double] = []
var recoveredCount = 0
var segmentCount = 0
for _ in 0..<max(3, arguments.rounds) {
    let start = MonotonicClock.now()
    let (ledger, report, records) = check("recover") {
        try Ledger.open(directory: recoveryDirectory, options: LedgerOptions(diskBudgetBytes: 1 << 30))
    }
    recoveryTimes.append(seconds(MonotonicClock.now() - start))
    recoveredCount = records.count
    segmentCount = report.segments
    ledger.close()
}
removeTree(recoveryDirectory)

// CRC-32C throughput, for the record.
let crcBuffer = [UInt8](repeating: 0x5A, count: 1 << 20)
let crcStart = MonotonicClock.now()
var crcSink: UInt32 = 0
for _ in 0..<256 { crcSink = crcSink &* 31 &+ CRC32C.checksum(crcBuffer) }
let crcGBps = 256.0 * Double(1 << 20) / seconds(MonotonicClock.now() - crcStart) / 1e9

print("")
print(pad("benchmark", 22, left: true) + pad("appends/s", 12) + pad("us/append", 11) + pad("p99 us/sync", 13) + "  what")
func row(_ name: String, _ what: String, _ rates: [String: [Double]], _ p99: [String: [Double]]) {
    let rate = median(rates[name]!)
    print(pad(name, 22, left: true) + pad(fixed(rate, 0), 12) + pad(fixed(1e6 / rate, 1), 11)
          + pad(fixed(median(p99[name]!), 0), 13) + "  " + what)
}
row("raw_growing", "pwrite + fdatasync, file grows", rates, p99)
row("ledger_growing", "appendDurably, preallocate=false", rates, p99)
row("raw_preallocated", "pwrite + fdatasync into fallocated space", rates, p99)
row("ledger_preallocated", "appendDurably, preallocate=true (default)", rates, p99)
for g in groups { row("group_\(g)", "\(g) appends per sync, preallocated", rates, p99) }
let recovery = median(recoveryTimes)
print("recovery: \(recoveredCount) records in \(segmentCount) segments: median \(fixed(recovery * 1000, 1)) ms "
      + "(runs: \(recoveryTimes.map { fixed($0 * 1000, 1) }.joined(separator: ", ")) ms)")
print("crc32c: \(fixed(crcGBps, 2)) GB/s, slicing-by-8 (fold \(String(crcSink, radix: 16)))")

let growingRatio = median(rates["ledger_growing"]!) / median(rates["raw_growing"]!)
let preallocatedRatio = median(rates["ledger_preallocated"]!) / median(rates["raw_preallocated"]!)
let defaultVsRaw = median(rates["ledger_preallocated"]!) / median(rates["raw_growing"]!)
print("")
for name in ["raw_growing", "ledger_growing", "raw_preallocated", "ledger_preallocated"] + groups.map({ "group_\($0)" }) {
    print("RESULT name=\(name)_appends_per_s value=\(fixed(median(rates[name]!), 0))")
    print("RESULT name=\(name)_p99_us value=\(fixed(median(p99[name]!), 0))")
}
print("RESULT name=ledger_vs_raw_growing_ratio value=\(fixed(growingRatio, 3))")
print("RESULT name=ledger_vs_raw_preallocated_ratio value=\(fixed(preallocatedRatio, 3))")
print("RESULT name=ledger_default_vs_raw_growing_ratio value=\(fixed(defaultVsRaw, 3))")
print("RESULT name=recovery_\(recoveredCount)_records_seconds value=\(fixed(recovery, 4))")
print("RESULT name=crc32c_gb_per_s value=\(fixed(crcGBps, 2))")
print("")
print("targets: appendDurably >= 0.8 of raw (like for like): growing \(fixed(growingRatio, 2)) "
      + "\(growingRatio >= 0.8 ? "met" : "NOT met"), preallocated \(fixed(preallocatedRatio, 2)) "
      + "\(preallocatedRatio >= 0.8 ? "met" : "NOT met"); recovery of \(recoveredCount) < 0.5 s: "
      + "\(fixed(recovery, 3)) s \(recovery < 0.5 ? "met" : "NOT met")")
