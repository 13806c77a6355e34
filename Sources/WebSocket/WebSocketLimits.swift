/// Every bound the WebSocket client and server keep, by name. The defaults are what the station uses;
/// the frame and message limits and the two timeouts are configurable (`WebSocketConfiguration`).
public enum WebSocketLimits {
    /// The server's handshake response, status line to the empty line: 8 KiB, nginx's default
    /// for a header buffer. A CSMS answer is a few hundred bytes.
    public static let maxResponseHeaderBytes = 8 * 1024
    /// Header fields in the server's handshake response.
    public static let maxResponseHeaderFields = 64
    /// A client's Upgrade request, request line to the empty line (the server role): 8 KiB, as
    /// for a response. An OCPP station's request is a few hundred bytes.
    public static let maxRequestHeaderBytes = 8 * 1024
    /// Header fields in a client's Upgrade request.
    public static let maxRequestHeaderFields = 64
    /// The random nonce behind `Sec-WebSocket-Key` (RFC 6455 section 4.1: 16 bytes).
    public static let nonceBytes = 16
    /// A control frame's payload (RFC 6455 section 5.5).
    public static let maxControlPayload = 125
    /// A close frame's reason: the control payload less the 2-byte code.
    public static let maxCloseReasonBytes = 123
    /// Default largest payload of one received frame. OCPP-J messages are JSON arrays of a few
    /// KiB; the largest (a firmware or certificate request) stays well under this.
    public static let defaultMaxFramePayload = 1024 * 1024
    /// Default largest reassembled message (all fragments together).
    public static let defaultMaxMessageBytes = 1024 * 1024
    /// Default wait for the pong answering a keep-alive ping before the connection is failed.
    public static let defaultPongTimeout = Duration.seconds(30)
    /// Default wait for the peer's close frame after ours (RFC 6455 section 7.1.1 leaves it to us).
    public static let defaultCloseTimeout = Duration.seconds(5)
    /// Default bound on the opening handshake, connect to accepted response. The parser has no
    /// clock: the shell arms this timer and gives up (and backs off) when it fires, so that a
    /// server that accepts TCP and never answers cannot hold the uplink.
    public static let defaultHandshakeTimeout = Duration.seconds(30)
    /// The longest frame header: 2 bytes, an 8-byte length, a 4-byte mask key.
    public static let maxFrameHeaderBytes = 14
}
