import Testing
import PSPCodec

/// psp.md §4.1/§4.2: Get Status Response is two bytes (state 0x01–0x20, running flag 0x01 or
/// otherwise false); Result is one byte (0x00 OK, 0x01 Not OK), or two with detailed codes,
/// the reason (0x02–0x11) last. A 0x00 frame answering Get Status is read every way it can be.
@Suite struct GetStatusAnswerReadings {
    func readings(_ p: [UInt8]) -> ZeroHeaderReadings { TerminalMessage.zeroHeaderReadings(ArraySlice(p)) }
    func afterGetStatus(_ p: [UInt8]) throws -> TerminalMessage {
        try TerminalMessage.decode(header: 0, payload: ArraySlice(p), context: .init(zeroHeader: .status))
    }

    @Test func aOneByteNotOKIsAResultNotOffline() throws {
        #expect(try afterGetStatus([0x01]) == .result(.notOK()))
        #expect(readings([0x01]) == ZeroHeaderReadings(status: nil, result: .notOK()))
        #expect(try afterGetStatus([0x00]) == .result(.ok), "state 0x00 does not exist")
        #expect(try afterGetStatus([0x00, 0x05]) == .result(PSPResult(ok: true, reason: 0x05)))
    }

    @Test func aStatusWithADocumentedFlagIsOnlyAStatus() throws {
        #expect(try afterGetStatus([0x10, 0x01]) == .status(TerminalStatus(.waitCard, transactionRunning: true)))
        #expect(readings([0x01, 0x00]) == ZeroHeaderReadings(status: TerminalStatus(.offline), result: nil),
                "a reason 0x00/0x01 does not exist: a genuine OFFLINE")
        #expect(!readings([0x02, 0x00]).isAmbiguous)
        // Longer than documented: a status with more fields, never a Result.
        #expect(readings([0x08, 0x00, 0x7F]) == ZeroHeaderReadings(status: TerminalStatus(.enabled), result: nil))
    }

    @Test func aNotOKWithADetailedReasonReadsBothWays() throws {
        let r = readings([0x01, 0x05])
        #expect(r.isAmbiguous)
        #expect(r.result == .notOK(ResultReason.wrongState))
        #expect(r.status?.state == .offline)
        #expect(readings([0x08, 0x11]).isAmbiguous)
    }

    @Test func anEmptyAnswerReadsNeitherWay() {
        #expect(readings([]) == ZeroHeaderReadings(status: nil, result: nil))
        #expect(throws: PSPMessageError.self) { try afterGetStatus([]) }
    }
}
