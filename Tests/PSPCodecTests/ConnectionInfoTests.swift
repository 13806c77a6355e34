import Testing
import CardSafety
import JSONLines
import PSPCodec
import Timebase

/// Get Connection Info (0x44, Apollo): the layouts are undocumented (psp.md §4), so the answer is
/// a bounded raw payload read as text or hex, through the card-data filter.
@Suite struct ConnectionInfoReadings {
    func read(_ bytes: [UInt8]) throws -> ConnectionInfo {
        guard case .connectionInfo(let c) = try TerminalMessage.decode(header: 0x44, payload: ArraySlice(bytes)) else {
            throw PSPMessageError.invalid(field: "not a connection info")
        }
        return c
    }

    @Test func theCommandIsHeader0x44WithAnEmptyPayloadAndAnyPayloadReadsAsIt() throws {
        let (h, p) = HostCommand.getConnectionInfo.encode()
        #expect(h == 0x44 && p.isEmpty)
        #expect(HostCommand.getConnectionInfo.name == "GetConnectionInfo")
        #expect(try HostCommand.decode(header: 0x44, payload: []) == .getConnectionInfo)
        #expect(try HostCommand.decode(header: 0x44, payload: [1, 2, 3]) == .getConnectionInfo, "a payload of unknown layout is accepted")
        let m = TerminalMessage.connectionInfo(ConnectionInfo(reading: .text("x")))
        #expect(m.header == 0x44 && m.name == "GetConnectionInfoResponse")
    }

    @Test func keyValueTextIsTextAndRoundTrips() throws {
        let text = "ip=10.0.0.7 ssid=CHG apn=m2m"
        let c = try read(Array(text.utf8))
        #expect(c == ConnectionInfo(reading: .text(text)))
        #expect(TerminalMessage.connectionInfo(c).encodePayload() == Array(text.utf8))
        let lines = "ip=10.0.0.7\nmask=255.255.255.0\tgw=10.0.0.1"
        #expect(try read(Array(lines.utf8)).reading == .text(lines))
        #expect(try read(Array("Ünïcode-SSID ☕".utf8)).reading == .text("Ünïcode-SSID ☕"))
    }

    @Test func nulTerminatedStringsBecomeLinesAndLineEndsAreLF() throws {
        #expect(try read(Array("ip=10.0.0.7".utf8) + [0] + Array("ssid=CHG".utf8) + [0, 0]).reading == .text("ip=10.0.0.7\nssid=CHG"))
        #expect(try read(Array("a=1\r\nb=2\rc=3\n".utf8)).reading == .text("a=1\nb=2\nc=3\n"))
        #expect(try read([]).isEmpty)
        #expect(try read([0, 0, 0]).isEmpty, "NULs only: nothing to show")
        #expect(try !read(Array("x".utf8)).isEmpty)
    }

    @Test func bytesThatAreNotPrintableUTF8AreHexOfTheWholePayload() throws {
        // An IPv4 address in binary, with a BEL and a NUL in it: not text.
        #expect(try read([0x0A, 0x00, 0x00, 0x07, 0xFF]).reading == .hex("0A000007FF"))
        #expect(try read([0xC3, 0x28]).reading == .hex("C328"), "invalid UTF-8")
        #expect(try read(Array("ip=1".utf8) + [0x1B] + Array("[2J".utf8)).reading == .hex("69703D311B5B324A"), "an escape sequence is no text")
        let hex = ConnectionInfo(reading: .hex("0A000007FF"))
        #expect(TerminalMessage.connectionInfo(hex).encodePayload() == [0x0A, 0x00, 0x00, 0x07, 0xFF])
        #expect(try read(hex.payload) == hex)
    }

    @Test func cardDataIsMaskedRemovedOrWithheld() throws {
        let masked = try read(Array("ip=10.0.0.7 ref=4111 1111 1111 1111".utf8))
        #expect(masked.reading == .text("ip=10.0.0.7 ref=4111 11** **** 1111"))
        #expect(masked.cardDataFound)
        let track = try read(Array("t2=4111111111111111=25121010000000000000".utf8))
        #expect(track.reading == .text(CardDataFilter.removed) && track.cardDataFound)
        // A card number in BCD among bytes that are not text: not shown at all, not even as hex.
        let bcd = try read([0x01, 0x41, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0xFF])
        #expect(bcd.reading == .withheld && bcd.cardDataFound)
        #expect(TerminalMessage.connectionInfo(bcd).encodePayload().isEmpty)
        #expect(try !read(Array("ip=10.0.0.7".utf8)).cardDataFound)
    }

    @Test func theLimitIs512BytesAndALongerAnswerIsRefusedWhole() throws {
        #expect(ConnectionInfo.maxBytes == 512)
        let most = [UInt8](repeating: 0x61, count: ConnectionInfo.maxBytes)
        #expect(try read(most).reading == .text(String(repeating: "a", count: 512)))
        #expect(throws: PSPMessageError.tooLarge(bytes: 513, limit: 512)) {
            try TerminalMessage.decode(header: 0x44, payload: ArraySlice(most + [0x61]))
        }
    }

    @Test func describeShowsTheReadingAndNeverTheCard() throws {
        func fields(_ b: [UInt8]) throws -> String {
            JSON.object(PSPDescribe.fields(try TerminalMessage.decode(header: 0x44, payload: ArraySlice(b)))).text
        }
        #expect(try fields(Array("ip=10.0.0.7".utf8)) == #"{"text":"ip=10.0.0.7"}"#)
        #expect(try fields([0x0A, 0x00, 0x00, 0x07, 0xFF]) == #"{"hex":"0A000007FF"}"#)
        #expect(try fields([0x01, 0x41, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0xFF]) == #"{"withheld":"card data"}"#)
        #expect(PSPDescribe.fields(HostCommand.getConnectionInfo).isEmpty)
    }

    /// Random payloads, text-like and binary, around the limit: never a crash, the bound holds,
    /// reading is stable through the simulator's encoding, and no reading shows card data.
    @Test(arguments: Seeds.sample(20))
    func garbageIsReadAsTextOrHexOrRefusedAndNeverShowsCardData(seed: UInt64) {
        var g = SeededGenerator(seed: seed)
        for _ in 0..<300 {
            let n = Int.random(in: 0...(ConnectionInfo.maxBytes + 80), using: &g)
            let bytes: [UInt8] = Bool.random(using: &g)
                ? g.bytes(n)
                : (0..<n).map { _ in Array("0123456789 =.\n\0abc".utf8).randomElement(using: &g)! }
            let c: ConnectionInfo
            do {
                c = try ConnectionInfo.read(ArraySlice(bytes))
            } catch {
                #expect(error == .tooLarge(bytes: n, limit: ConnectionInfo.maxBytes) && n > ConnectionInfo.maxBytes, "seed \(seed)")
                continue
            }
            #expect(n <= ConnectionInfo.maxBytes, "seed \(seed)")
            // A withheld value has no bytes left to encode; every other reading reads back as itself.
            if c.reading != .withheld {
                #expect((try? ConnectionInfo.read(ArraySlice(c.payload)).reading) == c.reading, "seed \(seed): not stable through encoding")
            }
            switch c.reading {
            case .text(let t):
                #expect(CardDataFilter.find(in: t) == nil, "seed \(seed): card data in \(t)")
                #expect(!t.unicodeScalars.contains { $0.value < 0x20 && $0 != "\n" && $0 != "\t" }, "seed \(seed): a control character")
            case .hex(let h):
                #expect(CardDataFilter.find(in: hexBytes(h) ?? []) == nil && h == hexString(bytes), "seed \(seed)")
            case .withheld:
                #expect(c.cardDataFound, "seed \(seed)")
            }
        }
    }
}
