import ModbusRTU
import Testing
import Timebase
import WireFormat

@Suite struct CodecTests {
    static func request(_ a: UInt8 = 1, _ f: ModbusFunction = .readInputRegisters, _ s: UInt16 = 0x48, _ c: UInt16 = 2) -> ReadRequest {
        try! ReadRequest(address: a, function: f, start: s, count: c)
    }

    @Test func aReadRequestIsEncodedAsTheSpecShowsIt() {
        #expect(Self.request(0x11, .readHoldingRegisters, 0x006B, 3).encode() == [0x11, 0x03, 0x00, 0x6B, 0x00, 0x03, 0x76, 0x87])
        let input = Self.request(1, .readInputRegisters, 0x0048, 2).encode()
        #expect(Array(input.prefix(6)) == [0x01, 0x04, 0x00, 0x48, 0x00, 0x02])
        #expect(CRC16Modbus.isValid(input))
    }

    @Test func requestsOutsideTheProtocolAreRefusedBeforeTheBus() {
        #expect(throws: ModbusRequestError.invalidAddress(0)) { try ReadRequest(address: 0, function: .readInputRegisters, start: 0, count: 1) }
        #expect(throws: ModbusRequestError.invalidAddress(248)) { try ReadRequest(address: 248, function: .readInputRegisters, start: 0, count: 1) }
        #expect(throws: ModbusRequestError.invalidCount(0)) { try ReadRequest(address: 1, function: .readInputRegisters, start: 0, count: 0) }
        #expect(throws: ModbusRequestError.invalidCount(126)) { try ReadRequest(address: 1, function: .readInputRegisters, start: 0, count: 126) }
        #expect(throws: ModbusRequestError.rangeBeyondEnd(start: 0xFFFF, count: 2)) { try ReadRequest(address: 1, function: .readHoldingRegisters, start: 0xFFFF, count: 2) }
        #expect((try? ReadRequest(address: 247, function: .readHoldingRegisters, start: 0xFFFE, count: 2)) != nil)
    }

    @Test func registersAreDecodedBigEndian() throws {
        let frame = CRC16Modbus.appending(to: [0x01, 0x04, 0x04, 0x44, 0x79, 0x80, 0x00])
        #expect(try ReadResponse.decode(frame, for: Self.request()) == .registers([0x4479, 0x8000]))
    }

    @Test(arguments: [(UInt8(1), ModbusException.illegalFunction), (2, .illegalDataAddress), (3, .illegalDataValue),
                      (4, .serverDeviceFailure), (6, .serverDeviceBusy), (11, .gatewayTargetFailedToRespond), (5, .unlisted(5))])
    func exceptionResponsesDecodeToTheirCase(code: UInt8, expected: ModbusException) throws {
        let frame = CRC16Modbus.appending(to: [0x01, 0x84, code])
        #expect(try ReadResponse.decode(frame, for: Self.request()) == .exception(expected))
        #expect(expected.code == code)
        #expect(ReadResponse.exception(expected).encode(for: Self.request()) == frame)
    }

    @Test func eachCheckHasItsError() {
        let r = Self.request()
        let good = ReadResponse.registers([1, 2]).encode(for: r)
        #expect(throws: ModbusDecodeError.tooShort(4)) { try ReadResponse.decode(good.prefix(4), for: r) }
        #expect(throws: ModbusDecodeError.tooLong(257)) { try ReadResponse.decode([UInt8](repeating: 0, count: 257), for: r) }
        var damaged = good
        damaged[4] ^= 0x10
        #expect(throws: ModbusDecodeError.crcMismatch(computed: CRC16Modbus.checksum(damaged.dropLast(2)), received: UInt16(good[7]) | UInt16(good[8]) << 8)) {
            try ReadResponse.decode(damaged, for: r)
        }
        let other = ReadResponse.registers([1, 2]).encode(for: Self.request(2))
        #expect(throws: ModbusDecodeError.unexpectedAddress(expected: 1, received: 2)) { try ReadResponse.decode(other, for: r) }
        let holding = ReadResponse.registers([1, 2]).encode(for: Self.request(1, .readHoldingRegisters))
        #expect(throws: ModbusDecodeError.unexpectedFunction(expected: 4, received: 3)) { try ReadResponse.decode(holding, for: r) }
        let three = ReadResponse.registers([1, 2, 3]).encode(for: r)
        #expect(throws: ModbusDecodeError.lengthMismatch(expectedBytes: 4, receivedBytes: 6)) { try ReadResponse.decode(three, for: r) }
        // The byte count says 4, the frame carries 2 data bytes.
        let cut = CRC16Modbus.appending(to: [0x01, 0x04, 0x04, 0x00, 0x01])
        #expect(throws: ModbusDecodeError.lengthMismatch(expectedBytes: 4, receivedBytes: 4)) { try ReadResponse.decode(cut, for: r) }
        let longException = CRC16Modbus.appending(to: [0x01, 0x84, 0x02, 0x00])
        #expect(throws: ModbusDecodeError.lengthMismatch(expectedBytes: 1, receivedBytes: 2)) { try ReadResponse.decode(longException, for: r) }
    }

    @Test func aServerDecodesRequestsAndRefusesOtherFunctions() throws {
        let r = Self.request(7, .readHoldingRegisters, 0xFC00, 2)
        #expect(try ReadRequest.decode(r.encode()) == r)
        #expect(throws: ModbusDecodeError.unexpectedAddress(expected: 8, received: 7)) { try ReadRequest.decode(r.encode(), forAddress: 8) }
        let write = CRC16Modbus.appending(to: [0x07, 0x06, 0x00, 0x01, 0x00, 0x02])
        #expect(throws: ModbusDecodeError.unsupportedFunction(6)) { try ReadRequest.decode(write) }
        let zeroCount = CRC16Modbus.appending(to: [0x07, 0x03, 0x00, 0x01, 0x00, 0x00])
        #expect(throws: ModbusDecodeError.self) { try ReadRequest.decode(zeroCount) }
    }

    @Test(arguments: Seeds.sample(8))
    func requestsAndAnswersRoundTripAndAnyDamagedByteIsCaught(seed: UInt64) throws {
        var g = Seeds.generator(seed, "codec round trip")
        for _ in 0..<300 {
            let count = UInt16.random(in: 1...125, using: &g)
            let r = try ReadRequest(address: UInt8.random(in: 1...247, using: &g),
                                    function: Bool.random(using: &g) ? .readHoldingRegisters : .readInputRegisters,
                                    start: UInt16.random(in: 0...(0xFFFF - count + 1), using: &g), count: count)
            #expect(try ReadRequest.decode(r.encode()) == r, "seed \(seed) \(r)")
            let registers = (0..<Int(count)).map { _ in UInt16.random(in: 0...0xFFFF, using: &g) }
            let frame = ReadResponse.registers(registers).encode(for: r)
            #expect(frame.count == r.responseLength)
            #expect(try ReadResponse.decode(frame, for: r) == .registers(registers), "seed \(seed) \(r)")
            // CRC-16 catches every error confined to 16 bits: any one byte changed is refused.
            var damaged = frame
            let at = Int.random(in: 0..<frame.count, using: &g)
            damaged[at] ^= UInt8.random(in: 1...255, using: &g)
            #expect(throws: ModbusDecodeError.self, "seed \(seed) byte \(at)") { try ReadResponse.decode(damaged, for: r) }
            // Random bytes never trap the decoder.
            let noise = g.bytes(Int.random(in: 0...300, using: &g))
            _ = try? ReadResponse.decode(noise, for: r)
            _ = try? ReadRequest.decode(noise)
        }
    }
}
