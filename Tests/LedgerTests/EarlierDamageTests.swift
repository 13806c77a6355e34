import Ledger
import Testing
import Timebase
import WireFormat

@Suite struct EarlierDamageTests {
    /// A byte flipped in the middle of a sealed segment: the segment's valid
    /// prefix stays live, the original is set aside and reported, the segments
    /// after it are still recovered, and the missing sequences are reported on
    /// every open until compaction removes the gap.
    @Test func damageInsideAnEarlierSegmentIsSetAsideAndReported() throws {
        let seed: UInt64 = 0xEA71_E401
        let fixture = try WrittenLedger(seed: seed, count: 200, options: smallSegments)
        #expect(fixture.segments.count >= 4)
        let victim = 1
        let victimName = fixture.segments[victim].name
        let victimFirst = Int(LedgerFormat.firstSequence(ofSegmentNamed: victimName)! - 1)
        let nextFirst = Int(LedgerFormat.firstSequence(ofSegmentNamed: fixture.segments[victim + 1].name)! - 1)
        // Find the byte range of the victim segment's third record and damage its body.
        var offset = LedgerFormat.segmentHeaderBytes
        for r in fixture.records[victimFirst..<(victimFirst + 2)] { offset += LedgerFormat.recordHeaderBytes + r.body.count }
        var damaged = fixture.segments[victim].bytes
        damaged[offset + 5] ^= 0x10

        let dir = TemporaryDirectory()
        for (i, segment) in fixture.segments.enumerated() {
            Files.write(dir.sub(segment.name), i == victim ? damaged : segment.bytes)
        }
        let (ledger, report, records) = try openLedger(dir.path, smallSegments)
        let lost = (victimFirst + 2)..<nextFirst
        let expected = fixture.records.enumerated().filter { !lost.contains($0.offset) }.map(\.element)
        #expect(records == expected, "seed \(seed)")
        #expect(report.damagedSegments == [victimName + ".damaged"])
        #expect(report.sequenceGaps == [UInt64(lost.lowerBound + 1)...UInt64(lost.upperBound)])
        #expect(report.hasDamage && report.bytesAfterDamage > 0)
        #expect(Files.read(dir.sub(victimName + ".damaged")) == damaged, "the original bytes are kept for examination")
        #expect(report.description.contains("DAMAGE"))
        #expect(try ledger.appendDurably(kind: 1, body: [1]) == UInt64(fixture.records.count + 1))
        ledger.close()

        // Reported again on the next start (the gap and the file), not set aside twice.
        let (again, second, after) = try openLedger(dir.path, smallSegments)
        #expect(after == expected + [LedgerRecord(sequence: UInt64(fixture.records.count + 1), kind: 1, body: [1])])
        #expect(second.damagedSegments.isEmpty)
        #expect(second.sequenceGaps == report.sequenceGaps)
        #expect(second.damagedFilesPresent == [victimName + ".damaged"])
        again.close()
    }

    /// A damaged segment header: none of that segment's records can be placed,
    /// so the whole file is set aside and its range reported missing.
    @Test func damagedHeaderOfAnEarlierSegment() throws {
        let fixture = try WrittenLedger(seed: 0xEA71_E402, count: 200, options: smallSegments)
        let victim = 2
        let victimName = fixture.segments[victim].name
        var damaged = fixture.segments[victim].bytes
        damaged[17] ^= 0x01 // first-sequence field: the header CRC no longer matches
        let dir = TemporaryDirectory()
        for (i, segment) in fixture.segments.enumerated() {
            Files.write(dir.sub(segment.name), i == victim ? damaged : segment.bytes)
        }
        let (_, report, records) = try openLedger(dir.path, smallSegments)
        let first = LedgerFormat.firstSequence(ofSegmentNamed: victimName)!
        let next = LedgerFormat.firstSequence(ofSegmentNamed: fixture.segments[victim + 1].name)!
        #expect(records == fixture.records.filter { !(first..<next).contains($0.sequence) })
        #expect(report.damagedSegments == [victimName + ".damaged"])
        #expect(report.sequenceGaps == [first...(next - 1)])
        #expect(!Files.exists(dir.sub(victimName)) && Files.exists(dir.sub(victimName + ".damaged")))
    }

    /// A missing segment (deleted by hand) is a gap, reported.
    @Test func missingSegmentIsAReportedGap() throws {
        let fixture = try WrittenLedger(seed: 0xEA71_E403, count: 200, options: smallSegments)
        let dir = TemporaryDirectory()
        for (i, segment) in fixture.segments.enumerated() where i != 1 { Files.write(dir.sub(segment.name), segment.bytes) }
        let (_, report, records) = try openLedger(dir.path, smallSegments)
        let first = LedgerFormat.firstSequence(ofSegmentNamed: fixture.segments[1].name)!
        let next = LedgerFormat.firstSequence(ofSegmentNamed: fixture.segments[2].name)!
        #expect(report.sequenceGaps == [first...(next - 1)])
        #expect(records.count == fixture.records.count - Int(next - first))
    }

    /// A segment of a future format version stops the open without touching anything.
    @Test func unsupportedVersionIsUnreadableAndUntouched() throws {
        let fixture = try WrittenLedger(seed: 0xEA71_E404, count: 10, options: smallSegments)
        var future = fixture.segments[0].bytes
        future[8] = 2
        let crc = future.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<28])) }
        withUnsafeBytes(of: crc.littleEndian) { future.replaceSubrange(28..<32, with: $0) }
        let dir = TemporaryDirectory()
        Files.write(dir.sub(fixture.segments[0].name), future)
        #expect {
            try Ledger.open(directory: dir.path, options: smallSegments)
        } throws: { error in
            guard case .unreadable(_, let reason) = error as? LedgerError else { return false }
            return reason.contains("version 2")
        }
        #expect(Files.list(dir.path) == [fixture.segments[0].name])
        #expect(Files.read(dir.sub(fixture.segments[0].name)) == future)
    }

    /// Leftover `.new` files (a crash while creating a segment) are removed.
    @Test func temporaryFilesAreRemoved() throws {
        let fixture = try WrittenLedger(seed: 0xEA71_E405, count: 10, options: smallSegments)
        let dir = TemporaryDirectory()
        Files.write(dir.sub(fixture.segments[0].name), fixture.segments[0].bytes)
        Files.write(dir.sub("seg-00000000000000ff.log.new"), [1, 2, 3])
        let (_, report, records) = try openLedger(dir.path, smallSegments)
        #expect(records == fixture.records && report.temporaryFilesRemoved == 1 && !report.hasDamage)
        #expect(Files.list(dir.path) == [fixture.segments[0].name])
    }
}
