import WireFormat

/// TLS settings of an `HTTPClient`.
///
/// The server's certificate is always verified (chain and host name: libcurl's
/// `CURLOPT_SSL_VERIFYPEER = 1`, `CURLOPT_SSL_VERIFYHOST = 2`); there is
/// deliberately no setting to turn that off. TLS 1.2 is the minimum.
public struct TLSSettings: Sendable, Equatable {
    /// A PEM file of the certificate authorities to trust. When set it *replaces*
    /// the system trust store (`/etc/ssl/certs`), pinning the cloud to that CA;
    /// `nil` trusts the system store.
    public var caFile: String?
    /// A PEM client certificate (chain) for mutual TLS. May also hold the key.
    public var clientCertificate: String?
    /// The PEM private key of `clientCertificate`, unencrypted, so its file permissions are its
    /// only protection: `HTTPClient` refuses a key (or, when `nil`, a certificate file holding
    /// the key) that is not a regular file of this user or root with mode 0600 or stricter.
    /// `nil`: the key is in the certificate file.
    public var clientKey: String?

    public init(caFile: String? = nil, clientCertificate: String? = nil, clientKey: String? = nil) {
        self.caFile = caFile
        self.clientCertificate = clientCertificate
        self.clientKey = clientKey
    }
}

/// A POST to send. The method is always POST; redirects are never followed.
public struct HTTPRequest: Sendable {
    /// An absolute `https://` URL.
    public var url: String
    /// Extra request headers, in order. `Content-Type` and the like are the
    /// caller's; names and values must not contain CR, LF or NUL.
    public var headers: [(String, String)]
    /// The request body, sent as is (an empty body is allowed).
    public var body: [UInt8]

    public init(url: String, headers: [(String, String)] = [], body: [UInt8] = []) {
        self.url = url
        self.headers = headers
        self.body = body
    }

    /// The uplink binding: `POST {baseURL}/{stationId}/{action}` with the JSON
    /// body, `Content-Type: application/json` and `Idempotency-Key: <messageId>`
    /// (the same key on every retry of a message, so the cloud can deduplicate).
    ///
    /// A trailing `/` on `baseURL` is dropped; `stationId` and `action` are
    /// percent-encoded as path segments (everything but `A-Z a-z 0-9 - . _ ~`).
    public static func uplink(baseURL: String, stationId: String, action: String,
                              messageId: String, json: [UInt8]) -> HTTPRequest {
        var base = Substring(baseURL)
        while base.hasSuffix("/") { base = base.dropLast() }
        let url = "\(base)/\(PercentEncoding.pathSegment(stationId))/\(PercentEncoding.pathSegment(action))"
        return HTTPRequest(url: url,
                           headers: [("Content-Type", "application/json"), ("Idempotency-Key", messageId)],
                           body: json)
    }
}

/// A complete response. Any status (2xx, 4xx, 5xx) is a response, not an error:
/// deciding what a 409 or a 503 means is the caller's business.
public struct HTTPResponse: Sendable, Equatable {
    /// The HTTP status code.
    public var status: Int
    /// The body, at most `HTTPClientLimits.maxResponseBytes`.
    public var body: [UInt8]

    public init(status: Int, body: [UInt8]) {
        self.status = status
        self.body = body
    }
}

/// Why a POST produced no response.
///
/// The outbox must not spend a message's attempts while the cloud cannot be
/// reached at all: `couldNotConnect` (see `isUnreachable`) is the one case that
/// means "nothing was sent, the server was never reached". Every other case
/// reached something: the request may or may not have been delivered, except
/// where a case says otherwise.
public enum HTTPError: Error, Equatable, CustomStringConvertible {
    /// The server was not reached, and nothing was sent: name resolution failed,
    /// the connection was refused or unreachable, or the connection (TCP plus the
    /// TLS handshake) was not up within `connectTimeout` (or within `totalTimeout`
    /// if that came first). libcurl's text.
    case couldNotConnect(String)
    /// The connection was up and the request (possibly) sent, but no complete
    /// response arrived within `totalTimeout`. The request may have been processed.
    case timedOut
    /// TLS failed: the server's certificate did not verify (unknown CA, wrong host
    /// name, expired), the handshake failed, the server rejected our client
    /// certificate (a TLS alert, e.g. "certificate required", even when it arrives
    /// after the handshake as in TLS 1.3), or a configured CA / certificate / key
    /// file is unusable. The request was not processed by the server.
    case tls(String)
    /// The connection broke or the server sent something that is not a complete
    /// HTTP response (reset, closed early, malformed). The request may have been processed.
    case sendOrReceive(String)
    /// The connection was accepted and closed without a single response byte (libcurl's
    /// "empty reply"): nothing behind the address is serving, e.g. a proxy with no backend.
    /// The request may have been processed; the outbox treats this like unreachable.
    case noResponse(String)
    /// The response body exceeded `HTTPClientLimits.maxResponseBytes`; the
    /// transfer was aborted. The request was delivered.
    case tooLarge
    /// `cancelAll()` ended the request. It may have been delivered.
    case cancelled
    /// The request was refused before anything was sent: not an `https://` URL,
    /// or a header or URL containing CR, LF or NUL.
    case invalidRequest(String)
    /// Any other libcurl failure: its `CURLcode` and text.
    case other(code: Int, String)

    /// True when the service was not reached (nothing sent), or nothing behind the address
    /// answered at all: the outbox waits for connectivity rather than count an attempt.
    /// Retries carry the same Idempotency-Key, so a request that was processed anyway is
    /// recognised as a duplicate.
    public var isUnreachable: Bool {
        switch self {
        case .couldNotConnect, .noResponse: return true
        default: return false
        }
    }

    public var description: String {
        switch self {
        case .couldNotConnect(let m): return "could not connect: \(m)"
        case .timedOut: return "timed out"
        case .tls(let m): return "TLS: \(m)"
        case .sendOrReceive(let m): return "send/receive failed: \(m)"
        case .noResponse(let m): return "no response: \(m)"
        case .tooLarge: return "response too large"
        case .cancelled: return "cancelled"
        case .invalidRequest(let m): return "invalid request: \(m)"
        case .other(let code, let m): return "curl error \(code): \(m)"
        }
    }
}

/// Timeouts and bounds of an `HTTPClient`.
public struct HTTPClientLimits: Sendable, Equatable {
    /// Time allowed to set up a new connection, TCP and TLS handshake together.
    public var connectTimeout: Duration
    /// Time allowed for a whole request, from its start (not from when it was
    /// queued behind `maxConcurrent` others) to the last byte of the response.
    public var totalTimeout: Duration
    /// The largest response body accepted; a larger one fails with `.tooLarge`.
    public var maxResponseBytes: Int
    /// Ordinary requests in progress at once; more are queued in order and started as others finish.
    public var maxConcurrent: Int
    /// Slots beyond `maxConcurrent` that only `HTTPPriority.urgent` requests may use, so a card
    /// decision never waits for the outbox's backlog (at most `maxConcurrent + reservedUrgent`
    /// requests are in progress in all).
    public var reservedUrgent: Int
    /// Idle connections kept open for reuse (libcurl's connection cache).
    public var maxConnects: Int

    public init(connectTimeout: Duration = .seconds(5), totalTimeout: Duration = .seconds(20),
                maxResponseBytes: Int = 1 << 20, maxConcurrent: Int = 4, maxConnects: Int = 4, reservedUrgent: Int = 2) {
        self.connectTimeout = connectTimeout
        self.totalTimeout = totalTimeout
        self.maxResponseBytes = maxResponseBytes
        self.maxConcurrent = maxConcurrent
        self.maxConnects = maxConnects
        self.reservedUrgent = reservedUrgent
    }
}

/// Which slots a request may take (`HTTPClient.post`).
public enum HTTPPriority: Sendable, Equatable {
    /// Queued messages (the outbox): up to `HTTPClientLimits.maxConcurrent` at once, in order.
    case ordinary
    /// A request someone is waiting for now (the card decision): starts at once in a slot of
    /// its own (`reservedUrgent`) or any free one, and queues ahead of every ordinary request.
    case urgent
}

/// Why an `HTTPClient` could not be created.
public enum HTTPClientSetupError: Error, Equatable, CustomStringConvertible {
    /// `curl_global_init`, `curl_multi_init` or `curl_share_init` failed (out of memory, TLS library init).
    case curl(String)
    /// A configured CA, certificate or key file cannot be opened for reading.
    case fileNotReadable(path: String, errno: Int32)
    /// The client's private key (or the certificate file holding it) fails the secret-file
    /// checks (`SecretFile`): not a regular file, readable by group or others, or owned by
    /// another user. The daemon refuses to start rather than use an exposed key.
    case unprotectedKey(BearerTokenError)
    /// The configured proxy is not `http://HOST:PORT` (`Platform.ProxyURL`); the reason.
    case invalidProxy(String)

    public var description: String {
        switch self {
        case .curl(let m): return "libcurl: \(m)"
        case .fileNotReadable(let path, let errno): return "\(path): cannot be read (errno \(errno))"
        case .unprotectedKey(let problem): return "client key \(problem)"
        case .invalidProxy(let problem): return "proxy: \(problem)"
        }
    }
}
