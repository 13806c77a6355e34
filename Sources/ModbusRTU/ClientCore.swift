import Timebase

/// How the client waits and retries.
public struct ModbusClientConfig: Equatable, Sendable {
    /// The line's timing (frame silence, transmission times).
    public var timing: ModbusTiming
    /// How long a server may take to start answering after our request has left, on top of the
    /// time the request and a full answer take on the wire. The serial line guide leaves the
    /// value to the application; meters answer within tens of milliseconds.
    public var responseTimeout: Duration
    /// How often one read is sent again after no answer or a damaged one (not after an
    /// exception, which is the server's considered answer).
    public var maxRetries: Int
    /// Requests waiting behind the outstanding one; more are refused (`queueFull`).
    public var maxQueued: Int

    /// Bounds of `responseTimeout` a configuration may choose.
    public static let responseTimeoutRange: ClosedRange<Duration> = .milliseconds(50) ... .seconds(5)
    /// Bounds of `maxRetries`.
    public static let maxRetriesRange: ClosedRange<Int> = 0...5
    /// The default response timeout.
    public static let defaultResponseTimeout: Duration = .milliseconds(500)
    /// The default number of retries.
    public static let defaultMaxRetries = 2
    /// The default queue bound: a bus of 16 meters with 3 reads each, and room to spare.
    public static let defaultMaxQueued = 64

    /// A configuration; the timeout and retries are clamped to their ranges.
    public init(timing: ModbusTiming, responseTimeout: Duration = defaultResponseTimeout,
                maxRetries: Int = defaultMaxRetries, maxQueued: Int = defaultMaxQueued) {
        self.timing = timing
        self.responseTimeout = min(max(responseTimeout, Self.responseTimeoutRange.lowerBound), Self.responseTimeoutRange.upperBound)
        self.maxRetries = min(max(maxRetries, Self.maxRetriesRange.lowerBound), Self.maxRetriesRange.upperBound)
        self.maxQueued = max(maxQueued, 1)
    }
}

/// Identifies one submitted read.
public struct ModbusRequestID: Hashable, Sendable, CustomStringConvertible {
    /// Increasing from 1 per client.
    public let value: UInt64
    public var description: String { "#\(value)" }
}

/// Why a read gave no registers.
public enum ModbusFailure: Error, Equatable, Hashable, Sendable, CustomStringConvertible {
    /// The server answered with an exception (not retried: it is the server's answer).
    case exception(ModbusException)
    /// No frame arrived within the response timeout, `attempts` times.
    case noResponse(attempts: Int)
    /// The last of `attempts` answers was damaged or not an answer to this request (the first
    /// check it failed).
    case invalidResponse(ModbusDecodeError, attempts: Int)
    /// More than `ModbusClientConfig.maxQueued` requests were waiting; this one was not taken.
    case queueFull
    /// The serial port closed (or was never open) before an answer.
    case linkDown

    /// For the log.
    public var description: String {
        switch self {
        case .exception(let e): "\(e)"
        case .noResponse(let n): "no response (\(n) attempt\(n == 1 ? "" : "s"))"
        case .invalidResponse(let e, let n): "invalid response: \(e) (\(n) attempt\(n == 1 ? "" : "s"))"
        case .queueFull: "request queue full"
        case .linkDown: "serial port closed"
        }
    }
}

/// What the shell must do for the client.
public enum ModbusClientEffect: Equatable, Sendable {
    /// Write this frame to the line.
    case send([UInt8])
    /// Call `tick` at this instant (the response timeout, or the silence before the next request).
    case waitUntil(Instant)
    /// A read is over: its registers, or why there are none.
    case completed(ModbusRequestID, ReadRequest, Result<[UInt16], ModbusFailure>)
}

/// What the client saw, since start.
public struct ModbusClientCounters: Equatable, Sendable {
    /// Frames sent, retries included.
    public var requestsSent = 0
    /// Of those, retries.
    public var retries = 0
    /// Attempts that ended without any frame.
    public var timeouts = 0
    /// Frames refused, by the check they failed (`ModbusDecodeError.description`'s first word
    /// would be too vague, so the case itself is the key).
    public var invalidFrames: [String: Int] = [:]
    /// Exception answers.
    public var exceptions = 0
    /// Frames that arrived with no request outstanding (late answers, another master, noise).
    public var unsolicited = 0
    /// Our own request read back (an RS-485 adapter that does not disable its receiver while
    /// sending): ignored, since no answer to a read is 8 bytes long.
    public var echoes = 0

    public init() {}
}

/// The Modbus RTU client (master): one request outstanding on the bus at a time, answers matched
/// to it, a response timeout, bounded retries, and the silent interval kept between frames.
/// Pure: frames and instants in, `ModbusClientEffect`s out; the shell writes, feeds the framer's
/// frames to `receive` and calls `tick` at `nextDeadline`.
///
/// RTU has no transaction id, so an answer is recognised by address, function and length only. A
/// late answer to a timed-out attempt that arrives during its retry is taken as the retry's: for
/// reads it carries the same registers, a few hundred milliseconds older.
public struct ModbusClientCore: Sendable {
    /// The configuration given at start.
    public let config: ModbusClientConfig
    /// What happened so far.
    public private(set) var counters = ModbusClientCounters()

    struct Pending: Sendable {
        let id: ModbusRequestID
        let request: ReadRequest
        var attempts = 0
        var lastError: ModbusDecodeError?
    }

    var queue: [Pending] = []
    var outstanding: (pending: Pending, deadline: Instant)?
    /// Nothing may be sent before this: the silence after the last frame on the bus.
    var quietUntil: Instant = .zero
    var nextID: UInt64 = 1

    /// A client with nothing outstanding.
    public init(config: ModbusClientConfig) { self.config = config }

    /// Requests outstanding or waiting.
    public var pendingCount: Int { queue.count + (outstanding == nil ? 0 : 1) }

    /// When `tick` must run next: the outstanding request's timeout, or the end of the silence
    /// before the next queued request; nil when idle.
    public var nextDeadline: Instant? {
        if let o = outstanding { return o.deadline }
        return queue.isEmpty ? nil : quietUntil
    }

    /// Queues a read; it is sent at once when the bus is free.
    public mutating func submit(_ request: ReadRequest, now: Instant) -> (ModbusRequestID, [ModbusClientEffect]) {
        let id = ModbusRequestID(value: nextID)
        nextID += 1
        guard queue.count < config.maxQueued else {
            return (id, [.completed(id, request, .failure(.queueFull))])
        }
        queue.append(Pending(id: id, request: request))
        return (id, pump(now: now))
    }

    /// A frame the framer cut from the line.
    public mutating func receive(frame: [UInt8], now: Instant) -> [ModbusClientEffect] {
        quietUntil = max(quietUntil, now + config.timing.frameSilence)
        guard var o = outstanding else {
            counters.unsolicited += 1
            return []
        }
        // An answer to a read is 5 + 2n bytes, odd; the request is 8, so its echo is never one.
        if frame == o.pending.request.encode() {
            counters.echoes += 1
            return []
        }
        do {
            let response = try ReadResponse.decode(frame, for: o.pending.request)
            outstanding = nil
            switch response {
            case .registers(let r):
                return [.completed(o.pending.id, o.pending.request, .success(r))] + pump(now: now)
            case .exception(let e):
                counters.exceptions += 1
                return [.completed(o.pending.id, o.pending.request, .failure(.exception(e)))] + pump(now: now)
            }
        } catch {
            counters.invalidFrames[Self.key(error), default: 0] += 1
            o.pending.lastError = error
            outstanding = nil
            return retryOrFail(o.pending, now: now)
        }
    }

    /// Time passed: a response timeout, or the bus became free for the next request.
    public mutating func tick(now: Instant) -> [ModbusClientEffect] {
        if let o = outstanding {
            guard now >= o.deadline else { return [] }
            counters.timeouts += 1
            outstanding = nil
            var p = o.pending
            p.lastError = nil
            return retryOrFail(p, now: now)
        }
        return pump(now: now)
    }

    /// The port closed: everything outstanding and queued fails with `linkDown`.
    public mutating func linkDown() -> [ModbusClientEffect] {
        var all = queue
        if let o = outstanding { all.insert(o.pending, at: 0) }
        queue.removeAll()
        outstanding = nil
        return all.map { .completed($0.id, $0.request, .failure(.linkDown)) }
    }

    mutating func retryOrFail(_ p: Pending, now: Instant) -> [ModbusClientEffect] {
        if p.attempts <= config.maxRetries {
            queue.insert(p, at: 0)
            quietUntil = max(quietUntil, now + config.timing.frameSilence)
            return pump(now: now)
        }
        let failure: ModbusFailure = p.lastError.map { .invalidResponse($0, attempts: p.attempts) } ?? .noResponse(attempts: p.attempts)
        return [.completed(p.id, p.request, .failure(failure))] + pump(now: now)
    }

    mutating func pump(now: Instant) -> [ModbusClientEffect] {
        guard outstanding == nil, !queue.isEmpty else { return [] }
        guard now >= quietUntil else { return [.waitUntil(quietUntil)] }
        var p = queue.removeFirst()
        p.attempts += 1
        if p.attempts > 1 { counters.retries += 1 }
        counters.requestsSent += 1
        let frame = p.request.encode()
        let onWire = config.timing.transmissionTime(bytes: frame.count + p.request.responseLength)
        let deadline = now + onWire + config.responseTimeout
        outstanding = (p, deadline)
        // The request itself occupies the bus; nothing else goes out before it and its silence.
        quietUntil = now + config.timing.transmissionTime(bytes: frame.count) + config.timing.frameSilence
        return [.send(frame), .waitUntil(deadline)]
    }

    static func key(_ e: ModbusDecodeError) -> String {
        switch e {
        case .tooShort: "too_short"
        case .tooLong: "too_long"
        case .crcMismatch: "crc"
        case .unexpectedAddress: "address"
        case .unexpectedFunction: "function"
        case .lengthMismatch: "length"
        case .unsupportedFunction: "function"
        }
    }
}
