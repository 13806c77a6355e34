import Testing
import Timebase
import Uplink

func msg(_ id: String, _ q: String, _ kind: OutboxMessage.Kind = .updated, bytes: Int = 10) -> OutboxMessage {
    OutboxMessage(id: id, queue: q, action: .transactionEvent, kind: kind, body: [UInt8](repeating: 0x20, count: bytes))
}

func sends(_ fx: [OutboxEffect]) -> [String] { fx.compactMap { if case .send(let m) = $0 { return m.id } else { return nil } } }

@Suite struct OutboxBehaviour {
    let t0 = Instant(nanoseconds: 1_000_000_000)

    @Test func enqueuePersistsBeforeSendingAndQueuesKeepTheirOrder() {
        var o = Outbox()
        let fx = o.enqueue(msg("a1", "A", .started), now: t0)
        #expect(fx.first == .persist(.queued(msg("a1", "A", .started))), "durable before the first send")
        #expect(sends(fx) == ["a1"])
        #expect(sends(o.enqueue(msg("a2", "A"), now: t0)) == [], "a2 waits behind a1")
        #expect(sends(o.enqueue(msg("b1", "B", .started), now: t0)) == ["b1"], "another transaction goes in parallel")
        #expect(sends(o.completed("a1", .delivered, now: t0)) == ["a2"])
        #expect(o.completed("a2", .delivered, now: t0).contains(.persist(.acknowledged(id: "a2"))))
    }

    @Test func oneStuckTransactionNeverBlocksAnother() {
        var o = Outbox()
        _ = o.enqueue(msg("a1", "A"), now: t0)
        _ = o.enqueue(msg("b1", "B"), now: t0)
        _ = o.enqueue(msg("b2", "B"), now: t0)
        var now = t0
        _ = o.completed("a1", .failed("HTTP 503"), now: now)
        #expect(sends(o.completed("b1", .delivered, now: now)) == ["b2"])
        #expect(o.completed("b2", .delivered, now: now).contains(.persist(.acknowledged(id: "b2"))))
        // a1 comes back after its backoff.
        now = now + .seconds(3)
        #expect(sends(o.tick(now: now)) == ["a1"])
    }

    @Test func backoffGrowsAndIsCapped() {
        var c = OutboxConfig()
        c.backoffInitial = .seconds(2); c.backoffCap = .seconds(60); c.jitter = 0
        var o = Outbox(config: c)
        var now = t0
        _ = o.enqueue(msg("a1", "A"), now: now)
        var gaps: [Int64] = []
        for _ in 0..<8 {
            _ = o.completed("a1", .failed("HTTP 500"), now: now)
            let next = o.nextDeadline!
            gaps.append((next - now).millisecondsClamped / 1000)
            now = next
            #expect(sends(o.tick(now: now)) == ["a1"])
        }
        #expect(gaps == [2, 4, 8, 16, 32, 60, 60, 60])
    }

    @Test func anUnreachableCloudBurnsNoAttemptsAndIsProbedOneAtATime() {
        var c = OutboxConfig()
        c.jitter = 0
        var o = Outbox(config: c)
        var now = t0
        for q in ["A", "B", "C"] { _ = o.enqueue(msg("\(q)1", q), now: now) }
        #expect(o.inFlight == 3)
        for q in ["A", "B", "C"] { _ = o.completed("\(q)1", .unreachable("connection refused"), now: now) }
        #expect(!o.reachable)
        // Hours of outage: only single probes, never more than one request at a time.
        for _ in 0..<50 {
            guard let next = o.nextDeadline else { Issue.record("no probe scheduled"); return }
            now = next
            let s = sends(o.tick(now: now))
            #expect(s.count == 1)
            #expect(o.inFlight == 1)
            _ = o.completed(s[0], .unreachable("no route"), now: now)
        }
        // Back: the probe gets through and every transaction's head goes at once.
        now = o.nextDeadline!
        let probe = sends(o.tick(now: now))
        let after = sends(o.completed(probe[0], .delivered, now: now))
        #expect(o.reachable)
        #expect(Set(after).count == 2)
        // The messages kept their full retry budget: a later 503 waits the initial backoff only.
        _ = o.completed(after[0], .failed("HTTP 503"), now: now)
        #expect(o.nextDeadline.map { ($0 - now).millisecondsClamped } == 2000)
    }

    @Test func permanentRejectionsAreDeadLetteredAndTheQueueMovesOn() {
        var o = Outbox()
        _ = o.enqueue(msg("a1", "A"), now: t0)
        _ = o.enqueue(msg("a2", "A"), now: t0)
        let fx = o.completed("a1", DeliveryResult.status(400, response: "{\"error\":\"bad\"}"), now: t0)
        #expect(fx.contains(.persist(.deadLettered(id: "a1", status: 400, response: "{\"error\":\"bad\"}"))))
        #expect(sends(fx) == ["a2"])
        #expect(o.deadLetters == 1)
        #expect(DeliveryResult.status(408, response: "") == .failed("HTTP 408"))
        // Credentials refused: the message is not at fault and must survive a token rotation.
        for code in [401, 403] {
            guard case .failed = DeliveryResult.status(code, response: "") else { Issue.record("\(code) is not retried"); continue }
        }
        #expect(DeliveryResult.status(429, response: "") == .failed("HTTP 429"))
        #expect(DeliveryResult.status(503, response: "") == .failed("HTTP 503"))
        #expect(DeliveryResult.status(204, response: "") == .delivered)
    }

    @Test func overBudgetOnlyIntermediateUpdatesAreThinnedOldestFirst() {
        var c = OutboxConfig()
        c.budgetBytes = 100
        var o = Outbox(config: c)
        var fx: [OutboxEffect] = []
        fx += o.enqueue(msg("s", "A", .started, bytes: 20), now: t0)      // in flight
        for i in 1...6 { fx += o.enqueue(msg("u\(i)", "A", .updated, bytes: 20), now: t0) }
        fx += o.enqueue(msg("e", "A", .ended, bytes: 20), now: t0)
        fx += o.enqueue(msg("n", "A", .settlement, bytes: 20), now: t0)
        let thinned = fx.compactMap { if case .persist(.thinned(let id)) = $0 { return id } else { return nil } }
        #expect(thinned == ["u1", "u2", "u3", "u4"])
        #expect(o.queuedBytes <= 100)
        #expect(o.pendingIDs.contains("s") && o.pendingIDs.contains("e") && o.pendingIDs.contains("n"))
        // Nothing left to thin: the budget is exceeded and the engine is told to stop taking sessions.
        for i in 0..<10 { _ = o.enqueue(msg("x\(i)", "B\(i)", .ended, bytes: 20), now: t0) }
        #expect(o.overBudget)
    }

    @Test func recoveryKeepsOrderAndIds() {
        let records: [OutboxRecord] = [
            .queued(msg("a1", "A", .started)), .queued(msg("a2", "A")), .queued(msg("b1", "B", .started)),
            .acknowledged(id: "a1"), .queued(msg("a3", "A", .ended)), .deadLettered(id: "b1", status: 400, response: ""),
            .queued(msg("a4", "A", .settlement)),
        ]
        var o = Outbox.recover(records: records, now: t0)
        #expect(o.pendingIDs == ["a2", "a3", "a4"])
        var order: [String] = []
        var fx = o.tick(now: t0)
        while let id = sends(fx).first {
            order.append(id)
            fx = o.completed(id, .delivered, now: t0)
        }
        #expect(order == ["a2", "a3", "a4"])
    }

    @Test(arguments: (0..<30).map { UInt64(0xB0C5 + $0) })
    func everyMessageEndsOnceAndQueuesDeliverInOrder(seed: UInt64) {
        var g = SeededGenerator(seed: seed)
        var o = Outbox(config: OutboxConfig(), seed: seed)
        var now = t0
        var expected: [String: [String]] = [:]
        var delivered: [String: [String]] = [:]
        var inFlight: [String] = []
        var ended = Set<String>()
        var n = 0
        func apply(_ fx: [OutboxEffect]) {
            for e in fx {
                switch e {
                case .send(let m): inFlight.append(m.id)
                case .persist(.acknowledged(let id)), .persist(.deadLettered(let id, _, _)), .persist(.thinned(let id)):
                    #expect(!ended.contains(id), "seed \(seed): \(id) ended twice")
                    ended.insert(id)
                default: break
                }
            }
        }
        for step in 0..<2000 {
            if step < 1500, Int.random(in: 0..<3, using: &g) == 0 {
                let q = "T\(Int.random(in: 0..<6, using: &g))"
                let id = "m\(n)"; n += 1
                expected[q, default: []].append(id)
                apply(o.enqueue(msg(id, q, [.started, .updated, .ended, .settlement].randomElement(using: &g)!), now: now))
            }
            if !inFlight.isEmpty, Bool.random(using: &g) {
                let id = inFlight.remove(at: Int.random(in: 0..<inFlight.count, using: &g))
                let q = expected.first { $0.value.contains(id) }!.key
                let r: DeliveryResult
                switch Int.random(in: 0..<10, using: &g) {
                case 0: r = .unreachable("down")
                case 1: r = .failed("HTTP 503")
                case 2 where Int.random(in: 0..<10, using: &g) == 0: r = .rejected(status: 400, response: "")
                default: r = .delivered
                }
                if r == .delivered { delivered[q, default: []].append(id) }
                apply(o.completed(id, r, now: now))
            }
            now = now + .milliseconds(Int64.random(in: 0...3000, using: &g))
            apply(o.tick(now: now))
        }
        // Drain: the cloud is healthy from here on.
        var rounds = 0
        while o.pending > 0 && rounds < 10_000 {
            rounds += 1
            if let id = inFlight.first {
                inFlight.removeFirst()
                let q = expected.first { $0.value.contains(id) }!.key
                delivered[q, default: []].append(id)
                apply(o.completed(id, .delivered, now: now))
            } else if let d = o.nextDeadline { now = max(now, d); apply(o.tick(now: now)) } else { break }
        }
        #expect(o.pending == 0, "seed \(seed)")
        #expect(ended.count == n, "seed \(seed): every message acknowledged, dead-lettered or thinned")
        for (q, ids) in delivered {
            let want = expected[q]!.filter { ids.contains($0) }
            #expect(ids == want, "seed \(seed): queue \(q) delivered out of order")
        }
    }

    @Test func messageIdsAreUUIDv4() {
        var ids = MessageIDs(seed: 7)
        let a = ids.next(), b = ids.next()
        #expect(a != b)
        #expect(a.count == 36)
        #expect(Array(a)[14] == "4")
        #expect("89ab".contains(Array(a)[19]))
    }
}

/// The OCPP-J outcomes (issue 15): CALLERRORs counted to a dead letter, non-transaction messages
/// given up after their attempts, and a restored connection sending at once.
@Suite struct OutboxOverOCPPJ {
    let t0 = Instant(nanoseconds: 1_000_000_000)

    @Test func callErrorsAreRetriedThenDeadLetteredWithTheErrorKept() {
        var c = OutboxConfig()
        c.maxCallErrorAttempts = 3
        c.jitter = 0
        var o = Outbox(config: c)
        var now = t0
        _ = o.enqueue(msg("a1", "A", .started), now: now)
        _ = o.enqueue(msg("a2", "A", .ended), now: now)
        for attempt in 1...2 {
            let fx = o.completed("a1", .callError(code: "InternalError", description: "db"), now: now)
            #expect(!fx.contains { if case .persist(.deadLettered) = $0 { return true } else { return false } }, "attempt \(attempt)")
            now = o.nextDeadline!
            #expect(sends(o.tick(now: now)) == ["a1"], "retried after its backoff, a2 still waits behind it")
        }
        let fx = o.completed("a1", .callError(code: "InternalError", description: "db"), now: now)
        #expect(fx.contains(.persist(.deadLettered(id: "a1", status: 0, response: "CALLERROR InternalError: db"))))
        #expect(sends(fx) == ["a2"], "the transaction's queue moves on")
        #expect(o.deadLetters == 1)
    }

    @Test func transactionMessagesAreNeverGivenUpOnForFailuresButOtherMessagesAre() {
        var c = OutboxConfig()
        c.maxAttemptsOther = 2
        c.jitter = 0
        var o = Outbox(config: c)
        var now = t0
        _ = o.enqueue(msg("t1", "T", .started), now: now)
        _ = o.enqueue(OutboxMessage(id: "s1", queue: "station", action: .statusNotification, kind: .other, body: [0x7B, 0x7D]), now: now)
        for _ in 0..<5 {
            _ = o.completed("t1", .failed("timeout"), now: now)
            if o.message("s1") != nil { _ = o.completed("s1", .failed("timeout"), now: now) }
            now = now + .seconds(600)
            _ = o.tick(now: now)
        }
        #expect(o.message("t1") != nil, "a transaction message is retried until delivered")
        #expect(o.message("s1") == nil, "a status message is dropped after 2 attempts")
        #expect(o.deadLetters == 1)
    }

    @Test func aRestoredConnectionSendsNowInsteadOfAtTheNextProbe() {
        var c = OutboxConfig()
        c.jitter = 0
        var o = Outbox(config: c)
        _ = o.enqueue(msg("a1", "A"), now: t0)
        _ = o.completed("a1", .unreachable("no connection"), now: t0)
        _ = o.completed("a1", .unreachable("no connection"), now: t0)
        #expect(!o.reachable)
        #expect(sends(o.tick(now: t0 + .milliseconds(10))) == [], "the probe waits for its backoff")
        #expect(sends(o.connectionRestored(now: t0 + .milliseconds(10))) == ["a1"])
        #expect(o.reachable)
    }
}

@Suite struct OutboxStartingOffline {
    @Test func nothingGoesOutUntilTheConnectionIsRestored() {
        var c = OutboxConfig()
        c.startsOffline = true
        var o = Outbox(config: c)
        let t0 = Instant(nanoseconds: 1_000_000_000)
        #expect(!o.reachable)
        #expect(sends(o.enqueue(msg("a1", "A", .started), now: t0)) == [])
        #expect(o.nextDeadline == nil, "no probe: the uplink says when it is registered")
        #expect(sends(o.tick(now: t0 + .seconds(3600))) == [])
        #expect(sends(o.connectionRestored(now: t0 + .seconds(3600))) == ["a1"])
        let recovered = Outbox.recover(config: c, records: [.queued(msg("b1", "B"))], now: t0)
        #expect(!recovered.reachable)
    }
}
