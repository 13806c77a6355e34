import Testing
import PaymentEngine
import Timebase

// MARK: - driver

/// An engine effect without the command id and without log lines: what the tests compare.
enum Fx: Equatable, CustomStringConvertible {
    case persist(LedgerEntry)
    case cmd(TerminalCommand)
    case relay(Int, close: Bool)
    case ask(SessionKey, connector: Int)

    var description: String {
        switch self {
        case .persist(let e): return "persist \(e)"
        case .cmd(let c): return "cmd \(c)"
        case let .relay(c, close): return "relay \(c) \(close ? "close" : "open")"
        case let .ask(k, c): return "ask \(k) c\(c)"
        }
    }
}

extension Array where Element == EngineEffect {
    /// The effects in order, notices dropped, command ids dropped.
    var fx: [Fx] {
        compactMap { e in
            switch e {
            case .persist(let entry): return .persist(entry)
            case .terminal(_, let c): return .cmd(c)
            case let .relay(c, close): return .relay(c, close: close)
            case let .askCloud(k, _, c): return .ask(k, connector: c)
            case .notice: return nil
            }
        }
    }
    var notices: [String] { compactMap { if case .notice(_, let n) = $0 { return n }; return nil } }
    /// The notices of one severity.
    func notices(_ severity: NoticeSeverity) -> [String] {
        compactMap { if case let .notice(s, n) = $0, s == severity { return n }; return nil }
    }
    var commands: [TerminalCommand] { compactMap { if case .terminal(_, let c) = $0 { return c }; return nil } }
}

/// Drives one engine: a virtual clock, a record of every effect and durable entry, and the
/// terminal commands still waiting for their outcome.
struct Harness {
    static let start = Moment(monotonic: Instant(nanoseconds: 1_000_000_000_000), wallMillis: 1_764_000_000_000)

    var engine: PaymentEngine
    var now: Moment
    /// The ledger as the shell would have written it.
    var ledger: [LedgerEntry] = []
    /// Every effect, in order.
    var all: [EngineEffect] = []
    /// Commands sent and not yet answered, by id.
    var outstanding: [CommandID: TerminalCommand] = [:]

    init(_ config: EngineConfig, at now: Moment = Harness.start) {
        engine = PaymentEngine(config: config)
        self.now = now
    }

    /// Wraps a recovered engine and takes its recovery effects.
    init(recovered: PaymentEngine, effects: [EngineEffect], at now: Moment) {
        engine = recovered
        self.now = now
        record(effects)
    }

    var wall: Int64 { now.wallMillis }
    var mono: Instant { now.monotonic }

    mutating func record(_ fx: [EngineEffect]) {
        for e in fx {
            all.append(e)
            switch e {
            case .persist(let entry): ledger.append(entry)
            case let .terminal(id, c): outstanding[id] = c
            default: break
            }
        }
    }

    @discardableResult
    mutating func send(_ input: EngineInput) -> [EngineEffect] {
        let fx = engine.handle(input, at: now)
        record(fx)
        return fx
    }

    @discardableResult
    mutating func tick() -> [EngineEffect] {
        let fx = engine.tick(at: now)
        record(fx)
        return fx
    }

    /// Moves the clock (both monotonic and wall) without ticking.
    mutating func wait(_ d: Duration) {
        now = Moment(monotonic: now.monotonic + d, wallMillis: now.wallMillis + d.millisecondsClamped)
    }

    /// Moves the clock and ticks.
    @discardableResult
    mutating func after(_ d: Duration) -> [EngineEffect] { wait(d); return tick() }

    /// The id of the latest outstanding command that matches.
    func pendingID(_ match: (TerminalCommand) -> Bool) -> CommandID? {
        outstanding.filter { match($0.value) }.keys.max()
    }

    /// Answers the latest outstanding command equal to `cmd`.
    @discardableResult
    mutating func complete(_ cmd: TerminalCommand, _ outcome: CommandOutcome = .ok,
                           sourceLocation: SourceLocation = #_sourceLocation) throws -> [EngineEffect] {
        let id = try #require(pendingID { $0 == cmd }, "no outstanding \(cmd)", sourceLocation: sourceLocation)
        outstanding[id] = nil
        return send(.terminal(.completed(id, cmd, outcome)))
    }

    /// Answers the outstanding authorise, whatever amount it carries.
    @discardableResult
    mutating func completeAuthorise(_ outcome: CommandOutcome = .ok, sourceLocation: SourceLocation = #_sourceLocation) throws -> [EngineEffect] {
        let id = try #require(pendingID { if case .authorise = $0 { return true }; return false }, "no outstanding authorise", sourceLocation: sourceLocation)
        let cmd = outstanding.removeValue(forKey: id)!
        return send(.terminal(.completed(id, cmd, outcome)))
    }

    /// Answers the outstanding arm command.
    @discardableResult
    mutating func completeArm(_ outcome: CommandOutcome = .ok, sourceLocation: SourceLocation = #_sourceLocation) throws -> [EngineEffect] {
        let id = try #require(pendingID { if case .arm = $0 { return true }; return false }, "no outstanding arm", sourceLocation: sourceLocation)
        let cmd = outstanding.removeValue(forKey: id)!
        return send(.terminal(.completed(id, cmd, outcome)))
    }

    var armPending: Bool { pendingID { if case .arm = $0 { return true }; return false } != nil }

    /// The driver taps a card: the terminal must have been armed; the arm is answered first.
    @discardableResult
    mutating func tap(_ card: CardIdentity, sourceLocation: SourceLocation = #_sourceLocation) throws -> [EngineEffect] {
        try completeArm(sourceLocation: sourceLocation)
        return send(.terminal(.cardRead(card)))
    }

    /// Tap, cloud allows, Auth acknowledged, bank approves: returns the session key.
    @discardableResult
    mutating func approvedSession(_ card: CardIdentity, ref: UInt32, amount: Int64 = 5_000, decision: CardDecision = CardDecision(allowed: true),
                                  sourceLocation: SourceLocation = #_sourceLocation) throws -> SessionKey {
        let fx = try tap(card, sourceLocation: sourceLocation)
        guard case let .ask(k, _)? = fx.fx.first else {
            Issue.record("tap did not ask the cloud: \(fx.fx)", sourceLocation: sourceLocation)
            throw HarnessError.unexpected
        }
        send(.cloud(k, decision))
        try completeAuthorise(sourceLocation: sourceLocation)
        send(.terminal(.approved(TerminalHandle(reference: ref), amount: amount, pspRef: Self.psp(ref))))
        return k
    }

    static func psp(_ ref: UInt32) -> [UInt8] { Array("PSP\(ref)".utf8) }

    /// Every capture the engine ever sent for a terminal reference.
    func captures(of ref: UInt32) -> [Int64] {
        all.compactMap { if case let .terminal(_, .capture(r, a, _)) = $0, r.reference == ref { return a }; return nil }
    }
    func releases(of ref: UInt32) -> Int {
        all.filter { if case let .terminal(_, .release(r)) = $0, r.reference == ref { return true }; return false }.count
    }
}

enum HarnessError: Error { case unexpected }

func card(_ n: UInt8) -> CardIdentity {
    CardIdentity(maskedPAN: "476173******10\(n < 10 ? "0" : "")\(n)", hash: [0xC0, n, n, n], brand: "VISA")
}

/// 0.50 EUR start, 0.399 EUR/kWh, 0.015 EUR/min.
let mixedTariff = Tariff(currency: "EUR", startFee: 50, energyPricePerKWh: 39_900, timePricePerMinute: 1_500)

func config(connectors: Int = 1, tariff: Tariff = mixedTariff, _ tweak: (inout EngineConfig) -> Void = { _ in }) -> EngineConfig {
    var c = EngineConfig()
    c.connectors = connectors
    c.tariff = tariff
    // The exact effect lists below assume the terminal idles while every connector is busy;
    // scanning for tap-to-stop has its own tests.
    c.scanForTapToStop = false
    tweak(&c)
    return c
}

/// A harness with the terminal up and the arm answered.
func readyHarness(_ c: EngineConfig, canList: Bool = false) throws -> Harness {
    var d = Harness(c)
    #expect(d.send(.terminal(.ready(canList ? [.listOpenSessions] : []))).fx == [.cmd(.arm(amount: c.preauthAmount, reference: 1))])
    return d
}

/// A session charging on `connector` since the harness's current time.
func chargingHarness(_ c: EngineConfig, card cardID: CardIdentity = card(1), ref: UInt32 = 7_001, connector: Int = 0) throws -> (Harness, SessionKey) {
    var d = try readyHarness(c)
    let k = try d.approvedSession(cardID, ref: ref)
    #expect(d.engine.sessions[k]?.connector == connector)
    #expect(d.send(.plug(connector: connector, pluggedIn: true)).fx == [.persist(.charging(k, at: d.wall)), .relay(connector, close: true)])
    return (d, k)
}

// MARK: - 1 approve, charge, capture

@Suite struct HappyPathTests {
    @Test func approveChargeAndCaptureStepByStep() throws {
        let c = config()
        var d = Harness(c)
        let cardA = card(1)
        let t0 = d.wall

        // The terminal comes up: the engine arms it for the pre-authorisation amount.
        #expect(d.send(.terminal(.ready([]))).fx == [.cmd(.arm(amount: 5_000, reference: 1))])
        #expect(d.engine.acceptingPayments)
        #expect(try d.completeArm().fx == [])

        // A card: the cloud is asked first, nothing durable yet.
        let tapped = d.send(.terminal(.cardRead(cardA)))
        #expect(tapped.fx == [.ask(1, connector: 0)])
        #expect(tapped.contains(.askCloud(1, cardA, connector: 0)))
        #expect(d.engine.sessions[1]?.phase == .deciding(deadline: d.mono + .seconds(10)))
        #expect(d.ledger.isEmpty)

        // The cloud allows: authRequested is durable before Auth is sent.
        #expect(d.send(.cloud(1, CardDecision(allowed: true))).fx
                == [.persist(.authRequested(1, connector: 0, amount: 5_000, card: cardA, tariff: mixedTariff, at: t0)), .cmd(.authorise(amount: 5_000))])
        #expect(d.engine.sessions[1]?.phase == .authorising)
        #expect(try d.completeAuthorise().fx == [])

        // The bank approves 5000.
        d.wait(.seconds(2))
        let approvedAt = d.mono
        #expect(d.send(.terminal(.approved(7_001, amount: 5_000, pspRef: [0xAB, 0xCD]))).fx
                == [.persist(.approved(1, handle: 7_001, authorised: 5_000, pspRef: [0xAB, 0xCD], at: d.wall))])
        #expect(d.engine.sessions[1]?.phase == .awaitingPlug(deadline: approvedAt + .seconds(300)))
        #expect(d.engine.sessions[1]?.authorised == 5_000)
        // The only connector is taken: no re-arm, the next deadline is the plug-in timeout.
        #expect(d.engine.nextDeadline == approvedAt + .seconds(300))
        #expect(d.engine.relayCommands == [false])

        // The meter register is known before the plug-in: energy counts from it.
        #expect(d.send(.meter(connector: 0, registerWh: 10_000)).fx == [])
        #expect(d.after(.seconds(10)).fx == [])

        // Plug in: charging is durable before the relay closes.
        let plugged = d.mono
        #expect(d.send(.plug(connector: 0, pluggedIn: true)).fx == [.persist(.charging(1, at: d.wall)), .relay(0, close: true)])
        #expect(d.engine.relayCommands == [true])
        #expect(d.engine.sessions[1]?.phase == .charging)
        #expect(d.engine.nextDeadline == plugged + .seconds(60))

        // 50 Wh after 10 s: below 100 Wh and 60 s, nothing persisted.
        #expect(d.after(.seconds(10)).fx == [])
        #expect(d.send(.meter(connector: 0, registerWh: 10_050)).fx == [])
        // 150 Wh after 20 s: 100 Wh more than persisted.
        d.wait(.seconds(10))
        #expect(d.send(.meter(connector: 0, registerWh: 10_150)).fx == [.persist(.meter(1, energyWh: 150, seconds: 20))])
        // 200 Wh after 90 s: only 50 Wh more, but 70 s since the last persist.
        d.wait(.seconds(70))
        #expect(d.send(.meter(connector: 0, registerWh: 10_200)).fx == [.persist(.meter(1, energyWh: 200, seconds: 90))])
        #expect(d.engine.nextDeadline == plugged + .seconds(150))
        // No reading: the tick persists on the interval (at 150 s, not at 149 s).
        #expect(d.after(.seconds(59)).fx == [])
        #expect(d.after(.seconds(1)).fx == [.persist(.meter(1, energyWh: 200, seconds: 150))])
        // 1234 Wh at 30 min.
        d.wait(.seconds(1_650))
        #expect(d.send(.meter(connector: 0, registerWh: 11_234)).fx == [.persist(.meter(1, energyWh: 1_234, seconds: 1_800))])

        // Unplug: relay open, stopped, captureRequested durable, then the capture command.
        // 50 + 1234 Wh × 39.9 ct/kWh (49.2366) + 30 min × 1.5 ct (45) = 144.2366 → 144
        let unplug = d.send(.plug(connector: 0, pluggedIn: false))
        #expect(unplug.fx == [.relay(0, close: false),
                              .persist(.stopped(1, reason: .unplugged, energyWh: 1_234, seconds: 1_800, at: d.wall)),
                              .persist(.captureRequested(1, amount: 144)),
                              .cmd(.capture(7_001, amount: 144, reserved: 5_000)),
                              // The connector is free again: the terminal is offered to the next driver.
                              .cmd(.arm(amount: 5_000, reference: 2))])
        #expect(d.engine.relayCommands == [false])
        #expect(d.engine.sessions[1]?.phase == .disposing)

        #expect(try d.complete(.capture(7_001, amount: 144, reserved: 5_000)).fx == [.persist(.captured(1, amount: 144, at: d.wall))])
        #expect(d.engine.sessions.isEmpty)

        #expect(d.ledger == [
            .authRequested(1, connector: 0, amount: 5_000, card: cardA, tariff: mixedTariff, at: t0),
            .approved(1, handle: 7_001, authorised: 5_000, pspRef: [0xAB, 0xCD], at: t0 + 2_000),
            .charging(1, at: t0 + 12_000),
            .meter(1, energyWh: 150, seconds: 20),
            .meter(1, energyWh: 200, seconds: 90),
            .meter(1, energyWh: 200, seconds: 150),
            .meter(1, energyWh: 1_234, seconds: 1_800),
            .stopped(1, reason: .unplugged, energyWh: 1_234, seconds: 1_800, at: t0 + 1_812_000),
            .captureRequested(1, amount: 144),
            .captured(1, amount: 144, at: t0 + 1_812_000),
        ])
    }

    @Test func meterPersistsEveryMeterPersistWh() throws {
        var (d, k) = try chargingHarness(config { $0.meterPersistWh = 250 })
        var persisted: [Int64] = []
        d.send(.meter(connector: 0, registerWh: 0))
        for i in 1...20 {
            d.wait(.seconds(1))
            for case .persist(.meter(_, let e, _)) in d.send(.meter(connector: 0, registerWh: Int64(i) * 60)) { persisted.append(e) }
        }
        // 60 Wh per reading: the first reading past each further 250 Wh.
        #expect(persisted == [300, 600, 900, 1_200])
        _ = k
    }

    @Test func anAbsurdRegisterDoesNotCrashTheEngine() async {
        // meter(): `register - registerStartWh` is unchecked: a garbage reading traps.
        await #expect(processExitsWith: .success) {
            var e = PaymentEngine(config: EngineConfig())
            let m = Moment(monotonic: Instant(nanoseconds: 1_000_000_000), wallMillis: 0)
            _ = e.handle(.terminal(.ready([])), at: m)
            _ = e.handle(.terminal(.completed(1, .arm(amount: 5_000, reference: 1), .ok)), at: m)
            _ = e.handle(.terminal(.cardRead(CardIdentity(maskedPAN: "4*", hash: [1]))), at: m)
            _ = e.handle(.cloud(1, CardDecision(allowed: true)), at: m)
            _ = e.handle(.terminal(.approved(1, amount: 5_000, pspRef: [])), at: m)
            _ = e.handle(.plug(connector: 0, pluggedIn: true), at: m)
            _ = e.handle(.meter(connector: 0, registerWh: 5), at: m)
            _ = e.handle(.meter(connector: 0, registerWh: Int64.min), at: m)
        }
    }

    @Test func aRegisterThatRunsBackwardsNeverReducesTheEnergy() throws {
        var (d, k) = try chargingHarness(config())
        d.send(.meter(connector: 0, registerWh: 5_000))
        d.send(.meter(connector: 0, registerWh: 5_400))
        #expect(d.engine.sessions[k]?.energyWh == 400)
        d.send(.meter(connector: 0, registerWh: 100))   // meter swapped or reset
        #expect(d.engine.sessions[k]?.energyWh == 400)
    }

    @Test func theCloudsTariffAndLowerMaximumAreUsed() throws {
        var d = try readyHarness(config())
        let cloudTariff = Tariff(currency: "EUR", startFee: 0, energyPricePerKWh: 60_000)
        try d.tap(card(1))
        #expect(d.send(.cloud(1, CardDecision(allowed: true, tariff: cloudTariff, maxAmount: 3_000)))
                .fx == [.persist(.authRequested(1, connector: 0, amount: 3_000, card: card(1), tariff: cloudTariff, at: d.wall)), .cmd(.authorise(amount: 3_000))])
        try d.completeAuthorise()
        // The bank approves more than asked: never capture above what we asked for.
        #expect(d.send(.terminal(.approved(9, amount: 5_000, pspRef: []))).fx
                == [.persist(.approved(1, handle: 9, authorised: 3_000, pspRef: [], at: d.wall))])
        d.send(.plug(connector: 0, pluggedIn: true))
        d.send(.meter(connector: 0, registerWh: 0))
        d.wait(.seconds(60))
        // 10 kWh at 0.60 = 600 ct with the cloud's tariff (400 with the configured one would be wrong).
        d.send(.meter(connector: 0, registerWh: 10_000))
        #expect(d.send(.plug(connector: 0, pluggedIn: false)).fx.contains(.cmd(.capture(9, amount: 600, reserved: 3_000))))
    }

    @Test func aBankApprovalBelowTheRequestIsTheCap() throws {
        var d = try readyHarness(config(tariff: Tariff(currency: "EUR", energyPricePerKWh: 40_000)))
        let k = try d.approvedSession(card(1), ref: 5, amount: 2_000)
        #expect(d.engine.sessions[k]?.authorised == 2_000)
        d.send(.plug(connector: 0, pluggedIn: true))
        d.send(.meter(connector: 0, registerWh: 0))
        // 50 kWh = 2000 ct: the cap.
        let fx = d.send(.meter(connector: 0, registerWh: 50_000)).fx
        #expect(fx.contains(.persist(.stopped(k, reason: .costLimit, energyWh: 50_000, seconds: 0, at: d.wall))))
        #expect(fx.contains(.cmd(.capture(5, amount: 2_000, reserved: 2_000))))
    }

    @Test func plugInFirstThenTapChargesOnApproval() throws {
        var d = try readyHarness(config(connectors: 2))
        // The driver plugs into connector 1 first: the card goes to the plugged-in connector.
        #expect(d.send(.plug(connector: 1, pluggedIn: true)).fx == [])
        #expect(try d.tap(card(1)).fx == [.ask(1, connector: 1)])
        d.send(.cloud(1, CardDecision(allowed: true)))
        try d.completeAuthorise()
        #expect(d.send(.terminal(.approved(3, amount: 5_000, pspRef: []))).fx
                == [.persist(.approved(1, handle: 3, authorised: 5_000, pspRef: [], at: d.wall)),
                    .persist(.charging(1, at: d.wall)), .relay(1, close: true)])
        #expect(d.engine.relayCommands == [false, true])
    }
}

// MARK: - 2 decline, cancel; 3 cloud

@Suite struct DecisionTests {
    @Test func declinePersistsDeclinedAndNoRelay() throws {
        var d = try readyHarness(config())
        try d.tap(card(1))
        d.send(.cloud(1, CardDecision(allowed: true)))
        try d.completeAuthorise()
        #expect(d.send(.terminal(.declined(reason: 5))).fx == [.persist(.declined(1, reason: 5, at: d.wall))])
        #expect(d.engine.sessions.isEmpty)
        #expect(!d.all.contains { if case .relay = $0 { return true }; return false })
        #expect(d.engine.relayCommands == [false])
        // Plugging in afterwards does nothing.
        #expect(d.send(.plug(connector: 0, pluggedIn: true)).fx == [])
        // The terminal is offered again after the re-arm delay.
        #expect(d.engine.nextDeadline == d.mono + .milliseconds(500))
        #expect(d.after(.milliseconds(499)).fx == [])
        #expect(d.after(.milliseconds(1)).fx == [.cmd(.arm(amount: 5_000, reference: 2))])
    }

    @Test func cancelledAfterAuthPersistsAbandoned() throws {
        var d = try readyHarness(config())
        try d.tap(card(1))
        d.send(.cloud(1, CardDecision(allowed: true)))
        try d.completeAuthorise()
        #expect(d.send(.terminal(.cancelled)).fx == [.persist(.abandoned(1, at: d.wall))])
        #expect(d.engine.sessions.isEmpty)
        #expect(d.ledger.map(\.kind) == [1, 4])
    }

    @Test func cancelledWhileDecidingPersistsNothing() throws {
        var d = try readyHarness(config())
        try d.tap(card(1))
        #expect(d.send(.terminal(.cancelled)).fx == [])
        #expect(d.engine.sessions.isEmpty)
        // The cloud's late answer is ignored.
        #expect(d.send(.cloud(1, CardDecision(allowed: true))).fx == [])
        #expect(d.ledger.isEmpty)
        #expect(d.after(.seconds(30)).fx == [.cmd(.arm(amount: 5_000, reference: 2))])
        #expect(d.ledger.isEmpty)
    }

    @Test func cloudRefusesCancelsAndPersistsNothing() throws {
        var d = try readyHarness(config())
        try d.tap(card(1))
        #expect(d.send(.cloud(1, CardDecision(allowed: false))).fx == [.cmd(.cancel)])
        #expect(d.engine.sessions.isEmpty)
        #expect(d.ledger.isEmpty)
        // Re-armed only once the cancel is done and the delay is over.
        #expect(d.after(.seconds(5)).fx == [])
        #expect(try d.complete(.cancel).fx == [])
        #expect(d.after(.milliseconds(500)).fx == [.cmd(.arm(amount: 5_000, reference: 2))])
        #expect(d.ledger.isEmpty)
    }

    @Test func cloudSilentPastTheDecisionTimeoutWithPolicyAllowAuthorises() throws {
        var d = try readyHarness(config())
        try d.tap(card(1))
        let deadline = d.mono + .seconds(10)
        #expect(d.engine.nextDeadline == deadline)
        #expect(d.after(.milliseconds(9_999)).fx == [])
        let fx = d.after(.milliseconds(1))
        #expect(fx.fx == [.persist(.authRequested(1, connector: 0, amount: 5_000, card: card(1), tariff: mixedTariff, at: d.wall)), .cmd(.authorise(amount: 5_000))])
        #expect(fx.notices.contains { $0.contains("offline policy allow") })
        // A late "no" from the cloud changes nothing any more.
        #expect(d.send(.cloud(1, CardDecision(allowed: false))).fx == [])
        #expect(d.engine.sessions[1]?.phase == .authorising)
    }

    @Test func cloudSilentWithPolicyDenyCancels() throws {
        var d = try readyHarness(config { $0.offlinePolicy = .deny; $0.decisionTimeout = .seconds(3) })
        try d.tap(card(1))
        #expect(d.after(.milliseconds(2_999)).fx == [])
        #expect(d.after(.milliseconds(1)).fx == [.cmd(.cancel)])
        #expect(d.engine.sessions.isEmpty)
        #expect(d.ledger.isEmpty)
    }

    @Test func authoriseNotSentOrRefusedIsAbandoned() throws {
        for outcome in [CommandOutcome.notSent, .refused(notFound: false), .refused(notFound: true)] {
            var d = try readyHarness(config())
            try d.tap(card(1))
            d.send(.cloud(1, CardDecision(allowed: true)))
            #expect(try d.completeAuthorise(outcome).fx == [.persist(.abandoned(1, at: d.wall))], "\(outcome)")
            #expect(d.engine.sessions.isEmpty)
        }
    }

    @Test func storageFullRefusesNewCardsUntilThereIsRoom() throws {
        var d = try readyHarness(config())
        d.send(.storageFull(true))
        #expect(!d.engine.acceptingPayments)
        #expect(try d.tap(card(1)).fx == [.cmd(.cancel)])
        try d.complete(.cancel)
        #expect(d.after(.seconds(10)).fx == [])
        #expect(d.send(.storageFull(false)).fx == [.cmd(.arm(amount: 5_000, reference: 1))])
    }
}

// MARK: - 4 plug-in timeout, 5 tap to stop

@Suite struct PlugTimeoutAndTapToStopTests {
    @Test func approvedButNeverPluggedInIsReleased() throws {
        var d = try readyHarness(config())
        let k = try d.approvedSession(card(1), ref: 7_001)
        #expect(d.after(.milliseconds(299_999)).fx == [])
        let fx = d.after(.milliseconds(1))
        #expect(fx.fx == [.persist(.voidRequested(k)), .cmd(.release(7_001)), .cmd(.arm(amount: 5_000, reference: 2))])
        #expect(d.engine.sessions[k]?.phase == .disposing)
        // Plugging in now starts nothing.
        #expect(d.send(.plug(connector: 0, pluggedIn: true)).fx == [])
        #expect(try d.complete(.release(7_001)).fx == [.persist(.voided(k, at: d.wall))])
        #expect(d.engine.sessions.isEmpty)
        #expect(d.ledger.map(\.kind) == [1, 13, 10, 11])
        #expect(!d.all.contains { if case .relay = $0 { return true }; return false })
    }

    @Test func sameCardWhileChargingStopsAndCaptures() throws {
        // Two connectors so the terminal is armed (scanning) while connector 0 charges.
        var (d, k) = try chargingHarness(config(connectors: 2))
        d.send(.meter(connector: 0, registerWh: 0))
        d.wait(.seconds(600))
        d.send(.meter(connector: 0, registerWh: 3_000))
        d.tick()
        #expect(d.armPending)   // connector 1 is free: the terminal is scanning
        let fx = try d.tap(card(1))
        // 50 + 3000 × 0.0399 = 119.7 + 10 min × 1.5 = 15 → 184.7 → 185
        #expect(fx.fx == [.cmd(.cancel),
                          .relay(0, close: false),
                          .persist(.stopped(k, reason: .tapToStop, energyWh: 3_000, seconds: 600, at: d.wall)),
                          .persist(.captureRequested(k, amount: 185)),
                          .cmd(.capture(7_001, amount: 185, reserved: 5_000))])
        #expect(!fx.contains { if case .askCloud = $0 { return true }; return false })
        #expect(d.engine.sessions.count == 1)
        // Unplugging afterwards changes nothing.
        #expect(d.send(.plug(connector: 0, pluggedIn: false)).fx == [])
        #expect(try d.complete(.capture(7_001, amount: 185, reserved: 5_000)).fx == [.persist(.captured(k, amount: 185, at: d.wall))])
    }

    @Test func sameCardWhileAwaitingPlugReleases() throws {
        var d = try readyHarness(config(connectors: 2))
        let k = try d.approvedSession(card(1), ref: 7_001)
        d.after(.seconds(1))
        #expect(try d.tap(card(1)).fx == [.cmd(.cancel), .persist(.voidRequested(k)), .cmd(.release(7_001))])
        #expect(try d.complete(.release(7_001)).fx == [.persist(.voided(k, at: d.wall))])
        #expect(!d.all.contains { if case .relay = $0 { return true }; return false })
    }

    @Test func aDifferentCardIsANewSessionNotAStop() throws {
        var (d, k) = try chargingHarness(config(connectors: 2))
        d.after(.seconds(1))
        #expect(try d.tap(card(2)).fx == [.ask(k + 1, connector: 1)])
        #expect(d.engine.sessions[k]?.phase == .charging)
    }

    @Test func tapToStopOnASingleConnectorCharger() throws {
        // With every connector busy the terminal keeps scanning so the driver can tap to stop.
        var (d, _) = try chargingHarness(config { $0.scanForTapToStop = true })
        d.after(.seconds(1))
        d.after(.seconds(60))
        #expect(d.armPending, "the terminal should be scanning so the driver can tap to stop")
    }

    @Test func withoutScanningForTapToStopTheTerminalIdlesWhileBusy() throws {
        var (d, _) = try chargingHarness(config())
        d.after(.seconds(1))
        d.after(.seconds(60))
        #expect(!d.armPending)
    }
}

// MARK: - 6 cost cap

@Suite struct CostCapTests {
    @Test func energyReachingTheAuthorisationStopsWithCostLimit() throws {
        // 0.40 EUR/kWh, 5000 ct authorised = 125 kWh.
        var (d, k) = try chargingHarness(config(tariff: Tariff(currency: "EUR", energyPricePerKWh: 40_000)))
        #expect(d.send(.meter(connector: 0, registerWh: 0)).fx == [])
        d.wait(.seconds(60))
        #expect(d.send(.meter(connector: 0, registerWh: 120_000)).fx == [.persist(.meter(k, energyWh: 120_000, seconds: 60))])   // 4800 ct
        d.wait(.seconds(60))
        #expect(d.send(.meter(connector: 0, registerWh: 124_987)).fx == [.persist(.meter(k, energyWh: 124_987, seconds: 120))])   // 4999.48 → 4999
        d.wait(.seconds(60))
        // 130 kWh = 5200 ct ≥ 5000: stop, capture exactly the authorisation.
        #expect(d.send(.meter(connector: 0, registerWh: 130_000)).fx
                == [.relay(0, close: false),
                    .persist(.stopped(k, reason: .costLimit, energyWh: 130_000, seconds: 180, at: d.wall)),
                    .persist(.captureRequested(k, amount: 5_000)),
                    .cmd(.capture(7_001, amount: 5_000, reserved: 5_000))])
                // The car is still plugged in: the connector is not offered again until it leaves.
        #expect(d.engine.relayCommands == [false])
        try d.complete(.capture(7_001, amount: 5_000, reserved: 5_000))
        #expect(d.ledger.last == .captured(k, amount: 5_000, at: d.wall))
        #expect(d.captures(of: 7_001) == [5_000])
    }

    @Test func reachingTheCapExactlyStops() throws {
        var (d, k) = try chargingHarness(config(tariff: Tariff(currency: "EUR", energyPricePerKWh: 40_000)))
        d.send(.meter(connector: 0, registerWh: 0))
        // 124 988 Wh = 4999.52 → 5000 = authorised.
        let fx = d.send(.meter(connector: 0, registerWh: 124_988)).fx
        #expect(fx.contains(.persist(.stopped(k, reason: .costLimit, energyWh: 124_988, seconds: 0, at: d.wall))))
        #expect(fx.contains(.cmd(.capture(7_001, amount: 5_000, reserved: 5_000))))
    }

    @Test func timeReachingTheAuthorisationStopsOnTick() throws {
        // 1 EUR/min: 5000 ct = 50 min.
        var (d, k) = try chargingHarness(config(tariff: Tariff(currency: "EUR", timePricePerMinute: 100_000)))
        // 2999 s = 4998.33 ct: below the cap; persisted on the interval.
        #expect(d.after(.seconds(2_999)).fx == [.persist(.meter(k, energyWh: 0, seconds: 2_999))])
        #expect(d.after(.seconds(1)).fx
                == [.relay(0, close: false),
                    .persist(.stopped(k, reason: .costLimit, energyWh: 0, seconds: 3_000, at: d.wall)),
                    .persist(.captureRequested(k, amount: 5_000)),
                    .cmd(.capture(7_001, amount: 5_000, reserved: 5_000))])
                // The car is still plugged in: the connector is not offered again until it leaves.
    }

    @Test func noCaptureIsEverAboveTheAuthorisation() throws {
        // Random meter walks against random approvals: the capture never exceeds the approval.
        var rng = SeededGenerator(seed: 0xCA_9CA9)
        for _ in 0..<100 {
            let authorised = Int64.random(in: 100...5_000, using: &rng)
            var d = try readyHarness(config())
            let k = try d.approvedSession(card(1), ref: 1, amount: authorised)
            d.send(.plug(connector: 0, pluggedIn: true))
            var register: Int64 = 0
            d.send(.meter(connector: 0, registerWh: 0))
            while d.engine.sessions[k]?.phase == .charging && register < 10_000_000 {
                d.wait(.seconds(Int64.random(in: 1...600, using: &rng)))
                register += Int64.random(in: 0...20_000, using: &rng)
                d.send(.meter(connector: 0, registerWh: register))
                if Int.random(in: 0..<50, using: &rng) == 0 { d.send(.plug(connector: 0, pluggedIn: false)) }
            }
            for a in d.captures(of: 1) { #expect(a <= authorised && a > 0) }
            for case .captureRequested(_, let a) in d.ledger { #expect(a <= authorised) }
        }
    }
}

// MARK: - 7 operator stop, fault, relay

@Suite struct ConnectorEventTests {
    @Test func operatorStopWhileChargingCaptures() throws {
        var (d, k) = try chargingHarness(config())
        d.wait(.seconds(120))
        // 50 + 2 min × 1.5 = 53 (no energy reported)
        #expect(d.send(.operatorStop(connector: 0)).fx
                == [.relay(0, close: false),
                    .persist(.stopped(k, reason: .operatorCommand, energyWh: 0, seconds: 120, at: d.wall)),
                    .persist(.captureRequested(k, amount: 53)),
                    .cmd(.capture(7_001, amount: 53, reserved: 5_000))])
                // The car is still plugged in: the connector is not offered again until it leaves.
    }

    @Test func operatorStopWhileAwaitingPlugReleases() throws {
        var d = try readyHarness(config())
        let k = try d.approvedSession(card(1), ref: 7_001)
        #expect(d.send(.operatorStop(connector: 0)).fx == [.persist(.voidRequested(k)), .cmd(.release(7_001))])
        // Nothing on a connector without a session.
        #expect(d.send(.operatorStop(connector: 0)).fx == [])
        #expect(d.send(.operatorStop(connector: 5)).fx == [])
    }

    @Test func faultWhileChargingStopsAndCaptures() throws {
        var (d, k) = try chargingHarness(config())
        d.send(.meter(connector: 0, registerWh: 1_000))
        d.wait(.seconds(60))
        d.send(.meter(connector: 0, registerWh: 2_000))
        let fx = d.send(.fault(connector: 0, "ground fault"))
        // 50 + 1000 × 0.0399 = 39.9 + 1 min × 1.5 → 91.4 → 91
        #expect(fx.fx == [.relay(0, close: false),
                          .persist(.stopped(k, reason: .fault, energyWh: 1_000, seconds: 60, at: d.wall)),
                          .persist(.captureRequested(k, amount: 91)),
                          .cmd(.capture(7_001, amount: 91, reserved: 5_000))])
        #expect(fx.notices.contains { $0.contains("ground fault") })
    }

    @Test func relayRefusedToCloseReleasesNeverCaptures() throws {
        var (d, k) = try chargingHarness(config())
        d.wait(.seconds(2))   // the time tariff would already cost something
        #expect(d.send(.relay(connector: 0, .refusedToClose)).fx
                == [.relay(0, close: false),
                    .persist(.stopped(k, reason: .relayRefused, energyWh: 0, seconds: 2, at: d.wall)),
                    .persist(.voidRequested(k)),
                    .cmd(.release(7_001))])
                // The car is still plugged in: the connector is not offered again until it leaves.
        #expect(d.captures(of: 7_001).isEmpty)
    }

    @Test func stopWithNothingDeliveredReleases() throws {
        var (d, k) = try chargingHarness(config())
        // Unplugged at once: no energy, no time: no start fee, the reservation is released.
        #expect(d.send(.plug(connector: 0, pluggedIn: false)).fx
                == [.relay(0, close: false),
                    .persist(.stopped(k, reason: .unplugged, energyWh: 0, seconds: 0, at: d.wall)),
                    .persist(.voidRequested(k)),
                    .cmd(.release(7_001))])   // no arm yet: within the 500 ms re-arm delay
    }

    @Test func weldedConnectorIsNoLongerOffered() throws {
        var (d, k) = try chargingHarness(config())
        d.wait(.seconds(60))
        d.send(.plug(connector: 0, pluggedIn: false))   // relay told to open, arm goes out
        #expect(d.send(.relay(connector: 0, .welded)).notices(.error).contains { $0.contains("welded") })
        try d.complete(.capture(7_001, amount: 52, reserved: 5_000))
        #expect(d.engine.sessions[k] == nil)
        // The pending arm is answered; a card is then refused: no connector left.
        #expect(try d.tap(card(2)).fx == [.cmd(.cancel)])
        try d.complete(.cancel)
        #expect(d.after(.seconds(600)).fx == [])
        #expect(!d.armPending)
        #expect(d.engine.nextDeadline == nil)
    }

    @Test func weldedConnectorIsSkippedOnATwoConnectorCharger() throws {
        var d = try readyHarness(config(connectors: 2))
        d.send(.relay(connector: 0, .welded))
        d.send(.plug(connector: 0, pluggedIn: true))   // plugged, but welded: not offered
        #expect(try d.tap(card(1)).fx == [.ask(1, connector: 1)])
    }
}

/// `connectorAvailable`: the charger's own word that it can or cannot serve a connector
/// (the controller's EVSE-ready signal).
@Suite struct ConnectorAvailabilityTests {
    @Test func aConnectorOutOfServiceIsNotOfferedUntilItComesBack() throws {
        var d = try readyHarness(config(connectors: 2))
        #expect(d.send(.connectorAvailable(connector: 0, false)).notices(.warning).contains { $0.contains("connector 1 not available") })
        #expect(d.engine.connectorOffers == [.unavailable, .available])
        #expect(d.engine.connectorStatuses == [.unavailable, .available])
        d.send(.plug(connector: 0, pluggedIn: true))   // plugged, but out of service: not offered
        #expect(try d.tap(card(1)).fx == [.ask(1, connector: 1)])
        d.send(.connectorAvailable(connector: 0, true))
        #expect(d.engine.connectorStatuses[0] == .occupied)   // the car is still plugged in
        d.send(.plug(connector: 0, pluggedIn: false))
        #expect(d.engine.connectorStatuses[0] == .available)
    }

    @Test func aSingleConnectorOutOfServiceRefusesTheCard() throws {
        var d = try readyHarness(config())
        d.send(.connectorAvailable(connector: 0, false))
        #expect(try d.tap(card(1)).fx == [.cmd(.cancel)])
        #expect(d.engine.sessions.isEmpty)
    }

    @Test func chargingStopsAsAFaultAndIsCapturedForWhatWasMetered() throws {
        var (d, k) = try chargingHarness(config())
        d.send(.meter(connector: 0, registerWh: 10_000))
        d.wait(.seconds(120))
        d.send(.meter(connector: 0, registerWh: 11_500))
        let fx = d.send(.connectorAvailable(connector: 0, false))
        let owed = try #require({ () -> Int64? in
            if case .capture(let a) = PaymentEngine.disposition(tariff: mixedTariff, authorised: 5_000, energyWh: 1_500, seconds: 120, reason: .fault) { return a }
            return nil
        }())
        #expect(fx.fx == [.relay(0, close: false),
                          .persist(.stopped(k, reason: .fault, energyWh: 1_500, seconds: 120, at: d.wall)),
                          .persist(.captureRequested(k, amount: owed)),
                          .cmd(.capture(TerminalHandle(reference: 7_001), amount: owed, reserved: 5_000))])
        // Said again: nothing more happens.
        #expect(d.send(.connectorAvailable(connector: 0, false)).isEmpty)
    }

    @Test func anApprovalAwaitingItsPlugIsReleased() throws {
        var d = try readyHarness(config())
        let k = try d.approvedSession(card(1), ref: 7_002)
        let fx = d.send(.connectorAvailable(connector: 0, false))
        #expect(fx.fx == [.persist(.voidRequested(k)), .cmd(.release(TerminalHandle(reference: 7_002)))])
        #expect(!fx.fx.contains(.relay(0, close: true)))
    }

    /// The card was being decided when the connector went out of service: approved, then
    /// plugged in, the relay never closes and the reservation goes back.
    @Test func anApprovalOnAConnectorThatWentOutOfServiceWhileDecidingIsReleasedAtThePlug() throws {
        var d = try readyHarness(config())
        let fx = try d.tap(card(1))
        guard case let .ask(k, _)? = fx.fx.first else { Issue.record("no decision asked: \(fx.fx)"); return }
        d.send(.connectorAvailable(connector: 0, false))
        d.send(.cloud(k, CardDecision(allowed: true)))
        try d.completeAuthorise()
        d.send(.terminal(.approved(TerminalHandle(reference: 7_003), amount: 5_000, pspRef: [])))
        let plugged = d.send(.plug(connector: 0, pluggedIn: true))
        #expect(plugged.fx == [.persist(.voidRequested(k)), .cmd(.release(TerminalHandle(reference: 7_003)))])
        #expect(!d.all.fx.contains(.relay(0, close: true)))
    }
}

// MARK: - 8 shutdown, ledger failure

@Suite struct ShutdownTests {
    @Test func shutdownWhileChargingOpensTheRelayAndLeavesTheCaptureToRecovery() throws {
        var (d, k) = try chargingHarness(config(connectors: 2))
        d.send(.meter(connector: 0, registerWh: 0))
        d.wait(.seconds(300))
        d.send(.meter(connector: 0, registerWh: 2_000))
        d.tick()
        #expect(d.armPending)   // connector 1 free: the terminal was scanning
        let fx = d.send(.shutdown)
        #expect(fx.fx == [.relay(0, close: false),
                          .persist(.stopped(k, reason: .shutdown, energyWh: 2_000, seconds: 300, at: d.wall)),
                          .cmd(.cancel)])
        #expect(!d.engine.acceptingPayments)
        #expect(d.engine.relayCommands == [false, false])
        try d.complete(.cancel)
        try d.completeArm()
        // No capture, no release, no re-arm, whatever happens next.
        d.send(.plug(connector: 0, pluggedIn: false))
        d.send(.terminal(.ready([.listOpenSessions])))
        d.after(.seconds(3_600))
        #expect(d.captures(of: 7_001).isEmpty)
        #expect(d.releases(of: 7_001) == 0)
        #expect(!d.armPending)
        #expect(d.ledger.filter { if case .stopped = $0 { return true }; return false }.count == 1)
    }

    @Test func noChargingStartsAfterShutdown() throws {
        var e = try readyHarness(config())
        let k2 = try e.approvedSession(card(1), ref: 1)
        e.send(.shutdown)
        #expect(e.send(.plug(connector: 0, pluggedIn: true)).fx == [])
        #expect(e.engine.sessions[k2]?.phase != .charging)
    }

    @Test func shutdownWhileDecidingDropsTheCard() throws {
        var d = try readyHarness(config())
        try d.tap(card(1))
        #expect(d.send(.shutdown).fx == [.cmd(.cancel)])
        #expect(d.engine.sessions.isEmpty)
        #expect(d.ledger.isEmpty)
    }

    @Test func ledgerFailureOpensEveryRelayAndTakesNoNewCards() throws {
        var (d, _) = try chargingHarness(config(connectors: 2))
        d.after(.seconds(1))
        #expect(d.armPending)
        let fx = d.send(.ledgerFailed("EIO"))
        #expect(fx.fx == [.relay(0, close: false), .cmd(.cancel)])
        // An error, so that a log at warning (or error) shows it.
        #expect(fx.notices(.error).contains { $0.contains("EIO") })
        #expect(!d.engine.acceptingPayments)
        #expect(d.engine.relayCommands == [false, false])
        try d.complete(.cancel)
        try d.completeArm()
        #expect(d.after(.seconds(60)).commands.allSatisfy { if case .arm = $0 { return false }; return true })
        #expect(!d.armPending)
        // A second driver plugging in gets no relay.
        #expect(!d.send(.plug(connector: 1, pluggedIn: true)).contains { if case .relay(_, true) = $0 { return true }; return false })
        #expect(d.engine.relayCommands == [false, false])
    }
}

// MARK: - 9 terminal lost

@Suite struct TerminalLostTests {
    @Test func chargingContinuesAndTheCaptureWaitsForTheTerminal() throws {
        var (d, k) = try chargingHarness(config())
        d.send(.meter(connector: 0, registerWh: 0))
        #expect(d.send(.terminal(.unavailable)).fx == [])
        #expect(d.engine.relayCommands == [true])
        #expect(d.engine.sessions[k]?.phase == .charging)
        d.wait(.seconds(60))
        #expect(d.send(.meter(connector: 0, registerWh: 1_000)).fx == [.persist(.meter(k, energyWh: 1_000, seconds: 60))])
        // 50 + 39.9 + 1.5 = 91.4 → 91
        #expect(d.send(.plug(connector: 0, pluggedIn: false)).fx
                == [.relay(0, close: false),
                    .persist(.stopped(k, reason: .unplugged, energyWh: 1_000, seconds: 60, at: d.wall)),
                    .persist(.captureRequested(k, amount: 91))])
        #expect(d.engine.nextDeadline == nil)
        #expect(d.after(.seconds(600)).fx == [])
        #expect(d.send(.terminal(.ready([]))).fx
                == [.cmd(.capture(7_001, amount: 91, reserved: 5_000)), .cmd(.arm(amount: 5_000, reference: 2))])
        #expect(try d.complete(.capture(7_001, amount: 91, reserved: 5_000)).fx == [.persist(.captured(k, amount: 91, at: d.wall))])
    }

    @Test func linkLostWhileDecidingForgetsTheCard() throws {
        var d = try readyHarness(config())
        try d.tap(card(1))
        #expect(d.send(.terminal(.unavailable)).fx == [])
        #expect(d.engine.sessions.isEmpty)
        #expect(d.send(.cloud(1, CardDecision(allowed: true))).fx == [])
        #expect(d.ledger.isEmpty)
        // The connector is free again once the terminal is back.
        #expect(d.send(.terminal(.ready([]))).fx == [.cmd(.arm(amount: 5_000, reference: 2))])
    }

    @Test func captureInFlightWhenTheLinkDropsIsResentOnReady() throws {
        var (d, k) = try chargingHarness(config())
        d.wait(.seconds(60))
        d.send(.plug(connector: 0, pluggedIn: false))
        #expect(d.captures(of: 7_001) == [52])   // 50 + 1.5 → 51.5 → 52
        d.send(.terminal(.unavailable))
        d.outstanding.removeAll()
        #expect(d.send(.terminal(.ready([]))).fx == [.cmd(.capture(7_001, amount: 52, reserved: 5_000)), .cmd(.arm(amount: 5_000, reference: 2))])
        #expect(d.captures(of: 7_001) == [52, 52])
        _ = k
    }

    @Test func notFoundAfterALinkDropMidCaptureSaysItMostLikelyWorked() throws {
        // The first capture may have been carried out when the link dropped; the resend is then
        // answered "not found". That is an unanswered attempt like `.unknown`, and the note should say so.
        var (d, k) = try chargingHarness(config())
        d.wait(.seconds(60))
        d.send(.plug(connector: 0, pluggedIn: false))
        d.send(.terminal(.unavailable))
        d.outstanding.removeAll()
        d.send(.terminal(.ready([])))
        let fx = try d.complete(.capture(7_001, amount: 52, reserved: 5_000), .refused(notFound: true))
        guard case .persist(.needsReconciliation(k, let note))? = fx.fx.first else { Issue.record("\(fx.fx)"); return }
        #expect(note.contains("most likely succeeded"), "\(note)")
    }
}

// MARK: - 10 capture retries

@Suite struct CaptureRetryTests {
    func stopped(_ c: EngineConfig = config()) throws -> (Harness, SessionKey) {
        var (d, k) = try chargingHarness(c)
        d.wait(.seconds(60))
        d.send(.plug(connector: 0, pluggedIn: false))   // capture 52
        return (d, k)
    }

    @Test func unknownIsRetriedWithTheSameAmountThenNotFoundNeedsReconciliation() throws {
        var (d, k) = try stopped()
        #expect(try d.complete(.capture(7_001, amount: 52, reserved: 5_000), .unknown).fx == [])
        #expect(d.engine.sessions[k]?.phase == .disposing)
        #expect(d.engine.nextDeadline == d.mono + .seconds(15))
        #expect(d.after(.milliseconds(14_999)).fx == [])
        #expect(d.after(.milliseconds(1)).fx == [.cmd(.capture(7_001, amount: 52, reserved: 5_000))])
        // Retried again while unanswered? No: one command at a time.
        #expect(d.after(.seconds(60)).fx == [])
        let fx = try d.complete(.capture(7_001, amount: 52, reserved: 5_000), .refused(notFound: true))
        guard case .persist(.needsReconciliation(k, let note))? = fx.fx.first, fx.fx.count == 1 else {
            Issue.record("expected needsReconciliation only: \(fx.fx)"); return
        }
        #expect(note.contains("most likely succeeded"))
        #expect(d.engine.sessions.isEmpty)
        #expect(d.captures(of: 7_001) == [52, 52])
        #expect(!d.ledger.contains { if case .captured = $0 { return true }; return false })
        // Nothing more, ever.
        #expect(d.after(.seconds(3_600)).commands.filter { if case .capture = $0 { return true }; return false }.isEmpty)
    }

    @Test func notSentIsRetried() throws {
        var (d, k) = try stopped()
        try d.complete(.capture(7_001, amount: 52, reserved: 5_000), .notSent)
        #expect(d.after(.seconds(15)).fx == [.cmd(.capture(7_001, amount: 52, reserved: 5_000))])
        #expect(try d.complete(.capture(7_001, amount: 52, reserved: 5_000)).fx == [.persist(.captured(k, amount: 52, at: d.wall))])
    }

    @Test func notFoundOnTheFirstAttemptNeedsReconciliation() throws {
        var (d, k) = try stopped()
        let fx = try d.complete(.capture(7_001, amount: 52, reserved: 5_000), .refused(notFound: true))
        guard case .persist(.needsReconciliation(k, let note))? = fx.fx.first else { Issue.record("\(fx.fx)"); return }
        #expect(note.contains("does not know session 7001"))
        #expect(d.engine.sessions.isEmpty)
    }

    @Test func refusedMaxRefusalsTimesNeedsReconciliation() throws {
        var (d, k) = try stopped(config { $0.maxRefusals = 3 })
        #expect(try d.complete(.capture(7_001, amount: 52, reserved: 5_000), .refused(notFound: false)).fx == [])
        #expect(d.after(.seconds(15)).fx == [.cmd(.capture(7_001, amount: 52, reserved: 5_000))])
        #expect(try d.complete(.capture(7_001, amount: 52, reserved: 5_000), .refused(notFound: false)).fx == [])
        #expect(d.after(.seconds(15)).fx == [.cmd(.capture(7_001, amount: 52, reserved: 5_000))])
        #expect(try d.complete(.capture(7_001, amount: 52, reserved: 5_000), .refused(notFound: false)).fx
                == [.persist(.needsReconciliation(k, note: "terminal refused 3 times"))])
        #expect(d.engine.sessions.isEmpty)
        #expect(d.captures(of: 7_001) == [52, 52, 52])
        #expect(d.after(.seconds(600)).commands.allSatisfy { if case .capture = $0 { return false }; return true })
    }

    @Test func releaseRetriesLikeACapture() throws {
        var d = try readyHarness(config())
        let k = try d.approvedSession(card(1), ref: 7_001)
        d.send(.operatorStop(connector: 0))
        try d.complete(.release(7_001), .unknown)
        // The connector is free again: the same tick also offers the terminal.
        #expect(d.after(.seconds(15)).fx == [.cmd(.release(7_001)), .cmd(.arm(amount: 5_000, reference: 2))])
        #expect(try d.complete(.release(7_001)).fx == [.persist(.voided(k, at: d.wall))])
    }
}

// MARK: - 11 connectors

@Suite struct ConnectorAllocationTests {
    @Test func secondCardGoesToTheSecondConnector() throws {
        var (d, k1) = try chargingHarness(config(connectors: 2))
        #expect(d.after(.milliseconds(500)).fx == [.cmd(.arm(amount: 5_000, reference: 2))])
        #expect(try d.tap(card(2)).fx == [.ask(2, connector: 1)])
        d.send(.cloud(2, CardDecision(allowed: true)))
        try d.completeAuthorise()
        d.send(.terminal(.approved(7_002, amount: 5_000, pspRef: [])))
        #expect(d.send(.plug(connector: 1, pluggedIn: true)).fx == [.persist(.charging(2, at: d.wall)), .relay(1, close: true)])
        #expect(d.engine.relayCommands == [true, true])
        #expect(d.engine.sessions[k1]?.connector == 0)
        #expect(d.engine.sessions[2]?.connector == 1)
        // Both connectors busy: the terminal is not offered at all.
        #expect(d.after(.seconds(5)).commands.allSatisfy { if case .arm = $0 { return false }; return true })
        // Each unplug stops its own session only.
        let fx = d.send(.plug(connector: 1, pluggedIn: false)).fx
        #expect(fx.first == .relay(1, close: false))
        #expect(d.engine.sessions[k1]?.phase == .charging)
        #expect(d.engine.relayCommands == [true, false])
    }

    @Test func aCardWithNoFreeConnectorIsCancelled() throws {
        // Connector 0 charges; the terminal is armed for connector 1, which then fails.
        var (d, _) = try chargingHarness(config(connectors: 2))
        d.after(.seconds(1))
        #expect(d.armPending)
        d.send(.relay(connector: 1, .welded))
        let fx = try d.tap(card(3))
        #expect(fx.fx == [.cmd(.cancel)])
        #expect(fx.notices.contains { $0.contains("no free connector") })
        #expect(d.engine.sessions.count == 1)
    }
}

// MARK: - 12 authorisation unknown, 13 orphans

@Suite struct AuthUnknownTests {
    func authUnknown(canList: Bool) throws -> Harness {
        var d = try readyHarness(config(), canList: canList)
        try d.tap(card(1))
        d.send(.cloud(1, CardDecision(allowed: true)))
        return d
    }

    @Test func listedApprovalIsRecordedAndReleased() throws {
        var d = try authUnknown(canList: true)
        #expect(try d.completeAuthorise(.unknown).fx == [.cmd(.listOpen)])
        #expect(d.engine.sessions[1]?.phase == .authUnknown)
        #expect(try d.complete(.listOpen).fx == [])
        #expect(d.send(.terminal(.openSessions([9_001]))).fx
                == [.persist(.approved(1, handle: 9_001, authorised: 0, pspRef: [], at: d.wall)),
                    .persist(.voidRequested(1)),
                    .cmd(.release(9_001))])
        #expect(try d.complete(.release(9_001)).fx == [.persist(.voided(1, at: d.wall))])
        #expect(d.engine.sessions.isEmpty)
        #expect(d.after(.seconds(1)).fx == [.cmd(.arm(amount: 5_000, reference: 2))])
        #expect(d.ledger.map(\.kind) == [1, 13, 10, 11])
    }

    @Test func notListedMeansNeverApproved() throws {
        var d = try authUnknown(canList: true)
        try d.completeAuthorise(.unknown)
        try d.complete(.listOpen)
        #expect(d.send(.terminal(.openSessions([]))).fx == [.persist(.abandoned(1, at: d.wall))])
        #expect(d.engine.sessions.isEmpty)
    }

    /// A terminal that keeps failing to list (refusals, silence, an OK with no list): the
    /// listing is retried, and after `maxRefusals` tries in a row the approval in doubt goes
    /// to reconciliation instead of waiting in doubt while the link stays up.
    @Test func listingThatNeverBringsAListEndsInReconciliation() throws {
        var d = try authUnknown(canList: true)
        try d.completeAuthorise(.unknown)
        let tries = EngineConfig().maxRefusals
        for n in 1...tries {
            let fx = try d.complete(.listOpen, n % 2 == 0 ? .unknown : .refused(notFound: false)).fx
            if n < tries {
                #expect(d.engine.sessions[1]?.phase == .authUnknown, "try \(n)")
                // The next listing goes out after the retry interval.
                #expect(d.after(EngineConfig().retryInterval).fx.contains(.cmd(.listOpen)), "try \(n)")
            } else {
                #expect(fx.contains { if case .persist(.needsReconciliation(1, _)) = $0 { return true } else { return false } }, "\(fx)")
            }
        }
        #expect(d.engine.sessions.isEmpty)
        #expect(d.engine.nextDeadline.map { $0 > d.mono } ?? true)
    }

    /// Auth Session acknowledged with a bare OK, then its outcome frame is lost: after
    /// `authOutcomeTimeout` the approval is in doubt and listed, not waited on for ever.
    /// A terminal that answers every Commit with something unreadable (the link stays up):
    /// retried, then after `maxUnanswered` attempts handed to a person, not retried for ever.
    @Test func aCaptureThatNeverGetsAReadableAnswerEndsInReconciliation() throws {
        var d = try readyHarness(config(), canList: false)
        let k = try d.approvedSession(card(1), ref: 7)
        d.send(.plug(connector: 0, pluggedIn: true))
        d.after(.seconds(60))
        d.send(.plug(connector: 0, pluggedIn: false))
        let tries = EngineConfig().maxUnanswered
        var last: [EngineEffect] = []
        for n in 1...tries {
            guard let id = d.pendingID({ if case .capture = $0 { return true } else { return false } }) else {
                Issue.record("no capture outstanding at try \(n)"); return
            }
            let cmd = d.outstanding.removeValue(forKey: id)!
            last = d.send(.terminal(.completed(id, cmd, .unknown)))
            if n < tries { d.after(EngineConfig().retryInterval) }
        }
        #expect(last.contains { if case .persist(.needsReconciliation(k, _)) = $0 { return true } else { return false } }, "\(last)")
        #expect(d.engine.sessions[k] == nil)
    }

    @Test func anAcknowledgedAuthorisationWithoutAnOutcomeGoesInDoubt() throws {
        var d = try authUnknown(canList: true)
        #expect(try d.completeAuthorise(.ok).fx == [])
        #expect(d.engine.sessions[1]?.phase == .authorising)
        #expect(d.engine.nextDeadline == d.mono + EngineConfig().authOutcomeTimeout)
        #expect(!d.after(EngineConfig().authOutcomeTimeout - .seconds(1)).fx.contains(.cmd(.listOpen)))
        #expect(d.after(.seconds(1)).fx.contains(.cmd(.listOpen)))
        #expect(d.engine.sessions[1]?.phase == .authUnknown)
        try d.complete(.listOpen)
        #expect(d.send(.terminal(.openSessions([]))).fx == [.persist(.abandoned(1, at: d.wall))])
    }

    @Test func withoutListingItNeedsReconciliation() throws {
        var d = try authUnknown(canList: false)
        let fx = try d.completeAuthorise(.unknown).fx
        guard case .persist(.needsReconciliation(1, let note))? = fx.first, fx.count == 1 else { Issue.record("\(fx)"); return }
        #expect(note.contains("cannot list"))
        #expect(d.engine.sessions.isEmpty)
    }

    @Test func aLateApprovalAfterAnUnknownAuthIsKept() throws {
        var d = try authUnknown(canList: true)
        try d.completeAuthorise(.unknown)
        #expect(d.send(.terminal(.approved(9_001, amount: 5_000, pspRef: [7]))).fx
                == [.persist(.approved(1, handle: 9_001, authorised: 5_000, pspRef: [7], at: d.wall))])
        // The listing now knows it: nothing is released.
        try d.complete(.listOpen)
        #expect(d.send(.terminal(.openSessions([9_001]))).fx == [])
        #expect(d.send(.plug(connector: 0, pluggedIn: true)).fx == [.persist(.charging(1, at: d.wall)), .relay(0, close: true)])
    }

    @Test func linkLostDuringAuthThenReadyLists() throws {
        var d = try authUnknown(canList: true)
        #expect(d.send(.terminal(.unavailable)).fx == [])
        #expect(d.engine.sessions[1]?.phase == .authUnknown)
        d.outstanding.removeAll()
        #expect(d.send(.terminal(.ready([.listOpenSessions]))).fx == [.cmd(.listOpen)])
        #expect(d.send(.terminal(.openSessions([4_444, 9_001]))).fx
                == [.persist(.approved(1, handle: 4_444, authorised: 0, pspRef: [], at: d.wall)),
                    .persist(.voidRequested(1)), .cmd(.release(4_444)),
                    .persist(.approved(2, handle: 9_001, authorised: 0, pspRef: [], at: d.wall)),
                    .persist(.voidRequested(2)), .cmd(.release(9_001)),
                    .cmd(.arm(amount: 5_000, reference: 3))])
    }

    @Test func aFailedListingIsRetried() throws {
        // listOpen answered .unknown (or refused, or ok without a list): listPending is cleared
        // but nothing schedules another listing; resolveUnknownAuths only runs on `.ready` and
        // on an Auth failure. The session keeps its connector: a 1-connector charger stops taking cards.
        var d = try authUnknown(canList: true)
        try d.completeAuthorise(.unknown)
        try d.complete(.listOpen, .unknown)
        for _ in 0..<10 { d.after(.seconds(60)) }
        #expect(d.engine.sessions[1]?.phase != .authUnknown || d.pendingID { $0 == .listOpen } != nil,
                "session 1 still in doubt and no listing pending after 10 min")
        // The in-doubt session keeps its connector while the listing is retried (the approval may
        // still arrive for the driver standing there); the retry is what keeps this bounded.
    }

    @Test func anApprovalNobodyAskedForIsReleased() throws {
        var d = try readyHarness(config())
        #expect(d.send(.terminal(.approved(4_242, amount: 5_000, pspRef: [1, 2]))).fx
                == [.persist(.approved(1, handle: 4_242, authorised: 5_000, pspRef: [1, 2], at: d.wall)),
                    .persist(.voidRequested(1)),
                    .cmd(.release(4_242))])
        #expect(try d.complete(.release(4_242)).fx == [.persist(.voided(1, at: d.wall))])
        #expect(d.engine.sessions.isEmpty)
        #expect(!d.all.contains { if case .relay = $0 { return true }; return false })
        // The next real card gets the next key.
        #expect(try d.tap(card(1)).fx == [.ask(2, connector: 0)])
    }

    @Test func anOrphanApprovalWhileDecidingIsReleasedAndTheCardGoesOn() throws {
        var d = try readyHarness(config())
        try d.tap(card(1))
        #expect(d.send(.terminal(.approved(4_242, amount: 5_000, pspRef: []))).fx
                == [.persist(.approved(2, handle: 4_242, authorised: 5_000, pspRef: [], at: d.wall)),
                    .persist(.voidRequested(2)),
                    .cmd(.release(4_242))])
        #expect(d.engine.sessions[1]?.phase == .deciding(deadline: d.mono + .seconds(10)))
    }
}

// MARK: - stale plug

@Suite struct StalePlugTests {
    @Test func aCarLeftPluggedAfterItsSessionIsNotChargedOnTheNextCard() throws {
        // Driver A plugs into connector 1, taps, charges to the cost limit and stays plugged in.
        // Driver B taps: freeConnector prefers the plugged-in connector 1, and B's approval
        // closes the relay on A's car (charged on B's card).
        var d = try readyHarness(config(connectors: 2, tariff: Tariff(currency: "EUR", energyPricePerKWh: 40_000)))
        d.send(.plug(connector: 1, pluggedIn: true))
        let a = try d.approvedSession(card(1), ref: 1)
        #expect(d.engine.sessions[a]?.connector == 1)
        d.send(.meter(connector: 1, registerWh: 0))
        d.send(.meter(connector: 1, registerWh: 200_000))   // cost limit: stops, car stays plugged
        try d.complete(.capture(1, amount: 5_000, reserved: 5_000))
        d.after(.seconds(1))
        let b = try d.approvedSession(card(2), ref: 2)
        #expect(d.engine.sessions[b]?.phase != .charging)
        #expect(!d.all.suffix(6).contains(.relay(connector: 1, close: true)))
    }
}

// MARK: - 13b one card at a time

@Suite struct SecondCardReadTests {
    /// A second Card Read while the first card is being decided (a repeated frame, a confused
    /// terminal) starts no session: the first card goes on to its decision and, without one,
    /// to the offline policy at its deadline; no deadline is left in the past.
    @Test func aSecondCardReadWhileDecidingIsIgnored() throws {
        var d = Harness(config(connectors: 2))
        d.send(.terminal(.ready([])))
        let first = try d.tap(card(1))
        guard case let .ask(k, _)? = first.fx.first else { Issue.record("no cloud question: \(first.fx)"); return }
        let second = d.send(.terminal(.cardRead(card(2))))
        #expect(!second.contains { if case .askCloud = $0 { return true } else { return false } }, "\(second)")
        #expect(d.engine.sessions.count == 1)
        // No answer from the cloud: the offline policy (allow) authorises the first card.
        d.after(EngineConfig().decisionTimeout + .seconds(1))
        #expect(d.pendingID { $0 == .authorise(amount: 5_000) } != nil)
        #expect(d.engine.nextDeadline.map { $0 > d.mono } ?? true)
        try d.completeAuthorise()
        d.send(.terminal(.approved(1, amount: 5_000, pspRef: [])))
        #expect(d.engine.sessions[k]?.connector == 0)
        if case .awaitingPlug = d.engine.sessions[k]?.phase {} else { Issue.record("\(String(describing: d.engine.sessions[k]?.phase))") }
    }
}

// MARK: - 14 recovery

@Suite struct RecoveryTests {
    static let now = Moment(monotonic: Instant(nanoseconds: 5_000_000_000), wallMillis: 1_765_000_000_000)
    static let auth = LedgerEntry.authRequested(1, connector: 0, amount: 5_000, card: card(1), tariff: mixedTariff, at: 1_764_000_000_000)
    static let approved = LedgerEntry.approved(1, handle: 7_001, authorised: 5_000, pspRef: [1], at: 1_764_000_002_000)
    static let charging = LedgerEntry.charging(1, at: 1_764_000_012_000)

    func recover(_ entries: [LedgerEntry], _ c: EngineConfig = config()) -> (Harness, EngineRecovery) {
        let (engine, fx, report) = PaymentEngine.recover(config: c, entries: entries, at: Self.now)
        return (Harness(recovered: engine, effects: fx, at: Self.now), report)
    }

    @Test func emptyLedgerRecoversAnIdleEngine() {
        var (d, report) = recover([])
        #expect(d.all.isEmpty)
        #expect(report.sessionsReplayed == 0 && report.openSessions == 0 && report.toRelease == 0 && report.toCapture == 0 && report.authorisationsInDoubt == 0)
        #expect(d.engine.sessions.isEmpty)
        #expect(d.send(.terminal(.ready([.listOpenSessions]))).fx == [.cmd(.arm(amount: 5_000, reference: 1))])
    }

    @Test func approvedOnlyIsReleased() throws {
        var (d, report) = recover([Self.auth, Self.approved])
        // voidRequested is durable at once; the release waits for the terminal.
        #expect(d.all.fx == [.persist(.voidRequested(1))])
        #expect(report.toRelease == 1 && report.openSessions == 1 && report.toCapture == 0)
        #expect(d.engine.relayCommands == [false])
        #expect(d.send(.terminal(.ready([]))).fx == [.cmd(.release(7_001)), .cmd(.arm(amount: 5_000, reference: 2))])
        #expect(try d.complete(.release(7_001)).fx == [.persist(.voided(1, at: d.wall))])
        #expect(d.engine.sessions.isEmpty)
        // A plug-in never charges on the recovered approval.
        #expect(d.captures(of: 7_001).isEmpty)
    }

    @Test func chargingWithAMeterIsStoppedAndCapturedFromTheLastDurableMeter() throws {
        var (d, report) = recover([Self.auth, Self.approved, Self.charging,
                                   .meter(1, energyWh: 150, seconds: 20), .meter(1, energyWh: 1_234, seconds: 1_800)])
        // 50 + 49.2366 + 45 → 144
        #expect(d.all.fx == [.persist(.stopped(1, reason: .recovery, energyWh: 1_234, seconds: 1_800, at: Self.now.wallMillis)),
                             .persist(.captureRequested(1, amount: 144))])
        #expect(report.toCapture == 1)
        #expect(d.engine.relayCommands == [false])
        #expect(d.send(.terminal(.ready([]))).fx == [.cmd(.capture(7_001, amount: 144, reserved: 5_000)), .cmd(.arm(amount: 5_000, reference: 2))])
        #expect(try d.complete(.capture(7_001, amount: 144, reserved: 5_000)).fx == [.persist(.captured(1, amount: 144, at: d.wall))])
    }

    /// The operator configured fewer connectors before the restart: sessions on the removed
    /// connector are still captured or released, and nothing traps on the missing connector.
    @Test func sessionsOnAConnectorNoLongerConfiguredAreStillSettled() throws {
        let onSecond = LedgerEntry.authRequested(1, connector: 1, amount: 5_000, card: card(1), tariff: mixedTariff, at: 1_764_000_000_000)
        let approvedOnly = LedgerEntry.authRequested(2, connector: 1, amount: 5_000, card: card(2), tariff: mixedTariff, at: 1_764_000_000_000)
        var (d, report) = recover([onSecond, Self.approved, Self.charging, .meter(1, energyWh: 150, seconds: 20),
                                   approvedOnly, .approved(2, handle: 7_002, authorised: 5_000, pspRef: [], at: 0)])
        #expect(report.toCapture == 1 && report.toRelease == 1)
        #expect(d.engine.relayCommands == [false])
        // The same capture as the same session on a connector that still exists.
        var (reference, _) = recover([Self.auth, Self.approved, Self.charging, .meter(1, energyWh: 150, seconds: 20)])
        let expected = reference.send(.terminal(.ready([]))).fx.first
        #expect(expected == .cmd(.capture(7_001, amount: 56, reserved: 5_000)))
        let fx = d.send(.terminal(.ready([]))).fx
        #expect(fx.first == expected, "\(fx)")
        #expect(fx.contains(.cmd(.release(7_002))), "\(fx)")
        #expect(!d.all.contains { if case .relay(let c, _) = $0 { return c >= 1 } else { return false } })
    }

    @Test func recoveredCaptureIsCappedAtTheAuthorisation() {
        let (d, _) = recover([Self.auth, .approved(1, handle: 7_001, authorised: 100, pspRef: [], at: 0), Self.charging,
                              .meter(1, energyWh: 1_234, seconds: 1_800)])
        #expect(d.all.fx.last == .persist(.captureRequested(1, amount: 100)))
    }

    @Test func stoppedWithoutARequestIsCapturedAsComputed() throws {
        var (d, _) = recover([Self.auth, Self.approved, Self.charging, .meter(1, energyWh: 150, seconds: 20),
                              .stopped(1, reason: .shutdown, energyWh: 1_234, seconds: 1_800, at: 0)])
        #expect(d.all.fx == [.persist(.captureRequested(1, amount: 144))])
        #expect(d.send(.terminal(.ready([]))).fx.first == .cmd(.capture(7_001, amount: 144, reserved: 5_000)))
    }

    @Test func stoppedWithNothingDeliveredIsReleasedAsTheLiveEngineWould() {
        // The live engine releases a session stopped with 0 Wh and 0 s (no start fee) and
        // always releases after relayRefused. Recovery computes a capture from the stopped
        // entry and charges the start fee (and the time) instead, when the crash fell between
        // `stopped` and `voidRequested`.
        let (zero, _) = recover([Self.auth, Self.approved, Self.charging, .stopped(1, reason: .unplugged, energyWh: 0, seconds: 0, at: 0)])
        let (refused, _) = recover([Self.auth, Self.approved, Self.charging, .stopped(1, reason: .relayRefused, energyWh: 0, seconds: 2, at: 0)])
        #expect(zero.all.fx == [.persist(.voidRequested(1))])
        #expect(refused.all.fx == [.persist(.voidRequested(1))])
    }

    @Test func captureRequestedIsResentUnchangedOnReady() throws {
        var (d, report) = recover([Self.auth, Self.approved, Self.charging, .meter(1, energyWh: 5_000, seconds: 60),
                                   .stopped(1, reason: .unplugged, energyWh: 1_234, seconds: 1_800, at: 0),
                                   .captureRequested(1, amount: 144)])
        #expect(d.all.isEmpty)
        #expect(report.toCapture == 1)
        #expect(d.engine.sessions[1]?.phase == .disposing)
        // Nothing while the terminal is down, whatever the clock does.
        #expect(d.after(.seconds(60)).fx == [])
        #expect(d.send(.terminal(.ready([]))).fx == [.cmd(.capture(7_001, amount: 144, reserved: 5_000)), .cmd(.arm(amount: 5_000, reference: 2))])
        // The first one went through before the crash: "not found" means it most likely worked.
        let fx = try d.complete(.capture(7_001, amount: 144, reserved: 5_000), .refused(notFound: true)).fx
        guard case .persist(.needsReconciliation(1, let note))? = fx.first else { Issue.record("\(fx)"); return }
        #expect(note.contains("most likely succeeded"))
        #expect(d.captures(of: 7_001) == [144])
    }

    @Test func voidRequestedIsResentOnReady() throws {
        var (d, report) = recover([Self.auth, Self.approved, .voidRequested(1)])
        #expect(d.all.isEmpty)
        #expect(report.toRelease == 1)
        #expect(d.send(.terminal(.ready([.listOpenSessions]))).fx == [.cmd(.release(7_001)), .cmd(.arm(amount: 5_000, reference: 2))])
        #expect(try d.complete(.release(7_001)).fx == [.persist(.voided(1, at: d.wall))])
    }

    @Test(arguments: [
        LedgerEntry.captured(1, amount: 144, at: 0), .voided(1, at: 0), .needsReconciliation(1, note: "x"),
        .declined(1, reason: 5, at: 0), .abandoned(1, at: 0),
    ])
    func closedSessionsNeedNothing(_ closing: LedgerEntry) {
        var (d, report) = recover([Self.auth, Self.approved, Self.charging, .meter(1, energyWh: 1_234, seconds: 1_800),
                                   .stopped(1, reason: .unplugged, energyWh: 1_234, seconds: 1_800, at: 0),
                                   .captureRequested(1, amount: 144), closing])
        #expect(d.all.isEmpty)
        #expect(d.engine.sessions.isEmpty)
        #expect(report.openSessions == 0 && report.sessionsReplayed == 1)
        #expect(d.send(.terminal(.ready([.listOpenSessions]))).fx == [.cmd(.arm(amount: 5_000, reference: 2))])
    }

    @Test func authRequestedOnlyIsInDoubtAndListed() throws {
        var (d, report) = recover([Self.auth])
        #expect(d.all.isEmpty)
        #expect(report.authorisationsInDoubt == 1)
        #expect(d.engine.sessions[1]?.phase == .authUnknown)
        let fx = d.send(.terminal(.ready([.listOpenSessions]))).fx
        #expect(fx.first == .cmd(.listOpen))
        #expect(fx.filter { $0 == .cmd(.listOpen) }.count == 1)
        try d.complete(.listOpen)
        #expect(d.send(.terminal(.openSessions([7_001]))).fx
                == [.persist(.approved(1, handle: 7_001, authorised: 0, pspRef: [], at: d.wall)),
                    .persist(.voidRequested(1)), .cmd(.release(7_001))])
    }

    @Test func aLateApprovalAfterRecoveryIsReleasedNotCharged() throws {
        // After a restart the driver of an in-doubt authorisation has been told the charger
        // restarted: a late approval is recorded and released, and never closes a relay.
        var (d, _) = recover([Self.auth])
        d.send(.terminal(.ready([.listOpenSessions])))
        d.send(.plug(connector: 0, pluggedIn: true))
        let fx = d.send(.terminal(.approved(7_001, amount: 5_000, pspRef: []))).fx
        #expect(fx.first == .persist(.approved(1, handle: 7_001, authorised: 5_000, pspRef: [], at: d.wall)))
        #expect(fx.contains(.persist(.voidRequested(1))))
        #expect(fx.contains(.cmd(.release(7_001))))
        #expect(!d.all.contains { if case .relay(_, true) = $0 { return true }; return false })
        #expect(d.engine.relayCommands == [false])
    }

    @Test func authRequestedOnlyWithoutListingNeedsReconciliation() {
        var (d, _) = recover([Self.auth])
        let fx = d.send(.terminal(.ready([]))).fx
        guard case .persist(.needsReconciliation(1, _))? = fx.first else { Issue.record("\(fx)"); return }
        #expect(d.engine.sessions.isEmpty)
    }

    @Test func newSessionsAfterRecoveryGetFreshKeys() throws {
        var (d, _) = recover([Self.auth, Self.approved, .voidRequested(1), .voided(1, at: 0),
                              .approved(4, handle: 1, authorised: 0, pspRef: [], at: 0), .voidRequested(4), .voided(4, at: 0)])
        #expect(d.send(.terminal(.ready([]))).fx == [.cmd(.arm(amount: 5_000, reference: 5))])
        #expect(try d.tap(card(2)).fx == [.ask(5, connector: 0)])
    }

    @Test func twoOpenSessionsAreBothFinished() throws {
        let auth2 = LedgerEntry.authRequested(2, connector: 1, amount: 5_000, card: card(2), tariff: mixedTariff, at: 0)
        var (d, report) = recover([Self.auth, Self.approved, Self.charging, auth2, .approved(2, handle: 7_002, authorised: 5_000, pspRef: [], at: 0),
                                   .meter(1, energyWh: 1_234, seconds: 1_800)], config(connectors: 2))
        #expect(d.all.fx == [.persist(.stopped(1, reason: .recovery, energyWh: 1_234, seconds: 1_800, at: Self.now.wallMillis)),
                             .persist(.captureRequested(1, amount: 144)),
                             .persist(.voidRequested(2))])
        #expect(report.openSessions == 2 && report.toCapture == 1 && report.toRelease == 1)
        #expect(d.send(.terminal(.ready([]))).fx
                == [.cmd(.capture(7_001, amount: 144, reserved: 5_000)), .cmd(.release(7_002)), .cmd(.arm(amount: 5_000, reference: 3))])
    }

    /// A crash after every durable entry of a full session: the recovered engine, with a terminal
    /// that still holds the approval, settles it exactly once for the right amount.
    @Test func everyPrefixOfASessionRecoversToOneSettlement() throws {
        // Record the ledger of a real run (the happy path of HappyPathTests).
        var live = try readyHarness(config())
        let k = try live.approvedSession(card(1), ref: 7_001)
        live.send(.meter(connector: 0, registerWh: 10_000))
        live.send(.plug(connector: 0, pluggedIn: true))
        live.wait(.seconds(20)); live.send(.meter(connector: 0, registerWh: 10_150))
        live.wait(.seconds(70)); live.send(.meter(connector: 0, registerWh: 10_200))
        live.after(.seconds(60))
        live.wait(.seconds(1_650)); live.send(.meter(connector: 0, registerWh: 11_234))
        live.send(.plug(connector: 0, pluggedIn: false))
        try live.complete(.capture(7_001, amount: 144, reserved: 5_000))
        #expect(live.ledger.map(\.kind) == [1, 13, 5, 6, 6, 6, 6, 7, 8, 9])
        #expect(k == 1)

        // What the terminal must end with for a crash after entry n (hand-computed costs).
        enum End: Equatable { case released, captured(Int64) }
        let expected: [End?] = [
            nil,             // nothing durable
            .released,       // authRequested: listed, recorded, released
            .released,       // approved, never charged
            .released,       // charging, no meter: 0 Wh 0 s durable → nothing owed, as the live engine decides
            .captured(56),   // 150 Wh 20 s: 50 + 5.985 + 0.5 = 56.485
            .captured(60),   // 200 Wh 90 s: 50 + 7.98 + 2.25 = 60.23
            .captured(62),   // 200 Wh 150 s: 50 + 7.98 + 3.75 = 61.73
            .captured(144),  // 1234 Wh 1800 s
            .captured(144),  // stopped
            .captured(144),  // captureRequested: resent
            .captured(144),  // captured before the crash: nothing more
        ]
        for n in 0...live.ledger.count {
            let prefix = Array(live.ledger.prefix(n))
            let (engine, fx, _) = PaymentEngine.recover(config: config(), entries: prefix, at: Self.now)
            var d = Harness(recovered: engine, effects: fx, at: Self.now)
            // The terminal's books: the approval exists from the Auth on; captured only if the ledger says so.
            var open: Set<TerminalHandle> = n >= 1 && n < live.ledger.count ? [7_001] : []
            var end: End? = n == live.ledger.count ? .captured(144) : nil
            d.send(.terminal(.ready([.listOpenSessions])))
            for _ in 0..<20 {
                guard let (id, cmd) = d.outstanding.filter({ if case .arm = $0.value { return false }; return true }).min(by: { $0.key < $1.key }) else { break }
                d.outstanding[id] = nil
                switch cmd {
                case .listOpen:
                    d.send(.terminal(.completed(id, cmd, .ok)))
                    d.send(.terminal(.openSessions(open.sorted())))
                case let .capture(ref, amount, _):
                    if open.remove(ref) != nil {
                        #expect(end == nil, "prefix \(n): second settlement")
                        end = .captured(amount)
                        d.send(.terminal(.completed(id, cmd, .ok)))
                    } else { d.send(.terminal(.completed(id, cmd, .refused(notFound: true)))) }
                case .release(let ref):
                    if open.remove(ref) != nil {
                        #expect(end == nil, "prefix \(n): second settlement")
                        end = .released
                        d.send(.terminal(.completed(id, cmd, .ok)))
                    } else { d.send(.terminal(.completed(id, cmd, .refused(notFound: true)))) }
                default:
                    d.send(.terminal(.completed(id, cmd, .ok)))
                }
                d.after(.seconds(1))
            }
            #expect(end == expected[n], "prefix \(n)")
            #expect(open.isEmpty, "prefix \(n): approval left open")
            #expect(d.engine.sessions.isEmpty, "prefix \(n): \(d.engine.sessions)")
            #expect(!d.all.contains { if case .relay(_, true) = $0 { return true }; return false }, "prefix \(n)")
            #expect(!d.ledger.contains { if case .needsReconciliation = $0 { return true }; return false }, "prefix \(n)")
        }
    }
}

// MARK: - reloaded settings

@Suite struct ReconfigureTests {
    @Test func newTermsApplyToTheNextSessionOnlyAndTheArmedScanIsRedone() throws {
        var c = config(connectors: 2)
        c.preauthAmount = 5_000
        var d = try readyHarness(c)
        let first = try d.approvedSession(card(1), ref: 7_001)
        #expect(d.engine.sessions[first]?.requested == 5_000)
        // The terminal is armed again for the second connector, with the old amount.
        d.wait(c.rearmDelay)
        d.tick()
        try d.completeArm()

        var fresh = c
        fresh.preauthAmount = 2_500
        fresh.tariff = Tariff(currency: "EUR", startFee: 0, energyPricePerKWh: 4_000_000, timePricePerMinute: 0)
        fresh.connectors = 8
        let fx = d.send(.reconfigure(fresh))
        // The scan showing 50.00 is dropped and re-armed with 25.00.
        #expect(fx.contains { if case .terminal(_, .cancel) = $0 { return true }; return false }, "\(fx)")
        #expect(d.engine.config.connectors == 2, "the connector count is fixed for the engine's life")
        #expect(d.engine.sessions[first]?.tariff == mixedTariff, "a running session keeps the tariff it was authorised with")
        try d.complete(.cancel)
        d.send(.terminal(.cancelled))
        d.wait(c.rearmDelay)
        let rearm = d.tick()
        #expect(rearm.contains { if case .terminal(_, .arm(2_500, _)) = $0 { return true }; return false }, "\(rearm)")
        let second = try d.approvedSession(card(2), ref: 7_002, amount: 2_500)
        #expect(d.engine.sessions[second]?.requested == 2_500)
        #expect(d.engine.sessions[second]?.tariff == fresh.tariff)
    }

    @Test func aSessionFromAScanArmedBeforeTheReloadReservesWhatTheTerminalShowed() throws {
        var c = config(connectors: 1)
        c.preauthAmount = 5_000
        var d = try readyHarness(c)
        try d.completeArm()
        // The card is already on the terminal when the reload arrives: not armed any more.
        d.send(.terminal(.cardRead(card(1))))
        var fresh = c
        fresh.preauthAmount = 1_000
        d.send(.reconfigure(fresh))
        let k = try #require(d.engine.sessions.keys.first)
        #expect(d.engine.sessions[k]?.requested == 5_000)
    }
}
