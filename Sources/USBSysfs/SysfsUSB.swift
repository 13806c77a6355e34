import Glibc
import Platform
import USBCore

/// What sysfs says about USB devices: identities without opening a device node, and the tty the
/// kernel bound to one. The sysfs root is passed in, so tests point it at a fake tree; under
/// `umockdev-run`, `/sys` itself is the testbed's.
///
/// Reading sysfs needs no permission on the device node (libusb's string descriptors do), so a
/// daemon that keeps the kernel's serial driver finds its terminal by identity without libusb.
public enum SysfsUSB {
    /// The real sysfs.
    public static let defaultRoot = "/sys"
    /// The longest attribute read: every USB attribute used here is far shorter.
    static let maxAttributeBytes = 256
    /// The most directory entries examined in one directory, so a strange tree cannot stall the loop.
    static let maxEntries = 4096

    /// The tty node the kernel bound to the device at `port`, or why there is none.
    ///
    /// Looks in the device's interface directories (`<port>:<config>.<interface>`, interface 0
    /// first) for `ttyUSB*` (usb-serial drivers: ftdi_sio, cp210x, pl2303, ch341) or `tty/ttyACM*`
    /// (cdc_acm). A multi-port adapter has one tty per interface; the lowest interface wins.
    public static func ttyNode(for port: USBPortPath, sysfsRoot: String = defaultRoot) -> SysfsTTYLookup {
        let deviceDir = sysfsRoot + "/bus/usb/devices/" + port.description
        guard let entries = listDirectory(deviceDir) else { return .noDevice }
        let prefix = port.description + ":"
        let interfaces = entries.filter { $0.hasPrefix(prefix) }.sorted(by: interfaceOrder)
        for interface in interfaces {
            let interfaceDir = deviceDir + "/" + interface
            guard let inside = listDirectory(interfaceDir) else { continue }
            if let name = inside.filter({ $0.hasPrefix("ttyUSB") }).sorted().first {
                return .found(devicePath: "/dev/" + name, interface: interface)
            }
            if inside.contains("tty"), let name = listDirectory(interfaceDir + "/tty")?.filter({ $0.hasPrefix("ttyACM") }).sorted().first {
                return .found(devicePath: "/dev/" + name, interface: interface)
            }
        }
        return .noTTY
    }

    /// The USB devices sysfs lists (hubs included; root hubs `usbN` and interfaces left out).
    public static func devices(sysfsRoot: String = defaultRoot) -> [USBDeviceIdentity] {
        guard let entries = listDirectory(sysfsRoot + "/bus/usb/devices") else { return [] }
        return entries.sorted().compactMap { name in
            guard !name.contains(":"), let path = try? USBPortPath.parse(name) else { return nil }
            return identity(at: path, sysfsRoot: sysfsRoot)
        }
    }

    /// The identity of the device at `port`, or `nil` when nothing is plugged in there.
    public static func identity(at port: USBPortPath, sysfsRoot: String = defaultRoot) -> USBDeviceIdentity? {
        let dir = sysfsRoot + "/bus/usb/devices/" + port.description + "/"
        guard let vendor = attribute(dir + "idVendor").flatMap(hex16),
              let product = attribute(dir + "idProduct").flatMap(hex16)
        else { return nil }
        let address = attribute(dir + "devnum").flatMap { UInt8($0) } ?? 0
        let speed = attribute(dir + "speed").map(USBSpeed.init(sysfsMegabits:)) ?? .unknown
        return USBDeviceIdentity(vendorID: vendor, productID: product, serial: serial(at: port, sysfsRoot: sysfsRoot),
                                 portPath: port, speed: speed, address: address)
    }

    /// The device's serial string as the kernel read it at enumeration, or `nil` without one.
    public static func serial(at port: USBPortPath, sysfsRoot: String = defaultRoot) -> String? {
        attribute(sysfsRoot + "/bus/usb/devices/" + port.description + "/serial").flatMap { $0.isEmpty ? nil : $0 }
    }

    /// A sysfs attribute's text without its trailing newline (umockdev's files may keep a
    /// literal one), or `nil` when it cannot be read.
    static func attribute(_ path: String) -> String? {
        guard let fd = try? FileDescriptor.open(path, flags: O_RDONLY | O_CLOEXEC) else { return nil }
        defer { fd.close() }
        guard case .bytes(var bytes)? = try? fd.read(maxCount: maxAttributeBytes) else { return nil }
        while let last = bytes.last, last == UInt8(ascii: "\n") || last == UInt8(ascii: " ") { bytes.removeLast() }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func listDirectory(_ path: String) -> [String]? {
        guard let dir = opendir(path) else { return nil }
        defer { closedir(dir) }
        var names: [String] = []
        while names.count < maxEntries, let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// `1-1.2:1.0` before `1-1.2:1.1` before `1-1.2:1.10`: by configuration, then interface, numerically.
    static func interfaceOrder(_ a: String, _ b: String) -> Bool {
        func key(_ name: String) -> (Int, Int) {
            let suffix = name.split(separator: ":").last.map(String.init) ?? ""
            let parts = suffix.split(separator: ".").map { Int($0) ?? Int.max }
            return (parts.first ?? Int.max, parts.count > 1 ? parts[1] : Int.max)
        }
        return key(a) < key(b)
    }

    static func hex16(_ text: String) -> UInt16? {
        text.utf8.count == 4 ? UInt16(text, radix: 16) : nil
    }
}

/// The outcome of looking for a USB device's tty in sysfs.
public enum SysfsTTYLookup: Equatable, Sendable {
    /// The kernel bound a tty: its node, and the interface it belongs to.
    case found(devicePath: String, interface: String)
    /// Nothing is plugged in at that port.
    case noDevice
    /// The device is there but no serial driver is bound (not loaded, detached by libusb, or
    /// not an adapter the kernel knows): the libusb transport can still talk to it.
    case noTTY
}
