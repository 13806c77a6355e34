import PSPCodec
import Timebase
import JSONLines

/// What the simulator's shell must do.
public enum SimEffect: Equatable, Sendable {
    /// Bytes for the line.
    case write([UInt8])
    /// One entry for the `--record` file.
    case record(JSON)
    /// Pull the cable for this long, then plug it back.
    case unplug(milliseconds: Int)
    /// TCP: close this connection (idle close); the terminal is OFFLINE afterwards.
    case disconnect
    /// A human-readable line for the simulator's standard error.
    case log(String)
}

/// An approved session the simulated terminal holds until commit, void or its timeout.
public struct SimSession: Equatable, Sendable {
    public var id: UInt32
    public var authorised: UInt32
    public var approvedAt: Instant
}

/// The simulated PSP terminal. Pure: bytes and time in, bytes and records out, so the same
/// terminal runs on a pty, over TCP, or inside a deterministic simulation.
public struct TerminalSimCore: Sendable {
    public private(set) var scenario: SimScenario
    public private(set) var state: TerminalState = .offline
    public private(set) var openSessions: [UInt32: SimSession] = [:]
    public private(set) var framesReceived = 0
    public private(set) var malformedReceived = 0
    /// In the security violation (tamper) mode: Setup and Enable are refused (`SimScenario.tampered`).
    public private(set) var tampered: Bool

    var decoder = PSPFrameDecoder(options: .lenient())
    var format: PSPFrameFormat = .normal
    var options: ProtocolOptions = []
    var sessionTimeout: UInt32 = 0
    var timeoutAction: SessionTimeoutAction = .void
    var rng: SeededGenerator
    var nextSessionID: UInt32
    var sessionCounter = 0
    var approvals = 0
    var cardReads = 0
    var commandCounts: [String: Int] = [:]
    var silence: [String: Int] = [:]
    /// Scripted answers by command name, used in order (`SimFault.reply`).
    var replies: [String: [(header: UInt8, payload: [UInt8])]] = [:]
    var corruptNext = false
    var faults: [ArmedFault]
    var lastRx: Instant = .zero

    /// The session being paid: amount, reference, script; nil when idle.
    var pending: (amount: UInt32, reference: UInt32, session: ScriptedSession)?
    /// Scheduled actions.
    enum Action: Equatable, Sendable { case send([UInt8]), tap, bankAnswer, cardDetectTimeout }
    var agenda: [(at: Instant, action: Action)] = []

    public init(scenario: SimScenario) {
        self.scenario = scenario
        faults = scenario.faults
        tampered = scenario.tampered
        rng = SeededGenerator(seed: scenario.seed)
        if scenario.protocolVersion < 3 { decoder.options.maxLength = PSPLimits.maxLegacyLengthAccepted }
        nextSessionID = 1000 + UInt32(truncatingIfNeeded: rng.next() % 8000)
    }

    // MARK: inputs

    /// The host side opened the line or connected.
    public mutating func connected(now: Instant) -> [SimEffect] {
        lastRx = now
        decoder.reset()
        if scenario.idleCloseMilliseconds != nil {
            // A new TCP connection starts in OFFLINE on an Apollo.
            goOffline()
        }
        return []
    }

    public mutating func receive(_ bytes: [UInt8], now: Instant) -> [SimEffect] {
        var fx: [SimEffect] = []
        lastRx = now
        decoder.append(contentsOf: bytes)
        while let e = decoder.next() {
            switch e {
            case .malformed(let kind, let n):
                malformedReceived += 1
                fx.append(.log("discarded \(n) bytes (\(kind.rawValue))"))
                if kind == .badChecksum {
                    respond(.result(.notOK(detailed ? ResultReason.badChecksum : nil)), now: now, &fx)
                }
            case .frame(let f):
                framesReceived += 1
                fire(.frames(framesReceived), now: now, &fx)
                handleFrame(header: f.header, payload: f.payload, now: now, &fx)
            }
        }
        return fx
    }

    public mutating func tick(now: Instant) -> [SimEffect] {
        var fx: [SimEffect] = []
        if let idle = scenario.idleCloseMilliseconds, now >= lastRx + .milliseconds(idle) {
            lastRx = now
            goOffline()
            fx.append(.log("idle for \(idle) ms: closing the connection"))
            fx.append(.disconnect)
            return fx
        }
        // Approved sessions past the Setup timeout get the configured action.
        if sessionTimeout > 0 {
            for s in openSessions.values.sorted(by: { $0.id < $1.id }) where now >= s.approvedAt + .seconds(Int64(sessionTimeout)) {
                openSessions[s.id] = nil
                let ev = timeoutAction == .void ? "voided" : "committed"
                fx.append(.record(record(ev, s.id, s.authorised, at: now, extra: [("by", .string("timeout"))])))
            }
        }
        while let i = agenda.indices.min(by: { agenda[$0].at < agenda[$1].at }), agenda[i].at <= now {
            let item = agenda.remove(at: i)
            switch item.action {
            case .send(let b): fx.append(.write(b))
            case .tap: tap(now: now, &fx)
            case .bankAnswer: bankAnswer(now: now, &fx)
            case .cardDetectTimeout:
                if state == .waitCard {
                    pending = nil
                    state = .enabled
                    fx.append(.record(record("cancelled", nil, nil, at: now, extra: [("by", .string("cardDetectTimeout"))])))
                    emit(.sessionCancelled, now: now, &fx)
                }
            }
        }
        return fx
    }

    public var nextDeadline: Instant? {
        var d = agenda.map(\.at)
        if let idle = scenario.idleCloseMilliseconds { d.append(lastRx + .milliseconds(idle)) }
        if sessionTimeout > 0, let first = openSessions.values.map(\.approvedAt).min() {
            d.append(first + .seconds(Int64(sessionTimeout)))
        }
        return d.min()
    }

    /// Operator controls (the simulator's standard input): tap, reset, garbage N, unplug MS, tamper.
    public mutating func control(_ words: [String], now: Instant) -> [SimEffect] {
        var fx: [SimEffect] = []
        switch words.first {
        case "tap": tap(now: now, &fx)
        case "reset": apply(.reset, now: now, &fx)
        case "tamper": apply(.tamper, now: now, &fx)
        case "garbage": apply(.garbage(count: words.count > 1 ? Int(words[1]) ?? 16 : 16), now: now, &fx)
        case "unplug": apply(.unplug(milliseconds: words.count > 1 ? Int(words[1]) ?? 1000 : 1000), now: now, &fx)
        default: fx.append(.log("unknown control \(words.joined(separator: " "))"))
        }
        return fx
    }

    // MARK: protocol

    var detailed: Bool { scenario.family == .apollo && options.contains(.detailedResults) }

    mutating func goOffline() {
        state = .offline
        format = .normal
        decoder.options.format = .normal
        options = []
        pending = nil
        agenda.removeAll { if case .send = $0.action { return false }; return true }
    }

    mutating func handleFrame(header: UInt8, payload: ArraySlice<UInt8>, now: Instant, _ fx: inout [SimEffect]) {
        let cmd: HostCommand
        do {
            cmd = try HostCommand.decode(header: header, payload: payload, headers: scenario.headers)
        } catch {
            fx.append(.log("malformed \(String(header, radix: 16)): \(error)"))
            respond(.result(.notOK(detailed ? ResultReason.malformed : nil)), now: now, &fx)
            return
        }
        let name = cmd.name
        commandCounts[name, default: 0] += 1
        fire(.command(name, commandCounts[name]!), now: now, &fx)
        if let n = silence[name], n > 0 {
            silence[name] = n - 1
            fx.append(.log("silent: ignoring \(name)"))
            return
        }
        if var queued = replies[name], !queued.isEmpty {
            let r = queued.removeFirst()
            replies[name] = queued.isEmpty ? nil : queued
            fx.append(.log("scripted reply to \(name)"))
            return respond(.other(header: r.header, payload: r.payload), now: now, delay: scenario.delays[name] ?? 0, &fx)
        }
        let delay = scenario.delays[name] ?? 0
        func ok() -> TerminalMessage { .result(.ok) }
        func notOK(_ r: UInt8) -> TerminalMessage { .result(.notOK(detailed ? r : nil)) }
        let wrongState = notOK(ResultReason.wrongState)
        switch cmd {
        case .synchronize:
            if state == .waitCard || state == .waitAuth { pending = nil }
            state = .online
            format = .normal; decoder.options.format = .normal; options = []
            respond(.synchronize, now: now, delay: delay, &fx)
        case .getStatus:
            respond(.status(TerminalStatus(state, transactionRunning: state == .waitCard)), now: now, delay: delay, &fx)
        case let .protocolSetup(version, o):
            guard state == .online else { return respond(wrongState, now: now, delay: delay, &fx) }
            guard version == scenario.protocolVersion else { return respond(notOK(ResultReason.malformed), now: now, delay: delay, &fx) }
            var accepted = o
            if scenario.family == .p6x { accepted.subtract([.extendedFormat, .detailedResults, .declinedDOL]) }
            options = accepted
            // The Protocol answer goes out in the normal format; everything after in the new one.
            respond(ok(), now: now, delay: delay, &fx)
            if accepted.contains(.extendedFormat) { format = .extended; decoder.options.format = .extended }
        case .setup where tampered, .enable where tampered:
            fx.append(.log("security violation: refusing \(name)"))
            respond(notOK(ResultReason.paymentApplicationInvalidState), now: now, delay: delay, &fx)
        case let .setup(t, a):
            guard state == .online else { return respond(wrongState, now: now, delay: delay, &fx) }
            sessionTimeout = t; timeoutAction = a
            state = .disabled
            respond(ok(), now: now, delay: delay, &fx)
        case .enable:
            guard state == .disabled || state == .enabled else { return respond(wrongState, now: now, delay: delay, &fx) }
            state = .enabled
            respond(ok(), now: now, delay: delay, &fx)
        case .disable:
            guard state == .disabled || state == .enabled else { return respond(wrongState, now: now, delay: delay, &fx) }
            state = .disabled
            respond(ok(), now: now, delay: delay, &fx)
        case .requestIDs:
            respond(.identity(scenario.identity), now: now, delay: delay, &fx)
        case .startSession(let s):
            guard state == .enabled else { return respond(wrongState, now: now, delay: delay, &fx) }
            var script = sessionCounter < scenario.sessions.count ? scenario.sessions[sessionCounter] : scenario.fallback
            if sessionCounter > scenario.sessions.count {
                // Past the script every further driver brings a card of their own (a tap of the
                // same card would read as tap-to-stop); the first one keeps the fallback card.
                let n = sessionCounter - scenario.sessions.count
                script.card.hash = script.card.hash + [UInt8(truncatingIfNeeded: n >> 8), UInt8(truncatingIfNeeded: n)]
                let last4 = String(1000 + n % 9000)
                script.card.maskedPAN = String(script.card.maskedPAN.dropLast(4)) + last4
            }
            sessionCounter += 1
            pending = (s.amount, s.reference ?? 0, script)
            // What the terminal shows and would reserve: tests check amounts against it.
            fx.append(.record(record("started", nil, s.amount, at: now, extra: [("reference", .number(Int64(s.reference ?? 0)))])))
            state = .waitCard
            if scenario.startResult { respond(ok(), now: now, delay: delay, &fx) }
            if options.contains(.transactionEvents) { respond(.transactionEvent(0x00), now: now, delay: delay, &fx) }
            if script.script != .noCard {
                agenda.append((now + .milliseconds(scenario.tapDelay + delay), .tap))
            }
            agenda.append((now + .milliseconds(scenario.cardDetectMilliseconds), .cardDetectTimeout))
        case .authSession:
            guard state == .waitAuth, let p = pending else { return respond(wrongState, now: now, delay: delay, &fx) }
            fx.append(.record(record("authSession", nil, p.amount, at: now)))
            agenda.append((now + .milliseconds(scenario.authDelay + delay), .bankAnswer))
        case .cancelSession:
            guard state == .waitCard || state == .waitAuth else { return respond(notOK(ResultReason.wrongState), now: now, delay: delay, &fx) }
            pending = nil
            state = .enabled
            agenda.removeAll { $0.action == .tap || $0.action == .bankAnswer || $0.action == .cardDetectTimeout }
            fx.append(.record(record("cancelled", nil, nil, at: now, extra: [("by", .string("host"))])))
            respond(.sessionCancelled, now: now, delay: delay, &fx)
        case let .commitSession(id, amount):
            guard state != .offline && state != .online else { return respond(wrongState, now: now, delay: delay, &fx) }
            guard let s = openSessions[id] else {
                fx.append(.record(record("rejected", id, amount, at: now, extra: [("command", .string("commit")), ("reason", .string("session not found"))])))
                return respond(notOK(ResultReason.sessionNotFound), now: now, delay: delay, &fx)
            }
            guard amount <= s.authorised else {
                fx.append(.record(record("rejected", id, amount, at: now, extra: [("command", .string("commit")), ("reason", .string("amount above authorised"))])))
                return respond(notOK(ResultReason.malformed), now: now, delay: delay, &fx)
            }
            openSessions[id] = nil
            fx.append(.record(record("committed", id, amount, at: now)))
            respond(ok(), now: now, delay: delay, &fx)
        case .voidSession(let id):
            guard state != .offline && state != .online else { return respond(wrongState, now: now, delay: delay, &fx) }
            guard let s = openSessions[id] else {
                fx.append(.record(record("rejected", id, nil, at: now, extra: [("command", .string("void")), ("reason", .string("session not found"))])))
                return respond(notOK(ResultReason.sessionNotFound), now: now, delay: delay, &fx)
            }
            openSessions[id] = nil
            fx.append(.record(record("voided", id, s.authorised, at: now)))
            respond(ok(), now: now, delay: delay, &fx)
        case .listSessions(let offset):
            guard scenario.family == .p6x else { return respond(notOK(ResultReason.unknownCommand), now: now, delay: delay, &fx) }
            let ids = openSessions.keys.sorted()
            let page = Array(ids.dropFirst(Int(offset)).prefix(60))
            respond(.sessionList(total: UInt8(clamping: ids.count), sessionIDs: page), now: now, delay: delay, &fx)
        case let .updateSession(id, total):
            guard scenario.family == .apollo, var s = openSessions[id] else {
                return respond(notOK(ResultReason.sessionNotFound), now: now, delay: delay, &fx)
            }
            let delta = total > s.authorised ? total - s.authorised : s.authorised - total
            s.authorised = total
            openSessions[id] = s
            fx.append(.record(record("updated", id, total, at: now)))
            respond(.updateSessionResult(UpdateSessionResult(outcome: 0, sessionID: id, authorisedTotal: total, delta: delta,
                                                             declineReason: nil)), now: now, delay: delay, &fx)
        case .getReceipt(let id):
            guard scenario.family == .apollo else { return respond(notOK(ResultReason.unknownCommand), now: now, delay: delay, &fx) }
            respond(.receipt(Array("SIM RECEIPT session \(id)".utf8)), now: now, delay: delay, &fx)
        case .getConnectionInfo:
            guard scenario.family == .apollo, let info = scenario.connectionInfo else {
                return respond(notOK(ResultReason.unknownCommand), now: now, delay: delay, &fx)
            }
            respond(.other(header: 0x44, payload: info), now: now, delay: delay, &fx)
        case .control(0x00):
            respond(ok(), now: now, delay: delay, &fx)
            apply(.reset, now: now, &fx)
        case .uiRequest, .selectLanguage:
            respond(state == .offline ? wrongState : ok(), now: now, delay: delay, &fx)
        default:
            respond(notOK(ResultReason.unknownCommand), now: now, delay: delay, &fx)
        }
    }

    mutating func tap(now: Instant, _ fx: inout [SimEffect]) {
        guard state == .waitCard, let p = pending else { return }
        agenda.removeAll { $0.action == .cardDetectTimeout }
        state = .waitAuth
        cardReads += 1
        let card = p.session.card
        if options.contains(.transactionEvents) { emit(.transactionEvent(0x01), now: now, &fx) }
        let dol = [TLV(tag: 0xDFF006, value: card.hash),
                   TLV(tag: DOLTag.maskedPAN, value: Array(card.maskedPAN.utf8)),
                   TLV(tag: DOLTag.brandName, value: Array(card.brand.utf8))] + card.extraDOL
        emit(.cardRead(dol: dol), now: now, &fx)
        fx.append(.record(record("cardRead", nil, p.amount, at: now)))
        if options.contains(.transactionEvents) { emit(.transactionEvent(0x02), now: now, &fx) }
        fire(.cardRead(cardReads), now: now, &fx)
    }

    mutating func bankAnswer(now: Instant, _ fx: inout [SimEffect]) {
        guard state == .waitAuth, let p = pending else { return }
        pending = nil
        state = .enabled
        let card = p.session.card
        var script = p.session.script
        if case .partial = script, scenario.family != .apollo { script = .approve }
        switch script {
        case .approve, .partial:
            let id = nextSessionID
            nextSessionID &+= 1
            var amount = p.amount
            if case .partial(let a) = script { amount = min(a, p.amount) }
            openSessions[id] = SimSession(id: id, authorised: amount, approvedAt: now)
            let ref = card.hostReference ?? Array("PSPREF\(id)".utf8)
            let dol = [TLV(tag: DOLTag.hostTransactionReference, value: ref),
                       TLV(tag: DOLTag.itemReference, value: [0x00, 0x00, UInt8(truncatingIfNeeded: id >> 8), UInt8(truncatingIfNeeded: id)]),
                       TLV(tag: DOLTag.maskedPAN, value: Array(card.maskedPAN.utf8))] + card.extraDOL
            let event = amount < p.amount ? "partiallyApproved" : "approved"
            fx.append(.record(record(event, id, amount, at: now, extra: [("requested", .number(p.amount)), ("reference", .number(p.reference))])))
            if amount < p.amount {
                emit(.sessionPartiallyApproved(sessionID: id, amount: amount, dol: dol), now: now, &fx)
            } else {
                emit(.sessionApproved(sessionID: id, dol: options.contains(.authorizationDOL) ? dol : []), now: now, &fx)
            }
            if options.contains(.transactionEvents) { emit(.transactionEvent(0x03), now: now, &fx) }
            approvals += 1
            fire(.approved(approvals), now: now, &fx)
        case .decline(let reason):
            fx.append(.record(record("declined", nil, p.amount, at: now, extra: [("reason", .number(reason))])))
            emit(.sessionDeclined(reason: detailed ? reason : nil, dol: []), now: now, &fx)
        case .cancel:
            fx.append(.record(record("cancelled", nil, p.amount, at: now, extra: [("by", .string("cardholder"))])))
            emit(.sessionCancelled, now: now, &fx)
        case .noCard:
            break
        }
    }

    /// Answers a command, after `delay` ms when set.
    mutating func respond(_ m: TerminalMessage, now: Instant, delay: Int = 0, _ fx: inout [SimEffect]) {
        let bytes = frame(m)
        schedule(bytes, now: now, delay: delay, &fx)
    }

    /// Sends an unsolicited message now.
    mutating func emit(_ m: TerminalMessage, now: Instant, _ fx: inout [SimEffect]) {
        schedule(frame(m), now: now, delay: 0, &fx)
    }

    mutating func frame(_ m: TerminalMessage) -> [UInt8] {
        let payload = m.encodePayload(TerminalEncodeOptions(wideDOLLength: format == .extended))
        var bytes = (try? PSPFrameEncoder.frame(header: m.header, payload: payload, preamble: scenario.preamble,
                                                magic: scenario.magic, format: format)) ?? []
        if corruptNext, !bytes.isEmpty {
            corruptNext = false
            bytes[bytes.count - 1] &+= 1
        }
        return bytes
    }

    mutating func schedule(_ bytes: [UInt8], now: Instant, delay: Int, _ fx: inout [SimEffect]) {
        // Keep the line's order: never let a later frame overtake an earlier delayed one.
        let lastQueued = agenda.filter { if case .send = $0.action { return true }; return false }.map(\.at).max()
        var at = now + .milliseconds(delay)
        if let l = lastQueued, l > at { at = l }
        if scenario.splitBytes {
            for (i, b) in bytes.enumerated() { agenda.append((at + .milliseconds(i), .send([b]))) }
        } else if at > now {
            agenda.append((at, .send(bytes)))
        } else {
            fx.append(.write(bytes))
        }
    }

    mutating func fire(_ t: SimTrigger, now: Instant, _ fx: inout [SimEffect]) {
        while let i = faults.firstIndex(where: { $0.trigger == t }) {
            let f = faults.remove(at: i)
            apply(f.fault, now: now, &fx)
        }
    }

    mutating func apply(_ f: SimFault, now: Instant, _ fx: inout [SimEffect]) {
        switch f {
        case .garbage(let n):
            var g: [UInt8] = []
            for _ in 0..<n { g.append(UInt8(truncatingIfNeeded: rng.next())) }
            fx.append(.log("injecting \(n) bytes of garbage"))
            schedule(g, now: now, delay: 0, &fx)
        case .corruptNext:
            corruptNext = true
        case .reset:
            fx.append(.log("terminal reset"))
            fx.append(.record(record("reset", nil, nil, at: now, extra: [("openSessions", .number(openSessions.count))])))
            goOffline()
        case .tamper:
            // Keys deleted, restarted into the inactive mode: PSP starts over and never gets past Setup.
            tampered = true
            fx.append(.log("tamper: restarting into the security violation mode"))
            fx.append(.record(record("tamper", nil, nil, at: now)))
            goOffline()
        case .unplug(let ms):
            fx.append(.log("cable pulled for \(ms) ms"))
            goOffline()
            fx.append(.unplug(milliseconds: ms))
        case let .silent(command, count):
            silence[command, default: 0] += count
        case let .reply(command, header, payload, count):
            replies[command, default: []] += Array(repeating: (header, payload), count: count)
        }
    }

    /// A `--record` line; `at` is the simulator's monotonic clock in nanoseconds, so that a test
    /// can time what happened on the terminal (Card Read → Auth Session) without its own clock.
    func record(_ event: String, _ id: UInt32?, _ amount: UInt32?, at now: Instant, extra: [(String, JSON)] = []) -> JSON {
        var f: [(String, JSON)] = [("event", .string(event))]
        if let id { f.append(("sessionId", .number(id))) }
        if let amount { f.append(("amount", .number(amount))) }
        return .object(f + extra + [("at", .number(now.nanoseconds))])
    }
}
