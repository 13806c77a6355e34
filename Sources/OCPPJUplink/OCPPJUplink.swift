import CloudHTTP
import Glibc
import JSONLines
import OCPPJ
import PaymentEngine
import Platform
import Station
import Timebase
import Uplink
import WebSocket

/// The limits of the OCPP-J connection that are not configuration keys.
public enum OCPPJLimits {
    /// From the stream being connected to the server's 101: a server that accepts TCP and says
    /// nothing must not hold the station.
    public static let handshakeTimeout: Duration = .seconds(30)
    /// Bytes waiting to be written: past this the connection is dropped (a CSMS that stopped
    /// reading); one CALL in flight keeps the normal figure far below it.
    public static let maxWriteBuffer = 2 << 20
    /// A `Retry-After` longer than this is cut to it: a typo at the CSMS must not silence a
    /// field of chargers for days.
    public static let maxRetryAfter: Duration = .seconds(3600)
    /// Authorize calls waiting at once; more cards get the offline policy at their deadline.
    public static let maxWaitingAuthorize = 8
    /// Bytes read from the stream per call.
    public static let readChunk = 16 << 10
    /// Reads per readiness event, so one chatty peer cannot starve the loop.
    public static let maxReadsPerEvent = 64
}

/// The outbox's settings under OCPP-J.
public enum OCPPJOutbox {
    /// Attempts (answered with an error or timed out) after which a message outside a
    /// transaction (StatusNotification, SecurityEventNotification) is dropped, kept as a dead
    /// letter: OCPP requires only transaction messages to be retried until delivered, and a
    /// status the CSMS keeps refusing is stale by then anyway.
    public static let maxAttemptsOther = 10
}

/// What the OCPP-J uplink needs to know.
public struct OCPPJSettings: Sendable {
    public var url: WebSocketURL
    public var stationId: String
    /// Security profiles 1 and 2: HTTP Basic with the station id and this password; nil for
    /// profile 3 (the client certificate identifies the station) or a CSMS without auth.
    public var password: [UInt8]?
    /// Offer `ocpp2.0.1` after `ocpp2.1` (`cloud.ocpp201_fallback`).
    public var offerOCPP201 = false
    /// WebSocket ping interval (`cloud.ping_seconds`); nil: no pings.
    public var pingInterval: Duration? = .seconds(60)
    /// How long a CALL waits for its answer (`cloud.response_timeout_seconds`).
    public var responseTimeout: Duration = RPCTiming.defaultResponseTimeout
    /// The BootNotificationRequest payload.
    public var bootPayload: JSON
    /// The CSMS's actions the station answers (`onIncomingCall`); the core answers the rest.
    public var handledActions: Set<String> = []
    /// The reconnect backoff.
    public var backoffInitial: Duration = .seconds(2)
    public var backoffCap: Duration = .seconds(300)

    public init(url: WebSocketURL, stationId: String, password: [UInt8]? = nil, bootPayload: JSON) {
        self.url = url; self.stationId = stationId; self.password = password; self.bootPayload = bootPayload
    }
}

/// What the uplink counts, for the technicians' status and the metrics.
public struct OCPPJCounters: Equatable, Sendable {
    /// Connections whose handshake completed.
    public var connections = 0
    /// Connects or handshakes that failed, and open connections that ended.
    public var connectFailures = 0
    public var disconnects = 0
    /// Cards left to the offline policy because no registered connection could ask.
    public var authorizeOffline = 0
    /// Cards refused because the CSMS answered Authorize with an error.
    public var authorizeRefused = 0
    public init() {}
}

/// The outbox's transport and the card decider over OCPP-J 2.1: one WebSocket to
/// `cloud.url/<station id>`, opened by libcurl (`HTTPClient.openStream`: TLS verification, the
/// CA file, the client certificate and the proxy as for HTTPS), framed by `WebSocketCore`, with
/// the RPC rules of `RPCCore` (Boot first, one CALL in flight, the response timeout).
///
/// The outbox learns only what it can act on: a message is `delivered` on its CALLRESULT,
/// `callError` on a CALLERROR, `failed` on a timeout, `unreachable` when there is no registered
/// connection or the connection went with the message in flight (it is resent with the same id,
/// which the CSMS uses to drop a duplicate). When a Boot is accepted, `onReady` tells the station
/// to send its queue now.
public final class OCPPJUplink: UplinkTransport, CardDecider {
    enum Phase {
        case idle
        case connecting(generation: Int)
        case handshaking(CurlStream, WebSocketResponseParser, WatchToken, deadline: Instant)
        case open(CurlStream, WebSocketCore<SystemRandomNumberGenerator>, WatchToken)
        case waiting(until: Instant)
        case stopped
    }

    public let settings: OCPPJSettings
    let loop: EventLoop
    let client: HTTPClient
    var rpc: RPCCore
    var phase: Phase = .idle
    var generation = 0
    var writeBuffer: [UInt8] = []
    var timer: TimerToken?
    var nextPingAt: Instant?
    var failures = 0
    var retryAfter: Duration?
    var rng = SystemRandomNumberGenerator()
    var authorizeIDs: MessageIDs
    /// Outbox messages submitted and not yet answered, with their completions.
    var deliveries: [String: (message: OutboxMessage, completion: (DeliveryResult) -> Void)] = [:]
    var authorizations: [String: (CardDecision) -> Void] = [:]
    var readBuffer = [UInt8](repeating: 0, count: OCPPJLimits.readChunk)

    /// The registration was accepted: the station should send its queue now.
    public var onReady: () -> Void = {}
    /// Something for the log.
    public var onNotice: (NoticeSeverity, String) -> Void = { _, _ in }
    /// A CALL from the CSMS (an action in `settings.handledActions`): answer it with `answer`.
    public var onIncomingCall: (_ id: String, _ action: String, _ payload: JSON) -> Void = { _, _, _ in }
    /// The CSMS's CALLRESULT to an outbox message (a TransactionEventResponse's cost and limit).
    public var onResult: (_ message: OutboxMessage, _ payload: JSON) -> Void = { _, _ in }
    public private(set) var counters = OCPPJCounters()
    /// The subprotocol of the open connection.
    public private(set) var subprotocol: String?

    /// `client` must be the uplink's own (streams stay in its multi handle for their lifetime).
    public init(loop: EventLoop, client: HTTPClient, settings: OCPPJSettings, seed: UInt64) {
        self.loop = loop
        self.client = client
        self.settings = settings
        var config = RPCConfig(bootPayload: settings.bootPayload, handledActions: settings.handledActions)
        config.responseTimeout = settings.responseTimeout
        rpc = RPCCore(config: config, seed: seed)
        authorizeIDs = MessageIDs(seed: seed ^ 0xA07)
    }

    /// Where the station stands with the CSMS.
    public var registration: RegistrationStatus { rpc.registration }
    /// The core's counters (malformed messages, timeouts, ...).
    public var rpcCounters: RPCCounters { rpc.counters }
    /// The heartbeat interval the CSMS set.
    public var heartbeatInterval: Duration? { rpc.heartbeatInterval }

    /// Starts connecting.
    public func start() {
        guard case .idle = phase else { return }
        connect()
    }

    /// Closes the connection (1001, going away) and stops reconnecting.
    public func stop() {
        if case .open(let stream, var ws, let watch) = phase {
            try? ws.close(code: .goingAway, reason: "station stopping", at: MonotonicClock.now())
            for case .write(let bytes) in ws.takeEffects() { writeBuffer += bytes }
            flush(stream)
            loop.unwatch(watch)
            stream.close()
        } else if case .handshaking(let stream, _, let watch, _) = phase {
            loop.unwatch(watch)
            stream.close()
        }
        phase = .stopped
        if let t = timer { loop.cancel(t); timer = nil }
        finishOutstanding("the uplink stopped")
    }

    // MARK: UplinkTransport

    public func send(_ message: OutboxMessage, completion: @escaping (DeliveryResult) -> Void) {
        guard isOpen, rpc.registration == .accepted else {
            let why = "not registered with the CSMS (\(rpc.registration))"
            later { completion(.unreachable(why)) }
            return
        }
        guard let call = OutgoingCall(id: message.id, action: message.action.rawValue, body: message.body) else {
            later { completion(.rejected(status: 0, response: "the payload is not a JSON object")) }
            return
        }
        deliveries[message.id] = (message, completion)
        apply(rpc.submit(call, now: MonotonicClock.now()))
    }

    // MARK: CardDecider

    public func decide(session: SessionKey, card: CardIdentity, connector: Int, reply: @escaping (CardDecision) -> Void) {
        guard isOpen, rpc.registration == .accepted else {
            counters.authorizeOffline += 1
            onNotice(.warning, "card decision: not registered with the CSMS (\(rpc.registration)); the offline policy decides at the deadline")
            return
        }
        guard authorizations.count < OCPPJLimits.maxWaitingAuthorize else {
            counters.authorizeOffline += 1
            onNotice(.warning, "card decision: \(OCPPJLimits.maxWaitingAuthorize) Authorize calls already waiting; the offline policy decides")
            return
        }
        let id = authorizeIDs.next()
        guard let call = OutgoingCall(id: id, action: OCPPAction.authorize.rawValue, body: Array(OCPPPayload.authorize(card: card).text.utf8)) else { return }
        authorizations[id] = reply
        apply(rpc.submit(call, now: MonotonicClock.now()))
    }

    // MARK: The CSMS's calls

    /// Answers an incoming CALL with a CALLRESULT.
    public func answer(id: String, payload: JSON) {
        apply(rpc.answer(id: id, payload: payload, now: MonotonicClock.now()))
    }

    /// Answers an incoming CALL with a CALLERROR.
    public func answer(id: String, error: RPCError) {
        apply(rpc.answer(id: id, error: error, now: MonotonicClock.now()))
    }

    /// TriggerMessage(BootNotification): a Boot goes next.
    public func triggerBoot() {
        apply(rpc.triggerBoot(now: MonotonicClock.now()))
    }

    /// TriggerMessage(Heartbeat): one goes as soon as nothing is in flight.
    public func triggerHeartbeat() {
        apply(rpc.triggerHeartbeat(now: MonotonicClock.now()))
    }

    /// SetVariables(OCPPCommCtrlr.HeartbeatInterval).
    public func setHeartbeatInterval(seconds: Int64) {
        apply(rpc.setHeartbeatInterval(seconds: seconds, now: MonotonicClock.now()))
    }

    // MARK: Connection

    var isOpen: Bool { if case .open = phase { return true } else { return false } }

    func later(_ body: @escaping () -> Void) {
        _ = loop.schedule(at: MonotonicClock.now()) { body() }
    }

    func connect() {
        generation += 1
        let g = generation
        phase = .connecting(generation: g)
        client.openStream(url: settings.url.streamURL) { [weak self] result in
            guard let self, case .connecting(let current) = self.phase, current == g else {
                if case .success(let s) = result { s.close() }
                return
            }
            switch result {
            case .failure(let e):
                self.connectionFailed("cannot connect to \(self.settings.url.streamURL): \(e)")
            case .success(let stream):
                self.startHandshake(stream)
            }
        }
    }

    func startHandshake(_ stream: CurlStream) {
        let request = WebSocketRequest.ocpp(host: settings.url.hostForHeader, port: settings.url.port, secure: settings.url.secure,
                                            pathPrefix: settings.url.pathPrefix, stationId: settings.stationId,
                                            offerOCPP201: settings.offerOCPP201, password: settings.password)
        var nonce = [UInt8](repeating: 0, count: WebSocketLimits.nonceBytes)
        for i in nonce.indices { nonce[i] = UInt8.random(in: 0...255, using: &rng) }
        let handshake: WebSocketHandshake
        do { handshake = try WebSocketHandshake(request: request, nonce: nonce) } catch {
            stream.close()
            connectionFailed("cannot build the handshake: \(error)")
            return
        }
        writeBuffer = handshake.requestBytes
        let watch = loop.watch(FileDescriptor(rawValue: stream.fd), read: true, write: true) { [weak self] events in
            self?.ready(events)
        }
        phase = .handshaking(stream, WebSocketResponseParser(handshake: handshake), watch,
                             deadline: MonotonicClock.now() + OCPPJLimits.handshakeTimeout)
        rearm()
    }

    func ready(_ events: PollEvents) {
        switch phase {
        case .handshaking(let stream, _, _, _), .open(let stream, _, _):
            if !writeBuffer.isEmpty, !flush(stream) { return }
            read(stream)
        default:
            return
        }
        updateWatch()
    }

    /// Writes what fits; false when the connection failed (and was torn down).
    @discardableResult
    func flush(_ stream: CurlStream) -> Bool {
        while !writeBuffer.isEmpty {
            let result = writeBuffer.withUnsafeBytes { stream.send($0) }
            switch result {
            case .bytes(let n):
                writeBuffer.removeFirst(n)
            case .wouldBlock:
                return true
            case .failed(let why):
                lost("write failed: \(why)")
                return false
            }
        }
        return true
    }

    func read(_ stream: CurlStream) {
        for _ in 0..<OCPPJLimits.maxReadsPerEvent {
            let result = readBuffer.withUnsafeMutableBytes { stream.receive(into: $0) }
            switch result {
            case .bytes(let n):
                received(Array(readBuffer[0..<n]))
                // The connection may have gone, or moved on from the handshake.
                switch phase {
                case .handshaking(let s, _, _, _) where s === stream: continue
                case .open(let s, _, _) where s === stream: continue
                default: return
                }
            case .wouldBlock:
                return
            case .closed:
                lost("the CSMS closed the connection")
                return
            case .failed(let why):
                lost("read failed: \(why)")
                return
            }
        }
    }

    func received(_ bytes: [UInt8]) {
        let now = MonotonicClock.now()
        switch phase {
        case .handshaking(let stream, var parser, let watch, let deadline):
            do {
                guard let result = try parser.append(bytes) else {
                    phase = .handshaking(stream, parser, watch, deadline: deadline)
                    return
                }
                subprotocol = result.subprotocol
                let ws = WebSocketCore(maskKeys: SystemRandomNumberGenerator(), leftover: [], at: now)
                phase = .open(stream, ws, watch)
                counters.connections += 1
                failures = 0
                retryAfter = nil
                onNotice(.info, "connected to the CSMS at \(settings.url.streamURL) (\(result.subprotocol))")
                nextPingAt = settings.pingInterval.map { now + $0 }
                apply(rpc.connected(now: now))
                if !result.leftover.isEmpty { webSocketInput(result.leftover, now) }
            } catch {
                if case let .refused(status, _, seconds, _) = error {
                    if let seconds { retryAfter = min(.seconds(max(seconds, 0)), OCPPJLimits.maxRetryAfter) }
                    let hint = status == 401 || status == 403 ? " (check cloud.station_id and the password or client certificate)" : ""
                    teardown(stream, watch)
                    connectionFailed("the CSMS refused the WebSocket: \(error)\(hint)")
                } else {
                    teardown(stream, watch)
                    connectionFailed("bad WebSocket handshake: \(error)")
                }
            }
        case .open:
            webSocketInput(bytes, now)
        default:
            return
        }
    }

    func webSocketInput(_ bytes: [UInt8], _ now: Instant) {
        guard case .open(let stream, var ws, let watch) = phase else { return }
        ws.receive(bytes, at: now)
        phase = .open(stream, ws, watch)
        drainWebSocket()
    }

    /// Carries out the WebSocket core's effects.
    func drainWebSocket() {
        guard case .open(let stream, var ws, let watch) = phase else { return }
        let effects = ws.takeEffects()
        phase = .open(stream, ws, watch)
        let now = MonotonicClock.now()
        for e in effects {
            switch e {
            case .write(let bytes):
                guard writeBuffer.count + bytes.count <= OCPPJLimits.maxWriteBuffer else {
                    lost("more than \(OCPPJLimits.maxWriteBuffer) bytes waiting to be written: the CSMS stopped reading")
                    return
                }
                writeBuffer += bytes
            case .message(let m):
                switch m {
                case .text(let text): apply(rpc.received(Array(text.utf8), now: now))
                case .binary:
                    // OCPP-J is text only: a binary message is a formation error with no id to answer.
                    onNotice(.warning, "binary WebSocket message from the CSMS ignored (OCPP-J is text)")
                }
                guard case .open(let s, _, _) = phase, s === stream else { return }
            case .closed(let code, let reason):
                lost("the CSMS closed the WebSocket (\(code)\(reason.isEmpty ? "" : ": \(reason)"))")
                return
            case .failed(let failure):
                flush(stream)
                lost("WebSocket failed: \(failure)")
                return
            }
        }
        if !writeBuffer.isEmpty { flush(stream) }
        updateWatch()
        rearm()
    }

    /// The RPC core's effects.
    func apply(_ effects: [RPCEffect]) {
        for e in effects {
            switch e {
            case .transmit(let text):
                guard case .open(let stream, var ws, let watch) = phase else { continue }
                do { try ws.sendText(text) } catch {
                    onNotice(.warning, "cannot send on the WebSocket: \(error)")
                }
                phase = .open(stream, ws, watch)
                drainWebSocket()
            case let .outcome(id, outcome):
                settle(id, outcome)
            case let .incomingCall(id, action, payload):
                onIncomingCall(id, action, payload)
            case .incomingSend(let action, _):
                onNotice(.info, "the CSMS sent \(action) (a SEND, not answered)")
            case .registration(let r):
                registrationChanged(r)
            case .csmsTime:
                continue
            case let .answerRefused(id, error):
                onNotice(.warning, "the CSMS could not process our answer to \(id): \(error.code.rawValue) \(error.description)")
            case .notice(let text):
                onNotice(.warning, "OCPP-J: \(text)")
            }
        }
        rearm()
    }

    func registrationChanged(_ r: RegistrationStatus) {
        switch r {
        case .accepted:
            onNotice(.info, "the CSMS accepted the BootNotification (heartbeat every \(rpc.heartbeatInterval ?? RPCTiming.defaultHeartbeat))")
            onReady()
        case .pending:
            onNotice(.warning, "the CSMS answered the BootNotification Pending: only its own requests until the next Boot")
        case .rejected:
            onNotice(.warning, "the CSMS rejected the BootNotification: nothing but Boot until its interval passes")
        case .booting, .disconnected:
            break
        }
    }

    /// One outcome of a submitted call: an outbox message or an Authorize.
    func settle(_ id: String, _ outcome: CallOutcome) {
        if let reply = authorizations.removeValue(forKey: id) {
            switch outcome {
            case .result(let payload):
                let decision = AuthorizeOutcome.decision(payload)
                switch decision {
                case .decided(let d): reply(d)
                case .refused(let why):
                    counters.authorizeRefused += 1
                    onNotice(.warning, "card decision: \(why); card refused")
                    reply(CardDecision(allowed: false))
                }
            case .error(let e):
                // The CSMS answered: only its "cannot now" errors leave the card to the offline policy.
                if e.code == .internalError || e.code == .genericError {
                    counters.authorizeOffline += 1
                    onNotice(.warning, "card decision: Authorize answered \(e.code.rawValue); the offline policy decides at the deadline")
                } else {
                    counters.authorizeRefused += 1
                    onNotice(.warning, "card decision: Authorize answered \(e.code.rawValue) \(e.description); card refused")
                    reply(CardDecision(allowed: false))
                }
            case .timedOut, .connectionLost, .refused:
                counters.authorizeOffline += 1
                onNotice(.warning, "card decision: Authorize not answered (\(outcome)); the offline policy decides at the deadline")
            }
            return
        }
        guard let (message, completion) = deliveries.removeValue(forKey: id) else { return }
        switch outcome {
        case .result(let payload):
            onResult(message, payload)
            completion(.delivered)
        case .error(let e):
            completion(.callError(code: e.code.rawValue, description: e.description))
        case .timedOut:
            completion(.failed("no answer within \(settings.responseTimeout)"))
        case .connectionLost:
            completion(.unreachable("the connection went with the message in flight"))
        case .refused(let why):
            completion(.failed("not sent: \(why)"))
        }
    }

    /// Every call still waiting for an answer ends: outbox messages as unreachable (resent later
    /// with the same id), Authorize calls to the offline policy.
    func finishOutstanding(_ why: String) {
        for id in rpc.withdrawWaiting() { settle(id, .connectionLost) }
        let pending = deliveries
        deliveries = [:]
        for (_, d) in pending { d.completion(.unreachable(why)) }
        authorizations = [:]
    }

    func teardown(_ stream: CurlStream, _ watch: WatchToken) {
        loop.unwatch(watch)
        stream.close()
        writeBuffer = []
    }

    /// The open connection ended: the core hears it, the outstanding calls end, a reconnect is scheduled.
    func lost(_ why: String) {
        switch phase {
        case .open(let stream, _, let watch):
            teardown(stream, watch)
            counters.disconnects += 1
            subprotocol = nil
            nextPingAt = nil
            onNotice(.warning, "CSMS connection lost: \(why)")
            apply(rpc.disconnected(now: MonotonicClock.now()))
            finishOutstanding(why)
            scheduleReconnect()
        case .handshaking(let stream, _, let watch, _):
            teardown(stream, watch)
            connectionFailed(why)
        default:
            return
        }
    }

    func connectionFailed(_ why: String) {
        counters.connectFailures += 1
        onNotice(.warning, "CSMS: \(why)")
        scheduleReconnect()
    }

    func scheduleReconnect() {
        if case .stopped = phase { return }
        var delay = Backoff.delay(failures: failures, initial: settings.backoffInitial, cap: settings.backoffCap,
                                  jitter: 0.2, random: Double.random(in: 0..<1, using: &rng))
        failures += 1
        if let r = retryAfter { delay = max(delay, r); retryAfter = nil }
        phase = .waiting(until: MonotonicClock.now() + delay)
        onNotice(.info, "reconnecting to the CSMS in \(delay)")
        rearm()
    }

    func updateWatch() {
        switch phase {
        case .handshaking(_, _, let w, _), .open(_, _, let w): loop.update(w, read: true, write: !writeBuffer.isEmpty)
        default: break
        }
    }

    /// One timer at the earliest deadline: handshake, reconnect, WebSocket (pong, close), ping, RPC.
    func rearm() {
        if let t = timer { loop.cancel(t); timer = nil }
        var at: [Instant?] = [rpc.nextDeadline]
        switch phase {
        case .handshaking(_, _, _, let deadline): at.append(deadline)
        case .open(_, let ws, _): at.append(ws.nextDeadline); at.append(nextPingAt)
        case .waiting(let until): at.append(until)
        default: break
        }
        guard let next = at.compactMap({ $0 }).min() else { return }
        timer = loop.schedule(at: next) { [weak self] in
            self?.timer = nil
            self?.fire()
        }
    }

    func fire() {
        let now = MonotonicClock.now()
        switch phase {
        case .waiting(let until) where now >= until:
            connect()
            return
        case .handshaking(_, _, _, let deadline) where now >= deadline:
            lost("no handshake answer within \(OCPPJLimits.handshakeTimeout)")
            return
        case .open(let stream, var ws, let watch):
            ws.advance(to: now)
            if let p = nextPingAt, now >= p, let interval = settings.pingInterval {
                try? ws.sendPing(Array("pb".utf8), at: now)
                nextPingAt = now + interval
            }
            phase = .open(stream, ws, watch)
            drainWebSocket()
            guard isOpen else { return }
        default:
            break
        }
        apply(rpc.tick(now: now))
    }
}

/// What a CALLRESULT to Authorize means for the card (pure). Any answer that is not a readable
/// `idTokenInfo.status` of Accepted refuses: the CSMS answered, and guessing "yes" is free charging.
public enum AuthorizeOutcome: Equatable, Sendable {
    case decided(CardDecision)
    case refused(String)

    public static func decision(_ payload: JSON) -> AuthorizeOutcome {
        guard case .string(let status)? = payload["idTokenInfo"]?["status"] else {
            return .refused("AuthorizeResponse without a readable idTokenInfo.status")
        }
        guard status == "Accepted" else { return .decided(CardDecision(allowed: false)) }
        return .decided(CardDecision(allowed: true, tariff: payload["tariff"].flatMap(TariffReading.tariff)))
    }
}

/// Reads an OCPP 2.1 TariffType into the engine's `Tariff` when it is one the engine can apply
/// exactly: one three-letter currency, at most one unconditional price each for energy, charging
/// time and a fixed fee, each a whole number of cents. Anything richer (conditions, several
/// prices, idle or reservation fees, minimum or maximum cost, sub-cent prices) is not applied:
/// the local tariff stays and the caller logs why. Amounts are read as exact decimals, never floats.
public enum TariffReading {
    /// Fraction digits the engine's minor units hold (cents).
    public static let exponent = 2

    public static func tariff(_ json: JSON) -> Tariff? {
        guard case .string(let currency)? = json["currency"], currency.utf8.count == 3 else { return nil }
        for unsupported in ["idleTime", "reservationTime", "reservationFixed", "minCost", "maxCost"] where json[unsupported] != nil { return nil }
        // nil: not applicable; .some(nil): the component is absent (no such charge).
        func single(_ component: String, _ field: String) -> Int64?? {
            guard let c = json[component] else { return .some(nil) }
            guard case .array(let prices)? = c["prices"], prices.count == 1, case .object(let fields) = prices[0],
                  !fields.contains(where: { $0.0 == "conditions" }), let v = prices[0][field], let minor = minorUnits(v) else { return nil }
            return .some(minor)
        }
        guard let energy = single("energy", "priceKwh"), let time = single("chargingTime", "priceMinute"),
              let fixed = single("fixedFee", "priceFixed") else { return nil }
        return Tariff(currency: currency, startFee: fixed ?? 0, energyPricePerKWh: energy ?? 0, timePricePerMinute: time ?? 0)
    }

    /// A price in the engine's cents (`ExactAmount.minorUnits` with `exponent`).
    public static func minorUnits(_ v: JSON) -> Int64? { ExactAmount.minorUnits(v, exponent: exponent) }
}

/// JSON numbers as exact amounts: OCPP writes money as decimals, and a float would turn 0.29
/// into 0.28999…; the text is read digit by digit instead.
public enum ExactAmount {
    /// A non-negative JSON number as a whole number of minor units with `exponent` fraction
    /// digits (2 for EUR, 0 for JPY), exactly; nil when it is negative, has more fraction digits
    /// (other than trailing zeros), an exponent part, or is a billion major units or more.
    public static func minorUnits(_ v: JSON, exponent: Int) -> Int64? {
        guard (0...4).contains(exponent) else { return nil }
        var scale: Int64 = 1
        for _ in 0..<exponent { scale *= 10 }
        let text: String
        switch v {
        case .int(let i): guard i >= 0, i < 1_000_000_000 else { return nil }; return i * scale
        case .decimal(let d): text = d
        default: return nil
        }
        guard !text.contains("e"), !text.contains("E"), !text.hasPrefix("-") else { return nil }
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count <= 2, let whole = Int64(parts[0]), whole < 1_000_000_000 else { return nil }
        var fraction = parts.count == 2 ? String(parts[1]) : ""
        while fraction.count > exponent, fraction.hasSuffix("0") { fraction.removeLast() }
        guard fraction.count <= exponent, fraction.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        while fraction.count < exponent { fraction += "0" }
        return whole * scale + (Int64(fraction) ?? 0)
    }
}

/// What a TransactionEventResponse says about money, read against the request it answers (pure).
public enum TransactionResponseReading {
    /// The transaction the request is about.
    public static func transactionId(_ request: JSON) -> String? {
        request["transactionInfo"]?["transactionId"]?.stringValue
    }

    /// The station's own total on an Ended event (`costDetails.totalCost`), in minor units, with its currency.
    public static func localTotal(_ request: JSON) -> (minor: Int64, currency: String)? {
        guard let total = request["costDetails"]?["totalCost"], let currency = total["currency"]?.stringValue,
              let v = total["total"]?["inclTax"], let minor = ExactAmount.minorUnits(v, exponent: CurrencyExponent.of(currency)) else { return nil }
        return (minor, currency)
    }

    /// The CSMS's `totalCost`, in minor units of `currency`.
    public static func csmsTotal(_ response: JSON, currency: String) -> Int64? {
        response["totalCost"].flatMap { ExactAmount.minorUnits($0, exponent: CurrencyExponent.of(currency)) }
    }
}
