import Foundation
import Glibc
import Testing

/// The Debian package (packaging/make-deb, packaging/check-deb).
///
/// A release build of the package takes minutes, so this suite does not build one: `.ci/run`
/// builds it once after the tests and runs this suite again with `PAYBRIDGE_DEB` naming it. Then
/// the package is checked (check-deb), installed into a scratch root with its maintainer scripts
/// (`dpkg --root --force-script-chrootless`, as image builders install), upgraded with a
/// changed conffile, and purged. Without `PAYBRIDGE_DEB`, the cheap half runs: the packaging
/// scripts' own rules, and check-deb failing on a package it must refuse.
@Suite(.serialized) struct DebianPackage {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static let builtPackage = ProcessInfo.processInfo.environment["PAYBRIDGE_DEB"].flatMap { $0.isEmpty ? nil : $0 }
    static func tool(_ name: String) -> Bool { ["/usr/bin/", "/bin/"].contains { FileManager.default.isExecutableFile(atPath: $0 + name) } }
    static let hasDpkgDeb = tool("dpkg-deb")

    /// Runs a program to its end: exit status and standard output and error together.
    static func run(_ program: String, _ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: program.hasPrefix("/") ? program : "/usr/bin/env")
        p.arguments = program.hasPrefix("/") ? arguments : [program] + arguments
        p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        p.standardInput = FileHandle.nullDevice
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    static func scratch(_ name: String) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    // MARK: without a built package

    /// A package without the units would install a daemon nothing starts: make-deb refuses
    /// before it builds anything, naming what is missing.
    @Test(.enabled(if: hasDpkgDeb, "dpkg-deb is not installed (apt-get install dpkg-dev): packaging not checked"))
    func makeDebRefusesToPackageWithoutTheUnits() throws {
        let r = try Self.run(Self.root + "/packaging/make-deb", ["--skip-build"], environment: ["PAYBRIDGE_UNITS_DIR": "/nonexistent"])
        #expect(r.status == 1, "\(r.output)")
        for file in ["systemd/paybridged.service", "systemd/paybridged.socket", "systemd/paybridge.sysusers", "udev/60-paybridge.rules", "udev/59-paybridge-local.rules.example"] {
            #expect(r.output.contains("/nonexistent/\(file)"), "\(file) not named: \(r.output)")
        }
    }

    /// The package's version is the daemon's, and the changelog must have its entry: a version
    /// bump without one fails here, not at release time.
    @Test func theChangelogHasAnEntryForTheDaemonsVersion() throws {
        let source = try String(contentsOfFile: Self.root + "/Sources/Daemon/StationDiagnostics.swift", encoding: .utf8)
        let line = source.components(separatedBy: "\n").first { $0.hasPrefix("public let paybridgeVersion = \"") }
        let version = line?.split(separator: "\"").dropFirst().first.map(String.init)
        #expect(version != nil, "paybridgeVersion not found")
        let changelog = try String(contentsOfFile: Self.root + "/packaging/debian/changelog", encoding: .utf8)
        #expect(changelog.hasPrefix("paybridge (\(version ?? "?")-1) "), "packaging/debian/changelog's first entry is not \(version ?? "?")-1: \(changelog.prefix(40))")
        // Maintainer scripts: POSIX sh, syntax checked.
        for script in ["postinst", "prerm", "postrm"] {
            let path = Self.root + "/packaging/debian/" + script
            #expect(FileManager.default.isExecutableFile(atPath: path), "\(script) is not executable")
            let r = try Self.run("/bin/sh", ["-n", path])
            #expect(r.status == 0, "\(script): \(r.output)")
        }
    }

    /// check-deb can fail: a package with a simulator in it, no conffile and no units.
    @Test(.enabled(if: hasDpkgDeb, "dpkg-deb is not installed (apt-get install dpkg-dev): packaging not checked"))
    func checkDebRefusesAPackageWithASimulator() throws {
        let dir = try Self.scratch("bad-deb")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let tree = dir + "/paybridge_0.0.1-1_amd64"
        try FileManager.default.createDirectory(atPath: tree + "/DEBIAN", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: tree + "/usr/bin", withIntermediateDirectories: true)
        try "Package: paybridge\nVersion: 0.0.1-1\nArchitecture: amd64\nMaintainer: Test <test@example.org>\nDescription: test\n test\n"
            .write(toFile: tree + "/DEBIAN/control", atomically: true, encoding: .utf8)
        try "#!/bin/sh\nexit 0\n".write(toFile: tree + "/usr/bin/charger-sim", atomically: true, encoding: .utf8)
        chmod(tree + "/usr/bin/charger-sim", 0o755)
        let built = try Self.run("dpkg-deb", ["--root-owner-group", "--build", tree, dir + "/paybridge_0.0.1-1_amd64.deb"])
        try #require(built.status == 0, "\(built.output)")
        let r = try Self.run(Self.root + "/packaging/check-deb", [dir + "/paybridge_0.0.1-1_amd64.deb"])
        #expect(r.status == 1, "\(r.output)")
        #expect(r.output.contains("FAIL: a simulator, benchmark or test binary is in the package"), "\(r.output)")
        #expect(r.output.contains("FAIL: conffiles is not exactly /etc/paybridge/paybridge.conf"), "\(r.output)")
        #expect(r.output.contains("Depends lacks libc6"), "\(r.output)")
    }

    /// The deferred restart after an upgrade (packaging/restart-when-idle), against stand-ins for
    /// systemctl and paybridgectl: it restarts once no session is open, at once when the daemon
    /// cannot be asked, anyway after the longest wait, and not at all when the daemon is not running.
    @Test func theDeferredRestartWaitsForTheLastSessionToClose() throws {
        let dir = try Self.scratch("idle")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = dir + "/calls"
        func stub(_ name: String, _ body: String) throws {
            try "#!/bin/sh\n\(body)\n".write(toFile: dir + "/" + name, atomically: true, encoding: .utf8)
            chmod(dir + "/" + name, 0o755)
        }
        // systemctl: is-active answers from a file; every call is logged.
        try stub("systemctl", "echo \"systemctl $*\" >> \(log)\nif [ \"$2\" = is-active ]; then [ -e \(dir)/active ]; fi")
        // paybridgectl: answers from `replies` one line per call (the last one repeats), or fails.
        try stub("paybridgectl", """
            echo "paybridgectl $*" >> \(log)
            n=$(grep -c paybridgectl \(log))
            line=$(sed -n "${n}p" \(dir)/replies); [ -n "$line" ] || line=$(tail -1 \(dir)/replies)
            [ "$line" = unreachable ] && { echo "cannot reach the daemon" >&2; exit 3; }
            echo "$line"
            """)
        let open = #"{"v":1,"id":1,"ok":true,"sessions":[{"session":"CHG-1","state":"charging"}]}"#
        let idle = #"{"v":1,"id":1,"ok":true,"sessions":[]}"#
        func run(replies: [String], active: Bool = true, maxWait: Int = 86400) throws -> (output: String, calls: [String]) {
            try? FileManager.default.removeItem(atPath: log)
            try? FileManager.default.removeItem(atPath: dir + "/active")
            if active { FileManager.default.createFile(atPath: dir + "/active", contents: Data()) }
            try (replies.joined(separator: "\n") + "\n").write(toFile: dir + "/replies", atomically: true, encoding: .utf8)
            let r = try Self.run("/bin/sh", [Self.root + "/packaging/restart-when-idle"], environment: [
                "PATH": dir + ":/usr/bin:/bin", "PAYBRIDGE_IDLE_POLL": "0", "PAYBRIDGE_IDLE_MAX_WAIT": String(maxWait)])
            #expect(r.status == 0, "\(r.output)")
            return (r.output, fileText(log).split(separator: "\n").map(String.init))
        }
        // Two checks with a session open, then none: one restart, after the third question.
        let waited = try run(replies: [open, open, idle])
        #expect(waited.calls.filter { $0.hasPrefix("paybridgectl") } == Array(repeating: "paybridgectl --json sessions --open", count: 3), "\(waited.calls)")
        #expect(waited.calls.last == "systemctl restart paybridged.service", "\(waited.calls)")
        #expect(waited.calls.filter { $0.contains("restart") }.count == 1)
        // A daemon that cannot be asked is restarted (the ledger makes that safe).
        let unreachable = try run(replies: ["unreachable"])
        #expect(unreachable.calls.last == "systemctl restart paybridged.service", "\(unreachable.calls)")
        // Sessions that never close: restarted anyway once the longest wait is over.
        let busy = try run(replies: [open], maxWait: 0)
        #expect(busy.calls.last == "systemctl restart paybridged.service", "\(busy.calls)")
        #expect(busy.output.contains("anyway"), "\(busy.output)")
        // Not running (stopped by hand meanwhile): nothing to restart.
        let stopped = try run(replies: [idle], active: false)
        #expect(!stopped.calls.contains { $0.contains("restart") }, "\(stopped.calls)")
    }

    // MARK: with the package .ci/run built

    @Test(.enabled(if: builtPackage == nil, "PAYBRIDGE_DEB names a package: it is installed below"))
    func withoutABuiltPackageSaySo() {
        print("DebianPackage: PAYBRIDGE_DEB is not set, so no built package is installed here; .ci/run builds one with packaging/make-deb and runs this suite with PAYBRIDGE_DEB=PATH")
    }

    @Test(.enabled(if: builtPackage != nil && hasDpkgDeb && getuid() == 0, "needs PAYBRIDGE_DEB (a package from packaging/make-deb), dpkg-deb and root"))
    func theBuiltPackagePassesCheckDebAndInstallsUpgradesAndPurges() throws {
        let deb = Self.builtPackage!
        let check = try Self.run(Self.root + "/packaging/check-deb", [deb])
        #expect(check.status == 0, "check-deb:\n\(check.output)")

        // A scratch root with an empty dpkg database; the maintainer scripts run on this host
        // with DPKG_ROOT set, as mmdebstrap runs them. Dependencies are not installed there.
        let target = try Self.scratch("deb-root")
        defer { try? FileManager.default.removeItem(atPath: target) }
        for d in ["/var/lib/dpkg/updates", "/var/lib/dpkg/info", "/etc"] {
            try FileManager.default.createDirectory(atPath: target + d, withIntermediateDirectories: true)
        }
        FileManager.default.createFile(atPath: target + "/var/lib/dpkg/status", contents: Data())
        let dpkg = ["--root=\(target)", "--force-script-chrootless", "--force-depends"]
        let install = try Self.run("dpkg", dpkg + ["-i", deb])
        try #require(install.status == 0, "dpkg -i:\n\(install.output)")

        let fm = FileManager.default
        func mode(_ path: String) -> Int? { (try? fm.attributesOfItem(atPath: target + path))?[.posixPermissions] as? Int }
        func owner(_ path: String) -> Int? { (try? fm.attributesOfItem(atPath: target + path))?[.ownerAccountID] as? Int }
        func group(_ path: String) -> Int? { (try? fm.attributesOfItem(atPath: target + path))?[.groupOwnerAccountID] as? Int }
        for (path, expected) in [("/usr/bin/paybridged", 0o755), ("/usr/bin/paybridgectl", 0o755), ("/usr/lib/modules-load.d/paybridge.conf", 0o644),
                                 ("/usr/lib/systemd/system/paybridged.service", 0o644), ("/usr/lib/systemd/system/paybridged.socket", 0o644),
                                 ("/usr/lib/sysusers.d/paybridge.conf", 0o644), ("/usr/lib/udev/rules.d/60-paybridge.rules", 0o644),
                                 ("/usr/share/man/man8/paybridged.8.gz", 0o644), ("/usr/share/man/man1/paybridgectl.1.gz", 0o644),
                                 ("/usr/share/man/man5/paybridge.conf.5.gz", 0o644), ("/usr/share/doc/paybridge/copyright", 0o644),
                                 ("/usr/share/doc/paybridge/changelog.Debian.gz", 0o644), ("/usr/share/doc/paybridge/59-paybridge-local.rules.example", 0o644)] {
            #expect(mode(path) == expected, "\(path): mode \(mode(path).map { String($0, radix: 8) } ?? "missing"), expected \(String(expected, radix: 8))")
            #expect(owner(path) == 0, "\(path) not owned by root")
        }
        for simulator in ["charger-sim", "terminal-sim", "cloud-sim", "paybridge-demo"] {
            #expect(!fm.fileExists(atPath: target + "/usr/bin/" + simulator), "\(simulator) installed")
        }
        // The shipped configuration is the documented one, registered as a conffile.
        #expect(fm.contentsEqual(atPath: target + "/etc/paybridge/paybridge.conf", andPath: Self.root + "/docs/paybridge.conf"))
        let conffiles = try Self.run("dpkg-query", ["--root=\(target)", "-W", "-f=${Conffiles}", "paybridge"])
        #expect(conffiles.output.contains("/etc/paybridge/paybridge.conf "), "\(conffiles.output)")
        // postinst: the user in the target's passwd, the ledger's directory for it alone, both units enabled.
        let passwd = fileText(target + "/etc/passwd")
        let entry = passwd.components(separatedBy: "\n").first { $0.hasPrefix("paybridge:") }?.components(separatedBy: ":")
        #expect(entry != nil, "no paybridge user in the target's /etc/passwd: \(passwd)")
        #expect(mode("/var/lib/paybridge") == 0o700, "/var/lib/paybridge: the service's StateDirectoryMode")
        #expect(owner("/var/lib/paybridge").map(String.init) == entry?[2], "/var/lib/paybridge not owned by the paybridge user")
        // The configuration readable by the daemon's group only, through a statoverride dpkg keeps applying.
        #expect(mode("/etc/paybridge/paybridge.conf") == 0o640)
        #expect(owner("/etc/paybridge/paybridge.conf") == 0)
        #expect(group("/etc/paybridge/paybridge.conf").map(String.init) == entry?[3], "paybridge.conf not in the paybridge group")
        let overrides = try Self.run("dpkg-statoverride", ["--root", target, "--list"])
        #expect(overrides.output.hasPrefix("root ") && overrides.output.contains(" 640 /etc/paybridge/paybridge.conf"), "\(overrides.output)")
        for link in ["/etc/systemd/system/multi-user.target.wants/paybridged.service", "/etc/systemd/system/sockets.target.wants/paybridged.socket"] {
            #expect((try? fm.destinationOfSymbolicLink(atPath: target + link))?.hasPrefix("/usr/lib/systemd/system/") == true, "\(link) not enabled")
        }

        // Upgrade (the same package again) with the configuration untouched: dpkg puts the
        // package's file back and applies the statoverride to it.
        let plainUpgrade = try Self.run("dpkg", dpkg + ["-i", deb])
        #expect(plainUpgrade.status == 0, "upgrade:\n\(plainUpgrade.output)")
        #expect(mode("/etc/paybridge/paybridge.conf") == 0o640 && group("/etc/paybridge/paybridge.conf").map(String.init) == entry?[3], "an upgrade lost the configuration's mode or group")

        // Upgrade with a changed configuration: the administrator's file stays.
        // Appended in place, as an editor that keeps the file would: its mode and group stay.
        let conf = try #require(FileHandle(forWritingAtPath: target + "/etc/paybridge/paybridge.conf"))
        conf.seekToEndOfFile()
        conf.write(Data("charger.connectors = 2\n".utf8))
        conf.closeFile()
        let ledger = target + "/var/lib/paybridge/ledger-000001.seg"
        try "money facts".write(toFile: ledger, atomically: true, encoding: .utf8)
        let upgrade = try Self.run("dpkg", dpkg + ["--force-confold", "-i", deb])
        #expect(upgrade.status == 0, "upgrade:\n\(upgrade.output)")
        #expect(fileText(target + "/etc/paybridge/paybridge.conf").hasSuffix("charger.connectors = 2\n"), "the changed configuration was replaced")
        #expect(mode("/etc/paybridge/paybridge.conf") == 0o640 && group("/etc/paybridge/paybridge.conf").map(String.init) == entry?[3], "the upgrade lost the configuration's mode or group")

        // Remove keeps the configuration; purge removes it and the units' links, and keeps the ledger.
        let remove = try Self.run("dpkg", dpkg + ["--remove", "paybridge"])
        #expect(remove.status == 0, "remove:\n\(remove.output)")
        #expect(!fm.fileExists(atPath: target + "/usr/bin/paybridged"))
        #expect(fm.fileExists(atPath: target + "/etc/paybridge/paybridge.conf"), "remove took the configuration")
        let purge = try Self.run("dpkg", dpkg + ["--purge", "paybridge"])
        #expect(purge.status == 0, "purge:\n\(purge.output)")
        #expect(!fm.fileExists(atPath: target + "/etc/paybridge"), "purge left /etc/paybridge")
        #expect(try Self.run("dpkg-statoverride", ["--root", target, "--list"]).output.isEmpty, "purge left the statoverride")
        #expect(fileText(ledger) == "money facts", "purge touched the ledger")
        #expect(purge.output.contains("kept for reconciliation"), "\(purge.output)")
        #expect((try? fm.destinationOfSymbolicLink(atPath: target + "/etc/systemd/system/multi-user.target.wants/paybridged.service")) == nil, "purge left the service enabled")
    }
}
