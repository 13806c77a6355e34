import JSONLines
import OCPPJ
import Testing

/// The OCPP-J framing: every formation rule, its answer, and exact round trips.
@Suite struct RPCMessageCodec {
    static func fails(_ text: String) -> RPCFormationError? {
        do { _ = try RPCMessage.parse(text); return nil } catch { return error }
    }

    @Test func parsesEveryMessageType() throws {
        #expect(try RPCMessage.parse(#"[2,"19223201","BootNotification",{"reason":"PowerUp"}]"#)
                == .call(id: "19223201", action: "BootNotification", payload: .object([("reason", .string("PowerUp"))])))
        #expect(try RPCMessage.parse(#" [3, "a", {}] "#) == .callResult(id: "a", payload: .object([])))
        #expect(try RPCMessage.parse(#"[4,"a","NotImplemented","no such action",{}]"#)
                == .callError(id: "a", RPCError(.notImplemented, "no such action")))
        #expect(try RPCMessage.parse(#"[5,"a","FormatViolation","",{"x":1}]"#)
                == .callResultError(id: "a", RPCError(.formatViolation, "", details: .object([("x", .int(1))]))))
        #expect(try RPCMessage.parse(#"[6,"a","NotifyPeriodicEventStream",{"id":1}]"#)
                == .send(id: "a", action: "NotifyPeriodicEventStream", payload: .object([("id", .int(1))])))
    }

    @Test func readsOCPP16SpellingsAndUnknownCodes() throws {
        #expect(try RPCMessage.parse(#"[4,"a","FormationViolation","d",{}]"#) == .callError(id: "a", RPCError(.formatViolation, "d")))
        #expect(try RPCMessage.parse(#"[4,"a","OccurenceConstraintViolation","d",{}]"#)
                == .callError(id: "a", RPCError(.occurrenceConstraintViolation, "d")))
        #expect(try RPCMessage.parse(#"[4,"a","TeapotError","d",{}]"#) == .callError(id: "a", RPCError(.genericError, "TeapotError: d")))
    }

    /// Each malformed message: the reason, the code to answer with, and the answer (or none).
    @Test func everyFormationRule() {
        let cases: [(String, RPCFormationError.Reason, RPCErrorCode, RPCMessage?)] = [
            ("nonsense", .notJSON("invalid literal at byte 0"), .rpcFrameworkError, nil),
            (#"{"a":1}"#, .notAnArray, .rpcFrameworkError, nil),
            ("[]", .emptyArray, .rpcFrameworkError, nil),
            (#"["2","id","Heartbeat",{}]"#, .typeNotAnInteger, .rpcFrameworkError,
             .callError(id: "id", RPCError(.rpcFrameworkError, "message type is not an integer"))),
            (#"[2.0,"id","Heartbeat",{}]"#, .typeNotAnInteger, .rpcFrameworkError,
             .callError(id: "id", RPCError(.rpcFrameworkError, "message type is not an integer"))),
            (#"[7,"id","Heartbeat",{}]"#, .unknownType(7), .messageTypeNotSupported,
             .callError(id: "id", RPCError(.messageTypeNotSupported, "message type 7 is not supported"))),
            (#"[7]"#, .unknownType(7), .messageTypeNotSupported, nil),
            (#"[2]"#, .idNotAString, .rpcFrameworkError, nil),
            (#"[2,19223201,"Heartbeat",{}]"#, .idNotAString, .rpcFrameworkError, nil),
            (#"[2,"","Heartbeat",{}]"#, .idLength(0), .rpcFrameworkError, nil),
            ("[2,\"\(String(repeating: "x", count: 37))\",\"Heartbeat\",{}]", .idLength(37), .rpcFrameworkError, nil),
            (#"[2,"id","Heartbeat"]"#, .elementCount(3, expected: 4), .protocolError,
             .callError(id: "id", RPCError(.protocolError, "3 elements, 4 expected"))),
            (#"[2,"id","Heartbeat",{},{}]"#, .elementCount(5, expected: 4), .protocolError,
             .callError(id: "id", RPCError(.protocolError, "5 elements, 4 expected"))),
            (#"[3,"id"]"#, .elementCount(2, expected: 3), .protocolError,
             .callResultError(id: "id", RPCError(.protocolError, "2 elements, 3 expected"))),
            (#"[2,"id",7,{}]"#, .actionNotAString, .rpcFrameworkError,
             .callError(id: "id", RPCError(.rpcFrameworkError, "action is not a string"))),
            (#"[2,"id","Heart beat",{}]"#, .actionFormat, .rpcFrameworkError,
             .callError(id: "id", RPCError(.rpcFrameworkError, "action is not an action name"))),
            (#"[2,"id","",{}]"#, .actionFormat, .rpcFrameworkError,
             .callError(id: "id", RPCError(.rpcFrameworkError, "action is not an action name"))),
            (#"[2,"id","Heartbeat",[]]"#, .payloadNotAnObject, .formatViolation,
             .callError(id: "id", RPCError(.formatViolation, "payload is not an object"))),
            (#"[2,"id","Heartbeat",null]"#, .payloadNotAnObject, .formatViolation,
             .callError(id: "id", RPCError(.formatViolation, "payload is not an object"))),
            (#"[3,"id","ok"]"#, .payloadNotAnObject, .formatViolation,
             .callResultError(id: "id", RPCError(.formatViolation, "payload is not an object"))),
            // Errors and SENDs are never answered, however malformed.
            (#"[4,"id",1,"d",{}]"#, .errorCodeNotAString, .typeConstraintViolation, nil),
            (#"[4,"id","GenericError",null,{}]"#, .descriptionNotAString, .typeConstraintViolation, nil),
            (#"[5,"id","GenericError","d",[]]"#, .detailsNotAnObject, .typeConstraintViolation, nil),
            (#"[4,"id","GenericError","d"]"#, .elementCount(4, expected: 5), .protocolError, nil),
            (#"[6,"id","NotifyPeriodicEventStream",1]"#, .payloadNotAnObject, .formatViolation, nil),
        ]
        for (text, reason, code, answer) in cases {
            guard let e = Self.fails(text) else { Issue.record("accepted: \(text)"); continue }
            #expect(e.reason == reason, "\(text)")
            #expect(e.code == code, "\(text)")
            #expect(e.answer == answer, "\(text)")
        }
    }

    @Test func thirtySixCharacterIdsAreAcceptedAndCountedInCharacters() throws {
        let id36 = String(repeating: "é", count: 36)
        #expect(try RPCMessage.parse("[3,\"\(id36)\",{}]") == .callResult(id: id36, payload: .object([])))
    }

    @Test func oversizeMessagesAreRefusedUnparsed() {
        let big = "[2,\"id\",\"DataTransfer\",{\"data\":\"" + String(repeating: "x", count: RPCLimits.maxMessageBytes) + "\"}]"
        let e = Self.fails(big)
        #expect(e?.reason == .tooLarge(big.utf8.count))
        #expect(e?.answer == nil)
        let justFits = "[3,\"id\",{\"d\":\"" + String(repeating: "x", count: RPCLimits.maxMessageBytes - 17) + "\"}]"
        #expect(justFits.utf8.count == RPCLimits.maxMessageBytes)
        #expect(Self.fails(justFits) == nil)
    }

    @Test func encodesExactJSON() {
        #expect(RPCMessage.call(id: "1", action: "Heartbeat", payload: .object([])).text == #"[2,"1","Heartbeat",{}]"#)
        #expect(RPCMessage.callResult(id: "1", payload: .object([("a", .string("\"q\""))])).text == #"[3,"1",{"a":"\"q\""}]"#)
        #expect(RPCMessage.callError(id: "1", RPCError(.notImplemented, "x")).text == #"[4,"1","NotImplemented","x",{}]"#)
        #expect(RPCMessage.callResultError(id: "1", RPCError(.formatViolation)).text == #"[5,"1","FormatViolation","",{}]"#)
        #expect(RPCMessage.send(id: "1", action: "A", payload: .object([])).text == #"[6,"1","A",{}]"#)
    }

    @Test func errorDescriptionAndDetailsAreBounded() throws {
        let long = String(repeating: "ü", count: 300)
        let bigDetails = JSON.object([("x", .string(String(repeating: "y", count: RPCLimits.maxErrorDetailsBytes)))])
        let m = try RPCMessage.parse(RPCMessage.callError(id: "1", RPCError(.genericError, long, details: bigDetails)).text)
        guard case .callError(_, let e) = m else { Issue.record("\(m)"); return }
        #expect(e.description.unicodeScalars.count == RPCLimits.maxErrorDescriptionLength)
        #expect(e.details == .object([]))
        // Details that are not an object never go out either.
        #expect(RPCMessage.callError(id: "1", RPCError(.genericError, details: .int(3))).text == #"[4,"1","GenericError","",{}]"#)
        let small = JSON.object([("cause", .string("x"))])
        #expect(RPCMessage.callError(id: "1", RPCError(.genericError, details: small)).text == #"[4,"1","GenericError","",{"cause":"x"}]"#)
    }

    @Test func roundTrips() throws {
        let payload = JSON.object([("n", .int(-3)), ("d", .decimal("12.50")), ("s", .string("ä\u{1}\n")), ("a", .array([.null, .bool(true)]))])
        let messages: [RPCMessage] = [
            .call(id: "0f1e2d3c-4b5a-4697-8877-665544332211", action: "TransactionEvent", payload: payload),
            .callResult(id: "x", payload: payload),
            .callError(id: "x", RPCError(.propertyConstraintViolation, "bad", details: payload)),
            .callResultError(id: "x", RPCError(.internalError, "oops")),
            .send(id: "x", action: "NotifyPeriodicEventStream", payload: payload),
        ]
        for m in messages { #expect(try RPCMessage.parse(m.text) == m) }
        for code in RPCErrorCode.allCases { #expect(RPCErrorCode.read(code.rawValue) == code) }
    }

    @Test func actionNames() {
        #expect(RPCMessage.isActionName("Get15118EVCertificate"))
        #expect(!RPCMessage.isActionName("1Heartbeat"))
        #expect(!RPCMessage.isActionName("Heart-beat"))
        #expect(!RPCMessage.isActionName(String(repeating: "A", count: RPCLimits.maxActionLength + 1)))
        #expect(OCPP21Actions.all.allSatisfy(RPCMessage.isActionName))
        #expect(OCPP21Actions.all.contains("BootNotification") && OCPP21Actions.all.contains("NotifySettlement"))
    }
}
