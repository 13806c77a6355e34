import Foundation
import Glibc
import Platform
import Testing

/// What an integrator installs next to the daemon: systemd/ (service, socket, sysusers) and
/// udev/ (the terminal's serial line), checked with the real systemd and udev tools, and the
/// daemon checked against the sandbox the unit puts it in.
@Suite(.serialized) struct ShippedUnits {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static let service = repo + "/systemd/paybridged.service"
    static let socket = repo + "/systemd/paybridged.socket"
    static let sysusers = repo + "/systemd/paybridge.sysusers"
    static func tool(_ name: String) -> String? {
        ["/usr/bin/", "/bin/", "/usr/sbin/", "/sbin/"].map { $0 + name }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }
    static let haveSystemd = tool("systemd-analyze") != nil

    /// Runs a program to its end: exit status, standard output, standard error.
    static func run(_ exe: String, _ args: [String], environment: [String]? = nil) throws -> (status: Int32?, out: String, err: String) {
        let errPath = FileManager.default.temporaryDirectory.appendingPathComponent("units-\(UUID().uuidString.prefix(8)).err").path
        defer { unlink(errPath) }
        let p = try ChildProcess.spawn("/bin/sh", ["-c", "exec \"$0\" \"$@\" 2>\"\(errPath)\"", exe] + args, environment: environment, pipeStdin: false)
        var out: [String] = []
        while let line = try p.readLine(timeout: .seconds(120)) { out.append(line) }
        return (p.wait(timeout: .seconds(30)), out.joined(separator: "\n"), fileText(errPath))
    }

    /// The unit's settings, `Key=value` lines in file order (repeated keys kept).
    static func settings(_ path: String) -> [(key: String, value: String)] {
        fileText(path).split(separator: "\n").compactMap { line -> (String, String)? in
            let l = line.trimmingCharacters(in: .whitespaces)
            guard !l.hasPrefix("#"), !l.hasPrefix("["), let eq = l.firstIndex(of: "=") else { return nil }
            return (String(l[..<eq]), String(l[l.index(after: eq)...]))
        }
    }
    static func values(_ path: String, _ key: String) -> [String] { settings(path).filter { $0.key == key }.map(\.value) }

    /// A root directory holding the host's own units (for the targets the default dependencies
    /// name), ours, and stand-ins for the programs the unit runs: `systemd-analyze verify`
    /// checks that every Exec path is an executable, and no paybridged is installed here.
    static func verifyRoot() throws -> String {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("units-root-\(UUID().uuidString.prefix(8))").path
        let fm = FileManager.default
        try fm.createDirectory(atPath: root + "/usr/lib/systemd", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: root + "/usr/bin", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: root + "/bin", withIntermediateDirectories: true)
        for dir in ["/usr/lib/systemd/system", "/lib/systemd/system"] where fm.fileExists(atPath: dir) {
            #expect(try run("/bin/cp", ["-a", dir, root + "/usr/lib/systemd/"]).status == 0)
            break
        }
        for unit in [service, socket] { #expect(try run("/bin/cp", [unit, root + "/usr/lib/systemd/system/"]).status == 0) }
        let standIn = "#!/bin/sh\nexit 0\n"
        for exe in ["/usr/bin/paybridged", "/bin/kill"] {
            #expect(fm.createFile(atPath: root + exe, contents: Data(standIn.utf8), attributes: [.posixPermissions: 0o755]))
        }
        return root
    }

    @Test(.enabled(if: haveSystemd, "needs systemd-analyze (Debian package systemd)")) func systemdAnalyzeVerifyIsSilent() throws {
        let root = try Self.verifyRoot()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let r = try Self.run(Self.tool("systemd-analyze")!, ["verify", "--man=no", "--root=" + root, "paybridged.service", "paybridged.socket"])
        // An unknown key or a bad value is only a warning with exit status 0: any output fails.
        #expect(r.status == 0 && r.err.isEmpty && r.out.isEmpty, "systemd-analyze verify: status \(String(describing: r.status))\n\(r.out)\n\(r.err)")
    }

    /// The check above can fail: a unit with a misspelt key, or whose program is missing, is not silent.
    @Test(.enabled(if: haveSystemd, "needs systemd-analyze (Debian package systemd)")) func systemdAnalyzeVerifyCatchesABrokenUnit() throws {
        let root = try Self.verifyRoot()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let unit = root + "/usr/lib/systemd/system/paybridged.service"
        try Data((fileText(unit) + "\n[Service]\nProtectSytem=strict\n").utf8).write(to: URL(fileURLWithPath: unit))
        let misspelt = try Self.run(Self.tool("systemd-analyze")!, ["verify", "--man=no", "--root=" + root, "paybridged.service"])
        #expect(misspelt.err.contains("ProtectSytem"), "\(misspelt.err)")
        unlink(root + "/usr/bin/paybridged")
        let missing = try Self.run(Self.tool("systemd-analyze")!, ["verify", "--man=no", "--root=" + root, "paybridged.service"])
        #expect(missing.status != 0 && missing.err.contains("/usr/bin/paybridged"), "\(missing.err)")
    }

    @Test(.enabled(if: haveSystemd, "needs systemd-analyze (Debian package systemd)")) func securityExposureIsAtMostTwo() throws {
        let r = try Self.run(Self.tool("systemd-analyze")!, ["security", "--offline=yes", "--no-pager", Self.service])
        // "→ Overall exposure level for paybridged.service: 1.6 OK 🙂"
        let line = r.out.split(separator: "\n").first { $0.contains("Overall exposure level") }.map(String.init) ?? ""
        let score = line.split(separator: ":").last?.split(separator: " ").first.flatMap { Double($0) }
        print("systemd-analyze security: \(line)")
        #expect(score != nil && score! <= 2.0, "\(line)\n\(r.out)\n\(r.err)")
        #expect(line.contains(" OK "), "\(line)")
    }

    /// The unit's promises that other parts of the project rely on.
    @Test func theServiceRunsTheDaemonAsItsUserWithItsDirectoriesAndWatchdog() {
        let s = Self.service
        func one(_ key: String) -> String? { Self.values(s, key).last }
        #expect(one("Type") == "notify" && one("NotifyAccess") == "main" && one("WatchdogSec") == "10s")
        #expect(one("User") == "paybridge" && one("Group") == "paybridge")
        #expect(one("ExecStart") == "/usr/bin/paybridged --config /etc/paybridge/paybridge.conf")
        #expect(one("ExecStartPre") == "/usr/bin/paybridged --check-config /etc/paybridge/paybridge.conf")
        // GPIO relay coils driven off after every stop or crash, with the daemon's own configuration.
        #expect(Self.values(s, "ExecStopPost") == ["/usr/bin/paybridged --config /etc/paybridge/paybridge.conf --deenergise-relays"])
        // docs/paybridge.conf's defaults: state.directory and diagnostics.socket live where systemd makes them.
        let conf = fileText(Self.repo + "/docs/paybridge.conf")
        #expect(conf.contains("state.directory = /var/lib/paybridge") && one("StateDirectory") == "paybridge" && one("StateDirectoryMode") == "0700")
        #expect(conf.contains("diagnostics.socket = /run/paybridge/paybridged.sock") && one("RuntimeDirectory") == "paybridge")
        #expect(conf.contains("diagnostics.admin_group = paybridge"))
        #expect(Self.values(Self.socket, "ListenStream") == ["/run/paybridge/paybridged.sock"])
        #expect(Self.values(Self.socket, "SocketMode") == ["0660"] && Self.values(Self.socket, "SocketGroup") == ["paybridge"])
        #expect(one("LimitCORE") == "0" && one("Environment") == "SWIFT_BACKTRACE=enable=no")
        // The terminal's device classes, by name as /proc/devices lists them, never a path.
        let allowed = Self.values(s, "DeviceAllow")
        for cls in ["char-ttyS rw", "char-ttyUSB rw", "char-ttyACM rw", "char-usb_device rw", "char-gpiochip rw"] { #expect(allowed.contains(cls), "\(allowed)") }
        #expect(!allowed.contains { $0.hasPrefix("/") }, "a device path is resolved once at start and breaks on replug: \(allowed)")
        // Classes are looked up in /proc/devices at start: their drivers are loaded at boot.
        let modules = fileText(ShippedUnits.repo + "/systemd/paybridge-modules.conf").split(separator: "\n").map(String.init).filter { !$0.hasPrefix("#") }
        #expect(modules.contains("usbserial") && modules.contains("cdc_acm"), "\(modules)")
        // The socket's directory outlives a service that stopped or failed for good.
        #expect(one("RuntimeDirectoryPreserve") == "yes")
    }

    @Test(.enabled(if: Self.tool("systemd-sysusers") != nil, "needs systemd-sysusers")) func sysusersCreatesTheUserAndGroup() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("sysusers-\(UUID().uuidString.prefix(8))").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/etc", withIntermediateDirectories: true)
        let r = try Self.run(Self.tool("systemd-sysusers")!, ["--root=" + root, Self.sysusers])
        #expect(r.status == 0, "\(r.err)")
        let passwd = fileText(root + "/etc/passwd").split(separator: "\n").first { $0.hasPrefix("paybridge:") }.map { $0.split(separator: ":", omittingEmptySubsequences: false).map(String.init) }
        let group = fileText(root + "/etc/group").split(separator: "\n").first { $0.hasPrefix("paybridge:") }.map { $0.split(separator: ":", omittingEmptySubsequences: false).map(String.init) }
        let p = try #require(passwd, "no paybridge user: \(fileText(root + "/etc/passwd"))")
        let g = try #require(group, "no paybridge group: \(fileText(root + "/etc/group"))")
        // A system account (below 1000), in its own group, home the state directory, no login.
        #expect(Int(p[2]).map { $0 > 0 && $0 < 1000 } == true && p[3] == g[2], "\(p) \(g)")
        #expect(p[5] == "/var/lib/paybridge" && p[6].hasSuffix("nologin"), "\(p)")
    }
}

/// The daemon against the sandbox of systemd/paybridged.service, without systemd: the real
/// paybridged (and its charger-sim) run a charge, a technician's status, a reload and a stop
/// under strace, and everything they asked of the kernel must be what the unit allows:
/// `SystemCallFilter=` (an unlisted call fails with EPERM under systemd), the address
/// families of `RestrictAddressFamilies=`, nothing from /proc but the process's own entries
/// (`ProcSubset=pid`, `ProtectProc=invisible`), no writable and executable memory
/// (`MemoryDenyWriteExecute=yes`).
@Suite(.serialized) struct ShippedUnitSandbox {
    static let haveTools = ShippedUnits.tool("strace") != nil && ShippedUnits.tool("systemd-analyze") != nil

    /// The system calls a `SystemCallFilter=` line allows, its groups expanded (`~` lines deny).
    static func filter(_ unit: String) throws -> Set<String> {
        var cache: [String: Set<String>] = [:]
        func expand(_ group: String) throws -> Set<String> {
            if let known = cache[group] { return known }
            let r = try ShippedUnits.run(ShippedUnits.tool("systemd-analyze")!, ["syscall-filter", "--no-pager", group])
            var out = Set<String>()
            for raw in r.out.split(separator: "\n") {
                let entry = raw.trimmingCharacters(in: .whitespaces)
                if entry.isEmpty || entry.hasPrefix("#") || entry == group { continue }
                if entry.hasPrefix("@") { out.formUnion(try expand(entry)) } else { out.insert(entry) }
            }
            cache[group] = out
            return out
        }
        var allowed = Set<String>()
        for line in ShippedUnits.values(unit, "SystemCallFilter") {
            let deny = line.hasPrefix("~")
            for item in line.dropFirst(deny ? 1 : 0).split(separator: " ").map(String.init) {
                let calls = item.hasPrefix("@") ? try expand(item) : [item]
                if deny { allowed.subtract(calls) } else { allowed.formUnion(calls) }
            }
        }
        return allowed
    }

    @Test(.enabled(if: haveTools, "needs strace and systemd-analyze"))
    func aChargeStatusReloadAndStopStayInsideTheUnitsSandbox() throws {
        let trace = FileManager.default.temporaryDirectory.appendingPathComponent("sandbox-\(UUID().uuidString.prefix(8)).strace").path
        defer { unlink(trace) }
        let socket = DiagnosticsSocketTests.socketPath()
        let b = try Bench(terminal: ["--session", "approve", "--fallback", "nocard"], config: ["diagnostics.socket = \(socket)", "log.level = info"],
                          ev: "plug=100,charge=1500,power=3600000",
                          launcher: [ShippedUnits.tool("strace")!, "-f", "-qq", "-o", trace, "/usr/bin/env", "SWIFT_BACKTRACE=enable=no"])
        #expect(waitUntil(.seconds(90)) { !b.settlements("Settled").isEmpty }, "no settlement reached the cloud")
        #expect(try paybridgectl(["--socket", socket, "status"]).status == 0)
        // strace's child is env, which execs the daemon in its place.
        let daemon = try #require(fileText("/proc/\(b.daemon!.pid)/task/\(b.daemon!.pid)/children").split(separator: " ").first.flatMap { pid_t($0) })
        kill(daemon, SIGHUP)
        usleep(500_000)
        kill(daemon, SIGTERM)
        #expect(b.daemon?.wait(timeout: .seconds(30)) == 0, "the traced daemon did not stop cleanly")
        b.daemon = nil

        let lines = fileText(trace).split(separator: "\n")
        // Before the daemon's execve the calls are env's and strace's, which the unit does not filter.
        let start = try #require(lines.firstIndex { $0.contains("execve(\"\(ChildProcess.executableDirectory())/paybridged\"") }, "no execve of paybridged")
        var used = Set<String>()
        var families = Set<String>()
        var procPaths = Set<String>()
        var writableCode: [String] = []
        for line in lines[start...] {
            // "1234  name(args…) = result", or "1234  <... name resumed>…" for the second half of one.
            let afterPID = line.drop { $0 != " " }.drop { $0 == " " }
            guard let paren = afterPID.firstIndex(of: "("), !afterPID.hasPrefix("<..."), !afterPID.hasPrefix("+++"), !afterPID.hasPrefix("---") else { continue }
            let name = String(afterPID[..<paren])
            guard name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else { continue }
            used.insert(name)
            if name == "socket" { families.insert(String(afterPID[afterPID.index(after: paren)...].prefix { $0 != "," })) }
            if name == "open" || name == "openat" || name == "readlink" || name == "readlinkat" || name == "newfstatat" || name == "statx",
               let q = afterPID.firstIndex(of: "\"") {
                let path = afterPID[afterPID.index(after: q)...].prefix { $0 != "\"" }
                if path.hasPrefix("/proc/") { procPaths.insert(String(path)) }
            }
            if (name == "mmap" || name == "mprotect" || name == "pkey_mprotect"), afterPID.contains("PROT_WRITE"), afterPID.contains("PROT_EXEC") {
                writableCode.append(String(line))
            }
        }
        // The daemon's first call is the execve itself (allowed: systemd installs the filter before it).
        used.remove("execve")
        let allowed = try Self.filter(ShippedUnits.service)
        #expect(allowed.count > 100, "the filter expanded to \(allowed.count) calls")
        let refused = used.subtracting(allowed).sorted()
        #expect(refused.isEmpty, "system calls the unit's SystemCallFilter= refuses (EPERM): \(refused)")
        print("sandbox: \(used.count) distinct system calls, all inside the unit's filter of \(allowed.count); socket families \(families.sorted()); /proc paths \(procPaths.sorted())")

        let unitFamilies = Set(ShippedUnits.values(ShippedUnits.service, "RestrictAddressFamilies").flatMap { $0.split(separator: " ").map(String.init) })
        #expect(families.isSubset(of: unitFamilies), "socket families outside RestrictAddressFamilies=: \(families.subtracting(unitFamilies))")
        // Only the process's own /proc entries (ProcSubset=pid hides the rest, ProtectProc=invisible other users').
        let ownOnly = procPaths.filter { p in
            let rest = p.dropFirst("/proc/".count)
            let first = rest.prefix { $0 != "/" }
            return !(first == "self" || first == "thread-self" || first.allSatisfy(\.isNumber))
        }
        #expect(ownOnly.isEmpty, "/proc paths outside the process's own: \(ownOnly.sorted())")
        #expect(writableCode.isEmpty, "writable and executable memory (MemoryDenyWriteExecute=yes refuses it): \(writableCode.prefix(3))")
    }
}

/// paybridged.socket's contract, with systemd's own activation tool (systemd-socket-activate
/// listens, waits for the first connection and execs the daemon in its place with LISTEN_FDS
/// and LISTEN_PID, as systemd does): the connection that starts the daemon is answered on the
/// passed socket, and with the unit's SocketMode= and SocketGroup= a member of the group may
/// connect and change things while anyone else cannot connect at all.
@Suite(.serialized) struct ShippedSocketActivation {
    /// An existing group stands in for paybridge (the test must not add groups to the machine).
    static let group: (name: String, gid: UInt32)? = ["dialout", "plugdev", "users"].lazy.compactMap { n in UnixSocket.groupID(named: n).map { (n, $0) } }.first
    static let ready = getuid() == 0 && ShippedUnits.tool("systemd-socket-activate") != nil && ShippedUnits.tool("setpriv") != nil && group != nil

    @Test(.enabled(if: ready, "needs root, systemd-socket-activate (Debian package systemd), setpriv and a group dialout, plugdev or users"))
    func theFirstConnectionStartsTheDaemonAndTheGroupGetsIn() throws {
        let (groupName, gid) = Self.group!
        let passed = DiagnosticsSocketTests.socketPath(), configured = DiagnosticsSocketTests.socketPath()
        defer { unlink(passed); unlink(configured) }
        let b = try Bench(terminal: [], config: ["diagnostics.socket = \(configured)", "diagnostics.admin_group = \(groupName)"],
                          ev: "plug=200,charge=60000,power=7400",
                          launcher: [ShippedUnits.tool("systemd-socket-activate")!, "-l", passed, "-E", "SWIFT_BACKTRACE=enable=no"])
        defer { _ = b.stop() }
        #expect(waitUntil(.seconds(10)) { access(passed, F_OK) == 0 }, "systemd-socket-activate did not listen")
        // What systemd does for SocketUser=/SocketGroup=/SocketMode= (root owns it here).
        let mode = try #require(ShippedUnits.values(ShippedUnits.socket, "SocketMode").last.flatMap { mode_t($0, radix: 8) })
        #expect(chown(passed, 0, gid) == 0 && chmod(passed, mode) == 0)
        let technician = ["/usr/bin/setpriv", "--reuid", "4242", "--regid", "4242", "--groups", String(gid)]
        let outsider = ["/usr/bin/setpriv", "--reuid", "4243", "--regid", "4243", "--clear-groups"]

        // The technician's first connection is what starts the daemon; it is answered.
        let first = try paybridgectl(["--socket", passed, "--json", "status"], launcher: technician, lineTimeout: .seconds(60))
        #expect(first.status == 0 && jsonObject(first.out.first)["ok"] as? Bool == true, "\(first)")
        #expect(access(configured, F_OK) != 0, "the daemon opened diagnostics.socket although systemd passed one")
        // A member of the group may change things. stop is an admin command: it stops the session
        // the simulated vehicle may have started by now, or is refused for a missing session, never
        // for who asks (which session exists depends on how fast the bench ran).
        let stop = try paybridgectl(["--socket", passed, "--json", "stop", "1"], launcher: technician)
        let reply = jsonObject(stop.out.first)
        let code = (reply["error"] as? [String: Any])?["code"] as? String
        let stopped = stop.status == 0 && reply["ok"] as? Bool == true && reply["stopping"] as? Bool == true
        let refusedForTheSession = stop.status == 1 && code != nil && code != "not_permitted"
        #expect(stopped || refusedForTheSession, "\(stop)")
        // Anyone else does not get in at all (the socket's mode), and says why.
        let refused = try paybridgectl(["--socket", passed, "status"], launcher: outsider)
        #expect(refused.status == 3, "\(refused)")
        #expect(b.stop() == 0)
    }
}

/// udev/60-paybridge.rules through the real `udevadm test`, against a fake sysfs tree of a USB
/// serial adapter built in a private mount namespace (Tests/Scripts/udev-fake-device.sh).
@Suite(.serialized) struct ShippedUdevRules {
    static let rules = ShippedUnits.repo + "/udev/60-paybridge.rules"
    static let pin = ShippedUnits.repo + "/udev/59-paybridge-local.rules.example"
    static let script = ShippedUnits.repo + "/Tests/Scripts/udev-fake-device.sh"
    static let adapters = [("0403", "6001"), ("0403", "6015"), ("10c4", "ea60"), ("1a86", "7523"), ("067b", "2303")]
    /// A container may refuse new mount namespaces even to root: then the tests are skipped with the reason.
    static let ready = getuid() == 0 && ShippedUnits.tool("udevadm") != nil && ShippedUnits.tool("unshare") != nil
        && (try? ShippedUnits.run(ShippedUnits.tool("unshare")!, ["-m", "/bin/true"]).status) == 0

    /// What udev decided for the fake device: DEVLINKS, TAGS, NODE_GROUP, NODE_MODE.
    func decide(_ vendor: String, _ product: String, serial: String = "A10K1234", kernel: String = "ttyUSB0",
                rules: [String] = [rules]) throws -> [String: String] {
        let r = try ShippedUnits.run(Self.script, [vendor, product, serial, kernel] + rules)
        #expect(r.status == 0, "udev-fake-device.sh \(vendor):\(product): \(r.err)")
        var out: [String: String] = [:]
        for line in r.out.split(separator: "\n") {
            guard let eq = line.firstIndex(of: "=") else { continue }
            out[String(line[..<eq])] = String(line[line.index(after: eq)...])
        }
        return out
    }

    func named(_ d: [String: String]) -> Bool {
        (d["DEVLINKS"] ?? "").split(separator: " ").contains("/dev/ttyPSP") && d["NODE_GROUP"] == "paybridge" && d["NODE_MODE"] == "660"
            && (d["TAGS"] ?? "").contains(":systemd:")
    }

    func untouched(_ d: [String: String]) -> Bool {
        !(d["DEVLINKS"] ?? "").contains("ttyPSP") && d["NODE_GROUP"] != "paybridge" && !(d["TAGS"] ?? "").contains("systemd")
    }

    @Test func theRulesNameEveryAdapter() {
        let text = fileText(Self.rules)
        for (v, p) in Self.adapters {
            #expect(text.contains("ATTRS{idVendor}==\"\(v)\", ATTRS{idProduct}==\"\(p)\""), "\(v):\(p) missing from the rules")
        }
    }

    @Test(.enabled(if: ready, "needs root allowed to unshare -m, unshare and udevadm (Debian packages util-linux, udev)"))
    func eachAdapterBecomesTtyPSPForGroupPaybridge() throws {
        for (v, p) in Self.adapters {
            let d = try decide(v, p)
            #expect(named(d), "\(v):\(p): \(d)")
        }
    }

    @Test(.enabled(if: ready, "needs root allowed to unshare -m, unshare and udevadm (Debian packages util-linux, udev)"))
    func otherDevicesAreLeftAlone() throws {
        // Another FTDI product, another vendor's product id, and a CDC-ACM device (a modem, say) unpinned.
        for (v, p, k) in [("0403", "6010", "ttyUSB0"), ("10c4", "ea70", "ttyUSB0"), ("1234", "5678", "ttyUSB0"), ("1bc7", "1201", "ttyACM0")] {
            let d = try decide(v, p, kernel: k)
            #expect(untouched(d), "\(v):\(p) \(k): \(d)")
        }
    }

    @Test(.enabled(if: ready, "needs root allowed to unshare -m, unshare and udevadm (Debian packages util-linux, udev)"))
    func thePinChoosesOneAdapterBySerialNumber() throws {
        // The example pins serial FT1234.
        #expect(named(try decide("0403", "6001", serial: "FT1234", rules: [Self.pin, Self.rules])))
        #expect(untouched(try decide("0403", "6001", serial: "FT9999", rules: [Self.pin, Self.rules])))
        #expect(untouched(try decide("0403", "6001", serial: "-", rules: [Self.pin, Self.rules])))
        // A pinned CDC-ACM terminal (an Apollo on USB-C) is named whatever its ids.
        #expect(named(try decide("1234", "5678", serial: "FT1234", kernel: "ttyACM0", rules: [Self.pin, Self.rules])))
    }

    /// charger.io = gpio: a GPIO chip is group paybridge's only when a local rule marks it, here
    /// the example's I2C expander line, uncommented, by driver and bus address.
    @Test(.enabled(if: ready, "needs root allowed to unshare -m, unshare and udevadm (Debian packages util-linux, udev)"))
    func onlyTheMarkedGPIOChipIsGroupPaybridges() throws {
        let example = fileText(Self.pin).split(separator: "\n").first { $0.hasPrefix("#") && $0.contains("DRIVERS==\"pca953x\"") }
        let line = try #require(example, "the example has no pca953x line").dropFirst()
        let local = FileManager.default.temporaryDirectory.appendingPathComponent("59-gpio-\(UUID().uuidString.prefix(8)).rules").path
        defer { unlink(local) }
        try Data((line + "\n").utf8).write(to: URL(fileURLWithPath: local))
        func chip(_ driver: String, _ device: String, _ rules: [String]) throws -> [String: String] {
            try decide(driver, device, serial: "-", kernel: "gpiochip0", rules: rules)
        }
        let marked = try chip("pca953x", "1-0020", [local, Self.rules])
        #expect(marked["NODE_GROUP"] == "paybridge" && marked["NODE_MODE"] == "660", "\(marked)")
        // Another expander, the same chip without the local rule: root's alone.
        for d in [try chip("pca953x", "1-0021", [local, Self.rules]), try chip("pca953x", "1-0020", [Self.rules]),
                  try chip("gpio-sim", "gpio-sim.0", [local, Self.rules])] {
            #expect(d["NODE_GROUP"] == "root" && d["NODE_MODE"] == "600", "\(d)")
        }
    }

    /// The harness catches a rule udev cannot use (udevadm test exits 0 for those).
    @Test(.enabled(if: ready, "needs root allowed to unshare -m, unshare and udevadm (Debian packages util-linux, udev)"))
    func aBrokenRuleFails() throws {
        let bad = FileManager.default.temporaryDirectory.appendingPathComponent("61-broken-\(UUID().uuidString.prefix(8)).rules").path
        defer { unlink(bad) }
        try Data((fileText(Self.rules).replacingOccurrences(of: "GROUP=\"paybridge\"", with: "GROUPS=\"paybridge\"") ).utf8).write(to: URL(fileURLWithPath: bad))
        let r = try ShippedUnits.run(Self.script, ["0403", "6001", "X", "ttyUSB0", bad])
        #expect(r.status == 1 && r.err.contains("GROUPS"), "\(r)")
    }
}
