import OCPPJ
import WebSocket
import WireFormat

/// The OCPP-J binding's answer to an Upgrade request.
public struct CloudUpgradeOutcome: Sendable {
    /// The accepted request (the connection is a WebSocket from here on), or nil: refused.
    public var accepted: WebSocketUpgradeRequest?
    /// The station id the path names, when accepted.
    public var station: String
    /// The 101, or the refusal (after which the connection is closed).
    public var response: [UInt8]
    /// The line for the `--record` file.
    public var record: CloudJSON
}

/// What the OCPP-J shell does with one received message.
public struct CloudRPCOutcome: Sendable {
    /// What becomes of the WebSocket once the reply (if any) is out.
    public enum After: Equatable, Sendable {
        /// Nothing: the next message.
        case stay
        /// `drop`: the connection is closed at once without a close frame, the reply lost (the station sees 1006).
        case drop
        /// Start the close handshake (`close-ws`, or data OCPP-J does not carry).
        case close(WebSocketCloseCode, reason: String)
    }

    /// The CALLRESULT or CALLERROR to send; nil: none (a SEND, an answer, an unanswerable error, a drop).
    public var reply: RPCMessage?
    /// Wait this long before sending it (`slow`).
    public var delayMilliseconds: Int
    public var after: After
    /// The line for the `--record` file.
    public var record: CloudJSON
}

extension CloudSimCore {
    /// The close reason `close-ws` sends.
    public static let closeWebSocketReason = "close-ws"

    /// Whether a request is for the OCPP-J binding: its `Upgrade` header names websocket. Any
    /// other upgrade (an HTTP client offering h2c) stays with the HTTP binding, which ignores it.
    public static func asksForWebSocket(_ request: HTTPRequest) -> Bool {
        request.headers("Upgrade").flatMap { $0.split(separator: ",") }.contains { $0.trimmingWhitespace().lowercased() == "websocket" }
    }

    /// Answers an `Upgrade: websocket` request: RFC 6455's checks (`WebSocketUpgradeRequest`),
    /// then `refuse-upgrades`, the path (its last segment is the station id; 404 without one or
    /// for another station than `--station`), then `require-token` (as a bearer token or as the
    /// Basic password of the station id, OCPP security profile 1: 401 otherwise).
    public mutating func upgrade(_ request: HTTPRequest, wallMilliseconds now: Int64) -> CloudUpgradeOutcome {
        var record = RecordLine(action: nil, station: nil, messageId: nil, t: now, binding: .ocppJ)
        func refuse(_ status: Int, _ reason: String, _ bytes: [UInt8]? = nil) -> CloudUpgradeOutcome {
            record.status = status
            record.error = reason
            return CloudUpgradeOutcome(accepted: nil, station: "", response: bytes ?? WebSocketUpgradeResponse.refusal(status: status, message: reason),
                                       record: record.json)
        }
        guard bindings.contains(.ocppJ) else { return refuse(404, "the OCPP-J binding is off (--binding https)") }
        let accepted: WebSocketUpgradeRequest
        do {
            accepted = try WebSocketUpgradeRequest.evaluate(method: request.method, target: request.target, version: request.version,
                                                            headers: request.headers)
        } catch {
            return refuse(error.status, error.description, error.refusal)
        }
        if script.refusedUpgrades > 0 {
            script.refusedUpgrades -= 1
            return refuse(script.upgradeRefusalStatus, "upgrade refused (cloud-sim)")
        }
        guard let stationId = accepted.lastPathSegment else { return refuse(404, "path must end in /{stationId}") }
        record.station = stationId
        if let station, stationId != station { return refuse(404, "unknown station \(stationId)") }
        if let token = script.requiredToken {
            let basic = "Basic " + Base64.encode(Array("\(stationId):\(token)".utf8))
            let given = accepted.header("Authorization")
            guard given == "Bearer \(token)" || given == basic else {
                let reason = "missing or wrong credentials"
                return refuse(401, reason, WebSocketUpgradeResponse.refusal(status: 401, message: reason,
                                                                            headers: [("WWW-Authenticate", "Basic realm=\"cloud-sim\"")]))
            }
        }
        record.status = 101
        record.subprotocol = accepted.subprotocol
        return CloudUpgradeOutcome(accepted: accepted, station: stationId, response: accepted.acceptResponse, record: record.json)
    }

    /// Answers one OCPP-J text message from `station`'s WebSocket. A CALL of an action the cloud
    /// answers goes through `decide`, as an HTTP request does: the same faults, the same dedupe
    /// (by message id, shared with the HTTP binding), the same payloads, the same record line.
    /// Its verdicts as CALLERRORs: unavailable (`fail5xx`) InternalError, rejected (`fail4xx`)
    /// GenericError, an id reused for another action or payload GenericError. Any other action is
    /// NotSupported when OCPP 2.1 defines it, NotImplemented when not. CALLRESULTs and CALLERRORs
    /// (the cloud sends no CALLs) and SENDs are recorded, never answered.
    public mutating func handle(rpc text: String, station: String, wallMilliseconds now: Int64) -> CloudRPCOutcome {
        var record = RecordLine(action: nil, station: station, messageId: nil, t: now, binding: .ocppJ)
        let slow = script.slowMilliseconds
        var after = CloudRPCOutcome.After.stay
        // close-ws counts every message, whatever becomes of it.
        if let n = script.closeWebSocketAfter {
            if n <= 1 {
                script.closeWebSocketAfter = nil
                after = .close(.goingAway, reason: Self.closeWebSocketReason)
            } else {
                script.closeWebSocketAfter = n - 1
            }
        }
        func outcome(_ reply: RPCMessage?, status: Int, error: String? = nil) -> CloudRPCOutcome {
            record.status = status
            if let error { record.error = error }
            if case .callError(_, let e)? = reply { record.rpcError = e.code.rawValue }
            return CloudRPCOutcome(reply: reply, delayMilliseconds: reply == nil ? 0 : slow, after: after, record: record.json)
        }

        let message: RPCMessage
        do {
            message = try RPCMessage.parse(Array(text.utf8))
        } catch {
            record.messageId = error.id
            return outcome(error.answer, status: 400, error: error.description)
        }
        record.messageId = message.id
        switch message {
        case let .call(id, actionName, payload):
            record.action = actionName
            record.body = payload
            guard let action = CloudAction(rawValue: actionName) else {
                let code: RPCErrorCode = OCPP21Actions.all.contains(actionName) ? .notSupported : .notImplemented
                return outcome(.callError(id: id, RPCError(code, "cloud-sim does not answer \(actionName)")), status: 404,
                               error: "unknown action \(actionName)")
            }
            let decision = decide(action, messageId: id, body: payload, wallMilliseconds: now)
            record.duplicate = decision.duplicate
            let reply: RPCMessage
            switch decision.verdict {
            case .answered(let answer): reply = .callResult(id: id, payload: answer)
            case .unavailable: reply = .callError(id: id, RPCError(.internalError, decision.error ?? ""))
            case .rejected, .idReused, .payloadChanged: reply = .callError(id: id, RPCError(.genericError, decision.error ?? ""))
            }
            if decision.dropped {
                record.dropped = true
                after = .drop
                record.status = decision.status
                if case .callError(_, let e) = reply { record.rpcError = e.code.rawValue }
                return CloudRPCOutcome(reply: nil, delayMilliseconds: 0, after: .drop, record: record.json)
            }
            return outcome(reply, status: decision.status, error: decision.error)
        case let .send(_, actionName, payload):
            record.action = actionName
            record.body = payload
            return outcome(nil, status: 0)
        case .callResult(_, let payload):
            record.body = payload
            return outcome(nil, status: 0, error: "unexpected CALLRESULT: cloud-sim sends no CALL")
        case .callError(_, let e), .callResultError(_, let e):
            return outcome(nil, status: 0, error: "unexpected \(e.code.rawValue): cloud-sim sends no CALL")
        }
    }

    /// A binary message: OCPP-J is text only, so the connection is closed with 1003.
    public func binaryMessage(station: String, wallMilliseconds now: Int64) -> CloudRPCOutcome {
        var record = RecordLine(action: nil, station: station, messageId: nil, t: now, binding: .ocppJ)
        record.status = 400
        record.error = "binary message (OCPP-J is text)"
        return CloudRPCOutcome(reply: nil, delayMilliseconds: 0, after: .close(.unsupportedData, reason: "OCPP-J is text"), record: record.json)
    }
}
