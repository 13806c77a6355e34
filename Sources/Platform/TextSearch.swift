extension StringProtocol {
    /// Whether `needle` occurs in this text, compared as UTF-8 bytes (an empty needle always
    /// does). Written out because `String.contains(String)` lives in _StringProcessing, which
    /// the shipped targets do not import (see Package.swift and docs/ARCHITECTURE.md).
    public func includes(_ needle: String) -> Bool {
        let n = Array(needle.utf8), h = Array(utf8)
        guard !n.isEmpty else { return true }
        guard h.count >= n.count else { return false }
        for start in 0...(h.count - n.count) where h[start..<(start + n.count)].elementsEqual(n) { return true }
        return false
    }
}
