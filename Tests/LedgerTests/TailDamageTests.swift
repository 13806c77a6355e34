import Glibc
import Ledger
import Platform
import Testing
import Timebase

/// A ledger written once, whose segment files each case copies into a fresh
/// directory and then damages.
struct WrittenLedger {
    let options: LedgerOptions
    let records: [LedgerRecord]
    /// Segment file name and bytes, oldest first.
    let segments: [(name: String, bytes: [UInt8])]

    init(seed: UInt64, count: Int, options: LedgerOptions) throws {
        var rng = SeededGenerator(seed: seed)
        let dir = TemporaryDirectory()
        let (ledger, _, _) = try openLedger(dir.path, options)
        var records: [LedgerRecord] = []
        for _ in 0..<count {
            let body = testBody(&rng, length: Int.random(in: 0...90, using: &rng))
            let kind = UInt16.random(in: 0...UInt16.max, using: &rng)
            records.append(LedgerRecord(sequence: try ledger.append(kind: kind, body: body), kind: kind, body: body))
        }
        try ledger.sync()
        ledger.close()
        self.options = options
        self.records = records
        segments = Files.segments(dir.path).map { ($0, Files.read(dir.sub($0))) }
    }

    /// The last segment's first record index in `records`, and each of its records' byte ranges.
    var lastSegmentLayout: (firstIndex: Int, ranges: [Range<Int>]) {
        let first = Int(LedgerFormat.firstSequence(ofSegmentNamed: segments.last!.name)! - 1)
        var offset = LedgerFormat.segmentHeaderBytes
        var ranges: [Range<Int>] = []
        for r in records[first...] {
            let end = offset + LedgerFormat.recordHeaderBytes + r.body.count
            ranges.append(offset..<end)
            offset = end
        }
        return (first, ranges)
    }

    /// Writes every segment into `dir`, the last one replaced by `last`.
    func materialize(in dir: TemporaryDirectory, last: [UInt8]) {
        for (i, segment) in segments.enumerated() {
            Files.write(dir.sub(segment.name), i == segments.count - 1 ? last : segment.bytes)
        }
    }
}

@Suite struct TailDamageTests {
    static let recordsChecked = 3

    /// Cuts the last segment at every byte offset inside its last three records
    /// (for a preallocated segment: zeros from the cut on, as a torn write
    /// leaves it); recovery must return exactly the records complete before the
    /// cut, and a following append and reopen must be clean.
    @Test(arguments: [false, true])
    func truncationAtEveryOffsetOfTheLastRecords(preallocate: Bool) throws {
        let seed: UInt64 = preallocate ? 0x7A11_0002 : 0x7A11_0001
        var options = smallSegments
        options.preallocate = preallocate
        let fixture = try WrittenLedger(seed: seed, count: 80, options: options)
        #expect(fixture.segments.count >= 2, "the cut must be in a segment after a sealed one")
        let (firstIndex, ranges) = fixture.lastSegmentLayout
        let original = fixture.segments.last!.bytes
        let from = ranges[ranges.count - Self.recordsChecked].lowerBound
        for cut in from...ranges.last!.upperBound {
            let dir = TemporaryDirectory()
            var damaged = Array(original[0..<cut])
            if preallocate { damaged += [UInt8](repeating: 0, count: original.count - cut) }
            fixture.materialize(in: dir, last: damaged)

            let complete = firstIndex + ranges.filter { $0.upperBound <= cut }.count
            let validEnd = ranges.last { $0.upperBound <= cut }?.upperBound ?? LedgerFormat.segmentHeaderBytes
            let torn = original[validEnd..<cut]
            let tornNonZero = (torn.lastIndex { $0 != 0 }).map { $0 - validEnd + 1 } ?? 0

            let (ledger, report, records) = try openLedger(dir.path, options)
            #expect(records == Array(fixture.records[0..<complete]), "cut at \(cut), seed \(seed)")
            #expect(report.truncatedTailBytes == tornNonZero, "cut at \(cut)")
            #expect(!report.hasDamage, "cut at \(cut): \(report)")
            let body: [UInt8] = [0xEE, UInt8(cut & 0xFF)]
            #expect(try ledger.appendDurably(kind: 9, body: body) == UInt64(complete + 1), "cut at \(cut)")
            ledger.close()

            let (again, cleanReport, after) = try openLedger(dir.path, options)
            #expect(after == Array(fixture.records[0..<complete]) + [LedgerRecord(sequence: UInt64(complete + 1), kind: 9, body: body)],
                    "cut at \(cut), seed \(seed)")
            #expect(cleanReport.truncatedTailBytes == 0 && !cleanReport.hasDamage && cleanReport.damagedFilesPresent.isEmpty,
                    "cut at \(cut): \(cleanReport)")
            again.close()
        }
    }

    /// Flips one bit (seeded choice) at every byte offset of the last three
    /// records. Recovery stops at the damaged record and never returns a
    /// changed body; damage before the last record is set aside and reported,
    /// and sequences continue above the records it hid.
    @Test func bitFlipAtEveryOffsetOfTheLastRecords() throws {
        let seed: UInt64 = 0xF11_9003
        var rng = SeededGenerator(seed: seed)
        let options = smallSegments
        let fixture = try WrittenLedger(seed: seed, count: 80, options: options)
        let (firstIndex, ranges) = fixture.lastSegmentLayout
        let original = fixture.segments.last!.bytes
        let lastName = fixture.segments.last!.name
        let checked = ranges.suffix(Self.recordsChecked)
        for (k, range) in zip(ranges.indices.suffix(Self.recordsChecked), checked) {
            for offset in range {
                let dir = TemporaryDirectory()
                var damaged = original
                damaged[offset] ^= UInt8(1) << UInt8.random(in: 0...7, using: &rng)
                fixture.materialize(in: dir, last: damaged)
                let label: Comment = "record \(k) byte \(offset - range.lowerBound), seed \(seed)"

                let (ledger, report, records) = try openLedger(dir.path, options)
                let intact = firstIndex + k
                #expect(records == Array(fixture.records[0..<intact]), label)
                if k == ranges.count - 1 {
                    // The last record: indistinguishable from a torn write, cut off.
                    #expect(report.truncatedTailBytes > 0 && !report.hasDamage, label)
                    #expect(ledger.nextSequence == UInt64(intact + 1), label)
                } else {
                    // Checksummed records follow: damage, not a tear.
                    #expect(report.damagedSegments == [lastName + ".damaged"], label)
                    #expect(Files.read(dir.sub(lastName + ".damaged")) == damaged, label)
                    #expect(report.bytesAfterDamage > 0 && report.truncatedTailBytes == 0, label)
                    #expect(report.sequenceGaps == [UInt64(intact + 1)...UInt64(fixture.records.count)], label)
                    #expect(report.sequencesMissing == UInt64(fixture.records.count - intact), label)
                    #expect(ledger.nextSequence == UInt64(fixture.records.count + 1), "no sequence is issued twice; \(label)")
                }
                let sequence = try ledger.appendDurably(kind: 3, body: [3])
                ledger.close()

                let (again, secondReport, after) = try openLedger(dir.path, options)
                #expect(after == Array(fixture.records[0..<intact]) + [LedgerRecord(sequence: sequence, kind: 3, body: [3])], label)
                if k == ranges.count - 1 {
                    #expect(!secondReport.hasDamage, label)
                } else {
                    #expect(secondReport.sequenceGaps == [UInt64(intact + 1)...UInt64(fixture.records.count)], label)
                    #expect(secondReport.damagedSegments.isEmpty && secondReport.damagedFilesPresent == [lastName + ".damaged"], label)
                }
                again.close()
            }
        }
    }
}
