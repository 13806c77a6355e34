/// CDC-ACM (USB CDC 1.2, PSTN subclass 1.2 §6.3) requests for a terminal whose adapter is a
/// communications-class device, driven without the kernel's cdc_acm driver.
///
/// Data flows on the data interface's bulk endpoints as is: unlike FTDI, no status bytes.
/// A bulk OUT whose length is a multiple of the endpoint's max packet size must end with a
/// zero-length packet, or the device waits for more (the shell sets libusb's ADD_ZERO_PACKET).
public enum CDCACM {
    /// SET_LINE_CODING.
    public static let setLineCodingRequest: UInt8 = 0x20
    /// GET_LINE_CODING.
    public static let getLineCodingRequest: UInt8 = 0x21
    /// SET_CONTROL_LINE_STATE.
    public static let setControlLineStateRequest: UInt8 = 0x22
    /// SEND_BREAK.
    public static let sendBreakRequest: UInt8 = 0x23

    /// SET_LINE_CODING to the communications interface: dwDTERate (little-endian), bCharFormat,
    /// bParityType, bDataBits.
    public static func setLineCoding(_ line: SerialLineSettings, interface: UInt8) throws(USBSerialError) -> USBControlRequest {
        guard [5, 6, 7, 8, 16].contains(line.dataBits) else { throw .unsupportedDataBits(line.dataBits) }
        guard line.baud > 0 else { throw .unsupportedBaud(line.baud) }
        let rate = line.baud
        let data: [UInt8] = [UInt8(rate & 0xFF), UInt8(rate >> 8 & 0xFF), UInt8(rate >> 16 & 0xFF), UInt8(rate >> 24),
                             line.stopBits.rawValue, line.parity.rawValue, line.dataBits]
        return USBControlRequest(requestType: USBControlRequest.classInterfaceOut, request: setLineCodingRequest,
                                 value: 0, index: UInt16(interface), data: data)
    }

    /// SET_CONTROL_LINE_STATE: DTR is bit 0 (the device's "DTE present"), RTS bit 1.
    public static func setControlLineState(dtr: Bool, rts: Bool, interface: UInt8) -> USBControlRequest {
        USBControlRequest(requestType: USBControlRequest.classInterfaceOut, request: setControlLineStateRequest,
                          value: (dtr ? 1 : 0) | (rts ? 2 : 0), index: UInt16(interface))
    }

    /// The bring-up: line coding first, then DTR and RTS raised (many CDC devices send nothing
    /// until DTR is set).
    public static func bringUp(_ line: SerialLineSettings, interface: UInt8) throws(USBSerialError) -> [USBControlRequest] {
        [try setLineCoding(line, interface: interface), setControlLineState(dtr: true, rts: true, interface: interface)]
    }
}

/// Why a serial setting cannot be expressed to the adapter.
public enum USBSerialError: Error, Equatable, Sendable {
    /// The adapter cannot use this many data bits.
    case unsupportedDataBits(UInt8)
    /// The baud rate is zero, or no divisor reaches it within `FTDIBaud.maxErrorPermille`.
    case unsupportedBaud(UInt32)
}
