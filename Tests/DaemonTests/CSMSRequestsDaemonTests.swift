import ChargerPort
import Configuration
import CSMSProcess
@testable import Daemon
import FakeTerminal
import Foundation
import JSONLines
import PaymentEngine
import Platform
import Testing
import TerminalPort
import Timebase

/// The CSMS's requests over OCPP-J to the daemon as it runs (in process, FakeTerminal), sent by
/// the `ocpp` package's CSMS: each answer is checked by that library against the official 2.1
/// schema before it reaches the test, and what each request sets off (a Heartbeat, a
/// StatusNotification, NotifyReport pages, a reset) is seen in the CSMS's record.
@Suite(.serialized) struct CSMSRequestsToTheDaemon {
    @Test func everyRequestIsAnsweredValidlyAndCarriedOut() throws {
        let dir = try stateDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        guard let csms = try CSMSProcess(record: dir + "/csms.jsonl") else { return }
        var config = DaemonConfig()
        config.stateDirectory = dir + "/state"
        config.engine.connectors = 2
        config.cloudURL = "ws://127.0.0.1:\(csms.port)/ocpp"
        config.stationId = "CS-REQ"
        config.terminalTransferNumber = "TTN-42"
        config.diagnosticsSocket = ""
        let a = try arguments(writing: config, to: dir + "/paybridge.conf")
        let terminal = FakeTerminal()
        terminal.identify(TerminalInventory(serialNumber: "PT-0042", model: "APOLLO", firmware: "2.1.7", simSerial: "8931080000000000042"))
        let loop = try EventLoop()
        let daemon = StationDaemon(loop: loop, arguments: a, terminal: .port(terminal))
        try daemon.boot()
        defer { daemon.finish() }
        func pump(until: () -> Bool, seconds: Int64 = 10) throws -> Bool {
            let deadline = MonotonicClock.now() + .seconds(seconds)
            while !until() {
                guard MonotonicClock.now() < deadline else { return false }
                try loop.runOnce(maxWait: .milliseconds(20))
            }
            return true
        }
        #expect(try pump { daemon.ocppj?.registration == .accepted }, "no accepted Boot")
        func ask(_ action: String, _ payload: String) throws -> JSON? {
            try csms.command(#"{"cmd":"call","action":"\#(action)","payload":\#(payload)}"#)
            guard let line = try csms.aside(prefix: "", loop: loop) else { Issue.record("\(action): no answer"); return nil }
            #expect(line.hasPrefix("response \(action) "), "\(action): \(line)")
            return try? JSON.parse(String(line.dropFirst("response \(action) ".count)))
        }
        func status(_ j: JSON?) -> String? { j?["status"]?.stringValue }

        let tx = try ask("GetTransactionStatus", "{}")
        #expect(tx?["messagesInQueue"] != nil)
        #expect(status(try ask("RequestStopTransaction", #"{"transactionId":"CS-REQ-999"}"#)) == "Rejected")
        #expect(status(try ask("TriggerMessage", #"{"requestedMessage":"BootNotification"}"#)) == "Rejected", "already accepted")
        // No transaction to report (the station is idle): Rejected, nothing written.
        #expect(status(try ask("TriggerMessage", #"{"requestedMessage":"TransactionEvent"}"#)) == "Rejected")
        let heartbeats = csms.calls("Heartbeat").count
        #expect(status(try ask("TriggerMessage", #"{"requestedMessage":"Heartbeat"}"#)) == "Accepted")
        #expect(try pump { csms.calls("Heartbeat").count == heartbeats + 1 }, "no triggered Heartbeat")
        let statuses = csms.calls("StatusNotification").count
        #expect(status(try ask("TriggerMessage", #"{"requestedMessage":"StatusNotification","evse":{"id":2,"connectorId":1}}"#)) == "Accepted")
        #expect(try pump { csms.calls("StatusNotification").count > statuses }, "no triggered StatusNotification")

        let got = try ask("GetVariables", #"{"getVariableData":[{"component":{"name":"PaymentCtrlr"},"variable":{"name":"SerialNumber"}},{"component":{"name":"PaymentCtrlr"},"variable":{"name":"ICCID"}},{"component":{"name":"PaymentCtrlr"},"variable":{"name":"TransferNumber"}},{"component":{"name":"ChargingStation"},"variable":{"name":"SerialNumber"}},{"component":{"name":"Nope"},"variable":{"name":"X"}}]}"#)
        let values = got?["getVariableResult"]?.arrayValue?.map { $0["attributeValue"]?.stringValue ?? $0["attributeStatus"]?.stringValue ?? "" }
        #expect(values == ["PT-0042", "8931080000000000042", "TTN-42", "CS-REQ", "UnknownComponent"])
        let set = try ask("SetVariables", #"{"setVariableData":[{"component":{"name":"OCPPCommCtrlr"},"variable":{"name":"HeartbeatInterval"},"attributeValue":"120"},{"component":{"name":"PaymentCtrlr"},"variable":{"name":"SerialNumber"},"attributeValue":"x"}]}"#)
        #expect(set?["setVariableResult"]?.arrayValue?.map { $0["attributeStatus"]?.stringValue } == ["Accepted", "Rejected"])
        #expect(daemon.ocppj?.heartbeatInterval == .seconds(120))

        #expect(status(try ask("GetBaseReport", #"{"requestId":7,"reportBase":"FullInventory"}"#)) == "Accepted")
        #expect(try pump { csms.calls("NotifyReport").contains { $0["payload"]?["tbc"] != .bool(true) } }, "the report did not finish")
        let pages = csms.calls("NotifyReport")
        #expect(!pages.isEmpty && pages.allSatisfy { $0["valid"] == .bool(true) && $0["payload"]?["requestId"] == .int(7) })
        #expect(pages.map { $0["payload"]?["seqNo"] } == (0..<pages.count).map { JSON.int(Int64($0)) })

        #expect(status(try ask("ChangeAvailability", #"{"operationalStatus":"Inoperative","evse":{"id":2}}"#)) == "Accepted")
        #expect(status(try ask("UnlockConnector", #"{"evseId":1,"connectorId":1}"#)) == "UnlockFailed")
        #expect(status(try ask("CancelReservation", #"{"reservationId":3}"#)) == "Rejected")
        // An action outside the handled set is the RPC core's: NotSupported, schema-valid as an error.
        try csms.command(#"{"cmd":"call","action":"GetLog","payload":{"logType":"DiagnosticsLog","requestId":1,"log":{"remoteLocation":"https://x.example/"}}}"#)
        #expect(try csms.aside(prefix: "callerror GetLog", loop: loop)?.contains("NotSupported") == true)
        // A malformed request: the library refuses to send it unless told not to validate.
        try csms.command(#"{"cmd":"call","action":"ChangeAvailability","payload":{"operationalStatus":"Sideways"},"validate":false}"#)
        #expect(try csms.aside(prefix: "callerror ChangeAvailability", loop: loop) != nil)

        // The technicians' status names the protocol and the registration.
        let shown = JSON.object(try #require(daemon.diagnostics).status())
        #expect(shown["outbox"]?["protocol"]?.stringValue == "ocpp-j")
        #expect(shown["outbox"]?["ocpp_j"]?["registration"]?.stringValue == "accepted")
        #expect(shown["outbox"]?["ocpp_j"]?["heartbeat_seconds"] == .int(120))
        #expect(shown["outbox"]?["ocpp_j"]?["unhandled_actions"] == .int(1))

        // Reset OnIdle with nothing open: the daemon stops with the status that gets it restarted.
        #expect(status(try ask("Reset", #"{"type":"OnIdle"}"#)) == "Accepted")
        #expect(try pump(until: { daemon.exitStatus == ExitStatus.resetRequested }, seconds: 5))
        #expect(csms.calls("BootNotification").allSatisfy { $0["valid"] == .bool(true) })
    }

    /// A CSMS's Reset restarts the daemon (exit 75, systemd starts it again): the next process's
    /// BootNotification says RemoteReset, and once that Boot is accepted the one after says
    /// PowerUp again.
    @Test func theBootAfterAResetSaysRemoteReset() throws {
        let dir = try stateDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        guard let csms = try CSMSProcess(record: dir + "/csms.jsonl") else { return }
        var config = DaemonConfig()
        config.stateDirectory = dir + "/state"
        config.cloudURL = "ws://127.0.0.1:\(csms.port)/ocpp"
        config.stationId = "CS-RESET"
        config.diagnosticsSocket = ""
        let a = try arguments(writing: config, to: dir + "/paybridge.conf")
        func run(_ body: (StationDaemon, EventLoop) throws -> Void) throws { try withAcceptedDaemon(a, body) }
        func reasons() -> [String?] { csms.calls("BootNotification").map { $0["payload"]?["reason"]?.stringValue } }
        try run { daemon, loop in
            try csms.command(#"{"cmd":"call","action":"Reset","payload":{"type":"OnIdle"}}"#)
            #expect(try csms.aside(prefix: "response Reset", loop: loop)?.contains("Accepted") == true)
            let deadline = MonotonicClock.now() + .seconds(5)
            while daemon.exitStatus != ExitStatus.resetRequested && MonotonicClock.now() < deadline { try loop.runOnce(maxWait: .milliseconds(20)) }
            #expect(daemon.exitStatus == ExitStatus.resetRequested)
        }
        #expect(FileManager.default.fileExists(atPath: dir + "/state/boot-reason"), "the reason was not kept for the next start")
        try run { _, _ in }
        #expect(!FileManager.default.fileExists(atPath: dir + "/state/boot-reason"), "the reason outlived its accepted Boot")
        try run { _, _ in }
        #expect(reasons() == ["PowerUp", "RemoteReset", "PowerUp"], "\(reasons())")
        #expect(csms.calls("BootNotification").allSatisfy { $0["valid"] == .bool(true) })
    }

    /// ChangeAvailability Inoperative and SetVariables survive a restart (OCPP keeps an
    /// inoperative EVSE inoperative across a reboot): the next process holds the connector and
    /// keeps the offline policy the CSMS set over the file's; Operative again releases it.
    @Test func whatTheCSMSSetOutlivesARestart() throws {
        let dir = try stateDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        guard let csms = try CSMSProcess(record: dir + "/csms.jsonl") else { return }
        var config = DaemonConfig()
        config.stateDirectory = dir + "/state"
        config.engine.connectors = 2
        config.engine.offlinePolicy = .deny
        config.cloudURL = "ws://127.0.0.1:\(csms.port)/ocpp"
        config.stationId = "CS-KEEP"
        config.diagnosticsSocket = ""
        let a = try arguments(writing: config, to: dir + "/paybridge.conf")
        // A charger from outside, so payments are taken and a free connector is offered.
        func run(_ body: (StationDaemon, EventLoop) throws -> Void) throws {
            try withAcceptedDaemon(a, charger: { NoChargerIO(loop: $0) }) { daemon, loop in
                for _ in 0..<10 { try loop.runOnce(maxWait: .milliseconds(10)) }
                try body(daemon, loop)
            }
        }
        func ask(_ action: String, _ payload: String, _ loop: EventLoop) throws -> String? {
            try csms.command(#"{"cmd":"call","action":"\#(action)","payload":\#(payload)}"#)
            return try csms.aside(prefix: "response \(action)", loop: loop)
        }
        try run { daemon, loop in
            #expect(daemon.station.engine.connectorOffers[1] == .available)
            #expect(try ask("ChangeAvailability", #"{"operationalStatus":"Inoperative","evse":{"id":2}}"#, loop)?.contains("Accepted") == true)
            #expect(try ask("SetVariables", #"{"setVariableData":[{"component":{"name":"AuthCtrlr"},"variable":{"name":"OfflineTxForUnknownIdEnabled"},"attributeValue":"true"}]}"#, loop)?.contains("Accepted") == true)
            for _ in 0..<10 { try loop.runOnce(maxWait: .milliseconds(10)) }
            #expect(daemon.station.engine.connectorOffers[1] == .unavailable)
            #expect(daemon.station.engine.config.offlinePolicy == .allow)
        }
        #expect(try String(contentsOfFile: dir + "/state/csms-settings", encoding: .utf8) == "inoperative=2\noffline_tx_for_unknown_id=true\n")
        try run { daemon, loop in
            #expect(daemon.station.engine.connectorOffers == [.available, .unavailable], "EVSE 2 is operative again after a restart")
            #expect(daemon.station.engine.config.offlinePolicy == .allow, "the file's deny came back over the CSMS's setting")
            // A reload of the file keeps the CSMS's value too.
            daemon.reloadFromFile()
            for _ in 0..<10 { try loop.runOnce(maxWait: .milliseconds(10)) }
            #expect(daemon.station.engine.config.offlinePolicy == .allow)
            #expect(try ask("ChangeAvailability", #"{"operationalStatus":"Operative","evse":{"id":2}}"#, loop)?.contains("Accepted") == true)
        }
        try run { daemon, _ in
            #expect(daemon.station.engine.connectorOffers == [.available, .available])
        }
        #expect(csms.events().filter { $0["event"]?.stringValue == "call" }.allSatisfy { $0["valid"] == .bool(true) })
    }

    @Test func aDamagedSettingsFileIsReadForWhatItHolds() throws {
        let dir = try stateDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "inoperative=1,9,x\nnonsense\noffline_tx_for_unknown_id=maybe\ncolour=blue\n".write(toFile: dir + "/csms-settings", atomically: true, encoding: .utf8)
        let (settings, skipped) = CSMSSettingsFile.read(state: dir, connectors: 2)
        #expect(settings == CSMSSettings(inoperative: [0], offlineAllowed: nil))
        #expect(skipped.count == 5, "\(skipped)")
        try CSMSSettingsFile.write(CSMSSettings(inoperative: [1, 0], offlineAllowed: false), state: dir)
        #expect(CSMSSettingsFile.read(state: dir, connectors: 2).0 == CSMSSettings(inoperative: [0, 1], offlineAllowed: false))
        #expect(!FileManager.default.fileExists(atPath: dir + "/csms-settings.tmp"))
        // Too big to be ours: ignored whole.
        try String(repeating: "x", count: CSMSSettingsFile.maxBytes + 1).write(toFile: dir + "/csms-settings", atomically: true, encoding: .utf8)
        #expect(CSMSSettingsFile.read(state: dir, connectors: 2).0 == CSMSSettings())
    }
}

/// Boots a daemon in process on `arguments` (FakeTerminal, and the charger `charger` makes for
/// the loop, if any), runs the loop until the CSMS accepted its Boot (10 s at most), then `body`.
func withAcceptedDaemon(_ arguments: DaemonArguments, charger: ((EventLoop) -> ChargerPort)? = nil,
                        _ body: (StationDaemon, EventLoop) throws -> Void) throws {
    let loop = try EventLoop()
    let daemon = StationDaemon(loop: loop, arguments: arguments, terminal: .port(FakeTerminal()), charger: charger?(loop))
    try daemon.boot()
    defer { daemon.finish() }
    let deadline = MonotonicClock.now() + .seconds(10)
    while daemon.ocppj?.registration != .accepted && MonotonicClock.now() < deadline { try loop.runOnce(maxWait: .milliseconds(20)) }
    #expect(daemon.ocppj?.registration == .accepted, "no accepted Boot")
    try body(daemon, loop)
}
