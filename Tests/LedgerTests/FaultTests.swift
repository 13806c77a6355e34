import Glibc
import Ledger
import Platform
import Testing
import Timebase

@Suite struct FaultTests {
    /// fdatasync fails with EIO: the append is not acknowledged, the failure is
    /// sticky for every operation, fdatasync is never called again, durability
    /// is never reported again; reopening recovers what is on disk.
    @Test(arguments: [false, true])
    func fdatasyncEIOIsStickyAndNeverRetried(preallocate: Bool) throws {
        let dir = TemporaryDirectory()
        let io = FaultyIO()
        var options = smallSegments
        options.preallocate = preallocate
        let (ledger, _, _) = try openLedger(dir.path, options, io: io)
        for i in 0..<10 { try ledger.appendDurably(kind: 1, body: [UInt8(i)]) }
        #expect(ledger.durableSequence == 10)
        try ledger.append(kind: 1, body: [10])
        io.schedule(.fdatasync, .error(EIO))
        let expected = LedgerError.failed(SystemError(call: "fdatasync", errno: EIO))
        #expect(throws: expected) { try ledger.appendDurably(kind: 1, body: [11]) }
        let syncsAtFailure = io.count(.fdatasync)
        let writesAtFailure = io.count(.pwrite)
        #expect(ledger.failure == expected)
        #expect(ledger.durableSequence == 10)
        #expect(throws: expected) { try ledger.sync() }
        #expect(throws: expected) { try ledger.append(kind: 1, body: [12]) }
        #expect(throws: expected) { try ledger.appendDurably(kind: 1, body: [13]) }
        #expect(throws: expected) { try ledger.compact { _ in false } }
        // Enough appends to need a new segment: still refused, no new file.
        for _ in 0..<100 { #expect(throws: expected) { try ledger.append(kind: 1, body: [UInt8](repeating: 1, count: 500)) } }
        #expect(io.count(.fdatasync) == syncsAtFailure, "never fdatasync again after a failed one")
        #expect(io.count(.pwrite) == writesAtFailure, "nothing written after the failure")
        #expect(ledger.durableSequence == 10)
        ledger.close()

        // A restart recovers from what is on disk: everything acknowledged, and
        // here also the unacknowledged two (the injected failure lost nothing).
        let (again, report, records) = try openLedger(dir.path, options)
        #expect(records.map(\.sequence) == Array(1...12))
        #expect(!report.hasDamage && again.failure == nil)
        #expect(try again.appendDurably(kind: 1, body: [14]) == 13)
    }

    /// A failed write (EIO) is as final as a failed sync.
    @Test func writeEIOIsSticky() throws {
        let dir = TemporaryDirectory()
        let io = FaultyIO()
        let (ledger, _, _) = try openLedger(dir.path, smallSegments, io: io)
        try ledger.appendDurably(kind: 1, body: [1])
        io.schedule(.pwrite, .error(EIO))
        #expect(throws: LedgerError.failed(SystemError(call: "pwrite", errno: EIO))) { try ledger.append(kind: 1, body: [2]) }
        let syncs = io.count(.fdatasync)
        #expect(throws: LedgerError.self) { try ledger.sync() }
        #expect(throws: LedgerError.self) { try ledger.append(kind: 1, body: [3]) }
        #expect(io.count(.fdatasync) == syncs)
        #expect(ledger.durableSequence == 1)
    }

    /// ENOSPC in the middle of a record (a short write, then ENOSPC): `.diskFull`,
    /// no partial record left on disk, and appends work again once the disk has room.
    @Test(arguments: [false, true])
    func diskFullCutsThePartialRecordAndRecovers(preallocate: Bool) throws {
        let dir = TemporaryDirectory()
        let io = FaultyIO()
        var options = smallSegments
        options.preallocate = preallocate
        let (ledger, _, _) = try openLedger(dir.path, options, io: io)
        for i in 0..<5 { try ledger.appendDurably(kind: 1, body: [UInt8](repeating: UInt8(i), count: 40)) }
        let name = ledger.segmentNames.last!
        let before = Files.read(dir.sub(name))
        let end = LedgerFormat.segmentHeaderBytes + 5 * (LedgerFormat.recordHeaderBytes + 40)

        io.schedule(.pwrite, nth: 1, .shortWrite(13))
        io.schedule(.pwrite, nth: 2, .error(ENOSPC))
        #expect(throws: LedgerError.diskFull) { try ledger.append(kind: 1, body: [UInt8](repeating: 0xAA, count: 100)) }
        #expect(ledger.failure == nil)
        let after = Files.read(dir.sub(name))
        #expect(after == before, "the 13 bytes written were cut off again")
        #expect(preallocate ? after.count == options.segmentBytes : after.count == end)

        // Still full: refused again, still nothing left behind.
        io.failAlways(.pwrite, ENOSPC)
        #expect(throws: LedgerError.diskFull) { try ledger.appendDurably(kind: 1, body: [1]) }
        io.clear()
        #expect(try ledger.appendDurably(kind: 1, body: [6]) == 6, "the refused records took no sequence")
        ledger.close()
        let (_, report, records) = try openLedger(dir.path, options)
        #expect(records.map(\.sequence) == Array(1...6) && report.truncatedTailBytes == 0 && !report.hasDamage)
    }

    /// A disk too full to create the next segment: `.diskFull`, no temporary
    /// file left, the current segment keeps taking records that fit, and the
    /// rollover succeeds once there is room.
    @Test func diskFullWhenCreatingASegment() throws {
        let dir = TemporaryDirectory()
        let io = FaultyIO()
        var options = smallSegments
        options.preallocate = true
        let (ledger, _, _) = try openLedger(dir.path, options, io: io)
        let big = [UInt8](repeating: 7, count: 1000)
        for _ in 0..<3 { try ledger.appendDurably(kind: 1, body: big) }
        io.failAlways(.fallocate, ENOSPC)
        #expect(throws: LedgerError.diskFull) { try ledger.appendDurably(kind: 1, body: big) }
        #expect(ledger.failure == nil)
        #expect(!Files.list(dir.path).contains { $0.hasSuffix(".new") })
        #expect(Files.segments(dir.path).count == 1)
        #expect(try ledger.appendDurably(kind: 1, body: [1]) == 4, "a small record still fits the current segment")
        io.clear()
        #expect(try ledger.appendDurably(kind: 1, body: big) == 5)
        #expect(Files.segments(dir.path).count == 2)
    }

    /// A disk too full to preallocate the active segment at recovery: the
    /// open still succeeds (preallocation is only an optimisation) and appends
    /// grow the file.
    @Test func diskFullDuringRecoveryPreallocationStillOpens() throws {
        let fixture = try WrittenLedger(seed: 0xFA17_0002, count: 20, options: smallSegments)
        let dir = TemporaryDirectory()
        for segment in fixture.segments { Files.write(dir.sub(segment.name), segment.bytes) }
        let io = FaultyIO()
        io.failAlways(.fallocate, ENOSPC)
        var options = smallSegments
        options.preallocate = true
        let (ledger, report, records) = try openLedger(dir.path, options, io: io)
        #expect(records == fixture.records && !report.hasDamage)
        #expect(io.count(.fallocate) == 1)
        let last = fixture.segments.last!
        #expect(Files.read(dir.sub(last.name)) == last.bytes)
        #expect(try ledger.appendDurably(kind: 1, body: [1]) == UInt64(fixture.records.count + 1))
    }

    /// A short write followed by a normal one completes the record.
    @Test func shortWriteIsContinued() throws {
        let dir = TemporaryDirectory()
        let io = FaultyIO()
        let (ledger, _, _) = try openLedger(dir.path, smallSegments, io: io)
        io.schedule(.pwrite, .shortWrite(1))
        io.schedule(.pwrite, nth: 2, .shortWrite(20))
        let body = Array("a record written in three pieces".utf8)
        try ledger.appendDurably(kind: 2, body: body)
        ledger.close()
        let (_, report, records) = try openLedger(dir.path, smallSegments)
        #expect(records == [LedgerRecord(sequence: 1, kind: 2, body: body)] && report.truncatedTailBytes == 0)
    }

    /// fdatasync fails during recovery: the open fails rather than claim durability.
    @Test func syncFailureDuringRecoveryFailsTheOpen() throws {
        let fixture = try WrittenLedger(seed: 0xFA17_0001, count: 10, options: smallSegments)
        let dir = TemporaryDirectory()
        Files.write(dir.sub(fixture.segments[0].name), fixture.segments[0].bytes)
        let io = FaultyIO()
        io.schedule(.fdatasync, .error(EIO))
        #expect(throws: LedgerError.failed(SystemError(call: "fdatasync", errno: EIO))) {
            try Ledger.open(directory: dir.path, options: smallSegments, io: io)
        }
        let (_, _, records) = try openLedger(dir.path, smallSegments)
        #expect(records == fixture.records)
    }

    /// The directory fsync after a rollover fails: sticky too.
    @Test func directorySyncFailureIsSticky() throws {
        let dir = TemporaryDirectory()
        let io = FaultyIO()
        let (ledger, _, _) = try openLedger(dir.path, smallSegments, io: io)
        try ledger.appendDurably(kind: 1, body: [1])
        io.schedule(.fsync, .error(EIO))
        var thrown: LedgerError?
        for _ in 0..<20 where thrown == nil {
            do { try ledger.appendDurably(kind: 1, body: [UInt8](repeating: 1, count: 900)) } catch { thrown = error }
        }
        #expect(thrown == .failed(SystemError(call: "fsync", errno: EIO)))
        let syncs = io.count(.fdatasync) + io.count(.fsync)
        #expect(throws: LedgerError.self) { try ledger.sync() }
        #expect(io.count(.fdatasync) + io.count(.fsync) == syncs)
    }
}
