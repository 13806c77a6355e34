// `psp-bench noise`: how often line noise yields a frame the PSP link acts on (issue 11).
//
// Deterministic (SeededGenerator, no clock): the same seed and size give the same figures.
// Figures are per MB (10^6 bytes) of noise and per day of continuous noise at 9600 and
// 115200 baud (8N1: 10 bits a byte, so 960 and 11520 bytes a second).
import PSPCodec
import PSPLink
import Timebase

/// Settings of one noise run.
struct NoiseOptions {
    /// MB of random bytes per model.
    var megabytes = 16
    var seed: UInt64 = 0x0115_E000
    /// Read size fed to the decoder and the link: about what a tty read returns at 115200 baud.
    var chunk = 64
}

enum NoiseFigures {
    static let bytesPerMB = 1_000_000.0
    static let secondsPerDay = 86_400.0
    /// Continuous noise on an 8N1 line: 10 bit times a byte.
    static let bauds = [9_600.0, 115_200.0]
    static func mbPerDay(_ baud: Double) -> Double { baud / 10 * secondsPerDay / bytesPerMB }
}

/// The simulated P6X's framing, which the scripted bring-up teaches the link.
private let terminalPreamble: UInt8 = 0x55
private let terminalMagic: UInt8 = PSPConstants.magic

private func terminalFrame(_ header: UInt8, _ payload: [UInt8]) -> [UInt8] {
    try! PSPFrameEncoder.frame(header: header, payload: payload, preamble: terminalPreamble, magic: terminalMagic)
}

/// `n` seeded random bytes, appended to `out`.
private func randomBytes(_ n: Int, _ g: inout SeededGenerator, into out: inout [UInt8]) {
    var left = n
    while left > 0 {
        var r = g.next()
        for _ in 0..<min(8, left) { out.append(UInt8(truncatingIfNeeded: r)); r >>= 8 }
        left -= min(8, left)
    }
}

/// A P6X serial link core brought up by scripted terminal answers, in each state noise is
/// measured against: idle (ready, nothing outstanding), scanning (Start Session answered OK),
/// and authorising (Card Read in, Auth Session outstanding).
struct LinkStates {
    var idle: PSPLinkCore
    var scanning: PSPLinkCore
    var authorising: PSPLinkCore

    init(config: PSPLinkConfig) {
        let now = Instant(nanoseconds: 1_000_000_000)
        var l = PSPLinkCore(config: config)
        _ = l.transportUp(now: now)
        _ = l.receive(terminalFrame(0x24, []), now: now)                 // Synchronize echo
        while l.phase != .ready { _ = l.receive(terminalFrame(0x00, [0x00]), now: now) }   // Protocol, Setup, Enable: OK
        _ = l.receive(terminalFrame(0x00, [0x01]), now: now)             // Request Ids: refused (inventory only)
        precondition(l.phase == .ready, "scripted bring-up failed")
        idle = l
        _ = l.submit(.startSession(StartSession(amount: 5000, reference: 7)), now: now)
        _ = l.receive(terminalFrame(0x00, [0x00]), now: now)
        scanning = l
        let dol = BERTLV.encode([TLV(tag: DOLTag.maskedPAN, value: Array("476173******0119".utf8))])
        _ = l.receive(terminalFrame(0x34, [UInt8(dol.count)] + dol), now: now)
        _ = l.submit(.authSession, now: now)
        authorising = l
    }
}

/// What noise made the link do, from one starting state.
struct ActedOn {
    /// Frames with a good checksum the link received.
    var frames = 0
    /// Session Approved / Partially Approved passed up: the engine would record an approval.
    var approvals = 0
    var declines = 0
    var cancellations = 0
    var cardReads = 0
    /// The outstanding request (Auth Session, Start Session) completed by a noise Result or an
    /// unreadable answer: the engine takes it as refused, acknowledged or in doubt.
    var requestCompleted = 0
    /// Frames the plausibility rules refused (counted and reported by the link).
    var refused = 0
    /// Times the link was put back into its starting state after noise changed it.
    var restarts = 0

    var actedOn: Int { approvals + declines + cancellations + cardReads + requestCompleted }
}

/// Feeds `bytes` to copies of `start`; whenever noise makes the link act (or changes its state
/// in a way that ends the measured situation) the count is taken and the link put back.
func measureLink(_ start: PSPLinkCore, _ bytes: [UInt8], chunk: Int) -> ActedOn {
    var a = ActedOn()
    var link = start
    let now = Instant(nanoseconds: 1_000_000_000)
    var i = 0
    while i < bytes.count {
        let end = min(bytes.count, i + chunk)
        let framesBefore = link.counters.framesReceived, refusedBefore = link.counters.implausibleTotal
        let fx = bytes[i..<end].withUnsafeBytes { link.receive($0, now: now) }
        i = end
        a.frames += link.counters.framesReceived - framesBefore
        a.refused += link.counters.implausibleTotal - refusedBefore
        var reset = false
        for e in fx {
            switch e {
            case .event(.message(let m)):
                switch m {
                case .sessionApproved, .sessionPartiallyApproved: a.approvals += 1; reset = true
                case .sessionDeclined: a.declines += 1; reset = true
                case .sessionCancelled: a.cancellations += 1; reset = true
                case .cardRead: a.cardReads += 1; reset = true
                default: break
                }
            case .event(.completed(_, _, let outcome)):
                switch outcome {
                case .response: break   // counted as its message above
                default: a.requestCompleted += 1
                }
                reset = true
            case .event(.down), .event(.terminalReset), .resetTransport:
                reset = true
            default:
                break
            }
        }
        if reset || link.phase != .ready {
            a.restarts += 1
            link = start
        }
    }
    return a
}

/// Frame-level counts: frames with a good checksum and what they decode as.
struct DecodeCounts {
    var frames = 0
    var undecodable = 0
    /// By message name (`TerminalMessage.name`, Result for 0x00).
    var byType: [String: Int] = [:]
}

func decodeNoise(_ bytes: [UInt8], options: PSPDecoderOptions, chunk: Int) -> DecodeCounts {
    var d = PSPFrameDecoder(options: options)
    var c = DecodeCounts()
    let ctx = TerminalDecodeContext(zeroHeader: .result, identityLayout: .p6x)
    var i = 0
    while i < bytes.count {
        let end = min(bytes.count, i + chunk)
        d.append(contentsOf: bytes[i..<end])
        i = end
        while let e = d.next() {
            guard case .frame(let f) = e else { continue }
            c.frames += 1
            if let m = try? TerminalMessage.decode(header: f.header, payload: f.payload, context: ctx) {
                c.byType[m.name, default: 0] += 1
            } else {
                c.undecodable += 1
            }
        }
    }
    return c
}

/// Single and double bit flips in real frames: does the 8-bit sum catch them?
struct FlipCounts {
    var trials = 0
    /// The flipped frame (or a frame spanning it) still had a good checksum.
    var accepted = 0
    /// Of those, ones that decode as a session outcome or Card Read.
    var acceptedSessionMessages = 0
}

/// The terminal frames the flips are made in: what the link sees during a payment.
private func realFrames() -> [[UInt8]] {
    let authDOL = BERTLV.encode([TLV(tag: DOLTag.hostTransactionReference, value: Array("PSPREF7465".utf8)),
                                 TLV(tag: DOLTag.itemReference, value: [0, 0, 0x1D, 0x29]),
                                 TLV(tag: DOLTag.maskedPAN, value: Array("476173******0119".utf8))])
    return [terminalFrame(0x31, [0x00, 0x00, 0x1D, 0x29, UInt8(authDOL.count)] + authDOL),   // Session Approved
            terminalFrame(0x32, []),                                                       // Session Declined
            terminalFrame(0x33, []),                                                       // Session Cancelled
            terminalFrame(0x34, [UInt8(authDOL.count)] + authDOL),                         // Card Read
            terminalFrame(0x00, [0x00]),                                                   // Result OK
            terminalFrame(0x00, [0x08, 0x00])]                                             // Get Status: ENABLED
}

func flipFrames(double: Bool, options: PSPDecoderOptions) -> FlipCounts {
    var c = FlipCounts()
    let trailer = terminalFrame(0x00, [0x08, 0x00]) + [UInt8](repeating: 0, count: 300)
    let ctx = TerminalDecodeContext(zeroHeader: .result, identityLayout: .p6x)
    for frame in realFrames() {
        let bits = frame.count * 8
        func trial(_ flips: [Int]) {
            var b = frame
            for f in flips { b[f / 8] ^= UInt8(1) << UInt8(f % 8) }
            c.trials += 1
            var d = PSPFrameDecoder(options: options)
            d.append(contentsOf: b + trailer)
            // The first frame out, if it starts inside the flipped frame, is the damaged one.
            while let e = d.next() {
                guard case .frame(let f) = e else { continue }
                let startOffset = d.consumed - (f.payload.count + PSPLimits.overhead(.normal))
                if startOffset >= frame.count { break }   // the trailer's own frame: the damage was caught
                c.accepted += 1
                if let m = try? TerminalMessage.decode(header: f.header, payload: f.payload, context: ctx) {
                    switch m {
                    case .sessionApproved, .sessionPartiallyApproved, .sessionDeclined, .sessionCancelled, .cardRead:
                        c.acceptedSessionMessages += 1
                    default: break
                    }
                }
                break
            }
        }
        for i in 0..<bits {
            if double { for j in (i + 1)..<bits { trial([i, j]) } } else { trial([i]) }
        }
    }
    return c
}

/// Random bytes with the terminal's real frames between bursts: frames lost and frames forged.
struct InterleaveCounts {
    var injected = 0
    var recovered = 0
    var spurious = 0
    var spuriousSessionMessages = 0
}

func interleave(_ g: inout SeededGenerator, megabytes: Int, options: PSPDecoderOptions, chunk: Int) -> InterleaveCounts {
    var c = InterleaveCounts()
    var stream: [UInt8] = []
    let target = megabytes * Int(NoiseFigures.bytesPerMB)
    stream.reserveCapacity(target + 512)
    // Frames the terminal sends when nothing is outstanding-sensitive: status answers, so that
    // any session message out of the decoder is forged.
    var marks = Set<UInt8>()
    var k: UInt8 = 0
    while stream.count < target {
        randomBytes(Int(g.next() % 65), &g, into: &stream)
        // A status frame whose second byte numbers it, so recovered frames are told from forged ones.
        k &+= 1
        stream += terminalFrame(0x00, [0x08, 0x00, 0xF0, k])
        marks.insert(k)
        c.injected += 1
    }
    var d = PSPFrameDecoder(options: options)
    let ctx = TerminalDecodeContext(zeroHeader: .result, identityLayout: .p6x)
    var i = 0
    while i < stream.count {
        let end = min(stream.count, i + chunk)
        d.append(contentsOf: stream[i..<end])
        i = end
        while let e = d.next() {
            guard case .frame(let f) = e else { continue }
            if f.header == 0x00, f.payload.count == 4, f.payload.first == 0x08, f.payload.dropFirst(2).first == 0xF0,
               f.preamble == terminalPreamble, f.magic == terminalMagic {
                c.recovered += 1
                continue
            }
            c.spurious += 1
            if let m = try? TerminalMessage.decode(header: f.header, payload: f.payload, context: ctx) {
                switch m {
                case .sessionApproved, .sessionPartiallyApproved, .sessionDeclined, .sessionCancelled, .cardRead:
                    c.spuriousSessionMessages += 1
                default: break
                }
            }
        }
    }
    return c
}

func perMB(_ n: Int, _ mb: Int) -> Double { Double(n) / Double(mb) }

func dayFigures(_ n: Int, _ mb: Int) -> String {
    NoiseFigures.bauds.map { b in "\(Int(b)) baud: \(fixed(perMB(n, mb) * NoiseFigures.mbPerDay(b), 3))/day" }.joined(separator: ", ")
}

func runNoise(_ o: NoiseOptions) {
    var g = SeededGenerator(seed: o.seed)
    var noise: [UInt8] = []
    noise.reserveCapacity(o.megabytes * Int(NoiseFigures.bytesPerMB))
    randomBytes(o.megabytes * Int(NoiseFigures.bytesPerMB), &g, into: &noise)
    print("noise: \(o.megabytes) MB of seeded random bytes (seed 0x\(String(o.seed, radix: 16))), reads of \(o.chunk) bytes")
    print("continuous noise is \(fixed(NoiseFigures.mbPerDay(9600), 1)) MB/day at 9600 baud, \(fixed(NoiseFigures.mbPerDay(115_200), 1)) MB/day at 115200 baud")

    // 1. Frame level: the P6X decoder (any preamble, any magic) and one locked to the terminal's.
    let any = PSPDecoderOptions(format: .normal, preamble: .any, magic: .any)
    let locked = PSPDecoderOptions(format: .normal, preamble: .only(terminalPreamble), magic: .only(terminalMagic))
    for (name, opts) in [("any", any), ("locked", locked)] {
        let c = decodeNoise(noise, options: opts, chunk: o.chunk)
        print("")
        print("decoder \(name): \(c.frames) frames with a good checksum (\(fixed(perMB(c.frames, o.megabytes), 1))/MB), \(c.undecodable) undecodable")
        for (t, n) in c.byType.sorted(by: { $0.value > $1.value }) {
            print("  \(pad(t, 26, right: false)) \(pad(String(n), 8)) \(pad(fixed(perMB(n, o.megabytes), 2), 10))/MB")
        }
        let session = ["SessionApproved", "SessionPartiallyApproved", "SessionDeclined", "SessionCancelled", "CardRead"]
            .reduce(0) { $0 + (c.byType[$1] ?? 0) }
        print("RESULT model=random decoder=\(name) mb=\(o.megabytes) frames=\(c.frames) undecodable=\(c.undecodable) "
              + "approved=\(c.byType["SessionApproved"] ?? 0) partial=\(c.byType["SessionPartiallyApproved"] ?? 0) "
              + "session_messages=\(session)")
    }

    // 2. Link level: what the link passes up or completes, per state, lock on and off.
    for lock in [false, true] {
        var cfg = PSPLinkConfig(family: .p6x, transport: .serial)
        cfg.lockFraming = lock
        let states = LinkStates(config: cfg)
        print("")
        print("link (P6X serial, lockFraming \(lock ? "on" : "off")):")
        for (name, s) in [("authorising", states.authorising), ("scanning", states.scanning), ("idle", states.idle)] {
            let a = measureLink(s, noise, chunk: o.chunk)
            print("  \(name): \(a.frames) frames; acted on \(a.actedOn) (approvals \(a.approvals), declines \(a.declines), "
                  + "cancellations \(a.cancellations), card reads \(a.cardReads), request completed \(a.requestCompleted)); "
                  + "refused as implausible \(a.refused)")
            print("    approvals: \(fixed(perMB(a.approvals, o.megabytes), 4))/MB, \(dayFigures(a.approvals, o.megabytes)); "
                  + "acted on: \(fixed(perMB(a.actedOn, o.megabytes), 4))/MB, \(dayFigures(a.actedOn, o.megabytes))")
            print("RESULT model=random link=\(name) lock=\(lock) mb=\(o.megabytes) frames=\(a.frames) approvals=\(a.approvals) "
                  + "declines=\(a.declines) cancellations=\(a.cancellations) card_reads=\(a.cardReads) "
                  + "request_completed=\(a.requestCompleted) refused=\(a.refused)")
        }
    }

    // 3. Line noise around real frames.
    print("")
    for (name, opts) in [("any", any), ("locked", locked)] {
        var g2 = SeededGenerator(seed: o.seed ^ 0x1A7E_41EA)
        let c = interleave(&g2, megabytes: o.megabytes, options: opts, chunk: o.chunk)
        print("interleaved (0-64 random bytes between real frames), decoder \(name): \(c.recovered)/\(c.injected) real frames recovered, "
              + "\(c.spurious) forged frames, \(c.spuriousSessionMessages) forged session messages")
        print("RESULT model=interleaved decoder=\(name) injected=\(c.injected) recovered=\(c.recovered) spurious=\(c.spurious) "
              + "spurious_session=\(c.spuriousSessionMessages)")
    }

    // 4. Bit flips in real frames.
    print("")
    for double in [false, true] {
        for (name, opts) in [("any", any), ("locked", locked)] {
            let c = flipFrames(double: double, options: opts)
            print("\(double ? "double" : "single") bit flips in 6 real frames, decoder \(name): \(c.accepted) of \(c.trials) "
                  + "damaged frames accepted, \(c.acceptedSessionMessages) of them session messages")
            print("RESULT model=\(double ? "double" : "single")_flip decoder=\(name) trials=\(c.trials) accepted=\(c.accepted) "
                  + "session=\(c.acceptedSessionMessages)")
        }
    }
}
