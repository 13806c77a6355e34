import PaymentEngine
import Testing
import Timebase

/// 0.40 EUR/kWh and nothing else: 25 Wh cost one cent, so the amounts below are easy to follow.
let energyOnly = Tariff(currency: "EUR", energyPricePerKWh: 40_000)

/// A session approved for 5 000 on connector 0, charging with the meter at 0 Wh.
private func charging(_ tariff: Tariff = energyOnly) throws -> (Harness, SessionKey) {
    var (d, k) = try chargingHarness(config(tariff: tariff))
    d.send(.meter(connector: 0, registerWh: 0))
    return (d, k)
}

private func ignored(_ fx: [EngineEffect]) -> Bool {
    fx.fx.isEmpty && fx.notices.contains { $0.contains("ignored") }
}

// The charging platform's cost limit (OCPP transactionLimit.maxCost, issue 15): it only lowers
// a running session's cap, written ahead, and no capture exceeds it.
@Suite struct CostLimitTests {
    @Test func aLowerLimitIsWrittenAheadAndStopsTheSessionWhenReached() throws {
        var (d, k) = try charging()
        #expect(d.engine.sessions[k]?.costCap == 5_000)
        #expect(d.send(.costLimit(k, maxCost: 1_000)).fx == [.persist(.costLimited(k, maxCost: 1_000, at: d.wall))])
        #expect(d.engine.sessions[k]?.costLimit == 1_000)
        #expect(d.engine.sessions[k]?.costCap == 1_000)
        // 24 975 Wh cost 999: still under the cap, still charging.
        let under = d.send(.meter(connector: 0, registerWh: 24_975)).fx
        #expect(!under.contains { if case .persist(.stopped) = $0 { return true }; return false })
        #expect(d.engine.sessions[k]?.phase == .charging)
        // A jump to 30 000 Wh (1 200): stopped, and the capture is the limit, not the cost.
        let over = d.send(.meter(connector: 0, registerWh: 30_000)).fx
        #expect(over == [.relay(0, close: false),
                         .persist(.stopped(k, reason: .costLimit, energyWh: 30_000, seconds: 0, at: d.wall)),
                         .persist(.captureRequested(k, amount: 1_000)),
                         .cmd(.capture(7_001, amount: 1_000, reserved: 5_000))])
        try d.complete(.capture(7_001, amount: 1_000, reserved: 5_000))
        #expect(d.ledger.last == .captured(k, amount: 1_000, at: d.wall))
        #expect(d.captures(of: 7_001) == [1_000])
    }

    @Test func theCapIsReachedExactlyAtTheLimit() throws {
        var (d, k) = try charging()
        d.send(.costLimit(k, maxCost: 1_000))
        // 25 000 Wh cost exactly 1 000: the cap is reached, as with the authorised amount.
        let fx = d.send(.meter(connector: 0, registerWh: 25_000)).fx
        #expect(fx.contains(.persist(.stopped(k, reason: .costLimit, energyWh: 25_000, seconds: 0, at: d.wall))))
        #expect(fx.contains(.cmd(.capture(7_001, amount: 1_000, reserved: 5_000))))
    }

    @Test func aLimitThatIsNotLowerIsIgnoredAndNotWritten() throws {
        var (d, k) = try charging()
        #expect(ignored(d.send(.costLimit(k, maxCost: 5_000))))
        #expect(ignored(d.send(.costLimit(k, maxCost: 9_999))))
        #expect(ignored(d.send(.costLimit(k, maxCost: .max))))
        #expect(d.engine.sessions[k]?.costLimit == nil)
        #expect(d.send(.costLimit(k, maxCost: 2_000)).fx == [.persist(.costLimited(k, maxCost: 2_000, at: d.wall))])
        // The cap is now 2 000: a later limit must be lower than that, not than the authorisation.
        #expect(ignored(d.send(.costLimit(k, maxCost: 3_000))))
        #expect(ignored(d.send(.costLimit(k, maxCost: 2_000))))
        #expect(d.engine.sessions[k]?.costCap == 2_000)
        #expect(d.send(.costLimit(k, maxCost: 1_500)).fx == [.persist(.costLimited(k, maxCost: 1_500, at: d.wall))])
        #expect(d.ledger.filter { if case .costLimited = $0 { return true }; return false }.count == 2)
        // Charging goes on past the ignored limits' amounts only up to the lowest one taken.
        let fx = d.send(.meter(connector: 0, registerWh: 100_000)).fx
        #expect(fx.contains(.cmd(.capture(7_001, amount: 1_500, reserved: 5_000))))
    }

    @Test func aNegativeLimitAnUnknownOrSettledSessionAreIgnored() throws {
        var (d, k) = try charging()
        #expect(ignored(d.send(.costLimit(k, maxCost: -1))))
        #expect(ignored(d.send(.costLimit(k, maxCost: .min))))
        #expect(ignored(d.send(.costLimit(k + 100, maxCost: 10))))
        #expect(d.engine.sessions[k]?.phase == .charging)
        // Stopped and settling: the capture amount is already durable.
        d.send(.meter(connector: 0, registerWh: 10_000))
        d.send(.plug(connector: 0, pluggedIn: false))
        #expect(d.engine.sessions[k]?.phase == .disposing)
        #expect(ignored(d.send(.costLimit(k, maxCost: 10))))
        try d.complete(.capture(7_001, amount: 400, reserved: 5_000))
        #expect(d.engine.sessions[k] == nil)
        #expect(ignored(d.send(.costLimit(k, maxCost: 10))))
        #expect(!d.ledger.contains { if case .costLimited = $0 { return true }; return false })
    }

    @Test func aSessionNotYetApprovedIgnoresTheLimit() throws {
        var d = try readyHarness(config(tariff: energyOnly))
        let tapped = try d.tap(card(1)).fx
        guard case let .ask(k, _)? = tapped.first else { Issue.record("no cloud question: \(tapped)"); return }
        #expect(ignored(d.send(.costLimit(k, maxCost: 100))))
        d.send(.cloud(k, CardDecision(allowed: true)))
        #expect(ignored(d.send(.costLimit(k, maxCost: 100))))
        try d.completeAuthorise()
        d.send(.terminal(.approved(7_001, amount: 5_000, pspRef: [])))
        #expect(d.send(.costLimit(k, maxCost: 100)).fx == [.persist(.costLimited(k, maxCost: 100, at: d.wall))])
    }

    @Test func aLimitBelowTheCostSoFarStopsAtOnceAfterItsRecord() throws {
        var (d, k) = try charging()
        d.send(.meter(connector: 0, registerWh: 10_000))   // cost 400
        let fx = d.send(.costLimit(k, maxCost: 300)).fx
        // The limit's record comes first: the relay opens and the capture is asked for only after it.
        #expect(fx == [.persist(.costLimited(k, maxCost: 300, at: d.wall)),
                       .relay(0, close: false),
                       .persist(.stopped(k, reason: .costLimit, energyWh: 10_000, seconds: 0, at: d.wall)),
                       .persist(.captureRequested(k, amount: 300)),
                       .cmd(.capture(7_001, amount: 300, reserved: 5_000))])
        #expect(d.engine.relayCommands == [false])
    }

    @Test func aLimitOfZeroStopsNowAndCapturesNothing() throws {
        var (d, k) = try charging()
        d.send(.meter(connector: 0, registerWh: 10_000))
        let fx = d.send(.costLimit(k, maxCost: 0)).fx
        #expect(fx == [.persist(.costLimited(k, maxCost: 0, at: d.wall)),
                       .relay(0, close: false),
                       .persist(.stopped(k, reason: .costLimit, energyWh: 10_000, seconds: 0, at: d.wall)),
                       .persist(.voidRequested(k)),
                       .cmd(.release(7_001))])
        #expect(d.captures(of: 7_001).isEmpty)
    }

    @Test func chargingTimeAloneReachesALowerCapOnATick() throws {
        // mixedTariff: 50 start, 1.5 per minute of charging.
        var (d, k) = try charging(mixedTariff)
        d.send(.costLimit(k, maxCost: 60))
        // 370 s: 59.25, rounded to 59; 390 s: 59.75, rounded to 60 (the total is rounded half up).
        #expect(d.after(.seconds(370)).fx.allSatisfy { if case .persist(.stopped) = $0 { return false }; return true })
        #expect(d.engine.sessions[k]?.phase == .charging)
        let fx = d.after(.seconds(20)).fx
        #expect(fx.contains(.persist(.stopped(k, reason: .costLimit, energyWh: 0, seconds: 390, at: d.wall))))
        #expect(fx.contains(.cmd(.capture(7_001, amount: 60, reserved: 5_000))))
    }

    @Test func aSessionAwaitingItsPlugKeepsTheLowerCapWhenItCharges() throws {
        var d = try readyHarness(config(tariff: energyOnly))
        let k = try d.approvedSession(card(1), ref: 7_001)
        #expect(d.send(.costLimit(k, maxCost: 800)).fx == [.persist(.costLimited(k, maxCost: 800, at: d.wall))])
        #expect(d.send(.plug(connector: 0, pluggedIn: true)).fx == [.persist(.charging(k, at: d.wall)), .relay(0, close: true)])
        d.send(.meter(connector: 0, registerWh: 0))
        let fx = d.send(.meter(connector: 0, registerWh: 20_000)).fx   // 800
        #expect(fx.contains(.persist(.stopped(k, reason: .costLimit, energyWh: 20_000, seconds: 0, at: d.wall))))
        #expect(fx.contains(.cmd(.capture(7_001, amount: 800, reserved: 5_000))))
    }

    @Test func aLimitTheStartFeeAloneReachesReleasesASessionAwaitingItsPlug() throws {
        var d = try readyHarness(config(tariff: mixedTariff))   // start fee 50
        let k = try d.approvedSession(card(1), ref: 7_001)
        #expect(d.send(.costLimit(k, maxCost: 50)).fx == [.persist(.costLimited(k, maxCost: 50, at: d.wall)),
                                                          .persist(.voidRequested(k)), .cmd(.release(7_001))])
        // The reservation goes back; plugging in now charges nothing.
        #expect(d.send(.plug(connector: 0, pluggedIn: true)).fx == [])

        var z = try readyHarness(config(tariff: energyOnly))
        let kz = try z.approvedSession(card(2), ref: 7_002)
        #expect(z.send(.costLimit(kz, maxCost: 0)).fx == [.persist(.costLimited(kz, maxCost: 0, at: z.wall)),
                                                          .persist(.voidRequested(kz)), .cmd(.release(7_002))])
    }

    @Test func theDispositionRespectsTheLimitAndTheAuthorisation() {
        func amount(_ d: Session.Disposition) -> Int64 { if case .capture(let a) = d { return a }; return 0 }
        // 50 kWh cost 2 000 at 0.40.
        #expect(amount(PaymentEngine.disposition(tariff: energyOnly, authorised: 5_000, energyWh: 50_000, seconds: 0, reason: .unplugged)) == 2_000)
        #expect(amount(PaymentEngine.disposition(tariff: energyOnly, authorised: 5_000, energyWh: 50_000, seconds: 0, reason: .unplugged,
                                                 costLimit: 1_234)) == 1_234)
        #expect(amount(PaymentEngine.disposition(tariff: energyOnly, authorised: 1_000, energyWh: 50_000, seconds: 0, reason: .unplugged,
                                                 costLimit: 1_234)) == 1_000)
        #expect(amount(PaymentEngine.disposition(tariff: energyOnly, authorised: 5_000, energyWh: 50_000, seconds: 0, reason: .unplugged,
                                                 costLimit: 9_999)) == 2_000)
        #expect(PaymentEngine.disposition(tariff: energyOnly, authorised: 5_000, energyWh: 50_000, seconds: 0, reason: .costLimit,
                                          costLimit: 0) == .release)
    }

    // MARK: recovery

    /// The ledger's entries as the disk gives them back: each through its binary form.
    static func fromDisk(_ entries: [LedgerEntry]) throws -> [LedgerEntry] {
        try entries.map { try LedgerEntry.decode(kind: $0.kind, body: $0.encodeBody()) }
    }

    @Test func recoveryOfAChargingSessionCapturesAtMostTheLimit() throws {
        var (d, k) = try charging()
        d.send(.meter(connector: 0, registerWh: 10_000))   // cost 400, persisted (≥ 100 Wh more)
        d.send(.costLimit(k, maxCost: 1_000))
        d.send(.meter(connector: 0, registerWh: 24_000))   // cost 960, persisted
        #expect(d.ledger.last == .meter(k, energyWh: 24_000, seconds: 0))
        // The daemon dies here; the relay is open at restart.
        let later = Moment(monotonic: d.mono + .seconds(30), wallMillis: d.wall + 30_000)
        let (engine, fx, report) = PaymentEngine.recover(config: config(tariff: energyOnly), entries: try Self.fromDisk(d.ledger), at: later)
        #expect(report.toCapture == 1)
        #expect(fx.fx == [.persist(.stopped(k, reason: .recovery, energyWh: 24_000, seconds: 0, at: later.wallMillis)),
                          .persist(.captureRequested(k, amount: 960))])
        #expect(engine.sessions[k]?.costLimit == 1_000)

        // Past the limit on disk (a meter reading written in the same turn the cap was reached
        // would stop it; an older ledger could still hold one): the capture is the limit.
        let over = d.ledger + [.meter(k, energyWh: 40_000, seconds: 0)]
        let (_, fx2, _) = PaymentEngine.recover(config: config(tariff: energyOnly), entries: try Self.fromDisk(over), at: later)
        #expect(fx2.fx.contains(.persist(.captureRequested(k, amount: 1_000))))
    }

    @Test func recoveryOfAStoppedSessionWithoutItsRequestKeepsTheLimit() throws {
        let auth = LedgerEntry.authRequested(1, connector: 0, amount: 5_000, card: card(1), tariff: energyOnly, at: 1)
        let entries: [LedgerEntry] = [auth, .approved(1, handle: 7_001, authorised: 5_000, pspRef: [], at: 2), .charging(1, at: 3),
                                      .costLimited(1, maxCost: 700, at: 4), .costLimited(1, maxCost: 900, at: 5),
                                      .stopped(1, reason: .unplugged, energyWh: 50_000, seconds: 60, at: 6)]
        let (_, fx, _) = PaymentEngine.recover(config: config(tariff: energyOnly), entries: try Self.fromDisk(entries), at: Harness.start)
        // The lowest limit holds, even if a higher one were read after it.
        #expect(fx.fx.contains(.persist(.captureRequested(1, amount: 700))))
        #expect(!fx.fx.contains { if case .persist(.captureRequested(_, let a)) = $0 { return a > 700 }; return false })
    }

    @Test func recoveryBeforeTheLimitWasWrittenCapturesByTheAuthorisation() throws {
        // A crash before the limit's record reached the disk: the limit never took effect, so
        // the session settles as it would have without it (the platform may send it again).
        var (d, k) = try charging()
        d.send(.meter(connector: 0, registerWh: 30_000))   // 1 200, persisted
        let before = d.ledger
        d.send(.costLimit(k, maxCost: 1_000))
        #expect(d.ledger.count == before.count + 3)   // costLimited, stopped, captureRequested
        let (_, fx, _) = PaymentEngine.recover(config: config(tariff: energyOnly), entries: before, at: Harness.start)
        #expect(fx.fx.contains(.persist(.captureRequested(k, amount: 1_200))))
        // With the record on disk (and nothing after it), the capture is the limit.
        let (_, fx2, _) = PaymentEngine.recover(config: config(tariff: energyOnly), entries: Array(d.ledger.prefix(before.count + 1)), at: Harness.start)
        #expect(fx2.fx.contains(.persist(.captureRequested(k, amount: 1_000))))
    }

    // MARK: the record

    @Test func theRecordRoundTripsAndHasKind16() throws {
        for e in [LedgerEntry.costLimited(1, maxCost: 0, at: 0), .costLimited(.max, maxCost: .max, at: .min),
                  .costLimited(42, maxCost: 1_234, at: 1_764_000_000_000)] {
            #expect(e.kind == 16)
            #expect(!e.closesSession)
            let body = e.encodeBody()
            #expect(try LedgerEntry.decode(kind: 16, body: body) == e)
            #expect(try LedgerEntry.decode(kind: 16, body: body).session == e.session)
            for cut in 0..<body.count {
                #expect(throws: EntryDecodeError.truncated) { try LedgerEntry.decode(kind: 16, body: Array(body[..<cut])) }
            }
        }
        #expect(LedgerEntry.costLimited(0x0102_0304_0506_0708, maxCost: 1_000, at: 2).encodeBody()
                == [1, 2, 3, 4, 5, 6, 7, 8] + [0, 0, 0, 0, 0, 0, 0x03, 0xE8] + [0, 0, 0, 0, 0, 0, 0, 2])
        // No other record kind is 16: the engine's others, the summary, conditions, the outbox.
        #expect(SessionSummary.recordKind != 16)
        // The engine never writes a negative limit: one on disk is a bad value, not a cap.
        let negative = LedgerEntry.costLimited(1, maxCost: -5, at: 0).encodeBody()
        #expect(throws: EntryDecodeError.badValue("cost limit")) { try LedgerEntry.decode(kind: 16, body: negative) }
    }

    @Test func theSummaryFoldsTheLimitWithoutChangingTheOutcome() {
        let s = SessionSummary(session: 3).applying(.costLimited(3, maxCost: 100, at: 77))
        #expect(s.endedAt == 77)
        #expect(s.outcome == nil)
        #expect(s.captured == nil)
    }

    // MARK: property

    /// Random tariffs, authorisations, meter readings, time and limits (higher, lower, negative,
    /// zero) on one session, with a crash at a random point: every capture, live or recovered, is
    /// at most the authorisation and at most every limit that was written; the limit records go
    /// strictly down and each comes before the stop it causes; a cap reached means a stop.
    @Test func seededLimitsNeverLetACaptureExceedTheCap() throws {
        for seed: UInt64 in 1...300 {
            var rng = SeededGenerator(seed: seed)
            let tariff = Tariff(currency: "EUR", startFee: Int64.random(in: 0...100, using: &rng),
                                energyPricePerKWh: Int64.random(in: 0...90_000, using: &rng),
                                timePricePerMinute: Int64.random(in: 0...3_000, using: &rng))
            let approvedAmount = Int64.random(in: 100...8_000, using: &rng)
            var d = try readyHarness(config(tariff: tariff))
            let k = try d.approvedSession(card(1), ref: 7_001, amount: approvedAmount)
            let authorised = try #require(d.engine.sessions[k]?.authorised, "seed \(seed)")
            if Bool.random(using: &rng) { d.send(.costLimit(k, maxCost: Int64.random(in: -10...6_000, using: &rng))) }
            d.send(.plug(connector: 0, pluggedIn: true))
            let pluggedAt = d.wall
            var register: Int64 = 0
            d.send(.meter(connector: 0, registerWh: register))
            for _ in 0..<Int.random(in: 1...40, using: &rng) {
                guard d.engine.sessions[k]?.phase == .charging else { break }
                switch Int.random(in: 0..<10, using: &rng) {
                case 0..<5:
                    register += Int64.random(in: 0...3_000, using: &rng)
                    d.send(.meter(connector: 0, registerWh: register))
                case 5..<7: d.after(.seconds(Int64.random(in: 1...300, using: &rng)))
                case 7..<9: d.send(.costLimit(k, maxCost: Int64.random(in: -100...6_000, using: &rng)))
                default: d.send(.costLimit(k, maxCost: 0))
                }
                // After every input, a session still charging is under its cap (else it stopped).
                if let s = d.engine.sessions[k], s.phase == .charging {
                    let cost = tariff.cost(energyWh: s.energyWh, seconds: (d.wall - pluggedAt) / 1_000)
                    #expect(cost < s.costCap, "seed \(seed): charging at \(cost), cap \(s.costCap)")
                }
            }
            let limits = d.ledger.compactMap { if case let .costLimited(_, m, _) = $0 { return m }; return nil }
            #expect(zip(limits, limits.dropFirst()).allSatisfy { $0 > $1 }, "seed \(seed): limits \(limits) do not go down")
            #expect(limits.allSatisfy { $0 >= 0 && $0 < authorised }, "seed \(seed): limits \(limits) vs authorised \(authorised)")
            if let firstLimit = d.ledger.firstIndex(where: { if case .costLimited = $0 { return true }; return false }),
               let stop = d.ledger.firstIndex(where: { if case .stopped = $0 { return true }; return false }) {
                // Whatever stopped the session, the limits written are all ahead of its stop.
                let lastLimit = d.ledger.lastIndex { if case .costLimited = $0 { return true }; return false }!
                #expect(firstLimit < stop && lastLimit < stop, "seed \(seed): a limit written after the stop")
            }
            let cap = min(authorised, limits.min() ?? authorised)
            for c in d.captures(of: 7_001) { #expect(c <= cap, "seed \(seed): live capture \(c) above cap \(cap)") }
            // A crash after any prefix of the ledger: what recovery captures respects what was durable.
            let cut = Int.random(in: 0...d.ledger.count, using: &rng)
            let prefix = Array(d.ledger.prefix(cut))
            let durableLimits = prefix.compactMap { if case let .costLimited(_, m, _) = $0 { return m }; return nil }
            let durableCap = min(authorised, durableLimits.min() ?? authorised)
            let (_, fx, _) = PaymentEngine.recover(config: config(tariff: tariff), entries: try Self.fromDisk(prefix), at: d.now)
            for case let .persist(.captureRequested(_, amount)) in fx {
                #expect(amount <= durableCap, "seed \(seed): recovered capture \(amount) above cap \(durableCap) (cut \(cut))")
            }
        }
    }
}
