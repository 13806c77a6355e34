import Glibc
import Platform
import Testing
import Timebase
import Transport
import USBCore
import USBSysfs

/// `terminal.usb` without libusb: the terminal's adapter found by identity in sysfs before every
/// open attempt, so a replug that renames its tty is followed.
@Suite(.serialized) struct USBTerminalLocatorTests {
    static func selector(_ text: String) -> USBSelector { try! USBSelector.parse(text) }

    @Test func theAdaptersTTYIsFoundByIdentityAndEveryOtherCaseIsToldApart() {
        let tree = ScratchDirectory()
        defer { tree.remove() }
        SysfsTests.addDevice(tree, "1-1.2", vendor: "0403", product: "6001", serial: "FT-TERM")
        tree.mkdir("bus/usb/devices/1-1.2/1-1.2:1.0/ttyUSB3")
        SysfsTests.addDevice(tree, "1-1.3", vendor: "0403", product: "6001", serial: "FT-OTHER")
        tree.mkdir("bus/usb/devices/1-1.3/1-1.3:1.0/ttyUSB4")
        func locate(_ s: String) -> USBTerminalLocator.Outcome {
            USBTerminalLocator(selector: Self.selector(s), sysfsRoot: tree.path, devRoot: "/devroot").locate()
        }
        guard case let .found(path, identity) = locate("0403:6001:FT-TERM") else { Issue.record("not found"); return }
        #expect(path == "/devroot/ttyUSB3" && identity.serial == "FT-TERM" && identity.portPath.description == "1-1.2")
        guard case .found(let byPort, _) = locate("1-1.3") else { Issue.record("port path not found"); return }
        #expect(byPort == "/devroot/ttyUSB4")
        // Two identical adapters and no serial: the daemon must not guess.
        guard case .ambiguous(let both) = locate("0403:6001") else { Issue.record("not ambiguous"); return }
        #expect(both.count == 2)
        #expect(locate("0403:6001").problem?.contains("2 identical adapters") == true)
        #expect(locate("0403:6001:NOPE") == .absent)
        #expect(locate("2-7") == .absent)
        // Present but no driver bound a tty.
        SysfsTests.addDevice(tree, "1-4", vendor: "067b", product: "2303", serial: "PL")
        tree.mkdir("bus/usb/devices/1-4/1-4:1.0")
        guard case .noTTY = locate("067b:2303") else { Issue.record("noTTY expected"); return }
    }

    /// The connection asks before every attempt: unplugged, it fails (counted, retried with the
    /// backoff); replugged under another name, it opens that one.
    @Test func theConnectionFollowsAReplugThatRenamesTheTTY() throws {
        let tree = ScratchDirectory()
        defer { tree.remove() }
        tree.mkdir("dev")
        let first = try PseudoTerminal.open(), second = try PseudoTerminal.open()
        defer { first.slave.close(); second.close() }
        SysfsTests.addDevice(tree, "1-1", vendor: "0403", product: "6001", serial: "FT-TERM")
        tree.mkdir("bus/usb/devices/1-1/1-1:1.0/ttyUSB0")
        #expect(symlink(first.path, tree.path + "/dev/ttyUSB0") == 0)
        let locator = USBTerminalLocator(selector: Self.selector("0403:6001:FT-TERM"), sysfsRoot: tree.path, devRoot: tree.path + "/dev")
        let loop = try EventLoop()
        let connection = TerminalConnection(loop: loop, endpoint: .serial(path: "/dev/ttyPSP", settings: LineSettings.parse("57600 8N1")!),
                                            backoff: Backoff(initial: .milliseconds(20), cap: .milliseconds(50), jitter: 0))
        connection.resolveSerialPath = {
            if case let .found(path, _) = locator.locate() { return .success(path) }
            return .failure(TerminalConnection.PathProblem(locator.locate().problem ?? "?"))
        }
        var ups = 0, downs = 0
        var failures: [String] = []
        connection.onUp = { ups += 1 }
        connection.onDown = { _ in downs += 1 }
        connection.onOpenFailure = { failures.append($0) }
        connection.start()
        defer { connection.stop() }
        func run(until done: () -> Bool) throws -> Bool {
            let deadline = MonotonicClock.now() + .seconds(5)
            while !done() && MonotonicClock.now() < deadline { try loop.runOnce(maxWait: .milliseconds(10)) }
            return done()
        }
        #expect(try run { ups == 1 })
        #expect(connection.currentPath == tree.path + "/dev/ttyUSB0")
        // Unplugged: the adapter leaves sysfs, its pty hangs up.
        _ = system("rm -rf '\(tree.path)/bus/usb/devices/1-1' '\(tree.path)/dev/ttyUSB0'")
        first.master.close()
        #expect(try run { downs == 1 })
        #expect(try run { failures.contains { $0.contains("no USB device matches") } }, "\(failures)")
        // Back as ttyUSB1.
        SysfsTests.addDevice(tree, "1-1", vendor: "0403", product: "6001", serial: "FT-TERM")
        tree.mkdir("bus/usb/devices/1-1/1-1:1.0/ttyUSB1")
        #expect(symlink(second.path, tree.path + "/dev/ttyUSB1") == 0)
        #expect(try run { ups == 2 }, "\(failures)")
        #expect(connection.currentPath == tree.path + "/dev/ttyUSB1")
    }
}
