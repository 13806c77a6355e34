import Timebase

/// One message for the cloud. Its id is assigned when it is first written to disk and is the
/// Idempotency-Key on every attempt, so the cloud can drop duplicates.
public struct OutboxMessage: Equatable, Sendable {
    /// Which part of a transaction this is: only intermediate `updated` events may be thinned.
    public enum Kind: UInt8, Sendable { case started = 1, updated, ended, settlement, other }

    public var id: String
    /// Messages of one queue (one transaction) are delivered strictly in order.
    public var queue: String
    public var action: OCPPAction
    public var kind: Kind
    /// The JSON payload as sent.
    public var body: [UInt8]

    public init(id: String, queue: String, action: OCPPAction, kind: Kind, body: [UInt8]) {
        self.id = id; self.queue = queue; self.action = action; self.kind = kind; self.body = body
    }
}

/// How one attempt ended.
public enum DeliveryResult: Equatable, Sendable {
    /// 2xx: the cloud has it.
    case delivered
    /// 4xx other than 401, 403, 408 and 429: the cloud will never take this message; it goes
    /// to the dead letters.
    case rejected(status: Int, response: String)
    /// Reached the cloud but it failed (5xx, 408, 429, 401/403, timeout mid-request, dropped
    /// connection): retried with backoff.
    case failed(String)
    /// Could not reach the cloud at all (no route, refused, name resolution, no OCPP-J
    /// connection or a connection lost with the message in flight): not an attempt.
    case unreachable(String)
    /// The CSMS answered an OCPP-J CALLERROR: it has the message and could not process it. An
    /// attempt; after `OutboxConfig.maxCallErrorAttempts` of them the message becomes a dead
    /// letter with the error kept (OCPP 2.x lets a station give up on a transaction message
    /// the CSMS keeps refusing; retrying it forever would hold the transaction's queue).
    case callError(code: String, description: String)

    /// Maps an HTTP status: 2xx delivered, 408/429/5xx failed, other 4xx rejected. 401 and 403
    /// refuse the station's credentials, not the message (an expired token, a certificate not
    /// yet registered): the message waits for the credentials to be fixed, it is not discarded.
    public static func status(_ status: Int, response: String) -> DeliveryResult {
        switch status {
        case 200..<300: return .delivered
        case 408, 429: return .failed("HTTP \(status)")
        case 401, 403: return .failed("HTTP \(status): the cloud refused the station's credentials")
        case 400..<500: return .rejected(status: status, response: response)
        default: return .failed("HTTP \(status)")
        }
    }
}

/// The outbox's durable facts (kept in the ledger beside the engine's).
public enum OutboxRecord: Equatable, Sendable {
    case queued(OutboxMessage)
    case acknowledged(id: String)
    /// A permanent rejection, kept on disk with the cloud's answer for technicians.
    case deadLettered(id: String, status: Int, response: String)
    /// An intermediate Updated event dropped to stay within the budget (OCPP E11.FR.05).
    case thinned(id: String)
}

/// What the outbox asks the shell to do; a `persist` is durable before what follows it.
public enum OutboxEffect: Equatable, Sendable {
    case persist(OutboxRecord)
    case send(OutboxMessage)
    case notice(String)
}

public struct OutboxConfig: Equatable, Sendable {
    /// Requests in flight at once (parallelism across transactions).
    public var maxInFlight = 4
    public var backoffInitial: Duration = .seconds(2)
    public var backoffCap: Duration = .seconds(300)
    /// Fraction of a delay that is random, so a field of chargers does not retry in lockstep.
    public var jitter = 0.2
    /// Queued payload bytes allowed before intermediate Updated events are thinned; past it
    /// (with nothing left to thin) `overBudget` tells the engine to refuse new sessions.
    public var budgetBytes = 8 << 20
    /// CALLERRORs a message may get before it is dead-lettered (`DeliveryResult.callError`).
    public var maxCallErrorAttempts = 5
    /// Attempts that reached the cloud (failed or CALLERROR) after which a message that is not
    /// part of a transaction (`Kind.other`: status, security events) is dropped, kept as a dead
    /// letter (OCPP: only transaction messages must be retried until delivered). nil: no limit
    /// (the HTTPS binding's behaviour).
    public var maxAttemptsOther: Int?
    /// Start unreachable, sending nothing until `connectionRestored` (OCPP-J: the station is not
    /// registered before its first accepted Boot, and saying "unreachable" at every start would
    /// be noise). Events created meanwhile are `offline`, which they are.
    public var startsOffline = false
    public init() {}
}

/// The offline outbox. Pure: messages, results and time in; records, sends and notices out.
///
/// Strict order inside a queue (a transaction), never head-of-line blocking across queues.
/// Attempts are counted only when the cloud was reached, so a dead uplink does not burn
/// retries; while it is unreachable one probe at a time goes out on the backoff schedule.
public struct Outbox: Sendable {
    public let config: OutboxConfig

    struct Entry: Sendable {
        var message: OutboxMessage
        var attempts = 0
        var notBefore: Instant = .zero
        var inFlight = false
        /// CALLERRORs received for it (a subset of `attempts`).
        var callErrors = 0
        /// When it was queued (or recovered): the age a technician reads.
        var queuedAt: Instant = .zero
    }

    /// Queues in order of first appearance; each holds its messages in order.
    var queues: [String: [Entry]] = [:]
    var queueOrder: [String] = []
    public private(set) var reachable = true
    var probeAt: Instant?
    var probeFailures = 0
    var rng: SeededGenerator
    public private(set) var queuedBytes = 0
    public private(set) var deadLetters = 0
    public private(set) var thinned = 0
    public private(set) var delivered = 0

    public init(config: OutboxConfig = .init(), seed: UInt64 = 0x0B0) {
        self.config = config
        rng = SeededGenerator(seed: seed)
        reachable = !config.startsOffline
    }

    /// When `reachable` last changed (nil: never since start).
    public private(set) var reachableChangedAt: Instant?
    /// Waiting messages by OCPP action (in flight included), for the technicians' status.
    public var pendingByAction: [String: Int] {
        var out: [String: Int] = [:]
        for q in queues.values { for e in q { out[e.message.action.rawValue, default: 0] += 1 } }
        return out
    }
    /// When the oldest waiting message was queued (or recovered at start); nil when none waits.
    public var oldestQueuedAt: Instant? { queues.values.compactMap { $0.first?.queuedAt }.min() }

    /// Messages waiting (in flight included).
    public var pending: Int { queues.values.reduce(0) { $0 + $1.count } }
    public var inFlight: Int { queues.values.reduce(0) { $0 + $1.filter(\.inFlight).count } }
    /// Over the budget with nothing left to thin: the engine should take no new sessions.
    public var overBudget: Bool { queuedBytes > config.budgetBytes }

    /// Adds a message: durable first, then sent when its turn comes.
    public mutating func enqueue(_ m: OutboxMessage, now: Instant) -> [OutboxEffect] {
        var fx: [OutboxEffect] = [.persist(.queued(m))]
        add(m, now: now)
        thinIfNeeded(&fx)
        fx += dispatch(now: now)
        return fx
    }

    mutating func add(_ m: OutboxMessage, now: Instant) {
        if queues[m.queue] == nil { queueOrder.append(m.queue); queues[m.queue] = [] }
        queues[m.queue]!.append(Entry(message: m, notBefore: now, queuedAt: now))
        queuedBytes += m.body.count
    }

    /// The outcome of a send.
    public mutating func completed(_ id: String, _ result: DeliveryResult, now: Instant) -> [OutboxEffect] {
        var fx: [OutboxEffect] = []
        guard let (q, i) = locate(id) else { return fx }
        queues[q]![i].inFlight = false
        switch result {
        case .delivered:
            if !reachable { reachableChangedAt = now }
            reachable = true
            probeFailures = 0
            probeAt = nil
            remove(q, i)
            delivered += 1
            fx.append(.persist(.acknowledged(id: id)))
        case let .rejected(status, response):
            if !reachable { reachableChangedAt = now }
            reachable = true
            probeFailures = 0
            remove(q, i)
            deadLetters += 1
            fx.append(.persist(.deadLettered(id: id, status: status, response: String(response.prefix(1000)))))
            fx.append(.notice("cloud rejected message \(id) (\(status)): kept as a dead letter"))
        case .failed(let why):
            if !reachable { reachableChangedAt = now }
            reachable = true
            queues[q]![i].attempts += 1
            if let limit = config.maxAttemptsOther, queues[q]![i].message.kind == .other, queues[q]![i].attempts >= limit {
                giveUp(q, i, "dropped after \(limit) attempts, the last: \(why)", &fx)
            } else {
                queues[q]![i].notBefore = now + delay(after: queues[q]![i].attempts)
                fx.append(.notice("delivery of \(id) failed (\(why)); attempt \(queues[q]![i].attempts)"))
            }
        case let .callError(code, description):
            if !reachable { reachableChangedAt = now }
            reachable = true
            queues[q]![i].attempts += 1
            queues[q]![i].callErrors += 1
            let text = "CALLERROR \(code): \(description)"
            let otherSpent = config.maxAttemptsOther.map { queues[q]![i].message.kind == .other && queues[q]![i].attempts >= $0 } ?? false
            if queues[q]![i].callErrors >= config.maxCallErrorAttempts || otherSpent {
                giveUp(q, i, text, &fx)
            } else {
                queues[q]![i].notBefore = now + delay(after: queues[q]![i].attempts)
                fx.append(.notice("the CSMS answered \(id) with \(text); attempt \(queues[q]![i].callErrors) of \(config.maxCallErrorAttempts)"))
            }
        case .unreachable(let why):
            if reachable { fx.append(.notice("cloud unreachable (\(why)): queueing")) }
            if reachable { reachableChangedAt = now }
            reachable = false
            probeFailures += 1
            probeAt = now + delay(after: probeFailures)
        }
        fx += dispatch(now: now)
        return fx
    }

    /// A message the cloud will not take after its attempts: removed, kept as a dead letter
    /// (status 0: not an HTTP status) with why.
    mutating func giveUp(_ q: String, _ i: Int, _ why: String, _ fx: inout [OutboxEffect]) {
        let id = queues[q]![i].message.id
        remove(q, i)
        deadLetters += 1
        fx.append(.persist(.deadLettered(id: id, status: 0, response: String(why.prefix(1000)))))
        fx.append(.notice("gave up on message \(id) (\(why)): kept as a dead letter"))
    }

    /// The uplink has a registered connection again (OCPP-J: the CSMS accepted the Boot): the
    /// queue goes out now instead of at the next probe. A no-op while reachable.
    public mutating func connectionRestored(now: Instant) -> [OutboxEffect] {
        guard !reachable else { return dispatch(now: now) }
        reachable = true
        reachableChangedAt = now
        probeFailures = 0
        probeAt = nil
        return dispatch(now: now)
    }

    /// Time passed: retries and probes that are due.
    public mutating func tick(now: Instant) -> [OutboxEffect] { dispatch(now: now) }

    public var nextDeadline: Instant? {
        if !reachable { return inFlight == 0 ? probeAt : nil }
        guard inFlight < config.maxInFlight else { return nil }
        return queueOrder.compactMap { q -> Instant? in
            guard let head = queues[q]?.first, !head.inFlight else { return nil }
            return head.notBefore
        }.min()
    }

    /// Sends the heads of queues that are due, up to `maxInFlight`; one probe while unreachable.
    mutating func dispatch(now: Instant) -> [OutboxEffect] {
        var fx: [OutboxEffect] = []
        if !reachable {
            guard inFlight == 0, let at = probeAt, now >= at else { return fx }
            // Probe with the oldest head that is due.
            if let q = queueOrder.first(where: { queues[$0]?.first.map { !$0.inFlight } ?? false }) {
                queues[q]![0].inFlight = true
                fx.append(.send(queues[q]![0].message))
            }
            return fx
        }
        var budget = config.maxInFlight - inFlight
        for q in queueOrder where budget > 0 {
            guard let head = queues[q]?.first, !head.inFlight, now >= head.notBefore else { continue }
            queues[q]![0].inFlight = true
            fx.append(.send(head.message))
            budget -= 1
        }
        return fx
    }

    /// The shared capped, jittered backoff, counting only attempts that reached the cloud.
    mutating func delay(after attempts: Int) -> Duration {
        Backoff.delay(failures: attempts - 1, initial: config.backoffInitial, cap: config.backoffCap,
                      jitter: config.jitter, random: rng.nextUnit())
    }

    /// Over budget: drop intermediate Updated events, oldest first, never one in flight and
    /// never a Started, Ended or settlement.
    mutating func thinIfNeeded(_ fx: inout [OutboxEffect]) {
        while queuedBytes > config.budgetBytes {
            var victim: (String, Int)?
            for q in queueOrder {
                if let i = queues[q]?.firstIndex(where: { $0.message.kind == .updated && !$0.inFlight }) { victim = (q, i); break }
            }
            guard let (q, i) = victim else { return }
            let id = queues[q]![i].message.id
            remove(q, i)
            thinned += 1
            fx.append(.persist(.thinned(id: id)))
        }
    }

    mutating func remove(_ q: String, _ i: Int) {
        queuedBytes -= queues[q]![i].message.body.count
        queues[q]!.remove(at: i)
        if queues[q]!.isEmpty { queues[q] = nil; queueOrder.removeAll { $0 == q } }
    }

    func locate(_ id: String) -> (String, Int)? {
        for q in queueOrder { if let i = queues[q]?.firstIndex(where: { $0.message.id == id }) { return (q, i) } }
        return nil
    }

    /// Rebuilds the outbox from its records: every message queued and not yet acknowledged,
    /// dead-lettered or thinned, in the order it was written, with its original id.
    public static func recover(config: OutboxConfig = .init(), records: [OutboxRecord], now: Instant, seed: UInt64 = 0x0B0) -> Outbox {
        var o = Outbox(config: config, seed: seed)
        var done = Set<String>()
        for r in records {
            switch r {
            case .acknowledged(let id), .deadLettered(let id, _, _), .thinned(let id): done.insert(id)
            case .queued: break
            }
        }
        for case .queued(let m) in records where !done.contains(m.id) { o.add(m, now: now) }
        return o
    }

    /// A pending message by id.
    public func message(_ id: String) -> OutboxMessage? {
        locate(id).map { queues[$0.0]![$0.1].message }
    }

    /// The queues (transactions, and the station's own) with messages still owed to the cloud.
    public var pendingQueues: Set<String> { Set(queueOrder) }

    /// The ids still owed to the cloud, for compaction.
    public var pendingIDs: Set<String> { Set(queues.values.flatMap { $0.map(\.message.id) }) }
}

/// Message ids in UUID version 4 text form: random ones from a seeded generator, or derived
/// from a name (the same name always gives the same id).
public struct MessageIDs: Sendable {
    var rng: SeededGenerator
    public init(seed: UInt64) { rng = SeededGenerator(seed: seed) }

    public mutating func next() -> String { MessageIDs.format((0..<16).map { _ in UInt8(truncatingIfNeeded: rng.next()) }) }

    /// A stable id for `name`: FNV-1a of the name seeds two SplitMix64 outputs (128 bits).
    public static func derive(_ name: String) -> String {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in name.utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        var g = SeededGenerator(seed: h)
        let a = g.next(), b = g.next()
        return format((0..<8).map { UInt8(truncatingIfNeeded: a >> (8 * $0)) } + (0..<8).map { UInt8(truncatingIfNeeded: b >> (8 * $0)) })
    }

    static func format(_ raw: [UInt8]) -> String {
        var bytes = raw
        bytes[6] = bytes[6] & 0x0F | 0x40
        bytes[8] = bytes[8] & 0x3F | 0x80
        let hex = bytes.map { b -> String in let h = String(b, radix: 16); return h.count == 1 ? "0" + h : h }
        return hex[0..<4].joined() + "-" + hex[4..<6].joined() + "-" + hex[6..<8].joined() + "-" + hex[8..<10].joined() + "-" + hex[10..<16].joined()
    }
}
