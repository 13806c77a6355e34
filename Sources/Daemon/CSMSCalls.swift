import CSMSRequests
import DaemonLog
import JSONLines
import OCPPJ
import OCPPJUplink
import PaymentEngine
import Platform
import Station
import StationCore
import Timebase
import Uplink

/// The CSMS's requests over OCPP-J: the station's state as a `StationView`, the pure
/// `CSMSRequestHandler`'s answer sent back, then its `StationAction`s carried out. The answer goes
/// first: OCPP wants the response to a request before the messages it causes (a triggered
/// StatusNotification, the NotifyReport pages, the TransactionEvent of a remote stop).
extension StationDaemon {
    /// How often a pending Reset checks whether the station has settled.
    static let resetPollInterval: Duration = .seconds(1)

    /// What the handler may read, from the engine, the outbox, the terminal and the configuration.
    func csmsView() -> StationView {
        let engine = station.engine
        let config = running
        let reporter = TransactionReporter(stationId: config.stationId)
        let offers = engine.connectorOffers
        let pending = station.outbox.pendingQueues
        var evses: [StationView.EVSE] = []
        var transactions: [StationView.Transaction] = []
        for c in 0..<engine.config.connectors {
            var evse = StationView.EVSE(id: c + 1, operative: !csmsInoperative.contains(c))
            if let key = offers[c].sessionKey, let s = engine.sessions[key] {
                evse.sessionOngoing = true
                evse.transactionReportable = engine.reportable(key)
                switch s.phase {
                case .awaitingPlug, .charging, .disposing, .authUnknown:
                    let id = reporter.transactionId(key)
                    evse.transactionId = id
                    transactions.append(.init(id: id, ongoing: true, messagesInQueue: pending.contains(id)))
                case .deciding, .authorising, .frozen:
                    break
                }
            }
            evses.append(evse)
        }
        // Ended transactions whose messages the outbox still holds.
        for q in pending.sorted() where q != StationCore.stationQueue && !transactions.contains(where: { $0.id == q }) {
            transactions.append(.init(id: q, ongoing: false, messagesInQueue: true))
        }
        let t = station.terminal.status.identity
        let terminal = StationView.TerminalInventory(vendor: "Payter", model: t?.model, serialNumber: t?.serialNumber,
                                                     firmwareVersion: t?.firmware, simSerial: t?.simSerial,
                                                     processorOption: config.paymentProcessor.rawValue,
                                                     transferNumber: config.terminalTransferNumber.isEmpty ? nil : config.terminalTransferNumber)
        let heartbeat = ocppj?.heartbeatInterval.map { $0.components.seconds } ?? config.heartbeatSeconds
        return StationView(identity: .init(vendor: "paybridge", model: "paybridge", serialNumber: config.stationId, firmwareVersion: paybridgeVersion),
                           evses: evses, stationOperative: csmsInoperative.count < engine.config.connectors || engine.config.connectors == 0,
                           transactions: transactions, terminal: terminal,
                           // The charger ports (simulated, controller socket) have no cable lock to release.
                           unlockSupported: false, reservations: [],
                           settings: .init(heartbeatIntervalSeconds: heartbeat, offlineChargingAllowed: station.engine.config.offlinePolicy == .allow),
                           bootAccepted: ocppj?.registration == .accepted)
    }

    /// One CALL from the CSMS: answered now, its actions carried out after the answer.
    func csmsCall(id: String, action: String, payload: JSON) {
        guard let uplink = ocppj else { return }
        switch CSMSRequestHandler.handle(action: action, payload: payload, view: csmsView(), now: WallClock.nowMillisecondsSinceEpoch()) {
        case .failure(let error):
            Log.warning("CSMS \(action) refused: \(error.code.rawValue) \(error.description)")
            uplink.answer(id: id, error: error)
        case .success(let result):
            uplink.answer(id: id, payload: result.payload)
            Log.info("CSMS \(action): answered \(result.payload["status"]?.stringValue ?? "")")
            for a in result.actions { carryOut(a) }
        }
    }

    func carryOut(_ action: StationAction) {
        let engine = station.engine
        switch action {
        case .stopTransaction(let transactionId):
            if let key = TransactionReporter(stationId: running.stationId).session(ofTransactionId: transactionId),
               let c = engine.sessions[key]?.connector, engine.connectorOffers.indices.contains(c), engine.connectorOffers[c].sessionKey == key {
                Log.info("CSMS RequestStopTransaction: stopping the session on connector \(c + 1)")
                station.post(.engine(.operatorStop(connector: c)))
            }
        case .trigger(let message, let evseId):
            switch message {
            case .bootNotification: ocppj?.triggerBoot()
            case .heartbeat: ocppj?.triggerHeartbeat()
            case .statusNotification: station.post(.resendStatus(connector: evseId.map { $0 - 1 }))
            case .transactionEvent:
                // Through the engine: the request is written ahead, and the reporter makes the
                // event from the entry, so a restart gives it the same seqNo and id.
                let offers = engine.connectorOffers
                for c in 0..<engine.config.connectors where evseId == nil || evseId == c + 1 {
                    if let key = offers[c].sessionKey, engine.reportable(key) { station.post(.engine(.reportRequested(key))) }
                }
            }
        case .reset(let kind):
            reset(kind)
        case let .setAvailability(evseId, operative):
            let connectors = evseId.map { [$0 - 1] } ?? Array(0..<engine.config.connectors)
            for c in connectors {
                if operative { csmsSettings.inoperative.remove(c) } else { csmsSettings.inoperative.insert(c) }
                // The terminal stops arming a connector the engine holds; a session already on
                // it runs to its end (the CSMS was answered Scheduled).
                station.post(.engine(.connectorHeld(connector: c, !operative)))
            }
            keepCSMSSettings()
            Log.info("CSMS ChangeAvailability: connector(s) \(connectors.map { $0 + 1 }) \(operative ? "operative" : "inoperative")")
        case let .setVariable(component, variable, value):
            switch (component, variable) {
            case ("OCPPCommCtrlr", "HeartbeatInterval"):
                if let seconds = Int64(value) { ocppj?.setHeartbeatInterval(seconds: seconds) }
            case ("AuthCtrlr", "OfflineTxForUnknownIdEnabled"):
                csmsSettings.offlineAllowed = value == "true"
                keepCSMSSettings()
                station.post(.engine(.reconfigure(csmsSettings.applied(to: running.engine))))
            default:
                Log.warning("CSMS SetVariables \(component).\(variable): accepted by the handler but not applied here")
                return
            }
            Log.info("CSMS SetVariables \(component).\(variable) = \(value) (the configuration file is not changed)")
        case let .sendReport(requestId, pages):
            for (i, page) in pages.enumerated() {
                station.post(.report(.notifyReport, page, name: "report/\(requestId)/\(i)"))
            }
        case .cancelReservation, .unlockConnector:
            // The view offers neither (no reservations, no cable lock): the handler refuses them.
            Log.warning("CSMS: \(action) has nothing to act on here")
        }
    }

    /// Reset: no new cards; Immediate stops what charges now; once nothing is open the daemon
    /// exits with `ExitStatus.resetRequested` and systemd starts it again (Restart=on-failure).
    /// Writes what the CSMS set to `STATE/csms-settings`; a failure is logged and the setting
    /// holds until the next start.
    func keepCSMSSettings() {
        do { try CSMSSettingsFile.write(csmsSettings, state: running.stateDirectory) } catch {
            Log.warning("CSMS settings not kept across a restart: \(error)")
        }
    }

    func reset(_ kind: ResetKind) {
        guard !resetPending else { return }
        resetPending = true
        Log.warning("CSMS Reset (\(kind)): taking no new cards; restarting once every session has settled")
        station.notTakingPayments = "the CSMS asked for a reset: restarting once every session has settled"
        station.post(.engine(.acceptNewSessions(false)))
        if kind == .immediate {
            for c in 0..<station.engine.config.connectors { station.post(.engine(.operatorStop(connector: c))) }
        }
        func check() {
            if station.engine.sessions.isEmpty {
                Log.warning("CSMS Reset: every session settled; exiting with status \(ExitStatus.resetRequested) to be restarted")
                // The next process's BootNotification says why it booted.
                do { try BootReasonFile.write(.remoteReset, state: running.stateDirectory) } catch {
                    Log.warning("CSMS Reset: the boot reason could not be kept (\(error)); the next Boot will say PowerUp")
                }
                exitStatus = ExitStatus.resetRequested
                stop()
            } else {
                _ = loop.schedule(at: MonotonicClock.now() + Self.resetPollInterval) { check() }
            }
        }
        _ = loop.schedule(at: MonotonicClock.now() + Self.resetPollInterval) { check() }
    }

    /// The CSMS's answer to a TransactionEvent: its `totalCost` is compared with the station's own
    /// (a difference is a warning: the driver was charged the local tariff's amount, and someone
    /// must reconcile), its `transactionLimit.maxCost` lowers the running session's cap.
    func transactionResponse(_ message: OutboxMessage, _ payload: JSON) {
        guard message.action == .transactionEvent, let request = try? JSON.parse(message.body),
              let transactionId = TransactionResponseReading.transactionId(request) else { return }
        if let (local, currency) = TransactionResponseReading.localTotal(request),
           let theirs = TransactionResponseReading.csmsTotal(payload, currency: currency), theirs != local {
            csmsCostDifferences += 1
            Log.warning("transaction \(transactionId): the CSMS's totalCost \(JSON.decimal(minor: theirs, exponent: CurrencyExponent.of(currency)).text) \(currency) differs from the station's \(JSON.decimal(minor: local, exponent: CurrencyExponent.of(currency)).text) \(currency); the card was charged the station's amount")
        }
        guard let key = TransactionReporter(stationId: running.stationId).session(ofTransactionId: transactionId),
              let session = station.engine.sessions[key] else { return }
        switch TransactionLimit.maxCost(inResponse: payload, currency: session.tariff.currency) {
        case .absent: return
        case .unreadable(let why):
            Log.warning("transaction \(transactionId): the CSMS's transactionLimit.maxCost is unreadable (\(why)); the cap stays")
        case .maxCost(let limit):
            // The engine writes the lower cap ahead and stops the session if it is already reached;
            // a limit that is not lower is ignored with a notice.
            Log.info("transaction \(transactionId): the CSMS set transactionLimit.maxCost \(limit) (minor units)")
            station.post(.engine(.costLimit(key, maxCost: limit)))
        }
    }
}
