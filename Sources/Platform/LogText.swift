/// Text made safe for one log line. Pure.
///
/// Log lines go to standard error with an sd-daemon `<N>` priority prefix, and journald (like
/// any line-oriented reader) starts a new entry, reading a new prefix, after every line break.
/// A terminal's identity strings, a card's brand, the cloud's answers and configuration text
/// come from outside; a `\n<0>` in any of them would otherwise become a separate entry at
/// emergency priority. Every message is one line by design, so the sink escapes them all.
public enum LogText {
    /// `text` with every character a reader could take for a line break or a terminal control
    /// replaced by a visible escape: `\n`, `\r`, `\t`; other C0 controls and DEL as `\xHH`; C1
    /// controls (U+0080–U+009F, U+0085 NEXT LINE among them) and the Unicode line and paragraph
    /// separators (U+2028, U+2029) as `\u{HHHH}`; and the backslash itself as `\\`, so an
    /// escape in the log always means an escaped character, never text that looked like one.
    /// Text with nothing to escape is returned as it is.
    public static func escaped(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: needsEscape) else { return text }
        var out = ""
        out.reserveCapacity(text.utf8.count + 16)
        for s in text.unicodeScalars {
            guard needsEscape(s) else { out.unicodeScalars.append(s); continue }
            switch s.value {
            case 0x0A: out += "\\n"
            case 0x0D: out += "\\r"
            case 0x09: out += "\\t"
            case 0x5C: out += "\\\\"
            case 0..<0x20, 0x7F: out += "\\x" + hex(s.value, digits: 2)
            default: out += "\\u{" + hex(s.value, digits: 4) + "}"
            }
        }
        return out
    }

    /// Whether `s` is escaped by `escaped(_:)`.
    public static func needsEscape(_ s: Unicode.Scalar) -> Bool {
        switch s.value {
        case 0..<0x20, 0x5C, 0x7F...0x9F, 0x2028, 0x2029: return true
        default: return false
        }
    }

    static func hex(_ v: UInt32, digits: Int) -> String {
        let h = String(v, radix: 16, uppercase: true)
        return String(repeating: "0", count: max(0, digits - h.count)) + h
    }
}
