import Configuration
import Daemon
import Foundation
import Platform
import Testing

/// The hand-written man pages in docs/man against what the programs really take: every key of
/// docs/paybridge.conf with the daemon's own default, every flag of the daemon's usage, every
/// command and option of paybridgectl's, and no warning from groff (or man, as lintian runs it).
@Suite struct ManPages {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static let pages = ["paybridged.8", "paybridgectl.1", "paybridge.conf.5"]

    static func page(_ name: String) throws -> [String] {
        try String(contentsOfFile: root + "/docs/man/" + name, encoding: .utf8).components(separatedBy: "\n")
    }

    /// roff's escaped minus, as the pages write every option and hyphenated word.
    static func roff(_ s: String) -> String { s.replacingOccurrences(of: "-", with: "\\-") }

    /// Every `--flag` in a text.
    static func flags(in text: String) -> Set<String> {
        var found: Set<String> = []
        var rest = Substring(text)
        while let r = rest.range(of: "--") {
            let name = rest[r.upperBound...].prefix { $0.isLowercase || $0 == "-" }
            if let first = name.first, first.isLowercase { found.insert("--" + name) }
            rest = rest[r.upperBound...]
        }
        return found
    }

    /// Whether `lines` has a tag or synopsis line for `word`: `.B word`, `.BI word …`, `.BR word …`, `\fBword\fR…`.
    static func tagged(_ word: String, in lines: [String]) -> Bool {
        let w = roff(word)
        return lines.contains { line in
            for prefix in [".B ", ".BI ", ".BR ", "\\fB"] where line.hasPrefix(prefix + w) {
                let after = line.dropFirst(prefix.count + w.count)
                if after.isEmpty || after.first == " " || after.hasPrefix("\\f") { return true }
            }
            return false
        }
    }

    /// The header names the version the page describes: a release that bumps paybridgeVersion
    /// has its pages looked at (and their flags checked below) before it ships.
    @Test func everyPageNamesTheDaemonsVersion() throws {
        for name in Self.pages {
            let th = try Self.page(name).first { $0.hasPrefix(".TH ") } ?? ""
            #expect(th.contains("\"paybridge \(paybridgeVersion)\""), "\(name): \(th) does not name paybridge \(paybridgeVersion)")
        }
    }

    @Test func everyFlagOfTheDaemonsUsageIsDocumented() throws {
        let lines = try Self.page("paybridged.8")
        let flags = Self.flags(in: usage).union(DaemonArguments.keyFlags.keys).union(["--help"])
        #expect(flags.count > 25, "the usage was read: \(flags.sorted())")
        for flag in flags.sorted() {
            #expect(Self.tagged(flag, in: lines), "paybridged.8 has no entry for \(flag)")
        }
        // The check finds what is missing.
        #expect(!Self.tagged("--no-such-flag", in: lines))
        // Exit statuses the daemon uses.
        let text = lines.joined(separator: "\n")
        for status in [0, 1, ExitStatus.refused, ExitStatus.ledgerFailed] {
            #expect(text.contains(".SH EXIT STATUS") && Self.tagged("\(status)", in: lines), "exit status \(status)")
        }
        for signal in ["SIGHUP", "SIGTERM"] { #expect(Self.tagged(signal, in: lines), "\(signal) not documented") }
    }

    /// Keys and values of docs/paybridge.conf, comments dropped.
    static func exampleKeys() throws -> [(key: String, value: String)] {
        try String(contentsOfFile: root + "/docs/paybridge.conf", encoding: .utf8).components(separatedBy: "\n").compactMap { line in
            let content = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
            let parts = content.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2 else { return nil }
            return (parts[0].trimmingCharacters(in: .whitespaces), parts[1].trimmingCharacters(in: .whitespaces))
        }
    }

    /// The default a `.BR KEY " = " VALUE` (or `.BR KEY " =" " (empty)"`) tag line gives; nil: no such line.
    static func documentedDefault(of key: String, in lines: [String]) -> String? {
        let prefix = ".BR \(key) "
        guard let line = lines.first(where: { $0.hasPrefix(prefix + "\"") }) else { return nil }
        var rest = line.dropFirst(prefix.count)
        if rest == "\" =\" \" (empty)\"" { return "" }
        guard rest.hasPrefix("\" = \" ") else { return "?" + line }
        rest = rest.dropFirst(6)
        if rest.hasPrefix("\"") && rest.hasSuffix("\"") && rest.count >= 2 { rest = rest.dropFirst().dropLast() }
        return String(rest).replacingOccurrences(of: "\\-", with: "-")
    }

    @Test func everyKeyIsDocumentedWithTheDaemonsDefault() throws {
        let lines = try Self.page("paybridge.conf.5")
        let example = try Self.exampleKeys()
        #expect(example.count >= DaemonConfig.keys.count, "docs/paybridge.conf was read: \(example.count) keys")
        let defaults = DaemonConfig()
        for (key, value) in example {
            let documented = Self.documentedDefault(of: key, in: lines)
            #expect(documented != nil, "paybridge.conf.5 has no entry for \(key)")
            guard let documented else { continue }
            #expect(documented == value, "\(key): paybridge.conf.5 says '\(documented)', docs/paybridge.conf '\(value)'")
            #expect(documented == defaults.value(of: key), "\(key): paybridge.conf.5 says '\(documented)', the daemon's default is '\(defaults.value(of: key) ?? "nil")'")
        }
        // The daemon's own list of keys, in case docs/paybridge.conf lost one.
        for (key, _) in DaemonConfig.keys { #expect(Self.documentedDefault(of: key, in: lines) != nil, "paybridge.conf.5 has no entry for \(key)") }
        // What SIGHUP applies at once is listed under RELOADING.
        let text = lines.joined(separator: "\n")
        let reloading = text.components(separatedBy: ".SH RELOADING").dropFirst().first?.components(separatedBy: "\n.SH ").first ?? ""
        for key in DaemonConfig.reloadableKeys.sorted() { #expect(reloading.contains(".BR \(key)") || reloading.contains(".B \(key)\n"), "RELOADING does not name \(key)") }
        #expect(Self.documentedDefault(of: "no.such_key", in: lines) == nil)
    }

    @Test func everyCommandAndOptionOfPaybridgectlIsDocumented() throws {
        let help = try runProgram(ChildProcess.executableDirectory() + "/paybridgectl", ["--help"])
        #expect(help.status == 0, "paybridgectl --help: \(help.status) \(help.err)")
        var commands: Set<String> = ["decode psp"]
        for line in help.out.components(separatedBy: "\n") where line.hasPrefix("  ") && line.dropFirst(2).first?.isLowercase == true {
            commands.insert(String(line.dropFirst(2).prefix { $0 != " " }))
        }
        #expect(commands.isSuperset(of: ["status", "sessions", "export", "stop", "test-transaction", "controller", "evse-ready"]), "the usage was read: \(commands.sorted())")
        let lines = try Self.page("paybridgectl.1")
        for command in commands.sorted() { #expect(Self.tagged(command, in: lines), "paybridgectl.1 has no entry for \(command)") }
        let text = lines.joined(separator: "\n")
        for flag in Self.flags(in: help.out).sorted() { #expect(text.contains(Self.roff(flag)), "paybridgectl.1 does not mention \(flag)") }
        for status in 0...3 { #expect(Self.tagged("\(status)", in: lines), "exit status \(status)") }
    }

    static func tool(_ name: String) -> String? {
        ["/usr/bin/", "/bin/"].map { $0 + name }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    @Test(.enabled(if: tool("groff") != nil, "groff is not installed (apt-get install groff-base): the man pages' roff is not checked"))
    func groffFindsNothingToWarnAbout() throws {
        for name in Self.pages {
            let r = try runProgram(Self.tool("groff")!, ["-man", "-ww", "-z", Self.root + "/docs/man/" + name])
            #expect(r.status == 0 && r.err.isEmpty, "groff -man -ww on \(name): \(r.err)")
        }
        // The check can fail: a page with an unknown macro and an unknown escape.
        let bad = FileManager.default.temporaryDirectory.appendingPathComponent("bad-\(UUID().uuidString.prefix(8)).1").path
        try ".TH BAD 1\n.SH NAME\nbad \\- bad\n.XY nothing\n\\[nosuchglyph]\n".write(toFile: bad, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: bad) }
        #expect(try !runProgram(Self.tool("groff")!, ["-man", "-ww", "-z", bad]).err.isEmpty)
    }

    /// lintian's own check (manpage-has-errors-from-man) runs man this way.
    @Test(.enabled(if: tool("man") != nil && tool("groff") != nil, "man is not installed (apt-get install man-db): lintian's man check is not run here"))
    func manAsLintianRunsItFindsNothingToWarnAbout() throws {
        var env = ProcessInfo.processInfo.environment
        env["LC_ALL"] = "C.UTF-8"
        env["MANWIDTH"] = "80"
        for name in Self.pages {
            let r = try runProgram(Self.tool("man")!, ["--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z", Self.root + "/docs/man/" + name], environment: env)
            #expect(r.status == 0 && r.err.isEmpty, "man --warnings on \(name): \(r.err)")
        }
    }
}
