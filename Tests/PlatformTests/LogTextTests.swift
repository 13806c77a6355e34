import Glibc
import Testing
import Platform
import Timebase

/// Log lines from outside input stay one line (issue 11 item 3).
@Suite struct LogTextTests {
    @Test func plainTextIsUnchanged() {
        let s = "terminal identity: serial P68-SIM-0042, firmware P6X-SIM 2.4 (äöü €)"
        #expect(LogText.escaped(s) == s)
    }

    @Test func everyLineBreakAndControlIsEscaped() {
        #expect(LogText.escaped("a\nb") == "a\\nb")
        #expect(LogText.escaped("\n<0>EMERG") == "\\n<0>EMERG")
        #expect(LogText.escaped("cr\r tab\t nul\u{0} esc\u{1B}[2J del\u{7F}") == "cr\\r tab\\t nul\\x00 esc\\x1B[2J del\\x7F")
        // C1 controls (NEL among them) and the Unicode line and paragraph separators.
        #expect(LogText.escaped("nel\u{85} csi\u{9B} ls\u{2028} ps\u{2029}") == "nel\\u{0085} csi\\u{009B} ls\\u{2028} ps\\u{2029}")
        // The backslash is escaped too, so an escape in the log is never text that looked like one.
        #expect(LogText.escaped("C:\\n") == "C:\\\\n")
    }

    /// Every scalar a seeded generator picks: the output is one line of printable text, and
    /// undoing the escapes gives the input back.
    @Test func randomTextBecomesOneReversibleLine() {
        let seed = UInt64(MonotonicClock.now().nanoseconds & 0xFFFF_FFFF)
        var rng = SeededGenerator(seed: seed)
        for _ in 0..<500 {
            var s = ""
            for _ in 0..<Int(rng.next() % 40) {
                let pick = rng.next() % 6
                let v: UInt32
                switch pick {
                case 0: v = UInt32(rng.next() % 0x20)
                case 1: v = 0x7F + UInt32(rng.next() % 0x21)
                case 2: v = [0x2028, 0x2029, 0x5C, 0x0A, 0x0D][Int(rng.next() % 5)]
                default: v = 0x20 + UInt32(rng.next() % 0x5F)
                }
                s.unicodeScalars.append(Unicode.Scalar(v)!)
            }
            let e = LogText.escaped(s)
            #expect(!e.unicodeScalars.contains(where: LogText.needsEscape(_:)) || e.unicodeScalars.filter(LogText.needsEscape(_:)).allSatisfy { $0 == "\\" },
                    "seed \(seed): \(e.debugDescription)")
            #expect(unescape(e) == s, "seed \(seed): \(s.debugDescription) -> \(e.debugDescription)")
        }
    }

    func unescape(_ e: String) -> String {
        var out = ""
        var it = Array(e.unicodeScalars)[...]
        while let c = it.popFirst() {
            guard c == "\\", let k = it.popFirst() else { out.unicodeScalars.append(c); continue }
            switch k {
            case "n": out += "\n"
            case "r": out += "\r"
            case "t": out += "\t"
            case "\\": out += "\\"
            case "x":
                let h = String(String.UnicodeScalarView(it.prefix(2))); it = it.dropFirst(2)
                out.unicodeScalars.append(Unicode.Scalar(UInt32(h, radix: 16)!)!)
            default: // u{HHHH}
                let h = String(String.UnicodeScalarView(it.dropFirst().prefix(4))); it = it.dropFirst(6)
                out.unicodeScalars.append(Unicode.Scalar(UInt32(h, radix: 16)!)!)
            }
        }
        return out
    }
}
