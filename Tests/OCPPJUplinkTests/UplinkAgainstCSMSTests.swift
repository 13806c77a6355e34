import CloudHTTP
import CSMSProcess
import Glibc
import JSONLines
import OCPPJ
import OCPPJUplink
import PaymentEngine
import Platform
import Testing
import Timebase
import Uplink
import WebSocket

/// The uplink against the `ocpp` package's CSMS over real loopback sockets: Boot first, the
/// outbox's messages as CALLs with their own ids, Authorize, a dropped connection, refusals with
/// Retry-After, and CALLERRORs.
@Suite(.serialized) struct UplinkAgainstCSMSTests {
    init() throws { try Signals.ignore(SIGPIPE) }

    final class Rig {
        let loop: EventLoop
        let client: HTTPClient
        let uplink: OCPPJUplink
        var ready = 0
        var notices: [String] = []
        var results: [(OutboxMessage, JSON)] = []

        init(port: Int, station: String = "CS-1", password: String? = nil, tls: TLSSettings = .init(), scheme: String = "ws",
             host: String = "127.0.0.1", configure: (inout OCPPJSettings) -> Void = { _ in }) throws {
            loop = try EventLoop()
            client = try HTTPClient(loop: loop, tls: tls)
            var settings = OCPPJSettings(url: try WebSocketURL(parsing: "\(scheme)://\(host):\(port)/ocpp"), stationId: station,
                                         password: password.map { Array($0.utf8) },
                                         bootPayload: BootPayload.make(reason: .powerUp, vendor: "paybridge", model: "test", serial: station))
            settings.backoffInitial = .milliseconds(200)
            settings.backoffCap = .seconds(1)
            configure(&settings)
            uplink = OCPPJUplink(loop: loop, client: client, settings: settings, seed: 7)
            uplink.onReady = { [unowned self] in self.ready += 1 }
            uplink.onNotice = { [unowned self] _, text in self.notices.append(text) }
            uplink.onResult = { [unowned self] m, p in self.results.append((m, p)) }
        }

        /// Runs the loop in short slices (a condition may depend on the CSMS's record file,
        /// which wakes no one) until `until` holds or the time is up.
        @discardableResult
        func run(_ seconds: Int = 10, until: () -> Bool) throws -> Bool {
            let deadline = MonotonicClock.now() + .seconds(Int64(seconds))
            while !until() {
                guard MonotonicClock.now() < deadline else { return false }
                try loop.runOnce(maxWait: .milliseconds(20))
            }
            return true
        }

        /// Sends one message through the uplink and waits for its result.
        func deliver(_ m: OutboxMessage, seconds: Int = 10) throws -> DeliveryResult? {
            var result: DeliveryResult?
            uplink.send(m) { result = $0 }
            try run(seconds) { result != nil }
            return result
        }
    }

    static let card = CardIdentity(maskedPAN: "476173******0119", hash: Array(repeating: 0xAB, count: 20), brand: "VISA")

    static func event(_ tx: String, seq: Int, stage: OCPPPayload.Stage = .charging) -> OutboxMessage {
        let body = OCPPPayload.transactionEvent(transactionId: tx, seqNo: seq, stage: stage, at: 1_765_000_000_000 + Int64(seq) * 1000,
                                                offline: false, card: card, connector: 1, currency: "EUR")
        return OutboxMessage(id: MessageIDs.derive("\(tx)/TransactionEvent/\(seq)"), queue: tx, action: .transactionEvent,
                             kind: seq == 0 ? .started : .updated, body: Array(body.text.utf8))
    }

    @Test func bootsThenDeliversWithTheOutboxIDsAndAsksForCards() throws {
        let dir = temporaryDirectory("ocppj-basic")
        guard let csms = try CSMSProcess(["--deny-tokens", "ABABABABABABABABABABABABABABABABABABABAB"], record: dir + "/record.jsonl") else { return }
        let rig = try Rig(port: csms.port)
        // Not registered yet: the outbox is told to wait, the card is left to the offline policy.
        #expect(try rig.deliver(Self.event("tx-1", seq: 0)) == .unreachable("not registered with the CSMS (disconnected)"))
        rig.uplink.start()
        #expect(try rig.run { rig.ready == 1 })
        #expect(rig.uplink.registration == .accepted)
        #expect(rig.uplink.subprotocol == "ocpp2.1")
        let m0 = Self.event("tx-1", seq: 0, stage: .started(authorised: 5000)), m1 = Self.event("tx-1", seq: 1)
        #expect(try rig.deliver(m0) == .delivered)
        #expect(try rig.deliver(m1) == .delivered)
        #expect(rig.results.map(\.0.id) == [m0.id, m1.id])

        let events = csms.calls("TransactionEvent")
        #expect(events.map { $0["id"]?.stringValue } == [m0.id, m1.id], "the outbox's ids are the OCPP message ids")
        #expect(events.allSatisfy { $0["valid"] == .bool(true) })
        let boots = csms.calls("BootNotification")
        #expect(boots.count == 1 && boots[0]["valid"] == .bool(true))
        let connect = csms.events().first { $0["event"]?.stringValue == "connect" }
        #expect(connect?["path"]?.stringValue == "/ocpp/CS-1")

        // The CSMS's deny list holds this card's hash: refused; another card: accepted.
        var decisions: [CardDecision] = []
        rig.uplink.decide(session: 1, card: Self.card, connector: 1) { decisions.append($0) }
        let other = CardIdentity(maskedPAN: "541333******4111", hash: Array(repeating: 0xCD, count: 20), brand: "MASTERCARD")
        rig.uplink.decide(session: 2, card: other, connector: 2) { decisions.append($0) }
        try rig.run { decisions.count == 2 }
        #expect(decisions.map(\.allowed) == [false, true])
        #expect(csms.calls("Authorize").allSatisfy { $0["valid"] == .bool(true) })
        rig.uplink.stop()
    }

    @Test func aDroppedConnectionEndsTheCallInFlightAndTheStationBootsAgain() throws {
        let dir = temporaryDirectory("ocppj-drop")
        guard let csms = try CSMSProcess(record: dir + "/record.jsonl") else { return }
        let rig = try Rig(port: csms.port)
        rig.uplink.start()
        #expect(try rig.run { rig.ready == 1 })
        // The CSMS holds the answer, then drops the TCP connection with the call in flight.
        try csms.command(#"{"cmd":"silence","action":"TransactionEvent","count":1}"#)
        var result: DeliveryResult?
        let m = Self.event("tx-2", seq: 0, stage: .started(authorised: 5000))
        rig.uplink.send(m) { result = $0 }
        try rig.run { csms.calls("TransactionEvent").count == 1 }
        try csms.command(#"{"cmd":"drop"}"#)
        try rig.run { result != nil }
        #expect(result == .unreachable("the connection went with the message in flight"))
        // Back with a Boot first, then the same message under the same id.
        #expect(try rig.run { rig.ready == 2 })
        #expect(try rig.deliver(m) == .delivered)
        let calls = csms.events().filter { $0["event"]?.stringValue == "call" }.compactMap { $0["action"]?.stringValue }
        #expect(calls == ["BootNotification", "TransactionEvent", "BootNotification", "TransactionEvent"])
        #expect(csms.calls("TransactionEvent").map { $0["id"]?.stringValue } == [m.id, m.id])
        #expect(rig.uplink.counters.disconnects == 1)
        rig.uplink.stop()
    }

    @Test func refusalsWithRetryAfterAreHonoured() throws {
        let dir = temporaryDirectory("ocppj-refuse")
        guard let csms = try CSMSProcess(record: dir + "/record.jsonl") else { return }
        try csms.command(#"{"cmd":"refuse","seconds":2}"#)
        let rig = try Rig(port: csms.port)
        let started = MonotonicClock.now()
        rig.uplink.start()
        #expect(try rig.run(15) { rig.ready == 1 })
        let waited = MonotonicClock.now() - started
        // The backoff alone would retry within a second; Retry-After (2 s) holds the station back.
        #expect(waited >= .seconds(2))
        let refused = csms.events().filter { $0["event"]?.stringValue == "refused" }
        #expect(refused.count == 1, "one refused attempt, then the wait: \(refused)")
        #expect(rig.notices.contains { $0.contains("503") })
        rig.uplink.stop()
    }

    @Test func aCallErrorIsReportedWithItsCode() throws {
        let dir = temporaryDirectory("ocppj-callerror")
        guard let csms = try CSMSProcess(record: dir + "/record.jsonl") else { return }
        let rig = try Rig(port: csms.port)
        rig.uplink.start()
        #expect(try rig.run { rig.ready == 1 })
        try csms.command(#"{"cmd":"callerror","action":"TransactionEvent","count":1,"code":"InternalError","description":"db down"}"#)
        let m = Self.event("tx-3", seq: 0, stage: .started(authorised: 5000))
        #expect(try rig.deliver(m) == .callError(code: "InternalError", description: "db down"))
        #expect(try rig.deliver(m) == .delivered)
        rig.uplink.stop()
    }

    @Test func aSilentCSMSTimesTheCallOut() throws {
        let dir = temporaryDirectory("ocppj-timeout")
        guard let csms = try CSMSProcess(record: dir + "/record.jsonl") else { return }
        let rig = try Rig(port: csms.port) { $0.responseTimeout = .seconds(1) }
        rig.uplink.start()
        #expect(try rig.run { rig.ready == 1 })
        try csms.command(#"{"cmd":"silence","action":"TransactionEvent","count":1}"#)
        #expect(try rig.deliver(Self.event("tx-4", seq: 0, stage: .started(authorised: 5000))) == .failed("no answer within 1.0 seconds"))
        rig.uplink.stop()
    }

    @Test func basicAuthWithTheStationIDAndAWrongPasswordIsRefused() throws {
        let dir = temporaryDirectory("ocppj-auth")
        guard let csms = try CSMSProcess(["--basic-auth", "CS-1:correct-horse-battery-staple"], record: dir + "/record.jsonl") else { return }
        let good = try Rig(port: csms.port, password: "correct-horse-battery-staple")
        good.uplink.start()
        #expect(try good.run { good.ready == 1 })
        #expect(csms.events().first { $0["event"]?.stringValue == "connect" }?["user"]?.stringValue == "CS-1")
        good.uplink.stop()

        let bad = try Rig(port: csms.port, password: "wrong-password-of-16+")
        bad.uplink.start()
        try bad.run(3) { bad.notices.contains { $0.contains("401") } }
        #expect(bad.notices.contains { $0.contains("401") && $0.contains("password") })
        #expect(bad.ready == 0)
        bad.uplink.stop()
    }

    @Test func theCSMSsCallsReachTheStationAndItsAnswersGoBack() throws {
        let dir = temporaryDirectory("ocppj-incoming")
        guard let csms = try CSMSProcess(record: dir + "/record.jsonl") else { return }
        let rig = try Rig(port: csms.port) { $0.handledActions = ["GetTransactionStatus"] }
        var asked: [(String, String)] = []
        rig.uplink.onIncomingCall = { [unowned rig] id, action, _ in
            asked.append((id, action))
            rig.uplink.answer(id: id, payload: .object([("messagesInQueue", .bool(false))]))
        }
        rig.uplink.start()
        #expect(try rig.run { rig.ready == 1 })
        try csms.command(#"{"cmd":"call","action":"GetTransactionStatus","payload":{}}"#)
        let answer = try csms.aside(prefix: "response GetTransactionStatus", loop: rig.loop)
        #expect(answer?.contains("messagesInQueue") == true)
        #expect(asked.map(\.1) == ["GetTransactionStatus"])
        // An action the station does not handle: the core answers NotImplemented/NotSupported.
        try csms.command(#"{"cmd":"call","action":"GetLog","payload":{"logType":"DiagnosticsLog","requestId":1,"log":{"remoteLocation":"https://x.example/"}}}"#)
        let refused = try csms.aside(prefix: "callerror GetLog", loop: rig.loop)
        #expect(refused?.contains("NotSupported") == true)
        rig.uplink.stop()
    }
}

@Suite struct TariffReadingTests {
    @Test func aSimpleTariffIsReadExactly() throws {
        let t = try JSON.parse(#"{"tariffId":"t1","currency":"EUR","energy":{"prices":[{"priceKwh":0.39}]},"chargingTime":{"prices":[{"priceMinute":0.05}]},"fixedFee":{"prices":[{"priceFixed":1}]}}"#)
        #expect(TariffReading.tariff(t) == Tariff(currency: "EUR", startFee: 100, energyPricePerKWh: 39, timePricePerMinute: 5))
    }

    @Test func whatTheEngineCannotApplyExactlyIsNotApplied() throws {
        for text in [#"{"currency":"EUR","energy":{"prices":[{"priceKwh":0.345}]}}"#,
                     #"{"currency":"EUR","energy":{"prices":[{"priceKwh":0.3},{"priceKwh":0.4}]}}"#,
                     #"{"currency":"EUR","energy":{"prices":[{"priceKwh":0.3,"conditions":{"startTimeOfDay":"08:00"}}]}}"#,
                     #"{"currency":"EUR","idleTime":{"prices":[{"priceMinute":0.1}]}}"#,
                     #"{"currency":"EUR","energy":{"prices":[{"priceKwh":-1}]}}"#,
                     #"{"currency":"EURO"}"#, #"{"currency":"EUR","energy":{"prices":[{"priceKwh":1e2}]}}"#] {
            #expect(TariffReading.tariff(try JSON.parse(text)) == nil, "\(text)")
        }
        #expect(TariffReading.minorUnits(.decimal("0.500")) == 50)
    }

    @Test func authorizeAnswers() throws {
        #expect(AuthorizeOutcome.decision(try JSON.parse(#"{"idTokenInfo":{"status":"Accepted"}}"#)) == .decided(CardDecision(allowed: true)))
        #expect(AuthorizeOutcome.decision(try JSON.parse(#"{"idTokenInfo":{"status":"Blocked"}}"#)) == .decided(CardDecision(allowed: false)))
        #expect(AuthorizeOutcome.decision(try JSON.parse(#"{"idTokenInfo":{}}"#)) == .refused("AuthorizeResponse without a readable idTokenInfo.status"))
        let withTariff = try JSON.parse(#"{"idTokenInfo":{"status":"Accepted"},"tariff":{"tariffId":"x","currency":"EUR","energy":{"prices":[{"priceKwh":0.5}]}}}"#)
        #expect(AuthorizeOutcome.decision(withTariff) == .decided(CardDecision(allowed: true, tariff: Tariff(currency: "EUR", energyPricePerKWh: 50))))
    }
}

@Suite struct WebSocketURLTests {
    @Test func parsesWhatOCPPJUses() throws {
        let u = try WebSocketURL(parsing: "wss://CSMS.example/ocpp/v21")
        #expect(u.host == "csms.example" && u.port == 443 && u.secure && u.pathPrefix == "/ocpp/v21")
        #expect(u.streamURL == "https://csms.example:443/")
        let v = try WebSocketURL(parsing: "ws://[::1]:9000")
        #expect(v.host == "::1" && v.port == 9000 && !v.secure && v.pathPrefix == "/" && v.streamURL == "http://[::1]:9000/")
    }

    @Test func refusesTheRest() {
        for bad in ["https://x/", "wss://", "wss://user:pw@x/", "wss://x/?a=1", "wss://x/#f", "wss://x:0/", "wss://x:65536/", "wss://x:abc/",
                    "wss://ex ample/", "wss://[zz]/", "wss://" + String(repeating: "a", count: 600)] {
            #expect(throws: WebSocketURLError.self, "\(bad)") { try WebSocketURL(parsing: bad) }
        }
    }
}

@Suite struct TransactionResponseReadingTests {
    @Test func totalsAndLimitsAreReadExactlyInTheCurrencysUnits() throws {
        let ended = try JSON.parse(#"{"eventType":"Ended","transactionInfo":{"transactionId":"CS-1-7"},"costDetails":{"totalCost":{"currency":"EUR","typeOfCost":"NormalCost","total":{"inclTax":12.34}}}}"#)
        #expect(TransactionResponseReading.transactionId(ended) == "CS-1-7")
        #expect(TransactionResponseReading.localTotal(ended)! == (1234, "EUR"))
        let response = try JSON.parse(#"{"totalCost":12.3,"transactionLimit":{"maxCost":20}}"#)
        #expect(TransactionResponseReading.csmsTotal(response, currency: "EUR") == 1230)
        #expect(TransactionResponseReading.csmsTotal(try JSON.parse(#"{"totalCost":0.001}"#), currency: "EUR") == nil, "sub-cent is not exact")
        #expect(TransactionResponseReading.localTotal(try JSON.parse(#"{"eventType":"Updated"}"#)) == nil)
    }
}
