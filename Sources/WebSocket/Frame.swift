import WireFormat

/// A frame's opcode (RFC 6455 section 5.2). The other values are reserved and refused.
public enum WebSocketOpcode: UInt8, Sendable, CaseIterable {
    case continuation = 0x0
    case text = 0x1
    case binary = 0x2
    case close = 0x8
    case ping = 0x9
    case pong = 0xA

    /// Close, ping and pong: at most 125 bytes, never fragmented, allowed inside a fragmented message.
    public var isControl: Bool { rawValue & 0x8 != 0 }
}

/// One frame as the application sees it: unmasked payload, no reserved bits (no extension is
/// ever negotiated, so a frame with one set never gets this far).
public struct WebSocketFrame: Equatable, Sendable {
    public var fin: Bool
    public var opcode: WebSocketOpcode
    public var payload: [UInt8]

    public init(fin: Bool = true, opcode: WebSocketOpcode, payload: [UInt8]) {
        self.fin = fin
        self.opcode = opcode
        self.payload = payload
    }
}

/// Which end of the connection a codec or core plays. The roles differ in masking only (RFC 6455
/// section 5.1): a client masks every frame it sends and refuses masked frames; a server sends
/// unmasked frames and refuses unmasked ones.
public enum WebSocketRole: Sendable, Equatable {
    /// The station's end: the uplink's role, and the default everywhere.
    case client
    /// The CSMS's end: what cloud-sim plays.
    case server
}

/// Why the peer's frames broke the protocol. Each case maps to the close code we send before
/// failing the connection (`closeCode`).
public enum WebSocketProtocolError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A server frame with the mask bit set (RFC 6455 section 5.1: a server MUST NOT mask).
    case maskedFrame
    /// A client frame without the mask bit, seen by a server (RFC 6455 section 5.1: the server
    /// MUST close the connection on it): 1002.
    case unmaskedFrame
    /// RSV1–RSV3 set (the bits, shifted down to 0b0xyz) although no extension was negotiated.
    case reservedBits(UInt8)
    /// An opcode RFC 6455 reserves (3–7, 0xB–0xF).
    case unknownOpcode(UInt8)
    /// A control frame whose payload is longer than 125 bytes.
    case controlFrameTooLong(Int)
    /// A control frame without FIN.
    case fragmentedControlFrame
    /// A 64-bit length with the most significant bit set.
    case lengthTopBitSet
    /// A length in a longer form than needed (16 bits for < 126, 64 bits for < 65536). RFC 6455
    /// section 5.2 says the minimal form MUST be used; see `WebSocketFrameDecoder`.
    case nonMinimalLength(UInt64)
    /// A frame's payload over the configured limit (checked on the header, before buffering it).
    case frameTooLarge(length: UInt64, limit: Int)
    /// A message (all fragments) over the configured limit.
    case messageTooLarge(limit: Int)
    /// A text message or close reason that is not UTF-8 (overlong, surrogate, above U+10FFFF, cut off).
    case invalidUTF8
    /// A continuation frame with no fragmented message in progress.
    case unexpectedContinuation
    /// A text or binary frame while a fragmented message is still open.
    case dataFrameInsideFragmentedMessage
    /// A close frame with a 1-byte payload (a code needs 2).
    case closePayloadTooShort
    /// A close code that must not appear on the wire or is unassigned (1004–1006, 1015, < 1000 ...).
    case invalidCloseCode(UInt16)

    /// The close code to send when failing the connection for this error (RFC 6455 section 7.4.1).
    public var closeCode: WebSocketCloseCode {
        switch self {
        case .invalidUTF8: return .invalidPayload
        case .frameTooLarge, .messageTooLarge: return .messageTooBig
        default: return .protocolError
        }
    }

    public var description: String {
        switch self {
        case .maskedFrame: return "masked frame from the server"
        case .unmaskedFrame: return "unmasked frame from the client"
        case .reservedBits(let b): return "reserved bits \(b) set without an extension"
        case .unknownOpcode(let o): return "unknown opcode \(o)"
        case .controlFrameTooLong(let n): return "control frame of \(n) bytes (limit 125)"
        case .fragmentedControlFrame: return "fragmented control frame"
        case .lengthTopBitSet: return "64-bit length with the top bit set"
        case .nonMinimalLength(let n): return "length \(n) not in its minimal form"
        case .frameTooLarge(let n, let l): return "frame of \(n) bytes exceeds the limit of \(l)"
        case .messageTooLarge(let l): return "message exceeds the limit of \(l) bytes"
        case .invalidUTF8: return "invalid UTF-8 in a text message or close reason"
        case .unexpectedContinuation: return "continuation frame without a message to continue"
        case .dataFrameInsideFragmentedMessage: return "new data frame inside a fragmented message"
        case .closePayloadTooShort: return "close frame of 1 byte"
        case .invalidCloseCode(let c): return "invalid close code \(c)"
        }
    }
}

/// The frame encoder: a client's frames masked (`encode(_:maskKey:)`, RFC 6455 section 5.3), a
/// server's not (`encodeUnmasked`).
public enum WebSocketFrameEncoder {
    /// The frame's bytes, masked with `maskKey` (big-endian: 0x37FA213D is the key 37 fa 21 3d).
    /// The key comes from the caller so that tests are deterministic; the connection takes each one
    /// from its random source. A control frame must be final and at most 125 bytes: the core checks
    /// what the application gives it, so a violation here is a bug.
    public static func encode(_ frame: WebSocketFrame, maskKey: UInt32) -> [UInt8] {
        var w = header(frame, masked: true)
        let n = frame.payload.count
        w.u32be(maskKey)
        let key = [UInt8(maskKey >> 24), UInt8(truncatingIfNeeded: maskKey >> 16), UInt8(truncatingIfNeeded: maskKey >> 8), UInt8(truncatingIfNeeded: maskKey)]
        var out = w.bytes
        out.reserveCapacity(out.count + n)
        for (i, b) in frame.payload.enumerated() { out.append(b ^ key[i & 3]) }
        return out
    }

    /// The frame's bytes without a mask: what a server sends (RFC 6455 section 5.1). The same
    /// preconditions as `encode(_:maskKey:)`.
    public static func encodeUnmasked(_ frame: WebSocketFrame) -> [UInt8] {
        var w = header(frame, masked: false)
        w.append(frame.payload)
        return w.bytes
    }

    /// Opcode byte and minimal length, with the mask bit when `masked`.
    private static func header(_ frame: WebSocketFrame, masked: Bool) -> ByteWriter {
        precondition(!frame.opcode.isControl || (frame.fin && frame.payload.count <= WebSocketLimits.maxControlPayload),
                     "control frames are final and at most 125 bytes")
        var w = ByteWriter(capacity: frame.payload.count + WebSocketLimits.maxFrameHeaderBytes)
        w.u8((frame.fin ? 0x80 : 0) | frame.opcode.rawValue)
        let maskBit: UInt8 = masked ? 0x80 : 0
        let n = frame.payload.count
        switch n {
        case 0...125: w.u8(maskBit | UInt8(n))
        case 126...0xFFFF: w.u8(maskBit | 126); w.u16be(UInt16(n))
        default: w.u8(maskBit | 127); w.u64be(UInt64(n))
        }
        return w
    }
}

/// Streaming decoder of the peer's frames: bytes appended in any split, frames out. Pure. In the
/// client role (the default) it reads a server's unmasked frames; in the server role a client's
/// masked ones, unmasking them, and refuses an unmasked frame (`unmaskedFrame`).
///
/// Memory is bounded: a frame's length is checked against `maxFramePayload` as soon as its header
/// is complete, so at most one frame of that size plus the last chunk appended is held.
///
/// Non-minimal length encodings are refused (1002). RFC 6455 section 5.2 says the minimal form
/// MUST be used; every server library we know of (Python websockets, ws, Jetty, Tyrus, Netty)
/// encodes minimally, so the only senders of padded lengths are broken or probing peers, and
/// accepting them would only hide that. After the first error the decoder keeps returning it:
/// the connection is failed and nothing after the bad frame is trusted.
public struct WebSocketFrameDecoder: Sendable {
    /// Largest payload accepted in one frame.
    public let maxFramePayload: Int
    /// Our end: decides which mask bit the peer's frames must carry.
    public let role: WebSocketRole
    private var buffer: [UInt8] = []
    private var start = 0
    private var failure: WebSocketProtocolError?

    public init(maxFramePayload: Int = WebSocketLimits.defaultMaxFramePayload, role: WebSocketRole = .client) {
        precondition(maxFramePayload >= WebSocketLimits.maxControlPayload, "a frame limit below 125 would refuse legal control frames")
        self.maxFramePayload = maxFramePayload
        self.role = role
    }

    /// Bytes received but not yet returned as a frame.
    public var bufferedCount: Int { buffer.count - start }

    /// Adds received bytes.
    public mutating func append(contentsOf bytes: some Collection<UInt8>) {
        if start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        } else if start > 0 && (start >= 4096 || buffer.count + bytes.count > buffer.capacity) {
            buffer.removeFirst(start)
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// The next complete frame, nil when more bytes are needed, or the protocol error.
    public mutating func next() throws(WebSocketProtocolError) -> WebSocketFrame? {
        if let failure { throw failure }
        do {
            return try decodeOne()
        } catch {
            failure = error
            throw error
        }
    }

    private mutating func decodeOne() throws(WebSocketProtocolError) -> WebSocketFrame? {
        let available = buffer.count - start
        guard available >= 2 else { return nil }
        let b0 = buffer[start], b1 = buffer[start + 1]
        let fin = b0 & 0x80 != 0
        let rsv = (b0 >> 4) & 0x7
        guard rsv == 0 else { throw .reservedBits(rsv) }
        guard let opcode = WebSocketOpcode(rawValue: b0 & 0x0F) else { throw .unknownOpcode(b0 & 0x0F) }
        let masked = b1 & 0x80 != 0
        switch role {
        case .client: guard !masked else { throw .maskedFrame }
        case .server: guard masked else { throw .unmaskedFrame }
        }
        if opcode.isControl && !fin { throw .fragmentedControlFrame }
        var header = 2
        var length = UInt64(b1 & 0x7F)
        if length == 126 {
            guard available >= 4 else { return nil }
            length = UInt64(buffer[start + 2]) << 8 | UInt64(buffer[start + 3])
            header = 4
            guard length >= 126 else { throw .nonMinimalLength(length) }
        } else if length == 127 {
            guard available >= 10 else { return nil }
            length = 0
            for i in 2..<10 { length = length << 8 | UInt64(buffer[start + i]) }
            header = 10
            guard length >> 63 == 0 else { throw .lengthTopBitSet }
            guard length > 0xFFFF else { throw .nonMinimalLength(length) }
        }
        if opcode.isControl && length > UInt64(WebSocketLimits.maxControlPayload) { throw .controlFrameTooLong(Int(clamping: length)) }
        guard length <= UInt64(maxFramePayload) else { throw .frameTooLarge(length: length, limit: maxFramePayload) }
        let keyBytes = masked ? 4 : 0
        let total = header + keyBytes + Int(length)
        guard available >= total else { return nil }
        var payload = Array(buffer[(start + header + keyBytes)..<(start + total)])
        if masked {
            let k = start + header
            let key = (buffer[k], buffer[k + 1], buffer[k + 2], buffer[k + 3])
            for i in payload.indices {
                switch i & 3 {
                case 0: payload[i] ^= key.0
                case 1: payload[i] ^= key.1
                case 2: payload[i] ^= key.2
                default: payload[i] ^= key.3
                }
            }
        }
        start += total
        return WebSocketFrame(fin: fin, opcode: opcode, payload: payload)
    }
}
