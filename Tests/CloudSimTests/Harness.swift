import Foundation
import Glibc
import Platform
import Testing
import Timebase

struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// A real `cloud-sim` process, built next to the test bundle.
final class CloudSimProcess {
    let process: ChildProcess
    let recordPath: String
    let port: UInt16

    init(_ arguments: [String] = []) throws {
        let exe = ChildProcess.executableDirectory() + "/cloud-sim"
        guard FileManager.default.isExecutableFile(atPath: exe) else { throw HarnessError("\(exe) not built") }
        recordPath = FileManager.default.temporaryDirectory.appendingPathComponent("cloud-\(UUID().uuidString).jsonl").path
        process = try ChildProcess.spawn(exe, ["--port", "0", "--record", recordPath, "--exit-with-stdin"] + arguments)
        guard let line = try process.readLine(timeout: .seconds(10)), line.hasPrefix("listening 127.0.0.1:"),
              let port = UInt16(line.split(separator: ":").last ?? "") else {
            throw HarnessError("cloud-sim did not announce its port")
        }
        self.port = port
    }

    deinit {
        process.terminate()
        try? FileManager.default.removeItem(atPath: recordPath)
    }

    /// Sends a directive and waits for its acknowledgement ("ok …"), so it is in force before the next request.
    @discardableResult
    func control(_ line: String) throws -> String {
        try process.writeLine(line)
        guard let ack = try process.readLine(timeout: .seconds(5)) else { throw HarnessError("no acknowledgement for \(line)") }
        return ack
    }

    /// The record file, one object per line.
    func records() -> [[String: Any]] {
        guard let text = try? String(contentsOfFile: recordPath, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").map {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any] ?? ["unparsable": String($0)]
        }
    }

    func connect() throws -> HTTPClient { try HTTPClient(port: port) }
}

/// A response as the client read it.
struct HTTPReply {
    var status: Int
    var headers: [(String, String)]
    var body: [UInt8]

    func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name.lowercased() }?.1 }
    var text: String { String(decoding: body, as: UTF8.self) }
    var json: [String: Any]? { (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] }
}

enum ReadOutcome {
    case reply(HTTPReply)
    /// End of file or reset before a whole response.
    case closed
    case timedOut
}

/// A raw HTTP/1.1 client on a Platform TCP socket: exactly the bytes the test writes go out.
final class HTTPClient {
    let fd: FileDescriptor
    private var buffer: [UInt8] = []
    private var isClosed = false

    init(port: UInt16) throws {
        fd = try TCP.connect(host: "127.0.0.1", port: port, timeout: .seconds(2))
    }

    deinit { fd.close() }

    func send(_ bytes: [UInt8]) throws { try fd.writeAll(bytes, timeout: .seconds(5)) }
    func send(_ text: String) throws { try send(Array(text.utf8)) }

    /// A request in the binding's form.
    static func request(_ action: String, body: String, key: String?, station: String = "CS-1",
                        headers: [String] = [], contentType: String = "application/json") -> [UInt8] {
        var head = "POST /ocpp/\(station)/\(action) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: \(contentType)\r\n"
        if let key { head += "Idempotency-Key: \(key)\r\n" }
        for h in headers { head += h + "\r\n" }
        head += "Content-Length: \(body.utf8.count)\r\n\r\n"
        return Array(head.utf8) + Array(body.utf8)
    }

    /// Sends a request and reads its response (nil: connection closed or no answer in time).
    func post(_ action: String, body: String = "{}", key: String?, station: String = "CS-1",
              headers: [String] = [], timeout: Duration = .seconds(5)) throws -> HTTPReply? {
        try send(Self.request(action, body: body, key: key, station: station, headers: headers))
        if case .reply(let r) = try read(timeout: timeout) { return r }
        return nil
    }

    /// Reads one final response (1xx interim responses are skipped unless `interim`).
    func read(timeout: Duration = .seconds(5), interim: Bool = false) throws -> ReadOutcome {
        let deadline = MonotonicClock.now() + timeout
        while true {
            if let reply = parse() {
                if reply.status >= 200 || interim { return .reply(reply) }
                continue
            }
            if isClosed { return .closed }
            let result = Result { () throws(SystemError) in try fd.read(maxCount: 65536) }
            guard case .success(let chunk) = result else {
                // A reset (the server closed with our bytes unread) ends the connection like EOF.
                if case .failure(let error) = result, error.errno != ECONNRESET { throw error }
                isClosed = true
                continue
            }
            switch chunk {
            case .bytes(let b): buffer += b
            case .endOfFile: isClosed = true
            case .wouldBlock:
                let remaining = deadline - MonotonicClock.now()
                if remaining <= .zero { return .timedOut }
                var entry = [pollfd(fd: fd.rawValue, events: Int16(POLLIN), revents: 0)]
                _ = try Poll.wait(&entry, timeout: remaining)
            }
        }
    }

    /// Whether the server closes the connection within `timeout` without sending anything.
    func closesSilently(within timeout: Duration = .seconds(3)) throws -> Bool {
        if case .closed = try read(timeout: timeout) { return buffer.isEmpty }
        return false
    }

    private func parse() -> HTTPReply? {
        let crlfcrlf: [UInt8] = [13, 10, 13, 10]
        guard buffer.count >= 4, let end = (0...(buffer.count - 4)).first(where: { Array(buffer[$0..<$0 + 4]) == crlfcrlf }) else { return nil }
        let head = String(decoding: buffer[..<end], as: UTF8.self).components(separatedBy: "\r\n")
        let statusParts = head[0].split(separator: " ")
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else { return nil }
        let headers = head.dropFirst().compactMap { line -> (String, String)? in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
        let length = headers.first { $0.0.lowercased() == "content-length" }.flatMap { Int($0.1) } ?? 0
        guard buffer.count >= end + 4 + length else { return nil }
        let body = Array(buffer[(end + 4)..<(end + 4 + length)])
        buffer.removeSubrange(..<(end + 4 + length))
        return HTTPReply(status: status, headers: headers, body: body)
    }
}

/// Sorted-key JSON text of a Foundation JSON value, for comparisons.
func canonical(_ value: Any?) -> String {
    guard let value, JSONSerialization.isValidJSONObject(value),
          let data = try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys]) else {
        return String(describing: value)
    }
    return String(decoding: data, as: UTF8.self)
}

func canonical(json text: String) -> String {
    canonical(try? JSONSerialization.jsonObject(with: Data(text.utf8)))
}
