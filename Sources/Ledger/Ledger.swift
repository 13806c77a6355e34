import Glibc
import Platform
import Timebase

/// The durable write-ahead ledger: append-only segment files of checksummed
/// records (format in `LedgerFormat`).
///
/// A record is durable once `sync()` (or `appendDurably`) returned: only then
/// may the engine act on it (approve, start charging, acknowledge). Several
/// appends before one sync share its cost (group commit).
///
/// Not thread-safe: one thread (the daemon's event loop) owns a ledger. Two
/// ledgers on one directory are refused with `.inUse` (an `flock` on it).
public final class Ledger {
    /// A live segment file, oldest first.
    struct Segment {
        var firstSequence: UInt64
        var name: String
        /// The file's size, which is what it takes from the budget.
        var bytes: Int
    }

    /// The segment receiving appends.
    struct Active {
        var fd: FileDescriptor
        var writeOffset: Int
    }

    /// The directory holding the segments.
    public let directory: String
    /// The sizes and limits in force.
    public let options: LedgerOptions
    private let io: any LedgerIO
    private var directoryFD: FileDescriptor?
    private var segments: [Segment] = []
    private var active: Active?
    /// The sequence the next append will be given.
    public private(set) var nextSequence: UInt64 = 1
    /// The next append must start a segment: there is none yet, or recovery
    /// skipped sequences (they may exist in a damaged file), and within a
    /// segment each record is exactly one above the one before.
    private var startNewSegment = true
    /// The sequence of the last record written; `sync()` has work while it is above `durableSequence`.
    private var lastWritten: UInt64 = 0
    /// Reused for every encoded record, so an append allocates nothing.
    private var scratch: [UInt8] = []
    private var isClosed = false

    /// The highest sequence whose record (and every one before it) is on the
    /// device: `fdatasync` returned 0 after it was written. Frozen by a failure.
    public private(set) var durableSequence: UInt64 = 0

    /// The sticky failure, once a write or sync failed. See `LedgerError.failed`.
    public private(set) var failure: LedgerError?

    /// Bytes of all live segment files (what `diskBudgetBytes` limits).
    public var usedBytes: Int { segments.reduce(0) { $0 + $1.bytes } }

    /// Live segment files, oldest first (for operators and tests).
    public var segmentNames: [String] { segments.map(\.name) }

    private init(directory: String, options: LedgerOptions, io: any LedgerIO, directoryFD: FileDescriptor) {
        self.directory = directory
        self.options = options
        self.io = io
        self.directoryFD = directoryFD
    }

    deinit { close() }

    // MARK: Opening

    /// Opens (creating if missing) the ledger in `directory` and recovers it:
    /// returns the ledger, what recovery found, and every recovered record in
    /// sequence order (each sequence once).
    ///
    /// When it returns, every returned record is durable, a torn tail has been
    /// cut off and synced, damaged segments have been set aside and reported,
    /// and appends continue above every sequence ever seen.
    public static func open(
        directory: String, options: LedgerOptions = LedgerOptions(), io: any LedgerIO = SystemLedgerIO()
    ) throws(LedgerError) -> (ledger: Ledger, report: RecoveryReport, records: [LedgerRecord]) {
        if let problem = options.problem { throw .invalidOptions(problem) }
        let start = MonotonicClock.now()
        let directoryFD = try openDirectory(directory, io: io)
        try lock(directoryFD, directory: directory, io: io)
        // From here the ledger owns the descriptor; deinit closes it if recovery throws.
        let ledger = Ledger(directory: directory, options: options, io: io, directoryFD: directoryFD)
        var (report, records) = try ledger.recover()
        report.duration = MonotonicClock.now() - start
        return (ledger, report, records)
    }

    /// How long `open` waits for the directory lock. A lock is shared with a
    /// child process between its fork and its exec (close-on-exec only takes
    /// effect at exec), so a ledger closed while another thread spawns a
    /// process can look held for a moment; another live ledger holds it for good.
    public static let lockWait: Duration = .milliseconds(500)
    /// Pause between attempts to take the lock.
    static let lockRetryPause: Duration = .milliseconds(2)

    private static func lock(_ directoryFD: FileDescriptor, directory: String, io: any LedgerIO) throws(LedgerError) {
        let deadline = MonotonicClock.now() + lockWait
        while true {
            do {
                try io.lockExclusive(directoryFD)
                return
            } catch where error.errno == EWOULDBLOCK && MonotonicClock.now() < deadline {
                var pause = timespec(tv_sec: 0, tv_nsec: Int(lockRetryPause.nanosecondsClamped))
                _ = nanosleep(&pause, nil)
            } catch {
                io.close(directoryFD)
                if error.errno == EWOULDBLOCK { throw .inUse(path: directory) }
                throw .unreadable(path: directory, reason: error.description)
            }
        }
    }

    private static func openDirectory(_ directory: String, io: any LedgerIO) throws(LedgerError) -> FileDescriptor {
        do {
            return try io.open(directory, flags: O_RDONLY | O_DIRECTORY, mode: 0)
        } catch where error.errno == ENOENT {
            // First start: create it, and make the new name durable in its parent.
            do {
                try io.mkdir(directory)
                let parent = try io.open(parentDirectory(of: directory), flags: O_RDONLY | O_DIRECTORY, mode: 0)
                defer { io.close(parent) }
                try io.fsync(parent)
                return try io.open(directory, flags: O_RDONLY | O_DIRECTORY, mode: 0)
            } catch {
                throw .unreadable(path: directory, reason: error.description)
            }
        } catch {
            throw .unreadable(path: directory, reason: error.description)
        }
    }

    private static func parentDirectory(of path: String) -> String {
        var trimmed = Substring(path)
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        guard let slash = trimmed.lastIndex(of: "/") else { return "." }
        return slash == trimmed.startIndex ? "/" : String(trimmed[..<slash])
    }

    private func path(_ name: String) -> String { directory + "/" + name }

    /// Scans every segment oldest first; see `open`.
    private func recover() throws(LedgerError) -> (RecoveryReport, [LedgerRecord]) {
        var report = RecoveryReport(recordsRecovered: 0, segments: 0, truncatedTailBytes: 0, damagedSegments: [],
                                    bytesAfterDamage: 0, sequenceGaps: [], damagedFilesPresent: [],
                                    temporaryFilesRemoved: 0, duration: .zero)
        let names: [String]
        do { names = try io.listDirectory(directory) } catch {
            throw .unreadable(path: directory, reason: error.description)
        }
        for name in names where name.hasSuffix(LedgerFormat.temporarySuffix) {
            do { try io.unlink(path(name)) } catch { throw .unreadable(path: path(name), reason: error.description) }
            report.temporaryFilesRemoved += 1
        }
        var damagedNames = Set(names.filter { $0.includes(LedgerFormat.damagedSuffix) })
        let named = names.compactMap { name in LedgerFormat.firstSequence(ofSegmentNamed: name).map { ($0, name) } }
            .sorted { $0.0 < $1.0 }
        // A segment named for sequence 0 or above maxSequence was not written by this ledger
        // (junk named like a segment, or a header and records counting up to UInt64.max): set
        // aside unread, so it neither counts as the last segment nor moves the next sequence.
        for (nameSequence, name) in named where !LedgerFormat.sequences.contains(nameSequence) {
            let size = fileSize(path(name))
            let aside = try setAside(name)
            damagedNames.insert(aside)
            report.damagedSegments.append(aside)
            report.bytesAfterDamage += size
            report.notes.append("\(name): first sequence \(nameSequence) is outside \(LedgerFormat.sequences.lowerBound)…"
                                + "\(LedgerFormat.maxSequence), not a segment of this ledger; set aside as \(aside)")
        }
        let found = named.filter { LedgerFormat.sequences.contains($0.0) }

        var records: [LedgerRecord] = []
        var relocated: [LedgerRecord] = []
        var expected: UInt64?
        var highestSeen: UInt64 = 0

        for (index, (nameSequence, name)) in found.enumerated() {
            let isLast = index == found.count - 1
            let segmentPath = path(name)
            var fd: FileDescriptor
            do { fd = try io.open(segmentPath, flags: O_RDWR, mode: 0) } catch {
                throw .unreadable(path: segmentPath, reason: error.description)
            }
            var keepOpen = false
            defer { if !keepOpen { io.close(fd) } }
            let size: Int
            do { size = try io.fileSize(fd) } catch { throw .unreadable(path: segmentPath, reason: error.description) }
            if size > LedgerFormat.maxSegmentFileBytes {
                // Not written by this ledger: too large to scan in memory.
                let aside = try setAside(name)
                damagedNames.insert(aside)
                report.damagedSegments.append(aside)
                report.bytesAfterDamage += size
                highestSeen = max(highestSeen, nameSequence)
                continue
            }
            // Whatever a killed predecessor left unsynced becomes durable now,
            // then the cache is dropped so the scan sees the device, not pages
            // that a failed writeback left cached but marked clean.
            do { try io.fdatasync(fd) } catch { throw fail(error) }
            io.dropCache(fd)
            let image: [UInt8]
            do { image = try readFile(fd, size: size) } catch {
                throw .unreadable(path: segmentPath, reason: error.description)
            }

            var first: UInt64?
            switch image.withUnsafeBytes({ LedgerFormat.readSegmentHeader($0) }) {
            case .unsupported(let version, let headerBytes):
                throw .unreadable(path: segmentPath, reason: "format version \(version) with a \(headerBytes)-byte header; "
                                  + "this build reads version \(LedgerFormat.version) (\(LedgerFormat.segmentHeaderBytes) bytes)")
            case .damaged: first = nil
            case .valid(let sequence): first = sequence
            }
            guard let first, first == nameSequence, expected.map({ first >= $0 }) ?? true else {
                // A header that is damaged, disagrees with the name, or overlaps
                // the segment before: none of its records can be placed.
                let aside = try setAside(name)
                damagedNames.insert(aside)
                report.damagedSegments.append(aside)
                let seen = image.withUnsafeBytes { raw in
                    SegmentScan.resynchronize(image: raw, from: 0, to: raw.count, after: nameSequence)
                }
                report.bytesAfterDamage += image.withUnsafeBytes { SegmentScan.lastNonZero($0) + 1 }
                highestSeen = max(highestSeen, nameSequence, seen ?? 0)
                continue
            }
            if let expected, first > expected { report.sequenceGaps.append(expected...(first - 1)) }

            let scan = image.withUnsafeBytes { SegmentScan(image: $0, start: LedgerFormat.segmentHeaderBytes, firstSequence: first) }
            image.withUnsafeBytes { raw in
                for r in scan.records {
                    if r.flags & LedgerFormat.relocatedFlag != 0 {
                        let original = raw.loadLE(UInt64.self, at: r.bodyOffset)
                        let body = UnsafeRawBufferPointer(rebasing: raw[(r.bodyOffset + LedgerFormat.relocationPrefixBytes)..<r.end])
                        relocated.append(LedgerRecord(sequence: original, kind: r.kind, body: Array(body)))
                    } else {
                        let body = UnsafeRawBufferPointer(rebasing: raw[r.bodyOffset..<r.end])
                        records.append(LedgerRecord(sequence: r.sequence, kind: r.kind, body: Array(body)))
                    }
                }
            }
            var fileBytes = size
            let allocation = isLast && options.preallocate ? options.segmentBytes : 0
            if scan.garbageBytes > 0 && isLast && scan.laterSequence == nil {
                // A torn tail: records that were being written when the process
                // or the power died, never acknowledged. Cut, and make the cut
                // durable before anything is appended over it.
                do { try io.ftruncate(fd, to: scan.validEnd) } catch { throw fail(error) }
                fileBytes = try preallocateIfPossible(fd, size: scan.validEnd, to: allocation)
                do { try io.fdatasync(fd) } catch { throw fail(error) }
                report.truncatedTailBytes += scan.garbageBytes
            } else if scan.garbageBytes > 0 {
                // Damage in front of the tail, or checksummed records after the
                // bad one: keep the original aside and the valid prefix live.
                let replacement = try image.withBytes { raw throws(LedgerError) in
                    try createSegmentFile(name: name, contents: UnsafeRawBufferPointer(rebasing: raw[0..<scan.validEnd]),
                                          allocate: allocation, setAsideOriginal: true)
                }
                io.close(fd)
                fd = replacement.fd
                fileBytes = replacement.bytes
                if let aside = replacement.aside {
                    damagedNames.insert(aside)
                    report.damagedSegments.append(aside)
                }
                report.bytesAfterDamage += scan.garbageBytes
                if isLast, let later = scan.laterSequence {
                    // Nothing follows to show the gap, so report it here; in an
                    // earlier segment the next segment's first sequence shows it.
                    report.sequenceGaps.append(scan.nextSequence...later)
                }
                highestSeen = max(highestSeen, scan.laterSequence ?? 0)
            } else if allocation > size {
                fileBytes = try preallocateIfPossible(fd, size: size, to: allocation)
                do { try io.fdatasync(fd) } catch { throw fail(error) }
            }
            expected = scan.nextSequence
            segments.append(Segment(firstSequence: first, name: name, bytes: fileBytes))
            if isLast {
                keepOpen = true
                active = Active(fd: fd, writeOffset: scan.validEnd)
            }
        }
        // Covers deletions above and any rename a killed predecessor had not synced.
        do { try syncDirectory() } catch { throw fail(error) }

        let lastLive = (expected ?? 1) - 1
        nextSequence = max(lastLive, highestSeen) + 1
        startNewSegment = active == nil || nextSequence != lastLive + 1
        lastWritten = lastLive
        durableSequence = lastLive

        if !relocated.isEmpty { records = Self.merge(records, relocated) }
        report.recordsRecovered = records.count
        report.segments = segments.count
        report.damagedFilesPresent = damagedNames.sorted()
        return (report, records)
    }

    /// Grows the active segment to `allocation` at recovery; returns its size.
    /// Preallocation only makes syncs cheaper, so a full disk (or a budget
    /// already spent) is no reason to refuse to open: the file then grows as
    /// records are appended, and appends meet the full disk themselves.
    private func preallocateIfPossible(_ fd: FileDescriptor, size: Int, to allocation: Int) throws(LedgerError) -> Int {
        guard allocation > size else { return size }
        let othersBytes = segments.reduce(0) { $0 + $1.bytes }
        guard othersBytes + allocation <= options.diskBudgetBytes else { return size }
        do {
            try io.fallocate(fd, length: allocation)
            return allocation
        } catch where Self.isDiskFull(error) {
            return size
        } catch {
            throw fail(error)
        }
    }

    /// Adds the relocated copies whose originals are gone (a crash between
    /// compaction's copy and its delete leaves both), in sequence order.
    private static func merge(_ records: [LedgerRecord], _ relocated: [LedgerRecord]) -> [LedgerRecord] {
        var seen = Set<UInt64>()
        var extra: [LedgerRecord] = []
        for r in relocated where seen.insert(r.sequence).inserted {
            if !containsSequence(records, r.sequence) { extra.append(r) }
        }
        extra.sort { $0.sequence < $1.sequence }
        var merged: [LedgerRecord] = []
        merged.reserveCapacity(records.count + extra.count)
        var i = 0, j = 0
        while i < records.count || j < extra.count {
            if j == extra.count || (i < records.count && records[i].sequence < extra[j].sequence) {
                merged.append(records[i]); i += 1
            } else {
                merged.append(extra[j]); j += 1
            }
        }
        return merged
    }

    /// Binary search: `records` is sorted by sequence.
    private static func containsSequence(_ records: [LedgerRecord], _ sequence: UInt64) -> Bool {
        var low = 0, high = records.count
        while low < high {
            let mid = (low + high) / 2
            if records[mid].sequence < sequence { low = mid + 1 } else { high = mid }
        }
        return low < records.count && records[low].sequence == sequence
    }

    /// The size of the file at `path`, 0 if it cannot be opened (for the report only).
    private func fileSize(_ path: String) -> Int {
        guard let fd = try? io.open(path, flags: O_RDONLY, mode: 0) else { return 0 }
        defer { io.close(fd) }
        return (try? io.fileSize(fd)) ?? 0
    }

    /// Gives `name` a second, damaged name and removes the live one.
    private func setAside(_ name: String) throws(LedgerError) -> String {
        let aside = try linkAside(name)
        do { try io.unlink(path(name)) } catch { throw fail(error) }
        return aside
    }

    /// Links `name` to the first free `name.damaged[.N]`.
    private func linkAside(_ name: String) throws(LedgerError) -> String {
        for attempt in 1...LedgerFormat.maxDamagedCopiesPerSegment {
            let aside = name + LedgerFormat.damagedSuffix + (attempt == 1 ? "" : ".\(attempt)")
            do {
                try io.link(path(name), path(aside))
                return aside
            } catch where error.errno == EEXIST {
                continue
            } catch {
                throw fail(error)
            }
        }
        throw .unreadable(path: path(name), reason: "\(LedgerFormat.maxDamagedCopiesPerSegment) damaged copies already set aside")
    }

    // MARK: Appending

    /// Appends a record and returns its sequence. Written (`pwrite` returned)
    /// but not durable: call `sync()` before acting on it.
    ///
    /// Throws `.recordTooLarge` or `.budgetExceeded` without writing; `.diskFull`
    /// with the partial record cut off again; `.failed` (sticky) if the write failed.
    @discardableResult
    public func append(kind: UInt16, body: [UInt8]) throws(LedgerError) -> UInt64 {
        try checkUsable()
        guard body.count <= options.maxRecordBytes else {
            throw .recordTooLarge(bytes: body.count, limit: options.maxRecordBytes)
        }
        return try write(kind: kind, flags: 0, original: nil, body: body, enforceBudget: true)
    }

    /// Makes every record appended so far durable (one `fdatasync`; nothing if
    /// there is nothing new). On failure the ledger fails for good: see `LedgerError.failed`.
    public func sync() throws(LedgerError) {
        try checkUsable()
        guard lastWritten > durableSequence, let active else { return }
        do { try io.fdatasync(active.fd) } catch { throw fail(error) }
        durableSequence = lastWritten
    }

    /// Makes sure the ledger can take a record now, without appending one: a segment is open
    /// for appends (created durably now when there is none yet, or recovery asked for a new one)
    /// and an `fdatasync` of it succeeds. The daemon calls this before it reports itself ready,
    /// so a read-only, full or failing disk refuses the start instead of failing at the first
    /// customer's card. Nothing is written into a segment: the format and the sequences are as
    /// they were. Throws what an append would: `.budgetExceeded`, `.diskFull`, `.failed` (sticky).
    public func prepareForAppends() throws(LedgerError) {
        try checkUsable()
        guard nextSequence <= LedgerFormat.maxSequence else { throw .sequencesExhausted }
        if startNewSegment || active == nil {
            let growth = max(options.preallocate ? options.segmentBytes : 0, LedgerFormat.segmentHeaderBytes)
            let used = usedBytes
            if used + growth > options.diskBudgetBytes { throw .budgetExceeded(used: used, budget: options.diskBudgetBytes) }
            try openNewSegment()
        }
        guard let active else { preconditionFailure("no active segment after openNewSegment") }
        do { try io.fdatasync(active.fd) } catch { throw fail(error) }
    }

    /// `append` then `sync`: returns once the record is durable.
    @discardableResult
    public func appendDurably(kind: UInt16, body: [UInt8]) throws(LedgerError) -> UInt64 {
        let sequence = try append(kind: kind, body: body)
        try sync()
        return sequence
    }

    /// Closes the files and releases the directory lock. Unsynced appends stay
    /// in the page cache and are not durable. Using the ledger afterwards is a bug.
    public func close() {
        guard !isClosed else { return }
        isClosed = true
        if let active { io.close(active.fd) }
        active = nil
        if let directoryFD { io.close(directoryFD) }
        directoryFD = nil
    }

    private func checkUsable() throws(LedgerError) {
        precondition(!isClosed, "ledger used after close()")
        if let failure { throw failure }
    }

    /// Records `error` as the sticky failure and returns it to throw.
    private func fail(_ error: SystemError) -> LedgerError {
        let failed = LedgerError.failed(error)
        if failure == nil { failure = failed }
        return failure ?? failed
    }

    private static func isDiskFull(_ error: SystemError) -> Bool { error.errno == ENOSPC || error.errno == EDQUOT }

    private func write(kind: UInt16, flags: UInt16, original: UInt64?, body: [UInt8], enforceBudget: Bool) throws(LedgerError) -> UInt64 {
        // Recovery would not read a record numbered above maxSequence back: refuse it unwritten.
        guard nextSequence <= LedgerFormat.maxSequence else { throw .sequencesExhausted }
        let recordBytes = LedgerFormat.recordHeaderBytes + (original == nil ? 0 : LedgerFormat.relocationPrefixBytes) + body.count
        let rollover = startNewSegment || active.map { $0.writeOffset + recordBytes > options.segmentBytes } ?? true
        let growth: Int
        if rollover {
            growth = max(options.preallocate ? options.segmentBytes : 0, LedgerFormat.segmentHeaderBytes + recordBytes)
        } else if let active, let current = segments.last {
            growth = max(0, active.writeOffset + recordBytes - current.bytes)
        } else {
            growth = 0
        }
        if enforceBudget {
            let used = usedBytes
            if used + growth > options.diskBudgetBytes { throw .budgetExceeded(used: used, budget: options.diskBudgetBytes) }
        }
        if rollover { try openNewSegment() }
        guard let active else { preconditionFailure("no active segment after rollover") }

        let sequence = nextSequence
        if scratch.count < recordBytes { scratch = [UInt8](repeating: 0, count: max(recordBytes, 2 * scratch.count)) }
        let start = active.writeOffset
        var written = 0
        var writeError: SystemError?
        scratch.withUnsafeMutableBytes { out in
            let encoded = LedgerFormat.encodeRecord(into: out, sequence: sequence, kind: kind, flags: flags,
                                                    prefix: original, body: body)
            assert(encoded == recordBytes)
            while written < recordBytes {
                do throws(SystemError) {
                    let n = try io.pwrite(active.fd, UnsafeRawBufferPointer(rebasing: out[written..<recordBytes]), at: start + written)
                    // A regular file never accepts zero bytes of a non-empty write unless something is badly wrong.
                    if n <= 0 { writeError = SystemError(call: "pwrite", errno: EIO); return }
                    written += n
                } catch {
                    writeError = error
                    return
                }
            }
        }
        if let writeError {
            guard Self.isDiskFull(writeError) else { throw fail(writeError) }
            try cutPartialRecord(at: start, written: written)
            throw .diskFull
        }
        self.active?.writeOffset = start + recordBytes
        segments[segments.count - 1].bytes = max(segments[segments.count - 1].bytes, start + recordBytes)
        nextSequence += 1
        lastWritten = sequence
        return sequence
    }

    /// Removes the first `written` bytes of a record that could not be
    /// finished, so no partial record is left on disk: the file is shortened
    /// back where the write had grown it, and zeroed where it was preallocated.
    private func cutPartialRecord(at start: Int, written: Int) throws(LedgerError) {
        guard written > 0, let active else { return }
        let allocated = segments[segments.count - 1].bytes
        do {
            if start + written > allocated { try io.ftruncate(active.fd, to: max(start, allocated)) }
            if start < allocated {
                let zeros = [UInt8](repeating: 0, count: min(start + written, allocated) - start)
                try zeros.withBytes { raw throws(SystemError) in try writeAll(active.fd, raw, at: start) }
            }
        } catch {
            throw fail(error)
        }
    }

    /// Seals the active segment (its records become durable first, so only the
    /// active segment ever holds unsynced records) and starts a new one.
    private func openNewSegment() throws(LedgerError) {
        if let active, lastWritten > durableSequence {
            do { try io.fdatasync(active.fd) } catch { throw fail(error) }
            durableSequence = lastWritten
        }
        let name = LedgerFormat.segmentName(firstSequence: nextSequence)
        let header = LedgerFormat.segmentHeader(firstSequence: nextSequence)
        let created = try header.withBytes { raw throws(LedgerError) in
            try createSegmentFile(name: name, contents: raw, allocate: options.preallocate ? options.segmentBytes : 0,
                                  setAsideOriginal: false)
        }
        if let active { io.close(active.fd) }
        active = Active(fd: created.fd, writeOffset: header.count)
        segments.append(Segment(firstSequence: nextSequence, name: name, bytes: created.bytes))
        startNewSegment = false
    }

    /// Makes `name` a segment holding exactly `contents` (then zeros up to
    /// `allocate`), atomically: written and synced under a temporary name,
    /// then renamed over `name`, then the directory synced. A file named
    /// `seg-….log` therefore always has a durable header. With
    /// `setAsideOriginal`, the existing `name` is first linked to a damaged name.
    private func createSegmentFile(name: String, contents: UnsafeRawBufferPointer, allocate: Int,
                                   setAsideOriginal: Bool) throws(LedgerError) -> (fd: FileDescriptor, bytes: Int, aside: String?) {
        let temporary = path(name + LedgerFormat.temporarySuffix)
        let fd: FileDescriptor
        do { fd = try io.open(temporary, flags: O_RDWR | O_CREAT | O_TRUNC, mode: 0o640) } catch {
            if Self.isDiskFull(error) { throw .diskFull }
            throw fail(error)
        }
        let bytes = max(allocate, contents.count)
        do {
            if allocate > 0 { try io.fallocate(fd, length: allocate) }
            try writeAll(fd, contents, at: 0)
            try io.fdatasync(fd)
        } catch {
            io.close(fd)
            try? io.unlink(temporary)
            if Self.isDiskFull(error) { throw .diskFull }
            throw fail(error)
        }
        var aside: String?
        do {
            if setAsideOriginal { aside = try linkAside(name) }
        } catch {
            io.close(fd)
            throw error
        }
        do {
            try io.rename(temporary, path(name))
        } catch {
            io.close(fd)
            try? io.unlink(temporary)
            if Self.isDiskFull(error) { throw .diskFull }
            throw fail(error)
        }
        do { try syncDirectory() } catch {
            io.close(fd)
            throw fail(error)
        }
        return (fd, bytes, aside)
    }

    private func syncDirectory() throws(SystemError) {
        guard let directoryFD else { preconditionFailure("ledger directory closed") }
        try io.fsync(directoryFD)
    }

    /// Writes all of `bytes` at `offset`, continuing after short writes.
    private func writeAll(_ fd: FileDescriptor, _ bytes: UnsafeRawBufferPointer, at offset: Int) throws(SystemError) {
        var done = 0
        while done < bytes.count {
            let n = try io.pwrite(fd, UnsafeRawBufferPointer(rebasing: bytes[done...]), at: offset + done)
            if n <= 0 { throw SystemError(call: "pwrite", errno: EIO) }
            done += n
        }
    }

    /// The first `size` bytes of the file (fewer if it is shorter).
    private func readFile(_ fd: FileDescriptor, size: Int) throws(SystemError) -> [UInt8] {
        var failure: SystemError?
        let bytes = [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
            let raw = UnsafeMutableRawBufferPointer(buffer)
            var done = 0
            while done < size {
                do throws(SystemError) {
                    let n = try io.pread(fd, into: UnsafeMutableRawBufferPointer(rebasing: raw[done...]), at: done)
                    if n == 0 { break }
                    done += n
                } catch {
                    failure = error
                    break
                }
            }
            count = done
        }
        if let failure { throw failure }
        return bytes
    }

    // MARK: Compaction

    /// Deletes sealed segments, oldest first, whose records are all dead by
    /// `isLive` (the engine's judgement: session closed, messages acknowledged).
    /// A sealed segment whose live records take at most
    /// `compactionRelocateLimitBytes` has them copied forward first (same kind,
    /// body and sequence; durable before anything is deleted). Compaction stops
    /// at the first segment with more live data than that, so segments are only
    /// ever deleted from the front and a gap in sequences always means damage.
    ///
    /// The active segment is never compacted. Relocation is exempt from the
    /// disk budget (compaction exists to give space back), not from a full disk.
    ///
    /// What the caller must keep of the dead: `dropping` sees every dead record
    /// of the segments that will be deleted (oldest first), then `carryForward`
    /// is called once and its records are appended (new sequences, exempt from
    /// the budget like relocations) and made durable with the relocated ones,
    /// before anything is deleted. A crash in between leaves both the originals
    /// and what was carried forward; the caller reads them back and must accept both.
    public func compact(isLive: (LedgerRecord) -> Bool,
                        dropping: (LedgerRecord) -> Void = { _ in },
                        carryForward: () -> [(kind: UInt16, body: [UInt8])] = { [] }) throws(LedgerError) -> CompactionReport {
        try checkUsable()
        let start = MonotonicClock.now()
        var report = CompactionReport(segmentsDeleted: 0, recordsRelocated: 0, bytesFreed: 0, segmentsKept: 0,
                                      damagedSegment: nil, duration: .zero)
        let sealed = active == nil ? segments.count : segments.count - 1
        var deletable = 0
        segmentLoop: for index in 0..<sealed {
            let segment = segments[index]
            var dead: [LedgerRecord] = []
            guard let live = readLiveRecords(segment, isLive: isLive, dead: &dead) else {
                report.damagedSegment = segment.name
                break segmentLoop
            }
            let liveBytes = live.reduce(0) { $0 + LedgerFormat.recordHeaderBytes + LedgerFormat.relocationPrefixBytes + $1.body.count }
            guard liveBytes <= options.compactionRelocateLimitBytes else { break segmentLoop }
            // Only a segment that will go is shown: its dead records are about to be lost.
            for record in dead { dropping(record) }
            for record in live {
                _ = try write(kind: record.kind, flags: LedgerFormat.relocatedFlag, original: record.sequence,
                              body: record.body, enforceBudget: false)
            }
            report.recordsRelocated += live.count
            deletable = index + 1
        }
        for record in carryForward() {
            _ = try write(kind: record.kind, flags: 0, original: nil, body: record.body, enforceBudget: false)
            report.recordsCarriedForward += 1
        }
        // The copies are durable before any original goes.
        if report.recordsRelocated > 0 || report.recordsCarriedForward > 0 { try sync() }
        for segment in segments[0..<deletable] {
            do { try io.unlink(path(segment.name)) } catch { throw fail(error) }
            report.bytesFreed += segment.bytes
        }
        if deletable > 0 {
            do { try syncDirectory() } catch { throw fail(error) }
        }
        segments.removeFirst(deletable)
        report.segmentsDeleted = deletable
        report.segmentsKept = sealed - deletable
        report.duration = MonotonicClock.now() - start
        return report
    }

    /// The live records of a sealed segment, or nil if it no longer reads back
    /// whole (damage since it was opened; the next open sets it aside).
    /// The dead ones are appended to `dead`.
    private func readLiveRecords(_ segment: Segment, isLive: (LedgerRecord) -> Bool,
                                 dead: inout [LedgerRecord]) -> [LedgerRecord]? {
        let image: [UInt8]
        do {
            let fd = try io.open(path(segment.name), flags: O_RDONLY, mode: 0)
            defer { io.close(fd) }
            image = try readFile(fd, size: min(try io.fileSize(fd), LedgerFormat.maxSegmentFileBytes))
        } catch {
            return nil
        }
        return image.withUnsafeBytes { raw -> [LedgerRecord]? in
            guard case .valid(let first) = LedgerFormat.readSegmentHeader(raw), first == segment.firstSequence else { return nil }
            let scan = SegmentScan(image: raw, start: LedgerFormat.segmentHeaderBytes, firstSequence: first)
            guard scan.garbageBytes == 0 else { return nil }
            var live: [LedgerRecord] = []
            for r in scan.records {
                let relocated = r.flags & LedgerFormat.relocatedFlag != 0
                let bodyStart = relocated ? r.bodyOffset + LedgerFormat.relocationPrefixBytes : r.bodyOffset
                let record = LedgerRecord(sequence: relocated ? raw.loadLE(UInt64.self, at: r.bodyOffset) : r.sequence,
                                          kind: r.kind, body: Array(UnsafeRawBufferPointer(rebasing: raw[bodyStart..<r.end])))
                if isLive(record) { live.append(record) } else { dead.append(record) }
            }
            return live
        }
    }
}
