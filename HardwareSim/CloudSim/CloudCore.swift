import Uplink
import WireFormat
/// The simulated charging platform, pure: a parsed HTTP request and the wall-clock time in,
/// the response (or a dropped connection), its delay and one record line out.
///
/// The binding (issue 4): `POST {baseURL}/{stationId}/{Action}`, the OCPP 2.1 request payload
/// as a JSON body, `Content-Type: application/json`, `Idempotency-Key: <messageId>`; the
/// response body is the OCPP 2.1 response payload.

/// The actions the binding carries: the daemon's own list (`Uplink.OCPPAction`).
public typealias CloudAction = OCPPAction

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
    /// Back to normal service: up, not slow, no faults, no refused cards (remembered keys stay).
    case clear
    /// Forget every remembered Idempotency-Key.
    case forget
    case quit

    public struct ParseError: Error, Equatable, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// The refusal statuses an AuthorizeResponse may carry (AuthorizationStatusEnumType, 2.1), Accepted aside.
    public static let refusalStatuses = ["Blocked", "ConcurrentTx", "Expired", "Invalid", "NoCredit",
                                        "NotAllowedTypeEVSE", "NotAtThisLocation", "NotAtThisTime", "Unknown"]

    /// The directive names, for usage text and flag parsing.
    public static let names = ["down", "up", "slow", "fail5xx", "fail4xx", "drop", "refuse-card", "accept-card", "require-token", "clear", "forget", "quit"]

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
    /// The bearer token every request must carry; nil: none checked.
    public var requiredToken: String?

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

public struct CloudSimCore: Sendable {
    /// Paths for other stations get 404 when set.
    public let station: String?
    public var script = CloudScript()
    /// Idempotency-Keys remembered at most; the oldest is forgotten first.
    public let memoryLimit: Int

    struct Remembered: Sendable {
        var action: CloudAction
        var response: HTTPResponse
    }

    private var remembered: [String: Remembered] = [:]
    private var rememberedOrder: [String] = []
    private var rememberedOrderStart = 0

    /// Requests answered (or dropped) with a processed action, duplicates excluded.
    public private(set) var processedCount = 0

    public init(station: String? = nil, memoryLimit: Int = 100_000) {
        self.station = station
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

        // Scripted faults take the next requests in arrival order, duplicates included.
        if script.take(.fail5xx, for: action) {
            // Not remembered: the retry with the same key is processed normally.
            return refuse(503, "unavailable (cloud-sim)")
        }
        var response: HTTPResponse
        if script.take(.fail4xx, for: action) {
            record.status = 400
            record.error = "rejected by cloud-sim"
            response = .json(400, .object([("error", .string("rejected by cloud-sim"))]))
            if remembered[key] != nil {
                record.duplicate = true
            } else {
                // A permanent rejection is the answer to this key: a retry gets it again.
                remember(key, Remembered(action: action, response: response))
            }
            return CloudOutcome(response: response, delayMilliseconds: script.slowMilliseconds, closeAfter: false, record: record.json)
        }
        let drop = script.take(.drop, for: action)

        if let seen = remembered[key] {
            record.duplicate = true
            guard seen.action == action else {
                return refuse(422, "Idempotency-Key \(key) was used for \(seen.action.rawValue)")
            }
            response = seen.response
            response.headers.append(("Idempotent-Replayed", "true"))
        } else {
            response = .json(200, answer(action, body, now: now))
            remember(key, Remembered(action: action, response: response))
            processedCount += 1
        }
        record.status = response.status
        if drop {
            // Processed (and remembered), but the answer is lost with the connection.
            record.dropped = true
            return CloudOutcome(response: nil, delayMilliseconds: 0, closeAfter: true, record: record.json)
        }
        return CloudOutcome(response: response, delayMilliseconds: script.slowMilliseconds, closeAfter: false, record: record.json)
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
/// then `dropped` and `error` when they apply.
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

    init(action: String?, station: String?, messageId: String?, t: Int64) {
        self.action = action
        self.station = station
        self.messageId = messageId
        self.t = t
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
        ]
        if dropped { members.append(("dropped", .bool(true))) }
        if let error { members.append(("error", .string(error))) }
        return .object(members)
    }
}
