import Testing

/// libusb enumeration, identity matching and the tty lookup against umockdev's testbed
/// (Tests/Fixtures/usb/terminals.umockdev: a hub at 1-1 with two FT232R adapters, serials
/// FTA1 at 1-1.2 → ttyUSB0 and FTB2 at 1-1.3 → ttyUSB1, and a CDC-ACM device at 1-4 → ttyACM0).
@Suite(.enabled(if: umockdevRun != nil, "umockdev-run is not installed (apt-get install umockdev): the libusb tests against fake devices are skipped"))
struct UmockdevTests {
    @Test func libusbEnumeratesPortsSpeedsAndSysfsSerials() throws {
        let (status, lines) = try probeUnderUmockdev("terminals.umockdev", ["list"])
        #expect(status == 0)
        #expect(lines == [
            "05e3:0608 port=1-1 serial=- speed=480 address=2",
            "0403:6001 port=1-1.2 serial=FTA1 speed=12 address=5",
            "0403:6001 port=1-1.3 serial=FTB2 speed=12 address=6",
            "1fc9:0083 port=1-4 serial=- speed=12 address=7",
        ])
    }

    @Test func sysfsAloneSeesTheSameDevices() throws {
        let viaSysfs = try probeUnderUmockdev("terminals.umockdev", ["sysfs-list"])
        let viaLibusb = try probeUnderUmockdev("terminals.umockdev", ["list"])
        #expect(viaSysfs.status == 0)
        #expect(viaSysfs.lines == viaLibusb.lines)
        #expect(viaSysfs.lines.count == 4)
    }

    @Test(arguments: [
        ("0403:6001:FTB2", ["found 0403:6001 port=1-1.3 serial=FTB2 speed=12 address=6", "tty /dev/ttyUSB1 interface=1-1.3:1.0"]),
        ("0403:6001:FTA1", ["found 0403:6001 port=1-1.2 serial=FTA1 speed=12 address=5", "tty /dev/ttyUSB0 interface=1-1.2:1.0"]),
        ("1-1.2", ["found 0403:6001 port=1-1.2 serial=FTA1 speed=12 address=5", "tty /dev/ttyUSB0 interface=1-1.2:1.0"]),
        ("1fc9:0083", ["found 1fc9:0083 port=1-4 serial=- speed=12 address=7", "tty /dev/ttyACM0 interface=1-4:1.0"]),
        ("1-4", ["found 1fc9:0083 port=1-4 serial=- speed=12 address=7", "tty /dev/ttyACM0 interface=1-4:1.0"]),
        ("1-1", ["found 05e3:0608 port=1-1 serial=- speed=480 address=2", "tty none (no driver bound)"]),
        ("0403:6001:FTC3", ["absent"]),
        ("1-2", ["absent"]),
    ])
    func aSelectorFindsItsDeviceAndTheTTYTheKernelBound(selector: String, expected: [String]) throws {
        let (status, lines) = try probeUnderUmockdev("terminals.umockdev", ["select", selector])
        #expect(status == 0)
        #expect(lines == expected)
    }

    @Test func twoIdenticalAdaptersWithoutASerialAreNotChosenBetween() throws {
        let (status, lines) = try probeUnderUmockdev("terminals.umockdev", ["select", "0403:6001"])
        #expect(status == 0)
        #expect(lines.count == 1)
        #expect(lines.first.map { $0.hasPrefix("ambiguous ") && $0.split(separator: " ").dropFirst().sorted() == ["1-1.2", "1-1.3"] } == true, "\(lines)")
    }
}
