import Foundation
import Testing
import Platform
import WireFormat
import CardSafety

/// `paybridgectl decode psp` as technicians run it: hex on standard input, JSON lines out.
@Suite struct DecodeTool {
    func decode(_ input: String, _ args: [String] = []) throws -> [[String: Any]] {
        let exe = ChildProcess.executableDirectory() + "/paybridgectl"
        let p = try ChildProcess.spawn(exe, ["decode", "psp"] + args)
        try p.writeLine(input)
        p.closeStdin()
        var out: [[String: Any]] = []
        while let line = try p.readLine(timeout: .seconds(10)) {
            out.append(try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "\(line)"))
        }
        #expect(p.wait(timeout: .seconds(5)) == 0)
        return out
    }

    @Test func decodesPayterExamplesAndReportsWhatIsNotAFrame() throws {
        let out = try decode("""
        AA 04 3C 21 03 66 74
        aa023c240c
        AA043C000800F2
        AA043C21036675
        hello
        AA053C
        """)
        func line(_ n: Int) -> [[String: Any]] { out.filter { $0["line"] as? Int == n } }
        #expect(out[0]["header"] as? Int == 0x21 && out[0]["payload"] as? String == "0366" && out[0]["checksumOK"] as? Bool == true)
        #expect(out[1]["name"] as? String == "Synchronize")
        #expect(out[2]["name"] as? String == "Result")
        #expect((out[2]["asStatus"] as? [String: Any])?["state"] as? String == "ENABLED", "0x00 read both ways")
        #expect(line(4).first?["checksumOK"] as? Bool == false)
        #expect(line(4).first?["error"] as? String == "bad checksum")
        #expect(line(4).first?["expectedChecksum"] as? Int == 0x74)
        #expect((line(5).first?["error"] as? String)?.hasPrefix("invalid hex") == true)
        #expect(line(6).map { $0["error"] as? String } == ["truncated frame"])
        #expect(out.allSatisfy { $0["line"] as? Int != nil })
    }

    @Test func decodesHostCommandsAndExtendedFrames() throws {
        let host = try decode("CC0A3C350000000100000064AC", ["--from", "host"])
        #expect(host.first?["name"] as? String == "CommitSession")
        #expect(host.first?["amount"] as? Int == 100)
        let ext = try decode("AA000000043C21036674", ["--extended"])
        #expect(ext.first?["length"] as? Int == 4)
    }

    @Test func neverPrintsAFullCardNumber() throws {
        // A misbehaving terminal sending a full PAN in the masked-PAN tag of a Card Read.
        let pan = Array("4761739001010119".utf8)
        let tlv: [UInt8] = [0xDF, 0xCA, 0x0B, UInt8(pan.count)] + pan
        let payload = [UInt8(tlv.count)] + tlv
        var frame: [UInt8] = [0xAA, UInt8(payload.count + 2), 0x3C, 0x34] + payload
        frame.append(frame.reduce(0, &+))
        let out = try decode(Hex.encode(frame))
        let text = String(data: try JSONSerialization.data(withJSONObject: out), encoding: .utf8)!
        #expect(!text.contains("4761739001010119"))
        #expect(!text.contains(Hex.encode(pan)))
        #expect(text.contains("476173******0119"))
    }

    /// The review's frames (Tests/Fixtures/card-data/terminal-frames.hex): card data in the brand,
    /// the host reference, EMV tags 5A, 57, 9F6B, 56 and 5F20, a bad checksum, an identity and an
    /// unmodelled message. Nothing of it may reach the output a technician pastes into a ticket.
    @Test func printsNoCardDataFromAnyTagPayloadOrBadFrame() throws {
        let fixture = fileText(fixturesDirectory + "/card-data/terminal-frames.hex")
        let frames = fixture.split(separator: "\n").filter { !$0.hasPrefix("#") }.joined(separator: "\n")
        #expect(frames.split(separator: "\n").count == 5, "fixture not found or changed")
        let out = try decode(frames)
        let text = String(data: try JSONSerialization.data(withJSONObject: out), encoding: .utf8)!
        for number in ["4111111111111111", "5555555555554444", "4012888888881881", "378282246310005"] {
            for piece in tenDigitWindows(number) { #expect(!text.contains(piece), "\(piece) of \(number) in \(text)") }
        }
        #expect(!text.contains("TEST/CARD") && !text.contains("544553542F43415244"), "the cardholder name")
        #expect(luhnValidRuns(text).isEmpty, "\(luhnValidRuns(text))")
        // What may be shown still is.
        func line(_ n: Int) -> [String: Any] { out.first { $0["line"] as? Int == n } ?? [:] }
        #expect(line(1)["maskedPAN"] as? String == "411111******1111")
        #expect(line(1)["brand"] as? String == "VISA 411111******1111")
        #expect(line(1)["cardHash"] as? String == "A1B2C3D4E5F60718")
        #expect(line(1)["payload"] as? String == "(withheld: card message)")
        #expect(line(2)["sessionID"] as? Int == 0x1234 && line(2)["payload"] as? String == "(withheld: card message)")
        #expect(line(3)["checksumOK"] as? Bool == false && line(3)["payload"] == nil && line(3)["payloadLength"] as? Int == 0xB1)
        #expect(line(4)["serialNumber"] as? String == "4111 11** **** 1111")
        #expect(line(5)["payload"] as? String == "(withheld: card data)")
        let tags = (line(1)["dol"] as? [[String: Any]]) ?? []
        let shown = Dictionary(tags.map { ($0["tag"] as? String ?? "", $0) }, uniquingKeysWith: { a, _ in a })
        for tag in ["5A", "57", "9F6B", "56", "5F24", "5F20", "DFCA03"] {
            #expect(shown[tag]?["withheld"] != nil && shown[tag]?["value"] == nil && shown[tag]?["text"] == nil, "\(tag): \(shown[tag] ?? [:])")
        }
    }
}

/// Tests/Fixtures, found from this file's path.
let fixturesDirectory: String = {
    var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
    parts.removeLast(2)
    return parts.joined(separator: "/") + "/Fixtures"
}()

/// Every 10 consecutive digits of a number: each contains some of the digits a mask hides. Looked
/// for as text, as the bytes of that text in decimal (Swift's array format) and in hex.
func tenDigitWindows(_ number: String) -> [String] {
    let digits = Array(number.utf8)
    return (0...(digits.count - 10)).flatMap { i -> [String] in
        let w = Array(digits[i..<(i + 10)])
        return [String(decoding: w, as: UTF8.self), w.map(String.init).joined(separator: ", "),
                w.map { String($0, radix: 16) }.joined(), w.map { String($0, radix: 16, uppercase: true) }.joined(),
                w.map { String($0, radix: 16) }.joined(separator: " ")]
    }
}

/// Runs of 13–19 ASCII digits that pass the Luhn check (maximal runs: digits with no separator).
/// Millisecond timestamps of this decade (13 digits starting 17 or 18) and ICCIDs (89…, the SIM's
/// serial) are left out: they are what a log and a cloud record legitimately carry.
func luhnValidRuns(_ text: String) -> [String] {
    var out: [String] = []
    var run: [UInt8] = []
    func end() {
        defer { run.removeAll() }
        guard CardDataFilter.panDigits.contains(run.count), CardDataFilter.luhn(run.map { $0 - 0x30 }) else { return }
        let s = String(decoding: run, as: UTF8.self)
        if run.count == 13, s.hasPrefix("17") || s.hasPrefix("18") { return }
        if s.hasPrefix("89") { return }
        out.append(s)
    }
    for c in text.utf8 { if c >= 0x30 && c <= 0x39 { run.append(c) } else { end() } }
    end()
    return out
}

