// usb-probe: what the USB layer sees, one line per fact, for the umockdev tests and for a
// technician at a charger. Exit status 0, or 2 on a usage error, 1 when libusb fails.
//
//   usb-probe list                 devices as libusb enumerates them (serials from sysfs)
//   usb-probe sysfs-list [ROOT]    devices as sysfs lists them (no libusb)
//   usb-probe select SELECTOR      the device a terminal.usb value selects, and its tty
//   usb-probe watch SELECTOR SECS  hotplug events for the selected device during SECS seconds
//   usb-probe ftdi SELECTOR BAUD HEX   FT232 bring-up without the kernel driver, HEX written on
//                                  bulk OUT, one bulk IN read (status bytes stripped) printed
//   usb-probe cdc SELECTOR BAUD HEX    the same for a CDC-ACM device (interfaces 0 and 1)
//   usb-probe reset SELECTOR       a USB port reset of the selected device (what recovery does)
//   usb-probe library              whether libusb and libudev are mapped, and VmRSS, before and after
//                                  the first USBContext (libusb is loaded at run time, by the first context)
import Glibc
import Platform
import Timebase
import USBCore
import USBDevices
import USBSysfs
import WireFormat

func line(_ text: String) {
    var bytes = Array((text + "\n").utf8)
    _ = bytes.withUnsafeMutableBytes { Glibc.write(1, $0.baseAddress, $0.count) }
}

func fail(_ text: String, status: Int32) -> Never {
    var bytes = Array(("usb-probe: " + text + "\n").utf8)
    _ = bytes.withUnsafeMutableBytes { Glibc.write(2, $0.baseAddress, $0.count) }
    exit(status)
}

func show(_ identity: USBDeviceIdentity) -> String {
    USBDeviceIdentity.hex4(identity.vendorID) + ":" + USBDeviceIdentity.hex4(identity.productID)
        + " port=" + identity.portPath.description + " serial=" + (identity.serial ?? "-")
        + " speed=" + identity.speed.description + " address=" + String(identity.address)
}

func showTTY(_ port: USBPortPath) -> String {
    switch SysfsUSB.ttyNode(for: port) {
    case .found(let path, let interface): "tty " + path + " interface=" + interface
    case .noDevice: "tty none (no device)"
    case .noTTY: "tty none (no driver bound)"
    }
}

/// A file of /proc/self, whole.
func procSelf(_ name: String) -> [UInt8] {
    var text: [UInt8] = []
    let fd = open("/proc/self/" + name, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return [] }
    defer { close(fd) }
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if count <= 0 { break }
        text += chunk.prefix(count)
    }
    return text
}

/// Which of libusb and libudev this process has mapped now (/proc/self/maps), and its VmRSS.
func mappedLibraries() -> String {
    let files = Set(procSelf("maps").split(separator: UInt8(ascii: "\n")).compactMap { line -> String? in
        guard let slash = line.firstIndex(of: UInt8(ascii: "/")) else { return nil }
        return String(decoding: line[slash...], as: UTF8.self).split(separator: "/").last.map(String.init)
    })
    func mapped(_ prefix: String) -> String { files.contains { $0.hasPrefix(prefix) } ? "yes" : "no" }
    let rss = procSelf("status").split(separator: UInt8(ascii: "\n")).first { $0.starts(with: Array("VmRSS:".utf8)) }
        .map { String(decoding: $0.dropFirst(6).filter { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "\t") }, as: UTF8.self) } ?? "?"
    return "libusb=" + mapped("libusb-1.0.so") + " libudev=" + mapped("libudev.so") + " rss=" + rss
}

let arguments = CommandLine.arguments
guard arguments.count >= 2 else { fail("usage: usb-probe list | sysfs-list [ROOT] | select SELECTOR | watch SELECTOR SECONDS", status: 2) }

do {
    switch arguments[1] {
    case "list":
        let context = try USBContext()
        for identity in try context.identities().sorted(by: { $0.portPath.description < $1.portPath.description }) { line(show(identity)) }
    case "sysfs-list":
        for identity in SysfsUSB.devices(sysfsRoot: arguments.count > 2 ? arguments[2] : SysfsUSB.defaultRoot) { line(show(identity)) }
    case "select" where arguments.count == 3:
        let selector: USBSelector
        do { selector = try USBSelector.parse(arguments[2]) } catch { fail("terminal.usb \(arguments[2]): \(error)", status: 2) }
        let context = try USBContext()
        switch selector.select(from: try context.identities()) {
        case .found(let identity):
            line("found " + show(identity))
            line(showTTY(identity.portPath))
        case .absent:
            line("absent")
        case .ambiguous(let all):
            line("ambiguous " + all.map { $0.portPath.description }.joined(separator: " "))
        }
    case "watch" where arguments.count == 4:
        let selector: USBSelector
        do { selector = try USBSelector.parse(arguments[2]) } catch { fail("terminal.usb \(arguments[2]): \(error)", status: 2) }
        guard let seconds = Int64(arguments[3]), seconds > 0 else { fail("watch: SECONDS must be a positive integer", status: 2) }
        let context = try USBContext()
        let loop = try EventLoop()
        let driver = USBEventDriver(context: context, loop: loop)
        line("hotplug " + (context.hasHotplug ? "yes" : "no"))
        let watcher = USBDeviceWatcher(context: context, selector: selector) { event, _ in
            switch event {
            case .arrived(let identity): line("arrived " + show(identity))
            case .departed(let identity): line("departed " + show(identity))
            }
        }
        if context.hasHotplug { try watcher.start() }
        _ = try loop.run(until: { false }, deadline: MonotonicClock.now() + .seconds(seconds))
        line("wakeups \(loop.wakeUps) passes \(driver.passes)")
        withExtendedLifetime(watcher) {}
    case "ftdi" where arguments.count == 5, "cdc" where arguments.count == 5:
        let isFTDI = arguments[1] == "ftdi"
        let selector: USBSelector
        do { selector = try USBSelector.parse(arguments[2]) } catch { fail("terminal.usb \(arguments[2]): \(error)", status: 2) }
        guard let baud = UInt32(arguments[3]), let out = try? Hex.decode(arguments[4]), !out.isEmpty else { fail("\(arguments[1]): BAUD and HEX", status: 2) }
        let context = try USBContext()
        let loop = try EventLoop()
        let driver = USBEventDriver(context: context, loop: loop)
        guard let device = try context.devices().first(where: { $0.identity().map(selector.matches) == true }) else { fail("no device selected", status: 1) }
        let kind: USBSerialKind = isFTDI ? .ftdi(latencyMilliseconds: 2) : .cdcACM(communicationInterface: 0, dataInterface: 1)
        let port: USBSerialPort
        do { port = try USBSerialPort(device: device, kind: kind, line: SerialLineSettings(baud: baud), driver: driver) } catch { fail("open: \(error)", status: 1) }
        line("open in=\(port.inEndpoint) out=\(port.outEndpoint) packet=\(port.maxPacketSize)")
        var received: [UInt8] = []
        var closed: USBSerialClosure?
        // Closed from the first read's completion, before the next read is submitted: umockdev's
        // replay would answer a resubmitted read from its record again, and cannot discard a URB.
        port.onBytes = { received += $0; port.close() }
        port.onClosed = { closed = $0 }
        // The write first, then the reads: umockdev replays one outstanding URB at a time.
        port.onDrained = { line("out \(out.count)"); port.start() }
        port.write(out)
        _ = try loop.run(until: { !received.isEmpty || closed != nil }, deadline: MonotonicClock.now() + .seconds(5))
        if !received.isEmpty { line("in " + Hex.encode(received)) }
        port.close()
        _ = try loop.run(until: { closed != nil }, deadline: MonotonicClock.now() + .seconds(1))
        line("closed \(closed.map { "\($0)" } ?? "-") line-errors \(port.lineErrorPackets)")
        withExtendedLifetime(driver) {}
    case "reset" where arguments.count == 3:
        let selector: USBSelector
        do { selector = try USBSelector.parse(arguments[2]) } catch { fail("terminal.usb \(arguments[2]): \(error)", status: 2) }
        let context = try USBContext()
        guard let device = try context.devices().first(where: { $0.identity().map(selector.matches) == true }) else { fail("no device selected", status: 1) }
        let handle = try device.open()
        try handle.reset()
        handle.close()
        line("reset " + (device.portPath?.description ?? "?"))
    case "library" where arguments.count == 2:
        line("before " + mappedLibraries())
        // libusb_init may fail where there is no USB at all (a container): the library is loaded either way.
        do {
            let context = try USBContext()
            line("context yes hotplug " + (context.hasHotplug ? "yes" : "no"))
        } catch {
            line("context no: \(error)")
        }
        line("after " + mappedLibraries())
    default:
        fail("unknown command \(arguments[1])", status: 2)
    }
} catch let error as USBError {
    fail(error.description, status: 1)
} catch {
    fail("\(error)", status: 1)
}
