/// Where a device is plugged in: the bus and the port on each hub from the root down, as the
/// kernel names it in sysfs (`1-1.2`: bus 1, root port 1, then port 2 of the hub there).
public struct USBPortPath: Hashable, Sendable, CustomStringConvertible {
    /// The bus number (1…255).
    public let bus: UInt8
    /// Port numbers from the root hub down (1…`maxDepth` of them, each 1…255).
    public let ports: [UInt8]

    /// USB 3 allows a root port plus six tiers of hubs: libusb's port list holds seven.
    public static let maxDepth = 7

    /// A path from its parts; `nil` when a number is zero or there are too many or no ports.
    public init?(bus: UInt8, ports: [UInt8]) {
        guard bus != 0, !ports.isEmpty, ports.count <= Self.maxDepth, !ports.contains(0) else { return nil }
        self.bus = bus
        self.ports = ports
    }

    /// Parses `bus-port[.port…]` (decimal, no leading zeros, no signs or spaces).
    public static func parse(_ text: String) throws(USBSelectorError) -> USBPortPath {
        let bytes = Array(text.utf8)
        guard let dash = bytes.firstIndex(of: UInt8(ascii: "-")) else { throw .badPortPath(text) }
        let bus = try number(bytes[..<dash], in: text)
        let portFields = bytes[(dash + 1)...].split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        if portFields.count > maxDepth { throw .portPathTooDeep(portFields.count) }
        var ports: [UInt8] = []
        for field in portFields { ports.append(try number(field, in: text)) }
        return USBPortPath(bus: bus, ports: ports)!
    }

    private static func number(_ digits: ArraySlice<UInt8>, in text: String) throws(USBSelectorError) -> UInt8 {
        guard !digits.isEmpty, digits.count <= 3, digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
              digits.first != UInt8(ascii: "0") || digits.count == 1
        else { throw .badPortPath(text) }
        let value = digits.reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
        guard (1...255).contains(value) else { throw .portNumberOutOfRange(text) }
        return UInt8(value)
    }

    /// `1-1.2`, the sysfs device name.
    public var description: String {
        String(bus) + "-" + ports.map { String($0) }.joined(separator: ".")
    }
}

/// A USB link speed, as libusb and sysfs report it.
public enum USBSpeed: Equatable, Hashable, Sendable, CustomStringConvertible {
    /// 1.5 Mbit/s.
    case low
    /// 12 Mbit/s (most USB-serial adapters: FT232R, PL2303, CP2102).
    case full
    /// 480 Mbit/s (FT232H, FT2232H).
    case high
    /// 5 Gbit/s.
    case superSpeed
    /// 10 Gbit/s.
    case superSpeedPlus
    /// Not reported, or a value this code does not know.
    case unknown

    /// From sysfs's `speed` attribute (megabits per second: "1.5", "12", "480", "5000", "10000").
    public init(sysfsMegabits text: String) {
        switch text {
        case "1.5": self = .low
        case "12": self = .full
        case "480": self = .high
        case "5000": self = .superSpeed
        case "10000", "20000": self = .superSpeedPlus
        default: self = .unknown
        }
    }

    /// The sysfs spelling, or `unknown`.
    public var description: String {
        switch self {
        case .low: "1.5"
        case .full: "12"
        case .high: "480"
        case .superSpeed: "5000"
        case .superSpeedPlus: "10000"
        case .unknown: "unknown"
        }
    }
}

/// What identifies a USB device for the daemon and its inventory.
public struct USBDeviceIdentity: Hashable, Sendable, CustomStringConvertible {
    /// idVendor.
    public var vendorID: UInt16
    /// idProduct.
    public var productID: UInt16
    /// The serial string (iSerialNumber), when the device has one and it could be read.
    public var serial: String?
    /// Where it is plugged in.
    public var portPath: USBPortPath
    /// The link speed.
    public var speed: USBSpeed
    /// The device address on its bus (changes on every replug; for logs only).
    public var address: UInt8

    /// An identity from its parts.
    public init(vendorID: UInt16, productID: UInt16, serial: String?, portPath: USBPortPath, speed: USBSpeed, address: UInt8) {
        self.vendorID = vendorID
        self.productID = productID
        self.serial = serial
        self.portPath = portPath
        self.speed = speed
        self.address = address
    }

    /// `0403:6001 serial FT1ABC at 1-1.2 (12 Mbit/s)`.
    public var description: String {
        var text = Self.hex4(vendorID) + ":" + Self.hex4(productID)
        if let serial { text += " serial " + serial }
        return text + " at " + portPath.description + " (" + speed.description + " Mbit/s)"
    }

    /// Four lowercase hexadecimal digits, as lsusb and sysfs show IDs.
    public static func hex4(_ value: UInt16) -> String {
        let digits = Array("0123456789abcdef".utf8)
        return String(decoding: [12, 8, 4, 0].map { digits[Int(value >> $0) & 0xF] }, as: UTF8.self)
    }
}
