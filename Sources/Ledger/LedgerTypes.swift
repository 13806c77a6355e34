import Platform

/// One record as the engine wrote it. The ledger does not interpret `kind` or `body`.
public struct LedgerRecord: Equatable, Sendable {
    /// The number the ledger gave the record when it was appended. Sequences
    /// only grow and are never issued twice; they are contiguous except where
    /// compaction relocated a record (the copy occupies a slot of its own, but
    /// is reported under its original sequence) or damage lost some.
    public let sequence: UInt64
    /// The engine's record type.
    public let kind: UInt16
    /// The engine's bytes.
    public let body: [UInt8]

    /// A record as read back or built in tests.
    public init(sequence: UInt64, kind: UInt16, body: [UInt8]) {
        self.sequence = sequence
        self.kind = kind
        self.body = body
    }
}

/// Sizes and limits of a ledger. Every limit the ledger enforces is here.
public struct LedgerOptions: Sendable, Equatable {
    /// A segment is sealed and a new one started when the next record would
    /// make it larger than this. Smaller segments compact sooner; larger ones
    /// cost fewer directory syncs.
    public var segmentBytes: Int
    /// Largest body `append` accepts. Money records are tens of bytes; this
    /// bounds what one runaway caller can do to the segment size.
    public var maxRecordBytes: Int
    /// Total bytes of all live segment files (preallocated space counts in
    /// full). An append that would go beyond it throws `.budgetExceeded`, so
    /// the engine refuses new sessions long before the file system is full.
    public var diskBudgetBytes: Int
    /// Allocate each segment to `segmentBytes` when it is created, so that an
    /// append's `fdatasync` does not also have to journal a new file size
    /// (measured here: about 10.3 k instead of 7.6 k syncs/s, and a p99 of
    /// 0.13 ms instead of about 1 ms).
    public var preallocate: Bool
    /// Compaction copies the live records of a sealed segment forward and
    /// deletes it only when they take at most this many bytes; a segment with
    /// more live data stops compaction there (it deletes oldest first only).
    public var compactionRelocateLimitBytes: Int

    /// Defaults: 4 MiB segments, 64 KiB records, a 64 MiB budget, preallocated,
    /// relocation of up to 512 KiB of live data per segment.
    public init(segmentBytes: Int = 4 << 20, maxRecordBytes: Int = 64 << 10, diskBudgetBytes: Int = 64 << 20,
                preallocate: Bool = true, compactionRelocateLimitBytes: Int = 512 << 10) {
        self.segmentBytes = segmentBytes
        self.maxRecordBytes = maxRecordBytes
        self.diskBudgetBytes = diskBudgetBytes
        self.preallocate = preallocate
        self.compactionRelocateLimitBytes = compactionRelocateLimitBytes
    }

    /// Why these options cannot work, or nil.
    public var problem: String? {
        if maxRecordBytes < 0 || maxRecordBytes > LedgerFormat.maxBodyBytes - LedgerFormat.relocationPrefixBytes {
            return "maxRecordBytes \(maxRecordBytes) is outside 0...\(LedgerFormat.maxBodyBytes - LedgerFormat.relocationPrefixBytes)"
        }
        let largestRecord = LedgerFormat.recordHeaderBytes + LedgerFormat.relocationPrefixBytes + maxRecordBytes
        if segmentBytes < LedgerFormat.segmentHeaderBytes + largestRecord || segmentBytes > LedgerFormat.maxSegmentFileBytes {
            return "segmentBytes \(segmentBytes) must hold the segment header and one largest record "
                + "(\(LedgerFormat.segmentHeaderBytes + largestRecord)) and be at most \(LedgerFormat.maxSegmentFileBytes)"
        }
        if diskBudgetBytes < segmentBytes { return "diskBudgetBytes \(diskBudgetBytes) is below one segment (\(segmentBytes))" }
        if compactionRelocateLimitBytes < 0 { return "compactionRelocateLimitBytes is negative" }
        return nil
    }
}

/// Why the ledger refused an operation.
public enum LedgerError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A write, `fdatasync` or `fsync` failed. After a failed sync the kernel
    /// may have dropped the data while marking the pages clean, so neither a
    /// retry nor a later sync can be trusted: this error is sticky, every
    /// later append and sync throws it again, and only a restart (open, which
    /// recovers from what is really on disk) clears it. The engine stops
    /// taking payments and keeps relays as they are.
    case failed(SystemError)
    /// The file system is full (`ENOSPC`/`EDQUOT` on a write or allocation).
    /// The partial record was cut off again; nothing recorded is lost and
    /// later appends may succeed once space is freed.
    case diskFull
    /// The append would take the live segments beyond `diskBudgetBytes`.
    /// Nothing was written; compaction or a larger budget makes room.
    case budgetExceeded(used: Int, budget: Int)
    /// The body is larger than `maxRecordBytes`; nothing was written.
    case recordTooLarge(bytes: Int, limit: Int)
    /// The ledger directory or one of its segments cannot be opened, listed or
    /// read at all, or holds a format this build does not read. Nothing was changed.
    case unreadable(path: String, reason: String)
    /// Another process (or another `Ledger` in this one) has the directory open.
    case inUse(path: String)
    /// The options contradict each other (see `LedgerOptions.problem`).
    case invalidOptions(String)
    /// The next record would be numbered above `LedgerFormat.maxSequence`. Only a
    /// segment file this ledger did not write can bring it there (a ledger counts
    /// up from 1); nothing was written, and none of the records is at risk.
    case sequencesExhausted

    /// One line for logs and operators.
    public var description: String {
        switch self {
        case .failed(let error): "ledger write or sync failed, no further payments until restart: \(error)"
        case .diskFull: "disk full: the ledger cannot record new sessions"
        case .budgetExceeded(let used, let budget): "ledger disk budget exceeded: \(used) of \(budget) bytes in use"
        case .recordTooLarge(let bytes, let limit): "ledger record of \(bytes) bytes exceeds the limit of \(limit)"
        case .unreadable(let path, let reason): "ledger unreadable at \(path): \(reason)"
        case .inUse(let path): "ledger at \(path) is already open elsewhere"
        case .invalidOptions(let reason): "invalid ledger options: \(reason)"
        case .sequencesExhausted:
            "ledger sequence numbers exhausted (above \(LedgerFormat.maxSequence): a segment not written by this ledger set them there); nothing more can be recorded"
        }
    }
}

/// What recovery found and did when the ledger was opened.
public struct RecoveryReport: Sendable, Equatable, CustomStringConvertible {
    /// Records returned by `open` (each sequence once).
    public var recordsRecovered: Int
    /// Live segment files after recovery.
    public var segments: Int
    /// Non-zero bytes cut off the end of the last segment: a torn write from a
    /// crash (records never acknowledged). Zero after a clean stop.
    public var truncatedTailBytes: Int
    /// Segment files this recovery found damaged and set aside (names in the
    /// directory, e.g. `seg-0000000000000001.log.damaged`). The valid records
    /// in front of the damage were kept in the live segment; the file set
    /// aside holds the original bytes for a person to examine.
    public var damagedSegments: [String]
    /// Non-zero bytes after the first damage point in the segments set aside:
    /// data that may hold records recovery could not trust.
    public var bytesAfterDamage: Int
    /// Sequences known to be missing: between live segments (a segment set
    /// aside, now or earlier, or removed by hand), and after damage in the last
    /// segment up to the highest checksummed record found beyond it. Records
    /// in them are lost to the engine (they may be in a damaged file).
    public var sequenceGaps: [ClosedRange<UInt64>]
    /// Every file in the directory set aside as damaged, by this recovery or an
    /// earlier one: reported on each start until a person removes them.
    public var damagedFilesPresent: [String]
    /// Unfinished segment files (`.new`) deleted: they never held an acknowledged record.
    public var temporaryFilesRemoved: Int
    /// Wall time the recovery took (monotonic clock).
    public var duration: Duration
    /// Why a file was set aside where the names alone do not say it, e.g. a
    /// segment named for a sequence outside `LedgerFormat.sequences`.
    public var notes: [String] = []

    /// True when records may have been lost to damage (not just an unacknowledged torn tail).
    public var hasDamage: Bool { !damagedSegments.isEmpty || !sequenceGaps.isEmpty }

    /// How many sequences `sequenceGaps` covers: a lower bound on records lost
    /// to damage (damage at the very end of the last segment hides its count).
    public var sequencesMissing: UInt64 { sequenceGaps.reduce(0) { $0 + ($1.upperBound - $1.lowerBound + 1) } }

    /// One line for the log.
    public var description: String {
        var parts = ["recovered \(recordsRecovered) records from \(segments) segments in \(duration)"]
        if truncatedTailBytes > 0 { parts.append("cut a torn tail of \(truncatedTailBytes) bytes") }
        if !damagedSegments.isEmpty {
            parts.append("DAMAGE: set aside \(damagedSegments.joined(separator: ", ")) (\(bytesAfterDamage) bytes after the damage)")
        }
        if !sequenceGaps.isEmpty {
            parts.append("MISSING sequences \(sequenceGaps.map { "\($0.lowerBound)-\($0.upperBound)" }.joined(separator: ", "))")
        }
        parts += notes
        if !damagedFilesPresent.isEmpty { parts.append("damaged files present: \(damagedFilesPresent.joined(separator: ", "))") }
        return parts.joined(separator: "; ")
    }
}

/// What one compaction did.
public struct CompactionReport: Sendable, Equatable {
    /// Sealed segments deleted.
    public var segmentsDeleted: Int
    /// Live records copied forward (durably) from deleted segments.
    public var recordsRelocated: Int
    /// Records the caller's `carryForward` asked for (durable before any deletion).
    public var recordsCarriedForward = 0
    /// Bytes of segment files deleted.
    public var bytesFreed: Int
    /// Sealed segments left in place: the first had more live data than
    /// `compactionRelocateLimitBytes`; those after it wait their turn.
    public var segmentsKept: Int
    /// A sealed segment that no longer reads back cleanly (damage since open);
    /// compaction stopped in front of it. The next open sets it aside.
    public var damagedSegment: String?
    /// Wall time the compaction took.
    public var duration: Duration
}
