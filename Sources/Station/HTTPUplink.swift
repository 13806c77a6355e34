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

/// Card decisions from the cloud: an OCPP Authorize with the DirectPayment idToken. Not queued:
/// a decision is only useful now; the engine's deadline and offline policy cover silence.
public final class HTTPCardDecider: CardDecider {
    let uplink: HTTPUplink
    var ids: MessageIDs

    public init(uplink: HTTPUplink, seed: UInt64) {
        self.uplink = uplink
        ids = MessageIDs(seed: seed)
    }

    public func decide(session: SessionKey, card: CardIdentity, connector: Int, reply: @escaping (CardDecision) -> Void) {
        let body = Array(OCPPPayload.authorize(card: card).text.utf8)
        let request = HTTPRequest.uplink(baseURL: uplink.baseURL, stationId: uplink.stationId, action: OCPPAction.authorize.rawValue,
                                         messageId: ids.next(), json: body)
        // Urgent: a driver is waiting, and the outbox's backlog must not hold the question up.
        uplink.client.post(request, priority: .urgent) { result in
            // No answer, or an answer we cannot read: say nothing and let the deadline decide.
            guard case .success(let r) = result, (200..<300).contains(r.status),
                  let parsed = try? JSON.parse(r.body),
                  case .string(let status)? = parsed["idTokenInfo"]?["status"] else { return }
            reply(CardDecision(allowed: status == "Accepted"))
        }
    }
}
