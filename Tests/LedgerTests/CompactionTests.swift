import Glibc
import Ledger
import Platform
import Testing
import Timebase

@Suite struct CompactionTests {
    /// Session records: each session opens and later closes; a record is live
    /// while its session is open. Dead sealed segments go, live records survive
    /// (same sequence, kind and body) and are found again after a reopen.
    @Test func deletesDeadSealedSegmentsAndPreservesLiveRecords() throws {
        let seed: UInt64 = 0xC0A1_0001
        var rng = SeededGenerator(seed: seed)
        let dir = TemporaryDirectory()
        let (ledger, _, _) = try openLedger(dir.path, smallSegments)
        var all: [LedgerRecord] = []
        for _ in 0..<400 {
            let body = testBody(&rng, length: Int.random(in: 10...60, using: &rng))
            all.append(LedgerRecord(sequence: try ledger.append(kind: 1, body: body), kind: 1, body: body))
        }
        try ledger.sync()
        // A few long-open sessions early in the log; everything else closed.
        let live: Set<UInt64> = [3, 50, 51, 120]
        let segmentsBefore = ledger.segmentNames
        let usedBefore = ledger.usedBytes
        let report = try ledger.compact { live.contains($0.sequence) }
        #expect(report.segmentsDeleted == segmentsBefore.count - 1, "every sealed segment was dead or nearly so; seed \(seed)")
        #expect(report.recordsRelocated == live.count)
        #expect(report.segmentsKept == 0 && report.damagedSegment == nil)
        #expect(report.bytesFreed > 0 && ledger.usedBytes < usedBefore)
        #expect(Files.segments(dir.path) == ledger.segmentNames)
        #expect(!Files.exists(dir.sub(segmentsBefore[0])))
        ledger.close()

        let lastSegmentFirst = LedgerFormat.firstSequence(ofSegmentNamed: segmentsBefore.last!)!
        let (again, recovery, records) = try openLedger(dir.path, smallSegments)
        let expected = all.filter { live.contains($0.sequence) || $0.sequence >= lastSegmentFirst }
        #expect(records == expected, "relocated records keep sequence, kind and body; seed \(seed)")
        #expect(!recovery.hasDamage, "compaction deletes from the front only: no gap; \(recovery)")
        // New appends continue above the slots the copies took.
        let next = try again.appendDurably(kind: 2, body: [2])
        #expect(next == UInt64(all.count + live.count + 1))
        // A second compaction with everything dead removes the rest but the active segment.
        let second = try again.compact { _ in false }
        #expect(again.segmentNames.count == 1)
        #expect(second.segmentsKept == 0)
    }

    /// A sealed segment with more live data than the relocation limit stops
    /// compaction there: it and every later segment stay, even dead ones.
    @Test func stopsAtASegmentWithTooMuchLiveData() throws {
        let dir = TemporaryDirectory()
        var options = smallSegments
        options.compactionRelocateLimitBytes = 200
        let (ledger, _, _) = try openLedger(dir.path, options)
        for i in 0..<200 { try ledger.append(kind: 1, body: [UInt8](repeating: UInt8(i & 0xFF), count: 50)) }
        try ledger.sync()
        let names = ledger.segmentNames
        let second = LedgerFormat.firstSequence(ofSegmentNamed: names[1])!
        let third = LedgerFormat.firstSequence(ofSegmentNamed: names[2])!
        // Segment 0 dead, segment 1 entirely live (far over 200 bytes), the rest dead.
        let report = try ledger.compact { (second..<third).contains($0.sequence) }
        #expect(report.segmentsDeleted == 1 && report.recordsRelocated == 0)
        #expect(report.segmentsKept == names.count - 2)
        #expect(ledger.segmentNames == Array(names.dropFirst()))
    }

    /// A crash after the copies were made durable but before the originals
    /// were deleted (here: the unlink fails) leaves both on disk; recovery
    /// returns each record once.
    @Test func crashBetweenRelocationAndDeletionReturnsEachRecordOnce() throws {
        let dir = TemporaryDirectory()
        let io = FaultyIO()
        let (ledger, _, _) = try openLedger(dir.path, smallSegments, io: io)
        var all: [LedgerRecord] = []
        for i in 0..<150 {
            let body = [UInt8](repeating: UInt8(i), count: 30)
            all.append(LedgerRecord(sequence: try ledger.append(kind: 5, body: body), kind: 5, body: body))
        }
        try ledger.sync()
        let activeFirst = LedgerFormat.firstSequence(ofSegmentNamed: ledger.segmentNames.last!)!
        let live: Set<UInt64> = [2, 4, 60]
        #expect(activeFirst > 60)
        io.schedule(.unlink, .error(EIO))
        #expect(throws: LedgerError.failed(SystemError(call: "unlink", errno: EIO))) {
            try ledger.compact { live.contains($0.sequence) }
        }
        ledger.close()
        let (again, report, records) = try openLedger(dir.path, smallSegments)
        #expect(records == all, "originals present, copies ignored")
        #expect(!report.hasDamage)
        // Finish the compaction: then only the copies remain, still once each.
        _ = try again.compact { live.contains($0.sequence) }
        again.close()
        let (_, _, final) = try openLedger(dir.path, smallSegments)
        #expect(Set(final.map(\.sequence)).count == final.count)
        #expect(final.filter { $0.sequence < activeFirst } == all.filter { live.contains($0.sequence) })
        #expect(final.filter { $0.sequence >= activeFirst && $0.sequence <= 150 } == all.filter { $0.sequence >= activeFirst })
    }

    /// `dropping` sees exactly the dead records of the segments that go, and what
    /// `carryForward` returns is appended and durable before they are deleted: a crash
    /// in between (the unlink fails) leaves the originals and the carried records both.
    @Test func carriedForwardRecordsAreDurableBeforeTheDeadOnesGo() throws {
        let dir = TemporaryDirectory()
        let io = FaultyIO()
        let (ledger, _, _) = try openLedger(dir.path, smallSegments, io: io)
        var all: [LedgerRecord] = []
        for i in 0..<150 {
            let body = [UInt8](repeating: UInt8(i), count: 30)
            all.append(LedgerRecord(sequence: try ledger.append(kind: 5, body: body), kind: 5, body: body))
        }
        try ledger.sync()
        let activeFirst = LedgerFormat.firstSequence(ofSegmentNamed: ledger.segmentNames.last!)!
        let live: Set<UInt64> = [2, 60]
        var seen: [LedgerRecord] = []
        io.schedule(.unlink, .error(EIO))
        #expect(throws: LedgerError.failed(SystemError(call: "unlink", errno: EIO))) {
            try ledger.compact(isLive: { live.contains($0.sequence) }, dropping: { seen.append($0) },
                               carryForward: { [(kind: 9, body: [UInt8(seen.count)])] })
        }
        #expect(seen == all.filter { $0.sequence < activeFirst && !live.contains($0.sequence) })
        ledger.close()
        let (again, report, records) = try openLedger(dir.path, smallSegments)
        #expect(!report.hasDamage)
        #expect(Array(records.prefix(all.count)) == all, "the originals are all there")
        #expect(records.filter { $0.kind == 9 } .map(\.body) == [[UInt8(seen.count)]], "and the carried record, once")
        // Finished: the carried record stays with the relocated ones; nothing is carried when nothing goes.
        var carried = 0
        let done = try again.compact(isLive: { live.contains($0.sequence) || $0.kind == 9 }, carryForward: { carried += 1; return [] })
        #expect(done.segmentsDeleted > 0 && carried == 1 && done.recordsCarriedForward == 0)
        again.close()
        let (_, _, final) = try openLedger(dir.path, smallSegments)
        #expect(final.filter { $0.kind == 9 }.count == 1)
        #expect(final.filter { $0.kind == 5 && $0.sequence < activeFirst } == all.filter { live.contains($0.sequence) })
    }
}
