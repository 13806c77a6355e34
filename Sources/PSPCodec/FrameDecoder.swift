/// Which first bytes the decoder takes as a frame start.
public enum BytePolicy: Equatable, Sendable {
    /// Any value (P6X: preamble and magic are configurable on the terminal).
    case any
    /// Exactly this value (Apollo: preamble 0xAA, magic 0x3C).
    case only(UInt8)

    @inlinable func accepts(_ b: UInt8) -> Bool {
        switch self {
        case .any: return true
        case .only(let v): return v == b
        }
    }
}

/// Why bytes were thrown away while hunting for a frame. Each resynchronisation
/// episode (from the first discarded byte to the next good frame or the end of the
/// buffered data) is reported once, under the reason its first byte was dropped.
public enum MalformedKind: String, CaseIterable, Sendable {
    /// A byte that cannot start a frame under the preamble policy (line noise between frames).
    case noPreamble
    /// A length field below 2 (magic + header).
    case lengthTooShort
    /// A length field above the limit for the protocol version and format.
    case lengthTooLong
    /// A magic byte the magic policy rejects.
    case badMagic
    /// The checksum byte does not match the sum of the bytes before it.
    case badChecksum
    /// A partial frame left when the line went quiet (inter-byte timeout) or the input ended.
    case truncated
}

/// One output of the frame decoder.
public enum PSPDecodeEvent: Equatable, Sendable {
    /// A frame whose checksum verified.
    case frame(PSPFrame)
    /// `skipped` bytes discarded for `kind` before the decoder found its footing again.
    case malformed(MalformedKind, skipped: Int)
}

/// Counts of malformed-frame episodes by kind, plus totals.
public struct MalformedCounters: Equatable, Sendable {
    public private(set) var byKind: [Int] = Array(repeating: 0, count: MalformedKind.allCases.count)
    public private(set) var bytesDiscarded: Int = 0
    public private(set) var frames: Int = 0

    public init() {}

    public subscript(kind: MalformedKind) -> Int {
        byKind[MalformedKind.allCases.firstIndex(of: kind)!]
    }
    public var malformedTotal: Int { byKind.reduce(0, +) }

    mutating func count(_ kind: MalformedKind, skipped: Int) {
        byKind[MalformedKind.allCases.firstIndex(of: kind)!] += 1
        bytesDiscarded += skipped
    }
    mutating func countFrame() { frames += 1 }
}

/// Decoder settings: what a plausible frame looks like on this link.
public struct PSPDecoderOptions: Equatable, Sendable {
    public var format: PSPFrameFormat
    public var preamble: BytePolicy
    public var magic: BytePolicy
    /// Largest accepted length field (magic + header + payload).
    public var maxLength: Int

    public init(format: PSPFrameFormat = .normal, preamble: BytePolicy = .any, magic: BytePolicy = .any,
                maxLength: Int? = nil) {
        self.format = format
        self.preamble = preamble
        self.magic = magic
        self.maxLength = maxLength ?? (format == .normal ? PSPLimits.maxNormalLength : PSPLimits.maxExtendedLength)
    }

    /// Accept everything a terminal of either family may send (technicians' decoding of captures).
    public static func lenient(format: PSPFrameFormat = .normal) -> PSPDecoderOptions {
        PSPDecoderOptions(format: format)
    }
}

/// Streaming PSP frame decoder. Pure: bytes in, frames and malformed-frame reports out.
///
/// Memory is bounded: unconsumed bytes never exceed one maximal frame plus the last
/// chunk appended. On any inconsistency the decoder drops exactly one byte and rescans,
/// so a good frame hidden behind a corrupt one is still found.
public struct PSPFrameDecoder: Sendable {
    public var options: PSPDecoderOptions {
        didSet { if options.format != oldValue.format { options.maxLength = PSPDecoderOptions(format: options.format).maxLength } }
    }
    public private(set) var counters = MalformedCounters()
    /// Bytes consumed (returned in frames or discarded) since creation: lets a caller map
    /// events back to offsets in its input.
    public private(set) var consumed = 0

    @usableFromInline var buffer: [UInt8] = []
    @usableFromInline var start = 0
    /// The resynchronisation episode in progress: its first reason and bytes dropped so far.
    var skipKind: MalformedKind? = nil
    var skipped = 0

    public init(options: PSPDecoderOptions = .lenient()) {
        self.options = options
        buffer.reserveCapacity(PSPLimits.maxNormalLength + 64)
    }

    /// Bytes held that have not been returned as a frame or discarded yet.
    public var bufferedCount: Int { buffer.count - start }

    /// Adds received bytes.
    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        compactIfUseful(adding: bytes.count)
        buffer.append(contentsOf: bytes)
    }

    public mutating func append<S: Sequence>(contentsOf bytes: S) where S.Element == UInt8 {
        compactIfUseful(adding: bytes.underestimatedCount)
        buffer.append(contentsOf: bytes)
    }

    mutating func compactIfUseful(adding n: Int) {
        if start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        } else if start > 0 && (start >= 4096 || buffer.count + n > buffer.capacity) {
            buffer.removeFirst(start)
            start = 0
        }
    }

    /// The next event, or nil when more bytes are needed.
    public mutating func next() -> PSPDecodeEvent? { next(endingEpisodeWhenWaiting: true) }

    mutating func next(endingEpisodeWhenWaiting: Bool) -> PSPDecodeEvent? {
        let prefix = options.format.prefixSize
        func waiting() -> PSPDecodeEvent? { endingEpisodeWhenWaiting ? endSkipEpisode() : nil }
        while true {
            let available = buffer.count - start
            guard available > 0 else { return waiting() }
            let first = buffer[start]
            guard options.preamble.accepts(first) else { drop(.noPreamble); continue }
            guard available >= prefix else { return waiting() }
            let length: Int
            if options.format == .normal {
                length = Int(buffer[start + 1])
            } else {
                var l = 0
                for i in 1...4 { l = l << 8 | Int(buffer[start + i]) }
                length = l
            }
            if length < PSPLimits.minLength { drop(.lengthTooShort); continue }
            if length > options.maxLength { drop(.lengthTooLong); continue }
            if available > prefix, !options.magic.accepts(buffer[start + prefix]) { drop(.badMagic); continue }
            let total = prefix + length + 1
            guard available >= total else { return waiting() }
            let end = start + total - 1
            let sum = buffer.withUnsafeBufferPointer { p -> UInt8 in
                var s: UInt8 = 0
                for i in start..<end { s &+= p[i] }
                return s
            }
            if sum != buffer[end] { drop(.badChecksum); continue }
            // A good frame ends the current episode: report the episode first, the frame on the next call.
            if let reported = endSkipEpisode() { return reported }
            let frame = PSPFrame(preamble: first, magic: buffer[start + prefix], header: buffer[start + prefix + 1],
                                 payload: buffer[(start + prefix + 2)..<end], format: options.format)
            start += total
            consumed += total
            counters.countFrame()
            return .frame(frame)
        }
    }

    /// The line went quiet (or the capture ended) with a partial frame buffered: nothing will
    /// complete it, so drop byte by byte, returning any frame found behind the partial one,
    /// and report the rest as truncated. Returns every event produced.
    public mutating func flushStale() -> [PSPDecodeEvent] {
        var out: [PSPDecodeEvent] = []
        // One episode for the whole stale tail, unless a frame turns up inside it.
        while true {
            while let e = next(endingEpisodeWhenWaiting: false) { out.append(e) }
            guard bufferedCount > 0 else { break }
            drop(.truncated)
        }
        if let e = endSkipEpisode() { out.append(e) }
        return out
    }

    /// Forgets everything buffered (link reset) without counting it as malformed.
    public mutating func reset() {
        buffer.removeAll(keepingCapacity: true)
        start = 0
        skipKind = nil
        skipped = 0
    }

    mutating func drop(_ kind: MalformedKind) {
        if skipKind == nil { skipKind = kind }
        skipped += 1
        start += 1
        consumed += 1
    }

    mutating func endSkipEpisode() -> PSPDecodeEvent? {
        guard let kind = skipKind else { return nil }
        let n = skipped
        skipKind = nil
        skipped = 0
        counters.count(kind, skipped: n)
        return .malformed(kind, skipped: n)
    }
}
