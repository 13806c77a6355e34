/// The record bodies `ledger-torture` writes, derived from the sequence so a
/// test can check a recovered record's content without knowing what was sent.
/// Shared here so the torture program and its tests cannot disagree.
public enum TortureBody {
    /// The record kind torture records carry.
    public static let kind: UInt16 = 0x7E57
    /// Smallest and largest body length; lengths vary so records straddle
    /// page and segment boundaries at many different offsets.
    public static let lengths = 8...300

    /// The body for `sequence`: a length and bytes from a SplitMix64 stream seeded by it.
    public static func body(for sequence: UInt64) -> [UInt8] {
        var state = sequence &* 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        let length = lengths.lowerBound + Int(next() % UInt64(lengths.count))
        var body = [UInt8](repeating: 0, count: length)
        // The sequence itself first, so a body moved to the wrong record is obvious.
        withUnsafeBytes(of: sequence.littleEndian) { body.replaceSubrange(0..<8, with: $0) }
        for i in 8..<length { body[i] = UInt8(truncatingIfNeeded: next()) }
        return body
    }
}
