import Glibc
import Platform
import Timebase

/// Tests/Fixtures, found from this file's path.
let fixturesDirectory: String = {
    var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
    parts.removeLast(2)
    return parts.joined(separator: "/") + "/Fixtures"
}()

/// umockdev-run's path, or `nil` when it is not installed (the umockdev tests then skip, saying so).
let umockdevRun: String? = ["/usr/bin/umockdev-run", "/usr/local/bin/umockdev-run"].first { access($0, X_OK) == 0 }

/// Runs usb-probe inside a umockdev testbed holding `device` (a file in Tests/Fixtures/usb),
/// with extra umockdev-run arguments before `--`; returns its exit status and lines.
func probeUnderUmockdev(_ device: String, _ arguments: [String], umockdevArguments: [String] = [],
                        timeout: Duration = .seconds(20)) throws -> (status: Int32?, lines: [String]) {
    let probe = ChildProcess.executableDirectory() + "/usb-probe"
    let child = try ChildProcess.spawn(umockdevRun!, ["--device", fixturesDirectory + "/usb/" + device] + umockdevArguments + ["--", probe] + arguments,
                                       pipeStdin: false)
    defer { child.terminate() }
    var lines: [String] = []
    let deadline = MonotonicClock.now() + timeout
    while MonotonicClock.now() < deadline, let line = try child.readLine(timeout: deadline - MonotonicClock.now()) { lines.append(line) }
    return (child.wait(timeout: .seconds(5)), lines)
}

/// A scratch directory removed by `remove()`.
struct ScratchDirectory {
    let path: String
    init() {
        var template = Array("/tmp/usb-sysfs-XXXXXX".utf8CString)
        path = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
    }
    func mkdir(_ relative: String) {
        var built = path
        for part in relative.split(separator: "/") {
            built += "/" + part
            Glibc.mkdir(built, 0o755)
        }
    }
    func write(_ relative: String, _ text: String) {
        let fd = open(path + "/" + relative, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        precondition(fd >= 0, "cannot create \(relative)")
        var bytes = Array(text.utf8)
        _ = Glibc.write(fd, &bytes, bytes.count)
        close(fd)
    }
    func remove() { _ = system("rm -rf '\(path)'") }
}

/// Whether umockdev's testbed library is usable from the system Python (python3-gi and
/// gir1.2-umockdev-1.0): the hotplug tests add and remove devices under a running program with it.
let umockdevTestbedFromPython: Bool = {
    guard access("/usr/bin/umockdev-wrapper", X_OK) == 0, access("/usr/bin/python3", X_OK) == 0 else { return false }
    return system("/usr/bin/python3 -c \"import gi; gi.require_version('UMockdev', '1.0'); from gi.repository import UMockdev\" >/dev/null 2>&1") == 0
}()

/// Runs `usb-probe ARGS` inside a testbed built from `device`, where Tests/Scripts/usb-hotplug.py
/// unplugs `syspath` after the first arrival and plugs it back after a departure.
func probeWithHotplug(_ device: String, unplugging syspath: String, _ arguments: [String]) throws -> (status: Int32?, lines: [String]) {
    let probe = ChildProcess.executableDirectory() + "/usb-probe"
    let script = fixturesDirectory + "/../Scripts/usb-hotplug.py"
    let child = try ChildProcess.spawn("/usr/bin/umockdev-wrapper", ["/usr/bin/python3", script, fixturesDirectory + "/usb/" + device, syspath, probe] + arguments,
                                       pipeStdin: false)
    defer { child.terminate() }
    var lines: [String] = []
    let deadline = MonotonicClock.now() + .seconds(30)
    while MonotonicClock.now() < deadline, let line = try child.readLine(timeout: deadline - MonotonicClock.now()) { lines.append(line) }
    return (child.wait(timeout: .seconds(5)), lines)
}
