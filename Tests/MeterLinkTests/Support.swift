import Glibc
import Timebase

/// Seeds for the property tests: fixed ones, or MODBUS_SEED to replay a failure. Each test prints
/// its seed, so a failure in a log can be replayed without reading the test.
enum Seeds {
    static func sample(_ n: Int) -> [UInt64] {
        if let p = getenv("MODBUS_SEED"), let s = UInt64(String(cString: p)) { return [s] }
        return (0..<UInt64(n)).map { 0x4D42_0000 + $0 }
    }

    static func generator(_ seed: UInt64, _ test: String) -> SeededGenerator {
        print("\(test): seed \(seed) (replay with MODBUS_SEED=\(seed))")
        return SeededGenerator(seed: seed)
    }
}

extension SeededGenerator {
    mutating func byte() -> UInt8 { UInt8.random(in: 0...255, using: &self) }
    mutating func bytes(_ n: Int) -> [UInt8] { (0..<n).map { _ in byte() } }
}

extension Instant {
    static func ms(_ v: Int64) -> Instant { Instant(nanoseconds: UInt64(v) * 1_000_000) }
}
