import WireFormat

/// Limits of the Modbus RTU codec, from the Modbus application protocol (V1.1b3) and the serial
/// line guide (V1.02).
public enum ModbusLimits {
    /// The largest RTU frame: address, 253-byte PDU, CRC.
    public static let maxFrameBytes = 256
    /// Registers one read (function 03 or 04) may ask for: the response's byte count is one byte.
    public static let maxRegistersPerRead: UInt16 = 125
    /// The highest unicast server address; 0 is broadcast (never answered, so never read) and
    /// 248…255 are reserved.
    public static let maxServerAddress: UInt8 = 247
}

/// The function codes this client uses: reads of 16-bit registers.
public enum ModbusFunction: UInt8, Sendable, CaseIterable {
    /// Read Holding Registers (03): configuration and identity (a meter's serial number).
    case readHoldingRegisters = 0x03
    /// Read Input Registers (04): measurements (Eastron's energy and power).
    case readInputRegisters = 0x04
}

/// A Modbus exception code, as a server answers a request it cannot carry out (the function code
/// with its top bit set, then this code).
public enum ModbusException: Equatable, Hashable, Sendable, CustomStringConvertible {
    /// 01: the server does not support the function (a meter that has no input registers).
    case illegalFunction
    /// 02: an address in the requested range does not exist on this server (a register map for
    /// another model).
    case illegalDataAddress
    /// 03: a value in the request is not allowed (for a read: the register count).
    case illegalDataValue
    /// 04: the server failed while carrying out the request.
    case serverDeviceFailure
    /// 06: the server is busy with a long command; the client may try again later.
    case serverDeviceBusy
    /// 11 (0x0B): a gateway got no answer from the target device behind it.
    case gatewayTargetFailedToRespond
    /// Any other code (05 acknowledge, 08, 10, or one no specification defines), kept as sent.
    case unlisted(UInt8)

    /// The code for the exception's byte.
    public init(code: UInt8) {
        switch code {
        case 0x01: self = .illegalFunction
        case 0x02: self = .illegalDataAddress
        case 0x03: self = .illegalDataValue
        case 0x04: self = .serverDeviceFailure
        case 0x06: self = .serverDeviceBusy
        case 0x0B: self = .gatewayTargetFailedToRespond
        default: self = .unlisted(code)
        }
    }

    /// The byte on the wire.
    public var code: UInt8 {
        switch self {
        case .illegalFunction: 0x01
        case .illegalDataAddress: 0x02
        case .illegalDataValue: 0x03
        case .serverDeviceFailure: 0x04
        case .serverDeviceBusy: 0x06
        case .gatewayTargetFailedToRespond: 0x0B
        case .unlisted(let c): c
        }
    }

    /// For the log.
    public var description: String {
        switch self {
        case .illegalFunction: "exception 1 (illegal function)"
        case .illegalDataAddress: "exception 2 (illegal data address)"
        case .illegalDataValue: "exception 3 (illegal data value)"
        case .serverDeviceFailure: "exception 4 (server device failure)"
        case .serverDeviceBusy: "exception 6 (server device busy)"
        case .gatewayTargetFailedToRespond: "exception 11 (gateway target device failed to respond)"
        case .unlisted(let c): "exception \(c)"
        }
    }
}

/// Why a request could not be built: each is a configuration or register-map mistake, caught
/// before anything goes on the bus.
public enum ModbusRequestError: Error, Equatable, Sendable {
    /// The server address is 0 (broadcast, which no server answers) or above 247.
    case invalidAddress(UInt8)
    /// The register count is 0 or above `ModbusLimits.maxRegistersPerRead`.
    case invalidCount(UInt16)
    /// The range runs past register 0xFFFF.
    case rangeBeyondEnd(start: UInt16, count: UInt16)
}

/// Why a received frame was not taken as the answer. Each case is one check, in the order they
/// are made: the CRC first, since a corrupted frame's other fields mean nothing.
public enum ModbusDecodeError: Error, Equatable, Hashable, Sendable, CustomStringConvertible {
    /// Fewer bytes than the shortest frame (address, function, one byte, CRC: 5; a request: 8).
    case tooShort(Int)
    /// More bytes than `ModbusLimits.maxFrameBytes`.
    case tooLong(Int)
    /// The CRC in the frame is not the CRC of its bytes: line noise, a collision, or a frame
    /// cut by a pause longer than the silent interval.
    case crcMismatch(computed: UInt16, received: UInt16)
    /// The frame comes from (or, for a request, is for) another server address.
    case unexpectedAddress(expected: UInt8, received: UInt8)
    /// The function code is neither the request's nor its exception form.
    case unexpectedFunction(expected: UInt8, received: UInt8)
    /// The byte count field, or the frame's length, is not what the request asked for.
    case lengthMismatch(expectedBytes: Int, receivedBytes: Int)
    /// A request with a function this codec does not serve (the server answers it with
    /// `ModbusException.illegalFunction`).
    case unsupportedFunction(UInt8)

    /// For the log.
    public var description: String {
        switch self {
        case .tooShort(let n): "frame too short (\(n) bytes)"
        case .tooLong(let n): "frame too long (\(n) bytes)"
        case .crcMismatch(let c, let r): "CRC mismatch (computed \(hex16(c)), received \(hex16(r)))"
        case .unexpectedAddress(let e, let r): "answer from address \(r), expected \(e)"
        case .unexpectedFunction(let e, let r): "function \(r) in the answer, expected \(e)"
        case .lengthMismatch(let e, let r): "\(r) data bytes, expected \(e)"
        case .unsupportedFunction(let f): "unsupported function \(f)"
        }
    }
}

func hex16(_ v: UInt16) -> String {
    let digits = Array("0123456789ABCDEF")
    return "0x" + String([digits[Int(v >> 12)], digits[Int(v >> 8 & 0xF)], digits[Int(v >> 4 & 0xF)], digits[Int(v & 0xF)]])
}

/// One read of consecutive registers from one server: what the client sends and what the
/// server (meter-sim) decodes.
public struct ReadRequest: Equatable, Hashable, Sendable, CustomStringConvertible {
    /// The server's address on the bus, 1…247.
    public let address: UInt8
    /// Holding (03) or input (04) registers.
    public let function: ModbusFunction
    /// The first register's address as it goes on the wire (0-based: register 30073 is 0x0048).
    public let start: UInt16
    /// How many 16-bit registers, 1…125.
    public let count: UInt16

    /// A checked request.
    public init(address: UInt8, function: ModbusFunction, start: UInt16, count: UInt16) throws(ModbusRequestError) {
        guard (1...ModbusLimits.maxServerAddress).contains(address) else { throw .invalidAddress(address) }
        guard (1...ModbusLimits.maxRegistersPerRead).contains(count) else { throw .invalidCount(count) }
        guard Int(start) + Int(count) <= 0x1_0000 else { throw .rangeBeyondEnd(start: start, count: count) }
        self.address = address
        self.function = function
        self.start = start
        self.count = count
    }

    /// The frame: address, function, start and count big-endian, CRC low byte first.
    public func encode() -> [UInt8] {
        CRC16Modbus.appending(to: [address, function.rawValue, UInt8(start >> 8), UInt8(start & 0xFF),
                                   UInt8(count >> 8), UInt8(count & 0xFF)])
    }

    /// The length of a normal answer: address, function, byte count, 2 bytes per register, CRC.
    public var responseLength: Int { 5 + 2 * Int(count) }

    /// A request frame as a server reads it (meter-sim). A frame for another address is
    /// `unexpectedAddress` only when `forAddress` is given; a function other than 03/04 is
    /// `unsupportedFunction` (answered with exception 1); a bad count is `lengthMismatch`.
    public static func decode(_ frame: some Collection<UInt8>, forAddress: UInt8? = nil) throws(ModbusDecodeError) -> ReadRequest {
        let f = Array(frame)
        guard f.count >= 4 else { throw .tooShort(f.count) }
        guard f.count <= ModbusLimits.maxFrameBytes else { throw .tooLong(f.count) }
        try checkCRC(f)
        if let forAddress, f[0] != forAddress { throw .unexpectedAddress(expected: forAddress, received: f[0]) }
        guard let function = ModbusFunction(rawValue: f[1]) else { throw .unsupportedFunction(f[1]) }
        guard f.count == 8 else { throw .lengthMismatch(expectedBytes: 4, receivedBytes: f.count - 4) }
        let start = UInt16(f[2]) << 8 | UInt16(f[3])
        let count = UInt16(f[4]) << 8 | UInt16(f[5])
        do {
            return try ReadRequest(address: f[0], function: function, start: start, count: count)
        } catch {
            throw .lengthMismatch(expectedBytes: 2 * Int(ModbusLimits.maxRegistersPerRead), receivedBytes: 2 * Int(count))
        }
    }

    /// For the log: `address 1 input 0x0048+2`.
    public var description: String {
        "address \(address) \(function == .readInputRegisters ? "input" : "holding") \(hex16(start))+\(count)"
    }
}

/// What a server answered to a read.
public enum ReadResponse: Equatable, Sendable {
    /// The registers asked for, in order.
    case registers([UInt16])
    /// The server refused the request.
    case exception(ModbusException)

    /// The answer to `request` in `frame`, checked in order: length bounds, CRC, address,
    /// function, then the byte count against the request and the frame's length.
    public static func decode(_ frame: some Collection<UInt8>, for request: ReadRequest) throws(ModbusDecodeError) -> ReadResponse {
        let f = Array(frame)
        guard f.count >= 5 else { throw .tooShort(f.count) }
        guard f.count <= ModbusLimits.maxFrameBytes else { throw .tooLong(f.count) }
        try checkCRC(f)
        guard f[0] == request.address else { throw .unexpectedAddress(expected: request.address, received: f[0]) }
        let function = request.function.rawValue
        if f[1] == function | 0x80 {
            guard f.count == 5 else { throw .lengthMismatch(expectedBytes: 1, receivedBytes: f.count - 4) }
            return .exception(ModbusException(code: f[2]))
        }
        guard f[1] == function else { throw .unexpectedFunction(expected: function, received: f[1]) }
        let expected = 2 * Int(request.count)
        guard Int(f[2]) == expected, f.count == 5 + expected else {
            throw .lengthMismatch(expectedBytes: expected, receivedBytes: max(Int(f[2]), f.count - 5))
        }
        var registers: [UInt16] = []
        registers.reserveCapacity(Int(request.count))
        for i in 0..<Int(request.count) { registers.append(UInt16(f[3 + 2 * i]) << 8 | UInt16(f[4 + 2 * i])) }
        return .registers(registers)
    }

    /// The frame a server sends for this answer to `request` (meter-sim's side). Registers must
    /// number `request.count` (a simulator fault may break that on purpose: the bytes follow the
    /// registers given, at most 125).
    public func encode(for request: ReadRequest) -> [UInt8] {
        switch self {
        case .exception(let e):
            return CRC16Modbus.appending(to: [request.address, request.function.rawValue | 0x80, e.code])
        case .registers(let values):
            let regs = values.prefix(Int(ModbusLimits.maxRegistersPerRead))
            var body: [UInt8] = [request.address, request.function.rawValue, UInt8(2 * regs.count)]
            for r in regs { body.append(UInt8(r >> 8)); body.append(UInt8(r & 0xFF)) }
            return CRC16Modbus.appending(to: body)
        }
    }
}

func checkCRC(_ f: [UInt8]) throws(ModbusDecodeError) {
    let computed = CRC16Modbus.checksum(f.dropLast(2))
    let received = UInt16(f[f.count - 2]) | UInt16(f[f.count - 1]) << 8
    guard computed == received else { throw .crcMismatch(computed: computed, received: received) }
}
