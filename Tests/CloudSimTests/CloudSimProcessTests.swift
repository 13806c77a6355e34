import Foundation
import Glibc
import Platform
import Testing
import Timebase

// The real cloud-sim binary over real loopback sockets. Every wait is bounded.

let authorizeBody = #"{"idToken":{"idToken":"PSP-77","type":"DirectPayment","additionalInfo":[{"additionalIdToken":"411111","type":"CardBin"},{"additionalIdToken":"4242","type":"CardLast4Digits"}]}}"#
let transactionBody = #"{"eventType":"Started","timestamp":"2026-11-25T10:00:00.000Z","triggerReason":"Authorized","seqNo":0,"transactionInfo":{"transactionId":"tx-1"},"evse":{"id":1,"connectorId":1},"meterValue":[{"timestamp":"2026-11-25T10:00:00Z","sampledValue":[{"value":12.5}]}]}"#
let settlementBody = #"{"transactionId":"tx-1","pspRef":"PSP-77","status":"Settled","settlementAmount":12.34,"settlementTime":"2026-11-25T11:00:00Z"}"#

@Suite struct CloudSimProcessTests {
    @Test func everyActionOnOneKeptAliveConnection() throws {
        let sim = try CloudSimProcess()
        let client = try sim.connect()
        let cases: [(String, String, String)] = [
            ("Authorize", authorizeBody, #"{"idTokenInfo":{"status":"Accepted"}}"#),
            ("TransactionEvent", transactionBody, "{}"),
            ("NotifySettlement", settlementBody, "{}"),
            ("SecurityEventNotification", #"{"type":"SettingSystemTime","timestamp":"2026-11-25T10:00:00Z"}"#, "{}"),
            ("StatusNotification", #"{"timestamp":"2026-11-25T10:00:00Z","connectorStatus":"Available","evseId":1,"connectorId":1}"#, "{}"),
        ]
        for (i, (action, body, answer)) in cases.enumerated() {
            let reply = try #require(try client.post(action, body: body, key: "msg-\(i)"))
            #expect(reply.status == 200, "\(action)")
            #expect(reply.header("Content-Type") == "application/json")
            #expect(reply.header("Connection") == "keep-alive")
            #expect(canonical(json: reply.text) == canonical(json: answer), "\(action): \(reply.text)")
        }
        let before = Date()
        let heartbeat = try #require(try client.post("Heartbeat", key: "msg-hb"))
        let time = try #require(heartbeat.json?["currentTime"] as? String)
        #expect(heartbeat.json?.count == 1)
        #expect(time.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"#, options: .regularExpression) != nil, "\(time)")
        let parsed = try #require(ISO8601DateFormatter.withFractions.date(from: time))
        #expect(abs(parsed.timeIntervalSince(before)) < 5)

        let records = sim.records()
        #expect(records.count == 6)
        #expect(records.map { $0["action"] as? String } == cases.map(\.0) + ["Heartbeat"])
        #expect(records.map { $0["messageId"] as? String } == (0..<5).map { "msg-\($0)" } + ["msg-hb"])
        #expect(records.allSatisfy { $0["duplicate"] as? Bool == false && $0["status"] as? Int == 200 && $0["t"] is Int })
        #expect(records.allSatisfy { $0["station"] as? String == "CS-1" && $0["dropped"] == nil })
        for (record, (_, body, _)) in zip(records, cases) {
            #expect(canonical(record["body"]) == canonical(json: body))
        }
        // The settlement amount is recorded as the daemon wrote it.
        let line = try String(contentsOfFile: sim.recordPath, encoding: .utf8).split(separator: "\n")[2]
        #expect(line.contains(#""settlementAmount":12.34"#))
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() throws {
        let sim = try CloudSimProcess()
        let client = try sim.connect()
        try client.send(HTTPClient.request("Heartbeat", body: "{}", key: "p1")
                        + HTTPClient.request("Authorize", body: authorizeBody, key: "p2")
                        + HTTPClient.request("StatusNotification", body: "{}", key: "p3"))
        var statuses: [String] = []
        for _ in 0..<3 {
            guard case .reply(let r) = try client.read() else { Issue.record("missing response"); return }
            statuses.append(r.json?.keys.sorted().joined() ?? "?")
        }
        #expect(statuses == ["currentTime", "idTokenInfo", ""])
    }

    @Test func sameKeyTwiceIsAnsweredTheSameAndRecordedAsDuplicate() throws {
        let sim = try CloudSimProcess()
        let client = try sim.connect()
        let first = try #require(try client.post("Heartbeat", key: "dup-1"))
        Thread.sleep(forTimeInterval: 0.01)
        let second = try #require(try client.post("Heartbeat", key: "dup-1"))
        #expect(first.status == 200 && second.status == 200)
        #expect(first.body == second.body)  // the same currentTime: replayed, not recomputed
        #expect(second.header("Idempotent-Replayed") == "true")
        let other = try #require(try sim.connect().post("Authorize", body: authorizeBody, key: "dup-2"))
        let otherAgain = try #require(try sim.connect().post("Authorize", body: authorizeBody, key: "dup-2"))
        #expect(other.body == otherAgain.body)
        #expect(sim.records().map { $0["duplicate"] as? Bool } == [false, true, false, true])
    }

    @Test func fail5xxThenTheRetryIsProcessedOnce() throws {
        let sim = try CloudSimProcess(["--fail5xx", "TransactionEvent", "2"])
        let client = try sim.connect()
        #expect(try client.post("TransactionEvent", body: transactionBody, key: "tx-e1")?.status == 503)
        #expect(try client.post("Heartbeat", key: "hb")?.status == 200)  // other actions unaffected
        #expect(try client.post("TransactionEvent", body: transactionBody, key: "tx-e1")?.status == 503)
        let ok = try #require(try client.post("TransactionEvent", body: transactionBody, key: "tx-e1"))
        #expect(ok.status == 200 && ok.text == "{}")
        #expect(try client.post("TransactionEvent", body: transactionBody, key: "tx-e1")?.header("Idempotent-Replayed") == "true")
        #expect(try sim.control("fail5xx all 1") == "ok fail5xx all 1")
        #expect(try client.post("Heartbeat", key: "hb2")?.status == 503)
        #expect(try client.post("Heartbeat", key: "hb2")?.status == 200)

        let tx = sim.records().filter { $0["messageId"] as? String == "tx-e1" }
        #expect(tx.map { $0["status"] as? Int } == [503, 503, 200, 200])
        #expect(tx.map { $0["duplicate"] as? Bool } == [false, false, false, true])
        #expect(tx.filter { $0["status"] as? Int == 200 && $0["duplicate"] as? Bool == false }.count == 1)
    }

    @Test func fail4xxIsAPermanentRejection() throws {
        let sim = try CloudSimProcess()
        #expect(try sim.control("fail4xx NotifySettlement 1") == "ok fail4xx NotifySettlement 1")
        let client = try sim.connect()
        let rejected = try #require(try client.post("NotifySettlement", body: settlementBody, key: "set-1"))
        #expect(rejected.status == 400)
        #expect(rejected.text == #"{"error":"rejected by cloud-sim"}"#)
        // The connection stays usable; the same key keeps its answer; a new one is accepted.
        #expect(try client.post("NotifySettlement", body: settlementBody, key: "set-1")?.status == 400)
        #expect(try client.post("NotifySettlement", body: settlementBody, key: "set-2")?.status == 200)
        let records = sim.records()
        #expect(records.map { $0["status"] as? Int } == [400, 400, 200])
        #expect(records.map { $0["duplicate"] as? Bool } == [false, true, false])
        #expect(records[0]["error"] as? String == "rejected by cloud-sim")
    }

    @Test func refusedCardsAreAnsweredInvalidOrAsScripted() throws {
        let sim = try CloudSimProcess(["--refuse-card", "9999", "Blocked"])
        let client = try sim.connect()
        #expect(try client.post("Authorize", body: authorizeBody, key: "a1")?.text == #"{"idTokenInfo":{"status":"Accepted"}}"#)
        #expect(try sim.control("refuse-card 4242") == "ok refuse-card 4242 Invalid")
        #expect(try client.post("Authorize", body: authorizeBody, key: "a2")?.text == #"{"idTokenInfo":{"status":"Invalid"}}"#)
        let blocked = authorizeBody.replacingOccurrences(of: "4242", with: "9999")
        #expect(try client.post("Authorize", body: blocked, key: "a3")?.text == #"{"idTokenInfo":{"status":"Blocked"}}"#)
        #expect(try sim.control("accept-card 4242") == "ok accept-card 4242")
        #expect(try client.post("Authorize", body: authorizeBody, key: "a4")?.text == #"{"idTokenInfo":{"status":"Accepted"}}"#)
        #expect(try sim.control("refuse-card 4242 Accepted").hasPrefix("error "))
    }

    @Test func dropClosesWithoutAnswerButTheRequestWasProcessed() throws {
        let sim = try CloudSimProcess()
        #expect(try sim.control("drop TransactionEvent 1") == "ok drop TransactionEvent 1")
        let client = try sim.connect()
        try client.send(HTTPClient.request("TransactionEvent", body: transactionBody, key: "tx-d"))
        #expect(try client.closesSilently())
        // The retry with the same key is a duplicate of what the cloud already processed.
        let retry = try #require(try sim.connect().post("TransactionEvent", body: transactionBody, key: "tx-d"))
        #expect(retry.status == 200 && retry.header("Idempotent-Replayed") == "true")
        let records = sim.records()
        #expect(records.count == 2)
        #expect(records.first?["dropped"] as? Bool == true)
        #expect(records.first?["duplicate"] as? Bool == false)
        #expect(canonical(records.first?["body"]) == canonical(json: transactionBody))
        #expect(records.last?["dropped"] == nil && records.last?["duplicate"] as? Bool == true)
    }

    @Test func downClosesEveryConnectionUntilUp() throws {
        let sim = try CloudSimProcess()
        let kept = try sim.connect()
        #expect(try kept.post("Heartbeat", key: "h1")?.status == 200)
        #expect(try sim.control("down") == "ok down")
        #expect(try kept.closesSilently())
        let fresh = try sim.connect()
        try? fresh.send(HTTPClient.request("Heartbeat", body: "{}", key: "h2"))
        #expect(try fresh.closesSilently())
        #expect(try sim.control("up") == "ok up")
        #expect(try sim.connect().post("Heartbeat", key: "h3")?.status == 200)
        #expect(sim.records().map { $0["messageId"] as? String } == ["h1", "h3"])
    }

    @Test func startsDownWithTheFlag() throws {
        let sim = try CloudSimProcess(["--down"])
        let client = try sim.connect()
        #expect(try client.closesSilently())
        try sim.control("up")
        #expect(try sim.connect().post("Heartbeat", key: "h")?.status == 200)
    }

    @Test func slowDelaysEveryResponse() throws {
        let sim = try CloudSimProcess(["--slow", "300"])
        let client = try sim.connect()
        var start = MonotonicClock.now()
        #expect(try client.post("Heartbeat", key: "s1")?.status == 200)
        #expect(MonotonicClock.now() - start >= .milliseconds(300))
        // Meanwhile another connection is served (nothing sleeps): both delayed, not serialised.
        let a = try sim.connect(), b = try sim.connect()
        start = MonotonicClock.now()
        try a.send(HTTPClient.request("Heartbeat", body: "{}", key: "s2"))
        try b.send(HTTPClient.request("Heartbeat", body: "{}", key: "s3"))
        guard case .reply = try a.read(), case .reply = try b.read() else { Issue.record("no replies"); return }
        let both = MonotonicClock.now() - start
        #expect(both >= .milliseconds(300) && both < .milliseconds(590))
        #expect(try sim.control("slow 0") == "ok slow 0")
        start = MonotonicClock.now()
        #expect(try client.post("Heartbeat", key: "s4")?.status == 200)
        #expect(MonotonicClock.now() - start < .milliseconds(250))
    }

    @Test func errorsThatKeepTheConnection() throws {
        let sim = try CloudSimProcess(["--station", "CS-1"])
        let client = try sim.connect()
        let unknown = try #require(try client.post("Reset", key: "e1"))
        #expect(unknown.status == 404 && unknown.json?["error"] is String)
        #expect(try client.post("Heartbeat", key: "e2", station: "CS-2")?.status == 404)
        #expect(try client.post("Heartbeat", body: "not json", key: "e3")?.status == 400)
        #expect(try client.post("Heartbeat", body: "[1]", key: "e4")?.status == 400)
        #expect(try client.post("Heartbeat", key: nil)?.status == 400)
        try client.send(HTTPClient.request("Heartbeat", body: "{}", key: "e5", contentType: "text/plain"))
        guard case .reply(let media) = try client.read() else { Issue.record("no reply"); return }
        #expect(media.status == 415)
        try client.send("GET /ocpp/CS-1/Heartbeat HTTP/1.1\r\nHost: x\r\n\r\n")
        guard case .reply(let get) = try client.read() else { Issue.record("no reply"); return }
        #expect(get.status == 405 && get.header("Allow") == "POST")
        // Still the same connection.
        #expect(try client.post("Heartbeat", key: "e6")?.status == 200)
        let records = sim.records()
        #expect(records.map { $0["status"] as? Int } == [404, 404, 400, 400, 400, 415, 405, 200])
        #expect(records.dropLast().allSatisfy { $0["error"] is String })
        #expect(records[0]["action"] as? String == "Reset")
    }

    @Test func errorsThatCloseTheConnection() throws {
        let sim = try CloudSimProcess()
        let cases: [(String, Int)] = [
            ("POST /ocpp/CS-1/Heartbeat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nIdempotency-Key: big\r\nContent-Length: 2000000\r\n\r\n{", 413),
            ("POST /ocpp/CS-1/Heartbeat HTTP/1.1\r\nHost: x\r\nX-Pad: " + String(repeating: "p", count: 20_000) + "\r\n\r\n", 431),
            ("this is not http\r\n\r\n", 400),
            ("POST /ocpp/CS-1/Heartbeat HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", 400),
        ]
        for (request, status) in cases {
            let client = try sim.connect()
            try client.send(request)
            guard case .reply(let reply) = try client.read() else { Issue.record("no reply for \(status)"); continue }
            #expect(reply.status == status)
            #expect(reply.header("Connection") == "close")
            #expect(reply.json?["error"] is String)
            #expect(try client.closesSilently())
        }
        // A chunked body that grows past 1 MiB.
        let client = try sim.connect()
        try client.send("POST /ocpp/CS-1/Heartbeat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nIdempotency-Key: c\r\nTransfer-Encoding: chunked\r\n\r\n")
        let chunk = Array("80000\r\n".utf8) + [UInt8](repeating: 0x20, count: 0x80000) + Array("\r\n".utf8)
        try client.send(chunk)
        try client.send(chunk)
        try client.send("1\r\n")
        guard case .reply(let reply) = try client.read() else { Issue.record("no 413"); return }
        #expect(reply.status == 413)
        #expect(sim.records().map { $0["status"] as? Int } == [413, 431, 400, 400, 413])
    }

    @Test func chunkedRequestBodies() throws {
        let sim = try CloudSimProcess()
        let client = try sim.connect()
        let body = Array(authorizeBody.utf8)
        var request = "POST /ocpp/CS-1/Authorize HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nIdempotency-Key: ch-1\r\nTransfer-Encoding: chunked\r\n\r\n"
        request += String(format: "%x;name=value\r\n", 10) + String(decoding: body[..<10], as: UTF8.self) + "\r\n"
        request += String(format: "%X\r\n", body.count - 10) + String(decoding: body[10...], as: UTF8.self) + "\r\n"
        request += "0\r\nX-Trailer: yes\r\n\r\n"
        // Sent in small pieces, as a slow client would.
        let bytes = Array(request.utf8)
        for start in stride(from: 0, to: bytes.count, by: 7) {
            try client.send(Array(bytes[start..<min(start + 7, bytes.count)]))
        }
        let reply = try #require({ if case .reply(let r) = try client.read() { return r } else { return nil } }())
        #expect(reply.text == #"{"idTokenInfo":{"status":"Accepted"}}"#)
        #expect(try client.post("Heartbeat", key: "ch-2")?.status == 200)
        #expect(canonical(sim.records().first?["body"]) == canonical(json: authorizeBody))
    }

    @Test func expectContinueGetsTheInterimResponse() throws {
        let sim = try CloudSimProcess()
        let client = try sim.connect()
        try client.send("POST /ocpp/CS-1/Heartbeat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nIdempotency-Key: x1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
        guard case .reply(let interim) = try client.read(timeout: .seconds(2), interim: true) else { Issue.record("no 100"); return }
        #expect(interim.status == 100)
        try client.send("{}")
        guard case .reply(let reply) = try client.read() else { Issue.record("no reply"); return }
        #expect(reply.status == 200)
    }

    @Test func concurrentConnectionsAndTheConnectionLimit() throws {
        let sim = try CloudSimProcess(["--max-connections", "4"])
        let clients = try (0..<4).map { _ in try sim.connect() }
        // Half a request on each, then the rest: all four are held open at once.
        let requests = clients.indices.map { HTTPClient.request("StatusNotification", body: "{}", key: "c\($0)") }
        for (client, request) in zip(clients, requests) { try client.send(Array(request.prefix(40))) }
        for (client, request) in zip(clients, requests).reversed() { try client.send(Array(request.dropFirst(40))) }
        for client in clients {
            guard case .reply(let r) = try client.read() else { Issue.record("no reply"); continue }
            #expect(r.status == 200)
        }
        let fifth = try sim.connect()
        #expect(try fifth.closesSilently())
        #expect(sim.records().count == 4)
    }

    @Test func idleConnectionsAreClosed() throws {
        let sim = try CloudSimProcess(["--idle-timeout", "300"])
        let client = try sim.connect()
        #expect(try client.post("Heartbeat", key: "i1")?.status == 200)
        let start = MonotonicClock.now()
        #expect(try client.closesSilently(within: .seconds(3)))
        #expect(MonotonicClock.now() - start >= .milliseconds(250))
    }

    @Test func exitsWhenStandardInputCloses() throws {
        let sim = try CloudSimProcess()
        sim.process.closeStdin()
        #expect(sim.process.wait(timeout: .seconds(3)) == 0)
    }

    @Test func quitAndBadDirectives() throws {
        let sim = try CloudSimProcess()
        #expect(try sim.control("fail5xx Reset 1").hasPrefix("error "))
        #expect(try sim.control("explode").hasPrefix("error "))
        #expect(try sim.control("quit") == "ok quit")
        #expect(sim.process.wait(timeout: .seconds(3)) == 0)
    }

    /// libcurl, as the daemon will use it: a chunked upload and connection reuse.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/curl")))
    func curlChunkedUploadAndReuse() throws {
        let sim = try CloudSimProcess()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        let base = "http://127.0.0.1:\(sim.port)/ocpp/CS-1"
        process.arguments = ["-sS", "--max-time", "5",
                             "-H", "Content-Type: application/json", "-H", "Idempotency-Key: curl-1",
                             "-H", "Transfer-Encoding: chunked", "--data-binary", authorizeBody, "\(base)/Authorize",
                             "--next", "-sS", "-H", "Content-Type: application/json", "-H", "Idempotency-Key: curl-2",
                             "--data-binary", "{}", "\(base)/Heartbeat"]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        process.waitUntilExit()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(process.terminationStatus == 0)
        #expect(text.hasPrefix(#"{"idTokenInfo":{"status":"Accepted"}}{"currentTime":""#))
        #expect(sim.records().map { $0["status"] as? Int } == [200, 200])
    }
}

extension ISO8601DateFormatter {
    nonisolated(unsafe) static let withFractions: ISO8601DateFormatter = {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f
    }()
}
