import Foundation
import Testing
import Platform
import Timebase
import CloudHTTP
import PaymentEngine
import Station
import Uplink

/// The card decision against a real cloud-sim through the daemon's own HTTPS client, uplink and
/// decider (issue 11 item 9 and the 401/403/5xx question).
@Suite(.serialized) struct CardDecisionTests {
    init() throws { try Signals.ignore(SIGPIPE) }

    let card = CardIdentity(maskedPAN: "476173******0119", hash: [1, 2, 3, 4], brand: "VISA")

    /// A backlog of outbox messages three times the client's slots, against a cloud that takes
    /// 1.5 s per answer: Authorize still leaves at once, and the answer (the cloud refusing
    /// this card) arrives in 1.5 s, long before the engine's decision deadline, whose offline
    /// policy (allow) would have let the card charge.
    @Test func theCardDecisionLeavesAtOnceBehindABacklogAndComesFromTheCloud() throws {
        let slow = 1500
        let cloud = try CloudProcess(["--slow", "\(slow)", "--refuse-card", "0119"])
        let loop = try EventLoop()
        let client = try HTTPClient(loop: loop)
        let uplink = HTTPUplink(client: client, baseURL: cloud.url, stationId: "CS-9")
        let decider = HTTPCardDecider(uplink: uplink, seed: 7)
        var delivered = 0
        let backlog = 3 * HTTPClientLimits().maxConcurrent
        for i in 0..<backlog {
            let body = Array(#"{"eventType":"Updated","seqNo":\#(i)}"#.utf8)
            uplink.send(OutboxMessage(id: "backlog-\(i)", queue: "tx-\(i)", action: .transactionEvent, kind: .updated, body: body)) { _ in
                delivered += 1
            }
        }
        let postedWall = WallClock.nowMillisecondsSinceEpoch()
        let posted = MonotonicClock.now()
        var decision: (CardDecision, Instant)?
        decider.decide(session: 1, card: card, connector: 0) { decision = ($0, MonotonicClock.now()) }
        let deadline = EngineConfig().decisionTimeout
        _ = try loop.run(until: { decision != nil }, deadline: posted + deadline)
        let (answer, at) = try #require(decision, "no decision within the engine's \(deadline): the offline policy would have decided")
        #expect(answer.allowed == false, "the cloud refused this card")
        #expect(at - posted < .milliseconds(slow + 1000), "the decision took \(Double((at - posted).nanosecondsClamped) / 1e9) s")
        #expect(delivered < backlog, "the decision waited for the backlog")
        // When cloud-sim received it, by its own record.
        _ = waitUntil(.seconds(5)) { cloud.records().contains { $0["action"] as? String == "Authorize" } }
        let received = cloud.records().first { $0["action"] as? String == "Authorize" }?["t"] as? Int64
        let late = try #require(received, "cloud-sim recorded no Authorize") - postedWall
        #expect(late < 500, "Authorize reached the cloud \(late) ms after it was posted")
        _ = try loop.run(until: { delivered == backlog }, deadline: MonotonicClock.now() + .seconds(30))
        #expect(delivered == backlog)
    }

    /// Every kind of answer, from a real server on loopback, through the real client and decider.
    @Test func whatEachAnswerToAuthorizeMeans() throws {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Scripts/status-server.py").path
        let server = try ChildProcess.spawn("/usr/bin/env", ["python3", script], pipeStdin: false)
        defer { server.terminate() }
        let port = try #require(try server.readLine(timeout: .seconds(10)).flatMap { UInt16($0) })
        let loop = try EventLoop()
        let client = try HTTPClient(loop: loop)
        let closed = try TCPListener.listen(port: 0)
        closed.close()
        // nil: no decision (the offline policy at the deadline); false/true: the card refused/allowed now.
        let cases: [(String, Bool?)] = [
            ("accept", true),
            ("status/401", false), ("status/403", false),
            ("status/400", false), ("status/404", false), ("status/422", false),
            ("status/200", false),   // a 2xx that is not an AuthorizeResponse
            ("status/408", nil), ("status/429", nil),
            ("status/500", nil), ("status/502", nil), ("status/503", nil),
        ]
        for (path, expected) in cases {
            let decider = HTTPCardDecider(uplink: HTTPUplink(client: client, baseURL: "http://127.0.0.1:\(port)/\(path)", stationId: "CS-9"),
                                          seed: 1)
            var problems: [String] = []
            decider.onProblem = { problems.append($0) }
            var reply: CardDecision?
            decider.decide(session: 1, card: card, connector: 0) { reply = $0 }
            _ = try loop.run(until: { reply != nil || decider.leftToOfflinePolicy > 0 }, deadline: MonotonicClock.now() + .seconds(10))
            #expect(reply?.allowed == expected, "\(path): \(String(describing: reply))")
            if expected == true {
                #expect(problems.isEmpty, "\(path): \(problems)")
            } else {
                // Every answer that is not a decision is said, with its status, and counted.
                #expect(problems.count == 1 && problems.first?.contains("HTTP \(path == "accept" ? "" : path.dropFirst(7))") == true,
                        "\(path): \(problems)")
                #expect(decider.refusedByAnswer + decider.leftToOfflinePolicy == 1, "\(path)")
            }
        }
        // No connection at all stays offline.
        let decider = HTTPCardDecider(uplink: HTTPUplink(client: client, baseURL: "http://127.0.0.1:\(closed.port)", stationId: "CS-9"), seed: 2)
        var reply: CardDecision?
        decider.decide(session: 1, card: card, connector: 0) { reply = $0 }
        _ = try loop.run(until: { decider.leftToOfflinePolicy > 0 }, deadline: MonotonicClock.now() + .seconds(10))
        #expect(reply == nil && decider.leftToOfflinePolicy == 1)
    }

    /// End to end: a station whose token the platform refuses does not hand out free charging
    /// under the default `allow` offline policy; the bank is never asked.
    @Test func aStationWhoseCredentialsAreRefusedDoesNotChargeUnderTheAllowPolicy() throws {
        let keys = FileManager.default.temporaryDirectory.appendingPathComponent("creds-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: keys, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: keys) }
        #expect(FileManager.default.createFile(atPath: keys + "/token", contents: Data("revoked-token-0000\n".utf8),
                                               attributes: [.posixPermissions: 0o600]))
        let b = try Bench(terminal: ["--session", "approve", "--fallback", "nocard"], cloud: ["--require-token", "current-token-1111"],
                          config: ["cloud.token_file = \(keys)/token", "cloud.offline_policy = allow", "timeouts.decision_seconds = 3"],
                          ev: "plug=100,charge=500,power=3600000", keepLog: true)
        #expect(waitUntil(.seconds(60)) { b.cloud.records().contains { $0["action"] as? String == "Authorize" && $0["status"] as? Int == 401 } },
                "no Authorize was refused")
        #expect(waitUntil(.seconds(30)) { b.sim.records("cancelled").contains { $0["by"] as? String == "host" } },
                "the terminal was not told to drop the card")
        // Past the decision deadline, when the offline policy would have allowed it.
        usleep(4_000_000)
        #expect(b.stop() == 0)
        #expect(b.sim.records("approved").isEmpty, "the bank was asked although the platform refused the station")
        #expect(!b.relayEverClosed)
        #expect(b.daemonLog.contains("401"), "the refusal is not in the log: \(b.daemonLog.suffix(2000))")
    }
}
