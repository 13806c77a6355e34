import Timebase

/// The line's timing as the RTU framing needs it: how long a character takes and so how long a
/// silence ends a frame.
public struct ModbusTiming: Equatable, Sendable {
    /// Bits per second.
    public let baud: Int
    /// Bits per character on the wire: start, 8 data, parity or second stop bit, stop. The
    /// serial line guide asks for 11 (8E1, 8O1 or 8N2); 8N1, which many meters offer, is 10.
    public let bitsPerCharacter: Int

    /// Above this rate the spec fixes the silences instead of scaling them with the baud rate,
    /// since a UART's interrupt load would make 3.5 characters unenforceable.
    public static let fixedTimingAboveBaud = 19200
    /// The fixed end-of-frame silence above 19200 baud (serial line guide, 2.5.1.1).
    public static let fixedFrameSilence: Duration = .microseconds(1750)

    /// The timing of `baud` with `bitsPerCharacter` (10 or 11).
    public init(baud: Int, bitsPerCharacter: Int) {
        self.baud = max(baud, 1)
        self.bitsPerCharacter = max(bitsPerCharacter, 1)
    }

    /// One character's time on the wire.
    public var characterTime: Duration {
        .nanoseconds(Int64(bitsPerCharacter) * 1_000_000_000 / Int64(baud))
    }

    /// t3.5: the silence that ends a frame and must precede the next one (3.5 character times,
    /// 1.75 ms above 19200 baud).
    public var frameSilence: Duration {
        if baud > Self.fixedTimingAboveBaud { return Self.fixedFrameSilence }
        return .nanoseconds(Int64(bitsPerCharacter) * 3_500_000_000 / Int64(baud))
    }

    /// How long `bytes` characters take to send.
    public func transmissionTime(bytes: Int) -> Duration {
        .nanoseconds(Int64(bitsPerCharacter) * Int64(max(bytes, 0)) * 1_000_000_000 / Int64(baud))
    }
}

/// Counters of what the framer threw away.
public struct FramerCounters: Equatable, Sendable {
    /// Frames given out.
    public var frames = 0
    /// Runs of bytes longer than `ModbusLimits.maxFrameBytes`, dropped whole.
    public var oversized = 0
    /// Bytes dropped with them.
    public var bytesDiscarded = 0

    public init() {}
}

/// Cuts the received byte stream into frames by silence (Modbus over serial line, 2.5.1.1): a
/// frame ends once `silence` (t3.5 by default) passes without a byte. Pure: bytes come in with
/// the instant they arrived and the caller asks again at `nextDeadline`.
///
/// The 1.5-character rule inside a frame (a gap longer than t1.5 makes the frame incomplete) is
/// not applied: bytes arrive here in chunks read from a tty, whose arrival instants are the read's
/// and not the wire's, so a gap that short cannot be measured. A frame broken that way fails its
/// CRC instead. For the same reason a USB adapter's latency timer can split one frame into reads
/// further apart than t3.5 at low rates; `silence` may then be set longer than t3.5.
///
/// Memory is bounded: at most `ModbusLimits.maxFrameBytes` are held. A longer run is garbage (no
/// Modbus frame is longer); it is counted and dropped until the line is silent again.
public struct ModbusFramer: Sendable {
    /// The silence that ends a frame.
    public let silence: Duration
    /// What was thrown away, and the frames given out.
    public private(set) var counters = FramerCounters()

    var pending: [UInt8] = []
    var lastByteAt: Instant?
    /// Inside an oversized run: bytes are dropped until the line is silent.
    var discarding = false

    /// A framer that ends frames after `silence` (use `ModbusTiming.frameSilence`).
    public init(silence: Duration) {
        self.silence = silence
        pending.reserveCapacity(ModbusLimits.maxFrameBytes)
    }

    /// Takes bytes that arrived at `now`; returns the frame they ended, if the line had been
    /// silent long enough before them to end one.
    public mutating func receive(_ bytes: some Collection<UInt8>, at now: Instant) -> [UInt8]? {
        let ended = tick(now: now)
        guard !bytes.isEmpty else { return ended }
        lastByteAt = now
        if discarding {
            counters.bytesDiscarded += bytes.count
            return ended
        }
        if pending.count + bytes.count > ModbusLimits.maxFrameBytes {
            counters.oversized += 1
            counters.bytesDiscarded += pending.count + bytes.count
            pending.removeAll(keepingCapacity: true)
            discarding = true
            return ended
        }
        pending.append(contentsOf: bytes)
        return ended
    }

    /// The frame in progress, if the line has been silent since its last byte for `silence`.
    public mutating func tick(now: Instant) -> [UInt8]? {
        guard let last = lastByteAt, now - last >= silence else { return nil }
        lastByteAt = nil
        discarding = false
        guard !pending.isEmpty else { return nil }
        let frame = pending
        pending.removeAll(keepingCapacity: true)
        counters.frames += 1
        return frame
    }

    /// When the frame in progress (or the garbage being dropped) ends if nothing more arrives.
    public var nextDeadline: Instant? { lastByteAt.map { $0 + silence } }

    /// Whether bytes have arrived that no frame has been given out for yet (the bus is busy).
    public var isReceiving: Bool { lastByteAt != nil }

    /// Forgets the frame in progress (the port was closed).
    public mutating func reset() {
        pending.removeAll(keepingCapacity: true)
        lastByteAt = nil
        discarding = false
    }
}
