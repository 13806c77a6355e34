import Glibc
import Ledger
import Platform
import Testing
import Timebase

@Suite struct LedgerBasicTests {
    @Test(arguments: [false, true])
    func roundTripAcrossRollovers(preallocate: Bool) throws {
        let seed: UInt64 = 0x5EED_0001
        var rng = SeededGenerator(seed: seed)
        let dir = TemporaryDirectory()
        var options = smallSegments
        options.preallocate = preallocate
        var written: [LedgerRecord] = []
        do {
            let (ledger, report, records) = try openLedger(dir.path, options)
            #expect(records.isEmpty && report.segments == 0 && !report.hasDamage)
            for i in 0..<300 {
                let body = testBody(&rng, length: Int.random(in: 0...200, using: &rng))
                let kind = UInt16.random(in: 0...UInt16.max, using: &rng)
                // Mix durable appends and group commits of a few.
                let sequence = i % 5 == 0 ? try ledger.appendDurably(kind: kind, body: body)
                                          : try ledger.append(kind: kind, body: body)
                #expect(sequence == UInt64(i + 1), "seed \(seed)")
                written.append(LedgerRecord(sequence: sequence, kind: kind, body: body))
            }
            try ledger.sync()
            #expect(ledger.durableSequence == 300)
            #expect(ledger.segmentNames.count > 5, "300 records of ~120 bytes must span several 4 KiB segments")
            #expect(ledger.segmentNames == Files.segments(dir.path))
            #expect(ledger.segmentNames.first == "seg-0000000000000001.log")
            ledger.close()
        }
        let (ledger, report, records) = try openLedger(dir.path, options)
        #expect(records == written, "seed \(seed)")
        #expect(report.recordsRecovered == 300 && report.truncatedTailBytes == 0 && !report.hasDamage)
        #expect(report.segments == Files.segments(dir.path).count)
        #expect(ledger.durableSequence == 300)
        for name in Files.segments(dir.path) {
            let size = Files.read(dir.sub(name)).count
            #expect(size <= options.segmentBytes, "\(name) is \(size) bytes")
            if preallocate { #expect(size == options.segmentBytes) }
        }
    }

    @Test func reopenedLedgerContinuesTheSequence() throws {
        let dir = TemporaryDirectory()
        var all: [LedgerRecord] = []
        for round in 0..<4 {
            let (ledger, report, records) = try openLedger(dir.path)
            #expect(records == all && !report.hasDamage && report.truncatedTailBytes == 0, "round \(round)")
            #expect(ledger.nextSequence == UInt64(all.count + 1))
            for j in 0..<3 {
                let body = Array("round \(round) record \(j)".utf8)
                let sequence = try ledger.appendDurably(kind: 7, body: body)
                all.append(LedgerRecord(sequence: sequence, kind: 7, body: body))
            }
            ledger.close()
        }
        #expect(all.map(\.sequence) == Array(1...12))
    }

    @Test func preallocatedZeroTailIsNotARecord() throws {
        let dir = TemporaryDirectory()
        let options = LedgerOptions(segmentBytes: 1 << 20, preallocate: true)
        do {
            let (ledger, _, _) = try openLedger(dir.path, options)
            try ledger.appendDurably(kind: 1, body: [1, 2, 3])
            ledger.close()
        }
        let name = Files.segments(dir.path)[0]
        let bytes = Files.read(dir.sub(name))
        #expect(bytes.count == 1 << 20)
        #expect(bytes[(32 + 20 + 3)...].allSatisfy { $0 == 0 })
        let (ledger, report, records) = try openLedger(dir.path, options)
        #expect(records == [LedgerRecord(sequence: 1, kind: 1, body: [1, 2, 3])])
        #expect(report.truncatedTailBytes == 0 && !report.hasDamage)
        #expect(Files.read(dir.sub(name)).count == 1 << 20, "a clean zero tail is kept, not cut")
        #expect(try ledger.appendDurably(kind: 1, body: []) == 2)
    }

    @Test func emptyDirectoryAndMissingDirectoryOpen() throws {
        let dir = TemporaryDirectory()
        let nested = dir.sub("ledger")
        let (ledger, report, records) = try openLedger(nested)
        #expect(records.isEmpty && report.segments == 0)
        #expect(Files.exists(nested))
        #expect(ledger.usedBytes == 0)
        #expect(ledger.durableSequence == 0)
        try ledger.sync() // nothing to sync: no segment yet, no error
    }

    @Test func secondOpenIsRefusedWhileTheFirstIsOpen() throws {
        let dir = TemporaryDirectory()
        let (ledger, _, _) = try openLedger(dir.path)
        #expect(throws: LedgerError.inUse(path: dir.path)) { try Ledger.open(directory: dir.path) }
        ledger.close()
        let (again, _, _) = try openLedger(dir.path)
        again.close()
    }

    @Test func recordTooLargeWritesNothing() throws {
        let dir = TemporaryDirectory()
        let (ledger, _, _) = try openLedger(dir.path, smallSegments)
        try ledger.appendDurably(kind: 1, body: [1])
        #expect(throws: LedgerError.recordTooLarge(bytes: 1025, limit: 1024)) {
            try ledger.append(kind: 1, body: [UInt8](repeating: 9, count: 1025))
        }
        #expect(try ledger.appendDurably(kind: 1, body: [UInt8](repeating: 9, count: 1024)) == 2)
        #expect(ledger.failure == nil)
    }

    @Test func invalidOptionsAreRefused() {
        let dir = TemporaryDirectory()
        for options in [LedgerOptions(segmentBytes: 100), LedgerOptions(maxRecordBytes: -1),
                        LedgerOptions(segmentBytes: 4 << 20, diskBudgetBytes: 1 << 20),
                        LedgerOptions(maxRecordBytes: 32 << 20)] {
            #expect(options.problem != nil)
            #expect(throws: LedgerError.invalidOptions(options.problem ?? "")) {
                try Ledger.open(directory: dir.path, options: options)
            }
        }
        #expect(LedgerOptions().problem == nil)
    }

    @Test(arguments: [false, true])
    func budgetExceededWritesNothingAndCompactionMakesRoom(preallocate: Bool) throws {
        let dir = TemporaryDirectory()
        var options = smallSegments
        options.preallocate = preallocate
        options.diskBudgetBytes = 4 * 4096
        let (ledger, _, _) = try openLedger(dir.path, options)
        let body = [UInt8](repeating: 0xAB, count: 100)
        var appended = 0
        var refusal: LedgerError?
        while refusal == nil && appended < 1000 {
            do {
                try ledger.appendDurably(kind: 1, body: body)
                appended += 1
            } catch {
                refusal = error
            }
        }
        guard case .budgetExceeded(let used, let budget)? = refusal else {
            Issue.record("expected budgetExceeded, got \(String(describing: refusal))")
            return
        }
        #expect(budget == options.diskBudgetBytes && used <= budget && used == ledger.usedBytes)
        #expect(ledger.usedBytes <= options.diskBudgetBytes)
        #expect(ledger.failure == nil, "the budget is a refusal, not a failure")
        #expect(appended > 100)
        // Nothing half-written: the next open sees exactly the acknowledged records.
        ledger.close()
        let (reopened, report, records) = try openLedger(dir.path, options)
        #expect(records.count == appended && report.truncatedTailBytes == 0 && !report.hasDamage)
        #expect(throws: LedgerError.self) { try reopened.append(kind: 1, body: body) }
        let compaction = try reopened.compact { _ in false }
        #expect(compaction.segmentsDeleted >= 2)
        #expect(try reopened.appendDurably(kind: 1, body: body) == UInt64(appended + 1))
    }
}
