extension StringProtocol {
    /// Whether `needle` occurs in this text, compared as UTF-8 bytes. Written out here because
    /// `String.contains(String)` lives in _StringProcessing, which the daemon does not link
    /// (it would add 0.8 MB of regex engine to the binary; see docs/ARCHITECTURE.md, Limits).
    func includes(_ needle: String) -> Bool {
        let n = Array(needle.utf8), h = Array(utf8)
        guard !n.isEmpty else { return true }
        guard h.count >= n.count else { return false }
        for start in 0...(h.count - n.count) where h[start..<(start + n.count)].elementsEqual(n) { return true }
        return false
    }
}
