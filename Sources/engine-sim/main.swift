// engine-sim: the deterministic simulation of the station's core on demand, e.g. a million
// sessions on every core of the machine:
//   swift run -c release engine-sim --seeds 100 --sessions 10000
// Seeds are shared out among `--jobs` worker processes; each seed's result is one line, and a
// failing seed replays alone with `--seed N --seeds 1`.
import EngineSimulation
import Glibc

struct Options {
    var seed: UInt64 = 0x51_0000
    var seeds = 1
    var sessions = 1000
    var canList: Bool?
    var jobs = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    var commitSendCrashes = 0
    var crashPerMillion: Int?

    static let usage = "usage: engine-sim [--seed N] [--seeds K] [--sessions M] [--apollo|--p6x] [--jobs J] [--crash-between-commit-and-send N] [--crash-per-million-effects P]"

    static func parse(_ list: [String]) -> Options {
        var o = Options()
        var args = list
        func value<T: LosslessStringConvertible>(_ what: String) -> T {
            guard !args.isEmpty, let v = T(args.removeFirst()) else { print("engine-sim: \(what) needs a number\n\(usage)"); exit(2) }
            return v
        }
        while !args.isEmpty {
            switch args.removeFirst() {
            case "--seed": o.seed = value("--seed")
            case "--seeds": o.seeds = value("--seeds")
            case "--sessions": o.sessions = value("--sessions")
            case "--jobs": o.jobs = max(1, value("--jobs"))
            case "--crash-between-commit-and-send": o.commitSendCrashes = value("--crash-between-commit-and-send")
            case "--crash-per-million-effects": o.crashPerMillion = value("--crash-per-million-effects")
            case "--apollo": o.canList = false
            case "--p6x": o.canList = true
            default:
                print(usage)
                exit(2)
            }
        }
        return o
    }
}

/// Runs one seed; its line, and its sessions when it passed.
func run(_ s: UInt64, _ o: Options) -> (line: String, sessions: Int?) {
    var settings = SimulationSettings()
    settings.sessions = o.sessions
    settings.terminalCanList = o.canList ?? (s % 2 == 0)
    settings.crashesBetweenCommitAndSend = o.commitSendCrashes
    if let p = o.crashPerMillion { settings.crashPerMillionEffects = p }
    var world = EngineWorld(seed: s, settings: settings)
    do {
        let summary = try world.run()
        return ("seed \(s): ok \(summary)", summary.sessions)
    } catch {
        return ("seed \(s): FAILED \(error)", nil)
    }
}

func writeLine(_ fd: Int32, _ text: String) {
    // One write per line, under PIPE_BUF, so that lines from several workers never interleave.
    var bytes = Array(text.utf8.prefix(4000))
    bytes.append(0x0A)
    var off = 0
    while off < bytes.count {
        let n = bytes[off...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if n < 0 { if errno == EINTR { continue }; return }
        off += n
    }
}

let o = Options.parse(Array(CommandLine.arguments.dropFirst()))
var startTime = timespec()
clock_gettime(CLOCK_MONOTONIC, &startTime)
let jobs = min(o.jobs, o.seeds)
var failures = 0
var total = 0
if jobs == 1 {
    for i in 0..<o.seeds {
        let (line, sessions) = run(o.seed + UInt64(i), o)
        writeLine(1, line)
        if let sessions { total += sessions } else { failures += 1 }
    }
} else {
    // Workers write their lines to one pipe; this process counts them as they come.
    var fds: [Int32] = [0, 0]
    guard pipe(&fds) == 0 else { print("engine-sim: pipe: \(String(cString: strerror(errno)))"); exit(1) }
    var workers: [pid_t] = []
    for w in 0..<jobs {
        let pid = fork()
        if pid < 0 { print("engine-sim: fork: \(String(cString: strerror(errno)))"); exit(1) }
        if pid == 0 {
            close(fds[0])
            var i = w
            while i < o.seeds {
                writeLine(fds[1], run(o.seed + UInt64(i), o).line)
                i += jobs
            }
            _exit(0)
        }
        workers.append(pid)
    }
    close(fds[1])
    var pending: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = read(fds[0], &buffer, buffer.count)
        if n < 0 { if errno == EINTR { continue }; break }
        if n == 0 { break }
        pending += buffer[0..<n]
        while let nl = pending.firstIndex(of: 0x0A) {
            let line = String(decoding: pending[..<nl], as: UTF8.self)
            pending.removeSubrange(...nl)
            writeLine(1, line)
            let words = line.split(separator: " ")
            guard words.first == "seed", words.count > 3 else { continue }
            if words[2] == "ok", words[3].hasPrefix("sessions=") {
                total += Int(words[3].dropFirst("sessions=".count)) ?? 0
            } else {
                failures += 1
            }
        }
    }
    for pid in workers {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        if status != 0 { failures += 1; writeLine(1, "engine-sim: worker \(pid) ended abnormally (status \(status))") }
    }
}
var endTime = timespec()
clock_gettime(CLOCK_MONOTONIC, &endTime)
let seconds = Double(endTime.tv_sec - startTime.tv_sec) + Double(endTime.tv_nsec - startTime.tv_nsec) / 1e9
writeLine(1, "\(o.seeds - failures) passed, \(failures) failed (\(total) sessions) in \((seconds * 10).rounded() / 10) s with \(jobs) worker\(jobs == 1 ? "" : "s")")
exit(failures == 0 ? 0 : 1)
