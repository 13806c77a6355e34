/// Which USB device is the terminal (`terminal.usb`): a vendor and product ID with an optional
/// serial string, or the physical port the device is plugged into.
///
/// A port path names a socket on the charger's hubs and survives an adapter swap; VID:PID:SERIAL
/// follows one adapter wherever it is plugged. VID:PID without a serial is accepted but refuses
/// to choose when two such devices are present (`USBSelection.ambiguous`): two identical
/// adapters are common, and picking one by enumeration order would talk to the wrong device.
public enum USBSelector: Equatable, Hashable, Sendable, CustomStringConvertible {
    /// Vendor and product ID, and the serial string when given (compared exactly).
    case identity(vendorID: UInt16, productID: UInt16, serial: String?)
    /// The device plugged into this port, whatever it is.
    case port(USBPortPath)

    /// The longest serial string accepted: a string descriptor holds at most 126 UTF-16 units.
    public static let maxSerialLength = 126

    /// Parses `VID:PID`, `VID:PID:SERIAL` (four hexadecimal digits each, any case) or a port
    /// path such as `1-1.2`. The serial is everything after the second colon.
    public static func parse(_ text: String) throws(USBSelectorError) -> USBSelector {
        let bytes = Array(text.utf8)
        if bytes.isEmpty { throw .empty }
        if bytes.contains(UInt8(ascii: "-")) && !bytes.contains(UInt8(ascii: ":")) {
            return .port(try USBPortPath.parse(text))
        }
        guard let firstColon = bytes.firstIndex(of: UInt8(ascii: ":")) else { throw .unrecognised(text) }
        let vendorText = bytes[..<firstColon]
        let rest = bytes[(firstColon + 1)...]
        let secondColon = rest.firstIndex(of: UInt8(ascii: ":"))
        let productText = secondColon.map { rest[..<$0] } ?? rest
        guard let vendor = hex16(vendorText) else { throw .badVendorID(String(decoding: vendorText, as: UTF8.self)) }
        guard let product = hex16(productText) else { throw .badProductID(String(decoding: productText, as: UTF8.self)) }
        guard let secondColon else { return .identity(vendorID: vendor, productID: product, serial: nil) }
        let serialBytes = rest[(secondColon + 1)...]
        if serialBytes.isEmpty { throw .emptySerial }
        if serialBytes.count > maxSerialLength { throw .serialTooLong(serialBytes.count) }
        // Printable ASCII only: what adapters report, and what a configuration file can show unescaped.
        if let bad = serialBytes.first(where: { $0 < 0x21 || $0 > 0x7E }) { throw .serialCharacter(bad) }
        return .identity(vendorID: vendor, productID: product, serial: String(decoding: serialBytes, as: UTF8.self))
    }

    /// Whether `device` is the one this selector names.
    public func matches(_ device: USBDeviceIdentity) -> Bool {
        switch self {
        case .identity(let vendor, let product, let serial):
            guard device.vendorID == vendor && device.productID == product else { return false }
            guard let serial else { return true }
            return device.serial == serial
        case .port(let path):
            return device.portPath == path
        }
    }

    /// The one device among `devices` this selector names, or why there is none.
    public func select(from devices: [USBDeviceIdentity]) -> USBSelection {
        let matching = devices.filter(matches)
        switch matching.count {
        case 0: return .absent
        case 1: return .found(matching[0])
        default: return .ambiguous(matching)
        }
    }

    /// The configuration form: `0403:6001:FT1ABC`, `0403:6001` or `1-1.2`.
    public var description: String {
        switch self {
        case .identity(let vendor, let product, let serial):
            let ids = USBDeviceIdentity.hex4(vendor) + ":" + USBDeviceIdentity.hex4(product)
            return serial.map { ids + ":" + $0 } ?? ids
        case .port(let path):
            return path.description
        }
    }

    private static func hex16(_ digits: ArraySlice<UInt8>) -> UInt16? {
        guard digits.count == 4 else { return nil }
        var value: UInt16 = 0
        for digit in digits {
            let nibble: UInt8
            switch digit {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): nibble = digit - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): nibble = digit - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): nibble = digit - UInt8(ascii: "A") + 10
            default: return nil
            }
            value = value << 4 | UInt16(nibble)
        }
        return value
    }
}

/// Why a `terminal.usb` value was refused.
public enum USBSelectorError: Error, Equatable, Sendable {
    /// The value is empty.
    case empty
    /// Neither `VID:PID[:SERIAL]` nor a port path (no colon, and no dash).
    case unrecognised(String)
    /// The vendor ID is not exactly four hexadecimal digits.
    case badVendorID(String)
    /// The product ID is not exactly four hexadecimal digits.
    case badProductID(String)
    /// `VID:PID:` with nothing after the second colon.
    case emptySerial
    /// The serial is longer than `USBSelector.maxSerialLength` bytes (its length given).
    case serialTooLong(Int)
    /// The serial holds a byte outside printable ASCII (space and controls included).
    case serialCharacter(UInt8)
    /// The port path is malformed: `bus-port[.port…]`, decimal numbers without leading zeros.
    case badPortPath(String)
    /// A bus or port number outside 1…255.
    case portNumberOutOfRange(String)
    /// More hub levels than USB allows (`USBPortPath.maxDepth`).
    case portPathTooDeep(Int)
}

/// The outcome of looking for the selected device among those present.
public enum USBSelection: Equatable, Sendable {
    /// Exactly one device matched.
    case found(USBDeviceIdentity)
    /// No device matched (unplugged, or not enumerated yet).
    case absent
    /// Several matched a selector without a serial or port: the daemon must not choose.
    case ambiguous([USBDeviceIdentity])
}
