import Testing
import PSPCodec
import Timebase
import Glibc

/// Seeds for property tests: fixed ones for CI, plus PSP_SEED to replay a failure.
enum Seeds {
    static func sample(_ n: Int) -> [UInt64] {
        if let s = ProcessEnvironment.seed { return [s] }
        return (0..<UInt64(n)).map { 0x5EED_0000 + $0 }
    }
}

enum ProcessEnvironment {
    static var seed: UInt64? {
        guard let v = getenvString("PSP_SEED") else { return nil }
        return UInt64(v)
    }
}

func getenvString(_ name: String) -> String? {
    guard let p = getenv(name) else { return nil }
    return String(cString: p)
}

extension SeededGenerator {
    mutating func byte() -> UInt8 { UInt8.random(in: 0...255, using: &self) }
    mutating func bytes(_ n: Int) -> [UInt8] { (0..<n).map { _ in byte() } }
    mutating func u32() -> UInt32 { UInt32.random(in: 0...UInt32.max, using: &self) }
    mutating func text(_ n: Int) -> String { String((0..<n).map { _ in "abcdefghijklmnopqrstuvwxyz0123456789 ./".randomElement(using: &self)! }) }
    mutating func dol(wide: Bool) -> [TLV] {
        let tags: [UInt32] = [DOLTag.maskedPAN, DOLTag.hostTransactionReference, DOLTag.itemReference, 0xDFF006, 0xDFAA70]
        return (0..<Int.random(in: 0...3, using: &self)).map { _ in
            TLV(tag: tags.randomElement(using: &self)!, value: bytes(Int.random(in: 0...(wide ? 200 : 40), using: &self)))
        }
    }
}

func randomHostCommand(_ g: inout SeededGenerator) -> HostCommand {
    switch Int.random(in: 0..<19, using: &g) {
    case 0: return .disable
    case 1: return .enable
    case 2: return .protocolSetup(version: 3, options: ProtocolOptions(rawValue: g.u32() & 0x1F))
    case 3: return .setup(sessionTimeoutSeconds: g.u32(), action: Bool.random(using: &g) ? .void : .commitFull)
    case 4: return .synchronize
    case 5: return .getStatus
    case 6: return .requestIDs
    case 7: return .uiRequest((0..<Int.random(in: 1...3, using: &g)).map { _ in UIField(g.text(5), g.text(8)) })
    case 8: return .listSessions(offset: g.byte())
    case 9: return .voidSession(sessionID: g.u32())
    case 10:
        var s = StartSession(amount: g.u32(), reference: g.u32(), dolTags: Bool.random(using: &g) ? DOLTag.defaultCardRead : [])
        if Bool.random(using: &g) { s.paymentMethods = g.byte(); s.logo = g.text(4); s.hideAmount = Bool.random(using: &g); s.qrURL = g.text(20) }
        return .startSession(s)
    case 11: return .commitSession(sessionID: g.u32(), amount: g.u32())
    case 12: return .authSession
    case 13: return .cancelSession
    case 14: return .readCard(ReadCard(reference: g.u32(), dolTags: [DOLTag.maskedPAN]))
    case 15: return .updateSession(sessionID: g.u32(), total: g.u32())
    case 16: return .getReceipt(sessionID: g.u32())
    case 17: return .getConnectionInfo
    default: return .control(0)
    }
}

func randomTerminalMessage(_ g: inout SeededGenerator, wide: Bool) -> TerminalMessage {
    switch Int.random(in: 0..<14, using: &g) {
    case 0: return .result(PSPResult(ok: Bool.random(using: &g), reason: Bool.random(using: &g) ? UInt8.random(in: 2...0x11, using: &g) : nil))
    case 1: return .synchronize
    case 2: return .identity(TerminalIdentity(layout: .apollo, serialNumber: g.text(10), model: g.text(5), firmware: g.text(6), applications: [g.text(4)]))
    case 3: return .uiEvent(buttonID: g.text(6))
    case 4: return .sessionList(total: 2, sessionIDs: [g.u32(), g.u32()])
    case 5: return .sessionApproved(sessionID: g.u32(), dol: g.dol(wide: wide))
    case 6: return .sessionDeclined(reason: g.byte(), dol: g.dol(wide: wide))
    case 7: return .sessionCancelled
    case 8: return .cardRead(dol: g.dol(wide: wide))
    case 9: return .sessionPartiallyApproved(sessionID: g.u32(), amount: g.u32(), dol: g.dol(wide: wide))
    case 10: return .transactionEvent(UInt8.random(in: 0...3, using: &g))
    case 11: return .updateSessionResult(UpdateSessionResult(outcome: 2, sessionID: g.u32(), authorisedTotal: g.u32(), delta: g.u32(), declineReason: g.byte()))
    case 12:
        // No digits: a generated run of them could be a Luhn-valid number the filter masks.
        let text = String((0..<Int.random(in: 1...60, using: &g)).map { _ in "abcdefghij=\n".randomElement(using: &g)! })
        return .connectionInfo(ConnectionInfo(reading: .text(text)))
    default: return .other(header: 0x21, payload: g.bytes(Int.random(in: 0...20, using: &g)))
    }
}

@Suite struct RoundTrips {
    @Test(arguments: Seeds.sample(20))
    func hostCommandsRoundTripThroughFrames(seed: UInt64) throws {
        var g = SeededGenerator(seed: seed)
        var stream: [UInt8] = []
        var sent: [HostCommand] = []
        for _ in 0..<200 {
            let c = randomHostCommand(&g)
            let (h, p) = c.encode()
            try PSPFrameEncoder.encode(header: h, payload: p, preamble: 0xCC, format: .normal, maxLength: 255, into: &stream)
            sent.append(c)
        }
        let (frames, bad, _) = decodeAll(stream)
        #expect(bad.isEmpty, "seed \(seed)")
        let back = try frames.map { try HostCommand.decode(header: $0.header, payload: $0.payload) }
        #expect(back == sent, "seed \(seed)")
    }

    @Test(arguments: Seeds.sample(20))
    func terminalMessagesRoundTripInBothFormats(seed: UInt64) throws {
        var g = SeededGenerator(seed: seed)
        for format in [PSPFrameFormat.normal, .extended] {
            let wide = format == .extended
            var stream: [UInt8] = []
            var sent: [TerminalMessage] = []
            for _ in 0..<200 {
                let m = randomTerminalMessage(&g, wide: wide)
                let p = m.encodePayload(TerminalEncodeOptions(wideDOLLength: wide))
                guard p.count + 2 <= (wide ? PSPLimits.maxExtendedLength : 255) else { continue }
                try PSPFrameEncoder.encode(header: m.header, payload: p, preamble: 0xAA, format: format,
                                           maxLength: PSPLimits.maxExtendedLength, into: &stream)
                sent.append(m)
            }
            let (frames, bad, _) = decodeAll(stream, PSPDecoderOptions(format: format, preamble: .only(0xAA), magic: .only(0x3C)))
            #expect(bad.isEmpty, "seed \(seed)")
            let back = try frames.map { try TerminalMessage.decode(header: $0.header, payload: $0.payload, context: .init(wideDOLLength: wide)) }
            #expect(back == sent, "seed \(seed) format \(format)")
        }
    }
}

@Suite struct HostileInput {
    @Test(arguments: Seeds.sample(30))
    func randomBytesNeverCrashAndStayBounded(seed: UInt64) {
        var g = SeededGenerator(seed: seed)
        for format in [PSPFrameFormat.normal, .extended] {
            var d = PSPFrameDecoder(options: .lenient(format: format))
            var fed = 0, framed = 0
            for _ in 0..<300 {
                let chunk = g.bytes(Int.random(in: 0...700, using: &g))
                fed += chunk.count
                d.append(contentsOf: chunk)
                while let e = d.next() { if case .frame(let f) = e { framed += f.length + format.prefixSize + 1 } }
                #expect(d.bufferedCount <= PSPLimits.maxExtendedLength + 16, "seed \(seed)")
            }
            for e in d.flushStale() { if case .frame(let f) = e { framed += f.length + format.prefixSize + 1 } }
            #expect(d.bufferedCount == 0)
            // Every byte is accounted for: in a frame or discarded and counted.
            #expect(framed + d.counters.bytesDiscarded == fed, "seed \(seed)")
        }
    }

    @Test(arguments: Seeds.sample(30))
    func framesBetweenGarbageAreAllRecovered(seed: UInt64) throws {
        var g = SeededGenerator(seed: seed)
        var stream: [UInt8] = []
        var sent: [TerminalMessage] = []
        for _ in 0..<100 {
            // Line noise that cannot start an Apollo frame (no 0xAA), then a frame.
            stream += g.bytes(Int.random(in: 0...30, using: &g)).map { $0 == 0xAA ? 0x55 : $0 }
            let m = randomTerminalMessage(&g, wide: false)
            stream += try PSPFrameEncoder.frame(header: m.header, payload: m.encodePayload(), preamble: 0xAA)
            sent.append(m)
        }
        let (frames, _, d) = decodeAll(stream, PSPDecoderOptions(preamble: .only(0xAA), magic: .only(0x3C)))
        let back = try frames.map { try TerminalMessage.decode(header: $0.header, payload: $0.payload) }
        #expect(back == sent, "seed \(seed)")
        #expect(d.counters[.noPreamble] > 0)
    }

    @Test(arguments: Seeds.sample(10))
    func corruptedFramesAreCountedAndTheNextGoodOneIsFound(seed: UInt64) throws {
        var g = SeededGenerator(seed: seed)
        let good = try PSPFrameEncoder.frame(header: 0x31, payload: [0, 0, 3, 0xE8, 0], preamble: 0xAA)
        var bad = good
        let i = Int.random(in: 1..<bad.count, using: &g)
        bad[i] ^= UInt8.random(in: 1...255, using: &g)
        let (frames, malformed, _) = decodeAll(bad + good, PSPDecoderOptions(preamble: .only(0xAA), magic: .only(0x3C)))
        #expect(frames.last.map { Array($0.payload) } == [0, 0, 3, 0xE8, 0], "seed \(seed) flipped byte \(i)")
        #expect(!malformed.isEmpty, "seed \(seed)")
    }

    @Test func everyTruncationIsReportedNotDecoded() throws {
        let frame = try PSPFrameEncoder.frame(header: 0x34, payload: BERTLV.encode([TLV(tag: DOLTag.maskedPAN, value: Array("476173******0119".utf8))]).count.description.utf8.map { $0 }, preamble: 0xAA)
        for cut in 1..<frame.count {
            let (frames, malformed, d) = decodeAll(Array(frame.prefix(cut)))
            #expect(frames.isEmpty, "cut at \(cut)")
            #expect(d.counters.bytesDiscarded == cut, "cut at \(cut)")
            #expect(!malformed.isEmpty)
        }
    }

    @Test func singleBytesReassembleLikeWholeFrames() throws {
        let stream = try [0x24, 0x00, 0x31].flatMap { try PSPFrameEncoder.frame(header: $0, payload: $0 == 0x00 ? [0x08, 0x00] : [], preamble: 0xAA) }
        var d = PSPFrameDecoder(options: .lenient())
        var headers: [UInt8] = []
        for b in stream {
            d.append(contentsOf: [b])
            while let e = d.next() { if case .frame(let f) = e { headers.append(f.header) } }
        }
        #expect(headers == [0x24, 0x00, 0x31])
    }

    @Test func hugeLengthFieldsAreRejectedWithoutBuffering() {
        var d = PSPFrameDecoder(options: .lenient(format: .extended))
        d.append(contentsOf: [0xAA, 0xFF, 0xFF, 0xFF, 0xFF, 0x3C, 0x31])
        guard case .malformed(.lengthTooLong, _)? = d.next() else { Issue.record("length accepted"); return }
        #expect(d.bufferedCount < 8)
    }

    @Test func legacyProtocolVersionsLimitFrameSize() throws {
        let big = try PSPFrameEncoder.frame(header: 0x31, payload: [UInt8](repeating: 1, count: 40), preamble: 0xAA)
        var d = PSPFrameDecoder(options: PSPDecoderOptions(maxLength: PSPLimits.maxLegacyLengthAccepted))
        d.append(contentsOf: big)
        guard case .malformed(.lengthTooLong, _)? = d.next() else { Issue.record("length accepted"); return }
        #expect(d.counters.frames == 0)
        #expect(throws: PSPMessageError.self) {
            _ = try PSPFrameEncoder.frame(header: 0x31, payload: [UInt8](repeating: 1, count: 40), preamble: 0xCC, maxLength: PSPLimits.maxLegacyLengthSent)
        }
    }

    @Test(arguments: Seeds.sample(10))
    func truncatedPayloadsThrowInsteadOfTrapping(seed: UInt64) {
        var g = SeededGenerator(seed: seed)
        for _ in 0..<500 {
            let m = randomTerminalMessage(&g, wide: false)
            let p = m.encodePayload()
            for cut in 0..<p.count {
                _ = try? TerminalMessage.decode(header: m.header, payload: ArraySlice(p.prefix(cut)))
            }
            let c = randomHostCommand(&g)
            let (h, hp) = c.encode()
            for cut in 0..<hp.count { _ = try? HostCommand.decode(header: h, payload: ArraySlice(hp.prefix(cut))) }
            // Random payloads under every known header.
            for header: UInt8 in [0x00, 0x24, 0x27, 0x29, 0x30, 0x31, 0x32, 0x34, 0x35, 0x38, 0x40, 0x43] {
                _ = try? TerminalMessage.decode(header: header, payload: ArraySlice(g.bytes(Int.random(in: 0...40, using: &g))))
            }
        }
    }
}
