import Foundation
import Testing
import Platform

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
}
