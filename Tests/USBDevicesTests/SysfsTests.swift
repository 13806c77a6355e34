import Testing
import USBCore
import USBDevices
import USBSysfs

/// The sysfs lookups against fake trees shaped as the kernel lays them out.
@Suite struct SysfsTests {
    static func port(_ text: String) -> USBPortPath { try! USBPortPath.parse(text) }

    /// A device directory at `bus/usb/devices/<name>` with the attributes identity reads.
    static func addDevice(_ tree: ScratchDirectory, _ name: String, vendor: String, product: String, serial: String?, speed: String = "12", devnum: String = "4") {
        let dir = "bus/usb/devices/" + name
        tree.mkdir(dir)
        tree.write(dir + "/idVendor", vendor + "\n")
        tree.write(dir + "/idProduct", product + "\n")
        tree.write(dir + "/speed", speed + "\n")
        tree.write(dir + "/devnum", devnum + "\n")
        if let serial { tree.write(dir + "/serial", serial + "\n") }
    }

    @Test func aUSBSerialDriversTTYIsFoundInItsInterface() {
        let tree = ScratchDirectory()
        defer { tree.remove() }
        Self.addDevice(tree, "1-1.2", vendor: "0403", product: "6001", serial: "FTA1")
        tree.mkdir("bus/usb/devices/1-1.2/1-1.2:1.0/ttyUSB3/tty/ttyUSB3")
        #expect(SysfsUSB.ttyNode(for: Self.port("1-1.2"), sysfsRoot: tree.path) == .found(devicePath: "/dev/ttyUSB3", interface: "1-1.2:1.0"))
    }

    @Test func aCDCACMTTYIsFoundUnderTty() {
        let tree = ScratchDirectory()
        defer { tree.remove() }
        Self.addDevice(tree, "2-1", vendor: "1fc9", product: "0083", serial: nil)
        tree.mkdir("bus/usb/devices/2-1/2-1:1.0/tty/ttyACM1")
        tree.mkdir("bus/usb/devices/2-1/2-1:1.1")
        #expect(SysfsUSB.ttyNode(for: Self.port("2-1"), sysfsRoot: tree.path) == .found(devicePath: "/dev/ttyACM1", interface: "2-1:1.0"))
    }

    @Test func theLowestInterfaceWinsNumerically() {
        let tree = ScratchDirectory()
        defer { tree.remove() }
        Self.addDevice(tree, "1-3", vendor: "0403", product: "6010", serial: "DUAL")
        tree.mkdir("bus/usb/devices/1-3/1-3:1.10/ttyUSB9")
        tree.mkdir("bus/usb/devices/1-3/1-3:1.2/ttyUSB5")
        tree.mkdir("bus/usb/devices/1-3/1-3:1.1/ttyUSB4")
        #expect(SysfsUSB.ttyNode(for: Self.port("1-3"), sysfsRoot: tree.path) == .found(devicePath: "/dev/ttyUSB4", interface: "1-3:1.1"))
    }

    @Test func noDeviceAndNoDriverAreToldApart() {
        let tree = ScratchDirectory()
        defer { tree.remove() }
        Self.addDevice(tree, "1-4", vendor: "0403", product: "6001", serial: "X")
        tree.mkdir("bus/usb/devices/1-4/1-4:1.0")
        #expect(SysfsUSB.ttyNode(for: Self.port("1-4"), sysfsRoot: tree.path) == .noTTY, "driver unbound (or detached by libusb)")
        #expect(SysfsUSB.ttyNode(for: Self.port("1-5"), sysfsRoot: tree.path) == .noDevice)
        #expect(SysfsUSB.ttyNode(for: Self.port("1-4"), sysfsRoot: tree.path + "/missing") == .noDevice)
    }

    @Test func identitiesAreReadWithoutOpeningDevices() {
        let tree = ScratchDirectory()
        defer { tree.remove() }
        Self.addDevice(tree, "1-1", vendor: "05e3", product: "0608", serial: nil, speed: "480", devnum: "2")
        Self.addDevice(tree, "1-1.2", vendor: "0403", product: "6001", serial: "FTA1", devnum: "7")
        Self.addDevice(tree, "1-1.3", vendor: "0403", product: "6001", serial: "", devnum: "8")
        tree.mkdir("bus/usb/devices/usb1")
        tree.mkdir("bus/usb/devices/1-1.2:1.0")
        let devices = SysfsUSB.devices(sysfsRoot: tree.path)
        #expect(devices.map(\.portPath.description) == ["1-1", "1-1.2", "1-1.3"], "root hubs and interfaces are left out")
        #expect(devices[1] == USBDeviceIdentity(vendorID: 0x0403, productID: 0x6001, serial: "FTA1", portPath: Self.port("1-1.2"), speed: .full, address: 7))
        #expect(devices[0].speed == .high)
        #expect(devices[2].serial == nil, "an empty serial is no serial")
        let selector = USBSelector.identity(vendorID: 0x0403, productID: 0x6001, serial: "FTA1")
        #expect(selector.select(from: devices) == .found(devices[1]))
    }
}
