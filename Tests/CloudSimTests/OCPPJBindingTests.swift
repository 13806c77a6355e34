import Foundation
import Glibc
import Platform
import Testing
import Timebase
import WebSocket

// cloud-sim's OCPP-J binding over real loopback sockets: the Python `websockets` library as the
// station (Tests/Scripts/ocppj-client.py), raw bytes for what no library sends, and the PyPI
// `ocpp` package's 2.1 ChargePoint (Tests/Scripts/ocpp-station-interop.py). Skipped, saying why,
// when python3 or the libraries are missing. Every wait is bounded.

let scriptsDirectory = #filePath.split(separator: "/", omittingEmptySubsequences: false).dropLast(2).joined(separator: "/") + "/Scripts"

/// The line-driven `websockets` client.
final class PythonWebSocketClient {
    let process: ChildProcess

    /// Nil (reason printed) when python3 or `websockets` is missing.
    init?() throws {
        process = try ChildProcess.spawn("/usr/bin/env", ["python3", scriptsDirectory + "/ocppj-client.py"])
        guard try process.readLine(timeout: .seconds(10)) == "ready" else {
            print("OCPP-J binding tests skipped: python3 with websockets needed (pip install websockets)")
            process.terminate()
            return nil
        }
    }

    deinit { process.terminate() }

    @discardableResult
    func run(_ command: [String: Any], timeout: Duration = .seconds(10)) throws -> [String: Any] {
        let data = try JSONSerialization.data(withJSONObject: command)
        try process.writeLine(String(decoding: data, as: UTF8.self))
        guard let line = try process.readLine(timeout: timeout),
              let reply = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            throw HarnessError("no answer to \(command)")
        }
        return reply
    }

    func connect(_ port: UInt16, path: String = "/ocpp/CS-1", subprotocols: [String] = ["ocpp2.1"], headers: [[String]] = []) throws -> [String: Any] {
        try run(["op": "connect", "port": Int(port), "path": path, "subprotocols": subprotocols, "headers": headers])
    }

    func send(_ text: String) throws { try run(["op": "send", "text": text]) }

    func receive(timeout: Double = 5) throws -> [String: Any] { try run(["op": "recv", "timeout": timeout]) }

    /// Sends a message and returns the answer's JSON array (nil: none came).
    func call(_ text: String) throws -> [Any]? {
        try send(text)
        let reply = try receive()
        guard let answer = reply["text"] as? String else { return nil }
        return try JSONSerialization.jsonObject(with: Data(answer.utf8)) as? [Any]
    }
}

/// Reads raw bytes from a socket until `done` says so, the stream ends or `timeout` passes.
func readRaw(_ fd: FileDescriptor, timeout: Duration = .seconds(5), until done: ([UInt8]) -> Bool) throws -> (bytes: [UInt8], ended: Bool) {
    var bytes: [UInt8] = []
    let deadline = MonotonicClock.now() + timeout
    while !done(bytes) {
        let remaining = deadline - MonotonicClock.now()
        if remaining <= .zero { return (bytes, false) }
        var entry = [pollfd(fd: fd.rawValue, events: Int16(POLLIN), revents: 0)]
        _ = try Poll.wait(&entry, timeout: remaining)
        let result = Result { () throws(SystemError) in try fd.read(maxCount: 65536) }
        switch result {
        case .success(.bytes(let b)): bytes += b
        case .success(.wouldBlock): continue
        case .success(.endOfFile), .failure: return (bytes, true)
        }
    }
    return (bytes, false)
}

@Suite(.serialized) struct OCPPJBindingTests {
    static let boot = #"[2,"b-1","BootNotification",{"reason":"PowerUp","chargingStation":{"model":"P68","vendorName":"paybridge"}}]"#

    @Test func bothBindingsOnOnePortShareAnswersMemoryAndRecord() throws {
        guard let ws = try PythonWebSocketClient() else { return }
        let sim = try CloudSimProcess()
        let opened = try ws.connect(sim.port, path: "/any/prefix/CS-1", subprotocols: ["ocpp2.0.1", "ocpp2.1"])
        #expect(opened["ok"] as? Bool == true && opened["subprotocol"] as? String == "ocpp2.1", "\(opened)")

        let boot = try #require(try ws.call(Self.boot))
        #expect(boot.count == 3 && boot[0] as? Int == 3 && boot[1] as? String == "b-1")
        let bootPayload = try #require(boot[2] as? [String: Any])
        #expect(bootPayload["status"] as? String == "Accepted" && bootPayload["interval"] as? Int == 300 && bootPayload["currentTime"] is String)

        let authorize = try #require(try ws.call("[2,\"a-1\",\"Authorize\",\(authorizeBody)]"))
        #expect(canonical(authorize[2]) == canonical(json: #"{"idTokenInfo":{"status":"Accepted"}}"#))
        #expect(canonical(try #require(try ws.call("[2,\"t-1\",\"TransactionEvent\",\(transactionBody)]"))[2]) == "{}")
        let beat = try #require(try ws.call(#"[2,"h-1","Heartbeat",{}]"#))
        Thread.sleep(forTimeInterval: 0.01)
        // A retry over OCPP-J, then the same id over HTTP: the one answer, replayed.
        let retry = try #require(try ws.call(#"[2,"h-1","Heartbeat",{}]"#))
        #expect(canonical(retry[2]) == canonical(beat[2]))
        let overHTTP = try #require(try sim.connect().post("Heartbeat", key: "h-1"))
        #expect(overHTTP.status == 200 && canonical(json: overHTTP.text) == canonical(beat[2]))
        #expect(overHTTP.header("Idempotent-Replayed") == "true")
        // And an HTTP message is a duplicate over OCPP-J.
        #expect(try sim.connect().post("StatusNotification", key: "s-1")?.status == 200)
        #expect(try ws.call(#"[2,"s-1","StatusNotification",{}]"#).map { canonical($0) } == canonical(json: #"[3,"s-1",{}]"#))
        let unknown = try #require(try ws.call(#"[2,"r-1","Reset",{}]"#))
        #expect(unknown[0] as? Int == 4 && unknown[2] as? String == "NotSupported")

        let records = sim.records()
        #expect(records.map { $0["binding"] as? String } == Array(repeating: "ocpp-j", count: 6) + ["https", "https", "ocpp-j", "ocpp-j"])
        #expect(records.first?["status"] as? Int == 101 && records.first?["subprotocol"] as? String == "ocpp2.1")
        #expect(records.dropFirst().prefix(5).map { $0["action"] as? String } == ["BootNotification", "Authorize", "TransactionEvent", "Heartbeat", "Heartbeat"])
        #expect(records.map { $0["duplicate"] as? Bool } == [false, false, false, false, false, true, true, false, true, false])
        #expect(records.allSatisfy { $0["station"] as? String == "CS-1" })
        #expect(canonical(records[3]["body"]) == canonical(json: transactionBody))
        #expect(records.last?["status"] as? Int == 404 && records.last?["rpcError"] as? String == "NotSupported")
    }

    @Test func closeWebSocketDropAndDownEndTheConnection() throws {
        guard let ws = try PythonWebSocketClient() else { return }
        let sim = try CloudSimProcess()
        #expect(try sim.control("close-ws 2") == "ok close-ws 2")
        #expect(try ws.connect(sim.port)["ok"] as? Bool == true)
        #expect(try ws.call(Self.boot) != nil)
        // The second message is answered, then the server closes with 1001.
        let second = try #require(try ws.call(#"[2,"h-1","Heartbeat",{}]"#))
        #expect(second[1] as? String == "h-1")
        let closed = try ws.receive()
        #expect(closed["closed"] as? Bool == true && closed["code"] as? Int == 1001 && closed["reason"] as? String == "close-ws", "\(closed)")

        // drop: processed, then the TCP connection closes without a close frame.
        #expect(try ws.connect(sim.port)["ok"] as? Bool == true)
        #expect(try sim.control("drop Heartbeat") == "ok drop Heartbeat 1")
        try ws.send(#"[2,"h-2","Heartbeat",{}]"#)
        let dropped = try ws.receive()
        #expect(dropped["closed"] as? Bool == true && dropped["code"] is NSNull, "\(dropped)")
        // The retry on a new connection is a duplicate of the processed message.
        #expect(try ws.connect(sim.port)["ok"] as? Bool == true)
        #expect(try ws.call(#"[2,"h-2","Heartbeat",{}]"#)?[0] as? Int == 3)

        // down: the open WebSocket is closed at once, and new connections too.
        #expect(try sim.control("down") == "ok down")
        let down = try ws.receive()
        #expect(down["closed"] as? Bool == true, "\(down)")
        #expect(try ws.connect(sim.port)["ok"] as? Bool == false)
        #expect(try sim.control("up") == "ok up")
        #expect(try ws.connect(sim.port)["ok"] as? Bool == true)

        let records = sim.records().filter { $0["action"] as? String == "Heartbeat" }
        #expect(records.map { $0["duplicate"] as? Bool } == [false, false, true])
        #expect(records.map { $0["dropped"] as? Bool } == [nil, true, nil])
    }

    @Test func upgradesAreRefusedAsScripted() throws {
        guard let ws = try PythonWebSocketClient() else { return }
        let sim = try CloudSimProcess(["--station", "CS-1", "--refuse-upgrades", "1", "503", "--require-token", "tok"])
        let refused = try ws.connect(sim.port)
        #expect(refused["ok"] as? Bool == false && refused["status"] as? Int == 503, "\(refused)")
        #expect(try ws.connect(sim.port)["status"] as? Int == 401)
        let basic = "Basic " + Data("CS-1:tok".utf8).base64EncodedString()
        #expect(try ws.connect(sim.port, path: "/ocpp/CS-2", headers: [["Authorization", basic]])["status"] as? Int == 404)
        let noProtocol = try ws.connect(sim.port, subprotocols: ["ocpp1.6"], headers: [["Authorization", basic]])
        #expect(noProtocol["status"] as? Int == 400 && (noProtocol["body"] as? String)?.contains("no supported subprotocol") == true, "\(noProtocol)")
        let accepted = try ws.connect(sim.port, subprotocols: ["ocpp2.0.1"], headers: [["Authorization", basic]])
        #expect(accepted["ok"] as? Bool == true && accepted["subprotocol"] as? String == "ocpp2.0.1")
        #expect(sim.records().map { $0["status"] as? Int } == [503, 401, 404, 400, 101])
    }

    @Test func slowDelaysAnswersInOrder() throws {
        guard let ws = try PythonWebSocketClient() else { return }
        let sim = try CloudSimProcess(["--slow", "300"])
        #expect(try ws.connect(sim.port)["ok"] as? Bool == true)
        let start = MonotonicClock.now()
        try ws.send(#"[2,"1","Heartbeat",{}]"#)
        try ws.send(#"[2,"2","StatusNotification",{}]"#)
        let first = try ws.receive(), second = try ws.receive()
        let elapsed = MonotonicClock.now() - start
        #expect((first["text"] as? String)?.hasPrefix(#"[3,"1","#) == true && (second["text"] as? String) == #"[3,"2",{}]"#)
        #expect(elapsed >= .milliseconds(600), "two answers, 300 ms each: \(elapsed)")
    }

    @Test func theBindingsCanBeServedAlone() throws {
        guard let ws = try PythonWebSocketClient() else { return }
        let https = try CloudSimProcess(["--binding", "https"])
        #expect(try ws.connect(https.port)["ok"] as? Bool == false)
        #expect(try https.connect().post("Heartbeat", key: "k")?.status == 200)
        let ocppJ = try CloudSimProcess(["--binding", "ocpp-j"])
        #expect(try ocppJ.connect().post("Heartbeat", key: "k")?.status == 404)
        #expect(try ws.connect(ocppJ.port)["ok"] as? Bool == true)
        #expect(try ws.call(#"[2,"k","Heartbeat",{}]"#)?[0] as? Int == 3)
    }

    /// What no library sends: frames right behind the upgrade request, and an unmasked frame.
    @Test func framesBehindTheUpgradeAreAnsweredAndAnUnmaskedFrameIs1002() throws {
        let sim = try CloudSimProcess()
        var nonce = SystemRandomNumberGenerator()
        let handshake = try WebSocketHandshake(request: .ocpp(host: "127.0.0.1", port: Int(sim.port), secure: false, pathPrefix: "/ocpp", stationId: "CS-1"),
                                               nonce: (0..<16).map { _ in UInt8.random(in: 0...255, using: &nonce) })
        let client = try sim.connect()
        let heartbeat = WebSocketFrameEncoder.encode(WebSocketFrame(opcode: .text, payload: Array(#"[2,"p","Heartbeat",{}]"#.utf8)), maskKey: 0x1234_5678)
        try client.send(handshake.requestBytes + heartbeat)
        let (head, _) = try readRaw(client.fd) { bytes in
            bytes.count >= 4 && (0...(bytes.count - 4)).contains { bytes[$0..<($0 + 4)].elementsEqual([13, 10, 13, 10]) }
        }
        var parser = WebSocketResponseParser(handshake: handshake)
        let result = try #require(try parser.append(head))
        var core = WebSocketCore(maskKeys: SystemRandomNumberGenerator(), leftover: result.leftover, at: MonotonicClock.now())
        var messages = core.takeEffects()
        if messages.isEmpty {
            let (more, _) = try readRaw(client.fd) { !$0.isEmpty }
            core.receive(more, at: MonotonicClock.now())
            messages = core.takeEffects()
        }
        guard case .message(.text(let answer))? = messages.first else { Issue.record("no answer: \(messages)"); return }
        #expect(answer.hasPrefix(#"[3,"p",{"currentTime":"#))

        // An unmasked frame: the server closes with 1002, unmasked, then ends the stream.
        try client.send([0x81, 0x02, 0x5B, 0x5D])
        let (bytes, ended) = try readRaw(client.fd) { _ in false }
        #expect(bytes == [0x88, 0x02, 0x03, 0xEA])
        #expect(ended)
    }

    /// The PyPI `ocpp` package's 2.1 ChargePoint against cloud-sim: Boot, Authorize (accepted and
    /// a scripted refusal), TransactionEvent (a scripted InternalError, its retry, a repeat),
    /// StatusNotification, NotifySettlement, Heartbeat; every answer validated by the package
    /// against the official schemas.
    @Test func theOCPPPackagesChargePointIsServed() throws {
        let sim = try CloudSimProcess(["--refuse-card", "4242", "Blocked", "--fail5xx", "TransactionEvent", "1"])
        let station = try ChildProcess.spawn("/usr/bin/env", ["python3", scriptsDirectory + "/ocpp-station-interop.py", String(sim.port), "CS-interop"],
                                             pipeStdin: false)
        defer { station.terminate() }
        var lines: [String] = []
        while let line = try station.readLine(timeout: .seconds(20)) {
            lines.append(line)
            if line == "done" || line.hasPrefix("FAILED") || line.hasPrefix("missing") { break }
        }
        let status = station.wait(timeout: .seconds(10))
        if status == 3 {
            print("theOCPPPackagesChargePointIsServed skipped: \(lines.last ?? "python3 with ocpp and websockets needed")")
            return
        }
        #expect(status == 0 && lines.last == "done", "\(lines)")
        let records = sim.records().filter { $0["action"] is String }
        #expect(records.map { $0["action"] as? String } == ["BootNotification", "Authorize", "Authorize", "TransactionEvent", "TransactionEvent",
                                                              "TransactionEvent", "TransactionEvent", "StatusNotification", "NotifySettlement", "Heartbeat"])
        let events = records.filter { $0["action"] as? String == "TransactionEvent" }
        #expect(events.map { $0["status"] as? Int } == [503, 200, 200, 200])
        #expect(events.map { $0["duplicate"] as? Bool } == [false, false, true, false])
        #expect(records.allSatisfy { $0["binding"] as? String == "ocpp-j" && $0["station"] as? String == "CS-interop" })
    }
}
