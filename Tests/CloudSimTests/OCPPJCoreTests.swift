import Glibc
import Timebase
import OCPPJ
import Testing
import Uplink
import WebSocket
import WireFormat
@testable import CloudSim

// The OCPP-J binding's pure part: upgrades, RPC messages, and the decision it shares with HTTP.

@Suite struct OCPPJCoreTests {
    static let key = "dGhlIHNhbXBsZSBub25jZQ=="

    static func upgradeRequest(_ target: String = "/ocpp/CS-1", protocols: String = "ocpp2.1", extra: [(String, String)] = [],
                               without: String? = nil) -> HTTPRequest {
        let headers: [(name: String, value: String)] = [("Host", "127.0.0.1"), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
                                                        ("Sec-WebSocket-Key", key), ("Sec-WebSocket-Version", "13"),
                                                        ("Sec-WebSocket-Protocol", protocols)] + extra.map { (name: $0.0, value: $0.1) }
        return HTTPRequest(method: "GET", target: target, headers: headers.filter { $0.name != without }, body: [])
    }

    static func call(_ id: String, _ action: String, _ payload: String = "{}") -> String { "[2,\"\(id)\",\"\(action)\",\(payload)]" }

    static func text(_ response: [UInt8]) -> String { String(decoding: response, as: UTF8.self) }

    @Test func cloudActionsCoverTheDaemonsOwnList() {
        for action in OCPPAction.allCases { #expect(CloudAction(rawValue: action.rawValue) != nil, "\(action)") }
        #expect(CloudAction.allCases.count == OCPPAction.allCases.count + 1)
    }

    @Test func anUpgradeIsAcceptedWithTheStationFromThePath() throws {
        var core = CloudSimCore()
        let o = core.upgrade(Self.upgradeRequest("/some/prefix/CS%2F7", protocols: "ocpp2.0.1, ocpp2.1"), wallMilliseconds: 42)
        #expect(o.accepted?.subprotocol == "ocpp2.1")
        #expect(o.station == "CS/7")
        #expect(Self.text(o.response).hasPrefix("HTTP/1.1 101 Switching Protocols\r\n"))
        #expect(Self.text(o.response).contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"))
        #expect(o.record["status"] == .int(101) && o.record["binding"] == .string("ocpp-j") && o.record["station"] == .string("CS/7"))
        #expect(o.record["subprotocol"] == .string("ocpp2.1") && o.record["t"] == .int(42))
    }

    @Test func upgradesAreRefusedWithTheirStatus() {
        func status(_ core: inout CloudSimCore, _ r: HTTPRequest) -> Int? {
            let o = core.upgrade(r, wallMilliseconds: 0)
            #expect((o.accepted == nil) == (o.record["status"] != .int(101)))
            guard case .int(let n)? = o.record["status"] else { return nil }
            return Int(n)
        }
        var core = CloudSimCore(station: "CS-1")
        #expect(status(&core, Self.upgradeRequest("/ocpp/CS-2")) == 404)
        #expect(status(&core, Self.upgradeRequest("/ocpp/")) == 404)
        #expect(status(&core, Self.upgradeRequest(protocols: "ocpp1.6")) == 400)
        #expect(status(&core, Self.upgradeRequest(without: "Sec-WebSocket-Version")) == 426)
        #expect(status(&core, Self.upgradeRequest(without: "Sec-WebSocket-Key")) == 400)
        #expect(status(&core, Self.upgradeRequest()) == 101)

        // refuse-upgrades: the next COUNT, with the scripted status, then normal again.
        _ = core.apply(.refuseUpgrades(count: 2, status: 403))
        #expect(status(&core, Self.upgradeRequest()) == 403)
        #expect(status(&core, Self.upgradeRequest()) == 403)
        #expect(status(&core, Self.upgradeRequest()) == 101)

        // require-token: as a bearer token or as the station's Basic password.
        _ = core.apply(.requireToken("s3cret"))
        #expect(status(&core, Self.upgradeRequest()) == 401)
        #expect(status(&core, Self.upgradeRequest(extra: [("Authorization", "Bearer s3cret")])) == 101)
        let basic = "Basic " + Base64.encode(Array("CS-1:s3cret".utf8))
        #expect(status(&core, Self.upgradeRequest(extra: [("Authorization", basic)])) == 101)
        let wrong = "Basic " + Base64.encode(Array("CS-1:guess".utf8))
        #expect(status(&core, Self.upgradeRequest(extra: [("Authorization", wrong)])) == 401)
        #expect(Self.text(core.upgrade(Self.upgradeRequest(), wallMilliseconds: 0).response).contains("WWW-Authenticate: Basic realm=\"cloud-sim\"\r\n"))

        var httpsOnly = CloudSimCore(bindings: [.https])
        #expect(status(&httpsOnly, Self.upgradeRequest()) == 404)
    }

    @Test func onlyAWebSocketUpgradeGoesToTheOCPPJBinding() {
        #expect(CloudSimCore.asksForWebSocket(Self.upgradeRequest()))
        let mixed = HTTPRequest(method: "GET", target: "/", headers: [("Upgrade", "h2c"), ("upgrade", " foo, WebSocket ")], body: [])
        #expect(CloudSimCore.asksForWebSocket(mixed))
        let h2c = HTTPRequest(method: "POST", target: "/CS-1/Heartbeat", headers: [("Upgrade", "h2c"), ("Connection", "Upgrade, HTTP2-Settings")], body: [])
        #expect(!CloudSimCore.asksForWebSocket(h2c))
        #expect(!CloudSimCore.asksForWebSocket(HTTPRequest(method: "GET", target: "/", headers: [], body: [])))
    }

    @Test func theHTTPBindingCanBeOff() {
        var core = CloudSimCore(bindings: [.ocppJ])
        var get = HTTPRequest(method: "GET", target: "/ocpp/CS-1", headers: [("Host", "x")], body: [])
        #expect(core.handle(get, wallMilliseconds: 0).response?.status == 426)
        get.method = "POST"
        get.target = "/ocpp/CS-1/Heartbeat"
        #expect(core.handle(get, wallMilliseconds: 0).response?.status == 404)
        #expect(core.processedCount == 0)
    }

    /// The same message over either binding gets the same payload: one decision.
    @Test func bothBindingsAnswerEveryActionAlike() throws {
        let bodies: [CloudAction: String] = [
            .bootNotification: #"{"reason":"PowerUp","chargingStation":{"model":"P","vendorName":"v"}}"#,
            .authorize: #"{"idToken":{"idToken":"x","type":"DirectPayment","additionalInfo":[{"additionalIdToken":"0002","type":"CardLast4Digits"}]}}"#,
        ]
        for refused in [false, true] {
            for action in CloudAction.allCases {
                var http = CloudSimCore(), rpc = CloudSimCore()
                if refused {
                    _ = http.apply(.refuseCard(last4: "0002", status: "Expired"))
                    _ = rpc.apply(.refuseCard(last4: "0002", status: "Expired"))
                    _ = http.apply(.boot(.pending, intervalSeconds: 60))
                    _ = rpc.apply(.boot(.pending, intervalSeconds: 60))
                }
                let body = bodies[action] ?? "{}"
                let request = HTTPRequest(method: "POST", target: "/ocpp/CS-1/\(action.rawValue)",
                                          headers: [("Host", "x"), ("Content-Type", "application/json"), ("Idempotency-Key", "m-1")],
                                          body: Array(body.utf8))
                let h = http.handle(request, wallMilliseconds: 1_764_064_800_000)
                let r = rpc.handle(rpc: Self.call("m-1", action.rawValue, body), station: "CS-1", wallMilliseconds: 1_764_064_800_000)
                let answer = try CloudJSON.parse(h.response?.body ?? [])
                #expect(r.reply == .callResult(id: "m-1", payload: answer), "\(action)")
                // The record lines differ in the binding only.
                func withoutBinding(_ record: CloudJSON) -> CloudJSON {
                    guard case .object(let members) = record else { return record }
                    return .object(members.filter { $0.0 != "binding" })
                }
                #expect(withoutBinding(h.record) == withoutBinding(r.record), "\(action)")
                #expect(h.record["binding"] == .string("https") && r.record["binding"] == .string("ocpp-j"))
            }
        }
        var core = CloudSimCore()
        _ = core.apply(.boot(.rejected, intervalSeconds: 30))
        let boot = core.handle(rpc: Self.call("b", "BootNotification", bodies[.bootNotification]!), station: "CS-1", wallMilliseconds: 0)
        guard case .callResult(_, let payload)? = boot.reply else { Issue.record("no CALLRESULT: \(String(describing: boot.reply))"); return }
        #expect(payload.text == #"{"currentTime":"1970-01-01T00:00:00.000Z","interval":30,"status":"Rejected"}"#)
    }

    @Test func messageIdsAreDedupedAcrossBindings() throws {
        var core = CloudSimCore()
        let request = HTTPRequest(method: "POST", target: "/CS-1/Heartbeat", headers: [("Host", "x"), ("Content-Type", "application/json"),
                                                                                      ("Idempotency-Key", "same")], body: Array("{}".utf8))
        let first = core.handle(request, wallMilliseconds: 1000)
        let again = core.handle(rpc: Self.call("same", "Heartbeat"), station: "CS-1", wallMilliseconds: 9000)
        #expect(again.reply == .callResult(id: "same", payload: try CloudJSON.parse(first.response!.body)))
        #expect(again.record["duplicate"] == .bool(true))
        #expect(core.processedCount == 1)
        // The id reused for another action: a GenericError, recorded 422.
        let reused = core.handle(rpc: Self.call("same", "Authorize", #"{"idToken":{"idToken":"x","type":"Central"}}"#), station: "CS-1", wallMilliseconds: 0)
        guard case .callError(let id, let e)? = reused.reply else { Issue.record("\(String(describing: reused.reply))"); return }
        #expect(id == "same" && e.code == .genericError && e.description == "message id was used for Heartbeat")
        #expect(reused.record["status"] == .int(422) && reused.record["rpcError"] == .string("GenericError"))

        // The same action with another payload is no retry either: an Authorize id that comes
        // back with another card must not get the first card's answer.
        _ = core.apply(.refuseCard(last4: "1111", status: "Blocked"))
        func authorize(_ id: String, _ last4: String) -> CloudRPCOutcome {
            core.handle(rpc: Self.call(id, "Authorize", #"{"idToken":{"idToken":"x","type":"DirectPayment","additionalInfo":[{"additionalIdToken":""# + last4 + #"","type":"CardLast4Digits"}]}}"#),
                        station: "CS-1", wallMilliseconds: 0)
        }
        #expect(authorize("a-1", "1111").reply == .callResult(id: "a-1", payload: try CloudJSON.parse(#"{"idTokenInfo":{"status":"Blocked"}}"#)))
        #expect(authorize("a-1", "1111").record["duplicate"] == .bool(true))
        let changed = authorize("a-1", "2222")
        #expect(changed.reply == .callError(id: "a-1", RPCError(.genericError, "message id was used for another payload")))
        #expect(changed.record["status"] == .int(422))
        let overHTTP = core.handle(HTTPRequest(method: "POST", target: "/CS-1/Heartbeat", headers: [("Host", "x"), ("Content-Type", "application/json"),
                                                                                                    ("Idempotency-Key", "same")], body: Array(#"{"x":1}"#.utf8)),
                                   wallMilliseconds: 0)
        #expect(overHTTP.response?.status == 422 && overHTTP.record["error"] == .string("Idempotency-Key same was used for another body"))
    }

    @Test func scriptedFaultsBecomeCallErrorsDropsAndDelays() {
        var core = CloudSimCore()
        func send(_ id: String, _ action: String = "TransactionEvent") -> CloudRPCOutcome {
            core.handle(rpc: Self.call(id, action), station: "CS-1", wallMilliseconds: 0)
        }
        _ = core.apply(.fault(.fail5xx, .action(.transactionEvent), count: 1))
        let unavailable = send("t")
        #expect(unavailable.reply == .callError(id: "t", RPCError(.internalError, "unavailable (cloud-sim)")))
        #expect(unavailable.record["status"] == .int(503) && unavailable.record["rpcError"] == .string("InternalError"))
        // Not remembered: the retry is processed.
        #expect(send("t").reply == .callResult(id: "t", payload: .object([])))

        _ = core.apply(.fault(.fail4xx, .all, count: 1))
        #expect(send("s", "NotifySettlement").reply == .callError(id: "s", RPCError(.genericError, "rejected by cloud-sim")))
        // Remembered: the retry gets the rejection again, as a duplicate.
        let again = send("s", "NotifySettlement")
        #expect(again.reply == .callError(id: "s", RPCError(.genericError, "rejected by cloud-sim")) && again.record["duplicate"] == .bool(true))

        _ = core.apply(.fault(.drop, .action(.statusNotification), count: 1))
        let dropped = send("d", "StatusNotification")
        #expect(dropped.reply == nil && dropped.after == .drop && dropped.record["dropped"] == .bool(true))
        let resent = send("d", "StatusNotification")
        #expect(resent.reply == .callResult(id: "d", payload: .object([])) && resent.record["duplicate"] == .bool(true) && resent.after == .stay)

        _ = core.apply(.slow(milliseconds: 300))
        #expect(send("h", "Heartbeat").delayMilliseconds == 300)
        // Processed: the retried event, the dropped status, the heartbeat (a rejection is not).
        #expect(core.processedCount == 3)
    }

    @Test func closeWebSocketCountsMessagesOverAllConnections() {
        var core = CloudSimCore()
        _ = core.apply(.closeWebSocket(afterMessages: 3))
        #expect(core.handle(rpc: Self.call("1", "Heartbeat"), station: "A", wallMilliseconds: 0).after == .stay)
        #expect(core.handle(rpc: "not json", station: "B", wallMilliseconds: 0).after == .stay)
        let third = core.handle(rpc: Self.call("3", "Heartbeat"), station: "A", wallMilliseconds: 0)
        #expect(third.after == .close(.goingAway, reason: "close-ws"))
        #expect(third.reply != nil, "the message that closes is still answered")
        #expect(core.handle(rpc: Self.call("4", "Heartbeat"), station: "A", wallMilliseconds: 0).after == .stay)
        _ = core.apply(.closeWebSocket(afterMessages: 1))
        _ = core.apply(.closeWebSocket(afterMessages: 0))
        #expect(core.script.closeWebSocketAfter == nil)
        #expect(core.handle(rpc: Self.call("5", "Heartbeat"), station: "A", wallMilliseconds: 0).after == .stay)
    }

    @Test func otherMessagesAreAnsweredAsOCPPJSays() {
        var core = CloudSimCore()
        func reply(_ text: String) -> RPCMessage? { core.handle(rpc: text, station: "CS-1", wallMilliseconds: 0).reply }
        #expect(reply(Self.call("1", "Reset")) == .callError(id: "1", RPCError(.notSupported, "cloud-sim does not answer Reset")))
        #expect(reply(Self.call("2", "Frobnicate")) == .callError(id: "2", RPCError(.notImplemented, "cloud-sim does not answer Frobnicate")))
        // Formation errors: answered when the id is readable, not otherwise.
        guard case .callError("3", let e)? = reply("[2,\"3\",\"Heartbeat\"]") else { Issue.record("no CALLERROR"); return }
        #expect(e.code == .protocolError)
        guard case .callError("4", let f)? = reply("[2,\"4\",\"Heartbeat\",[]]") else { Issue.record("no CALLERROR"); return }
        #expect(f.code == .formatViolation)
        #expect(reply("garbage") == nil)
        #expect(reply("[2,\"\",\"Heartbeat\",{}]") == nil)
        // Nothing answers a SEND, a CALLRESULT or a CALLERROR.
        #expect(reply("[6,\"5\",\"NotifyPeriodicEventStream\",{}]") == nil)
        #expect(reply("[3,\"6\",{}]") == nil)
        #expect(reply("[4,\"7\",\"GenericError\",\"\",{}]") == nil)
        let binary = core.binaryMessage(station: "CS-1", wallMilliseconds: 0)
        #expect(binary.after == .close(.unsupportedData, reason: "OCPP-J is text") && binary.record["status"] == .int(400))
        #expect(core.processedCount == 0)
    }

    @Test func newDirectives() throws {
        #expect(try CloudDirective.parse(["boot", "Pending"]) == .boot(.pending, intervalSeconds: 300))
        #expect(try CloudDirective.parse(["boot", "Accepted", "15"]) == .boot(.accepted, intervalSeconds: 15))
        #expect(try CloudDirective.parse(["close-ws"]) == .closeWebSocket(afterMessages: 1))
        #expect(try CloudDirective.parse(["close-ws", "4"]) == .closeWebSocket(afterMessages: 4))
        #expect(try CloudDirective.parse(["refuse-upgrades"]) == .refuseUpgrades(count: 1, status: 503))
        #expect(try CloudDirective.parse(["refuse-upgrades", "3", "401"]) == .refuseUpgrades(count: 3, status: 401))
        #expect(try CloudDirective.parse(["fail5xx", "BootNotification"]) == .fault(.fail5xx, .action(.bootNotification), count: 1))
        for bad in [["boot"], ["boot", "accepted"], ["boot", "Accepted", "0"], ["boot", "Accepted", "86401"], ["close-ws", "-1"],
                    ["close-ws", "1", "2"], ["refuse-upgrades", "1", "302"], ["refuse-upgrades", "x"]] {
            #expect(throws: CloudDirective.ParseError.self, "\(bad)") { try CloudDirective.parse(bad) }
        }
        var core = CloudSimCore()
        #expect(core.apply(.boot(.rejected, intervalSeconds: 9)) == "boot Rejected 9")
        #expect(core.apply(.refuseUpgrades(count: 2, status: 503)) == "refuse-upgrades 2 503")
        _ = core.apply(.closeWebSocket(afterMessages: 2))
        _ = core.apply(.clear)
        #expect(core.script == CloudScript())
    }
}

/// Seeded random traffic over both bindings: two cores given the same directives and messages,
/// one over HTTP and one over OCPP-J, decide alike at every step, and no message id is ever
/// answered with two different payloads. CLOUD_SEED=<n> replays one seed.
@Suite struct SharedDecisionPropertyTests {
    static func seeds(_ n: Int) -> [UInt64] {
        if let p = getenv("CLOUD_SEED"), let s = UInt64(String(cString: p)) { return [s] }
        return (0..<UInt64(n)).map { 0xC10D_0000 + $0 }
    }

    static let bodies: [CloudAction: String] = [
        .bootNotification: #"{"reason":"PowerUp","chargingStation":{"model":"P","vendorName":"v"}}"#,
        .authorize: #"{"idToken":{"idToken":"x","type":"DirectPayment","additionalInfo":[{"additionalIdToken":"0002","type":"CardLast4Digits"}]}}"#,
    ]

    @Test func bothBindingsDecideAlikeAndAnswersNeverChange() throws {
        for seed in Self.seeds(200) {
            print("bothBindingsDecideAlikeAndAnswersNeverChange: seed \(seed) (replay with CLOUD_SEED=\(seed))")
            var g = SeededGenerator(seed: seed)
            var http = CloudSimCore(memoryLimit: 1000), rpc = CloudSimCore(memoryLimit: 1000)
            var firstAnswer: [String: CloudJSON] = [:]
            /// Ids processed (answered or dropped after processing): each exactly once.
            var processed: Set<String> = []
            for step in 0..<60 {
                if Int.random(in: 0..<6, using: &g) == 0 {
                    let action = CloudAction.allCases.randomElement(using: &g)!
                    let selector: ActionSelector = Bool.random(using: &g) ? .all : .action(action)
                    let directive: CloudDirective
                    switch Int.random(in: 0..<6, using: &g) {
                    case 0: directive = .fault(.fail5xx, selector, count: Int.random(in: 0...2, using: &g))
                    case 1: directive = .fault(.fail4xx, selector, count: Int.random(in: 0...2, using: &g))
                    case 2: directive = .fault(.drop, selector, count: Int.random(in: 0...2, using: &g))
                    case 3: directive = .refuseCard(last4: "0002", status: "Blocked")
                    case 4: directive = .acceptCard(last4: "0002")
                    default: directive = .boot(BootStatus.allCases.randomElement(using: &g)!, intervalSeconds: Int.random(in: 1...600, using: &g))
                    }
                    #expect(http.apply(directive) == rpc.apply(directive))
                }
                let action = CloudAction.allCases.randomElement(using: &g)!
                let id = "m\(Int.random(in: 0..<12, using: &g))"
                let body = Self.bodies[action] ?? "{}"
                let now = Int64(1_764_064_800_000 + step * 1000)
                let request = HTTPRequest(method: "POST", target: "/ocpp/CS-1/\(action.rawValue)",
                                          headers: [("Host", "x"), ("Content-Type", "application/json"), ("Idempotency-Key", id)],
                                          body: Array(body.utf8))
                let h = http.handle(request, wallMilliseconds: now)
                let r = rpc.handle(rpc: "[2,\"\(id)\",\"\(action.rawValue)\",\(body)]", station: "CS-1", wallMilliseconds: now)
                let context = "seed \(seed) step \(step) \(action.rawValue) \(id)"
                #expect(h.record["status"] == r.record["status"] && h.record["duplicate"] == r.record["duplicate"]
                        && h.record["dropped"] == r.record["dropped"], "\(context): \(h.record.text) vs \(r.record.text)")
                guard let status = h.record["status"], case .int(let code) = status else { Issue.record("\(context): no status"); continue }
                if h.record["dropped"] == .bool(true) {
                    #expect(h.response == nil && r.reply == nil && r.after == .drop, "\(context)")
                    #expect((h.record["duplicate"] == .bool(false)) == processed.insert(id).inserted, "\(context)")
                    continue
                }
                switch (code, r.reply) {
                case (200, .callResult(let rid, let payload)?):
                    #expect(rid == id && h.response.map { (try? CloudJSON.parse($0.body)) == payload } == true, "\(context)")
                    if let first = firstAnswer[id] { #expect(payload == first, "\(context): answered twice differently") }
                    firstAnswer[id] = payload
                    #expect((h.record["duplicate"] == .bool(false)) == processed.insert(id).inserted, "\(context)")
                case (503, .callError(_, let e)?): #expect(e.code == .internalError, "\(context)")
                case (400, .callError(_, let e)?), (422, .callError(_, let e)?): #expect(e.code == .genericError, "\(context)")
                default: Issue.record("\(context): status \(code) answered \(String(describing: r.reply))")
                }
            }
            #expect(http.processedCount == rpc.processedCount && http.processedCount == processed.count, "seed \(seed)")
        }
    }
}
