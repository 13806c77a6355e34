import Glibc
import JSONLines
import Platform
import Timebase

/// Why a command to the CSMS did not go through.
public enum CSMSProcessError: Error, CustomStringConvertible {
    /// The script answered `error CMD: reason`.
    case refused(command: String, answer: String)
    /// No `ok` within the timeout.
    case noAcknowledgement(command: String)

    public var description: String {
        switch self {
        case let .refused(c, a): return "csms refused \(c): \(a)"
        case .noAcknowledgement(let c): return "no acknowledgement of \(c)"
        }
    }
}

/// Tests/Scripts/ocpp-csms.py as a child process: the PyPI `ocpp` package's v21 ChargePoint
/// (every message checked against the official 2.1 schemas) behind `websockets`, on loopback.
/// Test support for the suites that drive the uplink or the daemon in process.
public final class CSMSProcess {
    public let process: ChildProcess
    public let port: Int
    public let record: String
    /// Lines of stdout that are not acknowledgements (`response A {...}`, `callerror A C`, ...).
    public var asides: [String] = []

    static var scripts: String {
        #filePath.split(separator: "/", omittingEmptySubsequences: false).dropLast(3).joined(separator: "/") + "/Tests/Scripts"
    }

    /// nil (and why printed) when python3 or its `ocpp`/`websockets` packages are missing.
    public init?(_ extra: [String] = [], record: String) throws {
        self.record = record
        process = try ChildProcess.spawn("/usr/bin/env", ["python3", Self.scripts + "/ocpp-csms.py", "--host", "127.0.0.1", "--port", "0",
                                                          "--record", record] + extra, pipeStdin: true)
        let line = try process.readLine(timeout: .seconds(20))
        guard let line, line.hasPrefix("listening "), let p = line.split(separator: ":").last.flatMap({ Int($0) }) else {
            print("OCPP-J CSMS tests skipped: ocpp-csms.py did not start (pip install ocpp==2.1.0 websockets); it said \(line ?? "nothing")")
            process.terminate()
            return nil
        }
        port = p
    }

    deinit {
        // End of stdin is the script's own way out; SIGTERM only if it does not take it.
        process.closeStdin()
        if process.wait(timeout: .seconds(3)) == nil { process.terminate() }
    }

    /// Sends one command and waits for its `ok`; other lines are kept in `asides`.
    public func command(_ json: String, timeout: Duration = .seconds(10)) throws {
        try process.writeLine(json)
        let deadline = MonotonicClock.now() + timeout
        while MonotonicClock.now() < deadline {
            guard let line = try process.readLine(timeout: .seconds(1)) else { continue }
            if line.hasPrefix("ok ") { return }
            if line.hasPrefix("error ") { throw CSMSProcessError.refused(command: json, answer: line) }
            asides.append(line)
        }
        throw CSMSProcessError.noAcknowledgement(command: json)
    }

    /// Waits for an aside line starting with `prefix` (the answer to a `call`), pumping nothing:
    /// the station must be driven by the caller's loop, so this only reads what is there.
    public func aside(prefix: String, loop: EventLoop, timeout: Duration = .seconds(15)) throws -> String? {
        let deadline = MonotonicClock.now() + timeout
        while MonotonicClock.now() < deadline {
            if let i = asides.firstIndex(where: { $0.hasPrefix(prefix) }) { return asides.remove(at: i) }
            try loop.runOnce(maxWait: .milliseconds(20))
            if let line = try process.readLine(timeout: .milliseconds(1)) {
                if line.hasPrefix(prefix) { return line }
                asides.append(line)
            }
        }
        return nil
    }

    /// The record's events so far.
    public func events() -> [JSON] {
        guard let f = fopen(record, "r") else { return [] }
        defer { fclose(f) }
        var out: [JSON] = []
        var line: UnsafeMutablePointer<CChar>?
        var cap = 0
        while getline(&line, &cap, f) > 0 {
            if let l = line, let j = try? JSON.parse(String(cString: l)) { out.append(j) }
        }
        free(line)
        return out
    }

    /// The station's CALLs of `action` in the record, in order.
    public func calls(_ action: String) -> [JSON] {
        events().filter { $0["event"]?.stringValue == "call" && $0["action"]?.stringValue == action }
    }
}
