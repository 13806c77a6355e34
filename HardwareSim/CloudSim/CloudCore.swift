import Uplink
import WireFormat
/// The simulated charging platform, pure: a parsed HTTP request (or an OCPP-J message) and the
/// wall-clock time in, the response (or a dropped connection), its delay and one record line out.
///
/// Two bindings share one decision (`decide`: faults, dedupe by message id, the answer):
/// - HTTPS (issue 4): `POST {baseURL}/{stationId}/{Action}`, the OCPP 2.1 request payload as a
///   JSON body, `Content-Type: application/json`, `Idempotency-Key: <messageId>`; the response
///   body is the OCPP 2.1 response payload.
/// - OCPP-J (issue 15): a WebSocket upgrade of `GET /<anything>/<stationId>` (subprotocol
///   `ocpp2.1`, or `ocpp2.0.1`), then `[2,id,action,payload]` in, `[3,id,payload]` or
///   `[4,id,code,description,{}]` out (OCPPJBinding.swift).

/// The actions the simulated cloud answers over either binding: the daemon's own list
/// (`Uplink.OCPPAction`, a test keeps them in step) and BootNotification, with which an OCPP-J
/// connection opens.
public enum CloudAction: String, CaseIterable, Sendable {
    case bootNotification = "BootNotification"
    case authorize = "Authorize"
    case transactionEvent = "TransactionEvent"
    case notifySettlement = "NotifySettlement"
    case securityEventNotification = "SecurityEventNotification"
    case statusNotification = "StatusNotification"
    case heartbeat = "Heartbeat"
    case notifyReport = "NotifyReport"
}

/// The bindings cloud-sim serves on its one port (`--binding`).
public enum CloudBinding: String, CaseIterable, Sendable {
    /// `POST /{stationId}/{Action}` with an Idempotency-Key.
    case https
    /// OCPP-J RPC over a WebSocket (an `Upgrade: websocket` GET).
    case ocppJ = "ocpp-j"
}

/// The BootNotification answers `boot` can script (RegistrationStatusEnumType).
public enum BootStatus: String, CaseIterable, Sendable {
    case accepted = "Accepted"
    case pending = "Pending"
    case rejected = "Rejected"
}

/// Which requests a scripted fault applies to.
public enum ActionSelector: Hashable, Sendable, CustomStringConvertible {
    case all
    case action(CloudAction)

    public init?(_ word: String) {
        if word == "all" { self = .all; return }
        guard let a = CloudAction(rawValue: word) else { return nil }
        self = .action(a)
    }

    public var description: String {
        switch self {
        case .all: "all"
        case .action(let a): a.rawValue
        }
    }
}

/// A scripted fault: answer the next requests with a 503 or a 400, or drop the connection after reading them.
public enum CloudFault: String, CaseIterable, Sendable {
    case fail5xx
    case fail4xx
    case drop
}

/// One line of the scripting language (flags and standard input share it).
public enum CloudDirective: Equatable, Sendable {
    /// Close every connection and every new one at once, without reading.
    case down
    case up
    /// Delay every response by this many milliseconds (0: none).
    case slow(milliseconds: Int)
    /// Arm `count` occurrences of a fault for the selected requests (0 disarms).
    case fault(CloudFault, ActionSelector, count: Int)
    /// Authorize requests for this card (CardLast4Digits) are answered with `status`.
    case refuseCard(last4: String, status: String)
    /// Undo `refuseCard`.
    case acceptCard(last4: String)
    /// Answer 401 to every request without `Authorization: Bearer TOKEN` (an empty token: no check).
    case requireToken(String)
    /// BootNotification is answered with this status and heartbeat interval in seconds.
    case boot(BootStatus, intervalSeconds: Int)
    /// Close the OCPP-J WebSocket that carries the `afterMessages`-th next message (counted over
    /// all connections) with 1001 "close-ws", once that message is answered (0 disarms). Closing
    /// in the middle of traffic is what a CSMS restart looks like to a station.
    case closeWebSocket(afterMessages: Int)
    /// Refuse the next `count` WebSocket upgrades with `status` (0 disarms): a CSMS that is
    /// down or overloaded while the station reconnects.
    case refuseUpgrades(count: Int, status: Int)
    /// Back to normal service: up, not slow, no faults, no refused cards, boot Accepted every 300 s
    /// (remembered keys stay).
    case clear
    /// Forget every remembered message id (Idempotency-Key or OCPP-J id).
    case forget
    case quit

    public struct ParseError: Error, Equatable, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// The refusal statuses an AuthorizeResponse may carry (AuthorizationStatusEnumType, 2.1), Accepted aside.
    public static let refusalStatuses = ["Blocked", "ConcurrentTx", "Expired", "Invalid", "NoCredit",
                                        "NotAllowedTypeEVSE", "NotAtThisLocation", "NotAtThisTime", "Unknown"]

    /// The directive names, for usage text and flag parsing.
    public static let names = ["down", "up", "slow", "fail5xx", "fail4xx", "drop", "refuse-card", "accept-card", "require-token",
                               "boot", "close-ws", "refuse-upgrades", "clear", "forget", "quit"]

    /// The statuses `refuse-upgrades` may answer with.
    public static let upgradeRefusalStatuses = [400, 401, 403, 404, 429, 500, 503]
    /// The longest heartbeat interval `boot` takes: a day.
    public static let maxHeartbeatIntervalSeconds = 86_400

    /// Parses one directive from its words, e.g. `["fail5xx", "TransactionEvent", "2"]`.
    public static func parse(_ words: [String]) throws(ParseError) -> CloudDirective {
        func bad(_ s: String) -> ParseError { ParseError(description: s) }
        func count(_ word: String?) throws(ParseError) -> Int {
            guard let word else { return 1 }
            guard let n = Int(word), n >= 0 else { throw bad("COUNT must be a whole number, not \(word)") }
            return n
        }
        guard let name = words.first else { throw bad("empty directive") }
        let args = Array(words.dropFirst())
        func arity(_ range: ClosedRange<Int>, _ usage: String) throws(ParseError) {
            guard range.contains(args.count) else { throw bad("usage: \(usage)") }
        }
        switch name {
        case "down": try arity(0...0, "down"); return .down
        case "up": try arity(0...0, "up"); return .up
        case "clear": try arity(0...0, "clear"); return .clear
        case "forget": try arity(0...0, "forget"); return .forget
        case "quit": try arity(0...0, "quit"); return .quit
        case "slow":
            try arity(1...1, "slow MS")
            guard let ms = Int(args[0]), ms >= 0, ms <= 3_600_000 else { throw bad("slow: MS must be 0...3600000") }
            return .slow(milliseconds: ms)
        case "fail5xx", "fail4xx", "drop":
            try arity(1...2, "\(name) ACTION|all [COUNT]")
            guard let selector = ActionSelector(args[0]) else {
                throw bad("\(name): unknown action \(args[0]) (one of \(CloudAction.allCases.map(\.rawValue).joined(separator: ", ")), or all)")
            }
            return .fault(CloudFault(rawValue: name)!, selector, count: try count(args.count > 1 ? args[1] : nil))
        case "refuse-card":
            try arity(1...2, "refuse-card LAST4 [STATUS]")
            let status = args.count > 1 ? args[1] : "Invalid"
            guard refusalStatuses.contains(status) else {
                throw bad("refuse-card: STATUS must be one of \(refusalStatuses.joined(separator: ", "))")
            }
            return .refuseCard(last4: args[0], status: status)
        case "accept-card":
            try arity(1...1, "accept-card LAST4")
            return .acceptCard(last4: args[0])
        case "require-token":
            try arity(0...1, "require-token [TOKEN]")
            return .requireToken(args.first ?? "")
        case "boot":
            try arity(1...2, "boot Accepted|Pending|Rejected [INTERVAL]")
            guard let status = BootStatus(rawValue: args[0]) else {
                throw bad("boot: STATUS must be one of \(BootStatus.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            var interval = CloudScript.defaultHeartbeatIntervalSeconds
            if args.count > 1 {
                guard let n = Int(args[1]), n >= 1, n <= maxHeartbeatIntervalSeconds else {
                    throw bad("boot: INTERVAL must be 1...\(maxHeartbeatIntervalSeconds) seconds")
                }
                interval = n
            }
            return .boot(status, intervalSeconds: interval)
        case "close-ws":
            try arity(0...1, "close-ws [COUNT]")
            return .closeWebSocket(afterMessages: try count(args.first))
        case "refuse-upgrades":
            try arity(0...2, "refuse-upgrades [COUNT [STATUS]]")
            var status = 503
            if args.count > 1 {
                guard let s = Int(args[1]), upgradeRefusalStatuses.contains(s) else {
                    throw bad("refuse-upgrades: STATUS must be one of \(upgradeRefusalStatuses.map(String.init).joined(separator: ", "))")
                }
                status = s
            }
            return .refuseUpgrades(count: try count(args.first), status: status)
        default:
            throw bad("unknown directive \(name) (one of \(names.joined(separator: ", ")))")
        }
    }
}

/// How the simulated cloud behaves right now.
public struct CloudScript: Equatable, Sendable {
    public var down = false
    public var slowMilliseconds = 0
    /// Remaining occurrences per fault and selector.
    public var faults: [CloudFault: [ActionSelector: Int]] = [:]
    /// CardLast4Digits → the AuthorizationStatus to answer.
    public var refusedCards: [String: String] = [:]
    /// The bearer token every request must carry; nil: none checked. An OCPP-J upgrade may carry
    /// it as the Basic password instead (security profile 1).
    public var requiredToken: String?
    /// BootNotification's answer.
    public var bootStatus = BootStatus.accepted
    public var heartbeatIntervalSeconds = CloudScript.defaultHeartbeatIntervalSeconds
    /// OCPP-J messages still to answer before the WebSocket that carries the last one is closed; nil: off.
    public var closeWebSocketAfter: Int?
    /// Upgrades still to refuse, and with which status.
    public var refusedUpgrades = 0
    public var upgradeRefusalStatus = 503

    /// OCPP's usual heartbeat interval: 5 minutes.
    public static let defaultHeartbeatIntervalSeconds = 300

    public init() {}

    /// Takes one occurrence of `fault` for `action` (its own count first, then `all`).
    mutating func take(_ fault: CloudFault, for action: CloudAction) -> Bool {
        for selector in [ActionSelector.action(action), .all] {
            if let n = faults[fault]?[selector], n > 0 {
                faults[fault]![selector] = n - 1
                return true
            }
        }
        return false
    }
}

/// What the shell does with one request.
public struct CloudOutcome: Sendable {
    /// The response; nil: close the connection without answering.
    public var response: HTTPResponse?
    /// Wait this long before sending the response.
    public var delayMilliseconds: Int
    /// Close the connection after the response (errors that leave the framing in doubt).
    public var closeAfter: Bool
    /// The line for the `--record` file.
    public var record: CloudJSON
}

/// What the cloud decides about one message, whichever binding carried it: each binding turns it
/// into its own answer (an HTTP status, an OCPP-J CALLRESULT or CALLERROR).
public struct CloudDecision: Equatable, Sendable {
    public enum Verdict: Equatable, Sendable {
        /// Processed, now or before: the OCPP 2.1 response payload.
        case answered(CloudJSON)
        /// `fail5xx`: not processed and not remembered, so a retry is processed.
        case unavailable
        /// `fail4xx`: rejected for good; a retry with the same id gets this again.
        case rejected
        /// The message id was first used for another action.
        case idReused(previous: CloudAction)
        /// The message id came before for the same action with another payload: not a retry (a
        /// retry resends the same message), so a station whose ids repeat, after a restart say,
        /// is told so rather than given another message's old answer.
        case payloadChanged
    }

    public var verdict: Verdict
    /// The id was seen before: a retry (or a reused id).
    public var duplicate: Bool
    /// `drop`: processed and remembered, but the answer is lost with the connection.
    public var dropped: Bool

    /// The status both bindings record (the HTTP binding answers with it): 200, 503, 400 or 422.
    public var status: Int {
        switch verdict {
        case .answered: return 200
        case .unavailable: return 503
        case .rejected: return 400
        case .idReused, .payloadChanged: return 422
        }
    }

    /// The record's `error` text, and the HTTP binding's error body.
    public var error: String? {
        switch verdict {
        case .answered: return nil
        case .unavailable: return "unavailable (cloud-sim)"
        case .rejected: return "rejected by cloud-sim"
        case .idReused(let previous): return "message id was used for \(previous.rawValue)"
        case .payloadChanged: return "message id was used for another payload"
        }
    }
}

public struct CloudSimCore: Sendable {
    /// Paths for other stations get 404 when set.
    public let station: String?
    /// The bindings served; a request for another is refused.
    public let bindings: Set<CloudBinding>
    public var script = CloudScript()
    /// Message ids (Idempotency-Keys, OCPP-J ids) remembered at most; the oldest is forgotten first.
    public let memoryLimit: Int

    /// What a message id was answered with. Both bindings share the memory: the daemon's message
    /// id is the outbox's stable id, whichever binding carries it.
    struct Remembered: Sendable {
        var action: CloudAction
        /// The payload's hash (not the payload: the memory holds 100 000 ids), to tell a retry
        /// from a reused id.
        var payloadHash: Int
        /// `.answered` or `.rejected`.
        var verdict: CloudDecision.Verdict
    }

    private var remembered: [String: Remembered] = [:]
    private var rememberedOrder: [String] = []
    private var rememberedOrderStart = 0

    /// Requests answered (or dropped) with a processed action, duplicates excluded.
    public private(set) var processedCount = 0

    public init(station: String? = nil, bindings: Set<CloudBinding> = Set(CloudBinding.allCases), memoryLimit: Int = 100_000) {
        self.station = station
        self.bindings = bindings
        self.memoryLimit = max(1, memoryLimit)
    }

    /// Keys remembered now.
    public var rememberedCount: Int { remembered.count }

    // MARK: Scripting

    /// Applies a directive (the shell handles `quit`); returns the acknowledgement text.
    public mutating func apply(_ directive: CloudDirective) -> String {
        switch directive {
        case .down: script.down = true; return "down"
        case .up: script.down = false; return "up"
        case .slow(let ms): script.slowMilliseconds = ms; return "slow \(ms)"
        case let .fault(fault, selector, count):
            script.faults[fault, default: [:]][selector] = count
            return "\(fault.rawValue) \(selector) \(count)"
        case let .refuseCard(last4, status):
            script.refusedCards[last4] = status
            return "refuse-card \(last4) \(status)"
        case .acceptCard(let last4):
            script.refusedCards[last4] = nil
            return "accept-card \(last4)"
        case .requireToken(let token):
            script.requiredToken = token.isEmpty ? nil : token
            // The token itself is not echoed: it is a credential.
            return token.isEmpty ? "require-token none" : "require-token set"
        case let .boot(status, interval):
            script.bootStatus = status
            script.heartbeatIntervalSeconds = interval
            return "boot \(status.rawValue) \(interval)"
        case .closeWebSocket(let n):
            script.closeWebSocketAfter = n > 0 ? n : nil
            return "close-ws \(n)"
        case let .refuseUpgrades(count, status):
            script.refusedUpgrades = count
            script.upgradeRefusalStatus = status
            return "refuse-upgrades \(count) \(status)"
        case .clear:
            script = CloudScript()
            return "clear"
        case .forget:
            remembered = [:]
            rememberedOrder = []
            rememberedOrderStart = 0
            return "forget"
        case .quit:
            return "quit"
        }
    }

    // MARK: Requests

    /// Answers one complete request received at `wallMilliseconds` (Unix epoch, for the record and Heartbeat).
    public mutating func handle(_ request: HTTPRequest, wallMilliseconds now: Int64) -> CloudOutcome {
        let route = Self.route(request.target)
        let messageId = request.header("Idempotency-Key")
        var record = RecordLine(action: route?.action, station: route?.station, messageId: messageId, t: now)

        func refuse(_ status: Int, _ error: String, headers: [(name: String, value: String)] = [],
                    close: Bool = false) -> CloudOutcome {
            record.status = status
            record.error = error
            return CloudOutcome(response: .json(status, .object([("error", .string(error))]), headers: headers),
                                delayMilliseconds: script.slowMilliseconds, closeAfter: close, record: record.json)
        }

        guard bindings.contains(.https) else {
            // Only OCPP-J is served: a plain GET is told to upgrade, anything else that the HTTP binding is off.
            if request.method == "GET" {
                return refuse(426, "this cloud-sim serves OCPP-J only: upgrade to a WebSocket", headers: [("Upgrade", "websocket")], close: true)
            }
            return refuse(404, "the HTTP binding is off (--binding ocpp-j)")
        }
        guard let route else { return refuse(404, "path must end in /{stationId}/{Action}") }
        guard let action = CloudAction(rawValue: route.action) else { return refuse(404, "unknown action \(route.action)") }
        if let station, route.station != station { return refuse(404, "unknown station \(route.station)") }
        guard request.method == "POST" else { return refuse(405, "method \(request.method) not allowed", headers: [("Allow", "POST")]) }
        if let token = script.requiredToken, request.header("Authorization") != "Bearer \(token)" {
            return refuse(401, "missing or wrong bearer token", headers: [("WWW-Authenticate", "Bearer")])
        }
        let mediaType = request.header("Content-Type")?.split(separator: ";").first?.trimmingWhitespace().lowercased()
        guard mediaType == "application/json" else {
            return refuse(415, "Content-Type must be application/json, not \(request.header("Content-Type") ?? "none")")
        }
        let body: CloudJSON
        do {
            body = try CloudJSON.parse(request.body)
        } catch {
            return refuse(400, "body is not JSON: \(error)")
        }
        record.body = body
        guard case .object = body else { return refuse(400, "body is not a JSON object") }
        guard let key = messageId, !key.isEmpty else { return refuse(400, "missing Idempotency-Key") }

        let decision = decide(action, messageId: key, body: body, wallMilliseconds: now)
        record.duplicate = decision.duplicate
        record.status = decision.status
        record.error = decision.error
        var response: HTTPResponse
        switch decision.verdict {
        case .answered(let payload):
            response = .json(200, payload)
            if decision.duplicate { response.headers.append(("Idempotent-Replayed", "true")) }
        case .unavailable, .rejected:
            response = .json(decision.status, .object([("error", .string(decision.error ?? ""))]))
        case .idReused(let previous):
            record.error = "Idempotency-Key \(key) was used for \(previous.rawValue)"
            response = .json(422, .object([("error", .string(record.error!))]))
        case .payloadChanged:
            record.error = "Idempotency-Key \(key) was used for another body"
            response = .json(422, .object([("error", .string(record.error!))]))
        }
        if decision.dropped {
            record.dropped = true
            return CloudOutcome(response: nil, delayMilliseconds: 0, closeAfter: true, record: record.json)
        }
        return CloudOutcome(response: response, delayMilliseconds: script.slowMilliseconds, closeAfter: false, record: record.json)
    }

    /// The one decision both bindings share: scripted faults (in arrival order, duplicates
    /// included: `fail5xx` first, then `fail4xx`, then `drop`), dedupe by message id, and the
    /// answer of a message processed for the first time. A remembered id is a retry only for the
    /// same action and payload; otherwise it is a reused id (422 over HTTP, GenericError over OCPP-J).
    public mutating func decide(_ action: CloudAction, messageId key: String, body: CloudJSON, wallMilliseconds now: Int64) -> CloudDecision {
        var hasher = Hasher()
        hasher.combine(body.text)
        let payloadHash = hasher.finalize()
        if script.take(.fail5xx, for: action) {
            // Not remembered: the retry with the same id is processed normally.
            return CloudDecision(verdict: .unavailable, duplicate: false, dropped: false)
        }
        if script.take(.fail4xx, for: action) {
            let seen = remembered[key] != nil
            // A permanent rejection is the answer to this id: a retry gets it again.
            if !seen { remember(key, Remembered(action: action, payloadHash: payloadHash, verdict: .rejected)) }
            return CloudDecision(verdict: .rejected, duplicate: seen, dropped: false)
        }
        let drop = script.take(.drop, for: action)
        if let seen = remembered[key] {
            guard seen.action == action else { return CloudDecision(verdict: .idReused(previous: seen.action), duplicate: true, dropped: false) }
            guard seen.payloadHash == payloadHash else { return CloudDecision(verdict: .payloadChanged, duplicate: true, dropped: false) }
            return CloudDecision(verdict: seen.verdict, duplicate: true, dropped: drop)
        }
        let verdict = CloudDecision.Verdict.answered(answer(action, body, now: now))
        remember(key, Remembered(action: action, payloadHash: payloadHash, verdict: verdict))
        processedCount += 1
        return CloudDecision(verdict: verdict, duplicate: false, dropped: drop)
    }

    /// The answer and record for bytes that are not a request the connection can go on from.
    public func failure(status: Int, reason: String, partial: HTTPRequest?, wallMilliseconds now: Int64) -> CloudOutcome {
        let route = partial.flatMap { Self.route($0.target) }
        var record = RecordLine(action: route?.action, station: route?.station, messageId: partial?.header("Idempotency-Key"), t: now)
        record.status = status
        record.error = reason
        return CloudOutcome(response: .json(status, .object([("error", .string(reason))])),
                            delayMilliseconds: 0, closeAfter: true, record: record.json)
    }

    /// The OCPP 2.1 response payload for a processed request.
    func answer(_ action: CloudAction, _ body: CloudJSON, now: Int64) -> CloudJSON {
        switch action {
        case .authorize:
            var status = "Accepted"
            for info in body["idToken"]?["additionalInfo"]?.arrayValue ?? [] {
                guard info["type"]?.stringValue == "CardLast4Digits", let last4 = info["additionalIdToken"]?.stringValue else { continue }
                if let refusal = script.refusedCards[last4] { status = refusal }
            }
            return .object([("idTokenInfo", .object([("status", .string(status))]))])
        case .heartbeat:
            return .object([("currentTime", .string(RFC3339.format(millis: now)))])
        case .bootNotification:
            return .object([("currentTime", .string(RFC3339.format(millis: now))),
                            ("interval", .number(script.heartbeatIntervalSeconds)),
                            ("status", .string(script.bootStatus.rawValue))])
        case .transactionEvent, .notifySettlement, .securityEventNotification, .statusNotification, .notifyReport:
            return .object([])
        }
    }

    private mutating func remember(_ key: String, _ entry: Remembered) {
        remembered[key] = entry
        rememberedOrder.append(key)
        while remembered.count > memoryLimit, rememberedOrderStart < rememberedOrder.count {
            remembered[rememberedOrder[rememberedOrderStart]] = nil
            rememberedOrderStart += 1
        }
        if rememberedOrderStart > 1024 && rememberedOrderStart * 2 > rememberedOrder.count {
            rememberedOrder.removeFirst(rememberedOrderStart)
            rememberedOrderStart = 0
        }
    }

    /// The last two path segments of an origin-form target: station id (percent-decoded) and action.
    /// Any prefix before them belongs to the base URL.
    public static func route(_ target: String) -> (station: String, action: String)? {
        guard target.hasPrefix("/") else { return nil }
        let path = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)[0]
        let segments = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        guard segments.count >= 2 else { return nil }
        let action = segments[segments.endIndex - 1], station = segments[segments.endIndex - 2]
        guard !action.isEmpty, !station.isEmpty, let decodedStation = percentDecoded(station),
              let decodedAction = percentDecoded(action) else { return nil }
        return (decodedStation, decodedAction)
    }

    static func percentDecoded(_ s: Substring) -> String? {
        var bytes: [UInt8] = []
        var it = Array(s.utf8).makeIterator()
        while let b = it.next() {
            guard b == UInt8(ascii: "%") else { bytes.append(b); continue }
            guard let h = it.next(), let l = it.next(), let byte = try? Hex.decode(utf8: [h, l]) else { return nil }
            bytes += byte
        }
        return String(validating: bytes, as: UTF8.self)
    }
}

/// One `--record` line: `action`, `station`, `messageId`, `body`, `duplicate`, `status`, `t`,
/// `binding` (`https` or `ocpp-j`), then `dropped`, `error`, `rpcError` and `subprotocol` when they apply.
struct RecordLine {
    var action: String?
    var station: String?
    var messageId: String?
    var body: CloudJSON = .null
    var duplicate = false
    var status = 0
    var t: Int64
    var dropped = false
    var error: String?
    var binding: CloudBinding
    /// OCPP-J: the CALLERROR code answered, when one was.
    var rpcError: String?
    /// OCPP-J: the subprotocol an accepted upgrade chose.
    var subprotocol: String?

    init(action: String?, station: String?, messageId: String?, t: Int64, binding: CloudBinding = .https) {
        self.action = action
        self.station = station
        self.messageId = messageId
        self.t = t
        self.binding = binding
    }

    var json: CloudJSON {
        var members: [(String, CloudJSON)] = [
            ("action", action.map(CloudJSON.string) ?? .null),
            ("station", station.map(CloudJSON.string) ?? .null),
            ("messageId", messageId.map(CloudJSON.string) ?? .null),
            ("body", body),
            ("duplicate", .bool(duplicate)),
            ("status", .number(status)),
            ("t", .number(t)),
            ("binding", .string(binding.rawValue)),
        ]
        if dropped { members.append(("dropped", .bool(true))) }
        if let error { members.append(("error", .string(error))) }
        if let rpcError { members.append(("rpcError", .string(rpcError))) }
        if let subprotocol { members.append(("subprotocol", .string(subprotocol))) }
        return .object(members)
    }
}
