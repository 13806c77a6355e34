import Testing
import Timebase
import USBCore

@Suite struct FTDIBaudTests {
    /// wValue/wIndex for the common rates: AN232B-05's divisor rule (3 MHz / (n + k/8), the
    /// sub-integer codes 0, 3, 2, 4, 1, 5, 6, 7 for k = 0…7, 0 and 1 meaning 3 and 2 MBd);
    /// the same values the FTDI drivers send.
    @Test(arguments: [
        (UInt32(300), UInt16(0x2710), UInt16(0)), (600, 0x1388, 0), (1200, 0x09C4, 0), (2400, 0x04E2, 0), (4800, 0x0271, 0),
        (9600, 0x4138, 0), (19200, 0x809C, 0), (38400, 0xC04E, 0), (57600, 0xC034, 0), (115200, 0x001A, 0),
        (230400, 0x000D, 0), (460800, 0x4006, 0), (921600, 0x8003, 0), (2_000_000, 0x0001, 0), (3_000_000, 0x0000, 0),
        // 3 MHz / 100.375: the sub-integer code 4 needs wIndex bit 0.
        (29888, 0x0064, 1),
    ])
    func divisorTable(baud: UInt32, value: UInt16, index: UInt16) throws {
        let d = try FTDIBaud.divisor(for: baud)
        #expect(d.value == value, "baud \(baud)")
        #expect(d.index == index, "baud \(baud)")
    }

    @Test func actualRatesAreReported() throws {
        #expect(try FTDIBaud.divisor(for: 57600).actualBaud == 57553)
        #expect(try FTDIBaud.divisor(for: 115200).actualBaud == 115384)
        #expect(try FTDIBaud.divisor(for: 9600).actualBaud == 9600)
    }

    @Test func ratesNoDivisorReachesAreRefused() {
        for baud: UInt32 in [0, 100, 170, 1_750_000, 2_500_000, 4_000_000] {
            #expect(throws: USBSerialError.unsupportedBaud(baud)) { try FTDIBaud.divisor(for: baud) }
        }
    }

    /// Decoding the encoding gives the divisor the actual rate came from, and that rate is within 3 %.
    @Test func everyAcceptedDivisorIsConsistentAndClose() {
        let eighthsOfCode: [UInt32: UInt32] = [0: 0, 3: 1, 2: 2, 4: 3, 1: 4, 5: 5, 6: 6, 7: 7]
        var random = SeededGenerator(seed: 0xF7D1)
        for _ in 0..<5000 {
            let baud = UInt32(183 + random.next() % 3_000_000)
            guard let d = try? FTDIBaud.divisor(for: baud) else {
                // Only above 1.4 MBd are neighbouring divisors more than 6 % apart (down to 3/8 of
                // 3 MHz between 2 and 3 MBd, where nothing exists): below, the nearest is within 3 %.
                #expect(baud > 1_400_000, "seed 0xF7D1: \(baud) refused")
                continue
            }
            let encoded = UInt32(d.value) | UInt32(d.index) << 16
            let eighths: UInt32 = switch encoded {
            case 0: 8
            case 1: 12
            default: (encoded & 0x3FFF) * 8 + eighthsOfCode[encoded >> 14]!
            }
            #expect(d.actualBaud == 24_000_000 / eighths, "seed 0xF7D1: \(baud)")
            let error = d.actualBaud > baud ? d.actualBaud - baud : baud - d.actualBaud
            #expect(UInt64(error) * 1000 <= UInt64(baud) * 30, "seed 0xF7D1: \(baud)")
        }
    }
}

@Suite struct FTDIRequestTests {
    @Test func requestsAreVendorOutWithTheirFields() throws {
        #expect(FTDI.reset(.sio).setupAndData == [0x40, 0, 0, 0, 0, 0, 0, 0])
        #expect(FTDI.reset(.purgeRX).setupAndData == [0x40, 0, 1, 0, 0, 0, 0, 0])
        #expect(FTDI.reset(.purgeTX).setupAndData == [0x40, 0, 2, 0, 0, 0, 0, 0])
        #expect(FTDI.modemControl(dtr: true, rts: false).setupAndData == [0x40, 1, 0x01, 0x03, 0, 0, 0, 0])
        #expect(FTDI.modemControl(dtr: true, rts: true).setupAndData == [0x40, 1, 0x03, 0x03, 0, 0, 0, 0])
        #expect(try FTDI.setBaudRate(57600).setupAndData == [0x40, 3, 0x34, 0xC0, 0, 0, 0, 0])
        #expect(try FTDI.setData(SerialLineSettings(baud: 57600)).setupAndData == [0x40, 4, 0x08, 0x00, 0, 0, 0, 0])
        #expect(try FTDI.setData(SerialLineSettings(baud: 9600, dataBits: 7, parity: .even, stopBits: .two)).setupAndData == [0x40, 4, 0x07, 0x12, 0, 0, 0, 0])
        #expect(try FTDI.setData(SerialLineSettings(baud: 9600), breakOn: true).value == 0x4008)
        #expect(FTDI.setLatencyTimer(milliseconds: 2).setupAndData == [0x40, 9, 2, 0, 0, 0, 0, 0])
        #expect(FTDI.setEventCharacter(0x03, enabled: true).setupAndData == [0x40, 6, 0x03, 0x01, 0, 0, 0, 0])
        #expect(FTDI.setEventCharacter(0x03, enabled: false).value == 0x0003)
        #expect(throws: USBSerialError.unsupportedDataBits(5)) { try FTDI.setData(SerialLineSettings(baud: 9600, dataBits: 5)) }
    }

    @Test func bringUpResetsConfiguresThenPurges() throws {
        let requests = try FTDI.bringUp(SerialLineSettings(baud: 57600), latencyMilliseconds: 2)
        #expect(requests.map(\.request) == [0, 1, 2, 3, 4, 9, 0, 0])
        #expect(requests.last.map(\.value) == 2)
    }
}

@Suite struct FTDIStripTests {
    @Test func statusBytesAreStrippedFromEveryPacket() {
        // Three packets at full speed: 64, 64 and a short 6.
        var transfer: [UInt8] = [0x01, 0x60] + Array(0..<62)
        transfer += [0x11, 0x60] + Array(62..<124)
        transfer += [0x01, 0x62] + Array(124..<128)
        let (payload, statuses, truncated) = FTDIPacketStripper.strip(transfer, maxPacketSize: 64)
        #expect(payload == Array(0..<128))
        #expect(statuses.map(\.modem) == [0x01, 0x11, 0x01])
        #expect(statuses.map(\.hasLineError) == [false, false, true], "0x62 carries an overrun")
        #expect(!truncated)
    }

    @Test func anEmptyPacketIsOnlyStatus() {
        let (payload, statuses, _) = FTDIPacketStripper.strip([0x01, 0x60], maxPacketSize: 64)
        #expect(payload.isEmpty)
        #expect(statuses.count == 1)
    }

    @Test func aOneBytePacketIsReportedTruncated() {
        let (payload, _, truncated) = FTDIPacketStripper.strip([0x01, 0x60, 7, 8, 0x01], maxPacketSize: 4)
        #expect(payload == [7, 8])
        #expect(truncated)
    }

    /// Random payloads cut into packets of random fill at both packet sizes come back whole.
    @Test func randomPacketsRoundTrip() {
        var random = SeededGenerator(seed: 0x5747)
        for _ in 0..<500 {
            let size = random.next() % 2 == 0 ? 64 : 512
            var transfer: [UInt8] = []
            var expected: [UInt8] = []
            let packets = 1 + Int(random.next() % 8)
            for index in 0..<packets {
                // Every packet but the last is full: the chip ends a transfer with its short packet.
                let fill = index == packets - 1 ? Int(random.next() % UInt64(size - 1)) : size - 2
                let data = (0..<fill).map { _ in UInt8(truncatingIfNeeded: random.next()) }
                transfer += [0x01, 0x60] + data
                expected += data
            }
            let (payload, statuses, truncated) = FTDIPacketStripper.strip(transfer, maxPacketSize: size)
            #expect(payload == expected, "seed 0x5747")
            #expect(statuses.count == packets, "seed 0x5747")
            #expect(!truncated)
        }
    }
}

@Suite struct CDCACMTests {
    @Test func lineCodingIsSevenLittleEndianBytes() throws {
        let r = try CDCACM.setLineCoding(SerialLineSettings(baud: 115200), interface: 0)
        #expect(r.setupAndData == [0x21, 0x20, 0, 0, 0, 0, 7, 0, 0x00, 0xC2, 0x01, 0x00, 0, 0, 8])
        let odd = try CDCACM.setLineCoding(SerialLineSettings(baud: 9600, dataBits: 7, parity: .odd, stopBits: .two), interface: 2)
        #expect(odd.setupAndData == [0x21, 0x20, 0, 0, 2, 0, 7, 0, 0x80, 0x25, 0, 0, 2, 1, 7])
        #expect(throws: USBSerialError.unsupportedDataBits(9)) { try CDCACM.setLineCoding(SerialLineSettings(baud: 9600, dataBits: 9), interface: 0) }
    }

    @Test func controlLineStateCarriesDTRAndRTS() {
        #expect(CDCACM.setControlLineState(dtr: true, rts: true, interface: 0).setupAndData == [0x21, 0x22, 3, 0, 0, 0, 0, 0])
        #expect(CDCACM.setControlLineState(dtr: true, rts: false, interface: 1).setupAndData == [0x21, 0x22, 1, 0, 1, 0, 0, 0])
        #expect(CDCACM.setControlLineState(dtr: false, rts: false, interface: 0).value == 0)
    }

    @Test func bringUpCodesTheLineThenRaisesDTR() throws {
        #expect(try CDCACM.bringUp(SerialLineSettings(baud: 57600), interface: 0).map(\.request) == [0x20, 0x22])
    }
}
