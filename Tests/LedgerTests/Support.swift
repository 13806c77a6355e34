import Foundation
import Glibc
import Ledger
import Platform
import Testing
import Timebase

/// A fresh directory under the system temporary directory, removed on deinit.
final class TemporaryDirectory {
    let path: String

    init(_ label: String = #function) {
        let base = FileManager.default.temporaryDirectory.path + "/ledger-tests"
        try? FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        var template = Array("\(base)/\(label.prefix { $0.isLetter || $0.isNumber })-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed: errno \(errno)")
        path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    /// A path inside (not created).
    func sub(_ name: String) -> String { path + "/" + name }
}

enum Files {
    static func read(_ path: String) -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else { return [] }
        return [UInt8](data)
    }

    static func write(_ path: String, _ bytes: [UInt8]) {
        let created = FileManager.default.createFile(atPath: path, contents: Data(bytes))
        precondition(created, "cannot write \(path)")
    }

    static func list(_ directory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
    }

    static func segments(_ directory: String) -> [String] {
        list(directory).filter { LedgerFormat.firstSequence(ofSegmentNamed: $0) != nil }
    }

    static func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path) }
}

/// A body for record number `n` of a test, `length` bytes, from a seeded stream.
func testBody(_ rng: inout SeededGenerator, length: Int) -> [UInt8] {
    (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
}

/// Opens, asserting success; prints the error otherwise.
func openLedger(_ directory: String, _ options: LedgerOptions = LedgerOptions(),
                io: any LedgerIO = SystemLedgerIO(),
                sourceLocation: SourceLocation = #_sourceLocation) throws -> (ledger: Ledger, report: RecoveryReport, records: [LedgerRecord]) {
    do {
        return try Ledger.open(directory: directory, options: options, io: io)
    } catch {
        Issue.record("open \(directory) failed: \(error)", sourceLocation: sourceLocation)
        throw error
    }
}

/// Small segments so that a few hundred records span several of them.
let smallSegments = LedgerOptions(segmentBytes: 4096, maxRecordBytes: 1024, diskBudgetBytes: 1 << 20,
                                  preallocate: false, compactionRelocateLimitBytes: 1024)

/// The real system calls, with scheduled faults: the Nth call (counting from
/// 1, since the fault was scheduled) of one kind fails with an errno or is cut
/// short. Counts every call, so a test can check what was not called.
final class FaultyIO: LedgerIO {
    enum Call: Hashable, CaseIterable {
        case open, pread, pwrite, fdatasync, fsync, ftruncate, fallocate, rename, link, unlink, listDirectory, mkdir
    }

    enum Fault {
        /// The call fails with this errno and does nothing.
        case error(Int32)
        /// A `pwrite` writes only the first `n` bytes (for real) and returns `n`.
        case shortWrite(Int)
    }

    private let real = SystemLedgerIO()
    private(set) var calls: [Call: Int] = [:]
    private var scheduled: [Call: [(at: Int, fault: Fault)]] = [:]
    /// Faults that hit every call of a kind until cleared (a full disk).
    private var persistent: [Call: Int32] = [:]

    func count(_ call: Call) -> Int { calls[call, default: 0] }

    /// The `nth` call of `call` from now fails with `fault`.
    func schedule(_ call: Call, nth: Int = 1, _ fault: Fault) {
        scheduled[call, default: []].append((count(call) + nth, fault))
    }

    /// Every call of `call` fails with `errno` until `clear()`.
    func failAlways(_ call: Call, _ errno: Int32) { persistent[call] = errno }

    func clear() {
        scheduled.removeAll()
        persistent.removeAll()
    }

    private func enter(_ call: Call, _ name: String) throws(SystemError) -> Fault? {
        calls[call, default: 0] += 1
        if let errno = persistent[call] { throw SystemError(call: name, errno: errno) }
        let n = calls[call]!
        guard let index = scheduled[call]?.firstIndex(where: { $0.at == n }) else { return nil }
        let fault = scheduled[call]!.remove(at: index).fault
        if case .error(let errno) = fault { throw SystemError(call: name, errno: errno) }
        return fault
    }

    func mkdir(_ path: String) throws(SystemError) {
        _ = try enter(.mkdir, "mkdir")
        try real.mkdir(path)
    }
    func open(_ path: String, flags: Int32, mode: mode_t) throws(SystemError) -> FileDescriptor {
        _ = try enter(.open, "open")
        return try real.open(path, flags: flags, mode: mode)
    }
    func close(_ fd: FileDescriptor) { real.close(fd) }
    func lockExclusive(_ fd: FileDescriptor) throws(SystemError) { try real.lockExclusive(fd) }
    func listDirectory(_ path: String) throws(SystemError) -> [String] {
        _ = try enter(.listDirectory, "readdir")
        return try real.listDirectory(path)
    }
    func fileSize(_ fd: FileDescriptor) throws(SystemError) -> Int { try real.fileSize(fd) }
    func pread(_ fd: FileDescriptor, into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws(SystemError) -> Int {
        _ = try enter(.pread, "pread")
        return try real.pread(fd, into: buffer, at: offset)
    }
    func pwrite(_ fd: FileDescriptor, _ bytes: UnsafeRawBufferPointer, at offset: Int) throws(SystemError) -> Int {
        if case .shortWrite(let n) = try enter(.pwrite, "pwrite") {
            return try real.pwrite(fd, UnsafeRawBufferPointer(rebasing: bytes[0..<min(n, bytes.count)]), at: offset)
        }
        return try real.pwrite(fd, bytes, at: offset)
    }
    func fdatasync(_ fd: FileDescriptor) throws(SystemError) {
        _ = try enter(.fdatasync, "fdatasync")
        try real.fdatasync(fd)
    }
    func fsync(_ fd: FileDescriptor) throws(SystemError) {
        _ = try enter(.fsync, "fsync")
        try real.fsync(fd)
    }
    func ftruncate(_ fd: FileDescriptor, to length: Int) throws(SystemError) {
        _ = try enter(.ftruncate, "ftruncate")
        try real.ftruncate(fd, to: length)
    }
    func fallocate(_ fd: FileDescriptor, length: Int) throws(SystemError) {
        _ = try enter(.fallocate, "fallocate")
        try real.fallocate(fd, length: length)
    }
    func dropCache(_ fd: FileDescriptor) { real.dropCache(fd) }
    func link(_ from: String, _ to: String) throws(SystemError) {
        _ = try enter(.link, "link")
        try real.link(from, to)
    }
    func rename(_ from: String, _ to: String) throws(SystemError) {
        _ = try enter(.rename, "rename")
        try real.rename(from, to)
    }
    func unlink(_ path: String) throws(SystemError) {
        _ = try enter(.unlink, "unlink")
        try real.unlink(path)
    }
}

/// Seeds and repetition for the randomized tests: `LEDGER_TEST_SEED` (decimal, as printed) replays
/// a printed seed, `LEDGER_TEST_REPEAT` multiplies the kill and power-cut rounds
/// for a longer soak than the default run affords.
enum TestKnobs {
    static func seed(_ fallback: UInt64) -> UInt64 {
        ProcessInfo.processInfo.environment["LEDGER_TEST_SEED"].flatMap { UInt64($0) } ?? fallback
    }

    static var repeatCount: Int {
        ProcessInfo.processInfo.environment["LEDGER_TEST_REPEAT"].flatMap { Int($0) }.map { max(1, $0) } ?? 1
    }
}
