/// What one segment image holds, read without trusting anything after the
/// first record that fails a check.
struct SegmentScan {
    /// The valid records, in order: each complete, checksummed right, and
    /// numbered exactly one above the one before.
    var records: [LedgerFormat.RawRecord] = []
    /// Offset just past the last valid record (the header's end if none).
    var validEnd: Int
    /// The sequence the next record must carry.
    var nextSequence: UInt64
    /// One past the last non-zero byte, at least `validEnd`: bytes in
    /// `validEnd..<dataEnd` are a torn write or damage; zeros beyond are
    /// preallocated space.
    var dataEnd: Int
    /// The highest sequence of a checksummed record found after `validEnd` by
    /// trying every offset. Such a record means the stop was not a torn tail
    /// but damage in front of data (or a torn write the disk reordered), so the
    /// bytes must be kept aside, not cut off.
    var laterSequence: UInt64?

    /// Bytes after the valid records that are not preallocated zeros.
    var garbageBytes: Int { dataEnd - validEnd }

    /// Scans records starting at `start`, expecting `firstSequence` first.
    init(image: UnsafeRawBufferPointer, start: Int, firstSequence: UInt64) {
        var offset = start
        var expected = firstSequence
        while let record = LedgerFormat.record(in: image, at: offset, end: image.count,
                                               acceptable: expected...expected) {
            records.append(record)
            offset = record.end
            expected += 1   // at most maxSequence + 1: `record` accepts nothing above maxSequence
        }
        validEnd = offset
        nextSequence = expected
        dataEnd = max(offset, SegmentScan.lastNonZero(image) + 1)
        if dataEnd > validEnd {
            laterSequence = SegmentScan.resynchronize(image: image, from: validEnd, to: dataEnd, after: expected)
        }
    }

    /// Index of the last non-zero byte, or -1; word at a time, since a
    /// preallocated segment is mostly zeros.
    static func lastNonZero(_ image: UnsafeRawBufferPointer) -> Int {
        var end = image.count
        while end >= 8 && image.loadUnaligned(fromByteOffset: end - 8, as: UInt64.self) == 0 { end -= 8 }
        while end > 0 && image[end - 1] == 0 { end -= 1 }
        return end - 1
    }

    /// The highest sequence at or above `lowest` of any record that parses at
    /// any offset in `from..<to`. The upper bound (one record per header's
    /// worth of bytes) rejects most garbage before its checksum is computed.
    static func resynchronize(image: UnsafeRawBufferPointer, from: Int, to: Int, after lowest: UInt64) -> UInt64? {
        let (highest, overflow) = lowest.addingReportingOverflow(UInt64(image.count / LedgerFormat.recordHeaderBytes))
        let acceptable = lowest...(overflow ? .max : highest)
        var found: UInt64?
        var offset = from
        while offset < to {
            if let record = LedgerFormat.record(in: image, at: offset, end: image.count, acceptable: acceptable) {
                found = max(found ?? 0, record.sequence)
            }
            offset += 1
        }
        return found
    }
}
