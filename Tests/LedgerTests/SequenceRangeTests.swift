import Platform
import Testing
@testable import Ledger

/// Sequences live in 1...LedgerFormat.maxSequence. A segment named or headed outside that range,
/// or a record numbered outside it, was not written by this ledger: recovery sets it aside as
/// damage (never traps on the arithmetic), and appends stop before leaving the range.
@Suite struct SequenceRangeTests {
    /// Three records, 1...3, in a fresh ledger in `dir`.
    static func threeRecords(_ dir: TemporaryDirectory) throws -> [LedgerRecord] {
        let (ledger, _, _) = try openLedger(dir.path, smallSegments)
        for i in 1...3 { try ledger.appendDurably(kind: 1, body: [UInt8(i)]) }
        ledger.close()
        return (1...3).map { LedgerRecord(sequence: UInt64($0), kind: 1, body: [UInt8($0)]) }
    }

    /// A segment file image: a valid header for `first`, then `records` (sequence, body).
    static func segment(first: UInt64, records: [(UInt64, [UInt8])]) -> [UInt8] {
        var image = LedgerFormat.segmentHeader(firstSequence: first)
        for (sequence, body) in records {
            var out = [UInt8](repeating: 0, count: LedgerFormat.recordHeaderBytes + body.count)
            let n = out.withUnsafeMutableBytes {
                LedgerFormat.encodeRecord(into: $0, sequence: sequence, kind: 1, flags: 0, prefix: nil, body: body)
            }
            image += out[..<n]
        }
        return image
    }

    /// Opens `dir` (which must not trap), expects `good` back, `aside` set aside with a reason
    /// in the report, and appends continuing at `next`.
    static func expectRecovered(_ dir: TemporaryDirectory, good: [LedgerRecord], aside: String, next: UInt64,
                                sourceLocation: SourceLocation = #_sourceLocation) throws {
        let (ledger, report, records) = try openLedger(dir.path, smallSegments, sourceLocation: sourceLocation)
        #expect(records == good, sourceLocation: sourceLocation)
        #expect(report.damagedSegments == [aside + ".damaged"], "\(report)", sourceLocation: sourceLocation)
        #expect(report.hasDamage, sourceLocation: sourceLocation)
        #expect(report.description.includes("outside"), "\(report)", sourceLocation: sourceLocation)
        #expect(!Files.exists(dir.sub(aside)) && Files.exists(dir.sub(aside + ".damaged")), sourceLocation: sourceLocation)
        #expect(try ledger.appendDurably(kind: 1, body: [9]) == next, sourceLocation: sourceLocation)
        ledger.close()
        // The next start reads the same records (and the appended one), sets nothing else aside.
        let (again, second, after) = try openLedger(dir.path, smallSegments, sourceLocation: sourceLocation)
        #expect(after == good + [LedgerRecord(sequence: next, kind: 1, body: [9])], sourceLocation: sourceLocation)
        #expect(second.damagedSegments.isEmpty && second.damagedFilesPresent == [aside + ".damaged"], sourceLocation: sourceLocation)
        again.close()
    }

    @Test func aJunkFileNamedForTheLastSequenceIsSetAside() throws {
        let dir = TemporaryDirectory()
        let good = try Self.threeRecords(dir)
        // Not a segment at all, but named like the highest one (before: highestSeen = UInt64.max, then + 1 trapped).
        Files.write(dir.sub("seg-ffffffffffffffff.log"), [UInt8](repeating: 0x5A, count: 100))
        try Self.expectRecovered(dir, good: good, aside: "seg-ffffffffffffffff.log", next: 4)
    }

    @Test func aValidHeaderForTheLastSequenceIsSetAside() throws {
        let dir = TemporaryDirectory()
        let good = try Self.threeRecords(dir)
        // A well-formed but empty segment starting at UInt64.max: the next append would have trapped.
        Files.write(dir.sub("seg-ffffffffffffffff.log"), Self.segment(first: .max, records: []))
        try Self.expectRecovered(dir, good: good, aside: "seg-ffffffffffffffff.log", next: 4)
    }

    @Test func aValidRecordNumberedUInt64MaxIsSetAside() throws {
        let dir = TemporaryDirectory()
        let good = try Self.threeRecords(dir)
        // Checksummed records .max - 1 and .max (before: the scan's next sequence wrapped to 0, then 0 - 1 trapped).
        Files.write(dir.sub("seg-fffffffffffffffe.log"), Self.segment(first: .max - 1, records: [(.max - 1, [1]), (.max, [2])]))
        try Self.expectRecovered(dir, good: good, aside: "seg-fffffffffffffffe.log", next: 4)
    }

    @Test func theOnlySegmentHoldingUInt64MaxIsSetAside() throws {
        let dir = TemporaryDirectory()
        Files.write(dir.sub("seg-fffffffffffffffe.log"), Self.segment(first: .max - 1, records: [(.max - 1, [1]), (.max, [2])]))
        try Self.expectRecovered(dir, good: [], aside: "seg-fffffffffffffffe.log", next: 1)
    }

    @Test func aSegmentForSequenceZeroIsSetAside() throws {
        let dir = TemporaryDirectory()
        // Sequence 0 is never written (before: an empty segment 0 made the last live sequence 0 - 1).
        Files.write(dir.sub("seg-0000000000000000.log"), Self.segment(first: 0, records: []))
        try Self.expectRecovered(dir, good: [], aside: "seg-0000000000000000.log", next: 1)
    }

    @Test func appendsStopAtTheEndOfTheRange() throws {
        let dir = TemporaryDirectory()
        let last = LedgerFormat.maxSequence
        // A segment whose records reach the last sequence: recovered, and the next append is refused, not written.
        Files.write(dir.sub(LedgerFormat.segmentName(firstSequence: last - 1)), Self.segment(first: last - 1, records: [(last - 1, [1]), (last, [2])]))
        let (ledger, report, records) = try openLedger(dir.path, smallSegments)
        #expect(records.map(\.sequence) == [last - 1, last])
        #expect(!report.hasDamage, "\(report)")
        #expect(throws: LedgerError.sequencesExhausted) { try ledger.append(kind: 1, body: [3]) }
        #expect(ledger.failure == nil, "nothing was written")
        ledger.close()
        let (again, _, after) = try openLedger(dir.path, smallSegments)
        #expect(after == records)
        again.close()
    }
}
