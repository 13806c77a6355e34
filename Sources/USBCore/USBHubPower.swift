/// Whether a hub can switch one port's power, and the requests that do (USB 2.0 §11.23.2.1 and
/// §11.24.2; USB 3.x hubs use descriptor type 0x2A with the same characteristics field).
///
/// On Linux the kernel's hub driver may power a port again on its own; from kernel 6.0 the
/// port's sysfs `disable` attribute (`/sys/bus/usb/devices/<hub>:1.0/<hub>-port<N>/disable`) is
/// the cooperative way and should be preferred by the shell where it exists.
public enum USBHubPower {
    /// How the hub switches port power (wHubCharacteristics bits 1:0).
    public enum Switching: Equatable, Sendable {
        /// All ports together: cutting one cuts every device on the hub.
        case ganged
        /// Each port on its own: a power cycle of the terminal's port is possible.
        case individual
        /// No switching (USB 1.x hubs only).
        case none
    }

    /// What a hub descriptor says about power switching.
    public struct Facts: Equatable, Sendable {
        /// Number of downstream ports.
        public var ports: UInt8
        /// The switching mode.
        public var switching: Switching
        /// Time from power on to power good, in milliseconds (bPwrOn2PwrGood × 2).
        public var powerOnToGoodMilliseconds: Int
    }

    /// GET_DESCRIPTOR for the hub descriptor (class request to the device), USB 2 or 3.
    public static func getHubDescriptor(superSpeed: Bool) -> USBControlRequest {
        USBControlRequest(requestType: 0xA0, request: 6, value: UInt16(superSpeed ? 0x2A : 0x29) << 8, index: 0, inLength: 71)
    }

    /// Reads a hub descriptor; `nil` when it is too short or not a hub descriptor.
    public static func parse(hubDescriptor bytes: [UInt8]) -> Facts? {
        guard bytes.count >= 7, Int(bytes[0]) <= bytes.count, bytes[1] == 0x29 || bytes[1] == 0x2A else { return nil }
        let characteristics = UInt16(bytes[3]) | UInt16(bytes[4]) << 8
        let switching: Switching = switch characteristics & 0b11 {
        case 0b00: .ganged
        case 0b01: .individual
        default: .none
        }
        return Facts(ports: bytes[2], switching: switching, powerOnToGoodMilliseconds: Int(bytes[5]) * 2)
    }

    /// The PORT_POWER feature selector.
    static let portPower: UInt16 = 8

    /// ClearPortFeature(PORT_POWER): the port's power off.
    public static func powerOff(port: UInt8) -> USBControlRequest {
        precondition(port >= 1, "hub ports are numbered from 1")
        return USBControlRequest(requestType: 0x23, request: 1, value: portPower, index: UInt16(port))
    }

    /// SetPortFeature(PORT_POWER): the port's power on.
    public static func powerOn(port: UInt8) -> USBControlRequest {
        precondition(port >= 1, "hub ports are numbered from 1")
        return USBControlRequest(requestType: 0x23, request: 3, value: portPower, index: UInt16(port))
    }

    /// The least time a port stays off in a power cycle: long enough for an adapter's bulk
    /// capacitance to discharge so it really restarts (a few hundred ms is not always enough).
    public static let minimumOffTime = Duration.seconds(2)
}
