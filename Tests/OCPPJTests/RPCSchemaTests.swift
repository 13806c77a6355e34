import Foundation
import JSONLines
import OCPPJ
import Platform
import Testing
import Timebase

/// What the core sends, checked with the official OCPP 2.1 schemas and the `ocpp` package's own
/// RPC parser: BootNotification and Heartbeat payloads, CALLERROR and CALLRESULTERROR shapes.
@Suite struct RPCSchemas {
    /// Frames the core produces in a session that boots, heartbeats and meets bad input.
    static func producedFrames() -> [String] {
        var out: [String] = []
        for reason in BootPayload.Reason.allCases {
            let boot = BootPayload.make(reason: reason, vendor: String(repeating: "V", count: 80), model: String(repeating: "M", count: 30),
                                        serial: String(repeating: "S", count: 30), firmware: String(repeating: "F", count: 60))
            var s = Session { $0.bootPayload = boot }
            s.connect()
            s.answerBoot("Accepted", interval: 60)
            s.advance(.seconds(60))
            s.receive(#"[2,"c1","FlyToTheMoon",{}]"#)
            s.receive(#"[2,"c2","ReserveNow",{}]"#)
            s.receive(#"[2,"c3","Reset",[]]"#)
            s.receive(#"[2,"c4","Reset"]"#)
            s.receive(#"[8,"c5"]"#)
            s.receive(#"[2,"c7","Heart beat",{}]"#)
            s.receive(#"["2","c8","Reset",{}]"#)
            s.receive(#"[2,"c6","Reset",{}]"#)
            s.take(s.core.answer(id: "c6", error: RPCError(.internalError, String(repeating: "é", count: 400),
                                                           details: .object([("cause", .string("relay welded"))])), now: s.now))
            out += s.log.compactMap { if case .transmit(let t) = $0 { return t } else { return nil } }
        }
        var s = Session()
        s.connect()
        if let boot = s.lastCall { s.reply(.callResult(id: boot.id, payload: .object([]))) }
        out += s.log.compactMap { if case .transmit(let t) = $0 { return t } else { return nil } }
        return out
    }

    @Test func framesValidateWithTheOCPPPackage() throws {
        let frames = Self.producedFrames()
        #expect(frames.contains { $0.hasPrefix("[2,") && $0.contains("\"Heartbeat\"") })
        #expect(frames.contains { $0.hasPrefix("[4,") } && frames.contains { $0.hasPrefix("[5,") })
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ocppj-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let list = dir.appendingPathComponent("frames.txt")
        try Data(frames.joined(separator: "\n").utf8).write(to: list)
        let (status, output) = try Self.run("ocpp-rpc-validate.py", list.path)
        #expect(status == 0, "\(output.joined(separator: "\n"))")
        #expect(output.last?.hasPrefix("validated \(frames.count) bad 0") == true, "\(output)")
    }

    /// The payloads alone through the repository's one payload validator (Tests/Scripts/ocpp-validate.py).
    @Test func bootAndHeartbeatPayloadsValidateAgainstTheSchemas() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ocppj-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var lines: [String] = []
        for (i, frame) in Self.producedFrames().enumerated() {
            guard case let .call(_, action, payload)? = try? RPCMessage.parse(frame) else { continue }
            let file = dir.appendingPathComponent("\(i)-\(action).json")
            try Data(payload.text.utf8).write(to: file)
            lines.append("\(action)\t\(file.path)")
        }
        #expect(lines.count >= 2 * BootPayload.Reason.allCases.count)
        let list = dir.appendingPathComponent("list.tsv")
        try Data(lines.joined(separator: "\n").utf8).write(to: list)
        let (status, output) = try Self.run("ocpp-validate.py", list.path)
        #expect(status == 0, "\(output.joined(separator: "\n"))")
        #expect(output.last?.hasPrefix("validated \(lines.count) bad 0") == true, "\(output)")
    }

    static func run(_ script: String, _ argument: String) throws -> (Int32?, [String]) {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Scripts/\(script)").path
        let p = try ChildProcess.spawn("/usr/bin/env", ["python3", path, argument], pipeStdin: false)
        var output: [String] = []
        while let line = try p.readLine(timeout: .seconds(120)) { output.append(line) }
        return (p.wait(timeout: .seconds(10)), output)
    }
}
