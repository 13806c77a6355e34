import Foundation
import Testing
import Configuration

/// A configuration file edited on Windows (CRLF) or an old Mac (CR) reads like the same file with LF.
@Suite struct LineEndings {
    /// The documented example with a few values changed, so "parsed as all defaults" cannot pass.
    static var changed: String {
        ConfigurationFile.example
            .replacingOccurrences(of: "charger.connectors = 1 ", with: "charger.connectors = 3 ")
            .replacingOccurrences(of: "log.level = info ", with: "log.level = debug ")
            .replacingOccurrences(of: "payment.preauth = 5000 ", with: "payment.preauth = 7500 ")
    }

    @Test func crlfParsesExactlyLikeLF() {
        let lf = Self.changed
        #expect(lf != ConfigurationFile.example, "the example changed")
        let (expected, lfProblems) = ConfigParser.parse(lf)
        #expect(lfProblems.isEmpty, "\(lfProblems)")
        #expect(expected.engine.connectors == 3 && expected.logLevel == "debug" && expected.engine.preauthAmount == 7500)
        let crlf = lf.replacingOccurrences(of: "\n", with: "\r\n")
        #expect(crlf.utf8.filter { $0 == 0x0D }.count > 40, "really CRLF")
        let (c, problems) = ConfigParser.parse(crlf)
        #expect(problems.isEmpty, "\(problems)")
        #expect(c == expected)
    }

    @Test func loneCRAndMixedEndingsToo() {
        let lf = Self.changed
        let (expected, _) = ConfigParser.parse(lf)
        let (cr, crProblems) = ConfigParser.parse(lf.replacingOccurrences(of: "\n", with: "\r"))
        #expect(crProblems.isEmpty, "\(crProblems)")
        #expect(cr == expected)
        var mixed = ""
        for (i, line) in lf.components(separatedBy: "\n").enumerated() {
            mixed += line + (i % 3 == 0 ? "\r\n" : i % 3 == 1 ? "\n" : "\r")
        }
        let (m, mixedProblems) = ConfigParser.parse(mixed)
        #expect(mixedProblems.isEmpty, "\(mixedProblems)")
        #expect(m == expected)
    }

    @Test func lineNumbersCountEveryEnding() {
        // Six lines ended by CRLF, CR, LF, CRLF, CRLF; the problems are on lines 2, 4 and 6.
        let text = "# a comment\r\nbogus.key = 1\rcharger.connectors = 2\ncharger.connectors = 9\r\n\r\nlog.level = loud"
        let (c, problems) = ConfigParser.parse(text)
        #expect(c.engine.connectors == 2)
        #expect(problems.map(\.line) == [2, 4, 6], "\(problems)")
        #expect(problems.count == 3 && problems[1].message.contains("already set on line 3"), "\(problems)")
    }
}
