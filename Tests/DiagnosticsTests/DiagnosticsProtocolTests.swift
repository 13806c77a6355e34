import DiagnosticsProtocol
import JSONLines
import Testing

@Suite struct DiagnosticsProtocolTests {
    func parse(_ text: String) -> (id: Int64?, result: Result<DiagnosticsCommand, DiagnosticsError>) {
        DiagnosticsWire.parse(Array(text.utf8))
    }

    func code(_ text: String) -> DiagnosticsErrorCode? {
        if case .failure(let e) = parse(text).result { return e.code }
        return nil
    }

    @Test func everyCommandRoundTripsThroughItsRequestLine() throws {
        let commands: [DiagnosticsCommand] = [
            .status, .inventory, .metrics, .watch, .acceptTerminal,
            .sessions(openOnly: true, last: 5), .sessions(openOnly: false, last: nil),
            .export(from: "2026-12-01", to: "2026-12-04", format: .json), .export(from: nil, to: nil, format: .csv),
            .stop(connector: 2, reason: "cable damaged"), .stop(connector: 1, reason: nil),
            .testTransaction(connector: 1, amount: 100), .testTransaction(connector: nil, amount: nil),
            .plug(connector: 1, plugged: true), .meter(connector: 2, energyWh: 12_345, powerW: 7400),
            .meter(connector: 1, energyWh: 0, powerW: nil), .fault(connector: 1, text: "RCD tripped"),
            .evseReady(connector: 1, ready: false), .relay(connector: 1, closed: true), .controller, .clearFault(connector: 2),
        ]
        #expect(Set(commands.map(\.name)) == Set(DiagnosticsCommand.names))
        for (i, c) in commands.enumerated() {
            let line = DiagnosticsWire.request(id: Int64(i), c)
            #expect(line.hasSuffix("\n") && line.dropLast().firstIndex(of: "\n") == nil)
            let (id, result) = parse(String(line.dropLast()))
            #expect(id == Int64(i))
            #expect(result == .success(c), "\(line)")
        }
    }

    @Test func onlyCommandsThatChangeNothingAreReadOnly() {
        #expect(!DiagnosticsCommand.status.changesSomething)
        #expect(!DiagnosticsCommand.export(from: nil, to: nil, format: .csv).changesSomething)
        #expect(DiagnosticsCommand.stop(connector: 1, reason: nil).changesSomething)
        #expect(DiagnosticsCommand.acceptTerminal.changesSomething)
        #expect(DiagnosticsCommand.meter(connector: 1, energyWh: 1, powerW: nil).changesSomething)
        #expect(DiagnosticsCommand.testTransaction(connector: nil, amount: nil).changesSomething)
    }

    @Test func malformedRequestsGetTheirCodeAndKeepTheirID() {
        #expect(code("{not json") == .badJSON)
        #expect(code("[1,2]") == .badJSON)
        #expect(code(#"{"v":1,"cmd":"status"}"#) == .missingField)
        #expect(code(#"{"v":1,"id":"7","cmd":"status"}"#) == .badField)
        #expect(code(#"{"id":3,"cmd":"status"}"#) == .versionMismatch)
        #expect(parse(#"{"v":2,"id":3,"cmd":"status"}"#).id == 3)
        #expect(code(#"{"v":2,"id":3,"cmd":"status"}"#) == .versionMismatch)
        #expect(code(#"{"v":1,"id":3}"#) == .missingField)
        #expect(code(#"{"v":1,"id":3,"cmd":"reboot"}"#) == .unknownCommand)
        #expect(code(#"{"v":1,"id":3,"cmd":"stop"}"#) == .missingField)
        #expect(code(#"{"v":1,"id":3,"cmd":"stop","connector":0}"#) == .badField)
        #expect(code(#"{"v":1,"id":3,"cmd":"stop","connector":9}"#) == .badField)
        #expect(code(#"{"v":1,"id":3,"cmd":"stop","connector":"1"}"#) == .badField)
        #expect(code(#"{"v":1,"id":3,"cmd":"plug","connector":1}"#) == .missingField)
        #expect(code(#"{"v":1,"id":3,"cmd":"plug","connector":1,"plugged":1}"#) == .badField)
        #expect(code(#"{"v":1,"id":3,"cmd":"meter","connector":1,"energy_wh":-5}"#) == .badField)
        #expect(code(#"{"v":1,"id":3,"cmd":"export","format":"xlsx"}"#) == .badField)
        #expect(code(#"{"v":1,"id":3,"cmd":"sessions","last":0}"#) == .badField)
        #expect(code(#"{"v":1,"id":3,"cmd":"fault","connector":1}"#) == .missingField)
    }

    @Test func operatorTextsAreCutToTheirLimit() throws {
        let long = String(repeating: "é", count: 500)
        guard case .success(.stop(_, let reason?)) = parse(#"{"v":1,"id":1,"cmd":"stop","connector":1,"reason":"\#(long)"}"#).result else {
            Issue.record("not parsed"); return
        }
        #expect(reason.utf8.count <= DiagnosticsLimits.maxTextBytes && reason.utf8.count >= DiagnosticsLimits.maxTextBytes - 1)
    }

    @Test func repliesAreOneJSONObjectPerLine() throws {
        let ok = DiagnosticsWire.ok(id: 4, [("text", .string("a\nb"))])
        #expect(ok.filter { $0 == "\n" }.count == 1)
        let j = try JSON.parse(String(ok.dropLast()))
        #expect(j["ok"] == .bool(true) && j["id"] == .int(4) && j["v"] == .int(1) && j["text"] == .string("a\nb"))
        let no = try JSON.parse(String(DiagnosticsWire.failure(id: nil, DiagnosticsError(.busy, "full")).dropLast()))
        #expect(no["ok"] == .bool(false) && no["id"] == .null && no["error"]?["code"] == .string("busy"))
    }

    @Test func administratorsAreRootTheDaemonsUserAndTheAdminGroup() {
        let access = DiagnosticsAccess(daemonUID: 990, adminGID: 991)
        #expect(access.isAdministrator(uid: 0, gid: 0, groups: []))
        #expect(access.isAdministrator(uid: 990, gid: 990, groups: []))
        #expect(access.isAdministrator(uid: 1000, gid: 991, groups: []))
        #expect(access.isAdministrator(uid: 1000, gid: 1000, groups: [27, 991]))
        #expect(!access.isAdministrator(uid: 1000, gid: 1000, groups: [27]))
        #expect(!DiagnosticsAccess(daemonUID: 990, adminGID: nil).isAdministrator(uid: 1000, gid: 991, groups: [991]))
    }

    @Test func theSplitterSkipsAnOverlongLineAndKeepsTheNext() {
        var s = DiagnosticsLineSplitter(limit: 10)
        #expect(s.feed(Array("0123456789\n012345678\r\n".utf8)) == [.line(Array("0123456789".utf8)), .line(Array("012345678".utf8))])
        #expect(s.feed(Array("0123456789A".utf8)) == [])
        #expect(s.feed(Array("BC\nok\n".utf8)) == [.tooLong(13), .line(Array("ok".utf8))])
        #expect(s.pendingBytes == 0)
    }
}
