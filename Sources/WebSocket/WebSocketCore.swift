import Timebase

/// The connection's settings.
public struct WebSocketConfiguration: Sendable {
    /// Largest payload of one received frame.
    public var maxFramePayload: Int
    /// Largest received message, all fragments together.
    public var maxMessageBytes: Int
    /// How long a keep-alive ping may wait for its pong.
    public var pongTimeout: Duration
    /// How long our close frame may wait for the peer's.
    public var closeTimeout: Duration

    public init(maxFramePayload: Int = WebSocketLimits.defaultMaxFramePayload,
                maxMessageBytes: Int = WebSocketLimits.defaultMaxMessageBytes,
                pongTimeout: Duration = WebSocketLimits.defaultPongTimeout,
                closeTimeout: Duration = WebSocketLimits.defaultCloseTimeout) {
        self.maxFramePayload = maxFramePayload
        self.maxMessageBytes = maxMessageBytes
        self.pongTimeout = pongTimeout
        self.closeTimeout = closeTimeout
    }
}

/// Why the connection failed (as opposed to closing with a completed close handshake).
public enum WebSocketFailure: Error, Equatable, Sendable, CustomStringConvertible {
    /// The peer broke the protocol; we sent a close with `error.closeCode` and read nothing more.
    case protocolViolation(WebSocketProtocolError)
    /// A keep-alive ping went unanswered for `pongTimeout`.
    case pongTimeout
    /// Our close frame went unanswered for `closeTimeout`.
    case closeTimeout
    /// The byte stream ended (EOF, reset) before the close handshake completed: 1006.
    case connectionLost

    public var description: String {
        switch self {
        case .protocolViolation(let e): return "protocol error: \(e) (sent close \(e.closeCode))"
        case .pongTimeout: return "no pong within the timeout"
        case .closeTimeout: return "no close frame from the peer within the timeout"
        case .connectionLost: return "connection lost without a close handshake (1006)"
        }
    }
}

/// Why the application's request to send was refused.
public enum WebSocketSendError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The connection is closing or closed: no data after our close frame (RFC 6455 section 5.5.1).
    case notOpen
    /// A ping payload over 125 bytes.
    case controlPayloadTooLong(Int)
    /// A close reason over 123 bytes of UTF-8.
    case closeReasonTooLong(Int)
    /// A close code that may not be sent (1005, 1006, 1015, unassigned).
    case invalidCloseCode(UInt16)

    public var description: String {
        switch self {
        case .notOpen: return "connection is not open"
        case .controlPayloadTooLong(let n): return "ping payload of \(n) bytes (limit 125)"
        case .closeReasonTooLong(let n): return "close reason of \(n) bytes (limit 123)"
        case .invalidCloseCode(let c): return "close code \(c) may not be sent"
        }
    }
}

/// What the shell must do, in order.
public enum WebSocketEffect: Equatable, Sendable {
    /// Write these bytes to the stream.
    case write([UInt8])
    /// A message arrived.
    case message(WebSocketMessage)
    /// The close handshake completed: the peer's code (1005 when its close frame had none) and
    /// reason. The shell closes the stream once its writes are out. Terminal.
    case closed(code: WebSocketCloseCode, reason: String)
    /// The connection failed. The shell writes what is queued (a close frame after a protocol
    /// error) and closes the stream. Terminal.
    case failed(WebSocketFailure)
}

/// One WebSocket connection after the opening handshake, as a pure state machine: bytes,
/// application requests and instants in; effects out (`takeEffects`); no I/O, no clock. The shell
/// arms one timer at `nextDeadline` and calls `advance(to:)` when it fires.
///
/// The role decides masking only: a client (the default) masks what it sends, with keys from
/// `Keys` (`SystemRandomNumberGenerator` in the shell, a seeded generator in tests), and fails on
/// a masked frame; a server sends unmasked frames, draws no key, and fails on an unmasked frame
/// (`WebSocketProtocolError.unmaskedFrame`, close 1002).
public struct WebSocketCore<Keys: RandomNumberGenerator & Sendable>: Sendable {
    /// Where the connection is.
    public enum State: Equatable, Sendable {
        /// Messages flow both ways.
        case open
        /// We sent a close and await the peer's; messages still arriving are delivered.
        case closing
        /// Closed or failed: nothing more is read or written.
        case closed
    }

    public let configuration: WebSocketConfiguration
    /// Our end of the connection.
    public let role: WebSocketRole
    public private(set) var state: State = .open
    private var keys: Keys
    private var decoder: WebSocketFrameDecoder
    private var assembler: WebSocketMessageAssembler
    private var effects: [WebSocketEffect] = []
    /// The payload of our latest unanswered ping, and when the earliest unanswered one times out
    /// (a newer ping does not postpone it).
    private var pingPayload: [UInt8]?
    private var pongDeadline: Instant?
    private var closeDeadline: Instant?

    /// A connection whose handshake just completed; `leftover` is the handshake's leftover bytes.
    /// A server passes any generator: it draws no key from it.
    public init(configuration: WebSocketConfiguration = WebSocketConfiguration(), role: WebSocketRole = .client,
                maskKeys: Keys, leftover: [UInt8] = [], at now: Instant) {
        self.configuration = configuration
        self.role = role
        keys = maskKeys
        decoder = WebSocketFrameDecoder(maxFramePayload: configuration.maxFramePayload, role: role)
        assembler = WebSocketMessageAssembler(maxMessageBytes: configuration.maxMessageBytes)
        if !leftover.isEmpty { receive(leftover, at: now) }
    }

    /// The effects produced since the last call, in order.
    public mutating func takeEffects() -> [WebSocketEffect] {
        defer { effects = [] }
        return effects
    }

    /// When `advance(to:)` must be called next: a pong or close deadline, or nil.
    public var nextDeadline: Instant? {
        guard state != .closed else { return nil }
        switch (pongDeadline, closeDeadline) {
        case let (p?, c?): return min(p, c)
        case let (p?, nil): return p
        case let (nil, c?): return c
        case (nil, nil): return nil
        }
    }

    // MARK: Application requests

    /// Sends a text message as one frame.
    public mutating func sendText(_ text: String) throws(WebSocketSendError) {
        try send(.text, Array(text.utf8))
    }

    /// Sends a binary message as one frame.
    public mutating func sendBinary(_ bytes: [UInt8]) throws(WebSocketSendError) {
        try send(.binary, bytes)
    }

    /// Sends a keep-alive ping. Its pong (same payload) must come within `pongTimeout` of the
    /// earliest ping still unanswered, or the connection fails.
    public mutating func sendPing(_ payload: [UInt8], at now: Instant) throws(WebSocketSendError) {
        guard payload.count <= WebSocketLimits.maxControlPayload else { throw .controlPayloadTooLong(payload.count) }
        try send(.ping, payload)
        pingPayload = payload
        if pongDeadline == nil { pongDeadline = now + configuration.pongTimeout }
    }

    /// Starts the close handshake: our close frame goes out, and the peer's must come within
    /// `closeTimeout`. Data still arriving until then is delivered.
    public mutating func close(code: WebSocketCloseCode = .normal, reason: String = "", at now: Instant) throws(WebSocketSendError) {
        guard state == .open else { throw .notOpen }
        guard code.isValidOnWire else { throw .invalidCloseCode(code.rawValue) }
        let reasonBytes = Array(reason.utf8)
        guard reasonBytes.count <= WebSocketLimits.maxCloseReasonBytes else { throw .closeReasonTooLong(reasonBytes.count) }
        write(.close, Self.closePayload(code, reasonBytes))
        state = .closing
        closeDeadline = now + configuration.closeTimeout
    }

    // MARK: Inputs

    /// Bytes read from the stream.
    public mutating func receive(_ bytes: some Collection<UInt8>, at now: Instant) {
        guard state != .closed else { return }
        decoder.append(contentsOf: bytes)
        do {
            while state != .closed, let frame = try decoder.next() {
                guard let output = try assembler.receive(frame) else { continue }
                switch output {
                case .message(let m): effects.append(.message(m))
                case .control(let f): try control(f)
                }
            }
        } catch {
            fail(error)
        }
    }

    /// The stream ended (EOF or an error) before a close handshake completed.
    public mutating func connectionLost() {
        guard state != .closed else { return }
        state = .closed
        effects.append(.failed(.connectionLost))
    }

    /// Time passed: fails the connection when a pong or the peer's close is overdue.
    public mutating func advance(to now: Instant) {
        guard state != .closed else { return }
        if let c = closeDeadline, now >= c {
            state = .closed
            effects.append(.failed(.closeTimeout))
        } else if let p = pongDeadline, now >= p {
            state = .closed
            effects.append(.failed(.pongTimeout))
        }
    }

    // MARK: Internals

    private mutating func control(_ frame: WebSocketFrame) throws(WebSocketProtocolError) {
        switch frame.opcode {
        case .ping:
            // Answered while open; after our close only the peer's close matters.
            if state == .open { write(.pong, frame.payload) }
        case .pong:
            // Unsolicited pongs are allowed (RFC 6455 section 5.5.3); only the latest ping's answer counts.
            if let p = pingPayload, p == frame.payload {
                pingPayload = nil
                pongDeadline = nil
            }
        case .close:
            let (code, reason) = try Self.parseClose(frame.payload)
            if state == .open {
                // Echo the peer's code (an empty close is answered empty).
                write(.close, frame.payload.isEmpty ? [] : Self.closePayload(code, []))
            }
            state = .closed
            effects.append(.closed(code: code, reason: reason))
        default:
            break
        }
    }

    private static func parseClose(_ payload: [UInt8]) throws(WebSocketProtocolError) -> (WebSocketCloseCode, String) {
        if payload.isEmpty { return (.noStatusReceived, "") }
        guard payload.count >= 2 else { throw .closePayloadTooShort }
        let code = WebSocketCloseCode(UInt16(payload[0]) << 8 | UInt16(payload[1]))
        guard code.isValidOnWire else { throw .invalidCloseCode(code.rawValue) }
        let reason = payload[2...]
        guard UTF8Validator.isValid(reason) else { throw .invalidUTF8 }
        return (code, String(decoding: reason, as: UTF8.self))
    }

    private static func closePayload(_ code: WebSocketCloseCode, _ reason: [UInt8]) -> [UInt8] {
        [UInt8(code.rawValue >> 8), UInt8(code.rawValue & 0xFF)] + reason
    }

    private mutating func send(_ opcode: WebSocketOpcode, _ payload: [UInt8]) throws(WebSocketSendError) {
        guard state == .open else { throw .notOpen }
        write(opcode, payload)
    }

    private mutating func write(_ opcode: WebSocketOpcode, _ payload: [UInt8]) {
        let frame = WebSocketFrame(opcode: opcode, payload: payload)
        switch role {
        case .client:
            let key = UInt32(truncatingIfNeeded: keys.next())
            effects.append(.write(WebSocketFrameEncoder.encode(frame, maskKey: key)))
        case .server:
            effects.append(.write(WebSocketFrameEncoder.encodeUnmasked(frame)))
        }
    }

    /// Fails the connection for a protocol error: a close frame with the mapped code (unless ours
    /// is already out), then nothing more is read (RFC 6455 section 7.1.7).
    private mutating func fail(_ error: WebSocketProtocolError) {
        if state == .open { write(.close, Self.closePayload(error.closeCode, [])) }
        state = .closed
        effects.append(.failed(.protocolViolation(error)))
    }
}
