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

    /// What the recovery does: open the selected device and reset its port (umockdev accepts the
    /// reset ioctl; a real re-enumeration is the QEMU guest's to show).
    @Test func theSelectedDeviceIsResetAndAnAbsentOneIsNot() throws {
        let reset = try probeUnderUmockdev("terminals.umockdev", ["reset", "0403:6001:FTB2"])
        #expect(reset.status == 0)
        #expect(reset.lines == ["reset 1-1.3"])
        let absent = try probeUnderUmockdev("terminals.umockdev", ["reset", "0403:6001:NOPE"])
        #expect(absent.status == 1)
        #expect(absent.lines.isEmpty)
    }

    @Test func twoIdenticalAdaptersWithoutASerialAreNotChosenBetween() throws {
        let (status, lines) = try probeUnderUmockdev("terminals.umockdev", ["select", "0403:6001"])
        #expect(status == 0)
        #expect(lines.count == 1)
        #expect(lines.first.map { $0.hasPrefix("ambiguous ") && $0.split(separator: " ").dropFirst().sorted() == ["1-1.2", "1-1.3"] } == true, "\(lines)")
    }
}

/// Control sequences checked byte for byte: umockdev replays an ioctl record written from the FTDI
/// and CDC documentation (Tests/Fixtures/usb/*.ioctl) and fails any URB whose setup packet or OUT
/// data differs from the record, which libusb reports as LIBUSB_ERROR_IO.
@Suite(.enabled(if: umockdevRun != nil, "umockdev-run is not installed (apt-get install umockdev): the libusb transfer tests are skipped"))
struct UmockdevTransferTests {
    /// USBSerialPort over the FT232R: kernel driver check, claim, the eight bring-up requests
    /// (reset, DTR/RTS, no flow control, 57600 = 0xC034, 8N1, latency 2 ms, purge RX and TX), one
    /// bulk OUT, one bulk IN with its status bytes removed, then close.
    @Test func ft232rBringUpThenBulkOutAndInWithStatusBytesStripped() throws {
        let (status, lines) = try probeUnderUmockdev("terminals.umockdev", ["ftdi", "0403:6001:FTA1", "57600", "0211223303"],
                                                     umockdevArguments: ["--ioctl", "/dev/bus/usb/001/005=" + fixturesDirectory + "/usb/ft232r-bringup-57600.ioctl"])
        #expect(status == 0)
        #expect(lines == ["open in=129 out=2 packet=64", "out 5", "in 06AABB", "closed closed line-errors 0"])
    }

    @Test func anFTDIOverrunIsCountedAndTheDataStillDelivered() throws {
        let (status, lines) = try probeUnderUmockdev("terminals.umockdev", ["ftdi", "0403:6001:FTA1", "57600", "0211223303"],
                                                     umockdevArguments: ["--ioctl", "/dev/bus/usb/001/005=" + fixturesDirectory + "/usb/ft232r-overrun-57600.ioctl"])
        #expect(status == 0)
        #expect(lines == ["open in=129 out=2 packet=64", "out 5", "in 06AABB", "closed closed line-errors 1"])
    }

    @Test func aDifferentBaudIsNotWhatTheRecordSays() throws {
        // 38400 sends the divisor 0xC04E where the record expects 57600's 0xC034.
        let (status, lines) = try probeUnderUmockdev("terminals.umockdev", ["ftdi", "0403:6001:FTA1", "38400", "0211223303"],
                                                     umockdevArguments: ["--ioctl", "/dev/bus/usb/001/005=" + fixturesDirectory + "/usb/ft232r-bringup-57600.ioctl"])
        #expect(status == 1)
        #expect(lines.isEmpty, "the port does not open: \(lines)")
    }

    @Test func cdcACMLineCodingAndControlLineStateThenBulk() throws {
        let (status, lines) = try probeUnderUmockdev("terminals.umockdev", ["cdc", "1fc9:0083", "115200", "0211223303"],
                                                     umockdevArguments: ["--ioctl", "/dev/bus/usb/001/007=" + fixturesDirectory + "/usb/cdc-acm-bringup-115200.ioctl"])
        #expect(status == 0)
        #expect(lines == ["open in=129 out=2 packet=64", "out 5", "in 06AABB", "closed closed line-errors 0"])
    }

    /// The selected device already present is reported once at registration; the other adapter of
    /// the same model is not; the idle loop with libusb's descriptors wakes at most twice a second.
    @Test func hotplugReportsTheSelectedDeviceAndTheLoopStaysIdle() throws {
        let (status, lines) = try probeUnderUmockdev("terminals.umockdev", ["watch", "0403:6001:FTB2", "2"])
        #expect(status == 0)
        #expect(lines.first == "hotplug yes")
        #expect(lines.filter { $0.hasPrefix("arrived") } == ["arrived 0403:6001 port=1-1.3 serial=FTB2 speed=12 address=6"])
        let wakeups = lines.last.flatMap { $0.split(separator: " ").dropFirst().first }.flatMap { Int($0) }
        #expect(wakeups.map { $0 <= 4 } == true, "2 s idle: \(lines)")
    }
}

/// Hotplug through libusb under umockdev's testbed: a device removed with a "remove" uevent and
/// added back with an "add" one (Tests/Scripts/usb-hotplug.py drives the testbed).
@Suite(.enabled(if: umockdevTestbedFromPython, "umockdev-wrapper, /usr/bin/python3 with gi and gir1.2-umockdev-1.0 are needed (apt-get install umockdev python3-gi gir1.2-umockdev-1.0): hotplug is not tested"))
struct UmockdevHotplugTests {
    static let adapterA = "/devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1.2"
    static let adapterB = "/devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1.3"

    @Test func theSelectedDeviceDepartsAndArrivesAgainOnTheLoop() throws {
        let (status, lines) = try probeWithHotplug("terminals.umockdev", unplugging: Self.adapterA, ["watch", "0403:6001:FTA1", "3"])
        #expect(status == 0)
        let a = "0403:6001 port=1-1.2 serial=FTA1 speed=12 address=5"
        #expect(Array(lines.prefix(4)) == ["hotplug yes", "arrived " + a, "departed " + a, "arrived " + a], "\(lines)")
    }

    @Test func anotherAdapterOfTheSameModelLeavingIsNotTheTerminal() throws {
        let (status, lines) = try probeWithHotplug("terminals.umockdev", unplugging: Self.adapterB, ["watch", "0403:6001:FTA1", "2"])
        #expect(status == 0)
        #expect(lines.filter { $0.hasPrefix("departed") }.isEmpty, "\(lines)")
        #expect(lines.filter { $0.hasPrefix("arrived") }.count == 1)
    }
}
