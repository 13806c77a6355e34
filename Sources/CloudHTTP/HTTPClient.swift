import CCurl
import Glibc
import Platform
import Timebase

/// libcurl's process-wide initialisation, run once on first use (Swift globals
/// are initialised lazily and thread-safely). `CURLE_OK` is 0.
private let curlGlobalInitCode: UInt32 = curl_global_init(Int(PB_CURL_GLOBAL_DEFAULT)).rawValue

/// HTTPS POSTs through libcurl's multi interface, driven by the daemon's
/// single-threaded `EventLoop`: libcurl tells us which sockets to watch and when
/// to wake it (`CURLMOPT_SOCKETFUNCTION`, `CURLMOPT_TIMERFUNCTION`); the loop
/// reports readiness back through `curl_multi_socket_action`. Nothing blocks
/// the loop: name resolution runs on libcurl's resolver thread, connects and
/// TLS handshakes are non-blocking.
///
/// Connections are persistent: the multi handle keeps up to `maxConnects` idle
/// connections (HTTP/1.1 keep-alive, TCP keep-alive on) and later requests to
/// the same server reuse them; TLS sessions and DNS answers are shared between
/// requests too. Every request gets exactly one completion, on the loop thread,
/// never from inside `post` itself.
///
/// Not thread-safe: use it only on the loop's thread.
public final class HTTPClient {
    /// The bearer token sent as `Authorization: Bearer …` on every request that
    /// does not carry its own `Authorization` header; `nil`: none. Typically from
    /// `BearerToken.load(path:)`; may be replaced at any time (e.g. after rotation).
    public var bearerToken: String?

    private let loop: EventLoop
    private let tls: TLSSettings
    /// The configured proxy (`cloud.proxy`), or nil: none. Never one from the environment.
    private let proxy: String?
    private let limits: HTTPClientLimits
    private let multi: UnsafeMutableRawPointer
    private let share: UnsafeMutableRawPointer

    private var active: [UnsafeMutableRawPointer: Transfer] = [:]
    /// Ordinary requests among `active`: at most `limits.maxConcurrent`.
    private var activeOrdinary = 0
    private var pending: [(sequence: UInt64, request: HTTPRequest, completion: (Result<HTTPResponse, HTTPError>) -> Void)] = []
    /// Urgent requests waiting for a slot: served before `pending`.
    private var pendingUrgent: [(sequence: UInt64, request: HTTPRequest, completion: (Result<HTTPResponse, HTTPError>) -> Void)] = []
    private var refused: [UInt64: (token: TimerToken, completion: (Result<HTTPResponse, HTTPError>) -> Void)] = [:]
    private var nextSequence: UInt64 = 0
    private var watches: [Int32: WatchToken] = [:]
    private var timer: TimerToken?
    /// A turn-of-the-loop check for transfers a kick in `start` finished at once.
    private var completionCheck: TimerToken?

    /// Requests posted whose completion has not run yet (queued ones included).
    public var inFlight: Int { active.count + pending.count + pendingUrgent.count + refused.count }

    /// Creates a client on `loop`. Throws if libcurl cannot be set up, a configured TLS file
    /// cannot be read or the key is not protected, or `proxy` is not `http://HOST:PORT`
    /// (checked now so a typo fails at start-up, not on the first message).
    ///
    /// `proxy`: requests to https URLs go through it (a CONNECT tunnel); nil: no proxy at all.
    /// The `http_proxy`, `https_proxy`, `ALL_PROXY` and `NO_PROXY` environment variables are
    /// never consulted: a variable inherited from a shell or a unit file must not route the
    /// card decision and the bearer token through someone else's machine, nor let a proxy
    /// see and block the cloud's host. Plain http (loopback only) never uses a proxy.
    public init(loop: EventLoop, tls: TLSSettings = .init(), limits: HTTPClientLimits = .init(),
                bearerToken: String? = nil, proxy: String? = nil) throws(HTTPClientSetupError) {
        precondition(limits.maxConcurrent >= 1 && limits.maxConnects >= 1 && limits.maxResponseBytes >= 0 && limits.reservedUrgent >= 0,
                     "HTTPClientLimits: maxConcurrent and maxConnects must be at least 1, reservedUrgent at least 0")
        precondition(limits.connectTimeout > .zero && limits.totalTimeout > .zero, "HTTPClientLimits: timeouts must be positive")
        if let proxy, let problem = ProxyURL.problem(proxy) { throw .invalidProxy(problem) }
        guard curlGlobalInitCode == 0 else {
            throw .curl("curl_global_init failed: \(Self.text(of: curlGlobalInitCode))")
        }
        for path in [tls.caFile, tls.clientCertificate, tls.clientKey].compactMap({ $0 }) {
            let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
            if fd < 0 { throw .fileNotReadable(path: path, errno: Glibc.errno) }
            Glibc.close(fd)
        }
        // The key file (or the certificate file when it holds the key) gets the token's checks.
        if let key = tls.clientKey ?? tls.clientCertificate {
            do { try SecretFile.check(key) } catch { throw .unprotectedKey(error) }
        }
        guard let multi = curl_multi_init() else { throw .curl("curl_multi_init failed") }
        guard let share = curl_share_init() else {
            curl_multi_cleanup(multi)
            throw .curl("curl_share_init failed")
        }
        self.loop = loop
        self.tls = tls
        self.proxy = proxy
        self.limits = limits
        self.multi = multi
        self.share = share
        self.bearerToken = bearerToken

        // One thread uses the share, so it needs no lock callbacks.
        _ = pb_share_setopt_long(share, CURLSHOPT_SHARE, Int(CURL_LOCK_DATA_SSL_SESSION.rawValue))
        _ = pb_share_setopt_long(share, CURLSHOPT_SHARE, Int(CURL_LOCK_DATA_DNS.rawValue))

        let context = Unmanaged.passUnretained(self).toOpaque()
        _ = pb_multi_setopt_socket_function(multi, { _, socket, what, context, _ in
            guard let context else { return 0 }
            Unmanaged<HTTPClient>.fromOpaque(context).takeUnretainedValue().socketChanged(socket, what: what)
            return 0
        })
        _ = pb_multi_setopt_ptr(multi, CURLMOPT_SOCKETDATA, context)
        _ = pb_multi_setopt_timer_function(multi, { _, milliseconds, context in
            guard let context else { return 0 }
            Unmanaged<HTTPClient>.fromOpaque(context).takeUnretainedValue().timerChanged(milliseconds)
            return 0
        })
        _ = pb_multi_setopt_ptr(multi, CURLMOPT_TIMERDATA, context)
        _ = pb_multi_setopt_long(multi, CURLMOPT_MAXCONNECTS, limits.maxConnects)
    }

    deinit {
        // Detach from libcurl first, so cleaning up calls back into nothing; no
        // completion runs for requests still open (their owner is gone).
        _ = pb_multi_setopt_socket_function(multi, nil)
        _ = pb_multi_setopt_timer_function(multi, nil)
        for token in watches.values { loop.unwatch(token) }
        if let timer { loop.cancel(timer) }
        if let completionCheck { loop.cancel(completionCheck) }
        for entry in refused.values { loop.cancel(entry.token) }
        for transfer in active.values {
            curl_multi_remove_handle(multi, transfer.easy)
            transfer.release()
        }
        for transfer in streams.values {
            curl_multi_remove_handle(multi, transfer.easy)
            transfer.release()
        }
        curl_multi_cleanup(multi)
        curl_share_cleanup(share)
    }

    /// Sends `request` as a POST. `completion` runs once on the loop thread with
    /// the response (any status) or the reason there is none.
    ///
    /// `priority: .urgent` (the card decision: a driver is waiting at the charger) starts at
    /// once even when ordinary requests (the outbox's backlog) hold every one of their
    /// `maxConcurrent` slots: it may use `reservedUrgent` slots ordinary requests never get,
    /// and when those are taken too it waits ahead of every queued ordinary request.
    public func post(_ request: HTTPRequest, priority: HTTPPriority = .ordinary,
                     completion: @escaping (Result<HTTPResponse, HTTPError>) -> Void) {
        let sequence = nextSequence
        nextSequence += 1
        if let problem = Self.validate(request) {
            refuse(sequence, .invalidRequest(problem), completion)
            return
        }
        switch priority {
        case .urgent:
            if active.count < totalSlots {
                start(sequence, request, completion, urgent: true)
            } else {
                pendingUrgent.append((sequence, request, completion))
            }
        case .ordinary:
            if activeOrdinary < limits.maxConcurrent, active.count < totalSlots, pendingUrgent.isEmpty {
                start(sequence, request, completion, urgent: false)
            } else {
                pending.append((sequence, request, completion))
            }
        }
    }

    /// Every slot, ordinary and reserved.
    private var totalSlots: Int { limits.maxConcurrent + limits.reservedUrgent }

    /// Starts queued requests while slots are free: urgent ones first.
    private func startQueued() {
        while active.count < totalSlots, !pendingUrgent.isEmpty {
            let next = pendingUrgent.removeFirst()
            start(next.sequence, next.request, next.completion, urgent: true)
        }
        while activeOrdinary < limits.maxConcurrent, active.count < totalSlots, !pending.isEmpty {
            let next = pending.removeFirst()
            start(next.sequence, next.request, next.completion, urgent: false)
        }
    }

    /// Ends every request, started or queued: each completes with `.cancelled`,
    /// in the order they were posted. Idle connections stay cached.
    public func cancelAll() {
        var ended: [(UInt64, (Result<HTTPResponse, HTTPError>) -> Void)] = []
        for transfer in active.values {
            curl_multi_remove_handle(multi, transfer.easy)
            let streamCompletion = transfer.streamCompletion
            transfer.release()
            if let streamCompletion {
                ended.append((transfer.sequence, { _ in streamCompletion(.failure(.cancelled)) }))
            } else {
                ended.append((transfer.sequence, transfer.completion))
            }
        }
        active.removeAll()
        activeOrdinary = 0
        for entry in pending + pendingUrgent { ended.append((entry.sequence, entry.completion)) }
        pending.removeAll()
        pendingUrgent.removeAll()
        for (sequence, entry) in refused {
            loop.cancel(entry.token)
            ended.append((sequence, entry.completion))
        }
        refused.removeAll()
        for (_, completion) in ended.sorted(by: { $0.0 < $1.0 }) { completion(.failure(.cancelled)) }
    }

    // MARK: Starting transfers

    /// Why the client refuses `url` (nil: it does not): https with a host, plain http only to
    /// loopback (the simulated cloud in tests and the demo: anything that leaves the charger goes
    /// over verified TLS), no control characters or spaces. The rule is Platform's `CloudURL`,
    /// which the configuration applies to `cloud.url` too.
    public static func urlProblem(_ url: String) -> String? {
        CloudURL.problem(url).map { "\($0): \(url.utf8.contains { $0 < 0x20 || $0 == 0x7F } ? "(not shown)" : url)" }
    }

    private static func validate(_ request: HTTPRequest) -> String? {
        if let problem = urlProblem(request.url) { return problem }
        for (name, value) in request.headers {
            if let problem = headerProblem(name, value) { return problem }
        }
        return nil
    }

    private static func headerProblem(_ name: String, _ value: String) -> String? {
        guard !name.isEmpty, isClean(name), !name.contains(":"), !name.contains(" ") else { return "malformed header name \(name)" }
        guard isClean(value) else { return "header \(name): CR, LF or NUL in the value" }
        return nil
    }

    private static func isClean(_ s: String) -> Bool {
        !s.utf8.contains { $0 == 0x0D || $0 == 0x0A || $0 == 0 }
    }

    /// Completes a request that cannot start from a timer, so `completion` never runs inside `post`.
    private func refuse(_ sequence: UInt64, _ error: HTTPError, _ completion: @escaping (Result<HTTPResponse, HTTPError>) -> Void) {
        let token = loop.schedule(at: MonotonicClock.now()) { [weak self] in
            guard let self, let entry = self.refused.removeValue(forKey: sequence) else { return }
            entry.completion(.failure(error))
        }
        refused[sequence] = (token, completion)
    }

    private func start(_ sequence: UInt64, _ request: HTTPRequest, _ completion: @escaping (Result<HTTPResponse, HTTPError>) -> Void,
                       urgent: Bool) {
        guard let easy = curl_easy_init() else {
            refuse(sequence, .other(code: 27, "curl_easy_init failed"), completion)
            return
        }
        let transfer = Transfer(easy: easy, sequence: sequence, maxBytes: limits.maxResponseBytes, urgent: urgent, completion: completion)
        // "Name: value" sends a header, "Name;" an empty one, "Name:" suppresses one libcurl would add.
        var lines = request.headers.map { $0.1.isEmpty ? "\($0.0);" : "\($0.0): \($0.1)" }
        func has(_ name: String) -> Bool { request.headers.contains { $0.0.lowercased() == name } }
        if let bearerToken, !has("authorization") {
            if let problem = Self.headerProblem("Authorization", bearerToken) {
                transfer.release()
                refuse(sequence, .invalidRequest("bearer token: \(problem)"), completion)
                return
            }
            lines.append("Authorization: Bearer \(bearerToken)")
        }
        // No form-encoded default type, and no "Expect: 100-continue" round trip before the body.
        if !has("content-type") { lines.append("Content-Type:") }
        if !has("expect") { lines.append("Expect:") }
        let code = configure(transfer, url: request.url, headerLines: lines, body: request.body)
        guard code == 0 else {
            transfer.release()
            refuse(sequence, .other(code: Int(code), "setting up the request: \(Self.text(of: code))"), completion)
            return
        }
        let added = curl_multi_add_handle(multi, easy)
        guard added == CURLM_OK else {
            transfer.release()
            let text = String(cString: curl_multi_strerror(added))
            refuse(sequence, .other(code: Int(added.rawValue), "curl_multi_add_handle: \(text)"), completion)
            return
        }
        active[easy] = transfer
        if !urgent { activeOrdinary += 1 }
        // Put the request on the wire now rather than at the next turn of the loop: a card's
        // Authorize must not wait behind the rest of this turn (a ledger fdatasync, typically).
        // Completions still run from the loop, never inside `post`.
        kick()
    }

    /// Drives a just-added handle at once, and checks at the next turn of the loop for transfers
    /// that finished inside that kick (completions never run inside `post` or `openStream`).
    private func kick() {
        var running: Int32 = 0
        _ = curl_multi_socket_action(multi, curl_socket_t(PB_CURL_SOCKET_TIMEOUT), 0, &running)
        if completionCheck == nil {
            completionCheck = loop.schedule(at: MonotonicClock.now()) { [weak self] in
                self?.completionCheck = nil
                self?.finishCompleted()
            }
        }
    }

    /// The options every connection gets, a request's or a stream's: the URL and its protocol
    /// (https; plain http only to loopback), the proxy rule, localhost pinned to loopback,
    /// timeouts, TCP keep-alive and TLS with verification always on. Returns the first failing
    /// `CURLcode` (0: none).
    private func configureConnection(_ transfer: Transfer, url: String) -> UInt32 {
        let easy = transfer.easy
        var first: UInt32 = 0
        func check(_ code: CURLcode) { if first == 0 { first = code.rawValue } }

        check(pb_easy_setopt_long(easy, CURLOPT_NOSIGNAL, 1))
        check(pb_easy_setopt_share(easy, share))
        check(pb_easy_setopt_ptr(easy, CURLOPT_ERRORBUFFER, transfer.errorBuffer))
        check(pb_easy_setopt_str(easy, CURLOPT_URL, url))
        check(pb_easy_setopt_str(easy, CURLOPT_PROTOCOLS_STR, CloudURL.isLoopbackHTTP(url) ? "http" : "https"))
        // A proxy only when configured, and never for plain http (loopback): "" disables the
        // environment's proxies for this handle, and NOPROXY "*" any that might still apply.
        if let proxy, !CloudURL.isLoopbackHTTP(url) {
            check(pb_easy_setopt_str(easy, CURLOPT_PROXY, proxy))
            check(pb_easy_setopt_long(easy, CURLOPT_PROXYTYPE, Int(CURLPROXY_HTTP.rawValue)))
            check(pb_easy_setopt_long(easy, CURLOPT_HTTPPROXYTUNNEL, 1))
            // "" means no exceptions: NO_PROXY in the environment cannot send the cloud around it.
            check(pb_easy_setopt_str(easy, CURLOPT_NOPROXY, ""))
        } else {
            check(pb_easy_setopt_str(easy, CURLOPT_PROXY, ""))
            check(pb_easy_setopt_str(easy, CURLOPT_NOPROXY, "*"))
        }
        // localhost is the loopback addresses, never whatever NSS or /etc/hosts make of it.
        if let pinning = CloudURL.localhostPinning(url) {
            guard let list = curl_slist_append(nil, pinning) else { return CURLE_OUT_OF_MEMORY.rawValue }
            transfer.resolveList = list
            check(pb_easy_setopt_slist(easy, CURLOPT_RESOLVE, list))
        }

        check(pb_easy_setopt_long(easy, CURLOPT_CONNECTTIMEOUT_MS, Int(limits.connectTimeout.millisecondsClamped)))
        check(pb_easy_setopt_long(easy, CURLOPT_TIMEOUT_MS, Int(limits.totalTimeout.millisecondsClamped)))
        check(pb_easy_setopt_long(easy, CURLOPT_TCP_KEEPALIVE, 1))
        check(pb_easy_setopt_long(easy, CURLOPT_TCP_KEEPIDLE, 60))
        check(pb_easy_setopt_long(easy, CURLOPT_TCP_KEEPINTVL, 20))
        check(pb_easy_setopt_off(easy, CURLOPT_MAXFILESIZE_LARGE, curl_off_t(limits.maxResponseBytes)))

        // Verification is always on; nothing here can turn it off.
        check(pb_easy_setopt_long(easy, CURLOPT_SSL_VERIFYPEER, 1))
        check(pb_easy_setopt_long(easy, CURLOPT_SSL_VERIFYHOST, 2))
        check(pb_easy_setopt_long(easy, CURLOPT_SSLVERSION, Int(CURL_SSLVERSION_TLSv1_2)))
        if let caFile = tls.caFile {
            check(pb_easy_setopt_str(easy, CURLOPT_CAINFO, caFile))
            // The configured CA replaces the system store (Debian's libcurl also reads /etc/ssl/certs).
            check(pb_easy_setopt_str(easy, CURLOPT_CAPATH, nil))
        }
        if let certificate = tls.clientCertificate {
            check(pb_easy_setopt_str(easy, CURLOPT_SSLCERT, certificate))
            check(pb_easy_setopt_str(easy, CURLOPT_SSLCERTTYPE, "PEM"))
            check(pb_easy_setopt_str(easy, CURLOPT_SSLKEY, tls.clientKey ?? certificate))
            check(pb_easy_setopt_str(easy, CURLOPT_SSLKEYTYPE, "PEM"))
        }

        return first
    }

    /// Sets every option of one request; returns the first failing `CURLcode` (0: none).
    private func configure(_ transfer: Transfer, url: String, headerLines: [String], body: [UInt8]) -> UInt32 {
        let easy = transfer.easy
        var first = configureConnection(transfer, url: url)
        func check(_ code: CURLcode) { if first == 0 { first = code.rawValue } }

        check(pb_easy_setopt_str(easy, CURLOPT_REDIR_PROTOCOLS_STR, "https"))
        check(pb_easy_setopt_long(easy, CURLOPT_FOLLOWLOCATION, 0))
        check(pb_easy_setopt_long(easy, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1))
        check(pb_easy_setopt_long(easy, CURLOPT_POST, 1))
        check(pb_easy_setopt_off(easy, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(body.count)))
        body.withUnsafeBufferPointer { bytes in
            // COPYPOSTFIELDS copies POSTFIELDSIZE bytes now (binary-safe).
            let empty: StaticString = ""
            let pointer = bytes.baseAddress.map { UnsafeRawPointer($0) } ?? UnsafeRawPointer(empty.utf8Start)
            check(pb_easy_setopt_str(easy, CURLOPT_COPYPOSTFIELDS, pointer.assumingMemoryBound(to: CChar.self)))
        }
        for line in headerLines {
            guard let list = curl_slist_append(transfer.headerList, line) else { check(CURLE_OUT_OF_MEMORY); break }
            transfer.headerList = list
        }
        check(pb_easy_setopt_slist(easy, CURLOPT_HTTPHEADER, transfer.headerList))

        check(pb_easy_setopt_write_function(easy, { data, size, count, context in
            guard let context else { return 0 }
            return Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue().receive(data, size * count)
        }))
        check(pb_easy_setopt_ptr(easy, CURLOPT_WRITEDATA, Unmanaged.passUnretained(transfer).toOpaque()))
        return first
    }

    // MARK: libcurl's callbacks (never call curl_multi_* from these)

    private func socketChanged(_ fd: Int32, what: Int32) {
        if what == Int32(PB_CURL_POLL_REMOVE) {
            if let token = watches.removeValue(forKey: fd) { loop.unwatch(token) }
            return
        }
        let read = what & Int32(PB_CURL_POLL_IN) != 0
        let write = what & Int32(PB_CURL_POLL_OUT) != 0
        if let token = watches[fd] {
            loop.update(token, read: read, write: write)
        } else {
            watches[fd] = loop.watch(FileDescriptor(rawValue: fd), read: read, write: write) { [weak self] events in
                self?.socketReady(fd, events)
            }
        }
    }

    private func timerChanged(_ milliseconds: Int) {
        if let timer { loop.cancel(timer) }
        timer = nil
        guard milliseconds >= 0 else { return }
        timer = loop.schedule(at: MonotonicClock.now() + .milliseconds(milliseconds)) { [weak self] in
            self?.timerFired()
        }
    }

    // MARK: Event loop handlers

    private func socketReady(_ fd: Int32, _ events: PollEvents) {
        var mask: Int32 = 0
        if events.contains(.readable) || events.contains(.hangUp) { mask |= Int32(PB_CURL_CSELECT_IN) }
        if events.contains(.writable) { mask |= Int32(PB_CURL_CSELECT_OUT) }
        if events.contains(.error) { mask |= Int32(PB_CURL_CSELECT_ERR) }
        var running: Int32 = 0
        _ = curl_multi_socket_action(multi, fd, mask, &running)
        finishCompleted()
    }

    private func timerFired() {
        timer = nil
        var running: Int32 = 0
        _ = curl_multi_socket_action(multi, curl_socket_t(PB_CURL_SOCKET_TIMEOUT), 0, &running)
        finishCompleted()
    }

    /// Collects finished transfers, starts queued requests in their place, then
    /// runs the completions (which may post more).
    private func finishCompleted() {
        var finished: [(Transfer, UInt32)] = []
        var left: Int32 = 0
        while let message = curl_multi_info_read(multi, &left) {
            guard pb_msg_is_done(message) != 0, let easy = message.pointee.easy_handle,
                  let transfer = active.removeValue(forKey: easy) else { continue }
            if !transfer.urgent { activeOrdinary -= 1 }
            finished.append((transfer, pb_msg_result(message).rawValue))
        }
        guard !finished.isEmpty else { return }
        var results: [(Transfer, Result<HTTPResponse, HTTPError>)] = []
        var streamResults: [((Result<CurlStream, HTTPError>) -> Void, Result<CurlStream, HTTPError>)] = []
        for (transfer, code) in finished {
            if let streamCompletion = transfer.streamCompletion {
                streamResults.append((streamCompletion, connected(transfer, code)))
                continue
            }
            let result = outcome(transfer, code)
            curl_multi_remove_handle(multi, transfer.easy)
            transfer.release()
            results.append((transfer, result))
        }
        startQueued()
        for (completion, result) in streamResults { completion(result) }
        for (transfer, result) in results { transfer.completion(result) }
    }

    /// A connect-only transfer ended: its connection becomes a `CurlStream` (the easy handle stays
    /// in the multi handle, which owns the connection: removing it closes the connection), or it failed.
    private func connected(_ transfer: Transfer, _ code: UInt32) -> Result<CurlStream, HTTPError> {
        transfer.streamCompletion = nil
        var socket: curl_socket_t = -1
        if code == 0, pb_easy_getinfo_socket(transfer.easy, CURLINFO_ACTIVESOCKET, &socket) == CURLE_OK, socket >= 0 {
            let stream = CurlStream(client: self, transfer: transfer, fd: socket)
            streams[transfer.easy] = transfer
            return .success(stream)
        }
        let message = String(cString: transfer.errorBuffer)
        let error = httpError(curlCode: Int(code == 0 ? 7 : code), message: message.isEmpty ? Self.text(of: code) : explainingTLSAlert(message),
                              requestStarted: false, exceeded: false, responseStarted: false)
        curl_multi_remove_handle(multi, transfer.easy)
        transfer.release()
        return .failure(error)
    }

    /// Connections handed out as streams and not yet closed, by easy handle.
    private var streams: [UnsafeMutableRawPointer: Transfer] = [:]

    /// Closes a stream's connection (removing a connect-only handle from the multi handle closes it).
    func closeStream(_ transfer: Transfer) {
        guard streams.removeValue(forKey: transfer.easy) != nil else { return }
        curl_multi_remove_handle(multi, transfer.easy)
        transfer.release()
    }

    /// Opens a raw byte stream to `url`'s host and port (TCP, then TLS for https, through the
    /// configured proxy as a CONNECT tunnel) with every rule a request gets: verification always
    /// on, the CA file, the client certificate, plain http only to loopback, localhost pinned,
    /// the connect timeout, TCP keep-alive. Name resolution runs on libcurl's resolver thread and
    /// the connect and handshake are non-blocking, so the loop never waits. `completion` runs once,
    /// on the loop, never inside this call. Used by the OCPP-J uplink for its WebSocket.
    ///
    /// Give streams a client of their own: a request's connections share the client's cache,
    /// whose pruning must never pick a stream's connection.
    public func openStream(url: String, completion: @escaping (Result<CurlStream, HTTPError>) -> Void) {
        let sequence = nextSequence
        nextSequence += 1
        // A stream that cannot start fails from the loop too, through the requests' `refuse`.
        func fail(_ error: HTTPError) {
            refuse(sequence, error) { result in
                if case .failure(let e) = result { completion(.failure(e)) }
            }
        }
        if let problem = Self.urlProblem(url) {
            fail(.invalidRequest(problem))
            return
        }
        guard let easy = curl_easy_init() else {
            fail(.other(code: 27, "curl_easy_init failed"))
            return
        }
        let transfer = Transfer(easy: easy, sequence: sequence, maxBytes: 0, urgent: true, completion: { _ in })
        transfer.streamCompletion = completion
        var code = configureConnection(transfer, url: url)
        if code == 0 { code = pb_easy_setopt_long(easy, CURLOPT_CONNECT_ONLY, 1).rawValue }
        let added = code == 0 ? curl_multi_add_handle(multi, easy) : CURLM_OK
        guard code == 0, added == CURLM_OK else {
            transfer.release()
            let error: HTTPError = code != 0 ? .other(code: Int(code), "setting up the connection: \(Self.text(of: code))")
                : .other(code: Int(added.rawValue), "curl_multi_add_handle: \(String(cString: curl_multi_strerror(added)))")
            fail(error)
            return
        }
        active[easy] = transfer
        kick()
    }

    private func outcome(_ transfer: Transfer, _ code: UInt32) -> Result<HTTPResponse, HTTPError> {
        if code == 0 && !transfer.exceeded {
            var status = 0
            _ = pb_easy_getinfo_long(transfer.easy, CURLINFO_RESPONSE_CODE, &status)
            return .success(HTTPResponse(status: status, body: transfer.body))
        }
        var pretransfer: curl_off_t = 0
        var requestBytes = 0
        _ = pb_easy_getinfo_off(transfer.easy, CURLINFO_PRETRANSFER_TIME_T, &pretransfer)
        _ = pb_easy_getinfo_long(transfer.easy, CURLINFO_REQUEST_SIZE, &requestBytes)
        // libcurl keeps its *first* error text, which for a broken connection can be
        // an aside ("getpeername() failed"): then lead with the code's own text.
        var message = String(cString: transfer.errorBuffer)
        if message.isEmpty {
            message = Self.text(of: code)
        } else if code == 55 || code == 56, !message.lowercased().includes("alert"), tlsAlertNumber(in: message) == nil {
            message = "\(Self.text(of: code)): \(message)"
        }
        message = explainingTLSAlert(message)
        var status = 0
        _ = pb_easy_getinfo_long(transfer.easy, CURLINFO_RESPONSE_CODE, &status)
        return .failure(httpError(curlCode: Int(code), message: message,
                                  requestStarted: pretransfer > 0 || requestBytes > 0, exceeded: transfer.exceeded,
                                  responseStarted: status != 0))
    }

    private static func text(of code: UInt32) -> String {
        String(cString: curl_easy_strerror(CURLcode(rawValue: code)))
    }
}

/// One request on its easy handle: the buffers libcurl writes into, until `release`.
final class Transfer {
    let easy: UnsafeMutableRawPointer
    let sequence: UInt64
    /// Posted with `HTTPPriority.urgent`: counts against no ordinary slot.
    let urgent: Bool
    let completion: (Result<HTTPResponse, HTTPError>) -> Void
    /// Set for `openStream`: the connection itself is the result, not a response.
    var streamCompletion: ((Result<CurlStream, HTTPError>) -> Void)?
    let errorBuffer: UnsafeMutablePointer<CChar>
    var headerList: UnsafeMutablePointer<curl_slist>?
    /// The `CURLOPT_RESOLVE` entries (localhost pinned to loopback), alive as long as the handle.
    var resolveList: UnsafeMutablePointer<curl_slist>?
    private(set) var body: [UInt8] = []
    private(set) var exceeded = false
    private let maxBytes: Int
    private var released = false

    init(easy: UnsafeMutableRawPointer, sequence: UInt64, maxBytes: Int, urgent: Bool,
         completion: @escaping (Result<HTTPResponse, HTTPError>) -> Void) {
        self.easy = easy
        self.sequence = sequence
        self.urgent = urgent
        self.maxBytes = maxBytes
        self.completion = completion
        errorBuffer = .allocate(capacity: Int(PB_CURL_ERROR_SIZE))
        errorBuffer.initialize(repeating: 0, count: Int(PB_CURL_ERROR_SIZE))
    }

    /// libcurl's write callback: keeps the bytes, or refuses them (aborting the
    /// transfer with CURLE_WRITE_ERROR) once the body would pass the limit.
    func receive(_ data: UnsafeMutablePointer<CChar>?, _ count: Int) -> Int {
        guard count > 0, let data else { return 0 }
        guard body.count + count <= maxBytes else {
            exceeded = true
            return 0
        }
        body.append(contentsOf: UnsafeRawBufferPointer(start: data, count: count))
        return count
    }

    /// Frees the easy handle and buffers; the handle must be out of the multi handle.
    func release() {
        guard !released else { return }
        released = true
        curl_easy_cleanup(easy)
        curl_slist_free_all(headerList)
        headerList = nil
        curl_slist_free_all(resolveList)
        resolveList = nil
        errorBuffer.deallocate()
    }

    deinit { release() }
}

/// A raw byte stream over a connection libcurl set up (`HTTPClient.openStream`): TCP, or TLS
/// verified as for every request. Non-blocking: watch `fd` on the loop and call `receive` until
/// it says `wouldBlock` (TLS may hold decrypted bytes the socket no longer shows); `send` takes
/// what fits. Not thread-safe; close it before its client goes.
public final class CurlStream {
    /// What one `receive` gave.
    public enum Received: Equatable, Sendable {
        /// This many bytes were written into the buffer.
        case bytes(Int)
        /// Nothing now: wait for the fd to be readable.
        case wouldBlock
        /// The peer closed the connection.
        case closed
        /// The connection failed (reset, TLS alert): libcurl's text.
        case failed(String)
    }

    /// What one `send` did.
    public enum Sent: Equatable, Sendable {
        /// This many bytes (possibly fewer than offered) were taken.
        case bytes(Int)
        /// Nothing fits now: wait for the fd to be writable.
        case wouldBlock
        /// The connection failed: libcurl's text.
        case failed(String)
    }

    unowned let client: HTTPClient
    let transfer: Transfer
    /// The connection's socket, for the loop to watch; owned by libcurl (never close it).
    public let fd: Int32
    public private(set) var isClosed = false

    init(client: HTTPClient, transfer: Transfer, fd: Int32) {
        self.client = client; self.transfer = transfer; self.fd = fd
    }

    /// Reads what is there into `buffer`.
    public func receive(into buffer: UnsafeMutableRawBufferPointer) -> Received {
        guard !isClosed, let base = buffer.baseAddress, buffer.count > 0 else { return .failed("stream closed") }
        var n = 0
        let code = curl_easy_recv(transfer.easy, base, buffer.count, &n)
        switch code {
        case CURLE_OK: return n == 0 ? .closed : .bytes(n)
        case CURLE_AGAIN: return .wouldBlock
        default: return .failed(String(cString: curl_easy_strerror(code)))
        }
    }

    /// Writes as much of `bytes` as fits now.
    public func send(_ bytes: UnsafeRawBufferPointer) -> Sent {
        guard !isClosed else { return .failed("stream closed") }
        guard let base = bytes.baseAddress, bytes.count > 0 else { return .bytes(0) }
        var n = 0
        let code = curl_easy_send(transfer.easy, base, bytes.count, &n)
        switch code {
        case CURLE_OK: return .bytes(n)
        case CURLE_AGAIN: return n > 0 ? .bytes(n) : .wouldBlock
        default: return .failed(String(cString: curl_easy_strerror(code)))
        }
    }

    /// Closes the connection (unwatch `fd` first). Idempotent.
    public func close() {
        guard !isClosed else { return }
        isClosed = true
        client.closeStream(transfer)
    }

    deinit { close() }
}
