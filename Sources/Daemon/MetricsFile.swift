import DaemonLog
import Glibc
import Platform
import Timebase

/// Why the metrics file was not written this time. The daemon keeps running either way: the file
/// is for a monitoring system, payments do not depend on it.
public enum MetricsFileError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The temporary file beside the metrics file could not be created (a missing directory, no
    /// permission, a read-only file system); `open`'s errno.
    case cannotCreate(path: String, errno: Int32)
    /// The text could not be written to the temporary file, or its mode set (a full disk:
    /// `ENOSPC`; a failing one: `EIO`); the errno.
    case cannotWrite(path: String, errno: Int32)
    /// The temporary file could not be renamed over the metrics file; `rename`'s errno.
    case cannotRename(path: String, errno: Int32)

    /// For the log: the path and the C library's reason.
    public var description: String {
        switch self {
        case let .cannotCreate(path, e): return "cannot create \(path): \(String(cString: strerror(e)))"
        case let .cannotWrite(path, e): return "cannot write \(path): \(String(cString: strerror(e)))"
        case let .cannotRename(path, e): return "cannot rename over \(path): \(String(cString: strerror(e)))"
        }
    }
}

/// What the log says about the metrics file's writes, as a pure value (outcomes in, what to say
/// out). Every failure is counted; a reason is logged the first time it occurs in a run of
/// failures, so a full disk says so once rather than every interval, while a second, different
/// reason is still heard. A write that succeeds after failures is logged and ends the run: the
/// next failure is news again.
public struct MetricsFileOutcomes: Equatable, Sendable {
    /// What the shell logs.
    public enum Notice: Equatable, Sendable {
        /// A failure whose reason was not yet logged in this run of failures.
        case failed(MetricsFileError)
        /// Written again after `failures` failed writes in a row.
        case recovered(failures: Int)
    }

    /// Files written.
    public private(set) var writes = 0
    /// Writes that failed, since start.
    public private(set) var failures = 0
    /// Failed writes since the last one that succeeded.
    public private(set) var failuresInARow = 0
    /// The reasons logged in the current run of failures (bounded: three cases times the errnos).
    public private(set) var loggedInThisRun: Set<MetricsFileError> = []

    public init() {}

    /// One write's outcome (nil: written); what to log, if anything.
    public mutating func record(_ error: MetricsFileError?) -> Notice? {
        guard let error else {
            writes += 1
            defer { failuresInARow = 0; loggedInThisRun = [] }
            return failuresInARow > 0 ? .recovered(failures: failuresInARow) : nil
        }
        failures += 1
        failuresInARow += 1
        return loggedInThisRun.insert(error).inserted ? .failed(error) : nil
    }
}

/// Writes a text file the way node_exporter's textfile collector expects it: the whole text in
/// a temporary file in the same directory, then renamed over the target, so a reader sees the
/// old file or the new one, never a part.
public enum MetricsFileWriter {
    /// Appended to the target's name for the temporary file. The collector reads `*.prom` only,
    /// so it never picks up a half-written temporary.
    public static let temporarySuffix = ".tmp"
    /// The file's mode: readable by the collector's user (node_exporter rarely runs as root).
    public static let mode: mode_t = 0o644

    /// Writes `text` to `path` atomically, mode 0644 whatever the umask. Not synced: the file is
    /// rewritten every interval and a crash at worst leaves the previous one, while an fdatasync
    /// on the event loop could hold up payments behind a slow disk. A temporary left by a crash
    /// (or planted) is removed first and the new one created exclusively, never through a link.
    public static func write(_ text: String, to path: String) throws(MetricsFileError) {
        let tmp = path + temporarySuffix
        unlink(tmp)
        let fd: FileDescriptor
        do {
            fd = try FileDescriptor.open(tmp, flags: O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NOCTTY, mode: mode)
        } catch { throw .cannotCreate(path: tmp, errno: error.errno) }
        var failure: MetricsFileError?
        // The umask (systemd's UMask=, say) must not hide the file from the collector.
        if fchmod(fd.rawValue, mode) != 0 { failure = .cannotWrite(path: tmp, errno: errno) }
        if failure == nil {
            let bytes = Array(text.utf8)
            var offset = 0
            bytes.withUnsafeBytes { all in
                while offset < all.count {
                    do throws(SystemError) {
                        let n = try fd.write(UnsafeRawBufferPointer(rebasing: all[offset...]))
                        // A regular file takes something or fails; nothing taken would loop forever.
                        guard n > 0 else { failure = .cannotWrite(path: tmp, errno: EIO); return }
                        offset += n
                    } catch {
                        failure = .cannotWrite(path: tmp, errno: error.errno)
                        return
                    }
                }
            }
        }
        fd.close()
        if failure == nil, rename(tmp, path) != 0 { failure = .cannotRename(path: path, errno: errno) }
        if let failure {
            unlink(tmp)
            throw failure
        }
    }
}

/// `diagnostics.metrics_file`: the `metrics` command's Prometheus text written to a file every
/// interval on the station's loop (once at start, then every `interval`). A write that fails is
/// counted and logged as `MetricsFileOutcomes` decides, and tried again at the next interval.
public final class MetricsFile {
    /// The file written.
    public let path: String
    /// How often.
    public let interval: Duration
    /// Writes and failures so far.
    public private(set) var outcomes = MetricsFileOutcomes()

    let loop: EventLoop
    let text: () -> String
    let log: (LogLevel, String) -> Void
    var timer: TimerToken?

    /// `text` builds the file's content at each write; `log` takes what is said about failures.
    public init(loop: EventLoop, path: String, interval: Duration, text: @escaping () -> String,
                log: @escaping (LogLevel, String) -> Void) {
        self.loop = loop
        self.path = path
        self.interval = interval
        self.text = text
        self.log = log
    }

    /// The deadline after `deadline`: one interval on, or one interval from `now` when the loop
    /// fell behind by more than that (no burst of writes to catch up).
    public static func nextWrite(after deadline: Instant, now: Instant, interval: Duration) -> Instant {
        let next = deadline + interval
        return next > now ? next : now + interval
    }

    /// Writes now and schedules the following writes.
    public func start() {
        guard timer == nil else { return }
        let now = MonotonicClock.now()
        writeNow()
        schedule(Self.nextWrite(after: now, now: now, interval: interval))
    }

    /// No more writes; the file stays as last written.
    public func stop() {
        if let timer { loop.cancel(timer) }
        timer = nil
    }

    func schedule(_ deadline: Instant) {
        timer = loop.schedule(at: deadline) { [weak self] in
            guard let self else { return }
            self.writeNow()
            self.schedule(Self.nextWrite(after: deadline, now: MonotonicClock.now(), interval: self.interval))
        }
    }

    /// One write, counted and logged.
    public func writeNow() {
        var failure: MetricsFileError?
        do { try MetricsFileWriter.write(text(), to: path) } catch { failure = error }
        switch outcomes.record(failure) {
        case .failed(let e)?:
            log(.warning, "metrics file: \(e); payments are not affected, retrying every \(interval.components.seconds) s (logged once per reason)")
        case .recovered(let n)?:
            log(.info, "metrics file: \(path) written again after \(n) failed attempts")
        case nil:
            break
        }
    }
}

extension StationDaemon {
    /// `diagnostics.metrics_file`, when set: the file written from the diagnostics' metrics, with
    /// or without the socket.
    func startMetricsFile(_ diagnostics: StationDiagnostics) {
        guard let path = running.metricsFile else { return }
        let file = MetricsFile(loop: loop, path: path, interval: .seconds(running.metricsIntervalSeconds),
                               text: { [unowned diagnostics] in diagnostics.metrics().prometheusText() },
                               log: { Log.write($0, $1) })
        metricsFile = file
        Log.info("metrics file: writing \(path) every \(running.metricsIntervalSeconds) s")
        file.start()
    }
}
