import CSMSRequests
import Foundation
import JSONLines
import OCPPJ
import Platform

/// A two-EVSE station: EVSE 1 charging under transaction "tx-1", EVSE 2 idle; an ended
/// transaction "tx-0" whose Ended event still waits in the outbox; reservation 7 on EVSE 2.
func sampleView() -> StationView {
    StationView(
        identity: .init(vendor: "Paybridge", model: "PB-2", serialNumber: "CS-0042", firmwareVersion: "1.4.0"),
        evses: [StationView.EVSE(id: 1, transactionId: "tx-1", transactionReportable: true), StationView.EVSE(id: 2)],
        transactions: [.init(id: "tx-1", ongoing: true, messagesInQueue: false), .init(id: "tx-0", ongoing: false, messagesInQueue: true)],
        terminal: .init(vendor: "Payter", model: "P68", serialNumber: "P6800123", firmwareVersion: "3.2.1",
                        simSerial: "8931440000000000012", processorOption: "platform", transferNumber: "TT-77"),
        unlockSupported: true,
        reservations: [.init(id: 7, evseId: 2)],
        settings: .init(heartbeatIntervalSeconds: 300, offlineChargingAllowed: false))
}

/// The station with nothing under way.
func idleView() -> StationView {
    var v = sampleView()
    v.evses = [StationView.EVSE(id: 1), StationView.EVSE(id: 2)]
    v.transactions = []
    return v
}

func parse(_ text: String) -> JSON { try! JSON.parse(text) }

/// Runs a handler and returns its answer or error.
@discardableResult
func answer(_ action: String, _ payload: String, _ view: StationView = sampleView(), now: Int64 = 1_796_000_000_000) -> Result<HandlerResult, RPCError> {
    CSMSRequestHandler.handle(action: action, payload: parse(payload), view: view, now: now)
}

extension Result where Success == HandlerResult, Failure == RPCError {
    var payload: JSON? { if case .success(let r) = self { return r.payload } else { return nil } }
    var actions: [StationAction]? { if case .success(let r) = self { return r.actions } else { return nil } }
    var status: String? { payload?["status"]?.stringValue }
    var reason: String? { payload?["statusInfo"]?["reasonCode"]?.stringValue }
    var errorCode: RPCErrorCode? { if case .failure(let e) = self { return e.code } else { return nil } }
}

/// Validates bodies with Tests/Scripts/ocpp-validate.py; returns its exit status, output, and
/// the paths it found invalid mapped back to the bodies' indices.
func validateWithSchemas(_ bodies: [(String, JSON)]) throws -> (status: Int32?, output: [String], invalid: Set<Int>) {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("csmsreq-\(UUID().uuidString.prefix(8))")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    var lines: [String] = []
    for (i, (schema, body)) in bodies.enumerated() {
        let file = dir.appendingPathComponent("\(i).json")
        try Data(body.text.utf8).write(to: file)
        lines.append("\(schema)\t\(file.path)")
    }
    let list = dir.appendingPathComponent("list.tsv")
    try Data(lines.joined(separator: "\n").utf8).write(to: list)
    let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Scripts/ocpp-validate.py").path
    let p = try ChildProcess.spawn("/usr/bin/env", ["python3", script, list.path], pipeStdin: false)
    var output: [String] = []
    while let line = try p.readLine(timeout: .seconds(300)) { output.append(line) }
    var invalid = Set<Int>()
    for line in output where line.hasPrefix("INVALID ") {
        let parts = line.split(separator: " ")
        if parts.count >= 3, let name = parts[2].split(separator: "/").last, let i = Int(name.dropLast(5)) { invalid.insert(i) }
    }
    return (p.wait(timeout: .seconds(10)), output, invalid)
}
