/// A USB control transfer as its 8-byte setup packet plus the data stage (pure; the shell sends it).
public struct USBControlRequest: Equatable, Hashable, Sendable {
    /// bmRequestType: direction, type (standard/class/vendor) and recipient.
    public var requestType: UInt8
    /// bRequest.
    public var request: UInt8
    /// wValue.
    public var value: UInt16
    /// wIndex.
    public var index: UInt16
    /// The OUT data stage (empty for none); for IN requests, empty.
    public var data: [UInt8]
    /// wLength for IN requests (for OUT requests it is `data.count`).
    public var inLength: UInt16

    /// Host-to-device, class request, to an interface (CDC).
    public static let classInterfaceOut: UInt8 = 0x21
    /// Host-to-device, vendor request, to the device (FTDI).
    public static let vendorDeviceOut: UInt8 = 0x40
    /// Device-to-host, vendor request, to the device (FTDI reads).
    public static let vendorDeviceIn: UInt8 = 0xC0

    /// A request from its fields.
    public init(requestType: UInt8, request: UInt8, value: UInt16, index: UInt16, data: [UInt8] = [], inLength: UInt16 = 0) {
        precondition(data.count <= Int(UInt16.max))
        precondition(data.isEmpty || requestType & 0x80 == 0, "an IN request has no data stage to send")
        self.requestType = requestType
        self.request = request
        self.value = value
        self.index = index
        self.data = data
        self.inLength = inLength
    }

    /// Whether the data stage flows from the device (bit 7 of bmRequestType).
    public var isIn: Bool { requestType & 0x80 != 0 }

    /// wLength as sent.
    public var length: UInt16 { isIn ? inLength : UInt16(data.count) }

    /// The setup packet (fields little-endian) followed by the OUT data: what usbfs receives.
    public var setupAndData: [UInt8] {
        [requestType, request,
         UInt8(value & 0xFF), UInt8(value >> 8),
         UInt8(index & 0xFF), UInt8(index >> 8),
         UInt8(length & 0xFF), UInt8(length >> 8)] + data
    }
}

/// Serial line parameters, shared by the CDC-ACM and FTDI request builders.
public struct SerialLineSettings: Equatable, Hashable, Sendable {
    /// Parity, numbered as both CDC (bParityType) and FTDI (SET_DATA bits 8–10) number it.
    public enum Parity: UInt8, Sendable {
        /// No parity bit.
        case none = 0
        /// Odd.
        case odd = 1
        /// Even.
        case even = 2
        /// Always 1.
        case mark = 3
        /// Always 0.
        case space = 4
    }

    /// Stop bits, numbered as both CDC (bCharFormat) and FTDI (SET_DATA bits 11–13) number them.
    public enum StopBits: UInt8, Sendable {
        /// One.
        case one = 0
        /// One and a half (5 data bits only on most UARTs).
        case oneAndHalf = 1
        /// Two.
        case two = 2
    }

    /// Bits per second.
    public var baud: UInt32
    /// Data bits (5…8 for FTDI; CDC also allows 16).
    public var dataBits: UInt8
    /// Parity.
    public var parity: Parity
    /// Stop bits.
    public var stopBits: StopBits

    /// Settings from their parts.
    public init(baud: UInt32, dataBits: UInt8 = 8, parity: Parity = .none, stopBits: StopBits = .one) {
        self.baud = baud
        self.dataBits = dataBits
        self.parity = parity
        self.stopBits = stopBits
    }
}
