import JSONLines
import OCPPJ
import Testing
import Timebase

/// A core with a fake clock and the frames it sent, parsed back.
struct Session {
    var core: RPCCore
    var now = Instant.zero
    var sent: [RPCMessage] = []
    var effects: [RPCEffect] = []
    /// Everything in the order the core produced it.
    var log: [RPCEffect] = []

    static let boot = BootPayload.make(reason: .powerUp, vendor: "paybridge", model: "PB-1", serial: "0001", firmware: "1.0")

    init(handled: Set<String> = ["GetTransactionStatus", "TriggerMessage", "Reset"], configure: (inout RPCConfig) -> Void = { _ in }) {
        var config = RPCConfig(bootPayload: Self.boot, handledActions: handled)
        configure(&config)
        core = RPCCore(config: config, seed: 7)
    }

    mutating func take(_ fx: [RPCEffect]) {
        log += fx
        for f in fx {
            if case .transmit(let t) = f { sent.append(try! RPCMessage.parse(t)) } else { effects.append(f) }
        }
    }
    mutating func connect() { take(core.connected(now: now)) }
    mutating func drop() { take(core.disconnected(now: now)) }
    mutating func submit(_ id: String, _ action: String = "TransactionEvent", triggered: Bool = false) {
        take(core.submit(OutgoingCall(id: id, action: action, payload: .object([("n", .string(id))]), triggered: triggered), now: now))
    }
    mutating func receive(_ text: String) { take(core.received(Array(text.utf8), now: now)) }
    mutating func reply(_ m: RPCMessage) { receive(m.text) }
    mutating func advance(_ d: Duration) { now = now + d; take(core.tick(now: now)) }
    /// The last frame sent, which must be a CALL.
    var lastCall: (id: String, action: String)? {
        if case let .call(id, action, _)? = sent.last { return (id, action) }
        return nil
    }
    mutating func answerBoot(_ status: String, interval: Int64 = 300) {
        guard let c = lastCall, c.action == "BootNotification" else { Issue.record("no Boot in flight: \(sent)"); return }
        reply(.callResult(id: c.id, payload: .object([("currentTime", .string("2026-12-05T13:00:00Z")), ("interval", .int(interval)),
                                                       ("status", .string(status))])))
    }
    func outcomes() -> [(String, CallOutcome)] {
        effects.compactMap { if case let .outcome(id, o) = $0 { return (id, o) } else { return nil } }
    }
    var calls: [(String, String)] { sent.compactMap { if case let .call(id, a, _) = $0 { return (id, a) } else { return nil } } }
}

@Suite struct BootStates {
    @Test func onlyBootGoesOutBeforeTheResponseThenTheQueueInOrder() {
        var s = Session()
        s.submit("m1"); s.submit("m2")
        #expect(s.sent.isEmpty)
        s.connect()
        #expect(s.calls.map(\.1) == ["BootNotification"])
        s.submit("m3")
        #expect(s.calls.count == 1)
        s.answerBoot("Accepted", interval: 120)
        #expect(s.core.registration == .accepted)
        #expect(s.core.heartbeatInterval == .seconds(120))
        #expect(s.effects.contains(.csmsTime("2026-12-05T13:00:00Z")))
        #expect(s.calls.map(\.0) == [s.calls[0].0, "m1"])
        s.reply(.callResult(id: "m1", payload: .object([])))
        s.reply(.callResult(id: "m2", payload: .object([])))
        s.reply(.callResult(id: "m3", payload: .object([])))
        #expect(s.calls.map(\.0).dropFirst() == ["m1", "m2", "m3"])
        #expect(s.outcomes().map(\.0) == ["m1", "m2", "m3"])
    }

    @Test func pendingSendsOnlyTriggeredCallsAndAnswersThenBootsAgainAfterItsInterval() {
        var s = Session()
        s.submit("queued")
        s.connect()
        s.answerBoot("Pending", interval: 40)
        #expect(s.core.registration == .pending)
        #expect(s.core.nextDeadline == s.now + .seconds(40))
        // The CSMS asks; the station answers at once, and the triggered message goes, the queue does not.
        s.receive(#"[2,"c1","TriggerMessage",{"requestedMessage":"StatusNotification"}]"#)
        #expect(s.effects.last == .incomingCall(id: "c1", action: "TriggerMessage", payload: .object([("requestedMessage", .string("StatusNotification"))])))
        s.take(s.core.answer(id: "c1", payload: .object([("status", .string("Accepted"))]), now: s.now))
        #expect(s.sent.last == .callResult(id: "c1", payload: .object([("status", .string("Accepted"))])))
        s.submit("status-1", "StatusNotification", triggered: true)
        #expect(s.lastCall?.id == "status-1")
        s.reply(.callResult(id: "status-1", payload: .object([])))
        #expect(s.calls.map(\.1) == ["BootNotification", "StatusNotification"])
        s.advance(.seconds(39))
        #expect(s.calls.count == 2)
        s.advance(.seconds(1))
        #expect(s.lastCall?.action == "BootNotification")
        s.answerBoot("Accepted")
        #expect(s.lastCall?.id == "queued")
    }

    @Test func rejectedSendsNothingButBootAndAnswersNothing() {
        var s = Session()
        s.submit("queued")
        s.connect()
        s.answerBoot("Rejected", interval: 3600)
        #expect(s.core.registration == .rejected)
        let before = s.sent.count
        s.receive(#"[2,"c1","Reset",{"type":"Immediate"}]"#)
        s.receive(#"[2,"c2","NoSuchThing",{}]"#)
        s.receive(#"[2,"c3","Reset",[]]"#)
        s.submit("status", "StatusNotification", triggered: true)
        s.advance(.seconds(3599))
        #expect(s.sent.count == before)
        #expect(s.core.counters.droppedWhileRejected == 3)
        s.advance(.seconds(1))
        #expect(s.lastCall?.action == "BootNotification")
    }

    @Test func intervalsOfZeroNegativeOrAbsurdAreBounded() {
        #expect(RPCCore.heartbeat(0) == RPCTiming.defaultHeartbeat)
        #expect(RPCCore.heartbeat(-5) == RPCTiming.defaultHeartbeat)
        #expect(RPCCore.heartbeat(1) == RPCTiming.minHeartbeat)
        #expect(RPCCore.heartbeat(.max) == RPCTiming.maxHeartbeat)
        #expect(RPCCore.heartbeat(60) == .seconds(60))
        #expect(RPCCore.bootRetry(0) == RPCTiming.defaultBootRetry)
        #expect(RPCCore.bootRetry(1) == RPCTiming.minBootRetry)
        #expect(RPCCore.bootRetry(.max) == RPCTiming.maxBootRetry)
        var s = Session()
        s.connect()
        s.answerBoot("Pending", interval: 0)
        #expect(s.core.nextDeadline == s.now + RPCTiming.defaultBootRetry)
    }

    @Test func heartbeatAfterInactivityAndItsAnswerSetsTheClock() {
        var s = Session()
        s.connect()
        s.answerBoot("Accepted", interval: 60)
        s.advance(.seconds(30))
        s.submit("m1")
        s.reply(.callResult(id: "m1", payload: .object([])))
        s.advance(.seconds(59))
        #expect(s.lastCall?.id == "m1")
        s.advance(.seconds(1))
        #expect(s.lastCall?.action == "Heartbeat")
        guard let hb = s.lastCall else { return }
        s.reply(.callResult(id: hb.id, payload: .object([("currentTime", .string("2026-12-05T14:00:00Z"))])))
        #expect(s.effects.last == .csmsTime("2026-12-05T14:00:00Z"))
        #expect(s.core.nextDeadline == s.now + .seconds(60))
    }

    @Test func anUnreadableBootResponseIsAnsweredWithACallResultErrorAndBootRetried() {
        var s = Session()
        s.connect()
        guard let boot = s.lastCall else { return }
        s.reply(.callResult(id: boot.id, payload: .object([("status", .string("Maybe"))])))
        guard case .callResultError(boot.id, let e)? = s.sent.last else { Issue.record("\(s.sent)"); return }
        #expect(e.code == .formatViolation)
        #expect(s.core.registration == .booting)
        s.advance(RPCTiming.defaultBootRetry)
        #expect(s.lastCall?.action == "BootNotification")
        #expect(s.lastCall?.id != boot.id)
    }

    @Test func bootAgainAfterEveryConnectUnlessConfiguredOtherwise() {
        var s = Session()
        s.connect(); s.answerBoot("Accepted"); s.drop(); s.connect()
        #expect(s.lastCall?.action == "BootNotification")
        var t = Session { $0.bootOnEveryConnect = false }
        t.submit("m1")
        t.connect(); t.answerBoot("Accepted")
        t.reply(.callResult(id: "m1", payload: .object([])))
        t.drop(); t.submit("m2"); t.connect()
        #expect(t.core.registration == .accepted)
        #expect(t.lastCall?.id == "m2")
    }
}

@Suite struct RPCSession {
    static func accepted() -> Session {
        var s = Session()
        s.connect()
        s.answerBoot("Accepted")
        return s
    }

    @Test func oneCallInFlightButAnswersGoOutMeanwhile() {
        var s = Self.accepted()
        s.submit("m1"); s.submit("m2")
        #expect(s.core.inFlightID == "m1")
        s.receive(#"[2,"c1","GetTransactionStatus",{}]"#)
        s.take(s.core.answer(id: "c1", payload: .object([("messagesInQueue", .bool(true))]), now: s.now))
        #expect(s.sent.last == .callResult(id: "c1", payload: .object([("messagesInQueue", .bool(true))])))
        #expect(s.calls.filter { $0.0 == "m2" }.isEmpty)
        s.reply(.callError(id: "m1", RPCError(.propertyConstraintViolation, "seqNo", details: .object([("field", .string("seqNo"))]))))
        #expect(s.outcomes().first! == ("m1", .error(RPCError(.propertyConstraintViolation, "seqNo", details: .object([("field", .string("seqNo"))])))))
        #expect(s.core.inFlightID == "m2")
    }

    @Test func unknownActionsAreAnsweredByTheCore() {
        var s = Self.accepted()
        s.submit("m1")
        s.receive(#"[2,"c1","FlyToTheMoon",{}]"#)
        s.receive(#"[2,"c2","ReserveNow",{}]"#)
        #expect(s.sent.suffix(2) == [.callError(id: "c1", RPCError(.notImplemented, "FlyToTheMoon is not a known action")),
                                     .callError(id: "c2", RPCError(.notSupported, "ReserveNow is not supported"))])
        #expect(s.core.counters.unhandledActions == 2)
        #expect(s.core.inFlightID == "m1")
    }

    @Test func timeoutReportsTheCallAndALateAnswerIsCountedAndDropped() {
        var s = Self.accepted()
        s.submit("m1"); s.submit("m2")
        s.advance(RPCTiming.defaultResponseTimeout - .milliseconds(1))
        #expect(s.outcomes().isEmpty)
        s.advance(.milliseconds(1))
        #expect(s.outcomes().first! == ("m1", .timedOut))
        #expect(s.core.inFlightID == "m2")
        s.reply(.callResult(id: "m1", payload: .object([])))
        #expect(s.core.counters.lateOrUnknownResponses == 1)
        #expect(s.core.inFlightID == "m2")
        s.reply(.callResult(id: "never-sent", payload: .object([])))
        #expect(s.core.counters.lateOrUnknownResponses == 2)
    }

    @Test func connectionLossReportsTheCallInFlightAndKeepsTheWaitingOnes() {
        var s = Self.accepted()
        s.submit("m1"); s.submit("m2")
        s.receive(#"[2,"c1","Reset",{"type":"Immediate"}]"#)
        s.drop()
        #expect(s.outcomes().map { $0.0 } == ["m1"])
        #expect(s.outcomes().first!.1 == .connectionLost)
        #expect(s.core.waiting.map(\.id) == ["m2"])
        s.take(s.core.answer(id: "c1", payload: .object([]), now: s.now))
        #expect(s.core.counters.staleAnswers == 1)
        // The outbox resends m1 with the same id; it goes after m2, which already waited.
        s.submit("m1")
        s.connect(); s.answerBoot("Accepted")
        #expect(s.lastCall?.id == "m2")
    }

    @Test func submitRefusesWhatCannotBeSent() {
        var s = Session { $0.maxQueued = 1 }
        s.take(s.core.submit(OutgoingCall(id: "", action: "A", payload: .object([])), now: s.now))
        s.take(s.core.submit(OutgoingCall(id: "x", action: "A b", payload: .object([])), now: s.now))
        s.take(s.core.submit(OutgoingCall(id: "x", action: "A", payload: .array([])), now: s.now))
        s.submit("x"); s.submit("x"); s.submit("y")
        #expect(s.outcomes().map(\.1) == [.refused(.invalidID), .refused(.invalidAction), .refused(.invalidPayload),
                                          .refused(.duplicateID), .refused(.queueFull)])
        // An id in the core's own namespace (the Boot's) is refused too.
        var t = Session()
        t.connect()
        if let boot = t.lastCall { t.submit(boot.id) }
        #expect(t.outcomes().map(\.1) == [.refused(.duplicateID)])
        #expect(OutgoingCall(id: "x", action: "A", body: Array("[1]".utf8)) == nil)
        #expect(OutgoingCall(id: "x", action: "A", body: Array(#"{"a":1.50}"#.utf8))?.payload == .object([("a", .decimal("1.50"))]))
    }

    @Test func malformedInputIsAnsweredPerTheCodecOrCounted() {
        var s = Self.accepted()
        s.receive("garbage")
        s.receive(#"[2,"c1","Reset",[]]"#)
        s.receive(#"[4,"c2",1,"d",{}]"#)
        #expect(s.sent.last == .callError(id: "c1", RPCError(.formatViolation, "payload is not an object")))
        #expect(s.core.counters.malformed == 3)
        #expect(s.core.counters.unanswerable == 2)
    }

    @Test func incomingSendsAreSurfacedNeverAnsweredAndResultErrorsReported() {
        var s = Self.accepted()
        let n = s.sent.count
        s.receive(#"[6,"s1","NotifyPeriodicEventStream",{"id":1}]"#)
        s.receive(#"[5,"c9","FormatViolation","bad answer",{}]"#)
        #expect(s.sent.count == n)
        #expect(s.effects.suffix(2) == [.incomingSend(action: "NotifyPeriodicEventStream", payload: .object([("id", .int(1))])),
                                        .answerRefused(id: "c9", RPCError(.formatViolation, "bad answer"))])
    }

    @Test func tooManyOutstandingIncomingCallsAndDuplicates() {
        var s = Session { $0.maxIncoming = 1 }
        s.connect(); s.answerBoot("Accepted")
        s.receive(#"[2,"c1","Reset",{}]"#)
        s.receive(#"[2,"c1","Reset",{}]"#)
        s.receive(#"[2,"c2","Reset",{}]"#)
        #expect(s.core.counters.duplicateIncoming == 1)
        #expect(s.sent.last == .callError(id: "c2", RPCError(.genericError, "too many calls awaiting an answer")))
    }
}

@Suite struct RPCWithdrawTests {
    @Test func waitingCallsCanBeTakenBackButNotTheOneInFlight() {
        var s = Session()
        s.connect()
        s.reply(.callResult(id: s.lastCall!.id, payload: .object([("currentTime", .string("2026-12-06T00:00:00Z")), ("interval", .int(300)), ("status", .string("Accepted"))])))
        s.submit("m1"); s.submit("m2"); s.submit("m3")
        #expect(s.core.inFlightID == "m1")
        #expect(s.core.withdrawWaiting() == ["m2", "m3"])
        #expect(s.core.waiting.isEmpty && s.core.inFlightID == "m1")
        s.reply(.callResult(id: "m1", payload: .object([])))
        #expect(s.sent.count == 2, "nothing withdrawn goes out: Boot and m1 only")
    }
}
