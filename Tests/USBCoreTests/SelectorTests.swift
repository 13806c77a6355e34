import Testing
import Timebase
import USBCore

@Suite struct SelectorTests {
    static func path(_ text: String) -> USBPortPath { try! USBPortPath.parse(text) }
    static func device(_ vid: UInt16, _ pid: UInt16, _ serial: String?, _ port: String) -> USBDeviceIdentity {
        USBDeviceIdentity(vendorID: vid, productID: pid, serial: serial, portPath: path(port), speed: .full, address: 5)
    }

    @Test func vendorProductAndSerialParse() throws {
        #expect(try USBSelector.parse("0403:6001") == .identity(vendorID: 0x0403, productID: 0x6001, serial: nil))
        #expect(try USBSelector.parse("0403:6001:FT1ABC") == .identity(vendorID: 0x0403, productID: 0x6001, serial: "FT1ABC"))
        #expect(try USBSelector.parse("1D6B:0aBc") == .identity(vendorID: 0x1D6B, productID: 0x0ABC, serial: nil))
        // Everything after the second colon is the serial, colons included.
        #expect(try USBSelector.parse("0403:6001:A:B") == .identity(vendorID: 0x0403, productID: 0x6001, serial: "A:B"))
    }

    @Test func portPathsParse() throws {
        #expect(try USBSelector.parse("1-1.2") == .port(USBPortPath(bus: 1, ports: [1, 2])!))
        #expect(try USBSelector.parse("3-4") == .port(USBPortPath(bus: 3, ports: [4])!))
        #expect(try USBSelector.parse("255-1.2.3.4.5.6.7") == .port(USBPortPath(bus: 255, ports: [1, 2, 3, 4, 5, 6, 7])!))
    }

    @Test func badValuesAreRefusedWithTheirReason() {
        let cases: [(String, USBSelectorError)] = [
            ("", .empty),
            ("ttyUSB0", .unrecognised("ttyUSB0")),
            ("403:6001", .badVendorID("403")),
            ("0403:60011", .badProductID("60011")),
            ("04g3:6001", .badVendorID("04g3")),
            ("0403:", .badProductID("")),
            ("0403:6001:", .emptySerial),
            ("0403:6001:A B", .serialCharacter(0x20)),
            ("0403:6001:" + String(repeating: "x", count: 127), .serialTooLong(127)),
            ("1-", .badPortPath("1-")),
            ("1-1..2", .badPortPath("1-1..2")),
            ("01-1", .badPortPath("01-1")),
            ("1-+1", .badPortPath("1-+1")),
            ("0-1", .portNumberOutOfRange("0-1")),
            ("1-256", .portNumberOutOfRange("1-256")),
            ("1-0.2", .portNumberOutOfRange("1-0.2")),
            ("1-1.2.3.4.5.6.7.8", .portPathTooDeep(8)),
        ]
        for (text, expected) in cases {
            #expect(throws: expected, "\(text)") { try USBSelector.parse(text) }
        }
    }

    @Test func theConfigurationFormRoundTrips() throws {
        var random = SeededGenerator(seed: 0x17_05B)
        for _ in 0..<500 {
            let selector: USBSelector
            if random.next() % 2 == 0 {
                let serialLength = Int(random.next() % 12)
                let serial = serialLength == 0 ? nil : String(decoding: (0..<serialLength).map { _ in UInt8(0x21 + random.next() % 94) }, as: UTF8.self)
                selector = .identity(vendorID: UInt16(truncatingIfNeeded: random.next()), productID: UInt16(truncatingIfNeeded: random.next()), serial: serial)
            } else {
                let depth = 1 + Int(random.next() % 7)
                selector = .port(USBPortPath(bus: UInt8(1 + random.next() % 255), ports: (0..<depth).map { _ in UInt8(1 + random.next() % 255) })!)
            }
            #expect(try USBSelector.parse(selector.description) == selector, "seed 0x1705B: \(selector)")
        }
    }

    @Test func matchingByIdentitySerialAndPort() {
        let a = Self.device(0x0403, 0x6001, "FTA", "1-1.2")
        let b = Self.device(0x0403, 0x6001, "FTB", "1-1.3")
        let acm = Self.device(0x1FC9, 0x0083, nil, "2-1")
        let all = [a, b, acm]
        #expect(USBSelector.identity(vendorID: 0x0403, productID: 0x6001, serial: "FTB").select(from: all) == .found(b))
        #expect(USBSelector.port(Self.path("1-1.2")).select(from: all) == .found(a))
        #expect(USBSelector.identity(vendorID: 0x1FC9, productID: 0x0083, serial: nil).select(from: all) == .found(acm))
        #expect(USBSelector.identity(vendorID: 0x0403, productID: 0x6001, serial: nil).select(from: all) == .ambiguous([a, b]))
        #expect(USBSelector.identity(vendorID: 0x0403, productID: 0x6001, serial: "FTC").select(from: all) == .absent)
        // A device without a readable serial never matches a selector that names one.
        #expect(USBSelector.identity(vendorID: 0x1FC9, productID: 0x0083, serial: "X").select(from: all) == .absent)
        #expect(USBSelector.port(Self.path("1-1")).select(from: all) == .absent, "a hub's port is not its child's")
    }

    @Test func identityDescriptionIsWhatLsusbShows() {
        #expect(Self.device(0x0403, 0x6001, "FTA", "1-1.2").description == "0403:6001 serial FTA at 1-1.2 (12 Mbit/s)")
        #expect(USBSpeed(sysfsMegabits: "480") == .high)
        #expect(USBSpeed(sysfsMegabits: "1.5") == .low)
        #expect(USBSpeed(sysfsMegabits: "7") == .unknown)
    }
}
