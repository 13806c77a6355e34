import PSPCodec

/// The frames the benchmarks decode and encode, built with the codec itself.
enum Fixture {
    /// The Apollo terminal's preamble, as the link's decoder expects it.
    static let terminalPreamble = PSPConstants.apolloPreamble
    /// Masked PAN (DFCA0B, 16 B) and brand ID (DFCA07, 2 B): 26 bytes of DOL data, which makes
    /// Session Approved exactly 36 bytes on the wire (2 prefix + magic + header + 31 + checksum).
    static let approvedDOL = [TLV(tag: DOLTag.maskedPAN, value: Array("476173******0119".utf8)),
                              TLV(tag: DOLTag.brandID, value: [0x00, 0x02])]
    static let decoderOptions = PSPDecoderOptions(format: .normal, preamble: .only(terminalPreamble),
                                                  magic: .only(PSPConstants.magic))

    /// Session Approved (0x31): session ID and the DOL above; 36 bytes.
    static func approvedFrame(sessionID: UInt32) -> [UInt8] {
        let payload = TerminalMessage.sessionApproved(sessionID: sessionID, dol: approvedDOL).encodePayload()
        return try! PSPFrameEncoder.frame(header: 0x31, payload: payload, preamble: terminalPreamble)
    }

    /// Get Status Response (0x00 read as status): state and transaction-running; 7 bytes.
    static func statusFrame(_ i: Int) -> [UInt8] {
        let states: [TerminalState] = [.online, .disabled, .enabled, .waitCard, .waitAuth]
        let payload = TerminalMessage.status(TerminalStatus(states[i % states.count], transactionRunning: i & 1 == 1))
            .encodePayload()
        return try! PSPFrameEncoder.frame(header: 0x00, payload: payload, preamble: terminalPreamble)
    }

    /// `count` frames back to back, each of exactly `size` bytes, in memory that is never freed
    /// (the benchmark reads it until exit). Distinct frames keep the decoded fields varying.
    static func stream(count: Int, size: Int, _ frame: (Int) -> [UInt8]) -> UnsafeRawBufferPointer {
        let out = UnsafeMutableRawBufferPointer.allocate(byteCount: count * size, alignment: 16)
        for i in 0..<count {
            let f = frame(i)
            precondition(f.count == size, "fixture frame is \(f.count) bytes, expected \(size)")
            UnsafeMutableRawBufferPointer(rebasing: out[(i * size)..<((i + 1) * size)]).copyBytes(from: f)
        }
        return UnsafeRawBufferPointer(out)
    }
}

/// A decoder reading a cyclic byte stream in fixed-size appends, as the link does from read(2).
///
/// The stream holds a whole number of chunks, so the cycle restarts on a frame boundary
/// and chunks split frames at varying offsets, like real reads. State persists across runs
/// (the warm-up pass grows the buffer once; measured runs must not allocate for it again).
struct StreamReader {
    var decoder = PSPFrameDecoder(options: Fixture.decoderOptions)
    let stream: UnsafeRawBufferPointer
    let chunk: Int
    var position = 0

    init(stream: UnsafeRawBufferPointer, chunk: Int) {
        precondition(chunk > 0 && stream.count % chunk == 0, "the stream must be a whole number of chunks")
        self.stream = stream; self.chunk = chunk
    }

    /// Appends chunks and drains every event until at least `n` frames came out; `onFrame`
    /// turns each frame into a checksum contribution. Inlined so `onFrame` is too: a closure
    /// call per frame would be measured as decoder cost.
    @inline(__always)
    mutating func decode(frames n: Int, _ onFrame: (PSPFrame) -> UInt64) -> (frames: Int, checksum: UInt64) {
        var done = 0, sum: UInt64 = 0
        while done < n {
            decoder.append(UnsafeRawBufferPointer(rebasing: stream[position..<(position + chunk)]))
            position += chunk
            if position == stream.count { position = 0 }
            while let event = decoder.next() {
                guard case .frame(let frame) = event else { fatalError("fixture stream produced \(event)") }
                done += 1
                sum &+= onFrame(frame)
            }
        }
        return (done, sum)
    }
}

/// Frames in one fixture stream: 4096 frames, so a 4 KiB chunk divides `4096 * size`.
private let framesPerStream = 4096
/// A realistic read size from a tty or socket.
private let readSize = 4096

/// Every benchmark, in table order.
func runBenchmarks(frames: Int, runs: Int, checksum: inout UInt64) -> [Measurement] {
    var results: [Measurement] = []
    let approved = Fixture.stream(count: framesPerStream, size: 36) { Fixture.approvedFrame(sessionID: 0x1000_0000 &+ UInt32($0)) }
    let status = Fixture.stream(count: framesPerStream, size: 7, Fixture.statusFrame)

    // 1. Frame level only: checksum verify, slice the payload. Touch a payload byte so the slice is used.
    var r1 = StreamReader(stream: approved, chunk: readSize)
    results.append(measure("decode_frame_36", "frame decode, 4 KiB appends", frameBytes: 36, frames: frames,
                           runs: runs, checksum: &checksum) { n in
        r1.decode(frames: n) { f in UInt64(f.header) &+ UInt64(f.payload[f.payload.startIndex + 3]) }
    })
    // Same, one frame per append (a serial read returning each frame as it completes).
    var r1b = StreamReader(stream: approved, chunk: 36)
    results.append(measure("decode_frame_36_per_read", "frame decode, 1 frame per append", frameBytes: 36,
                           frames: frames, runs: runs, checksum: &checksum) { n in
        r1b.decode(frames: n) { f in UInt64(f.header) &+ UInt64(f.payload[f.payload.startIndex + 3]) }
    })

    // 2. Frame + TerminalMessage.decode into the enum. The message owns a [TLV] and each TLV's
    // value array: those allocations are the decoded message's own.
    var r2 = StreamReader(stream: approved, chunk: readSize)
    results.append(measure("decode_message_36", "frame + message decode (Session Approved)", frameBytes: 36,
                           frames: frames, runs: runs, checksum: &checksum) { n in
        r2.decode(frames: n) { f in
            let message = try! TerminalMessage.decode(header: f.header, payload: f.payload)
            keep(message)
            guard case let .sessionApproved(id, dol) = message else { fatalError("not a Session Approved") }
            return UInt64(id) &+ UInt64(dol.count) &+ UInt64(dol[1].value[1])
        }
    })

    // The floor for the line above: the same message built by hand from the frame at the fixture's
    // fixed offsets, allocating only what the message owns (the [TLV] and its two value arrays).
    // decode_message_36 minus this is what message decoding costs beyond the decoded message.
    var r2f = StreamReader(stream: approved, chunk: readSize)
    results.append(measure("message_floor_36", "frame decode + hand-built message (its own arrays)",
                           frameBytes: 36, frames: frames, runs: runs, checksum: &checksum) { n in
        r2f.decode(frames: n) { f in
            let p = f.payload, s = p.startIndex
            var id: UInt32 = 0
            for b in p[s..<(s + 4)] { id = id << 8 | UInt32(b) }
            // Payload: ID(4) DOL-length(1) DFCA0B(3) len(1) PAN(16) DFCA07(3) len(1) brand(2).
            let message = TerminalMessage.sessionApproved(sessionID: id, dol: [
                TLV(tag: DOLTag.maskedPAN, value: Array(p[(s + 9)..<(s + 25)])),
                TLV(tag: DOLTag.brandID, value: Array(p[(s + 29)..<(s + 31)])),
            ])
            keep(message)
            guard case let .sessionApproved(id2, dol) = message else { fatalError("unreachable") }
            return UInt64(id2) &+ UInt64(dol.count) &+ UInt64(dol[1].value[1])
        }
    })

    // 3. Small frames: Get Status Response, 7 bytes.
    var r3 = StreamReader(stream: status, chunk: readSize)
    results.append(measure("decode_frame_7", "frame decode, 4 KiB appends", frameBytes: 7, frames: frames,
                           runs: runs, checksum: &checksum) { n in
        r3.decode(frames: n) { f in UInt64(f.header) &+ UInt64(f.payload[f.payload.startIndex]) }
    })
    var r3m = StreamReader(stream: status, chunk: readSize)
    let statusContext = TerminalDecodeContext(zeroHeader: .status)
    results.append(measure("decode_message_7", "frame + message decode (Get Status Response)", frameBytes: 7,
                           frames: frames, runs: runs, checksum: &checksum) { n in
        r3m.decode(frames: n) { f in
            guard case .status(let s) = try! TerminalMessage.decode(header: f.header, payload: f.payload,
                                                                    context: statusContext)
            else { fatalError("not a status") }
            return UInt64(s.rawState) &+ (s.transactionRunning ? 1 : 0)
        }
    })

    // 4. Encode into one reused output buffer, as the link does before each write(2).
    var out: [UInt8] = []
    out.reserveCapacity(256)
    results.append(measure("encode_commit_13", "HostCommand.encode + frame encode (Commit Session)",
                           frameBytes: 13, frames: frames, runs: runs, checksum: &checksum) { n in
        var sum: UInt64 = 0
        for i in 0..<n {
            let (header, payload) = HostCommand.commitSession(sessionID: UInt32(truncatingIfNeeded: i),
                                                              amount: 1234).encode()
            out.removeAll(keepingCapacity: true)
            try! PSPFrameEncoder.encode(header: header, payload: payload, preamble: PSPConstants.hostPreamble,
                                        format: .normal, maxLength: PSPLimits.maxNormalLength, into: &out)
            sum &+= UInt64(out[out.count - 1])
        }
        return (n, sum)
    })
    // Framing alone, from a payload already built: what encoding costs beyond the message's own bytes.
    let approvedPayload = TerminalMessage.sessionApproved(sessionID: 7, dol: Fixture.approvedDOL).encodePayload()
    results.append(measure("encode_frame_36", "frame encode of a built payload (Session Approved)",
                           frameBytes: 36, frames: frames, runs: runs, checksum: &checksum) { n in
        var sum: UInt64 = 0
        for i in 0..<n {
            out.removeAll(keepingCapacity: true)
            // The header varies so the loop body cannot be hoisted.
            try! PSPFrameEncoder.encode(header: UInt8(truncatingIfNeeded: i), payload: approvedPayload,
                                        preamble: Fixture.terminalPreamble, format: .normal,
                                        maxLength: PSPLimits.maxNormalLength, into: &out)
            sum &+= UInt64(out[out.count - 1])
        }
        precondition(out.count == 36)
        return (n, sum)
    })
    results.append(measure("encode_message_36", "encodePayload + frame encode (Session Approved)",
                           frameBytes: 36, frames: frames, runs: runs, checksum: &checksum) { n in
        var sum: UInt64 = 0
        for i in 0..<n {
            let payload = TerminalMessage.sessionApproved(sessionID: UInt32(truncatingIfNeeded: i),
                                                          dol: Fixture.approvedDOL).encodePayload()
            out.removeAll(keepingCapacity: true)
            try! PSPFrameEncoder.encode(header: 0x31, payload: payload, preamble: Fixture.terminalPreamble,
                                        format: .normal, maxLength: PSPLimits.maxNormalLength, into: &out)
            sum &+= UInt64(out[out.count - 1])
        }
        return (n, sum)
    })
    return results
}
