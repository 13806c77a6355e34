import Testing
import Foundation
import PSPCodec
import CardSafety

/// Payter's own hex examples (copied from ../shared/vectors/psp-docs.json).
struct DocVector: Sendable {
    var hex: String
    var direction: String
    var header: UInt8?
    var payloadHex: String?
    var extended: Bool
    var isFragment: Bool

    static func load() throws -> [DocVector] {
        let url = try #require(Bundle.module.url(forResource: "psp-docs", withExtension: "json", subdirectory: "Vectors"))
        let list = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [[String: Any]])
        return list.map { v in
            let f = v["fields"] as? [String: Any] ?? [:]
            return DocVector(hex: v["hex"] as! String, direction: v["direction"] as! String,
                             header: (f["header"] as? String).flatMap { UInt8($0, radix: 16) },
                             payloadHex: f["payload"] as? String, extended: f["length_be32"] != nil,
                             isFragment: f["header"] == nil)
        }
    }
}

func bytes(_ hex: String) -> [UInt8] {
    var out: [UInt8] = []
    var i = hex.startIndex
    while i < hex.endIndex {
        let j = hex.index(i, offsetBy: 2)
        out.append(UInt8(hex[i..<j], radix: 16)!)
        i = j
    }
    return out
}

func decodeAll(_ b: [UInt8], _ options: PSPDecoderOptions = .lenient()) -> (frames: [PSPFrame], malformed: [PSPDecodeEvent], decoder: PSPFrameDecoder) {
    var d = PSPFrameDecoder(options: options)
    d.append(contentsOf: b)
    var frames: [PSPFrame] = [], bad: [PSPDecodeEvent] = []
    var events: [PSPDecodeEvent] = []
    while let e = d.next() { events.append(e) }
    events += d.flushStale()
    for e in events {
        if case .frame(let f) = e { frames.append(f) } else { bad.append(e) }
    }
    return (frames, bad, d)
}

@Suite struct PayterDocVectors {
    @Test func everyFramedVectorDecodesAndReencodesByteForByte() throws {
        let vectors = try DocVector.load().filter { !$0.isFragment }
        #expect(vectors.count == 7)
        for v in vectors {
            let raw = bytes(v.hex)
            let (frames, bad, _) = decodeAll(raw, .lenient(format: v.extended ? .extended : .normal))
            #expect(bad.isEmpty, "\(v.hex)")
            let f = try #require(frames.first)
            #expect(frames.count == 1)
            #expect(f.header == v.header)
            #expect(hexString(f.payload) == v.payloadHex)
            let again = try PSPFrameEncoder.frame(header: f.header, payload: f.payload, preamble: f.preamble, magic: f.magic,
                                                  format: f.format)
            #expect(again == raw)
        }
    }

    @Test func checksumIncludesThePreamble() throws {
        // AA 04 3C 21 03 66 | 74: the sum without the preamble would be 0xCA.
        var raw = bytes("AA043C21036674")
        #expect(decodeAll(raw).frames.count == 1)
        raw[6] = 0xCA
        #expect(decodeAll(raw).frames.isEmpty)
    }

    @Test func uiRequestVectorsDecodeAsKeyValuePairsAndEncodeIdentically() throws {
        let vectors = try DocVector.load().filter { $0.direction == "host->terminal" && !$0.isFragment }
        #expect(vectors.count == 3)
        for v in vectors {
            let raw = bytes(v.hex)
            let f = try #require(decodeAll(raw).frames.first)
            let cmd = try HostCommand.decode(header: f.header, payload: f.payload)
            guard case .uiRequest(let fields) = cmd else { Issue.record("not a UI request: \(cmd)"); continue }
            #expect(fields.first == UIField("type", "template"))
            #expect(fields.count == 3)
            let (h, p) = cmd.encode()
            #expect(try PSPFrameEncoder.frame(header: h, payload: p, preamble: 0xCC) == raw)
        }
    }

    @Test func defaultDOLTagListFragment() throws {
        let v = try #require(try DocVector.load().first { $0.isFragment })
        let tags = try BERTLV.parseTagList(ArraySlice(bytes(v.hex)))
        #expect(tags == DOLTag.defaultCardRead)
        #expect(BERTLV.encodeTagList(tags) == bytes(v.hex))
    }
}

@Suite struct AmbiguityReadings {
    @Test func resultIsReadEveryDocumentedWay() throws {
        func result(_ p: [UInt8]) throws -> PSPResult {
            guard case .result(let r) = try TerminalMessage.decode(header: 0, payload: ArraySlice(p)) else { throw PSPMessageError.invalid(field: "x") }
            return r
        }
        #expect(try result([0x00]) == .ok)
        #expect(try result([0x01]) == .notOK())
        #expect(try result([0x01, 0x05]) == .notOK(0x05))
        #expect(try result([0x0C]) == .notOK(0x0C), "byte 0 holding the reason itself")
        #expect(throws: PSPMessageError.self) { try result([]) }
    }

    @Test func zeroHeaderIsAStatusAfterGetStatus() throws {
        let m = try TerminalMessage.decode(header: 0, payload: [0x10, 0x01], context: .init(zeroHeader: .status))
        #expect(m == .status(TerminalStatus(.waitCard, transactionRunning: true)))
    }

    @Test func dolLengthAcceptsOneOrTwoBytesInEitherMode() throws {
        let tlv = BERTLV.encode([TLV(tag: DOLTag.maskedPAN, value: Array("476173******0119".utf8))])
        let narrow = [UInt8(tlv.count)] + tlv
        let wide = [0, UInt8(tlv.count)] + tlv
        for wideMode in [false, true] {
            for p in [narrow, wide] {
                let m = try TerminalMessage.decode(header: 0x34, payload: ArraySlice(p), context: .init(wideDOLLength: wideMode))
                guard case .cardRead(let d) = m else { Issue.record("\(m)"); continue }
                #expect(CardData(dol: d).maskedPAN == "476173******0119")
            }
        }
        // Session Approved with the DOL field absent: no data.
        #expect(try TerminalMessage.decode(header: 0x31, payload: [0, 0, 0x03, 0xE8]) == .sessionApproved(sessionID: 1000, dol: []))
    }

    @Test func updateSessionResultOfFourteenOrTwentyBytes() throws {
        let u = UpdateSessionResult(outcome: 1, sessionID: 7, authorisedTotal: 900, delta: 100, declineReason: 0)
        let p = TerminalMessage.updateSessionResult(u).encodePayload()
        #expect(p.count == 14)
        #expect(try TerminalMessage.decode(header: 0x43, payload: ArraySlice(p)) == .updateSessionResult(u))
        #expect(try TerminalMessage.decode(header: 0x43, payload: ArraySlice(p + [0, 0, 0, 0, 0, 0])) == .updateSessionResult(u))
    }

    @Test func setupOfFourOrFiveBytes() throws {
        #expect(try HostCommand.decode(header: 0x23, payload: [0, 0, 0x0E, 0x10, 0x00]) == .setup(sessionTimeoutSeconds: 3600, action: .commitFull))
        #expect(try HostCommand.decode(header: 0x23, payload: [0, 0, 0x0E, 0x10]) == .setup(sessionTimeoutSeconds: 3600, action: .void))
        #expect(HostCommand.setup(sessionTimeoutSeconds: 3600, action: .void).encode().payload.count == 5)
    }

    @Test func startSessionOfFourEightOrMoreBytes() throws {
        #expect(try HostCommand.decode(header: 0x34, payload: [0, 0, 0x13, 0x88]) == .startSession(StartSession(amount: 5000)))
        #expect(try HostCommand.decode(header: 0x34, payload: [0, 0, 0x13, 0x88, 0, 0, 0, 9]) == .startSession(StartSession(amount: 5000, reference: 9)))
        // We always send amount, reference and the DOL length (9 bytes with default DOLs).
        #expect(HostCommand.startSession(StartSession(amount: 5000)).encode().payload == [0, 0, 0x13, 0x88, 0, 0, 0, 0, 0])
        // Positional optional fields: a QR URL forces the fields before it.
        let s = StartSession(amount: 1, reference: 2, qrURL: "https://x")
        let p = HostCommand.startSession(s).encode().payload
        #expect(p[9] == 0x00 && p[10] == 0x00 && p[11] == 0x00, "methods, empty logo, hide flag")
        #expect(try HostCommand.decode(header: 0x34, payload: ArraySlice(p)) == .startSession(StartSession(amount: 1, reference: 2, paymentMethods: 0, logo: "", hideAmount: false, qrURL: "https://x")))
    }

    @Test func readCardAndSelectLanguageHeadersAreConfigurable() throws {
        let swapped = PSPHeaderMap(readCard: 0x41, selectLanguage: 0x40)
        let rc = HostCommand.readCard(ReadCard(reference: 5))
        #expect(rc.encode().header == 0x40)
        #expect(rc.encode(headers: swapped).header == 0x41)
        #expect(try HostCommand.decode(header: 0x41, payload: ArraySlice(rc.encode(headers: swapped).payload), headers: swapped) == rc)
    }

    @Test func unknownHeadersAreKeptAsRawFrames() throws {
        #expect(try TerminalMessage.decode(header: 0x21, payload: [0x03, 0x66]) == .other(header: 0x21, payload: [0x03, 0x66]))
        #expect(try HostCommand.decode(header: 0x7E, payload: [1, 2]) == .raw(header: 0x7E, payload: [1, 2]))
    }
}

@Suite struct CardDataRules {
    @Test func fullNumbersAreMaskedToFirstSixLastFour() {
        #expect(PANMask.mask("4761739001010119") == "476173******0119")
        #expect(PANMask.mask("4761 7390 0101 0119") == "4761 73** **** 0119")
        #expect(PANMask.mask("476173******0119") == "476173******0119")
        #expect(PANMask.mask("123456789012") == "********9012", "12 digits: maybe a short PAN, keep the last four")
        #expect(CardData(maskedPAN: "5413330089010434").maskedPAN == "541333******0434")
    }

    @Test func binAndLastFour() {
        let c = CardData(maskedPAN: "541333******0434")
        #expect(c.bin == "541333")
        #expect(c.last4 == "0434")
    }

    @Test func describeRedactsNumberLikeValuesInUndocumentedTags() {
        let d = PSPDescribe.dol([TLV(tag: 0xDFF002, value: Array("4761739001010119".utf8)),
                                 TLV(tag: DOLTag.maskedPAN, value: Array("4761739001010119".utf8))])
        #expect(!d.text.contains("4761739001010119"))
        #expect(!d.text.contains(hexString(Array("4761739001010119".utf8))))
        #expect(d.text.contains("476173******0119"))
    }
}
