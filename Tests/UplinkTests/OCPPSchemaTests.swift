import Foundation
import Testing
import JSONLines
import PaymentEngine
import Platform
import Uplink

/// Every payload the uplink builds validates against the official OCPP 2.1 JSON schemas
/// (the PyPI package `ocpp`, installed by the test when missing).
@Suite struct OCPPSchemas {
    static let card = CardIdentity(maskedPAN: "476173******0119", hash: [0xA1, 0xB2, 0xC3], brand: "VISA")

    static func samples() -> [(OCPPAction, JSON)] {
        let t: Int64 = 1_764_054_044_123
        var out: [(OCPPAction, JSON)] = [
            (.authorize, OCPPPayload.authorize(card: card)),
            (.authorize, OCPPPayload.authorize(card: CardIdentity(maskedPAN: "", hash: [], brand: ""))),
            (.transactionEvent, OCPPPayload.transactionEvent(transactionId: "PB-1-42", seqNo: 0, stage: .started(authorised: 5000), at: t,
                                                            offline: false, card: card, connector: 0, currency: "EUR")),
            (.transactionEvent, OCPPPayload.transactionEvent(transactionId: "PB-1-42", seqNo: 1, stage: .charging, at: t, offline: true,
                                                            card: card, connector: 1, currency: "EUR")),
            (.transactionEvent, OCPPPayload.transactionEvent(transactionId: "PB-1-42", seqNo: 2, stage: .meter(energyWh: 1234, seconds: 600),
                                                            at: t, offline: false, card: card, connector: 0, currency: "EUR")),
            (.notifySettlement, OCPPPayload.notifySettlement(transactionId: "PB-1-42", pspRef: "PSPREF7465", status: .settled, amount: 1234,
                                                             currency: "EUR", at: t, receiptId: "7465")),
            (.notifySettlement, OCPPPayload.notifySettlement(transactionId: "", pspRef: "PSPREF7466", status: .canceled, amount: 0,
                                                             currency: "JPY", at: t, statusInfo: "never plugged in")),
            (.securityEventNotification, OCPPPayload.securityEvent(type: "TamperDetectionActivated", at: t, techInfo: "terminal case opened")),
            (.statusNotification, OCPPPayload.statusNotification(connector: 0, status: .occupied, at: t)),
            (.heartbeat, OCPPPayload.heartbeat()),
        ]
        for reason in StopReason.allCases {
            out.append((.transactionEvent, OCPPPayload.transactionEvent(
                transactionId: "PB-1-42", seqNo: 3, stage: .ended(reason, energyWh: 1234, seconds: 1800,
                                                                   cost: .init(fixed: 50, energy: 49, time: 45, total: 144)),
                at: t, offline: reason == .recovery, card: card, connector: 0, currency: "EUR")))
        }
        return out
    }

    @Test func everyPayloadValidatesAgainstTheOfficialSchema() throws {
        try Self.validate(Self.samples().map { ($0.0, $0.1.text) })
    }

    /// Validates payloads with python's jsonschema against the ocpp package's 2.1 schemas.
    static func validate(_ payloads: [(OCPPAction, String)]) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ocpp-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var list: [String] = []
        for (i, (action, body)) in payloads.enumerated() {
            let file = dir.appendingPathComponent("\(i)-\(action.rawValue).json")
            try Data(body.utf8).write(to: file)
            list.append("\(action.rawValue)\t\(file.path)")
        }
        try Data(list.joined(separator: "\n").utf8).write(to: dir.appendingPathComponent("list.tsv"))
        // One validator script for every test that checks what the daemon sends.
        let scriptPath = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Scripts/ocpp-validate.py").path
        let p = try ChildProcess.spawn("/usr/bin/env", ["python3", scriptPath, dir.appendingPathComponent("list.tsv").path], pipeStdin: false)
        var output: [String] = []
        while let line = try p.readLine(timeout: .seconds(120)) { output.append(line) }
        #expect(p.wait(timeout: .seconds(10)) == 0, "\(output.joined(separator: "\n"))")
        #expect(output.last?.hasPrefix("validated \(payloads.count) bad 0") == true, "\(output)")
    }

    @Test func amountsAreExactDecimalsAndTimestampsRFC3339() {
        #expect(JSON.decimal(minor: 1234, exponent: 2).text == "12.34")
        #expect(JSON.decimal(minor: 5, exponent: 2).text == "0.05")
        #expect(JSON.decimal(minor: -5, exponent: 2).text == "-0.05")
        #expect(JSON.decimal(minor: 100, exponent: 0).text == "100")
        #expect(JSON.decimal(minor: 1, exponent: 3).text == "0.001")
        #expect(RFC3339.format(millis: 0) == "1970-01-01T00:00:00.000Z")
        #expect(RFC3339.format(millis: -1) == "1969-12-31T23:59:59.999Z")
        #expect(RFC3339.format(millis: 951_782_400_000) == "2000-02-29T00:00:00.000Z")
        #expect(RFC3339.format(millis: 4_102_444_799_999) == "2099-12-31T23:59:59.999Z")
        #expect(RFC3339.format(millis: 1_764_054_044_123) == "2025-11-25T07:00:44.123Z")
    }

    @Test func noCardNumberInAnyPayload() {
        let full = CardIdentity(maskedPAN: "476173******0119", hash: [1], brand: "VISA")
        for (_, body) in Self.samples() + [(.authorize, OCPPPayload.authorize(card: full))] {
            var run = 0
            for c in body.text.utf8 { if c >= 0x30 && c <= 0x39 { run += 1; #expect(run < 13) } else { run = 0 } }
        }
    }
}
