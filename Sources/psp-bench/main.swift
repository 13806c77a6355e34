// psp-bench: per-frame cost of PSP frame and message decode and encode, and the heap
// allocations each makes. Meaningful figures need a release build:
//   swift build -c release --product psp-bench && .build/release/psp-bench
// Options: --frames N (frames per run, default 2,000,000), --quick (smoke run for CI).
//
//   psp-bench noise [--mb N] [--seed S] [--chunk B]
// measures how often seeded random line noise yields frames, and frames the P6X link acts on
// (issue 11; figures in docs/ARCHITECTURE.md). Deterministic: no clock, a seeded generator.
import Glibc

/// Default frames per run: at least a million, so a run lasts long enough (tens of ms)
/// for the clock and the odd scheduler hiccup not to matter.
let defaultFrames = 2_000_000
/// Best of this many measured runs (after one warm-up pass).
let defaultRuns = 5
/// Target from the issue: under 1 µs per 36-byte frame.
let targetNs = 1000.0

func usage() -> Never {
    print("usage: psp-bench [--frames N] [--quick]")
    print("       psp-bench noise [--mb N] [--seed S] [--chunk B]")
    exit(2)
}

if CommandLine.arguments.dropFirst().first == "noise" {
    var o = NoiseOptions()
    var rest = CommandLine.arguments.dropFirst(2)
    while let arg = rest.popFirst() {
        guard let v = rest.popFirst() else { usage() }
        switch arg {
        case "--mb": guard let n = Int(v), n > 0 else { usage() }; o.megabytes = n
        case "--seed": guard let n = UInt64(v) else { usage() }; o.seed = n
        case "--chunk": guard let n = Int(v), n > 0 else { usage() }; o.chunk = n
        default: usage()
        }
    }
    runNoise(o)
    exit(0)
}

var frames = defaultFrames
var runs = defaultRuns
var args = CommandLine.arguments.dropFirst()
while let arg = args.popFirst() {
    switch arg {
    case "--frames":
        guard let v = args.popFirst(), let n = Int(v), n > 0 else { usage() }
        frames = n
    case "--quick":
        // Smoke run: proves every path works and allocation counting is live, in under a
        // second even in a debug build; the timings it prints mean little.
        frames = 10_000; runs = 2
    case "-h", "--help": usage()
    default: usage()
    }
}

let perIteration = calibrateAllocationCounter()
print("calibration: \(fixed(perIteration, 2)) allocations per 100-element array (expected >= 1)")
guard perIteration >= 1 else {
    print("error: allocation counting is not working (malloc interposition failed); figures would be wrong")
    exit(1)
}

#if DEBUG
// Debug builds are 10-50x slower and allocate where the optimiser would not: only the
// frame-decode allocation check means anything here.
print("warning: debug build; timings and message-level allocation counts are not representative")
#endif

var checksum: UInt64 = 0
let results = runBenchmarks(frames: frames, runs: runs, checksum: &checksum)

print("")
print("frames per run: \(frames), best of \(runs) runs after a warm-up pass")
print(pad("benchmark", 26, right: false) + pad("bytes", 6) + pad("ns/frame", 10) + pad("allocs/frame", 14) + "  what")
for m in results {
    print(pad(m.name, 26, right: false) + pad(String(m.frameBytes), 6) + pad(fixed(m.nsPerFrame, 1), 10)
          + pad(fixed(m.allocsPerFrame, 2), 14) + "  " + m.what)
}
print("")
for m in results {
    print("RESULT name=\(m.name) frame_bytes=\(m.frameBytes) ns_per_frame=\(fixed(m.nsPerFrame, 1)) "
          + "allocs_per_frame=\(fixed(m.allocsPerFrame, 2)) allocs=\(m.allocs) frames=\(m.frames)")
}

// The targets: under 1 µs per 36-byte frame, and no allocation on the frame-level decode
// path (the decoded message's own arrays are its business, reported above).
let slow = results.filter { $0.frameBytes == 36 && !$0.name.hasSuffix("floor_36") && $0.nsPerFrame >= targetNs }.map(\.name)
let allocating = results.filter { $0.name.hasPrefix("decode_frame") && $0.allocs > 0 }.map(\.name)
print("")
print("target < \(Int(targetNs)) ns per 36-byte frame: " + (slow.isEmpty ? "met" : "NOT met by " + slow.joined(separator: ", ")))
print("target 0 allocations in frame decode: " + (allocating.isEmpty ? "met" : "NOT met by " + allocating.joined(separator: ", ")))
// Printed so the optimiser must compute every decoded field.
print("checksum: \(checksum)")
