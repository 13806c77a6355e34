import Testing
import USBDevices

@Suite struct USBErrorTests {
    @Test func codesMapAndNameTheirCall() {
        #expect(USBError(call: "libusb_open", returned: -3).code == .access)
        #expect(USBError(call: "libusb_open", returned: -4).description == "libusb_open: LIBUSB_ERROR_NO_DEVICE")
        #expect(USBError(call: "x", returned: -42).code == .other, "a code newer than the enum")
    }
}
