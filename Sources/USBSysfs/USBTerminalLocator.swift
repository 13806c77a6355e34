import USBCore

/// Finds the tty of the terminal's USB adapter by identity (`terminal.usb`), through sysfs only:
/// the kernel's serial driver keeps the device, so no libusb (and no permission on the USB device
/// node) is needed. Asked again before every open attempt, so a replug that renames the node
/// (`ttyUSB0` → `ttyUSB1`) or moves the adapter to another port is followed.
public struct USBTerminalLocator: Sendable {
    /// What a look found.
    public enum Outcome: Equatable, Sendable {
        /// The device and the tty node the kernel bound to it (under `devRoot`).
        case found(path: String, identity: USBDeviceIdentity)
        /// No device matches (unplugged, not enumerated yet).
        case absent
        /// Several identical adapters match a selector without a serial or port: never guess.
        case ambiguous([USBDeviceIdentity])
        /// The device is there, but no serial driver bound a tty to it (driver missing, or detached).
        case noTTY(USBDeviceIdentity)

        /// For the log and the link's last error.
        public var problem: String? {
            switch self {
            case .found: return nil
            case .absent: return "no USB device matches terminal.usb"
            case .ambiguous(let ids): return "terminal.usb matches \(ids.count) identical adapters (\(ids.map(\.portPath.description).joined(separator: ", "))): add the serial or a port path"
            case .noTTY(let id): return "USB device \(id) has no tty bound (is its serial driver loaded?)"
            }
        }
    }

    public let selector: USBSelector
    /// `/sys` on a charger; a fake tree in tests.
    public let sysfsRoot: String
    /// `/dev` on a charger; a directory of links to ptys in tests.
    public let devRoot: String

    public init(selector: USBSelector, sysfsRoot: String = SysfsUSB.defaultRoot, devRoot: String = "/dev") {
        self.selector = selector
        self.sysfsRoot = sysfsRoot
        self.devRoot = devRoot
    }

    /// Looks now.
    public func locate() -> Outcome {
        switch selector.select(from: SysfsUSB.devices(sysfsRoot: sysfsRoot)) {
        case .absent: return .absent
        case .ambiguous(let ids): return .ambiguous(ids)
        case .found(let id):
            switch SysfsUSB.ttyNode(for: id.portPath, sysfsRoot: sysfsRoot) {
            case .found(let devicePath, _):
                // ttyNode names the node under /dev; the same name under devRoot.
                let name = devicePath.split(separator: "/").last.map(String.init) ?? devicePath
                return .found(path: devRoot + "/" + name, identity: id)
            case .noDevice: return .absent
            case .noTTY: return .noTTY(id)
            }
        }
    }
}
