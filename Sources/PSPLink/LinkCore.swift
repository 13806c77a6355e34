import PSPCodec
import Timebase

/// Identifies a request submitted to the link.
public struct RequestID: Hashable, Sendable, CustomStringConvertible {
    public let value: UInt64
    public var description: String { "#\(value)" }
}

/// How a submitted request ended.
public enum RequestOutcome: Equatable, Sendable {
    /// The terminal answered with a Result.
    case result(PSPResult)
    /// The terminal answered with a specific response (status, session outcome, card read, …).
    case response(TerminalMessage)
    /// Start Session / Read Card: no Result came within the grace period; the terminal is taken to be scanning.
    case assumedAccepted
    /// No answer within the command's timeout (after retries, for idempotent commands).
    case timedOut
    /// The link went down or the terminal reset while the request was queued or outstanding.
    case linkLost
    /// An answer came (its header answers this command) but could not be decoded: the command
    /// may or may not have taken effect. Not a refusal: a Session Approved with a DOL we cannot
    /// read is still an approval on the terminal.
    case unreadable(PSPMessageError)
    /// The link is not up; nothing was sent.
    case notReady
    /// Too many requests waiting; nothing was sent.
    case queueFull
    /// The command does not fit a frame; nothing was sent.
    case encodingFailed(PSPMessageError)
}

/// Link phases.
public enum LinkPhase: String, Sendable {
    /// No transport.
    case down
    /// Polling with Synchronize until the terminal echoes it.
    case synchronizing
    /// Protocol, Setup, Enable in turn.
    case configuring
    /// Enabled; session commands accepted.
    case ready
}

/// What the link reports to the layer above, in the order it happened.
public enum LinkEvent: Equatable, Sendable {
    /// Bring-up finished: the terminal is ENABLED.
    case up
    /// The link is no longer usable; the reason is for the log and the technicians.
    case down(reason: String)
    /// The terminal lost its PSP state (power cycle, reboot, TCP idle close): sessions in
    /// WAIT_CARD/WAIT_AUTH are gone; approved sessions stay on the terminal to commit or void.
    case terminalReset
    case terminalState(TerminalState)
    case identity(TerminalIdentity)
    /// The answer to Get Connection Info (`PSPLinkConfig.asksConnectionInfo`), once per bring-up:
    /// nil when the terminal gives none (a refusal such as "unknown command", an answer that
    /// cannot be read or is empty, or no answer within `LinkTimeouts.connectionInfo`).
    case connectionInfo(ConnectionInfo?)
    /// The terminal refused a bring-up step (`command`, Payter's name) with a detailed reason in
    /// `PSPLinkConfig.securityRefusals`: taken as its tamper / security violation mode
    /// ([INFERRED]: PSP documents no tamper signal). Reported once per failed bring-up streak.
    case securityAlert(command: String, reason: UInt8)
    case completed(RequestID, HostCommand, RequestOutcome)
    /// An unsolicited message or a session event (Card Read, Approved, Declined, Cancelled,
    /// Partially Approved, Transaction Event, UI Event, Update Session Result).
    case message(TerminalMessage)
    /// Bytes discarded while resynchronising.
    case malformed(MalformedKind, skipped: Int)
    /// A frame with a good checksum whose payload does not fit its header's layout; or, with
    /// `.invalid(field:)` from `ImplausibleReason.field`, a frame that decodes but that the link
    /// refuses to act on (`LinkCounters.implausible`): it completes no request.
    case undecodable(header: UInt8, error: PSPMessageError)
}

/// Why a frame with a good checksum that decodes was not acted on: its timing or values are
/// ones no real terminal answer has. On a P6X serial line an 8-bit checksum is all that guards
/// a frame, so line noise yields frames; these rules keep such a frame from changing payment
/// state. Each rejection is counted and reported (`.undecodable(header, .invalid(field:))`),
/// and it never completes a request: the request keeps waiting for the real answer and, failing
/// that, times out into the in-doubt path.
public enum ImplausibleReason: String, CaseIterable, Sendable {
    /// Session Approved, Partially Approved or Declined with no Auth Session outstanding or
    /// awaiting its outcome (`LinkTimeouts.authOutcome` after a bare OK or a timeout), or a
    /// second outcome to one Auth Session.
    case noAuthOutstanding
    /// Session Cancelled with no session flow (scan, card, authorisation) or Cancel Session in progress.
    case noSessionInProgress
    /// Card Read with no session flow started (Start Session / Read Card) and the terminal not
    /// reported scanning or waiting for an authorisation.
    case noScanActive
    /// Card Read naming no card (no masked PAN, no card hash): `PSPLinkConfig.requireCardIdentity`.
    case noCardIdentity
    /// Session Approved or Partially Approved with session ID 0.
    case zeroSessionID
    /// A session ID the link saw since bring-up: `PSPLinkConfig.rejectKnownSessionIDs`.
    case knownSessionID
    /// Partially approved amount of 0, or above the amount of the Start Session.
    case partialAmountOutOfRange

    /// The text of the `.invalid(field:)` error the link reports, for the log.
    public var field: String {
        switch self {
        case .noAuthOutstanding: return "session outcome: no Auth Session awaits one"
        case .noSessionInProgress: return "Session Cancelled: no session in progress"
        case .noScanActive: return "Card Read: no scan in progress"
        case .noCardIdentity: return "Card Read: no masked PAN or card hash"
        case .zeroSessionID: return "session ID 0"
        case .knownSessionID: return "session ID already known to the link"
        case .partialAmountOutOfRange: return "partially approved amount (0, or above the amount requested)"
        }
    }
}

/// What the shell must do for the link.
public enum LinkEffect: Equatable, Sendable {
    case write([UInt8])
    case event(LinkEvent)
    /// Close and reopen the transport (TCP: Payter recommends a reconnect after a response timeout).
    case resetTransport(reason: String)
}

/// Counters a technician can read.
public struct LinkCounters: Equatable, Sendable {
    public var framesSent = 0
    public var framesReceived = 0
    public var undecodable = 0
    public var unexpected = 0
    public var timeouts = 0
    public var retries = 0
    public var terminalResets = 0
    public var bringUps = 0
    /// Request Ids answers that could not be read or were refused: the identity stays unknown.
    public var identityUnavailable = 0
    /// Get Connection Info asked and not answered with network information (refused, unreadable,
    /// empty or unanswered): the inventory shows none until the next bring-up asks again.
    public var connectionInfoUnavailable = 0
    /// Bring-up steps refused with a reason in `PSPLinkConfig.securityRefusals` (tamper, inferred).
    public var securityRefusals = 0
    /// Get Status checks answered with something other than a certain status (a Result, an
    /// answer that reads both ways, or one that reads neither way): the state stays unknown.
    public var statusUnknown = 0
    /// Frames refused by the plausibility rules, by reason (`ImplausibleReason`).
    public var implausible: [ImplausibleReason: Int] = [:]
    public var implausibleTotal: Int { implausible.values.reduce(0, +) }
    /// Bring-ups at which the terminal's preamble and magic were learned (`PSPLinkConfig.lockFraming`).
    public var framingLocks = 0
    public var malformed = MalformedCounters()
}

/// The PSP link state machine. Pure: bytes, time and commands in; writes, events and
/// transport resets out. One request is outstanding at a time because PSP has no
/// correlation ids: a response belongs to the request in flight.
public struct PSPLinkCore: Sendable {
    public let config: PSPLinkConfig
    public private(set) var phase: LinkPhase = .down
    /// Last known (or inferred) terminal state.
    public private(set) var terminalState: TerminalState?
    public private(set) var format: PSPFrameFormat = .normal
    public private(set) var counters = LinkCounters()
    /// A security refusal was reported since the link was last up: the bring-up retries every
    /// second, and one report per streak is enough.
    var securityAlertReported = false

    struct Request: Sendable {
        var id: RequestID
        var command: HostCommand
        var internalStep: Bool
        var attempts = 0
        var deadline: Instant = .zero
        /// Start Session / Read Card: when the optional Result stops being waited for.
        var graceDeadline: Instant?
    }

    var decoder: PSPFrameDecoder
    var outstanding: Request?
    var queue: [Request] = []
    var nextID: UInt64 = 1
    var lastSend: Instant = .zero
    var lastByte: Instant = .zero
    var syncDue: Instant?
    var configSteps: [HostCommand] = []
    var statusCheckDue: Instant?
    /// Get Status checks in a row that gave no certain status (`statusUnknown`).
    var statusUnknownStreak = 0
    /// The preamble and magic learned at this bring-up (`PSPLinkConfig.lockFraming`); nil until then.
    public private(set) var learnedFraming: (preamble: UInt8, magic: UInt8)?
    /// Until when an outcome to the last Auth Session is still expected once it is no longer
    /// outstanding (answered by a bare OK, unreadable, or unanswered); nil when none is.
    var authOutcomeUntil: Instant?
    /// A Start Session / Read Card was sent and no outcome (approved, declined, cancelled) or
    /// refusal ended that session flow yet: a Session Cancelled may come (the cardholder or a
    /// terminal timeout aborting it), and a Card Read.
    var sessionInProgress = false
    /// The amount of the last Start Session (nil after a Read Card, which has none): the most a
    /// partial approval may be.
    var requestedAmount: UInt32?
    /// Session IDs seen since bring-up (`rejectKnownSessionIDs`), in arrival order and as a set.
    var knownSessionOrder: [UInt32] = []
    var knownSessions: Set<UInt32> = []

    public init(config: PSPLinkConfig) {
        self.config = config
        decoder = PSPFrameDecoder(options: PSPDecoderOptions(format: .normal, preamble: config.acceptPreamble,
                                                             magic: config.acceptMagic,
                                                             maxLength: config.maxAcceptLength(.normal)))
    }

    // MARK: inputs

    /// The transport connected (or a serial device opened): start bring-up.
    public mutating func transportUp(now: Instant) -> [LinkEffect] {
        var fx: [LinkEffect] = []
        restartBringUp(now: now, keepAuthOutcome: true, &fx)
        return fx
    }

    /// The transport failed or closed.
    public mutating func transportDown(reason: String, now: Instant) -> [LinkEffect] {
        var fx: [LinkEffect] = []
        let wasUp = phase != .down
        // A cable pulled or a connection lost during an authorisation: the terminal may still
        // send its outcome once the link is back (the engine takes it for the session in doubt).
        let authPending = awaitingAuthOutcome(now: now)
        failAll(&fx)
        phase = .down
        terminalState = nil
        syncDue = nil
        statusCheckDue = nil
        statusUnknownStreak = 0
        setFormat(.normal)
        forgetSessionContext(keepAuthOutcome: false)
        if authPending { authOutcomeUntil = now + config.timeouts.authOutcome }
        decoder.reset()
        if wasUp { fx.append(.event(.down(reason: reason))) }
        return fx
    }

    /// Bytes received from the transport.
    public mutating func receive(_ bytes: UnsafeRawBufferPointer, now: Instant) -> [LinkEffect] {
        var fx: [LinkEffect] = []
        guard phase != .down else { return fx }
        lastByte = now
        decoder.append(bytes)
        drainDecoder(now: now, &fx)
        return fx
    }

    public mutating func receive(_ bytes: [UInt8], now: Instant) -> [LinkEffect] {
        bytes.withUnsafeBytes { receive($0, now: now) }
    }

    /// Submits a command. The outcome arrives as `.completed` (maybe in the returned effects).
    public mutating func submit(_ command: HostCommand, now: Instant) -> (RequestID, [LinkEffect]) {
        let id = RequestID(value: nextID)
        nextID += 1
        var fx: [LinkEffect] = []
        if phase != .ready {
            fx.append(.event(.completed(id, command, .notReady)))
        } else if queue.count >= config.maxQueuedRequests {
            fx.append(.event(.completed(id, command, .queueFull)))
        } else {
            queue.append(Request(id: id, command: command, internalStep: false))
            pump(now: now, &fx)
        }
        return (id, fx)
    }

    /// Time passed: fire whatever is due.
    public mutating func tick(now: Instant) -> [LinkEffect] {
        var fx: [LinkEffect] = []
        guard phase != .down else { return fx }
        if decoder.bufferedCount > 0, now >= lastByte + config.timeouts.interByte {
            for e in decoder.flushStale() { handleDecodeEvent(e, now: now, &fx) }
        }
        if let r = outstanding {
            if let g = r.graceDeadline, now >= g {
                // No immediate Result to Start Session / Read Card: the terminal is scanning.
                outstanding = nil
                if terminalState == .enabled { setState(.waitCard, &fx) }
                fx.append(.event(.completed(r.id, r.command, .assumedAccepted)))
            } else if now >= r.deadline {
                counters.timeouts += 1
                if isIdempotent(r.command) && r.attempts <= config.maxRetries {
                    counters.retries += 1
                    outstanding = nil
                    send(r, now: now, &fx)
                } else {
                    outstanding = nil
                    requestTimedOut(r, now: now, &fx)
                }
            }
        }
        pump(now: now, &fx)
        return fx
    }

    /// The earliest instant at which `tick` has something to do.
    public var nextDeadline: Instant? {
        guard phase != .down else { return nil }
        var d: [Instant] = []
        if decoder.bufferedCount > 0 { d.append(lastByte + config.timeouts.interByte) }
        if let r = outstanding {
            d.append(r.deadline)
            if let g = r.graceDeadline { d.append(g) }
        } else {
            if phase == .synchronizing, let s = syncDue { d.append(s) }
            if phase == .ready {
                if let s = statusCheckDue { d.append(s) }
                d.append(lastSend + config.timeouts.keepAlive)
            }
        }
        return d.min()
    }

    // MARK: internals

    /// Starts bring-up again: the first Synchronize goes out at `syncAt` (now, or after a pause
    /// when the terminal refused a step, so a terminal that keeps refusing is not hammered).
    /// `keepAuthOutcome`: the transport came back (rather than the terminal losing its state),
    /// so an authorisation's outcome is still awaited, as `transportDown` left it.
    mutating func restartBringUp(now: Instant, syncAt: Instant? = nil, keepAuthOutcome: Bool = false, _ fx: inout [LinkEffect]) {
        failAll(&fx)
        phase = .synchronizing
        setFormat(.normal)
        configSteps = []
        statusCheckDue = nil
        statusUnknownStreak = 0
        forgetSessionContext(keepAuthOutcome: keepAuthOutcome)
        syncDue = syncAt ?? now
        counters.bringUps += 1
        pump(now: now, &fx)
    }

    /// A new bring-up: framing is learned again, and nothing outstanding from before counts
    /// (except an awaited authorisation outcome, when `keepAuthOutcome`).
    mutating func forgetSessionContext(keepAuthOutcome: Bool) {
        learnedFraming = nil
        decoder.options.preamble = config.acceptPreamble
        decoder.options.magic = config.acceptMagic
        if !keepAuthOutcome { authOutcomeUntil = nil }
        sessionInProgress = false
        requestedAmount = nil
        knownSessionOrder.removeAll()
        knownSessions.removeAll()
    }

    /// Remembers a session ID the terminal or we used (`rejectKnownSessionIDs`), bounded.
    mutating func remember(_ id: UInt32) {
        guard config.rejectKnownSessionIDs, config.maxKnownSessionIDs > 0, knownSessions.insert(id).inserted else { return }
        knownSessionOrder.append(id)
        if knownSessionOrder.count > config.maxKnownSessionIDs {
            knownSessions.remove(knownSessionOrder.removeFirst())
        }
    }

    /// The terminal answered our Synchronize: take its preamble and magic as the only ones until
    /// the next bring-up (`lockFraming`). A noise frame taken for the echo only costs a bring-up:
    /// the real answers then fail to match, a step times out and bring-up learns again.
    mutating func lockFraming(_ f: PSPFrame) {
        guard config.lockFraming, learnedFraming == nil else { return }
        learnedFraming = (f.preamble, f.magic)
        counters.framingLocks += 1
        if config.acceptPreamble == .any { decoder.options.preamble = .only(f.preamble) }
        if config.acceptMagic == .any { decoder.options.magic = .only(f.magic) }
    }

    /// Whether an Auth Session still awaits its outcome.
    func awaitingAuthOutcome(now: Instant) -> Bool {
        if case .authSession? = outstanding?.command { return true }
        if let u = authOutcomeUntil { return now < u }
        return false
    }

    /// Why the link must not act on `m`, or nil when it may. Only the messages that change
    /// payment state are judged; the rest pass as before.
    func implausibility(_ m: TerminalMessage, now: Instant) -> ImplausibleReason? {
        func sessionID(_ id: UInt32) -> ImplausibleReason? {
            if id == 0 { return .zeroSessionID }
            if config.rejectKnownSessionIDs, knownSessions.contains(id) { return .knownSessionID }
            return nil
        }
        switch m {
        case .sessionApproved(let id, _):
            guard awaitingAuthOutcome(now: now) else { return .noAuthOutstanding }
            return sessionID(id)
        case let .sessionPartiallyApproved(id, amount, _):
            guard awaitingAuthOutcome(now: now) else { return .noAuthOutstanding }
            if let r = sessionID(id) { return r }
            if amount == 0 { return .partialAmountOutOfRange }
            if let requested = requestedAmount, amount > requested { return .partialAmountOutOfRange }
            return nil
        case .sessionDeclined:
            return awaitingAuthOutcome(now: now) ? nil : .noAuthOutstanding
        case .sessionCancelled:
            // Not judged by the terminal's reported state: a Get Status answer is itself one
            // frame that noise can forge. We start every session flow ourselves.
            if awaitingAuthOutcome(now: now) || sessionInProgress { return nil }
            switch outstanding?.command {
            case .startSession?, .readCard?, .cancelSession?: return nil
            default: return .noSessionInProgress
            }
        case .cardRead(let dol):
            let scanning: Bool
            switch outstanding?.command {
            case .startSession?, .readCard?: scanning = true
            // The reported state also counts (EV mode reads a card in WAIT_AUTH, psp.md §3.2):
            // lenient, because a card read must also name a card.
            default: scanning = sessionInProgress || terminalState == .waitCard || terminalState == .waitAuth
            }
            guard scanning else { return .noScanActive }
            if config.requireCardIdentity {
                let named = dol.contains { t in
                    !t.value.isEmpty && (t.tag == DOLTag.maskedPAN || config.cardHashTags.contains(t.tag))
                }
                if !named { return .noCardIdentity }
            }
            return nil
        default:
            return nil
        }
    }

    /// Counts and reports a frame the link will not act on; it completes no request.
    mutating func reject(_ m: TerminalMessage, _ reason: ImplausibleReason, _ fx: inout [LinkEffect]) {
        counters.implausible[reason, default: 0] += 1
        fx.append(.event(.undecodable(header: m.header, error: .invalid(field: reason.field))))
    }

    /// After a message was acted on: what the link now knows about the session flow.
    mutating func noteActedOn(_ m: TerminalMessage, now: Instant) {
        switch m {
        case .sessionApproved(let id, _), .sessionPartiallyApproved(let id, _, _):
            remember(id)
            authOutcomeUntil = nil
            sessionInProgress = false
        case .sessionDeclined, .sessionCancelled:
            authOutcomeUntil = nil
            sessionInProgress = false
        case .sessionList(_, let ids):
            for id in ids { remember(id) }
        case .updateSessionResult(let u):
            remember(u.sessionID)
        default:
            break
        }
    }

    mutating func setFormat(_ f: PSPFrameFormat) {
        format = f
        decoder.options.format = f
        decoder.options.maxLength = config.maxAcceptLength(f)
    }

    mutating func setState(_ s: TerminalState, _ fx: inout [LinkEffect]) {
        guard s != terminalState else { return }
        terminalState = s
        fx.append(.event(.terminalState(s)))
    }

    mutating func failAll(_ fx: inout [LinkEffect]) {
        if let r = outstanding, !r.internalStep { fx.append(.event(.completed(r.id, r.command, .linkLost))) }
        outstanding = nil
        for r in queue where !r.internalStep { fx.append(.event(.completed(r.id, r.command, .linkLost))) }
        queue.removeAll()
    }

    func isIdempotent(_ c: HostCommand) -> Bool {
        switch c {
        case .synchronize, .getStatus, .requestIDs, .enable, .disable, .setup, .protocolSetup, .listSessions, .getReceipt:
            return true
        default:
            return false
        }
    }

    func timeout(for c: HostCommand) -> Duration {
        let t = config.timeouts
        switch c {
        case .authSession: return t.auth
        case .commitSession, .voidSession: return t.commitVoid
        case .startSession, .readCard: return t.cardDetect
        case .getReceipt: return t.receipt
        case .getConnectionInfo: return t.connectionInfo
        case .synchronize: return t.synchronizeInterval
        default: return t.general
        }
    }

    /// Sends the next queued request when none is outstanding, or a keep-alive when idle.
    mutating func pump(now: Instant, _ fx: inout [LinkEffect]) {
        guard outstanding == nil else { return }
        switch phase {
        case .down:
            return
        case .synchronizing:
            if let due = syncDue, now >= due {
                syncDue = nil
                send(Request(id: RequestID(value: 0), command: .synchronize, internalStep: true), now: now, &fx)
            }
        case .configuring:
            if let step = configSteps.first {
                send(Request(id: RequestID(value: 0), command: step, internalStep: true), now: now, &fx)
            }
        case .ready:
            if !queue.isEmpty {
                let r = queue.removeFirst()
                send(r, now: now, &fx)
            } else if let due = statusCheckDue, now >= due {
                statusCheckDue = nil
                send(Request(id: RequestID(value: 0), command: .getStatus, internalStep: true), now: now, &fx)
            } else if now >= lastSend + config.timeouts.keepAlive {
                send(Request(id: RequestID(value: 0), command: .getStatus, internalStep: true), now: now, &fx)
            }
        }
    }

    mutating func send(_ request: Request, now: Instant, _ fx: inout [LinkEffect]) {
        var r = request
        let (header, payload) = r.command.encode(headers: config.headers)
        var bytes: [UInt8] = []
        do {
            try PSPFrameEncoder.encode(header: header, payload: payload, preamble: config.hostPreamble, magic: config.hostMagic,
                                       format: format, maxLength: config.maxSendLength(format), into: &bytes)
        } catch {
            if !r.internalStep { fx.append(.event(.completed(r.id, r.command, .encodingFailed(error)))) }
            return
        }
        r.attempts += 1
        r.deadline = now + timeout(for: r.command)
        switch r.command {
        case .startSession, .readCard: r.graceDeadline = now + config.timeouts.startResultGrace
        default: r.graceDeadline = nil
        }
        switch r.command {
        case .authSession: authOutcomeUntil = nil
        case .startSession(let s): sessionInProgress = true; requestedAmount = s.amount
        case .readCard: sessionInProgress = true; requestedAmount = nil
        case .commitSession(let id, _), .voidSession(let id): remember(id)
        default: break
        }
        outstanding = r
        lastSend = now
        counters.framesSent += 1
        fx.append(.write(bytes))
    }

    mutating func requestTimedOut(_ r: Request, now: Instant, _ fx: inout [LinkEffect]) {
        if r.internalStep {
            switch phase {
            case .synchronizing:
                // Keep polling: a terminal that is booting answers eventually.
                syncDue = now
            case .configuring:
                restartBringUp(now: now, syncAt: now + config.timeouts.synchronizeInterval, &fx)
            case .ready:
                if case .getConnectionInfo = r.command {
                    // An Apollo that does not know the command may stay silent: inventory only,
                    // so the link stays up, without the reconnect Payter recommends after a TCP
                    // timeout. The cost: a late Result could be taken as the next request's
                    // answer, as after any timeout on a serial line.
                    connectionInfoUnavailable(&fx)
                    return
                }
                // Get Status went unanswered: the terminal is gone or wedged.
                fx.append(.resetTransport(reason: "no answer to \(r.command.name)"))
            case .down:
                break
            }
            return
        }
        fx.append(.event(.completed(r.id, r.command, .timedOut)))
        if case .authSession = r.command { authOutcomeUntil = now + config.timeouts.authOutcome }
        if config.transport == .tcp {
            fx.append(.resetTransport(reason: "no answer to \(r.command.name)"))
        } else {
            statusCheckDue = now
        }
    }

    mutating func drainDecoder(now: Instant, _ fx: inout [LinkEffect]) {
        while let e = decoder.next() {
            handleDecodeEvent(e, now: now, &fx)
            // A Protocol answer may switch the format; the decoder already uses the new one.
        }
        counters.malformed = decoder.counters
    }

    mutating func handleDecodeEvent(_ e: PSPDecodeEvent, now: Instant, _ fx: inout [LinkEffect]) {
        switch e {
        case let .malformed(kind, skipped):
            counters.malformed = decoder.counters
            fx.append(.event(.malformed(kind, skipped: skipped)))
        case .frame(let f):
            counters.framesReceived += 1
            let expectStatus: Bool
            if case .getStatus = outstanding?.command { expectStatus = true } else { expectStatus = false }
            let ctx = TerminalDecodeContext(zeroHeader: expectStatus ? .status : .result,
                                            wideDOLLength: format == .extended,
                                            identityLayout: config.family == .apollo ? .apollo : .p6x)
            do {
                let m = try TerminalMessage.decode(header: f.header, payload: f.payload, context: ctx)
                if let reason = implausibility(m, now: now) {
                    reject(m, reason, &fx)
                    pump(now: now, &fx)
                    return
                }
                if case .synchronize = m, phase == .synchronizing, case .synchronize? = outstanding?.command {
                    lockFraming(f)
                }
                if expectStatus, f.header == 0x00, let r = outstanding, r.internalStep,
                   TerminalMessage.zeroHeaderReadings(f.payload).isAmbiguous {
                    // Reads as a status and as a refusal alike (psp.md §4.2, e.g. [0x01, 0x05]:
                    // OFFLINE with an undocumented flag, or Not OK "not allowed in this state").
                    // Both readings are accepted; nothing either one contradicts is concluded.
                    outstanding = nil
                    statusUnknown(now: now)
                    pump(now: now, &fx)
                } else {
                    handle(m, now: now, &fx)
                }
            } catch {
                counters.undecodable += 1
                fx.append(.event(.undecodable(header: f.header, error: error)))
                // A garbled answer still answers: complete the request rather than wait for its timeout.
                if let r = outstanding, answers(f.header, r.command) {
                    outstanding = nil
                    if r.internalStep {
                        switch r.command {
                        // The inventory query is not needed to take payments: the identity stays
                        // unknown (the undecodable event above is the notice) and the link carries on.
                        case .requestIDs: counters.identityUnavailable += 1
                        case .getConnectionInfo: connectionInfoUnavailable(&fx)
                        case .getStatus: statusUnknown(now: now)
                        default: restartAfterFailedStep(now: now, &fx)
                        }
                    } else {
                        if case .authSession = r.command { authOutcomeUntil = now + config.timeouts.authOutcome }
                        fx.append(.event(.completed(r.id, r.command, .unreadable(error))))
                    }
                    pump(now: now, &fx)
                }
            }
        }
    }

    /// Whether a frame with `header` is the answer to `command` (by header alone).
    func answers(_ header: UInt8, _ command: HostCommand) -> Bool {
        switch command {
        case .synchronize: return header == 0x24
        case .requestIDs: return header == 0x27 || header == 0x00
        case .listSessions: return header == 0x30 || header == 0x00
        case .authSession: return [0x31, 0x32, 0x33, 0x35, 0x00].contains(header)
        case .cancelSession: return header == 0x33 || header == 0x00
        case .updateSession: return header == 0x43 || header == 0x00
        case .getReceipt: return header == 0x45 || header == 0x00
        case .getConnectionInfo: return header == 0x44 || header == 0x00
        case .startSession, .readCard: return header == 0x00 || header == 0x34 || header == 0x40
        default: return header == 0x00
        }
    }

    mutating func handle(_ m: TerminalMessage, now: Instant, _ fx: inout [LinkEffect]) {
        trackState(m, &fx)
        noteActedOn(m, now: now)
        let isSessionEvent: Bool
        switch m {
        case .cardRead, .propCardRead, .sessionApproved, .sessionDeclined, .sessionCancelled,
             .sessionPartiallyApproved, .transactionEvent, .uiEvent, .updateSessionResult:
            isSessionEvent = true
        default:
            isSessionEvent = false
        }
        if let r = outstanding, answers(m.header, r.command), !(m.header == 0x38) {
            outstanding = nil
            if case .authSession = r.command, case .result = m {
                // Acknowledged (or refused) without the outcome: it may still come on its own.
                authOutcomeUntil = now + config.timeouts.authOutcome
            }
            if case .result(let res) = m, !res.ok {
                switch r.command {
                case .startSession, .readCard: sessionInProgress = false
                default: break
                }
            }
            if r.internalStep {
                internalAnswered(r, m, now: now, &fx)
            } else {
                if isSessionEvent { fx.append(.event(.message(m))) }
                let outcome: RequestOutcome
                if case .result(let res) = m { outcome = .result(res) } else { outcome = .response(m) }
                fx.append(.event(.completed(r.id, r.command, outcome)))
                if case .result(let res) = m, !res.ok {
                    // Not OK can mean the terminal silently reset: ask for its state soon.
                    statusCheckDue = now
                }
                if case .result(let res) = m, res.ok {
                    switch r.command {
                    case .startSession, .readCard: setState(.waitCard, &fx)
                    case .enable: setState(.enabled, &fx)
                    case .disable: setState(.disabled, &fx)
                    default: break
                    }
                }
            }
            pump(now: now, &fx)
            return
        }
        if isSessionEvent {
            fx.append(.event(.message(m)))
        } else {
            counters.unexpected += 1
        }
        pump(now: now, &fx)
    }

    mutating func trackState(_ m: TerminalMessage, _ fx: inout [LinkEffect]) {
        switch m {
        case .cardRead, .propCardRead: setState(.waitAuth, &fx)
        case .sessionApproved, .sessionDeclined, .sessionCancelled, .sessionPartiallyApproved:
            if terminalState == .waitAuth || terminalState == .waitCard { setState(.enabled, &fx) }
        default: break
        }
    }

    /// A Get Status check that gave no certain status. The last known state stands; the terminal
    /// is asked again after `statusRecheck`, at most `maxRetries` times in a row, then only at
    /// the keep-alive interval, so a terminal that keeps refusing is not polled hard.
    mutating func statusUnknown(now: Instant) {
        counters.statusUnknown += 1
        statusUnknownStreak += 1
        guard statusUnknownStreak <= config.maxRetries else { return }
        let due = now + config.timeouts.statusRecheck
        if let d = statusCheckDue, d <= due { return }
        statusCheckDue = due
    }

    /// Get Connection Info gave no network information: counted and reported as not available,
    /// never retried in this bring-up (it is not idempotent-retried either) and never a reason
    /// to restart the link.
    mutating func connectionInfoUnavailable(_ fx: inout [LinkEffect]) {
        counters.connectionInfoUnavailable += 1
        fx.append(.event(.connectionInfo(nil)))
    }

    mutating func restartAfterFailedStep(now: Instant, _ fx: inout [LinkEffect]) {
        restartBringUp(now: now, syncAt: now + config.timeouts.synchronizeInterval, &fx)
    }

    mutating func internalAnswered(_ r: Request, _ m: TerminalMessage, now: Instant, _ fx: inout [LinkEffect]) {
        switch (r.command, m) {
        case (.synchronize, .synchronize):
            setState(.online, &fx)
            phase = .configuring
            configSteps = []
            if let o = config.protocolOptions { configSteps.append(.protocolSetup(version: config.protocolVersion, options: o)) }
            configSteps.append(.setup(sessionTimeoutSeconds: config.sessionTimeoutSeconds, action: config.sessionTimeoutAction))
            configSteps.append(.enable)
        case (.getStatus, .status(let s)):
            statusUnknownStreak = 0
            if let st = s.state { setState(st, &fx) }
            if phase == .ready, s.state == .offline || s.state == .online {
                // The terminal lost its PSP state under us.
                counters.terminalResets += 1
                fx.append(.event(.terminalReset))
                restartBringUp(now: now, &fx)
                return
            }
        case (.getStatus, _):
            // A Result to Get Status (a refusal, or an OK that says nothing): the state is unknown,
            // not OFFLINE. Get Status is always allowed (psp.md §3.3), so this is no reset either.
            statusUnknown(now: now)
        case (.requestIDs, .identity(let id)):
            fx.append(.event(.identity(id)))
        case (.requestIDs, _):
            // Refused: the identity stays unknown; it is inventory only.
            counters.identityUnavailable += 1
        case (.getConnectionInfo, .connectionInfo(let c)) where !c.isEmpty:
            fx.append(.event(.connectionInfo(c)))
        case (.getConnectionInfo, _):
            // Refused ("unknown command" from an Apollo without it), or nothing in the answer.
            connectionInfoUnavailable(&fx)
        case (_, .result(let res)) where phase == .configuring:
            guard res.ok else {
                switch r.command {
                case .setup, .enable:
                    if let reason = res.reason, config.securityRefusals.contains(reason) {
                        counters.securityRefusals += 1
                        if !securityAlertReported {
                            securityAlertReported = true
                            fx.append(.event(.securityAlert(command: r.command.name, reason: reason)))
                        }
                    }
                default: break
                }
                restartAfterFailedStep(now: now, &fx)
                return
            }
            configSteps.removeFirst()
            switch r.command {
            case .protocolSetup(_, let o):
                // The Protocol answer itself is in the normal format; everything after follows the option.
                if o.contains(.extendedFormat) { setFormat(.extended) }
            case .setup: setState(.disabled, &fx)
            case .enable: setState(.enabled, &fx)
            default: break
            }
            if configSteps.isEmpty {
                phase = .ready
                lastSend = now
                securityAlertReported = false
                fx.append(.event(.up))
                // Inventory queries, ahead of anything the engine asks once it hears `.up`: the
                // terminal is ENABLED and idle, not yet armed, so they cannot disturb a payment.
                var queries: [HostCommand] = []
                if config.requestIdentity { queries.append(.requestIDs) }
                if config.asksConnectionInfo { queries.append(.getConnectionInfo) }
                queue.insert(contentsOf: queries.map { Request(id: RequestID(value: 0), command: $0, internalStep: true) }, at: 0)
            }
        default:
            counters.unexpected += 1
        }
    }
}
