// ledger-torture DIR N [--group K] [--no-preallocate]
//
// Opens (recovers) the ledger in DIR and appends N records, printing each
// record's sequence on stdout only after the sync covering it returned: a
// printed line is an acknowledgement. The kill -9 and power-cut tests kill
// this process (or cut the disk under it) and check that every printed
// sequence survived. Bodies are derived from the sequence (`TortureBody`) so
// a survivor's content can be checked too. With --group K, K records share one
// sync. Exit status: 0 when done, 1 on a ledger error (printed to stderr), 2
// on bad arguments.
import Glibc
import Ledger
import Platform

func fail(_ message: String, status: Int32) -> Never {
    let line = Array("ledger-torture: \(message)\n".utf8)
    _ = try? line.withUnsafeBytes { try FileDescriptor.standardError.write($0) }
    exit(status)
}

/// Writes one line with a single write(2): no stdio buffer to lose when killed.
func acknowledge(_ text: String) {
    let line = Array((text + "\n").utf8)
    do { try FileDescriptor.standardOutput.writeAll(line, timeout: .seconds(10)) } catch {
        fail("stdout: \(error)", status: 1)
    }
}

var positional: [String] = []
var group = 1
// Torture bodies are at most a few hundred bytes; a small record limit lets small segments be tested.
var options = LedgerOptions(maxRecordBytes: 1024)
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    switch argument {
    case "--group":
        guard let value = arguments.popFirst().flatMap({ Int($0) }), value > 0 else { fail("--group needs a count", status: 2) }
        group = value
    case "--no-preallocate": options.preallocate = false
    case "--segment-bytes":
        guard let value = arguments.popFirst().flatMap({ Int($0) }) else { fail("--segment-bytes needs a size", status: 2) }
        options.segmentBytes = value
    default: positional.append(argument)
    }
}
guard positional.count == 2, let count = Int(positional[1]), count >= 0 else {
    fail("usage: ledger-torture DIR N [--group K] [--no-preallocate] [--segment-bytes B]", status: 2)
}

do {
    let (ledger, report, records) = try Ledger.open(directory: positional[0], options: options)
    _ = records
    // Damage is the test's to judge (a power cut may leave a reordered torn
    // tail, reported as damage); carry on from where the ledger continues.
    if report.hasDamage {
        let line = Array("ledger-torture: recovery: \(report)\n".utf8)
        _ = try? line.withUnsafeBytes { try FileDescriptor.standardError.write($0) }
    }
    var next = ledger.nextSequence
    var written = 0
    while written < count {
        let batch = min(group, count - written)
        var sequences: [UInt64] = []
        for _ in 0..<batch {
            let sequence = try ledger.append(kind: TortureBody.kind, body: TortureBody.body(for: next))
            precondition(sequence == next, "ledger issued \(sequence), expected \(next)")
            sequences.append(sequence)
            next += 1
        }
        try ledger.sync()
        for sequence in sequences { acknowledge(String(sequence)) }
        written += batch
    }
    ledger.close()
} catch {
    fail("\(error)", status: 1)
}
