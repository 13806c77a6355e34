import Testing
import Uplink
@testable import CloudSim

// The pure parts: JSON, HTTP framing, the cloud's decisions. No sockets, no clock.

@Suite struct CloudJSONTests {
    @Test func roundTripKeepsOrderAndNumberText() throws {
        let text = #"{"b":1.50e+3,"a":[true,false,null,-0,0.25,"x\"y\\z\n\u0001"],"c":{}}"#
        let value = try CloudJSON.parse(text)
        #expect(value.text == text)
        #expect(value["b"] == .decimal("1.50e+3"))
        #expect(value["a"]?.arrayValue?.count == 6)
    }

    @Test func whitespaceEscapesAndSurrogatesAreDecoded() throws {
        let value = try CloudJSON.parse(" \n{ \"k\" : \"\\u00e9\\ud83d\\ude00\\/\" } \t")
        #expect(value["k"]?.stringValue == "é😀/")
        #expect(value.text == "{\"k\":\"é😀/\"}")
    }

    @Test(arguments: [
        "", "{", "[1,]", "{\"a\":1,}", "01", "1.", "-", "1e", "+1", "tru", "nul", "'a'",
        "\"\\ud800\"", "\"\\udc00\"", "\"a\u{01}\"", "\"\\x\"", "{} {}", "[1 2]", "{\"a\" 1}", "{1:2}",
    ])
    func invalidTextsAreRefused(_ text: String) {
        #expect(throws: CloudJSON.ParseError.self) { try CloudJSON.parse(text) }
    }

    @Test func invalidUTF8AndDeepNestingAreRefused() {
        #expect(throws: CloudJSON.ParseError.self) { try CloudJSON.parse([0x22, 0xC3, 0x28, 0x22]) }
        let deep = String(repeating: "[", count: 65) + String(repeating: "]", count: 65)
        #expect(throws: CloudJSON.ParseError.self) { try CloudJSON.parse(deep) }
        let fine = String(repeating: "[", count: 60) + String(repeating: "]", count: 60)
        #expect(throws: Never.self) { try CloudJSON.parse(fine) }
    }
}

@Suite struct HTTPParserTests {
    static func events(_ text: String, byteByByte: Bool, limits: HTTPLimits = HTTPLimits()) -> [HTTPParseEvent] {
        var parser = HTTPRequestParser(limits: limits)
        var out: [HTTPParseEvent] = []
        let bytes = Array(text.utf8)
        let pieces: [[UInt8]] = byteByByte ? bytes.map { [$0] } : [bytes]
        for piece in pieces {
            parser.feed(piece)
            while let e = parser.next() { out.append(e) }
        }
        return out
    }

    static func requests(_ events: [HTTPParseEvent]) -> [HTTPRequest] {
        events.compactMap { if case .request(let r) = $0 { return r } else { return nil } }
    }

    static func failure(_ events: [HTTPParseEvent]) -> Int? {
        for e in events { if case .failure(let status, _, _) = e { return status } }
        return nil
    }

    static let pipelined =
        "\r\nPOST /ocpp/CS-1/Heartbeat HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nIdempotency-Key:  k1 \r\n\r\n{}"
        + "POST /CS-1/Authorize HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        + "3;ext=1\r\n{\"a\r\nA\r\n\":[1,2,3]}\r\n0\r\nTrailer: x\r\n\r\n"
        + "GET /x HTTP/1.0\nHost: x\n\n"

    @Test(arguments: [false, true])
    func pipelinedRequestsInAnySplitting(byteByByte: Bool) {
        let got = Self.requests(Self.events(Self.pipelined, byteByByte: byteByByte))
        #expect(got.count == 3)
        guard got.count == 3 else { return }
        #expect(got[0].method == "POST" && got[0].target == "/ocpp/CS-1/Heartbeat")
        #expect(got[0].header("idempotency-key") == "k1")
        #expect(got[0].body == Array("{}".utf8) && got[0].keepAlive)
        #expect(got[1].chunked && String(decoding: got[1].body, as: UTF8.self) == "{\"a\":[1,2,3]}")
        #expect(got[2].method == "GET" && got[2].version == "HTTP/1.0" && !got[2].keepAlive && got[2].body.isEmpty)
    }

    @Test func expectContinueIsReportedBeforeTheBody() {
        let head = "POST /a/Heartbeat HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"
        var parser = HTTPRequestParser()
        parser.feed(Array(head.utf8))
        guard case .continueExpected? = parser.next() else { Issue.record("no continue"); return }
        #expect(parser.next() == nil)
        parser.feed(Array("{}".utf8))
        guard case .request(let r)? = parser.next() else { Issue.record("no request"); return }
        #expect(r.body == Array("{}".utf8))
        #expect(parser.isIdle)
    }

    @Test func limitsAndMalformedHeads() {
        var small = HTTPLimits()
        small.maxHeaderBytes = 256
        small.maxBodyBytes = 10
        let bigHeader = "POST /a/b HTTP/1.1\r\nHost: x\r\nX: " + String(repeating: "y", count: 300) + "\r\n\r\n"
        #expect(Self.failure(Self.events(bigHeader, byteByByte: false, limits: small)) == 431)
        #expect(Self.failure(Self.events(String(repeating: "z", count: 300), byteByByte: true, limits: small)) == 431)
        #expect(Self.failure(Self.events("POST /a/b HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n", byteByByte: false, limits: small)) == 413)
        let chunks = "POST /a/b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n123456\r\n5\r\n12345\r\n0\r\n\r\n"
        #expect(Self.failure(Self.events(chunks, byteByByte: false, limits: small)) == 413)
        let huge = "POST /a/b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffffff\r\n"
        #expect(Self.failure(Self.events(huge, byteByByte: false)) == 413)

        let bad: [(String, Int)] = [
            ("GARBAGE\r\n\r\n", 400),
            ("POST /a/b HTTP/2.0\r\nHost: x\r\n\r\n", 505),
            ("POST /a/b HTTP/1.1\r\n\r\n", 400),  // no Host
            ("POST /a/b HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            ("POST /a/b HTTP/1.1\r\nHost: x\r\nContent-Length: 2, 3\r\n\r\n", 400),
            ("POST /a/b HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
            ("POST /a/b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
            ("POST /a/b HTTP/1.1\r\nHost: x\r\nExpect: magic\r\n\r\n", 417),
            ("POST /a/b HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400),
            ("POST /a/b HTTP/1.1\r\nHost : x\r\n\r\n", 400),
            ("POST /a/b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
            ("POST /a/b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n", 400),
        ]
        for (text, status) in bad {
            #expect(Self.failure(Self.events(text, byteByByte: false)) == status, "\(text.debugDescription)")
        }
    }

    @Test func nothingFollowsAFailure() {
        var parser = HTTPRequestParser()
        parser.feed(Array("BAD\r\n\r\nPOST /a/b HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        guard case .failure? = parser.next() else { Issue.record("expected failure"); return }
        #expect(parser.next() == nil)
        #expect(parser.hasFailed)
    }

    @Test func responseFraming() {
        let r = HTTPResponse.json(200, .object([]))
        #expect(String(decoding: r.serialized(keepAlive: true), as: UTF8.self)
            == "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n{}")
        #expect(String(decoding: HTTPResponse(status: 503).serialized(keepAlive: false), as: UTF8.self)
            == "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    }
}

@Suite struct CloudCoreTests {
    static func post(_ action: String, _ body: String, key: String?, station: String = "CS-1",
                     contentType: String = "application/json; charset=utf-8") -> HTTPRequest {
        var headers: [(name: String, value: String)] = [("Host", "cloud"), ("Content-Type", contentType)]
        if let key { headers.append(("Idempotency-Key", key)) }
        return HTTPRequest(method: "POST", target: "/v1/\(station)/\(action)", headers: headers, body: Array(body.utf8))
    }

    static func body(_ o: CloudOutcome) -> String { String(decoding: o.response?.body ?? [], as: UTF8.self) }

    static func card(_ last4: String) -> String {
        #"{"idToken":{"idToken":"psp-1","type":"DirectPayment","additionalInfo":[{"additionalIdToken":"411111","type":"CardBin"},{"additionalIdToken":"\#(last4)","type":"CardLast4Digits"}]}}"#
    }

    @Test func eachActionGetsItsResponsePayload() {
        var core = CloudSimCore()
        let expected: [(String, String)] = [
            ("Authorize", #"{"idTokenInfo":{"status":"Accepted"}}"#),
            ("TransactionEvent", "{}"), ("NotifySettlement", "{}"),
            ("SecurityEventNotification", "{}"), ("StatusNotification", "{}"),
            ("Heartbeat", #"{"currentTime":"2026-11-25T10:04:05.123Z"}"#),
        ]
        for (i, (action, answer)) in expected.enumerated() {
            let o = core.handle(Self.post(action, action == "Authorize" ? Self.card("1234") : "{}", key: "k\(i)"),
                                wallMilliseconds: 1_795_601_045_123)
            #expect(o.response?.status == 200)
            #expect(Self.body(o) == answer)
            #expect(o.record["duplicate"] == .bool(false) && o.record["status"] == .int(200))
        }
        #expect(core.processedCount == 6)
    }

    @Test func duplicatesReplayTheFirstAnswer() {
        var core = CloudSimCore()
        let first = core.handle(Self.post("Heartbeat", "{}", key: "m"), wallMilliseconds: 0)
        let second = core.handle(Self.post("Heartbeat", "{}", key: "m"), wallMilliseconds: 5000)
        #expect(Self.body(first) == Self.body(second))
        #expect(second.record["duplicate"] == .bool(true))
        #expect(second.response?.headers.contains { $0.name == "Idempotent-Replayed" } == true)
        let other = core.handle(Self.post("Authorize", Self.card("1"), key: "m"), wallMilliseconds: 0)
        #expect(other.response?.status == 422 && other.record["duplicate"] == .bool(true))
        #expect(core.processedCount == 1)
    }

    @Test func scriptedFaults() {
        var core = CloudSimCore()
        _ = core.apply(.fault(.fail5xx, .all, count: 1))
        _ = core.apply(.fault(.fail5xx, .action(.transactionEvent), count: 1))
        // Its own count first, then all's.
        #expect(core.handle(Self.post("TransactionEvent", "{}", key: "t"), wallMilliseconds: 0).response?.status == 503)
        #expect(core.handle(Self.post("TransactionEvent", "{}", key: "t"), wallMilliseconds: 0).response?.status == 503)
        let retry = core.handle(Self.post("TransactionEvent", "{}", key: "t"), wallMilliseconds: 0)
        #expect(retry.response?.status == 200 && retry.record["duplicate"] == .bool(false))

        _ = core.apply(.fault(.fail4xx, .action(.notifySettlement), count: 1))
        let rejected = core.handle(Self.post("NotifySettlement", "{}", key: "s"), wallMilliseconds: 0)
        #expect(rejected.response?.status == 400 && Self.body(rejected) == #"{"error":"rejected by cloud-sim"}"#)
        let again = core.handle(Self.post("NotifySettlement", "{}", key: "s"), wallMilliseconds: 0)
        #expect(again.response?.status == 400 && again.record["duplicate"] == .bool(true))

        _ = core.apply(.fault(.drop, .action(.statusNotification), count: 1))
        let dropped = core.handle(Self.post("StatusNotification", "{}", key: "d"), wallMilliseconds: 0)
        #expect(dropped.response == nil && dropped.record["dropped"] == .bool(true))
        let resent = core.handle(Self.post("StatusNotification", "{}", key: "d"), wallMilliseconds: 0)
        #expect(resent.response?.status == 200 && resent.record["duplicate"] == .bool(true))
        #expect(core.processedCount == 2)

        _ = core.apply(.slow(milliseconds: 250))
        #expect(core.handle(Self.post("Heartbeat", "{}", key: "h"), wallMilliseconds: 0).delayMilliseconds == 250)
        _ = core.apply(.clear)
        #expect(core.script == CloudScript())
    }

    @Test func refusedCards() {
        var core = CloudSimCore()
        _ = core.apply(.refuseCard(last4: "0002", status: "Invalid"))
        _ = core.apply(.refuseCard(last4: "0003", status: "Blocked"))
        #expect(Self.body(core.handle(Self.post("Authorize", Self.card("0002"), key: "a"), wallMilliseconds: 0)) == #"{"idTokenInfo":{"status":"Invalid"}}"#)
        #expect(Self.body(core.handle(Self.post("Authorize", Self.card("0003"), key: "b"), wallMilliseconds: 0)) == #"{"idTokenInfo":{"status":"Blocked"}}"#)
        #expect(Self.body(core.handle(Self.post("Authorize", Self.card("0004"), key: "c"), wallMilliseconds: 0)) == #"{"idTokenInfo":{"status":"Accepted"}}"#)
        _ = core.apply(.acceptCard(last4: "0002"))
        #expect(Self.body(core.handle(Self.post("Authorize", Self.card("0002"), key: "d"), wallMilliseconds: 0)) == #"{"idTokenInfo":{"status":"Accepted"}}"#)
    }

    @Test func refusals() {
        var core = CloudSimCore(station: "CS-1")
        func status(_ r: HTTPRequest) -> Int? { core.handle(r, wallMilliseconds: 0).response?.status }
        #expect(status(Self.post("Reset", "{}", key: "1")) == 404)
        #expect(status(Self.post("Heartbeat", "{}", key: "1", station: "CS-2")) == 404)
        #expect(status(Self.post("Heartbeat", "[]", key: "1")) == 400)
        #expect(status(Self.post("Heartbeat", "{", key: "1")) == 400)
        #expect(status(Self.post("Heartbeat", "{}", key: nil)) == 400)
        #expect(status(Self.post("Heartbeat", "{}", key: "1", contentType: "text/plain")) == 415)
        var get = Self.post("Heartbeat", "", key: "1")
        get.method = "GET"
        #expect(status(get) == 405)
        #expect(core.processedCount == 0 && core.rememberedCount == 0)
    }

    @Test func routes() {
        #expect(CloudSimCore.route("/CS-1/Heartbeat")! == ("CS-1", "Heartbeat"))
        #expect(CloudSimCore.route("/api/ocpp/CS%2F1/Authorize?x=1")! == ("CS/1", "Authorize"))
        #expect(CloudSimCore.route("/Heartbeat") == nil)
        #expect(CloudSimCore.route("//Heartbeat") == nil)
        #expect(CloudSimCore.route("/CS/%zz") == nil)
        #expect(CloudSimCore.route("http://host/CS/Heartbeat") == nil)
    }

    @Test func memoryIsBounded() {
        var core = CloudSimCore(memoryLimit: 3)
        for i in 0..<5 { _ = core.handle(Self.post("Heartbeat", "{}", key: "k\(i)"), wallMilliseconds: 0) }
        #expect(core.rememberedCount == 3)
        // The oldest key is forgotten: it is processed again.
        #expect(core.handle(Self.post("Heartbeat", "{}", key: "k0"), wallMilliseconds: 0).record["duplicate"] == .bool(false))
        #expect(core.handle(Self.post("Heartbeat", "{}", key: "k4"), wallMilliseconds: 0).record["duplicate"] == .bool(true))
    }

    @Test func directives() throws {
        #expect(try CloudDirective.parse(["fail5xx", "all", "3"]) == .fault(.fail5xx, .all, count: 3))
        #expect(try CloudDirective.parse(["drop", "TransactionEvent"]) == .fault(.drop, .action(.transactionEvent), count: 1))
        #expect(try CloudDirective.parse(["refuse-card", "1234"]) == .refuseCard(last4: "1234", status: "Invalid"))
        #expect(try CloudDirective.parse(["slow", "0"]) == .slow(milliseconds: 0))
        for bad in [["fail5xx", "Reset", "1"], ["fail4xx", "all", "-1"], ["slow"], ["slow", "x"], ["refuse-card", "1", "Accepted"],
                    ["down", "now"], ["explode"], []] {
            #expect(throws: CloudDirective.ParseError.self, "\(bad)") { try CloudDirective.parse(bad) }
        }
    }
}
