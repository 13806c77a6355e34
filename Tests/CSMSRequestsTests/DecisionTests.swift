import CSMSRequests
import JSONLines
import OCPPJ
import Testing

/// What the station answers to each request and what it then does, one decision at a time.
@Suite struct CSMSRequestDecisions {
    @Test func getTransactionStatusReadsTheLedgerAndTheOutbox() {
        let running = answer("GetTransactionStatus", #"{"transactionId":"tx-1"}"#)
        #expect(running.payload?["ongoingIndicator"] == .bool(true))
        #expect(running.payload?["messagesInQueue"] == .bool(false))
        let ended = answer("GetTransactionStatus", #"{"transactionId":"tx-0"}"#)
        #expect(ended.payload?["ongoingIndicator"] == .bool(false))
        #expect(ended.payload?["messagesInQueue"] == .bool(true))
        let unknown = answer("GetTransactionStatus", #"{"transactionId":"nope"}"#)
        #expect(unknown.payload?["ongoingIndicator"] == .bool(false))
        #expect(unknown.payload?["messagesInQueue"] == .bool(false))
        // Without an id: whether anything waits, and no ongoing indicator (E14.FR.06).
        let any = answer("GetTransactionStatus", "{}")
        #expect(any.payload?["messagesInQueue"] == .bool(true))
        #expect(any.payload?["ongoingIndicator"] == nil)
        #expect(answer("GetTransactionStatus", "{}", idleView()).payload?["messagesInQueue"] == .bool(false))
        #expect(running.actions == [])
    }

    @Test func requestStopTransactionStopsOnlyARunningTransaction() {
        let stop = answer("RequestStopTransaction", #"{"transactionId":"tx-1"}"#)
        #expect(stop.status == "Accepted")
        #expect(stop.actions == [.stopTransaction(transactionId: "tx-1")])
        for id in ["tx-0", "tx-9"] {
            let refused = answer("RequestStopTransaction", #"{"transactionId":"\#(id)"}"#)
            #expect(refused.status == "Rejected")
            #expect(refused.reason == "TxNotFound")
            #expect(refused.actions == [])
        }
    }

    @Test func triggerMessageSendsWhatTheStationHas() {
        var notBooted = sampleView()
        notBooted.bootAccepted = false
        let boot = answer("TriggerMessage", #"{"requestedMessage":"BootNotification"}"#, notBooted)
        #expect(boot.status == "Accepted")
        #expect(boot.actions == [.trigger(.bootNotification, evseId: nil)])
        // Once accepted, a second BootNotification is not the CSMS's to ask for (F06.FR.17).
        #expect(answer("TriggerMessage", #"{"requestedMessage":"BootNotification"}"#).status == "Rejected")

        #expect(answer("TriggerMessage", #"{"requestedMessage":"Heartbeat"}"#).actions == [.trigger(.heartbeat, evseId: nil)])
        #expect(answer("TriggerMessage", #"{"requestedMessage":"StatusNotification","evse":{"id":2,"connectorId":1}}"#).actions
                == [.trigger(.statusNotification, evseId: 2)])
        // F06.FR.12: StatusNotification names one connector.
        for partial in [#"{"requestedMessage":"StatusNotification"}"#, #"{"requestedMessage":"StatusNotification","evse":{"id":2}}"#,
                        #"{"requestedMessage":"StatusNotification","evse":{"id":0,"connectorId":1}}"#] {
            let r = answer("TriggerMessage", partial)
            #expect(r.status == "Rejected", "\(partial)")
            #expect(r.reason == "MissingParam", "\(partial)")
            #expect(r.actions == [], "\(partial)")
        }
        // TransactionEvent: where a transaction can be reported, for one EVSE or all of them.
        let tx = answer("TriggerMessage", #"{"requestedMessage":"TransactionEvent","evse":{"id":1}}"#)
        #expect(tx.status == "Accepted")
        #expect(tx.actions == [.trigger(.transactionEvent, evseId: 1)])
        #expect(answer("TriggerMessage", #"{"requestedMessage":"TransactionEvent"}"#).actions == [.trigger(.transactionEvent, evseId: nil)])
        #expect(answer("TriggerMessage", #"{"requestedMessage":"TransactionEvent","evse":{"id":0}}"#).actions == [.trigger(.transactionEvent, evseId: nil)])
        // Nothing to report on EVSE 2, nor anywhere on an idle station, nor on a transaction
        // the engine will not report again (asked too often, or settling).
        for (payload, view) in [(#"{"requestedMessage":"TransactionEvent","evse":{"id":2}}"#, sampleView()),
                                (#"{"requestedMessage":"TransactionEvent"}"#, idleView())] {
            let r = answer("TriggerMessage", payload, view)
            #expect(r.status == "Rejected", "\(payload)")
            #expect(r.actions == [], "\(payload)")
        }
        var exhausted = sampleView()
        exhausted.evses[0].transactionReportable = false
        #expect(answer("TriggerMessage", #"{"requestedMessage":"TransactionEvent"}"#, exhausted).status == "Rejected")

        let unknownEvse = answer("TriggerMessage", #"{"requestedMessage":"StatusNotification","evse":{"id":3,"connectorId":1}}"#)
        #expect(unknownEvse.status == "Rejected")
        #expect(unknownEvse.reason == "UnknownEvse")
        #expect(answer("TriggerMessage", #"{"requestedMessage":"StatusNotification","evse":{"id":1,"connectorId":2}}"#).reason
                == "UnknownConnectorId")

        for other in ["MeterValues", "LogStatusNotification", "FirmwareStatusNotification", "SignChargingStationCertificate",
                      "SignV2GCertificate", "SignV2G20Certificate", "SignCombinedCertificate", "PublishFirmwareStatusNotification",
                      "CustomTrigger"] {
            let r = answer("TriggerMessage", #"{"requestedMessage":"\#(other)"}"#)
            #expect(r.status == "NotImplemented", "\(other)")
            #expect(r.actions == [], "\(other)")
        }
    }

    @Test func resetOnIdleWaitsForSessionsToSettle() {
        let busy = answer("Reset", #"{"type":"OnIdle"}"#)
        #expect(busy.status == "Scheduled")
        #expect(busy.actions == [.reset(.onIdle)])
        // A session that has not settled yet, before it has a transaction, counts as busy too.
        var arming = idleView()
        arming.evses[1].sessionOngoing = true
        #expect(answer("Reset", #"{"type":"OnIdle"}"#, arming).status == "Scheduled")
        // A transaction named without the session flag is still busy.
        var named = idleView()
        named.evses[0].transactionId = "tx-5"
        #expect(answer("Reset", #"{"type":"OnIdle"}"#, named).status == "Scheduled")
        #expect(answer("ChangeAvailability", #"{"operationalStatus":"Inoperative","evse":{"id":1}}"#, named).status == "Scheduled")
        let idle = answer("Reset", #"{"type":"OnIdle"}"#, idleView())
        #expect(idle.status == "Accepted")
        #expect(idle.actions == [.reset(.onIdle)])

        let now = answer("Reset", #"{"type":"Immediate"}"#)
        #expect(now.status == "Accepted")
        #expect(now.actions == [.reset(.immediate)])
        #expect(answer("Reset", #"{"type":"Immediate","evseId":0}"#).actions == [.reset(.immediate)])

        let resume = answer("Reset", #"{"type":"ImmediateAndResume"}"#)
        #expect(resume.status == "Rejected")
        #expect(resume.actions == [])
        let oneEvse = answer("Reset", #"{"type":"Immediate","evseId":1}"#)
        #expect(oneEvse.status == "Rejected")
        #expect(oneEvse.reason == "UnsupportedRequest")
        #expect(answer("Reset", #"{"type":"OnIdle","evseId":5}"#).reason == "UnknownEvse")
    }

    @Test func changeAvailabilityPerEVSEAndForTheStation() {
        // EVSE 2 is idle: inoperative at once.
        let off = answer("ChangeAvailability", #"{"operationalStatus":"Inoperative","evse":{"id":2}}"#)
        #expect(off.status == "Accepted")
        #expect(off.actions == [.setAvailability(evseId: 2, operative: false)])
        // EVSE 1 charges: scheduled, but the terminal stops arming it now.
        let busy = answer("ChangeAvailability", #"{"operationalStatus":"Inoperative","evse":{"id":1,"connectorId":1}}"#)
        #expect(busy.status == "Scheduled")
        #expect(busy.actions == [.setAvailability(evseId: 1, operative: false)])
        // Already operative: nothing to do.
        let same = answer("ChangeAvailability", #"{"operationalStatus":"Operative","evse":{"id":2}}"#)
        #expect(same.status == "Accepted")
        #expect(same.actions == [])
        var down = idleView()
        down.evses[0].operative = false
        #expect(answer("ChangeAvailability", #"{"operationalStatus":"Operative","evse":{"id":1}}"#, down).actions
                == [.setAvailability(evseId: 1, operative: true)])

        let station = answer("ChangeAvailability", #"{"operationalStatus":"Inoperative"}"#)
        #expect(station.status == "Scheduled")
        #expect(station.actions == [.setAvailability(evseId: nil, operative: false)])
        #expect(answer("ChangeAvailability", #"{"operationalStatus":"Inoperative","evse":{"id":0}}"#, idleView()).status == "Accepted")

        #expect(answer("ChangeAvailability", #"{"operationalStatus":"Inoperative","evse":{"id":9}}"#).reason == "UnknownEvse")
        #expect(answer("ChangeAvailability", #"{"operationalStatus":"Inoperative","evse":{"id":2,"connectorId":2}}"#).reason
                == "UnknownConnectorId")
        var twin = idleView()
        twin.evses[1].connectors = 2
        let oneOfTwo = answer("ChangeAvailability", #"{"operationalStatus":"Inoperative","evse":{"id":2,"connectorId":2}}"#, twin)
        #expect(oneOfTwo.status == "Rejected")
        #expect(oneOfTwo.actions == [])
    }

    @Test func unlockConnectorFollowsTheChargersCapability() {
        let ok = answer("UnlockConnector", #"{"evseId":2,"connectorId":1}"#)
        #expect(ok.status == "Unlocked")
        #expect(ok.actions == [.unlockConnector(evseId: 2, connectorId: 1)])
        #expect(answer("UnlockConnector", #"{"evseId":1,"connectorId":1}"#).status == "OngoingAuthorizedTransaction")
        #expect(answer("UnlockConnector", #"{"evseId":3,"connectorId":1}"#).status == "UnknownConnector")
        #expect(answer("UnlockConnector", #"{"evseId":2,"connectorId":0}"#).status == "UnknownConnector")
        var fixed = sampleView()
        fixed.unlockSupported = false
        let cable = answer("UnlockConnector", #"{"evseId":2,"connectorId":1}"#, fixed)
        #expect(cable.status == "UnlockFailed")
        #expect(cable.reason == "FixedCable")
        #expect(cable.actions == [])
    }

    @Test func cancelReservationOnlyForAnOpenOne() {
        let ok = answer("CancelReservation", #"{"reservationId":7}"#)
        #expect(ok.status == "Accepted")
        #expect(ok.actions == [.cancelReservation(id: 7)])
        let no = answer("CancelReservation", #"{"reservationId":8}"#)
        #expect(no.status == "Rejected")
        #expect(no.actions == [])
    }

    @Test func unhandledActionsAreAnsweredAsTheCoreWould() {
        #expect(answer("ReserveNow", "{}").errorCode == .notSupported)
        #expect(answer("FlyToTheMoon", "{}").errorCode == .notImplemented)
        for action in CSMSRequestHandler.handledActions { #expect(OCPP21Actions.all.contains(action), "\(action)") }
    }

    @Test func malformedPayloadsGetTheOCPPJCodeOfTheirViolation() {
        let cases: [(String, String, RPCErrorCode)] = [
            ("Reset", "{}", .occurrenceConstraintViolation),
            ("Reset", #"{"type":"Soft"}"#, .propertyConstraintViolation),
            ("Reset", #"{"type":3}"#, .typeConstraintViolation),
            ("Reset", #"{"type":"OnIdle","evseId":-1}"#, .propertyConstraintViolation),
            ("Reset", #"{"type":"OnIdle","evseId":"1"}"#, .typeConstraintViolation),
            ("Reset", #"{"type":"OnIdle","evseId":1.5}"#, .typeConstraintViolation),
            ("Reset", #"{"type":"OnIdle","hard":true}"#, .occurrenceConstraintViolation),
            ("Reset", #"{"type":"OnIdle","customData":{}}"#, .occurrenceConstraintViolation),
            ("Reset", #"{"type":"OnIdle","customData":"x"}"#, .typeConstraintViolation),
            ("Reset", "[]", .formatViolation),
            ("RequestStopTransaction", #"{"transactionId":"\#(String(repeating: "x", count: 37))"}"#, .propertyConstraintViolation),
            ("RequestStopTransaction", #"{"transactionId":null}"#, .typeConstraintViolation),
            ("TriggerMessage", #"{"requestedMessage":"Heartbeat","evse":{}}"#, .occurrenceConstraintViolation),
            ("TriggerMessage", #"{"requestedMessage":"Heartbeat","evse":{"id":-2}}"#, .propertyConstraintViolation),
            ("TriggerMessage", #"{"requestedMessage":"Heartbeat","evse":[1]}"#, .typeConstraintViolation),
            ("ChangeAvailability", #"{"operationalStatus":"operative"}"#, .propertyConstraintViolation),
            ("UnlockConnector", #"{"evseId":1}"#, .occurrenceConstraintViolation),
            ("CancelReservation", #"{"reservationId":true}"#, .typeConstraintViolation),
            ("GetVariables", #"{"getVariableData":[]}"#, .occurrenceConstraintViolation),
            ("GetVariables", #"{"getVariableData":[{"component":{"name":"X"}}]}"#, .occurrenceConstraintViolation),
            ("GetVariables", #"{"getVariableData":[{"component":{"name":"X"},"variable":{"name":"\#(String(repeating: "v", count: 51))"}}]}"#,
             .propertyConstraintViolation),
            ("GetVariables", #"{"getVariableData":[{"component":{"name":"X"},"variable":{"name":"Y"},"attributeType":"Maximum"}]}"#,
             .propertyConstraintViolation),
            ("SetVariables", #"{"setVariableData":[{"component":{"name":"X"},"variable":{"name":"Y"}}]}"#, .occurrenceConstraintViolation),
            ("GetBaseReport", #"{"requestId":1,"reportBase":"Everything"}"#, .propertyConstraintViolation),
            ("GetBaseReport", #"{"reportBase":"FullInventory"}"#, .occurrenceConstraintViolation),
        ]
        for (action, payload, code) in cases {
            let r = answer(action, payload)
            #expect(r.errorCode == code, "\(action) \(payload)")
        }
    }

    @Test func moreItemsThanTheDeviceModelTakesIsAnOccurrenceViolation() {
        let item = #"{"component":{"name":"OCPPCommCtrlr"},"variable":{"name":"HeartbeatInterval"}}"#
        let limit = DeviceModelLimits.itemsPerGetVariables
        let atLimit = answer("GetVariables", #"{"getVariableData":[\#(Array(repeating: item, count: limit).joined(separator: ","))]}"#)
        #expect(atLimit.payload?["getVariableResult"]?.arrayValue?.count == limit)
        let over = answer("GetVariables", #"{"getVariableData":[\#(Array(repeating: item, count: limit + 1).joined(separator: ","))]}"#)
        #expect(over.errorCode == .occurrenceConstraintViolation)
        let set = #"{"component":{"name":"OCPPCommCtrlr"},"variable":{"name":"HeartbeatInterval"},"attributeValue":"60"}"#
        let setOver = answer("SetVariables", #"{"setVariableData":[\#(Array(repeating: set, count: DeviceModelLimits.itemsPerSetVariables + 1).joined(separator: ","))]}"#)
        #expect(setOver.errorCode == .occurrenceConstraintViolation)
    }
}
