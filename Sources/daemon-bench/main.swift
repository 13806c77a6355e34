// daemon-bench: footprint and latency of a paybridged binary (build it with
// `--static-swift-stdlib` for the figures that count) against the simulated terminal on a
// pty and the simulated cloud on loopback, both hosted in this process on one event loop.
//
//   size        the binary's bytes, and stripped if `strip` is installed
//   ready       spawn → READY=1 on NOTIFY_SOCKET, fresh state directory, a terminal that never answers
//   idle        one full session (approve, charge, capture, settlement delivered), then VmRSS and
//               wake-ups per second over a quiet window (context switches of all the daemon's threads)
//   latency     Card Read frame handed to the pty by the terminal (the moment before its write) →
//               Auth Session frame read by it, with the cloud answering at once; the bridge's own
//               share is that minus the cloud's time (request's last byte in → answer written).
//               Declined cards, so each round is short. `--events FILE` keeps each round's moments
//               for lining up with a trace of the daemon (perf record -k mono, strace -ttt).
//
// The daemon runs with `charger.io = simulated`: `charger-sim` must be built beside it. Its
// figures are the daemon's own process; charger-sim's (a child a real charger does not have)
// are not counted.
//
// Ends with each target met or not; exit status 3 when one is missed.
import Glibc
import JSONLines
import Platform
import PSPCodec
import TerminalSim
import CloudSim
import Timebase

struct Options {
    var daemon = ChildProcess.executableDirectory() + "/paybridged"
    var readyRuns = 20
    var idleSeconds = 20
    var rounds = 200
    /// Where to copy the idle daemon's /proc/PID/smaps, for a per-file look.
    var smapsCopy: String?
    /// Which measurements to run (comma-separated: size, ready, idle, latency); all by default.
    var only: Set<String> = ["size", "ready", "idle", "latency"]
    /// Where to write each latency round's four moments as wall-clock microseconds (one line per
    /// card: Card Read written, Authorize's last byte in, answer written, Auth Session read), to
    /// line them up with an `strace -ttt` of the daemon (a `--daemon` wrapper script).
    var events: String?
    /// `--cloud-protocol`: how the daemon speaks to the hosted cloud-sim (both bindings on one port).
    var cloudProtocol = "ocpp-j"
    static func parse(_ list: [String]) -> Options {
        var o = Options()
        var a = list
        let usage = "usage: daemon-bench [--daemon PATH] [--ready-runs N] [--idle-seconds S] [--rounds N] [--smaps-copy FILE] [--only size,ready,idle,latency] [--events FILE] [--cloud-protocol ocpp-j|https]"
        while !a.isEmpty {
            let f = a.removeFirst()
            guard !a.isEmpty else { print(usage); exit(2) }
            let v = a.removeFirst()
            switch f {
            case "--daemon": o.daemon = v
            case "--ready-runs": o.readyRuns = Int(v) ?? o.readyRuns
            case "--idle-seconds": o.idleSeconds = Int(v) ?? o.idleSeconds
            case "--rounds": o.rounds = Int(v) ?? o.rounds
            case "--smaps-copy": o.smapsCopy = v
            case "--only": o.only = Set(v.split(separator: ",").map(String.init))
            case "--events": o.events = v
            case "--cloud-protocol":
                guard v == "ocpp-j" || v == "https" else { print(usage); exit(2) }
                o.cloudProtocol = v
            default: print("unknown option \(f)\n\(usage)"); exit(2)
            }
        }
        return o
    }
}

/// Each target's outcome, printed together at the end.
nonisolated(unsafe) var verdicts: [(what: String, met: Bool)] = []
func verdict(_ what: String, _ met: Bool) { verdicts.append((what, met)) }

/// Children to kill on the way out, so a failed run leaves no daemon behind.
nonisolated(unsafe) var children: [ChildProcess] = []

func fail(_ s: String) -> Never {
    print("daemon-bench: \(s)")
    for c in children { c.signal(SIGKILL) }
    exit(1)
}

func readText(_ path: String) -> String? {
    guard let fd = try? FileDescriptor.open(path, flags: O_RDONLY | O_CLOEXEC) else { return nil }
    defer { fd.close() }
    var out: [UInt8] = []
    while case .bytes(let b)? = try? fd.read(maxCount: 65536) { out += b }
    return String(decoding: out, as: UTF8.self)
}

func writeText(_ path: String, _ text: String) {
    guard let fd = try? FileDescriptor.open(path, flags: O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode: 0o644) else { fail("cannot write \(path)") }
    defer { fd.close() }
    do { try fd.writeAll(Array(text.utf8), timeout: .seconds(5)) } catch { fail("write \(path): \(error)") }
}

func fileSize(_ path: String) -> Int? {
    var st = stat()
    return stat(path, &st) == 0 ? Int(st.st_size) : nil
}

func tempDir(_ tag: String) -> String {
    var template = Array("/tmp/daemon-bench-\(tag)-XXXXXX".utf8CString)
    guard let p = mkdtemp(&template) else { fail("mkdtemp: errno \(errno)") }
    return String(cString: p)
}

func removeTree(_ path: String) {
    if let c = try? ChildProcess.spawn("/bin/rm", ["-rf", path], captureStdout: false, pipeStdin: false) { _ = c.wait(timeout: .seconds(10)) }
}

/// One status field in kB from /proc/PID/status.
func statusKB(_ pid: Int32, _ field: String) -> Int? {
    guard let text = readText("/proc/\(pid)/status") else { return nil }
    for line in text.split(separator: "\n") where line.hasPrefix(field + ":") {
        return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
    }
    return nil
}

/// Voluntary and involuntary context switches summed over every thread of `pid`: each time a
/// thread blocks and is woken counts one voluntary switch.
func contextSwitches(_ pid: Int32) -> (voluntary: Int, involuntary: Int, threads: Int) {
    var v = 0, n = 0, threads = 0
    guard let dir = opendir("/proc/\(pid)/task") else { return (0, 0, 0) }
    defer { closedir(dir) }
    while let e = readdir(dir) {
        let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        guard Int(name) != nil, let text = readText("/proc/\(pid)/task/\(name)/status") else { continue }
        threads += 1
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":")
            guard parts.count == 2, let value = Int(parts[1].filter { $0 != " " && $0 != "\t" }) else { continue }
            if parts[0] == "voluntary_ctxt_switches" { v += value }
            if parts[0] == "nonvoluntary_ctxt_switches" { n += value }
        }
    }
    return (v, n, threads)
}

func ourEnvironment(adding extra: [String]) -> [String] {
    var env: [String] = []
    var p = environ
    while let entry = p.pointee {
        let s = String(cString: entry)
        if !s.hasPrefix("NOTIFY_SOCKET=") && !s.hasPrefix("WATCHDOG_") { env.append(s) }
        p += 1
    }
    return env + extra
}

func percentile(_ xs: [Double], _ p: Double) -> Double {
    guard !xs.isEmpty else { return .nan }
    let s = xs.sorted()
    let i = min(s.count - 1, max(0, Int((p / 100 * Double(s.count)).rounded(.up)) - 1))
    return s[i]
}

func ms(_ d: Duration) -> Double {
    let c = d.components
    return Double(c.seconds) * 1000 + Double(c.attoseconds) / 1e15
}

func fmt(_ x: Double, _ digits: Int = 2) -> String {
    var s = String(Int((x * pow(10, Double(digits))).rounded()))
    while s.count <= digits { s = "0" + s }
    return digits == 0 ? s : String(s.dropLast(digits)) + "." + String(s.suffix(digits))
}

// MARK: size

func measureSize(_ o: Options) {
    guard let size = fileSize(o.daemon) else { fail("\(o.daemon): not found (build it first)") }
    var line = "size: \(o.daemon) \(fmt(Double(size) / 1_048_576, 1)) MiB"
    for strip in ["/usr/bin/strip", "/usr/bin/llvm-strip"] where access(strip, X_OK) == 0 {
        let dir = tempDir("strip")
        defer { removeTree(dir) }
        if let c = try? ChildProcess.spawn(strip, ["-o", dir + "/stripped", o.daemon], captureStdout: false, pipeStdin: false),
           c.wait(timeout: .seconds(60)) == 0, let s = fileSize(dir + "/stripped") {
            line += ", stripped \(fmt(Double(s) / 1_048_576, 1)) MiB"
        }
        break
    }
    let libs = (readText("/proc/self/maps") != nil) ? dynamicLibraries(o.daemon) : []
    print(line + (libs.isEmpty ? "" : "; links \(libs.joined(separator: " "))"))
}

/// The shared libraries the binary needs (from `ldd`, when present): a static Swift stdlib
/// leaves only the C libraries.
func dynamicLibraries(_ path: String) -> [String] {
    guard access("/usr/bin/ldd", X_OK) == 0, let c = try? ChildProcess.spawn("/usr/bin/ldd", [path], pipeStdin: false) else { return [] }
    var out: [String] = []
    while let l = try? c.readLine(timeout: .seconds(10)) {
        if let name = l.split(whereSeparator: { $0 == " " || $0 == "\t" }).first, name.includes(".so") { out.append(String(name.split(separator: "/").last ?? name)) }
    }
    _ = c.wait(timeout: .seconds(5))
    return out.filter { !$0.hasPrefix("linux-vdso") && !$0.hasPrefix("ld-linux") }
}

/// RSS by where the pages come from, from /proc/PID/smaps, in kB.
func memoryBreakdown(_ pid: Int32, daemonPath: String) -> [(String, Int)] {
    guard let text = readText("/proc/\(pid)/smaps") else { return [] }
    let base = daemonPath.split(separator: "/").last.map(String.init) ?? daemonPath
    let runtime = ["libc.so", "libm.so", "libstdc++", "libgcc_s", "ld-linux"]
    let tls = ["libcurl.so", "libssl.so", "libcrypto.so", "libz.so", "libzstd.so", "libnghttp2"]
    var sums: [String: Int] = [:]
    var current = "anonymous"
    var privateDirty = 0
    for line in text.split(separator: "\n") {
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        if let first = fields.first, first.contains("-"), !first.hasSuffix(":") {
            let name = fields.count > 5 ? String(fields[5]) : ""
            if name.hasSuffix("/" + base) || name == base { current = "the daemon's binary" }
            else if name.isEmpty || name.hasPrefix("[") { current = "heap, stacks, anonymous" }
            else if runtime.contains(where: { name.includes($0) }) { current = "C runtime (libc, libm, libstdc++, ld.so)" }
            else if tls.contains(where: { name.includes($0) }) { current = "libcurl, OpenSSL, zlib, nghttp2" }
            else { current = "libcurl's optional dependencies (gnutls, krb5, ldap, rtmp, ssh2, ...)" }
        } else if fields.first == "Rss:", fields.count > 1, let kb = Int(fields[1]) {
            sums[current, default: 0] += kb
        } else if fields.first == "Private_Dirty:", fields.count > 1, let kb = Int(fields[1]) {
            privateDirty += kb
        }
    }
    return sums.sorted { $0.1 > $1.1 } + [("private dirty (all of the above)", privateDirty)]
}

// MARK: ready

func bindDatagram(_ path: String) -> Int32 {
    let s = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard s >= 0 else { fail("socket: errno \(errno)") }
    var a = sockaddr_un()
    a.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &a.sun_path) { dst in for (i, b) in path.utf8.enumerated() { dst[i] = b } }
    let ok = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
    guard ok == 0 else { fail("bind \(path): errno \(errno)") }
    return s
}

func measureReady(_ o: Options) {
    var samples: [Double] = []
    for _ in 0..<o.readyRuns {
        let dir = tempDir("ready")
        defer { removeTree(dir) }
        let sock = bindDatagram(dir + "/notify")
        defer { close(sock) }
        // A terminal that never answers: READY must not wait for a handshake.
        guard let pty = try? PseudoTerminal.open() else { fail("pty") }
        defer { pty.close() }
        let t0 = MonotonicClock.now()
        guard let p = try? ChildProcess.spawn(o.daemon, ["--terminal", "serial:\(pty.path)", "--family", "p6x", "--state", dir + "/state",
                                                          "--charger-io", "simulated", "--sim-ev", "none", "--log-level", "error"],
                                              environment: ourEnvironment(adding: ["NOTIFY_SOCKET=\(dir)/notify"]),
                                              captureStdout: false, pipeStdin: false) else { fail("spawn \(o.daemon)") }
        children = [p]
        var ready: Instant?
        var buf = [UInt8](repeating: 0, count: 4096)
        while ready == nil, MonotonicClock.now() - t0 < .seconds(10) {
            var pfd = pollfd(fd: sock, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 100) > 0 else { continue }
            let n = buf.withUnsafeMutableBytes { recv(sock, $0.baseAddress, $0.count, 0) }
            if n > 0, String(decoding: buf[0..<n], as: UTF8.self).split(separator: "\n").contains("READY=1") { ready = MonotonicClock.now() }
        }
        p.signal(SIGTERM)
        _ = p.wait(timeout: .seconds(10))
        guard let ready else { fail("no READY=1 within 10 s") }
        samples.append(ms(ready - t0))
    }
    let median = percentile(samples, 50)
    print("ready: spawn → READY=1 over \(samples.count) starts: median \(fmt(median, 1)) ms, max \(fmt(samples.max() ?? 0, 1)) ms (target < 200 ms)")
    verdict("spawn → READY=1 median \(fmt(median, 1)) ms < 200 ms", median < 200)
}

// MARK: bench world

/// terminal-sim's core on a pty and cloud-sim's server on loopback, in this process.
final class World {
    let loop: EventLoop
    let shell: SimulatorShell
    let cloud: CloudServer
    let dir: String
    var records: [String] = []
    var cloudActions: [String] = []
    var daemon: ChildProcess?

    init(tag: String, scenario: SimScenario) {
        dir = tempDir(tag)
        do {
            loop = try EventLoop()
            shell = try SimulatorShell(loop: loop, mode: .pty(link: dir + "/ttyPSP"), scenario: scenario, record: nil)
            shell.readsStandardInput = false
            cloud = try CloudServer(loop: loop, port: 0, core: CloudSimCore(station: "BENCH"), record: nil, limits: CloudServerLimits())
            cloud.readsStandardInput = false
            try shell.start()
            try cloud.start()
        } catch { fail("simulators: \(error)") }
        shell.onRecord = { [unowned self] r in if case .object(let f) = r, let e = f.first(where: { $0.0 == "event" })?.1.stringValue { self.records.append(e) } }
        cloud.onRecord = { [unowned self] r in
            if case .object(let f) = r, let a = f.first(where: { $0.0 == "action" })?.1.stringValue { self.cloudActions.append(a) }
        }
    }

    func startDaemon(_ o: Options, extra: [String]) {
        do {
            daemon = try ChildProcess.spawn(o.daemon, ["--terminal", "serial:\(dir)/ttyPSP", "--family", "p6x", "--state", dir + "/state",
                                                       "--cloud", o.cloudProtocol == "https" ? "http://127.0.0.1:\(cloud.port)" : "ws://127.0.0.1:\(cloud.port)/ocpp",
                                                       "--cloud-protocol", o.cloudProtocol, "--station", "BENCH",
                                                       "--log-level", "warning"] + extra,
                                            environment: ourEnvironment(adding: []), captureStdout: false, pipeStdin: false)
            children = [daemon!]
        } catch { fail("spawn \(o.daemon): \(error)") }
    }

    @discardableResult
    func run(for d: Duration, until condition: () -> Bool = { false }) -> Bool {
        (try? loop.run(until: condition, deadline: MonotonicClock.now() + d)) ?? false
    }

    func finish() {
        daemon?.signal(SIGTERM)
        _ = daemon?.wait(timeout: .seconds(10))
        removeTree(dir)
    }
}

// MARK: idle

func measureIdle(_ o: Options) {
    var scenario = SimScenario.defaults(for: .p6x)
    scenario.sessions = [ScriptedSession(.approve)]
    scenario.fallback = ScriptedSession(.noCard)
    scenario.tapDelay = 200
    let w = World(tag: "idle", scenario: scenario)
    defer { w.finish() }
    w.startDaemon(o, extra: ["--charger-io", "simulated", "--sim-ev", "plug=200,charge=2000,power=3600000"])
    guard let pid = w.daemon?.pid else { fail("no daemon") }
    guard w.run(for: .seconds(60), until: { w.records.contains("committed") && w.cloudActions.contains("NotifySettlement") }) else {
        fail("the session did not settle: terminal \(w.records), cloud \(w.cloudActions)")
    }
    // Let the uplink and the terminal go quiet, then watch.
    w.run(for: .seconds(3))
    let rss0 = statusKB(pid, "VmRSS") ?? 0
    let c0 = contextSwitches(pid)
    let t0 = MonotonicClock.now()
    w.run(for: .seconds(Int64(o.idleSeconds)))
    let elapsed = ms(MonotonicClock.now() - t0) / 1000
    let c1 = contextSwitches(pid)
    let rss1 = statusKB(pid, "VmRSS") ?? 0
    let hwm = statusKB(pid, "VmHWM") ?? 0
    print("idle: uplink \(o.cloudProtocol)")
    print("idle: after one settled session: RSS \(fmt(Double(rss0) / 1024, 1)) MiB → \(fmt(Double(rss1) / 1024, 1)) MiB after \(Int(elapsed)) s idle, peak \(fmt(Double(hwm) / 1024, 1)) MiB, \(c1.threads) thread(s) (target ≤ 16 MB)")
    // The strict reading of "16 MB": 16,000,000 bytes (VmRSS is in KiB).
    let worst = max(rss0, rss1)
    verdict("idle RSS \(fmt(Double(worst) * 1024 / 1_000_000, 2)) MB ≤ 16 MB (16,000,000 bytes)", worst * 1024 <= 16_000_000)
    let wake = Double(c1.voluntary - c0.voluntary) / elapsed
    if let copy = o.smapsCopy, let text = readText("/proc/\(pid)/smaps") { writeText(copy, text) }
    for (what, kb) in memoryBreakdown(pid, daemonPath: o.daemon) { print("idle:   \(fmt(Double(kb) / 1024, 1)) MiB  \(what)") }
    print("idle: wake-ups \(fmt(wake)) /s (voluntary context switches, all threads; involuntary \(fmt(Double(c1.involuntary - c0.involuntary) / elapsed)) /s) on serial, terminal scanning for a card (target ≤ 2 /s)")
    verdict("idle wake-ups \(fmt(wake)) /s ≤ 2 /s", wake <= 2)
}

// MARK: latency

func measureLatency(_ o: Options) {
    var scenario = SimScenario.defaults(for: .p6x)
    scenario.fallback = ScriptedSession(.decline(reason: 5))
    scenario.tapDelay = 5
    scenario.authDelay = 1
    let w = World(tag: "latency", scenario: scenario)
    defer { w.finish() }

    var cardReadAt: Instant?
    var cloudTime: Duration?
    var toCloud: Duration?
    var totals: [Double] = [], bridge: [Double] = [], clouds: [Double] = [], inbound: [Double] = [], outbound: [Double] = []
    var hostFrames = PSPFrameDecoder()
    func frames(_ bytes: [UInt8], _ d: inout PSPFrameDecoder) -> [UInt8] {
        d.append(contentsOf: bytes)
        var headers: [UInt8] = []
        while let e = d.next() { if case .frame(let f) = e { headers.append(f.header) } }
        return headers
    }
    var terminalFrames = PSPFrameDecoder()
    // Each round's moments for `--events`, CLOCK_MONOTONIC nanoseconds (`perf record -k mono`'s
    // clock; the first line gives CLOCK_REALTIME − CLOCK_MONOTONIC for `strace -ttt`).
    var receivedAt: Instant?, answeredAt: Instant?
    var cardReadMono: Instant?
    var eventLines: [String] = []
    if o.events != nil {
        var wall = timespec()
        clock_gettime(CLOCK_REALTIME, &wall)
        let mono = MonotonicClock.now()
        eventLines.append("# wall-mono ns \(Int64(wall.tv_sec) * 1_000_000_000 + Int64(wall.tv_nsec) - Int64(mono.nanoseconds))")
        eventLines.append("# cardReadWritten authorizeReceived answerWritten authSessionRead (CLOCK_MONOTONIC ns)")
    }
    // Taken just before the write: the daemon, woken by it, may run first on a busy CPU, and a
    // moment taken after the write returned would leave out what it did meanwhile.
    w.shell.beforeWrite = { bytes in
        if frames(bytes, &terminalFrames).contains(0x34) {
            cardReadAt = MonotonicClock.now(); cloudTime = nil
            cardReadMono = cardReadAt; receivedAt = nil; answeredAt = nil
        }
    }
    w.shell.onReceive = { bytes in
        let now = MonotonicClock.now()
        guard frames(bytes, &hostFrames).contains(0x36), let start = cardReadAt else { return }
        cardReadAt = nil
        let total = now - start
        totals.append(ms(total))
        let c = cloudTime ?? .zero
        clouds.append(ms(c))
        bridge.append(ms(total - c))
        inbound.append(ms(toCloud ?? .zero))
        outbound.append(ms(total - c - (toCloud ?? .zero)))
        if o.events != nil, let c = cardReadMono, let r = receivedAt, let a = answeredAt {
            eventLines.append("\(c.nanoseconds) \(r.nanoseconds) \(a.nanoseconds) \(now.nanoseconds)")
        }
    }
    w.cloud.onAnswered = { record, received in
        guard case .object(let f) = record, f.first(where: { $0.0 == "action" })?.1.stringValue == "Authorize", cardReadAt != nil else { return }
        let answered = MonotonicClock.now()
        cloudTime = answered - received
        toCloud = received - cardReadAt!
        receivedAt = received
        answeredAt = answered
    }
    w.startDaemon(o, extra: ["--charger-io", "simulated", "--sim-ev", "none"])
    let warmUp = 3
    guard w.run(for: .seconds(Int64(o.rounds) * 2 + 30), until: { totals.count >= o.rounds + warmUp }) else {
        fail("only \(totals.count) rounds completed")
    }
    let t = Array(totals.dropFirst(warmUp)), b = Array(bridge.dropFirst(warmUp)), c = Array(clouds.dropFirst(warmUp))
    let i = Array(inbound.dropFirst(warmUp)), x = Array(outbound.dropFirst(warmUp))
    print("latency: Card Read → Auth Session over \(t.count) cards (cloud answering at once, loopback HTTP, write-ahead fdatasync included):")
    print("latency:   total   p50 \(fmt(percentile(t, 50), 3)) ms  p99 \(fmt(percentile(t, 99), 3)) ms  max \(fmt(t.max() ?? 0, 3)) ms")
    print("latency:   cloud   p50 \(fmt(percentile(c, 50), 3)) ms  p99 \(fmt(percentile(c, 99), 3)) ms")
    print("latency:   Card Read → Authorize at the cloud  p50 \(fmt(percentile(i, 50), 3)) ms  p99 \(fmt(percentile(i, 99), 3)) ms")
    print("latency:   cloud's answer → Auth Session       p50 \(fmt(percentile(x, 50), 3)) ms  p99 \(fmt(percentile(x, 99), 3)) ms")
    print("latency:   bridge  p50 \(fmt(percentile(b, 50), 3)) ms  p99 \(fmt(percentile(b, 99), 3)) ms  max \(fmt(b.max() ?? 0, 3)) ms (target p99 < 2 ms)")
    verdict("bridge latency p99 \(fmt(percentile(b, 99), 3)) ms < 2 ms", percentile(b, 99) < 2)
    if let path = o.events { writeText(path, eventLines.joined(separator: "\n") + "\n") }
}

// MARK: main

do { try Signals.ignore(SIGPIPE) } catch { fail("\(error)") }
let options = Options.parse(Array(CommandLine.arguments.dropFirst()))
// The daemon runs with charger.io = simulated, which starts charger-sim from beside it.
do {
    let dir = options.daemon.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
    let sim = (dir.isEmpty ? "." : dir) + "/charger-sim"
    if access(sim, X_OK) != 0 { fail("\(sim) not found: build it too (swift build -c release --static-swift-stdlib --product charger-sim)") }
}
// A binary linked moments ago sits in dirty page cache, and smaps counts its mapped pages as
// private dirty until writeback: flush first so the figures are those of an installed binary.
sync()
if options.only.contains("size") { measureSize(options) }
if options.only.contains("ready") { measureReady(options) }
if options.only.contains("idle") { measureIdle(options) }
if options.only.contains("latency") { measureLatency(options) }
print("targets:")
for v in verdicts { print("targets:   \(v.met ? "met    " : "NOT MET") \(v.what)") }
// A missed target is a finding, not a crash of the benchmark: exit 3 so a script notices.
exit(verdicts.allSatisfy(\.met) ? 0 : 3)
