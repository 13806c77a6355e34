import CAllocCounter
import Platform

/// One benchmark's figures: the fastest run's time, and the allocations it made.
struct Measurement {
    /// Machine-readable name, e.g. `decode_frame_36`.
    var name: String
    /// What the benchmark covers, for the table.
    var what: String
    /// Encoded frame size in bytes (preamble to checksum).
    var frameBytes: Int
    var nsPerFrame: Double
    /// Allocations per frame in the measured run that allocated most (they normally agree).
    var allocsPerFrame: Double
    /// That run's total allocations and frames, so a rare allocation (buffer growth) stays visible.
    var allocs: UInt64
    var frames: Int
}

/// Heap allocations made by the whole process so far (glibc interposition, see CAllocCounter).
@inline(__always) func allocations() -> UInt64 { alloc_count() }

/// Runs `body` once to warm up (caches, branch predictors, buffer growth), then `runs` times,
/// keeping the fastest run's time per frame.
///
/// `body(n)` processes at least `n` frames and returns how many it did plus a checksum of
/// what it decoded or encoded; the checksum is folded into `checksum`, which the caller
/// prints, so the optimiser cannot drop the work. State the body keeps between calls (a
/// decoder, an output buffer) belongs to the caller, so its setup is neither timed nor counted.
func measure(_ name: String, _ what: String, frameBytes: Int, frames: Int, runs: Int, checksum: inout UInt64,
             _ body: (Int) -> (frames: Int, checksum: UInt64)) -> Measurement {
    checksum &+= body(frames).checksum
    var result = Measurement(name: name, what: what, frameBytes: frameBytes, nsPerFrame: .infinity,
                             allocsPerFrame: 0, allocs: 0, frames: 0)
    for _ in 0..<max(1, runs) {
        let a0 = allocations()
        let t0 = MonotonicClock.now()
        let (done, sum) = body(frames)
        let t1 = MonotonicClock.now()
        let allocs = allocations() - a0
        checksum &+= sum
        precondition(done > 0, "\(name): no frames processed")
        result.nsPerFrame = min(result.nsPerFrame, Double(t1.nanoseconds - t0.nanoseconds) / Double(done))
        let perFrame = Double(allocs) / Double(done)
        if result.frames == 0 || perFrame > result.allocsPerFrame {
            result.allocsPerFrame = perFrame; result.allocs = allocs; result.frames = done
        }
    }
    return result
}

/// Allocations per iteration of a loop that must allocate: a 100-element array whose address
/// escapes into C, so the optimiser can neither remove nor stack-promote it. Below 1 means
/// the counter is not seeing the Swift runtime's allocations and every figure would be wrong.
func calibrateAllocationCounter(iterations: Int = 1000) -> Double {
    let before = allocations()
    for i in 0..<iterations {
        let a = [UInt8](repeating: UInt8(truncatingIfNeeded: i), count: 100)
        a.withUnsafeBytes { alloc_counter_escape($0.baseAddress) }
    }
    return Double(allocations() - before) / Double(iterations)
}

/// Hands `value`'s address to C, so whatever it references counts as escaped: a decoded
/// message that really leaves the decoder (to the link) cannot be stack-promoted either.
@inline(__always) func keep<T>(_ value: T) {
    withUnsafePointer(to: value) { alloc_counter_escape($0) }
}

/// `value` with `decimals` digits after the point (no Foundation, so no String(format:)).
func fixed(_ value: Double, _ decimals: Int) -> String {
    guard value.isFinite else { return "\(value)" }
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let scaled = (abs(value) * scale).rounded()
    guard scaled < 9e18 else { return "\(value)" }
    let n = UInt64(scaled), s = UInt64(scale)
    let sign = value < 0 && n != 0 ? "-" : ""
    guard decimals > 0 else { return sign + String(n) }
    let frac = String(n % s)
    return sign + String(n / s) + "." + String(repeating: "0", count: decimals - frac.count) + frac
}

/// `s` padded with spaces to `width`, on the left when `right` (numbers), else on the right.
func pad(_ s: String, _ width: Int, right: Bool = true) -> String {
    let fill = String(repeating: " ", count: max(0, width - s.count))
    return right ? fill + s : s + fill
}
