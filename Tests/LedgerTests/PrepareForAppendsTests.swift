import Glibc
import Ledger
import Platform
import Testing

/// `prepareForAppends`: the start-up proof that the ledger can take a record, made through the
/// same system calls an append would use (faults injected with `FaultyIO`).
@Suite struct PrepareForAppends {
    @Test func anEmptyLedgerGetsItsFirstSegmentDurablyAndNoRecord() throws {
        let dir = TemporaryDirectory()
        let io = FaultyIO()
        let (ledger, _, _) = try openLedger(dir.path, smallSegments, io: io)
        #expect(Files.segments(dir.path).isEmpty)
        try ledger.prepareForAppends()
        #expect(Files.segments(dir.path).count == 1)
        #expect(io.count(.fdatasync) >= 1)
        // No record was written: the next append is still sequence 1, in that segment.
        #expect(try ledger.appendDurably(kind: 1, body: [1]) == 1)
        #expect(Files.segments(dir.path).count == 1)
        ledger.close()
        let (_, report, records) = try openLedger(dir.path, smallSegments)
        #expect(records.map(\.sequence) == [1] && !report.hasDamage)
    }

    @Test func aSecondCallOnlySyncs() throws {
        let dir = TemporaryDirectory()
        let io = FaultyIO()
        let (ledger, _, _) = try openLedger(dir.path, smallSegments, io: io)
        try ledger.prepareForAppends()
        let writes = io.count(.pwrite)
        try ledger.prepareForAppends()
        #expect(io.count(.pwrite) == writes)
        #expect(Files.segments(dir.path).count == 1)
    }

    @Test(arguments: [EIO, EROFS])
    func aFailingSyncIsAStickyFailure(errno code: Int32) throws {
        let dir = TemporaryDirectory()
        let io = FaultyIO()
        let (ledger, _, _) = try openLedger(dir.path, smallSegments, io: io)
        try ledger.appendDurably(kind: 1, body: [1])
        io.schedule(.fdatasync, .error(code))
        #expect(throws: LedgerError.failed(SystemError(call: "fdatasync", errno: code))) { try ledger.prepareForAppends() }
        #expect(ledger.failure != nil)
    }

    @Test func aDiskThatCannotHoldASegmentIsReported() throws {
        let dir = TemporaryDirectory()
        let io = FaultyIO()
        let (ledger, _, _) = try openLedger(dir.path, smallSegments, io: io)
        io.failAlways(.pwrite, ENOSPC)
        io.failAlways(.fallocate, ENOSPC)
        #expect(throws: LedgerError.self) { try ledger.prepareForAppends() }
    }
}
