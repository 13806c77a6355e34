import Foundation
import Glibc
import Ledger
import Platform
import Testing
import Timebase

/// Runs `ledger-torture` as a real process and kills it, or the disk under it.
enum Torture {
    static var executable: String { ChildProcess.executableDirectory() + "/ledger-torture" }

    /// Reads acknowledged sequences from `child` until `deadline` or end of output.
    static func collect(_ child: ChildProcess, until deadline: Instant, into lines: inout [UInt64]) throws {
        while true {
            let remaining = deadline - MonotonicClock.now()
            guard remaining > .zero, let line = try child.readLine(timeout: remaining) else { return }
            guard let sequence = UInt64(line) else {
                Issue.record("ledger-torture printed \(line)")
                return
            }
            lines.append(sequence)
        }
    }

    /// Opens the ledger as the daemon would after the crash and checks it
    /// against the acknowledgements: each acknowledged sequence present with
    /// its body, sequences strictly increasing and contiguous except across a
    /// reported gap, no acknowledged sequence inside a gap.
    static func verify(_ directory: String, segmentBytes: Int, acknowledged: [UInt64], allowDamage: Bool,
                       label: Comment) throws -> Int {
        // The torture's sizes, and no preallocation, so checking leaves the files as the torture will find them.
        let options = LedgerOptions(segmentBytes: segmentBytes, maxRecordBytes: 1024, preallocate: false)
        let (ledger, report, records) = try openLedger(directory, options)
        defer { ledger.close() }
        if !allowDamage { #expect(!report.hasDamage, "\(report); \(label)") }
        var previous: UInt64 = 0
        for record in records {
            let jumped = record.sequence != previous + 1
            if jumped {
                let reported = report.sequenceGaps.contains { $0.lowerBound == previous + 1 && $0.upperBound == record.sequence - 1 }
                #expect(record.sequence > previous && reported, "sequence \(record.sequence) after \(previous); \(report); \(label)")
            }
            #expect(record.kind == TortureBody.kind && record.body == TortureBody.body(for: record.sequence),
                    "wrong body for \(record.sequence); \(label)")
            previous = record.sequence
        }
        let present = Set(records.map(\.sequence))
        let missing = acknowledged.filter { !present.contains($0) }
        #expect(missing.isEmpty, "acknowledged but lost: \(missing.prefix(10)) of \(missing.count); \(report); \(label)")
        return records.count
    }
}

@Suite(.serialized) struct CrashTests {
    /// `kill -9` at seeded random moments, 20 times on one ledger: every
    /// sequence printed (acknowledged after its sync) survives with its body.
    @Test func killNineNeverLosesAnAcknowledgedRecord() throws {
        let seed = TestKnobs.seed(0x6B11_0009)
        var rng = SeededGenerator(seed: seed)
        try #require(Files.exists(Torture.executable), "ledger-torture is not built next to the tests")
        let dir = TemporaryDirectory()
        let ledgerDirectory = dir.sub("ledger")
        var acknowledged: [UInt64] = []
        var killedMidRun = 0
        let rounds = 20 * TestKnobs.repeatCount
        for round in 0..<rounds {
            let group = [1, 1, 4, 16].randomElement(using: &rng)!
            var arguments = [ledgerDirectory, "100000000", "--group", "\(group)", "--segment-bytes", "16384"]
            if Bool.random(using: &rng) { arguments.append("--no-preallocate") }
            let label: Comment = "round \(round) \(arguments.dropFirst(2)), seed \(seed)"
            let child = try ChildProcess.spawn(Torture.executable, arguments, pipeStdin: false)
            var lines: [UInt64] = []
            // Even rounds kill at a random moment after the start (often during the
            // torture's own recovery); odd rounds once appending runs.
            if round % 2 == 1, let line = try child.readLine(timeout: .seconds(20)), let sequence = UInt64(line) {
                lines.append(sequence)
            }
            let delay = Duration.milliseconds(Int.random(in: 0...120, using: &rng))
            try Torture.collect(child, until: MonotonicClock.now() + delay, into: &lines)
            child.signal(SIGKILL)
            let status = child.wait(timeout: .seconds(10))
            try Torture.collect(child, until: MonotonicClock.now() + .seconds(5), into: &lines)
            #expect(status == 128 + SIGKILL, "ledger-torture exited by itself (\(String(describing: status))); \(label)")
            if status == 128 + SIGKILL && !lines.isEmpty { killedMidRun += 1 }
            if let first = lines.first {
                // Records written but unacknowledged when killed may survive, so a run starts above the last acknowledged.
                #expect(first > (acknowledged.last ?? 0), "continues the sequence; \(label)")
                #expect(lines == Array(first...(first + UInt64(lines.count) - 1)), label)
            }
            acknowledged += lines
            // A killed process leaves its writes in the page cache: a torn tail at most, never damage.
            let recovered = try Torture.verify(ledgerDirectory, segmentBytes: 16384, acknowledged: acknowledged, allowDamage: false, label: label)
            #expect(recovered >= acknowledged.count, label)
        }
        print("kill -9: \(acknowledged.count) acknowledged records over \(rounds) kills, \(killedMidRun) kills while appending; seed \(seed)")
        #expect(killedMidRun >= rounds / 2, "most kills must land while records are being appended; seed \(seed)")
    }

    /// A power cut on a real ext4 file system: the `EXT4_IOC_SHUTDOWN` ioctl
    /// without a log flush drops everything not yet on the device, like a cut;
    /// then unmount, mount, recover. Every sequence acknowledged before the
    /// ioctl started must survive, with its body, exactly once.
    ///
    /// Needs root, mkfs.ext4, mount and loop devices; skipped otherwise (the
    /// reason is printed by the test runner).
    @Test(.enabled(if: PowerCut.available, "power-cut test skipped: needs root, mkfs.ext4, mount and /dev/loop-control"))
    func powerCutOnExt4NeverLosesAnAcknowledgedRecord() throws {
        let seed = TestKnobs.seed(0x9C07_0001)
        var rng = SeededGenerator(seed: seed)
        try #require(Files.exists(Torture.executable), "ledger-torture is not built next to the tests")
        let dir = TemporaryDirectory()
        let image = dir.sub("disk.img")
        let mountPoint = dir.sub("mnt")
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        Files.write(image, [])
        #expect(truncate(image, 64 << 20) == 0)
        try PowerCut.run(PowerCut.mkfs, ["-q", "-F", image])
        try PowerCut.run(PowerCut.mount, ["-o", "loop", image, mountPoint])
        var mounted = true
        defer { if mounted { try? PowerCut.run(PowerCut.umount, [mountPoint]) } }

        let ledgerDirectory = mountPoint + "/ledger"
        var acknowledgedBefore: [UInt64] = []
        let cuts = 10 * TestKnobs.repeatCount
        for cut in 0..<cuts {
            let group = [1, 4, 16].randomElement(using: &rng)!
            let arguments = [ledgerDirectory, "100000000", "--group", "\(group)", "--segment-bytes", "65536"]
            let label: Comment = "cut \(cut) group \(group), seed \(seed)"
            let child = try ChildProcess.spawn(Torture.executable, arguments, pipeStdin: false)
            var before: [UInt64] = []
            // Cut only once appending runs (not during the torture's own recovery), at a random moment after.
            if let line = try child.readLine(timeout: .seconds(20)), let sequence = UInt64(line) { before.append(sequence) }
            let delay = Duration.milliseconds(Int.random(in: 1...200, using: &rng))
            try Torture.collect(child, until: MonotonicClock.now() + delay, into: &before)
            try PowerCut.shutdown(mountPoint)
            // Acknowledged while the ioctl ran or after: may or may not survive.
            var after: [UInt64] = []
            try Torture.collect(child, until: MonotonicClock.now() + .milliseconds(300), into: &after)
            child.signal(SIGKILL)
            _ = child.wait(timeout: .seconds(10))
            try PowerCut.run(PowerCut.umount, [mountPoint])
            mounted = false
            PowerCut.waitDetached(image)
            try PowerCut.run(PowerCut.mount, ["-o", "loop", image, mountPoint])
            mounted = true
            #expect(!before.isEmpty, "the cut must land after some acknowledgements; \(label)")
            acknowledgedBefore += before
            // The disk may have written unacknowledged pages out of order: reported damage is allowed, lost acknowledgements are not.
            _ = try Torture.verify(ledgerDirectory, segmentBytes: 65536, acknowledged: acknowledgedBefore, allowDamage: true, label: label)
            print("power cut \(cut): \(before.count) acknowledged before the cut, \(after.count) after")
        }
    }
}

/// Loop-mounted ext4 and its shutdown ioctl.
enum PowerCut {
    static let mkfs = ([String](["/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4"])).first { access($0, X_OK) == 0 } ?? ""
    static let mount = ([String](["/usr/bin/mount", "/bin/mount"])).first { access($0, X_OK) == 0 } ?? ""
    static let umount = ([String](["/usr/bin/umount", "/bin/umount"])).first { access($0, X_OK) == 0 } ?? ""

    static var available: Bool {
        getuid() == 0 && !mkfs.isEmpty && !mount.isEmpty && !umount.isEmpty && access("/dev/loop-control", F_OK) == 0
    }

    /// `_IOR('X', 125, __u32)`.
    static let ext4ShutdownRequest: UInt = (2 << 30) | (4 << 16) | (UInt(UInt8(ascii: "X")) << 8) | 125
    /// `EXT4_GOING_FLAGS_NOLOGFLUSH`: stop without writing the journal, as a power cut would.
    static let noLogFlush: UInt32 = 2

    struct CommandFailed: Error, CustomStringConvertible {
        var description: String
    }

    static func run(_ path: String, _ arguments: [String]) throws {
        let child = try ChildProcess.spawn(path, arguments, captureStdout: false, pipeStdin: false)
        let status = child.wait(timeout: .seconds(30))
        guard status == 0 else { throw CommandFailed(description: "\(path) \(arguments) exited \(String(describing: status))") }
    }

    static let losetup = ([String](["/usr/sbin/losetup", "/sbin/losetup"])).first { access($0, X_OK) == 0 } ?? ""

    /// Waits (at most 10 s) until no loop device holds `image`. umount returns before the loop
    /// device's automatic detach has finished on a busy machine; mounting the image then reuses
    /// that loop device, whose filesystem is still the shut-down one, and every open fails with
    /// EIO. Suspected cause of one EIO in a full run on 2026-12-06 (the test alone passed); not
    /// reproduced on demand.
    static func waitDetached(_ image: String) {
        guard !losetup.isEmpty else { return }
        let deadline = MonotonicClock.now() + .seconds(10)
        while MonotonicClock.now() < deadline {
            guard let child = try? ChildProcess.spawn(losetup, ["-j", image], pipeStdin: false) else { return }
            let line = try? child.readLine(timeout: .seconds(2))
            _ = child.wait(timeout: .seconds(2))
            if (line ?? nil)?.isEmpty ?? true { return }
            usleep(50_000)
        }
    }

    static func shutdown(_ mountPoint: String) throws {
        let fd = try FileDescriptor.open(mountPoint, flags: O_RDONLY | O_DIRECTORY)
        defer { fd.close() }
        var flags = noLogFlush
        guard ioctl(fd.rawValue, ext4ShutdownRequest, &flags) == 0 else {
            throw SystemError(call: "ioctl(EXT4_IOC_SHUTDOWN)", errno: errno)
        }
    }
}
