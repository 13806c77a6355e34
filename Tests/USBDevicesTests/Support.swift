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
