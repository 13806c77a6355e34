import PaymentEngine
import Platform
import Glibc

/// Log levels with their sd-daemon priority prefixes, so journald keeps the level.
public enum LogLevel: Int, Comparable, Sendable {
    case error = 3, warning = 4, info = 6, debug = 7

    public static func < (a: LogLevel, b: LogLevel) -> Bool { a.rawValue < b.rawValue }

    /// The level a notice of this severity is logged at.
    public init(_ severity: NoticeSeverity) {
        switch severity {
        case .error: self = .error
        case .warning: self = .warning
        case .info: self = .info
        }
    }

    public init?(name: String) {
        switch name {
        case "error": self = .error
        case "warning": self = .warning
        case "info": self = .info
        case "debug": self = .debug
        default: return nil
        }
    }

    /// The name `init?(name:)` reads (`log.level`'s values, `watch` events' `level`).
    public var name: String {
        switch self {
        case .error: return "error"
        case .warning: return "warning"
        case .info: return "info"
        case .debug: return "debug"
        }
    }
}

/// Standard-error logging, one line per event. Callers pass only masked card data
/// (the codec's `CardData` masks); nothing here formats raw payloads.
///
/// Every message is escaped (`LogText.escaped`) at this sink, whatever its source: a line break
/// or control character from a terminal, the cloud or a file can never start a line of its own
/// (with a priority prefix of its choosing). Writes never block (`LogSink`): lines a slow
/// destination cannot take wait in a bounded backlog, beyond which they are dropped and counted.
public enum Log {
    nonisolated(unsafe) public static var threshold = LogLevel.info
    /// Chosen from what standard error is at the first line logged. What is still queued when
    /// the process exits is waited for, at most `LogSinkLimits.exitFlushTimeout`.
    nonisolated(unsafe) static let sink: LogSink = {
        let s = LogSink()
        atexit { Log.sink.drain(timeout: LogSinkLimits.exitFlushTimeout) }
        return s
    }()

    /// Sees every line at info level or above, and debug lines when the threshold shows them,
    /// before escaping (the diagnostic socket's `watch` streams them as JSON strings).
    nonisolated(unsafe) public static var observer: ((LogLevel, String) -> Void)?

    public static func write(_ level: LogLevel, _ message: String) {
        if let observer, level <= max(threshold, .info) { observer(level, message) }
        guard level <= threshold else { return }
        // One write per line so concurrent writers (the simulator in the demo) do not interleave mid-line.
        sink.emit(line(level, message))
    }

    /// The bytes of one log line: priority prefix, the escaped message, newline.
    public static func line(_ level: LogLevel, _ message: String) -> [UInt8] {
        Array("<\(level.rawValue)>\(LogText.escaped(message))\n".utf8)
    }

    /// Text that is several lines by design (the usage after a refused argument): each line is
    /// logged on its own, escaped and with its own prefix, so none can pick its priority.
    public static func lines(_ level: LogLevel, _ text: String) {
        for l in text.split(separator: "\n", omittingEmptySubsequences: false) { write(level, String(l)) }
    }

    /// From now on the backlog is also written whenever the loop sees standard error writable.
    public static func attach(to loop: EventLoop) { sink.attach(to: loop) }

    public static func error(_ m: String) { write(.error, m) }
    public static func warning(_ m: String) { write(.warning, m) }
    public static func info(_ m: String) { write(.info, m) }
    public static func debug(_ m: String) { write(.debug, m) }
}
