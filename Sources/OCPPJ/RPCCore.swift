import JSONLines
import Timebase

/// The timing limits of the RPC session, named so configuration and tests agree.
public enum RPCTiming {
    /// How long an outgoing CALL waits for its answer (OCPPCommCtrlr.MessageTimeout's usual value).
    public static let defaultResponseTimeout: Duration = .seconds(30)
    /// The heartbeat interval used when an Accepted BootNotification names none (0 or less).
    public static let defaultHeartbeat: Duration = .seconds(300)
    /// A CSMS asking for heartbeats more often than this is slowed down to it: a typo must not
    /// turn a field of chargers into a load test.
    public static let minHeartbeat: Duration = .seconds(10)
    /// And a day at most, so a station is never silent for longer than a technician can notice.
    public static let maxHeartbeat: Duration = .seconds(86_400)
    /// The wait before the next BootNotification when Pending or Rejected name none (OCPP: with
    /// an interval of 0 the station chooses its own, one that does not flood the CSMS), and after
    /// a Boot that timed out, was answered with an error or with a response we could not read.
    public static let defaultBootRetry: Duration = .seconds(60)
    /// The shortest wait before a Boot retry: the CSMS's interval is a minimum, so waiting longer is allowed.
    public static let minBootRetry: Duration = .seconds(10)
    /// The longest: past a day the station asks again anyway (a deliberate deviation from the
    /// interval's "minimum wait" so that an absurd value cannot strand a station for years).
    public static let maxBootRetry: Duration = .seconds(86_400)
}

/// A CALL the station wants to make: an outbox message, or one the station triggers itself.
public struct OutgoingCall: Equatable, Sendable {
    /// The OCPP message id: the outbox's stable id, the same on every resend.
    public var id: String
    public var action: String
    /// Always an object.
    public var payload: JSON
    /// Asked for by the CSMS with TriggerMessage: such calls may go out while the registration is Pending.
    public var triggered: Bool

    public init(id: String, action: String, payload: JSON, triggered: Bool = false) {
        self.id = id; self.action = action; self.payload = payload; self.triggered = triggered
    }

    /// A call from an outbox message, whose body is the payload's JSON text; nil when the body is
    /// not a JSON object (a bug upstream, not something to send).
    public init?(id: String, action: String, body: [UInt8], triggered: Bool = false) {
        guard let payload = try? JSON.parse(body), case .object = payload else { return nil }
        self.init(id: id, action: action, payload: payload, triggered: triggered)
    }
}

/// Why `submit` refused a call without sending it.
public enum SubmitRefusal: Equatable, Sendable {
    /// The id is empty or longer than 36 characters.
    case invalidID
    /// The action is not an action name.
    case invalidAction
    /// The payload is not an object.
    case invalidPayload
    /// A call with this id is already waiting or in flight.
    case duplicateID
    /// `RPCConfig.maxQueued` calls are already waiting.
    case queueFull
}

/// How a submitted call ended. Every submitted call gets exactly one.
public enum CallOutcome: Equatable, Sendable {
    /// The CSMS answered with a CALLRESULT.
    case result(JSON)
    /// The CSMS answered with a CALLERROR.
    case error(RPCError)
    /// No answer within the response timeout; a later answer is dropped.
    case timedOut
    /// The connection went while the call was in flight: the CSMS may or may not have it, so
    /// it is resent with the same id.
    case connectionLost
    /// Never sent.
    case refused(SubmitRefusal)
}

/// Where the station stands with the CSMS on this connection (OCPP B01–B03).
public enum RegistrationStatus: Equatable, Sendable {
    /// No connection.
    case disconnected
    /// Connected, no usable BootNotification response yet: only Boot may be sent.
    case booting
    /// Registered: heartbeats and the queue go out.
    case accepted
    /// Only answers to the CSMS and what it triggers, until Boot is retried.
    case pending
    /// Nothing but Boot after its interval; the CSMS's calls go unanswered.
    case rejected
}

/// What the core asks the shell to do or tells it.
public enum RPCEffect: Equatable, Sendable {
    /// Send this text message on the connection.
    case transmit(String)
    /// A submitted call ended.
    case outcome(id: String, CallOutcome)
    /// A CALL from the CSMS for the station to answer with `answer(id:...)`.
    case incomingCall(id: String, action: String, payload: JSON)
    /// A SEND from the CSMS (OCPP 2.1): never answered.
    case incomingSend(action: String, payload: JSON)
    /// The registration changed.
    case registration(RegistrationStatus)
    /// The CSMS's clock, from a BootNotification or Heartbeat response (RFC 3339 as received).
    case csmsTime(String)
    /// The CSMS could not process one of our CALLRESULTs (a CALLRESULTERROR, OCPP 2.1).
    case answerRefused(id: String, RPCError)
    /// Something for the log.
    case notice(String)
}

/// The session's configuration.
public struct RPCConfig: Equatable, Sendable {
    /// The BootNotificationRequest payload (see `BootPayload.make`).
    public var bootPayload: JSON
    /// Incoming actions the station answers; any other is answered by the core (NotSupported or NotImplemented).
    public var handledActions: Set<String>
    public var responseTimeout: Duration = RPCTiming.defaultResponseTimeout
    /// Submitted calls that may wait at once; the outbox keeps the rest on disk.
    public var maxQueued = 64
    /// Incoming CALLs awaiting the station's answer at once: the CSMS should have one in flight,
    /// a few more are tolerated, past that they are answered GenericError.
    public var maxIncoming = 4
    /// BootNotification after every connect (issue 15's choice); false sends it only on the first
    /// connect of the process and after a Rejected or Pending registration.
    public var bootOnEveryConnect = true

    public init(bootPayload: JSON, handledActions: Set<String>) {
        self.bootPayload = bootPayload; self.handledActions = handledActions
    }
}

/// What the core counted and dropped: for the log and the metrics.
public struct RPCCounters: Equatable, Sendable {
    /// Messages that broke the formation rules.
    public var malformed = 0
    /// Malformed messages that could not or must not be answered (no id, an error, a SEND).
    public var unanswerable = 0
    /// CALLRESULTs and CALLERRORs for no call in flight: late (after the timeout) or unknown.
    public var lateOrUnknownResponses = 0
    /// Outgoing calls that timed out.
    public var timeouts = 0
    /// Incoming CALLs answered NotImplemented or NotSupported by the core.
    public var unhandledActions = 0
    /// Incoming messages dropped because the registration was Rejected.
    public var droppedWhileRejected = 0
    /// Incoming CALLs whose id was already awaiting an answer.
    public var duplicateIncoming = 0
    /// Answers the station gave to calls no longer outstanding (e.g. from before a reconnect).
    public var staleAnswers = 0
    /// CALLRESULTERRORs received.
    public var answersRefused = 0
    public init() {}
}

/// The OCPP-J session core. Pure: connection events, text messages, the station's answers and
/// time in; text messages to send and effects out.
///
/// One outgoing CALL at a time (OCPP-J: a sender waits for the answer or the timeout before its
/// next CALL); answers to the CSMS go out whenever they are ready, because the rule is per
/// direction. After a connect only BootNotification may be sent; the registration decides what
/// follows (B01–B03).
public struct RPCCore: Sendable {
    public let config: RPCConfig

    enum Kind: Equatable, Sendable { case boot, heartbeat, queued(OutgoingCall) }
    struct InFlight: Sendable {
        var id: String
        var kind: Kind
        var deadline: Instant
    }

    public private(set) var registration: RegistrationStatus = .disconnected
    public private(set) var counters = RPCCounters()
    /// The heartbeat interval in force (nil before an Accepted registration).
    public private(set) var heartbeatInterval: Duration?
    var connected = false
    var everAccepted = false
    var queue: [OutgoingCall] = []
    var inFlight: InFlight?
    var bootDueAt: Instant?
    var bootTriggered = false
    var heartbeatDueAt: Instant?
    var incoming: [String] = []
    let idPrefix: String
    var ownCounter: UInt64 = 0

    /// `seed` makes the ids of the core's own calls (Boot, Heartbeat) differ between processes.
    public init(config: RPCConfig, seed: UInt64) {
        self.config = config
        var g = SeededGenerator(seed: seed)
        let r = g.next()
        idPrefix = "pbj-" + String(String(r, radix: 16).suffix(8))
    }

    /// The id of the outgoing CALL in flight, if any.
    public var inFlightID: String? { inFlight?.id }
    /// Submitted calls not yet sent (the one in flight excluded).
    public var waiting: [OutgoingCall] { queue }

    // MARK: Connection

    /// The connection is up: Boot first.
    public mutating func connected(now: Instant) -> [RPCEffect] {
        var fx: [RPCEffect] = []
        guard !connected else { return fx }
        connected = true
        if config.bootOnEveryConnect || !everAccepted {
            set(.booting, &fx)
            bootDueAt = now
        } else {
            set(.accepted, &fx)
            heartbeatDueAt = now + (heartbeatInterval ?? RPCTiming.defaultHeartbeat)
        }
        pump(now, &fx)
        return fx
    }

    /// The connection is gone: the call in flight is reported as not answered (the outbox sends it
    /// again with the same id); waiting calls stay; the CSMS's calls can no longer be answered.
    public mutating func disconnected(now: Instant) -> [RPCEffect] {
        var fx: [RPCEffect] = []
        guard connected else { return fx }
        connected = false
        if let f = inFlight, case .queued = f.kind { fx.append(.outcome(id: f.id, .connectionLost)) }
        inFlight = nil
        incoming = []
        bootDueAt = nil
        bootTriggered = false
        heartbeatDueAt = nil
        set(.disconnected, &fx)
        return fx
    }

    // MARK: Outgoing

    /// Queues a call; it goes out when the registration allows and nothing else is in flight.
    public mutating func submit(_ call: OutgoingCall, now: Instant) -> [RPCEffect] {
        var fx: [RPCEffect] = []
        let refusal: SubmitRefusal?
        if !RPCMessage.isMessageID(call.id) {
            refusal = .invalidID
        } else if !RPCMessage.isActionName(call.action) {
            refusal = .invalidAction
        } else if case .object = call.payload {
            // The core's own ids share a prefix no outbox id (a UUID) has; one that did would be
            // a second message under an id the core already used.
            let taken = call.id.hasPrefix(idPrefix) || inFlight?.id == call.id || queue.contains { $0.id == call.id }
            refusal = taken ? .duplicateID : queue.count >= config.maxQueued ? .queueFull : nil
        } else {
            refusal = .invalidPayload
        }
        if let refusal {
            fx.append(.outcome(id: call.id, .refused(refusal)))
            return fx
        }
        queue.append(call)
        pump(now, &fx)
        return fx
    }

    /// The CSMS asked for a BootNotification (TriggerMessage): it goes next. Whether to accept the
    /// trigger (OCPP: not once Accepted) is the station's decision.
    public mutating func triggerBoot(now: Instant) -> [RPCEffect] {
        var fx: [RPCEffect] = []
        guard connected else { return fx }
        bootTriggered = true
        pump(now, &fx)
        return fx
    }

    /// The CSMS asked for a Heartbeat (TriggerMessage): it goes as soon as nothing is in flight.
    /// Only while Accepted; otherwise nothing happens.
    public mutating func triggerHeartbeat(now: Instant) -> [RPCEffect] {
        var fx: [RPCEffect] = []
        guard connected, registration == .accepted else { return fx }
        heartbeatDueAt = now
        pump(now, &fx)
        return fx
    }

    /// The CSMS set `OCPPCommCtrlr.HeartbeatInterval` (SetVariables): the interval in force until
    /// the next accepted Boot, bounded as Boot's is; the next heartbeat is due one interval on.
    public mutating func setHeartbeatInterval(seconds: Int64, now: Instant) -> [RPCEffect] {
        var fx: [RPCEffect] = []
        let interval = RPCCore.heartbeat(seconds)
        heartbeatInterval = interval
        if registration == .accepted { heartbeatDueAt = now + interval }
        pump(now, &fx)
        return fx
    }

    /// Takes every submitted call that is waiting (not the one in flight) back out of the queue,
    /// returning their ids: when the connection goes, the shell ends them itself (an outbox message
    /// is resent after the next Boot, a card question is left to the offline policy) rather than
    /// let them go out late on a later connection.
    public mutating func withdrawWaiting() -> [String] {
        defer { queue = [] }
        return queue.map(\.id)
    }

    // MARK: Incoming

    /// One text message from the CSMS.
    public mutating func received(_ bytes: [UInt8], now: Instant) -> [RPCEffect] {
        var fx: [RPCEffect] = []
        guard connected else { return fx }
        let message: RPCMessage
        do {
            message = try RPCMessage.parse(bytes)
        } catch {
            counters.malformed += 1
            if registration == .rejected {
                counters.droppedWhileRejected += 1
            } else if let answer = error.answer {
                transmit(answer, now, &fx)
            } else {
                counters.unanswerable += 1
            }
            fx.append(.notice("malformed message from the CSMS: \(error.description)"))
            pump(now, &fx)
            return fx
        }
        switch message {
        case let .call(id, action, payload):
            incomingCall(id, action, payload, now, &fx)
        case let .send(_, action, payload):
            if registration == .rejected { counters.droppedWhileRejected += 1 }
            else { fx.append(.incomingSend(action: action, payload: payload)) }
        case let .callResult(id, payload):
            guard let f = inFlight, f.id == id else { counters.lateOrUnknownResponses += 1; break }
            inFlight = nil
            answered(f, payload, now, &fx)
        case let .callError(id, e):
            guard let f = inFlight, f.id == id else { counters.lateOrUnknownResponses += 1; break }
            inFlight = nil
            failed(f, e, now, &fx)
        case let .callResultError(id, e):
            counters.answersRefused += 1
            fx.append(.answerRefused(id: id, e))
        }
        pump(now, &fx)
        return fx
    }

    /// The station's answer to an incoming CALL.
    public mutating func answer(id: String, payload: JSON, now: Instant) -> [RPCEffect] {
        reply(id, .callResult(id: id, payload: payload), now)
    }

    /// The station's error answer to an incoming CALL.
    public mutating func answer(id: String, error: RPCError, now: Instant) -> [RPCEffect] {
        reply(id, .callError(id: id, error), now)
    }

    mutating func reply(_ id: String, _ message: RPCMessage, _ now: Instant) -> [RPCEffect] {
        var fx: [RPCEffect] = []
        guard connected, let i = incoming.firstIndex(of: id) else { counters.staleAnswers += 1; return fx }
        incoming.remove(at: i)
        transmit(message, now, &fx)
        pump(now, &fx)
        return fx
    }

    mutating func incomingCall(_ id: String, _ action: String, _ payload: JSON, _ now: Instant, _ fx: inout [RPCEffect]) {
        // B03: while Rejected the CSMS must not send and the station sends nothing but Boot, so
        // not even an error goes back; the CSMS's own timeout ends its call.
        if registration == .rejected { counters.droppedWhileRejected += 1; return }
        if incoming.contains(id) { counters.duplicateIncoming += 1; return }
        if !config.handledActions.contains(action) {
            counters.unhandledActions += 1
            let known = OCPP21Actions.all.contains(action)
            transmit(.callError(id: id, RPCError(known ? .notSupported : .notImplemented,
                                                 known ? "\(action) is not supported" : "\(action) is not a known action")), now, &fx)
            return
        }
        if incoming.count >= config.maxIncoming {
            transmit(.callError(id: id, RPCError(.genericError, "too many calls awaiting an answer")), now, &fx)
            return
        }
        incoming.append(id)
        fx.append(.incomingCall(id: id, action: action, payload: payload))
    }

    // MARK: Time

    /// Time passed: a response timeout, a Boot retry or a heartbeat that is due.
    public mutating func tick(now: Instant) -> [RPCEffect] {
        var fx: [RPCEffect] = []
        if let f = inFlight, now >= f.deadline {
            inFlight = nil
            counters.timeouts += 1
            switch f.kind {
            case .queued: fx.append(.outcome(id: f.id, .timedOut))
            case .boot: bootDueAt = now + RPCTiming.defaultBootRetry
            case .heartbeat: if let i = heartbeatInterval { heartbeatDueAt = now + i }
            }
            fx.append(.notice("no answer to \(f.id) within \(config.responseTimeout)"))
        }
        pump(now, &fx)
        return fx
    }

    /// When `tick` next has something to do (nil: only an input can change anything).
    public var nextDeadline: Instant? {
        guard connected else { return nil }
        if let f = inFlight { return f.deadline }
        switch registration {
        case .booting, .pending, .rejected: return bootDueAt
        case .accepted: return heartbeatDueAt
        case .disconnected: return nil
        }
    }

    // MARK: Inside

    mutating func set(_ r: RegistrationStatus, _ fx: inout [RPCEffect]) {
        guard r != registration else { return }
        registration = r
        fx.append(.registration(r))
    }

    mutating func ownID() -> String {
        ownCounter += 1
        return idPrefix + "-" + String(ownCounter)
    }

    mutating func transmit(_ m: RPCMessage, _: Instant, _ fx: inout [RPCEffect]) {
        fx.append(.transmit(m.text))
    }

    /// Sends the next CALL if the registration allows one and none is in flight.
    mutating func pump(_ now: Instant, _ fx: inout [RPCEffect]) {
        guard connected, inFlight == nil else { return }
        let bootDue = bootTriggered || (registration != .accepted && (bootDueAt.map { now >= $0 } ?? false))
        if bootDue {
            bootTriggered = false
            bootDueAt = nil
            let id = ownID()
            inFlight = InFlight(id: id, kind: .boot, deadline: now + config.responseTimeout)
            transmit(.call(id: id, action: "BootNotification", payload: config.bootPayload), now, &fx)
            return
        }
        switch registration {
        case .accepted:
            if let due = heartbeatDueAt, now >= due {
                let id = ownID()
                inFlight = InFlight(id: id, kind: .heartbeat, deadline: now + config.responseTimeout)
                transmit(.call(id: id, action: "Heartbeat", payload: .object([])), now, &fx)
                return
            }
            guard !queue.isEmpty else { return }
            send(queue.removeFirst(), now, &fx)
        case .pending:
            guard let i = queue.firstIndex(where: \.triggered) else { return }
            send(queue.remove(at: i), now, &fx)
        case .booting, .rejected, .disconnected:
            return
        }
    }

    mutating func send(_ call: OutgoingCall, _ now: Instant, _ fx: inout [RPCEffect]) {
        inFlight = InFlight(id: call.id, kind: .queued(call), deadline: now + config.responseTimeout)
        transmit(.call(id: call.id, action: call.action, payload: call.payload), now, &fx)
        // Any CALL is traffic: the heartbeat counts inactivity from the last one.
        if let i = heartbeatInterval, registration == .accepted { heartbeatDueAt = now + i }
    }

    mutating func answered(_ f: InFlight, _ payload: JSON, _ now: Instant, _ fx: inout [RPCEffect]) {
        switch f.kind {
        case .queued:
            fx.append(.outcome(id: f.id, .result(payload)))
        case .heartbeat:
            if case .string(let t)? = payload["currentTime"] { fx.append(.csmsTime(t)) }
            if let i = heartbeatInterval { heartbeatDueAt = now + i }
        case .boot:
            guard let response = BootResponse(payload) else {
                // OCPP 2.1: a CALLRESULT the receiver cannot process is answered with a CALLRESULTERROR.
                transmit(.callResultError(id: f.id, RPCError(.formatViolation, "BootNotificationResponse without a valid status and interval")), now, &fx)
                bootDueAt = now + RPCTiming.defaultBootRetry
                fx.append(.notice("unreadable BootNotification response: Boot again in \(RPCTiming.defaultBootRetry)"))
                return
            }
            if let t = response.currentTime { fx.append(.csmsTime(t)) }
            switch response.status {
            case .accepted:
                everAccepted = true
                let interval = RPCCore.heartbeat(response.interval)
                heartbeatInterval = interval
                heartbeatDueAt = now + interval
                bootDueAt = nil
                set(.accepted, &fx)
            case .pending:
                bootDueAt = now + RPCCore.bootRetry(response.interval)
                set(.pending, &fx)
            case .rejected:
                bootDueAt = now + RPCCore.bootRetry(response.interval)
                set(.rejected, &fx)
            }
        }
    }

    mutating func failed(_ f: InFlight, _ e: RPCError, _ now: Instant, _ fx: inout [RPCEffect]) {
        switch f.kind {
        case .queued: fx.append(.outcome(id: f.id, .error(e)))
        case .heartbeat: if let i = heartbeatInterval { heartbeatDueAt = now + i }
        case .boot:
            bootDueAt = now + RPCTiming.defaultBootRetry
            fx.append(.notice("BootNotification answered \(e.code.rawValue): Boot again in \(RPCTiming.defaultBootRetry)"))
        }
    }

    /// The heartbeat interval for an Accepted registration's `interval` seconds: 0 or less → the
    /// default; otherwise within [`minHeartbeat`, `maxHeartbeat`].
    public static func heartbeat(_ seconds: Int64) -> Duration {
        guard seconds > 0 else { return RPCTiming.defaultHeartbeat }
        return clamp(seconds, RPCTiming.minHeartbeat, RPCTiming.maxHeartbeat)
    }

    /// The wait before the next Boot after Pending or Rejected: 0 or less → the default (the
    /// station chooses); otherwise within [`minBootRetry`, `maxBootRetry`].
    public static func bootRetry(_ seconds: Int64) -> Duration {
        guard seconds > 0 else { return RPCTiming.defaultBootRetry }
        return clamp(seconds, RPCTiming.minBootRetry, RPCTiming.maxBootRetry)
    }

    static func clamp(_ seconds: Int64, _ low: Duration, _ high: Duration) -> Duration {
        // Compared in seconds, so an absurd Int64 never overflows a Duration.
        let lo = low.components.seconds, hi = high.components.seconds
        return .seconds(min(max(seconds, lo), hi))
    }
}

/// The parts of a BootNotificationResponse the core acts on.
struct BootResponse {
    enum Status: String { case accepted = "Accepted", pending = "Pending", rejected = "Rejected" }
    var status: Status
    var interval: Int64
    var currentTime: String?

    init?(_ payload: JSON) {
        guard case .string(let s)? = payload["status"], let status = Status(rawValue: s),
              case .int(let interval)? = payload["interval"] else { return nil }
        self.status = status
        self.interval = interval
        if case .string(let t)? = payload["currentTime"] { currentTime = t }
    }
}
