import CloudHTTP
import Platform
import PaymentEngine
import Uplink
import JSONLines

/// The outbox's transport over HTTPS: `POST {baseURL}/{stationId}/{Action}` with the payload,
/// `Content-Type: application/json` and `Idempotency-Key: <message id>`.
public final class HTTPUplink: UplinkTransport {
    public let baseURL: String
    public let stationId: String
    let client: HTTPClient

    public init(client: HTTPClient, baseURL: String, stationId: String) {
        self.client = client
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.stationId = stationId
    }

    public func send(_ message: OutboxMessage, completion: @escaping (DeliveryResult) -> Void) {
        let request = HTTPRequest.uplink(baseURL: baseURL, stationId: stationId, action: message.action.rawValue,
                                         messageId: message.id, json: message.body)
        client.post(request) { result in
            switch result {
            case .success(let r):
                completion(DeliveryResult.status(r.status, response: String(decoding: r.body.prefix(1000), as: UTF8.self)))
            case .failure(let e):
                completion(e.isUnreachable ? .unreachable("\(e)") : .failed("\(e)"))
            }
        }
    }
}

/// What an answer to Authorize means for the card: the rule of `HTTPCardDecider`, pure.
///
/// The offline policy exists for a platform that cannot be asked; it is not a second opinion
/// for a platform that answered. So only silence counts as offline, and any answer that is
/// not a readable acceptance from the platform itself refuses the card:
/// - 2xx with `idTokenInfo.status`: the platform's decision (`Accepted` charges, anything else does not);
/// - 2xx that cannot be read: refused (the platform answered; guessing "yes" is free charging);
/// - 401, 403: refused: the station's credentials were refused (revoked, rotated without a
///   SIGHUP, misconfigured): a station the platform does not recognise must not hand out free
///   charging under an `allow` policy;
/// - any other 4xx but 408 and 429 (400, 404, 415, 422, ...): refused: the platform rejected
///   the request itself (wrong station id or URL path, a payload it cannot take), which is a
///   misconfiguration the next card would hit too;
/// - 408, 429 and 5xx: offline: the platform (or the gateway in front of it) is up but cannot
///   decide now, which is what the offline policy is for, as for a timeout or no connection.
public enum AuthorizeAnswer: Equatable, Sendable {
    /// The platform decided on the card.
    case decided(allowed: Bool)
    /// The platform answered without accepting the card or the station: the card is refused. The reason, for the log.
    case refused(String)
    /// No decision: the engine's deadline and offline policy decide. The reason, for the log.
    case offline(String)

    /// Interprets one Authorize request's outcome.
    public static func of(_ result: Result<HTTPResponse, HTTPError>) -> AuthorizeAnswer {
        switch result {
        case .failure(let error): return .offline("Authorize failed: \(error)")
        case .success(let r):
            switch r.status {
            case 200..<300:
                guard let parsed = try? JSON.parse(r.body), case .string(let status)? = parsed["idTokenInfo"]?["status"] else {
                    return .refused("HTTP \(r.status) to Authorize without a readable idTokenInfo.status")
                }
                return .decided(allowed: status == "Accepted")
            case 401, 403:
                return .refused("HTTP \(r.status) to Authorize: the platform refused this station's credentials")
            case 408, 429, 500..<600:
                return .offline("HTTP \(r.status) to Authorize: the platform cannot decide now")
            default:
                return .refused("HTTP \(r.status) to Authorize: the platform rejected the request")
            }
        }
    }
}

/// Card decisions from the cloud: an OCPP Authorize with the DirectPayment idToken. Not queued:
/// a decision is only useful now; the engine's deadline and offline policy cover silence.
/// What each answer means is `AuthorizeAnswer`.
public final class HTTPCardDecider: CardDecider {
    let uplink: HTTPUplink
    var ids: MessageIDs
    /// Every answer that was not a decision, with its reason (the daemon logs it at warning).
    public var onProblem: (String) -> Void = { _ in }
    /// Cards refused because the platform answered without accepting (401, 403, other 4xx, unreadable).
    public private(set) var refusedByAnswer = 0
    /// Requests left to the offline policy (no answer, 408, 429, 5xx).
    public private(set) var leftToOfflinePolicy = 0

    public init(uplink: HTTPUplink, seed: UInt64) {
        self.uplink = uplink
        ids = MessageIDs(seed: seed)
    }

    public func decide(session: SessionKey, card: CardIdentity, connector: Int, reply: @escaping (CardDecision) -> Void) {
        let body = Array(OCPPPayload.authorize(card: card).text.utf8)
        let request = HTTPRequest.uplink(baseURL: uplink.baseURL, stationId: uplink.stationId, action: OCPPAction.authorize.rawValue,
                                         messageId: ids.next(), json: body)
        // Urgent: a driver is waiting, and the outbox's backlog must not hold the question up.
        uplink.client.post(request, priority: .urgent) { [weak self] result in
            switch AuthorizeAnswer.of(result) {
            case .decided(let allowed):
                reply(CardDecision(allowed: allowed))
            case .refused(let reason):
                self?.refusedByAnswer += 1
                self?.onProblem("\(reason); card refused")
                reply(CardDecision(allowed: false))
            case .offline(let reason):
                // Say nothing: the engine's deadline applies the offline policy.
                self?.leftToOfflinePolicy += 1
                self?.onProblem("\(reason); the offline policy decides at the deadline")
            }
        }
    }
}
