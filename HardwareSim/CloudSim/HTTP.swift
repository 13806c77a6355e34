/// HTTP/1.1 server-side framing for the simulated cloud (RFC 9112), pure: bytes in, requests out.

/// Size limits a connection is held to.
public struct HTTPLimits: Sendable, Equatable {
    /// Request line plus header fields (and chunked trailers), terminating empty line included.
    public var maxHeaderBytes = 16 * 1024
    /// Decoded body (Content-Length or the sum of the chunks).
    public var maxBodyBytes = 1024 * 1024
    /// One chunk-size line (size, extensions, CRLF).
    public var maxChunkLineBytes = 1024

    public init() {}
}

/// One complete request.
public struct HTTPRequest: Sendable {
    public var method: String
    /// The request target as sent (origin form: path and query).
    public var target: String
    /// "HTTP/1.1" or "HTTP/1.0".
    public var version: String
    /// Header fields in order, names as sent.
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    /// Whether the body came chunked.
    public var chunked = false

    public init(method: String, target: String, version: String = "HTTP/1.1",
                headers: [(name: String, value: String)], body: [UInt8], chunked: Bool = false) {
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.body = body
        self.chunked = chunked
    }

    /// The first field named `name` (case-insensitive).
    public func header(_ name: String) -> String? {
        let wanted = name.lowercased()
        return headers.first { $0.name.lowercased() == wanted }?.value
    }

    /// Every field named `name`, in order.
    public func headers(_ name: String) -> [String] {
        let wanted = name.lowercased()
        return headers.filter { $0.name.lowercased() == wanted }.map(\.value)
    }

    /// The tokens of all `Connection` fields, lowercased.
    var connectionTokens: [String] {
        headers("Connection").flatMap { $0.split(separator: ",") }.map { $0.trimmingWhitespace().lowercased() }
    }

    /// Persistent unless the client says otherwise (1.1), or unless it asks for it (1.0).
    public var keepAlive: Bool {
        let tokens = connectionTokens
        if tokens.contains("close") { return false }
        return version == "HTTP/1.1" || tokens.contains("keep-alive")
    }
}

/// One response; `serialized` adds the framing fields.
public struct HTTPResponse: Sendable, Equatable {
    public var status: Int
    /// Extra fields (Content-Type, Allow, ...); Content-Length and Connection are added when serialised.
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public init(status: Int, headers: [(name: String, value: String)] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A JSON response.
    public static func json(_ status: Int, _ value: CloudJSON, headers: [(name: String, value: String)] = []) -> HTTPResponse {
        HTTPResponse(status: status, headers: [("Content-Type", "application/json")] + headers, body: Array(value.text.utf8))
    }

    public static func == (a: HTTPResponse, b: HTTPResponse) -> Bool {
        a.status == b.status && a.body == b.body && a.headers.count == b.headers.count
            && zip(a.headers, b.headers).allSatisfy { $0.name == $1.name && $0.value == $1.value }
    }

    /// The bytes on the wire.
    public func serialized(keepAlive: Bool) -> [UInt8] {
        var head = "HTTP/1.1 \(status) \(Self.reason(status))\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        head += "Content-Length: \(body.count)\r\n"
        head += keepAlive ? "Connection: keep-alive\r\n" : "Connection: close\r\n"
        head += "\r\n"
        return Array(head.utf8) + body
    }

    /// The interim response that lets a client holding its body (`Expect: 100-continue`) send it.
    public static let continueBytes: [UInt8] = Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)

    public static func reason(_ status: Int) -> String {
        switch status {
        case 100: "Continue"
        case 200: "OK"
        case 400: "Bad Request"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 411: "Length Required"
        case 413: "Content Too Large"
        case 415: "Unsupported Media Type"
        case 417: "Expectation Failed"
        case 422: "Unprocessable Content"
        case 431: "Request Header Fields Too Large"
        case 500: "Internal Server Error"
        case 501: "Not Implemented"
        case 503: "Service Unavailable"
        case 505: "HTTP Version Not Supported"
        default: "Status \(status)"
        }
    }
}

/// What the parser has for its connection.
public enum HTTPParseEvent: Sendable {
    /// A complete request; more may follow on the same connection.
    case request(HTTPRequest)
    /// The client announced `Expect: 100-continue` and waits for the interim response before its body.
    case continueExpected
    /// The bytes cannot be a request (or exceed a limit): answer `status` and close the connection.
    /// `partial` is what was understood of the request head, if anything.
    case failure(status: Int, reason: String, partial: HTTPRequest?)
}

/// An incremental request parser for one connection: `feed` what was read, then take events
/// with `next` until it returns nil. Holds at most one request's bytes beyond what was parsed.
public struct HTTPRequestParser: Sendable {
    public let limits: HTTPLimits

    private enum State: Sendable {
        case head
        case fixedBody(HTTPRequest, remaining: Int)
        case chunkSize(HTTPRequest)
        case chunkData(HTTPRequest, remaining: Int)
        case chunkDataEnd(HTTPRequest)
        case trailers(HTTPRequest, bytes: Int)
        case failed
    }

    private var state: State = .head
    private var buffer: [UInt8] = []
    /// Where unparsed bytes start in `buffer`.
    private var start = 0
    /// Head state: where the next unexamined line starts.
    private var lineStart = 0
    /// Head state: where each examined header line started (the request line first).
    private var headLines: [Range<Int>] = []

    public init(limits: HTTPLimits = HTTPLimits()) {
        self.limits = limits
    }

    /// Bytes received but not yet consumed by a request.
    public var bufferedCount: Int { buffer.count - start }

    /// True between requests with nothing buffered: a clean place to close the connection.
    public var isIdle: Bool {
        if case .head = state { return bufferedCount == 0 }
        return false
    }

    /// Hands over the bytes after the last request and leaves the parser empty: the connection
    /// stopped speaking HTTP (an accepted WebSocket upgrade), and what the client sent without
    /// waiting for the 101 is its first frames.
    public mutating func takeBuffered() -> [UInt8] {
        let rest = Array(buffer[start...])
        buffer = []
        start = 0
        lineStart = 0
        headLines = []
        return rest
    }

    /// Whether the parser has failed (after a `.failure`); it yields nothing more.
    public var hasFailed: Bool {
        if case .failed = state { return true }
        return false
    }

    public mutating func feed<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        if case .failed = state { return }
        // Compact once the consumed prefix dominates, keeping appends amortised O(1).
        if start > 0 && start >= buffer.count / 2 {
            buffer.removeSubrange(0..<start)
            lineStart -= start
            headLines = headLines.map { ($0.lowerBound - start)..<($0.upperBound - start) }
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// The next event, or nil when more bytes are needed.
    public mutating func next() -> HTTPParseEvent? {
        while true {
            switch state {
            case .failed:
                return nil
            case .head:
                guard let line = nextLine(from: lineStart) else {
                    if bufferedCount > limits.maxHeaderBytes {
                        return fail(431, "request header larger than \(limits.maxHeaderBytes) bytes", nil)
                    }
                    return nil
                }
                lineStart = line.next
                if lineStart - start > limits.maxHeaderBytes {
                    return fail(431, "request header larger than \(limits.maxHeaderBytes) bytes", nil)
                }
                if line.content.isEmpty {
                    if headLines.isEmpty {
                        // Empty lines before a request line are ignored (RFC 9112 §2.2).
                        start = lineStart
                        continue
                    }
                    let lines = headLines
                    headLines = []
                    start = lineStart
                    if let event = beginBody(lines) { return event }
                    continue
                }
                headLines.append(line.content)
            case .fixedBody(var request, let remaining):
                let owed = takeBody(into: &request, remaining)
                if owed > 0 {
                    state = .fixedBody(request, remaining: owed)
                    return nil
                }
                state = .head
                lineStart = start
                return .request(request)
            case .chunkSize(let request):
                guard let line = nextLine(from: start) else {
                    if bufferedCount > limits.maxChunkLineBytes { return fail(400, "chunk-size line too long", request) }
                    return nil
                }
                guard line.next - start <= limits.maxChunkLineBytes else { return fail(400, "chunk-size line too long", request) }
                start = line.next
                var size = 0
                var digits = 0
                for b in buffer[line.content] {
                    let d: Int
                    switch b {
                    case 0x30...0x39: d = Int(b - 0x30)
                    case 0x41...0x46: d = Int(b - 0x41 + 10)
                    case 0x61...0x66: d = Int(b - 0x61 + 10)
                    default: d = -1
                    }
                    if d < 0 { break }
                    digits += 1
                    if size > limits.maxBodyBytes { continue }  // already too large; keep scanning the digits
                    size = size * 16 + d
                }
                guard digits > 0 else { return fail(400, "invalid chunk size", request) }
                let rest = buffer[line.content].dropFirst(digits)
                if let first = rest.first, first != UInt8(ascii: ";") && first != 0x20 && first != 0x09 {
                    return fail(400, "invalid chunk size", request)
                }
                if size == 0 {
                    state = .trailers(request, bytes: 0)
                    continue
                }
                if request.body.count + size > limits.maxBodyBytes {
                    return fail(413, "request body larger than \(limits.maxBodyBytes) bytes", request)
                }
                state = .chunkData(request, remaining: size)
            case .chunkData(var request, let remaining):
                let owed = takeBody(into: &request, remaining)
                if owed > 0 {
                    state = .chunkData(request, remaining: owed)
                    return nil
                }
                state = .chunkDataEnd(request)
            case .chunkDataEnd(let request):
                guard let line = nextLine(from: start) else {
                    if bufferedCount > 2 { return fail(400, "chunk data not followed by CRLF", request) }
                    return nil
                }
                guard line.content.isEmpty else { return fail(400, "chunk data not followed by CRLF", request) }
                start = line.next
                state = .chunkSize(request)
            case .trailers(let request, let bytes):
                guard let line = nextLine(from: start) else {
                    if bytes + bufferedCount > limits.maxHeaderBytes { return fail(431, "trailer section too large", request) }
                    return nil
                }
                let used = bytes + (line.next - start)
                guard used <= limits.maxHeaderBytes else { return fail(431, "trailer section too large", request) }
                start = line.next
                if line.content.isEmpty {
                    // Trailer fields are read and discarded.
                    state = .head
                    lineStart = start
                    return .request(request)
                }
                state = .trailers(request, bytes: used)
            }
        }
    }

    // MARK: Internals

    private mutating func fail(_ status: Int, _ reason: String, _ partial: HTTPRequest?) -> HTTPParseEvent {
        state = .failed
        buffer = []
        start = 0
        lineStart = 0
        headLines = []
        return .failure(status: status, reason: reason, partial: partial)
    }

    /// Moves up to `remaining` buffered bytes into the body (fixed-length or one chunk) and
    /// returns how many are still owed.
    private mutating func takeBody(into request: inout HTTPRequest, _ remaining: Int) -> Int {
        let available = min(remaining, bufferedCount)
        request.body.append(contentsOf: buffer[start..<start + available])
        start += available
        return remaining - available
    }

    /// The line starting at `from` without its LF (or CRLF), and where the next line starts.
    private func nextLine(from: Int) -> (content: Range<Int>, next: Int)? {
        guard from <= buffer.count, let lf = buffer[from...].firstIndex(of: 0x0A) else { return nil }
        let end = lf > from && buffer[lf - 1] == 0x0D ? lf - 1 : lf
        return (from..<end, lf + 1)
    }

    private static func isTokenByte(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return Array("!#$%&'*+-.^_`|~".utf8).contains(b)
        }
    }

    /// Parses the head and decides how the body is framed.
    private mutating func beginBody(_ lines: [Range<Int>]) -> HTTPParseEvent? {
        let requestLine = buffer[lines[0]]
        let parts = requestLine.split(separator: 0x20, omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, parts[0].allSatisfy(Self.isTokenByte), !parts[1].isEmpty,
              parts[1].allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            return fail(400, "malformed request line", nil)
        }
        let version = String(decoding: parts[2], as: UTF8.self)
        var request = HTTPRequest(method: String(decoding: parts[0], as: UTF8.self),
                                  target: String(decoding: parts[1], as: UTF8.self),
                                  version: version, headers: [], body: [])
        guard version.hasPrefix("HTTP/"), version.count == 8 else { return fail(400, "malformed request line", nil) }
        guard version == "HTTP/1.1" || version == "HTTP/1.0" else { return fail(505, "\(version) is not supported", nil) }

        for range in lines.dropFirst() {
            let line = buffer[range]
            if let first = line.first, first == 0x20 || first == 0x09 {
                return fail(400, "obsolete line folding", request)
            }
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { return fail(400, "header field without ':'", request) }
            let name = line[line.startIndex..<colon]
            guard !name.isEmpty, name.allSatisfy(Self.isTokenByte) else { return fail(400, "invalid header field name", request) }
            let value = String(decoding: line[(colon + 1)...], as: UTF8.self).trimmingWhitespace()
            request.headers.append((String(decoding: name, as: UTF8.self), value))
        }
        if request.version == "HTTP/1.1" && request.headers("Host").count != 1 {
            return fail(400, "HTTP/1.1 request needs exactly one Host field", request)
        }

        let transferCodings = request.headers("Transfer-Encoding")
            .flatMap { $0.split(separator: ",") }.map { $0.trimmingWhitespace().lowercased() }
        let lengths = request.headers("Content-Length")
            .flatMap { $0.split(separator: ",") }.map { $0.trimmingWhitespace() }
        var expectsContinue = false
        if let expect = request.header("Expect") {
            guard expect.lowercased() == "100-continue" else { return fail(417, "unsupported expectation", request) }
            expectsContinue = request.version == "HTTP/1.1"
        }

        if !transferCodings.isEmpty {
            // Both framings at once is a smuggling vector; refuse rather than pick one.
            guard lengths.isEmpty else { return fail(400, "both Transfer-Encoding and Content-Length", request) }
            guard transferCodings == ["chunked"] else { return fail(501, "unsupported transfer coding", request) }
            request.chunked = true
            state = .chunkSize(request)
            if expectsContinue && bufferedCount == 0 { return .continueExpected }
            return nil
        }
        guard let text = lengths.first else {
            // Neither field: no body (RFC 9112 §6.3).
            state = .head
            lineStart = start
            return .request(request)
        }
        guard lengths.allSatisfy({ $0 == text }), !text.isEmpty, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
            return fail(400, "invalid Content-Length", request)
        }
        guard text.count <= 10, let length = Int(text), length <= limits.maxBodyBytes else {
            return fail(413, "request body larger than \(limits.maxBodyBytes) bytes", request)
        }
        if length == 0 {
            state = .head
            lineStart = start
            return .request(request)
        }
        state = .fixedBody(request, remaining: length)
        if expectsContinue && bufferedCount == 0 { return .continueExpected }
        return nil
    }
}

extension StringProtocol {
    /// Without leading and trailing spaces and tabs (HTTP's optional whitespace).
    func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let c = s.first, c == " " || c == "\t" { s.removeFirst() }
        while let c = s.last, c == " " || c == "\t" { s.removeLast() }
        return String(s)
    }
}
