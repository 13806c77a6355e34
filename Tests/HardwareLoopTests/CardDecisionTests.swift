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
}
