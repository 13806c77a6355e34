/// A complete data message.
public enum WebSocketMessage: Equatable, Sendable {
    /// A text message, validated UTF-8 (OCPP-J's JSON arrays come as these).
    case text(String)
    /// A binary message.
    case binary([UInt8])
}

/// Reassembles fragmented data messages from decoded frames, passing control frames (which may
/// come between fragments) straight through. Text is validated as UTF-8 fragment by fragment.
public struct WebSocketMessageAssembler: Sendable {
    /// What one frame produced.
    public enum Output: Equatable, Sendable {
        /// A data frame that completed a message.
        case message(WebSocketMessage)
        /// A close, ping or pong frame, for the connection to act on.
        case control(WebSocketFrame)
    }

    /// Largest message, all fragments together.
    public let maxMessageBytes: Int
    private var partial: [UInt8] = []
    private var partialOpcode: WebSocketOpcode?
    private var utf8 = UTF8Validator()

    public init(maxMessageBytes: Int = WebSocketLimits.defaultMaxMessageBytes) {
        self.maxMessageBytes = maxMessageBytes
    }

    /// True while a fragmented message is open.
    public var isInsideMessage: Bool { partialOpcode != nil }

    /// Takes one frame from the decoder; nil when it was a fragment that did not finish its message.
    public mutating func receive(_ frame: WebSocketFrame) throws(WebSocketProtocolError) -> Output? {
        let opcode: WebSocketOpcode
        switch frame.opcode {
        case .close, .ping, .pong:
            return .control(frame)
        case .continuation:
            guard let open = partialOpcode else { throw .unexpectedContinuation }
            opcode = open
        case .text, .binary:
            guard partialOpcode == nil else { throw .dataFrameInsideFragmentedMessage }
            opcode = frame.opcode
            partialOpcode = opcode
            utf8 = UTF8Validator()
        }
        guard partial.count + frame.payload.count <= maxMessageBytes else { throw .messageTooLarge(limit: maxMessageBytes) }
        if opcode == .text {
            guard utf8.feed(frame.payload) else { throw .invalidUTF8 }
            if frame.fin && !utf8.isAtBoundary { throw .invalidUTF8 }
        }
        guard frame.fin else {
            partial.append(contentsOf: frame.payload)
            return nil
        }
        let bytes: [UInt8]
        if partial.isEmpty {
            bytes = frame.payload
        } else {
            partial.append(contentsOf: frame.payload)
            bytes = partial
            partial = []
        }
        partialOpcode = nil
        return .message(opcode == .text ? .text(String(decoding: bytes, as: UTF8.self)) : .binary(bytes))
    }
}
