/// The FTDI FT232 (AM/BM/R/RL) as a UART without the kernel's ftdi_sio driver: vendor requests
/// on endpoint 0 (FTDI AN232B-05 for the baud divisor; the request numbers as every open driver
/// uses them) and the two status bytes that start every bulk IN packet.
///
/// The chip sends a packet, at least its two status bytes, whenever its latency timer expires
/// without having sent one, even on a silent line: an open port without the kernel driver
/// completes a bulk IN transfer 1000/latency times a second.
///
/// Single-interface chips only: on FT2232/FT4232 the port number shares wIndex with the
/// divisor's high bits, which these builders do not place.
public enum FTDI {
    /// bRequest numbers.
    public enum Request: UInt8, Sendable {
        /// Reset the chip, or purge one of its buffers (`ResetKind`).
        case reset = 0
        /// Set DTR/RTS.
        case modemControl = 1
        /// Flow control.
        case setFlowControl = 2
        /// Baud divisor in wValue and wIndex.
        case setBaudRate = 3
        /// Data bits, parity, stop bits, break.
        case setData = 4
        /// A received byte that sends the packet at once, before the latency timer.
        case setEventCharacter = 6
        /// How long the chip holds a partly filled IN packet (1…255 ms).
        case setLatencyTimer = 9
    }

    /// wValue of a reset request.
    public enum ResetKind: UInt16, Sendable {
        /// Reset the serial engine (purges both buffers, keeps the settings).
        case sio = 0
        /// Purge the receive buffer (device to host).
        case purgeRX = 1
        /// Purge the transmit buffer (host to device).
        case purgeTX = 2
    }

    /// FTDI's documented default for the latency timer, in milliseconds.
    public static let defaultLatencyMilliseconds: UInt8 = 16

    static func request(_ r: Request, value: UInt16, index: UInt16 = 0) -> USBControlRequest {
        USBControlRequest(requestType: USBControlRequest.vendorDeviceOut, request: r.rawValue, value: value, index: index)
    }

    /// A reset or purge.
    public static func reset(_ kind: ResetKind) -> USBControlRequest { request(.reset, value: kind.rawValue) }

    /// SET_BAUD_RATE with the divisor closest to `baud` (refused beyond `FTDIBaud.maxErrorPermille`).
    public static func setBaudRate(_ baud: UInt32) throws(USBSerialError) -> USBControlRequest {
        let divisor = try FTDIBaud.divisor(for: baud)
        return request(.setBaudRate, value: divisor.value, index: divisor.index)
    }

    /// SET_DATA: data bits in bits 0–7, parity in 8–10, stop bits in 11–13, break in 14.
    public static func setData(_ line: SerialLineSettings, breakOn: Bool = false) throws(USBSerialError) -> USBControlRequest {
        guard (7...8).contains(line.dataBits) else { throw .unsupportedDataBits(line.dataBits) }
        let value = UInt16(line.dataBits) | UInt16(line.parity.rawValue) << 8 | UInt16(line.stopBits.rawValue) << 11 | (breakOn ? 1 << 14 : 0)
        return request(.setData, value: value)
    }

    /// MODEM_CTRL: the low byte sets DTR (bit 0) and RTS (bit 1); the high byte says which of the
    /// two this request changes (bit 8 DTR, bit 9 RTS). Both are always written here.
    public static func modemControl(dtr: Bool, rts: Bool) -> USBControlRequest {
        request(.modemControl, value: 0x0300 | (dtr ? 1 : 0) | (rts ? 2 : 0))
    }

    /// SET_FLOW_CTRL with no flow control (the payment terminals' lines have none; wIndex's high
    /// byte would select RTS/CTS 0x01, DTR/DSR 0x02, XON/XOFF 0x04).
    public static func noFlowControl() -> USBControlRequest { request(.setFlowControl, value: 0) }

    /// SET_LATENCY_TIMER: a short one (a few ms) gets a terminal's short frames to the host
    /// sooner than the 16 ms default.
    public static func setLatencyTimer(milliseconds: UInt8) -> USBControlRequest {
        precondition(milliseconds >= 1, "the FT232 takes 1…255 ms")
        return request(.setLatencyTimer, value: UInt16(milliseconds))
    }

    /// SET_EVENT_CHAR: when enabled, receiving `character` sends the packet at once. With a
    /// protocol whose frames end in a known byte, this lets the latency timer be long (fewer
    /// status-only packets, so fewer wake-ups on an idle line) without delaying frames.
    public static func setEventCharacter(_ character: UInt8, enabled: Bool) -> USBControlRequest {
        request(.setEventCharacter, value: UInt16(character) | (enabled ? 0x0100 : 0))
    }

    /// The bring-up, in the order the kernel's driver uses: reset, DTR/RTS, no flow control,
    /// baud, line properties, latency, then both buffers purged so no stale bytes from before
    /// the open reach the link.
    public static func bringUp(_ line: SerialLineSettings, latencyMilliseconds: UInt8) throws(USBSerialError) -> [USBControlRequest] {
        [reset(.sio), modemControl(dtr: true, rts: true), noFlowControl(), try setBaudRate(line.baud),
         try setData(line), setLatencyTimer(milliseconds: latencyMilliseconds), reset(.purgeRX), reset(.purgeTX)]
    }
}

/// The FT232 baud divisor (AN232B-05): the chip divides 3 MHz by an integer (14 bits) plus
/// a fraction in eighths; 3 MBd and 2 MBd have special encodings (divisors 0 and 1).
public struct FTDIBaud: Equatable, Sendable {
    /// wValue: the integer part in bits 0–13, the fraction code's low two bits in 14–15.
    public let value: UInt16
    /// wIndex: the fraction code's third bit in bit 0.
    public let index: UInt16
    /// The rate the chip will actually run at, in bits per second (rounded down).
    public let actualBaud: UInt32

    /// The chip's reference clock divided by 16.
    public static let baseClock: UInt32 = 3_000_000
    /// The largest error accepted: 3 % (UARTs tolerate a few percent in total, and the other end has its own).
    public static let maxErrorPermille: UInt32 = 30
    /// The largest divisor, in eighths: 16383 + 7/8.
    static let maxEighths: UInt32 = 16383 * 8 + 7
    /// The fraction code for each eighth (0, 1/8, 2/8 … 7/8), as AN232B-05's sub-integer table assigns them.
    static let fractionCode: [UInt32] = [0, 3, 2, 4, 1, 5, 6, 7]

    /// The divisor nearest `baud`, or `unsupportedBaud` when no divisor comes within `maxErrorPermille`.
    public static func divisor(for baud: UInt32) throws(USBSerialError) -> FTDIBaud {
        guard baud > 0 else { throw .unsupportedBaud(baud) }
        // Divisor in eighths, rounded to nearest: 8 · 3 MHz / baud.
        var eighths = (UInt64(baseClock) * 16 + UInt64(baud)) / (2 * UInt64(baud))
        if eighths > UInt64(maxEighths) { eighths = UInt64(maxEighths) }
        // Below 2 only the divisors 1 (3 MBd) and 1.5 (2 MBd) exist: take the nearest of 1, 1.5, 2.
        switch eighths {
        case ..<11: eighths = 8
        case 11..<14: eighths = 12
        case 14..<16: eighths = 16
        default: break
        }
        let e = UInt32(eighths)
        let actual = UInt32((UInt64(baseClock) * 8) / UInt64(e))
        let error = actual > baud ? actual - baud : baud - actual
        guard UInt64(error) * 1000 <= UInt64(baud) * UInt64(maxErrorPermille) else { throw .unsupportedBaud(baud) }
        let encoded: UInt32
        switch e {
        case 8: encoded = 0 // 3 MBd
        case 12: encoded = 1 // 2 MBd
        default: encoded = (e >> 3) | fractionCode[Int(e & 7)] << 14
        }
        return FTDIBaud(value: UInt16(encoded & 0xFFFF), index: UInt16(encoded >> 16), actualBaud: actual)
    }

    init(value: UInt16, index: UInt16, actualBaud: UInt32) {
        self.value = value
        self.index = index
        self.actualBaud = actualBaud
    }
}

/// The two bytes an FT232 puts at the start of every bulk IN packet.
public struct FTDIStatus: Equatable, Sendable {
    /// Modem status: CTS bit 4, DSR bit 5, RI bit 6, DCD bit 7 (bits 0–3 are fixed by the chip).
    public var modem: UInt8
    /// Line status: overrun bit 1, parity error bit 2, framing error bit 3, break bit 4,
    /// transmit holding register empty bit 5, transmitter empty bit 6, FIFO error bit 7.
    public var line: UInt8

    /// An overrun, parity, framing or break condition: bytes in this packet may be damaged or lost.
    public var hasLineError: Bool { line & 0b0001_1110 != 0 }
}

/// Removes the status bytes from bulk IN data, packet by packet.
public enum FTDIPacketStripper {
    /// The payload of one completed bulk IN transfer, and the status of each packet in it.
    ///
    /// The chip prefixes *every* packet of `maxPacketSize` bytes (64 at full speed, 512 at high
    /// speed), not every transfer: a 512-byte transfer at full speed holds eight packets and
    /// eight status pairs. The shell must submit IN transfers whose length is a multiple of
    /// `maxPacketSize`, so every transfer starts at a packet boundary; only the last packet may
    /// be short. A trailing single byte (a packet too short to hold its status) is dropped and
    /// reported as `truncatedPacket`.
    public static func strip(_ transfer: [UInt8], maxPacketSize: Int) -> (payload: [UInt8], statuses: [FTDIStatus], truncatedPacket: Bool) {
        precondition(maxPacketSize > 2, "an FT232 packet holds two status bytes and data")
        var payload: [UInt8] = []
        payload.reserveCapacity(transfer.count)
        var statuses: [FTDIStatus] = []
        var truncated = false
        var start = 0
        while start < transfer.count {
            let end = min(start + maxPacketSize, transfer.count)
            if end - start < 2 {
                truncated = true
                break
            }
            statuses.append(FTDIStatus(modem: transfer[start], line: transfer[start + 1]))
            payload.append(contentsOf: transfer[(start + 2)..<end])
            start = end
        }
        return (payload, statuses, truncated)
    }
}
