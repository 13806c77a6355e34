import Foundation
import Testing
import Platform

/// Issue 15's proof on the bench: the real `paybridged` (terminal-sim on a pty, simulated charger
/// I/O) speaking OCPP-J 2.1 to the PyPI `ocpp` package's CSMS (Tests/Scripts/ocpp-csms.py). What
/// is asserted comes from the CSMS's record, where the `ocpp` package marks each CALL valid or not
/// against the official 2.1 schemas, and from terminal-sim's record.
@Suite(.serialized) struct OCPPJCSMS {
    /// The daemon's configuration lines for `csms` (short timeouts keep the suite quick).
    static func ocpp(_ csms: BenchCSMS, scheme: String = "ws", _ extra: [String] = []) -> [String] {
        ["cloud.url = \(csms.url(scheme: scheme))", "cloud.protocol = ocpp-j", "cloud.response_timeout_seconds = 5"] + extra
    }

    /// Cards of three drivers (the demo's brands), so that no driver's tap reads as tap-to-stop.
    static let cards = ["card=476173******0119 hash=0101010101", "card=541333******0434 hash=01020304", "card=374245*****1006 hash=09090909"]

    /// terminal-sim's sessions for drivers with these outcomes (`approve`, `decline reason=9`…), each
    /// with their own card. An approval is followed by a scan without a card: the daemon scans for
    /// tap-to-stop while the car charges, and that scan must not take the next driver's card.
    /// That scan gives up (terminal-sim's card-detect time, 60 s by default) `scanMarginMs` after
    /// the charge of `chargeMs` would end: one scan covers the charge even on a loaded machine, and
    /// the next driver's payment starts soon after.
    static func drivers(_ outcomes: [String], chargeMs: Int) -> [String] {
        ["--scenario", cardDetectScenario(ms: chargeMs + scanMarginMs)] + outcomes.enumerated().flatMap { i, o in
            ["--session", "\(o) \(cards[i % cards.count])"] + (o == "approve" ? ["--session", "nocard"] : [])
        } + ["--fallback", "nocard"]
    }

    /// A scenario file in which a scan without a card ends after `ms` (not 60 s).
    static func cardDetectScenario(ms: Int) -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("hil-card-detect-\(ms)-\(getpid()).scenario").path
        if !FileManager.default.fileExists(atPath: path) { try? Data("card-detect \(ms)\n".utf8).write(to: URL(fileURLWithPath: path)) }
        return path
    }

    /// How much longer than a charge a scan without a card lasts.
    static let scanMarginMs = 1300

    /// Vehicles that plug in at once and charge for `ms`.
    static func ev(chargeMs: Int) -> String { "plug=100,charge=\(chargeMs),power=3600000" }

    /// What happened, for a failure's message: terminal-sim's events and the CSMS's CALLs.
    static func story(_ csms: BenchCSMS, _ b: Bench) -> String {
        let sim = b.sim.records().compactMap { r in (r["event"] as? String).map { "\($0)\(r["sessionId"].map { "#\($0)" } ?? "")" } }
        let calls = csms.events().compactMap { e -> String? in
            guard let kind = e["event"] as? String else { return nil }
            let at = String(format: "@%.2f", (e["t"] as? Double ?? 0).truncatingRemainder(dividingBy: 100))
            guard kind == "call", let c = RecordedCall(e) else { return kind + at }
            let made = c.timestamp.map { String(format: "[%.2f]", $0.truncatingRemainder(dividingBy: 100)) } ?? ""
            return "\(c.action)\(at)\(made)\(c.eventType.map { "/\($0)" } ?? "")\(c.seqNo.map { "#\($0)" } ?? "")\(c.offline ? "(offline)" : "")→\(c.answer)"
        }
        return "terminal-sim: \(sim.joined(separator: " "))\nCSMS: \(calls.joined(separator: " "))"
    }

    /// The NotifySettlements of `status` the CSMS answered.
    static func settlements(_ csms: BenchCSMS, _ status: String) -> [RecordedCall] {
        csms.answered("NotifySettlement").compactMap(RecordedCall.init).filter { $0.payload["status"] as? String == status }
    }

    /// Every CALL the daemon sent passed the 2.1 schema.
    static func expectAllValid(_ csms: BenchCSMS, _ b: Bench) {
        #expect(!csms.calls().isEmpty, "the CSMS recorded no CALL at all: \(b.daemonLog.suffix(1500))")
        let invalid = csms.invalidCalls()
        #expect(invalid.isEmpty, "CALLs that fail the OCPP 2.1 schema: \(invalid.prefix(3))")
        // On every connection the station's first CALL is its BootNotification.
        var firstAfterConnect: [String] = [], connected = false
        for e in csms.events() {
            if e["event"] as? String == "connect" { connected = true }
            if connected, e["event"] as? String == "call" { firstAfterConnect.append(e["action"] as? String ?? "?"); connected = false }
        }
        #expect(firstAfterConnect.allSatisfy { $0 == "BootNotification" }, "first CALLs after each connect: \(firstAfterConnect)")
    }

    /// Events of the outage from `down` to `back` (CSMS record times; with a margin for the daemon
    /// noticing) that do not say offline, and events before it that do.
    static func offlineProblems(_ tx: TransactionLedger, down: Double, back: Double) -> [String] {
        let distinct = tx.byTransaction.values.flatMap { $0 }
        func name(_ c: RecordedCall) -> String { "\(c.transactionId ?? "")#\(c.seqNo ?? -1)" }
        let during = distinct.filter { ($0.timestamp ?? 0) > down + 0.5 && ($0.timestamp ?? .infinity) < back - 0.5 }
        var problems: [String] = []
        if during.isEmpty { problems.append("no event happened during the outage") }
        problems += during.filter { !$0.offline }.map { "\(name($0)) happened during the outage and is not marked offline" }
        problems += distinct.filter { ($0.timestamp ?? 0) < down - 0.5 && $0.offline }.map { "\(name($0)) is marked offline, before the outage" }
        return problems
    }

    /// Settlements per transaction id, and each one's position among all CALLs after the
    /// transaction's Ended: problems found.
    static func settlementProblems(_ csms: BenchCSMS, _ tx: TransactionLedger) -> [String] {
        let all = csms.calls().compactMap(RecordedCall.init)
        var problems: [String] = []
        for id in tx.order {
            guard let ended = all.firstIndex(where: { $0.action == "TransactionEvent" && $0.transactionId == id && $0.eventType == "Ended" }) else {
                problems.append("\(id): no Ended"); continue
            }
            let settled = all.indices.filter { all[$0].action == "NotifySettlement" && all[$0].transactionId == id && all[$0].answer == "result" }
            if Set(settled.map { all[$0].id }).count != 1 { problems.append("\(id): \(settled.count) settlements answered") }
            if let s = settled.first, s < ended { problems.append("\(id): settlement before Ended") }
        }
        return problems
    }

    // MARK: 1

    /// As the demo's: A charges and pays; B's bank declines (B's settlement says Rejected) or B
    /// cancels at the terminal while the bank is asked (nothing reserved, nothing to settle);
    /// C charges and pays. Every card is read, so each is asked about.
    @Test(arguments: ["decline reason=9", "cancel"])
    func threeDriversBootAuthorizeTransactAndSettle(driverB: String) throws {
        guard let csms = try BenchCSMS() else { return }
        let declined = driverB.hasPrefix("decline")
        let b = try Bench(terminal: Self.drivers(["approve", driverB, "approve"], chargeMs: 700),
                          config: Self.ocpp(csms), ev: Self.ev(chargeMs: 700), keepLog: true)
        #expect(waitUntil(.seconds(60)) { b.sim.records("committed").count == 2 && Self.settlements(csms, "Settled").count == 2 },
                "not both drivers settled: \(Self.story(csms, b))\n\(b.daemonLog.suffix(2000))")
        #expect(b.stop() == 0)
        Self.expectAllValid(csms, b)

        let calls = csms.calls().compactMap(RecordedCall.init)
        #expect(calls.first?.action == "BootNotification", "first CALL: \(calls.first?.action ?? "none")")
        #expect(csms.answered("BootNotification").count == 1 && csms.events("connect").count == 1)
        // One Authorize per card, each answered.
        #expect(csms.answered("Authorize").count == 3, "\(csms.calls("Authorize").count) Authorize")
        #expect(b.sim.records("declined").count == (declined ? 1 : 0))
        #expect(b.sim.records("cancelled").filter { $0["by"] as? String == "cardholder" }.count == (declined ? 0 : 1))

        // Two transactions (a declined card is none), each Started/Updated…/Ended with seqNo 0, 1, 2…
        let tx = TransactionLedger(csms)
        #expect(tx.order.count == 2, "transactions: \(tx.order)")
        #expect(tx.sequenceProblems().isEmpty, "\(tx.sequenceProblems())")
        // With the CSMS up nothing is offline (a session that began before the Boot was answered may be).
        let booted = csms.answered("BootNotification").first?["t"] as? Double ?? 0
        let marked = tx.events.filter { $0.offline && ($0.timestamp ?? 0) > booted + 0.5 }
        #expect(marked.isEmpty, "events marked offline with the CSMS up: \(marked.map { "\($0.transactionId ?? "")#\($0.seqNo ?? -1)" })")
        // Each message id recorded once: nothing was sent twice.
        let ids = calls.map(\.id)
        #expect(Set(ids).count == ids.count, "a message id recorded twice")
        #expect(Self.settlementProblems(csms, tx).isEmpty, "\(Self.settlementProblems(csms, tx))")
        // The settlements carry what the terminal captured; the declined card's says so (the
        // messages are TransactionReporter's, the same as over HTTPS).
        let settled = Self.settlements(csms, "Settled")
        let statuses = csms.answered("NotifySettlement").compactMap { RecordedCall($0)?.payload["status"] as? String }
        #expect(statuses.sorted() == (declined ? ["Rejected", "Settled", "Settled"] : ["Settled", "Settled"]), "settlement statuses \(statuses)")
        #expect(Set(settled.compactMap(\.transactionId)) == Set(tx.order), "settled \(settled.compactMap(\.transactionId)), transactions \(tx.order)")
        let captured = b.sim.records("committed").compactMap { $0["amount"] as? Int }.sorted()
        #expect(settled.compactMap { minor($0.payload["settlementAmount"]) }.sorted() == captured, "captured \(captured)")
    }

    // MARK: 2

    /// `close`: a WebSocket close (1001); `drop`: the TCP connection aborted without one.
    @Test(arguments: ["close", "drop"])
    func aClosedThenRefusingCSMSGetsTheQueueInOrderWithOfflineMarked(how: String) throws {
        guard let csms = try BenchCSMS() else { return }
        // The first TransactionEvent is held unanswered, so it is in flight at the drop.
        try csms.command(#"{"cmd":"silence","action":"TransactionEvent","count":1}"#)
        // The second driver's card is decided by the offline policy after 1 s, inside the outage.
        let b = try Bench(terminal: Self.drivers(["approve", "approve"], chargeMs: 1500),
                          config: Self.ocpp(csms, ["timeouts.decision_seconds = 1"]), ev: Self.ev(chargeMs: 1500), keepLog: true)
        #expect(waitUntil(.seconds(30)) { csms.calls("TransactionEvent").count == 1 }, "no TransactionEvent: \(b.daemonLog.suffix(1500))")
        try csms.command(#"{"cmd":"refuse","seconds":6}"#)
        try csms.command("{\"cmd\":\"\(how)\"}")
        #expect(waitUntil(.seconds(60)) {
            b.sim.records("committed").count == 2 && Self.settlements(csms, "Settled").count == 2
        }, "not everything delivered after the outage: \(Self.story(csms, b))\n\(b.daemonLog.suffix(2000))")
        #expect(b.stop() == 0)
        Self.expectAllValid(csms, b)

        let connects = csms.events("connect").compactMap { $0["t"] as? Double }
        let down = csms.events("disconnect").first?["t"] as? Double ?? 0
        #expect(connects.count >= 2, "never reconnected")
        #expect(csms.events("refused").contains { $0["status"] as? Int == 503 }, "the daemon never tried while refused")
        let back = connects.dropFirst().first ?? .infinity
        #expect(back - down >= 5, "reconnected \(back - down) s after the drop, inside the refusal")

        let tx = TransactionLedger(csms)
        #expect(tx.order.count == 2, "transactions: \(tx.order)")
        #expect(tx.sequenceProblems().isEmpty, "\(tx.sequenceProblems())")
        // The message in flight at the drop came again under its own id, and was answered once.
        let first = tx.events.first
        #expect(first?.answer == "none" && tx.events.filter { $0.id == first?.id }.count == 2, "the held message was not resent as it was")
        #expect(tx.resultsPerId.count == tx.byTransaction.values.map(\.count).reduce(0, +), "a TransactionEvent never answered")
        #expect(tx.resultsPerId.values.allSatisfy { $0 == 1 }, "answered more than once: \(tx.resultsPerId.filter { $0.value > 1 })")
        #expect(Self.offlineProblems(tx, down: down, back: back).isEmpty, "\(Self.offlineProblems(tx, down: down, back: back))")
        #expect(Self.settlementProblems(csms, tx).isEmpty, "\(Self.settlementProblems(csms, tx))")
    }
}

/// CALLERRORs, security profiles 2 and 3, and a SIGKILL during replay.
extension OCPPJCSMS {
    // MARK: 3

    /// The money in the CSMS's answers: `transactionLimit.maxCost` on the Started event's answer
    /// lowers the session's cap (the charge stops there and no more is captured), and a `totalCost`
    /// on the Ended event's answer that differs from the station's own is a warning.
    @Test func theCSMSsCostLimitStopsTheChargeAndADifferentTotalIsAWarning() throws {
        guard let csms = try BenchCSMS() else { return }
        // 3.6 MW for 8 s would be 8 kWh = 3.20 EUR at 0.40 per kWh; the CSMS allows 0.60.
        try csms.command(#"{"cmd":"respond","action":"TransactionEvent","payload":{"transactionLimit":{"maxCost":0.6}},"count":1}"#)
        try csms.command(#"{"cmd":"respond","action":"TransactionEvent","payload":{},"count":1}"#)
        try csms.command(#"{"cmd":"respond","action":"TransactionEvent","payload":{"totalCost":9.99},"count":1}"#)
        let b = try Bench(terminal: Self.drivers(["approve"], chargeMs: 8000), config: Self.ocpp(csms), ev: Self.ev(chargeMs: 8000), keepLog: true)
        #expect(waitUntil(.seconds(60)) { b.sim.records("committed").count == 1 && Self.settlements(csms, "Settled").count == 1 },
                "not settled: \(Self.story(csms, b))\n\(b.daemonLog.suffix(2000))")
        let captured = b.sim.records("committed").compactMap { $0["amount"] as? Int }
        #expect(captured == [60], "captured \(captured): the CSMS's limit is 60 cents")
        let ended = csms.answered("TransactionEvent").compactMap(RecordedCall.init).filter { $0.eventType == "Ended" }
        #expect(ended.count == 1)
        #expect(ended.first?.payload["triggerReason"] as? String == "CostLimitReached", "\(ended.first?.payload ?? [:])")
        #expect(waitUntil(.seconds(10)) { b.daemonLog.contains("differs from the station's") }, "no warning about the CSMS's totalCost")
        #expect(b.stop() == 0)
        Self.expectAllValid(csms, b)
    }

    @Test func aTransactionEventAnsweredWithCallErrorIsRetriedUnderItsIdUntilDelivered() throws {
        guard let csms = try BenchCSMS() else { return }
        try csms.command(#"{"cmd":"callerror","action":"TransactionEvent","count":2,"code":"InternalError"}"#)
        let b = try Bench(terminal: Self.drivers(["approve"], chargeMs: 700), config: Self.ocpp(csms, ["cloud.call_error_attempts = 5"]),
                          ev: Self.ev(chargeMs: 700), keepLog: true)
        #expect(waitUntil(.seconds(45)) { b.sim.records("committed").count == 1 && csms.answered("NotifySettlement").count == 1 },
                "not settled: \(Self.story(csms, b))\n\(b.daemonLog.suffix(2000))")
        let dead = fileText(b.dir + "/state/dead-letters.jsonl")
        #expect(b.stop() == 0)
        Self.expectAllValid(csms, b)
        let tx = TransactionLedger(csms)
        let first = try #require(tx.events.first)
        #expect(tx.events.filter { $0.id == first.id }.map(\.answer) == ["error", "error", "result"], "the first TransactionEvent's CALLs")
        #expect(tx.sequenceProblems().isEmpty, "\(tx.sequenceProblems())")
        #expect(tx.resultsPerId.values.allSatisfy { $0 == 1 })
        #expect(dead.isEmpty, "a dead letter although the CSMS took the message in the end: \(dead)")
        #expect(Self.settlementProblems(csms, tx).isEmpty, "\(Self.settlementProblems(csms, tx))")
    }

    @Test func aTransactionEventNeverAnsweredIsSentAgainUnderItsIdAfterTheResponseTimeout() throws {
        guard let csms = try BenchCSMS() else { return }
        try csms.command(#"{"cmd":"silence","action":"TransactionEvent","count":1}"#)
        let b = try Bench(terminal: Self.drivers(["approve"], chargeMs: 700), config: Self.ocpp(csms), ev: Self.ev(chargeMs: 700), keepLog: true)
        #expect(waitUntil(.seconds(45)) { b.sim.records("committed").count == 1 && Self.settlements(csms, "Settled").count == 1 },
                "not settled: \(Self.story(csms, b))\n\(b.daemonLog.suffix(2000))")
        #expect(b.stop() == 0)
        Self.expectAllValid(csms, b)
        let tx = TransactionLedger(csms)
        let first = try #require(tx.events.first)
        let tries = tx.events.filter { $0.id == first.id }
        #expect(tries.map(\.answer) == ["none", "result"], "the unanswered TransactionEvent's CALLs: \(tries.map(\.answer))")
        // Not before cloud.response_timeout_seconds (5 s), and not much later.
        let gap = (tries.last?.t ?? 0) - (tries.first?.t ?? 0)
        #expect(gap >= 4.9 && gap < 15, "sent again after \(gap) s")
        #expect(tx.sequenceProblems().isEmpty, "\(tx.sequenceProblems())")
        #expect(tx.resultsPerId.values.allSatisfy { $0 == 1 })
        #expect(Self.settlementProblems(csms, tx).isEmpty, "\(Self.settlementProblems(csms, tx))")
    }

    @Test func moreCallErrorsThanAllowedMakeADeadLetterAndTheTransactionGoesOn() throws {
        guard let csms = try BenchCSMS() else { return }
        // Two for the Started (its allowance), one more for the message after it (retried).
        try csms.command(#"{"cmd":"callerror","action":"TransactionEvent","count":3,"code":"InternalError","description":"HIL says no"}"#)
        let b = try Bench(terminal: Self.drivers(["approve"], chargeMs: 700), config: Self.ocpp(csms, ["cloud.call_error_attempts = 2"]),
                          ev: Self.ev(chargeMs: 700), keepLog: true)
        #expect(waitUntil(.seconds(45)) { b.sim.records("committed").count == 1 && csms.answered("NotifySettlement").count == 1 },
                "not settled: \(Self.story(csms, b))\n\(b.daemonLog.suffix(2000))")
        let deadPath = b.dir + "/state/dead-letters.jsonl"
        #expect(waitUntil(.seconds(5)) { !fileText(deadPath).isEmpty })
        let dead = fileText(deadPath).split(separator: "\n").map(String.init)
        #expect(b.stop() == 0)
        Self.expectAllValid(csms, b)

        let tx = TransactionLedger(csms)
        let id = try #require(tx.order.first)
        let msgs = tx.byTransaction[id] ?? []
        let started = try #require(msgs.first)
        #expect(started.eventType == "Started")
        #expect(tx.events.filter { $0.id == started.id }.map(\.answer) == ["error", "error"], "the Started was not given up after 2 CALLERRORs")
        #expect(dead.count == 1, "\(dead)")
        let letter = jsonObject(dead.first)
        #expect(dead.first?.contains(started.id) == true, "the dead letter is not the Started: \(dead)")
        #expect(letter["action"] as? String == "TransactionEvent", "\(letter)")
        #expect((letter["response"] as? String)?.contains("InternalError") == true && dead.first?.contains("HIL says no") == true,
                "the CSMS's error is not kept: \(dead)")
        // Everything after it went out, in order, each answered once.
        #expect(tx.sequenceProblems().isEmpty, "\(tx.sequenceProblems())")
        #expect(msgs.dropFirst().allSatisfy { tx.resultsPerId[$0.id] == 1 }, "a later message of the transaction not delivered once")
        #expect(msgs.last?.eventType == "Ended")
        #expect(Self.settlementProblems(csms, tx).isEmpty, "\(Self.settlementProblems(csms, tx))")
    }

    // MARK: 4

    @Test func securityProfileTwoBasicAuthOverTLSAndAWrongPasswordIsRetried() throws {
        let pkiDir = FileManager.default.temporaryDirectory.appendingPathComponent("pki-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: pkiDir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: pkiDir) }
        let pki = try makeThrowawayPKI(in: pkiDir, clientCN: "BENCH-1")
        guard let csms = try BenchCSMS(["--basic-auth", "BENCH-1:s3cret-HIL", "--tls-cert", pki["server.pem"]!, "--tls-key", pki["server.key"]!]) else { return }
        try writeSecret("s3cret-HIL", to: pkiDir + "/right")
        try writeSecret("not-the-password", to: pkiDir + "/wrong")
        let tls = ["cloud.ca_file = \(pki["ca.pem"]!)"]

        // Right password: Boot accepted, the CSMS saw the station id as the user.
        do {
            let b = try Bench(terminal: ["--fallback", "nocard"], config: Self.ocpp(csms, scheme: "wss", tls + ["cloud.password_file = \(pkiDir)/right"]),
                              ev: nil, keepLog: true)
            #expect(waitUntil(.seconds(30)) { csms.answered("BootNotification").count == 1 }, "no Boot over wss: \(b.daemonLog.suffix(2000))")
            #expect(b.stop() == 0)
            Self.expectAllValid(csms, b)
            let connect = csms.events("connect").first
            #expect(connect?["user"] as? String == "BENCH-1", "\(connect ?? [:])")
            #expect(connect?["path"] as? String == "/ocpp/BENCH-1")
            #expect(csms.calls("BootNotification").first?["response"].flatMap { ($0 as? [String: Any])?["status"] as? String } == "Accepted")
        }

        // Wrong password: refused with 401, again and again, and the daemon stays up saying why.
        let before = csms.events("refused").count
        let b = try Bench(terminal: ["--fallback", "nocard"], config: Self.ocpp(csms, scheme: "wss", tls + ["cloud.password_file = \(pkiDir)/wrong"]),
                          ev: nil, keepLog: true)
        #expect(waitUntil(.seconds(30)) { csms.events("refused").dropFirst(before).filter { $0["status"] as? Int == 401 }.count >= 2 },
                "not retried after a 401: \(b.daemonLog.suffix(2000))")
        #expect(b.daemon?.wait(timeout: .milliseconds(200)) == nil, "the daemon exited after a 401")
        #expect(csms.events("connect").count == 1, "connected with the wrong password")
        #expect(b.daemonLog.contains("401 Unauthorized") && b.daemonLog.contains("password"), "the log does not say the CSMS refused the password: \(b.daemonLog.suffix(2000))")
        #expect(b.stop() == 0)

        // A password file others can read is not used: the daemon refuses to start, saying why.
        try writeSecret("s3cret-HIL", to: pkiDir + "/open")
        chmod(pkiDir + "/open", 0o644)
        let connects = csms.events("connect").count + csms.events("refused").count
        let open = try Bench(terminal: ["--fallback", "nocard"], config: Self.ocpp(csms, scheme: "wss", tls + ["cloud.password_file = \(pkiDir)/open"]),
                             ev: nil, keepLog: true)
        let status = open.daemon?.wait(timeout: .seconds(15))
        open.daemon = nil
        #expect(status != nil && status != 0, "the daemon ran with a password file of mode 0644 (status \(status.map(String.init) ?? "none"))")
        #expect(open.daemonLog.contains("600"), "the log does not say the file's mode is the problem: \(open.daemonLog.suffix(1500))")
        #expect(csms.events("connect").count + csms.events("refused").count == connects, "the CSMS was contacted anyway")
    }

    @Test func securityProfileThreeClientCertificateWithoutPassword() throws {
        let pkiDir = FileManager.default.temporaryDirectory.appendingPathComponent("pki-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: pkiDir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: pkiDir) }
        let pki = try makeThrowawayPKI(in: pkiDir, clientCN: "BENCH-1")
        guard let csms = try BenchCSMS(["--tls-cert", pki["server.pem"]!, "--tls-key", pki["server.key"]!, "--tls-client-ca", pki["ca.pem"]!]) else { return }
        let b = try Bench(terminal: ["--fallback", "nocard"],
                          config: Self.ocpp(csms, scheme: "wss", ["cloud.ca_file = \(pki["ca.pem"]!)", "cloud.client_cert = \(pki["client.pem"]!)",
                                                                  "cloud.client_key = \(pki["client.key"]!)"]),
                          ev: nil, keepLog: true)
        #expect(waitUntil(.seconds(30)) { csms.answered("BootNotification").count == 1 }, "no Boot with a client certificate: \(b.daemonLog.suffix(2000))")
        #expect(b.stop() == 0)
        Self.expectAllValid(csms, b)
        let connect = csms.events("connect").first
        #expect(connect?["client_cn"] as? String == "BENCH-1", "\(connect ?? [:])")
        #expect(connect?["user"] == nil, "a password was sent with profile 3")
        #expect(csms.calls("BootNotification").first?["response"].flatMap { ($0 as? [String: Any])?["status"] as? String } == "Accepted")

        // Without the certificate the TLS handshake is refused: no connection, the daemon keeps trying.
        let bare = try Bench(terminal: ["--fallback", "nocard"], config: Self.ocpp(csms, scheme: "wss", ["cloud.ca_file = \(pki["ca.pem"]!)"]),
                             ev: nil, keepLog: true)
        #expect(waitUntil(.seconds(20)) { bare.daemonLog.components(separatedBy: "CSMS:").count > 2 }, "no failed attempts logged: \(bare.daemonLog.suffix(1500))")
        #expect(bare.daemon?.wait(timeout: .milliseconds(200)) == nil, "the daemon exited without a client certificate")
        #expect(csms.events("connect").count == 1, "connected without a client certificate")
        #expect(bare.stop() == 0)
    }

    // MARK: 5

    /// The CSMS holds the first replayed TransactionEvent unanswered, so the kill surely comes
    /// mid-replay with it in flight (the replay otherwise takes a few milliseconds).
    @Test func sigkillDuringReplayLosesNothingAndRepeatsNothing() throws {
        guard let csms = try BenchCSMS() else { return }
        let b = try Bench(terminal: Self.drivers(["approve", "approve"], chargeMs: 500),
                          config: Self.ocpp(csms, ["timeouts.decision_seconds = 1"]), ev: Self.ev(chargeMs: 500), keepLog: true)
        #expect(waitUntil(.seconds(30)) { csms.answered("BootNotification").count == 1 }, "no Boot: \(b.daemonLog.suffix(1500))")
        // Down while both sessions charge and settle (the offline policy lets them).
        try csms.command(#"{"cmd":"refuse","seconds":12}"#)
        try csms.command(#"{"cmd":"drop"}"#)
        #expect(waitUntil(.seconds(30)) { b.sim.records("committed").count == 2 }, "the sessions did not settle offline: \(b.daemonLog.suffix(1500))")
        let beforeBack = csms.calls("TransactionEvent").count
        try csms.command(#"{"cmd":"silence","action":"TransactionEvent","count":1}"#)
        // Back: killed while the first replayed message waits for its answer.
        #expect(waitUntil(.seconds(30)) { csms.events("connect").count >= 2 }, "never reconnected")
        let deadline = Date().addingTimeInterval(10)
        while csms.calls("TransactionEvent").count <= beforeBack && Date() < deadline { usleep(20_000) }
        b.daemon?.signal(SIGKILL)
        _ = b.daemon?.wait(timeout: .seconds(10))
        let killedAt = Date().timeIntervalSince1970
        #expect(csms.calls("TransactionEvent").count > beforeBack, "no replay began: \(Self.story(csms, b))")
        let inFlight = csms.calls("TransactionEvent").dropFirst(beforeBack).first.flatMap(RecordedCall.init)
        b.daemon = try b.launch()
        #expect(waitUntil(.seconds(30)) { csms.events("connect").count >= 3 }, "the restarted daemon did not connect")
        #expect(waitUntil(.seconds(60)) { Set(Self.settlements(csms, "Settled").map(\.id)).count == 2 },
                "not every settlement delivered after the restart: \(Self.story(csms, b))\n\(b.daemonLog.suffix(2000))")
        #expect(b.stop() == 0)
        Self.expectAllValid(csms, b)

        let tx = TransactionLedger(csms)
        #expect(tx.order.count == 2, "transactions: \(tx.order)")
        #expect(tx.sequenceProblems().isEmpty, "\(tx.sequenceProblems())")
        let distinct = tx.byTransaction.values.flatMap { $0 }
        #expect(distinct.allSatisfy { tx.resultsPerId[$0.id, default: 0] >= 1 }, "a TransactionEvent never answered")
        // The message in flight at the kill had no answer: nothing is answered twice.
        let twice = tx.resultsPerId.filter { $0.value > 1 }
        #expect(twice.isEmpty, "answered more than once: \(twice)")
        let down = csms.events("disconnect").first?["t"] as? Double ?? 0
        let back = csms.events("connect").compactMap { $0["t"] as? Double }.dropFirst().first ?? .infinity
        #expect(Self.offlineProblems(tx, down: down, back: back).isEmpty, "\(Self.offlineProblems(tx, down: down, back: back))")
        let settlements = csms.answered("NotifySettlement").compactMap(RecordedCall.init)
        let settleTwice = Dictionary(grouping: settlements, by: \.id).filter { $0.value.count > 1 }
        #expect(settleTwice.isEmpty, "settlements answered twice: \(settleTwice.keys)")
        #expect(Self.settlementProblems(csms, tx).isEmpty, "\(Self.settlementProblems(csms, tx))")
        let captured = b.sim.records("committed").compactMap { $0["amount"] as? Int }.sorted()
        #expect(Dictionary(grouping: settlements, by: \.id).values.compactMap { minor($0[0].payload["settlementAmount"]) }.sorted() == captured)
        // The rest of the replay came after the restart, the held message again under its own id.
        let after = csms.calls().compactMap(RecordedCall.init).filter { $0.t > killedAt && ["TransactionEvent", "NotifySettlement"].contains($0.action) }
        #expect(inFlight?.answer == "none")
        #expect(after.filter { $0.id == inFlight?.id }.map(\.answer) == ["result"], "the held message not sent again under its id after the restart")
        #expect(after.count > 1, "the replay was over before the kill: \(Self.story(csms, b))")
    }

    // MARK: 6

    /// TriggerMessage(TransactionEvent) while a car charges: the CSMS gets an Updated event with
    /// triggerReason Trigger in the transaction's order. Held unanswered and the daemon killed,
    /// the restarted daemon sends that event again under its own id and seqNo, and the Ended
    /// event after it: the trigger is a fact in the ledger, not only a message in the outbox.
    @Test func aTriggeredTransactionEventKeepsItsPlaceAcrossASigkill() throws {
        guard let csms = try BenchCSMS() else { return }
        let b = try Bench(terminal: Self.drivers(["approve"], chargeMs: 15_000), config: Self.ocpp(csms), ev: Self.ev(chargeMs: 15_000), keepLog: true)
        #expect(waitUntil(.seconds(30)) {
            csms.answered("TransactionEvent").compactMap(RecordedCall.init).contains { $0.payload["triggerReason"] as? String == "ChargingStateChanged" }
        }, "not charging: \(Self.story(csms, b))\n\(b.daemonLog.suffix(1500))")
        // charger-sim's meter is read once a second: let a reading or two become durable, so the
        // report has energy to show and the restarted daemon something to capture.
        usleep(2_500_000)
        try csms.command(#"{"cmd":"silence","action":"TransactionEvent","count":1}"#)
        try csms.command(#"{"cmd":"call","action":"TriggerMessage","payload":{"requestedMessage":"TransactionEvent","evse":{"id":1}}}"#)
        let answer = try csms.csms.aside(prefix: "response TriggerMessage", loop: try EventLoop())
        #expect(answer?.contains("\"Accepted\"") == true, "TriggerMessage answered \(answer ?? "nothing")")
        func triggered() -> [RecordedCall] {
            csms.calls("TransactionEvent").compactMap(RecordedCall.init).filter { $0.payload["triggerReason"] as? String == "Trigger" }
        }
        #expect(waitUntil(.seconds(15)) { !triggered().isEmpty }, "no triggered event: \(Self.story(csms, b))")
        b.daemon?.signal(SIGKILL)
        _ = b.daemon?.wait(timeout: .seconds(10))
        let held = try #require(triggered().first)
        #expect(held.answer == "none")
        #expect(held.seqNo == 2 && held.eventType == "Updated", "\(held.payload)")
        #expect((held.payload["transactionInfo"] as? [String: Any])?["chargingState"] as? String == "Charging")
        let sampled = ((held.payload["meterValue"] as? [[String: Any]])?.first?["sampledValue"] as? [[String: Any]])?.first
        #expect((sampled?["value"] as? Double ?? 0) > 0, "the report shows no energy: \(held.payload)")
        b.daemon = try b.launch()
        #expect(waitUntil(.seconds(60)) { b.sim.records("committed").count == 1 && Self.settlements(csms, "Settled").count == 1 },
                "not settled after the restart: \(Self.story(csms, b))\n\(b.daemonLog.suffix(2000))")
        #expect(b.stop() == 0)
        Self.expectAllValid(csms, b)
        let tx = TransactionLedger(csms)
        #expect(tx.sequenceProblems().isEmpty, "\(tx.sequenceProblems())")
        #expect(triggered().filter { $0.id == held.id }.map(\.answer) == ["none", "result"], "the held trigger was not sent again under its id")
        #expect(Set(triggered().map(\.id)).count == 1, "a second triggered event was made")
        let ended = csms.answered("TransactionEvent").compactMap(RecordedCall.init).filter { $0.eventType == "Ended" }
        #expect(ended.map(\.seqNo) == [3], "Ended: \(ended.map(\.seqNo))")
        #expect(Self.settlementProblems(csms, tx).isEmpty, "\(Self.settlementProblems(csms, tx))")
    }
}
