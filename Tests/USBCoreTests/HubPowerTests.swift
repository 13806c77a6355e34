import Testing
import USBCore

@Suite struct HubPowerTests {
    /// A 4-port USB 2.0 hub descriptor: 9 bytes, type 0x29, 4 ports, characteristics, 50 × 2 ms, 100 mA, removable, power mask.
    static func descriptor(characteristics: UInt16, type: UInt8 = 0x29) -> [UInt8] {
        [9, type, 4, UInt8(characteristics & 0xFF), UInt8(characteristics >> 8), 50, 100, 0x00, 0xFF]
    }

    @Test func theSwitchingModeIsBitsOneAndZero() {
        #expect(USBHubPower.parse(hubDescriptor: Self.descriptor(characteristics: 0x00E0))?.switching == .ganged)
        #expect(USBHubPower.parse(hubDescriptor: Self.descriptor(characteristics: 0x00E9))?.switching == .individual, "over-current bits do not matter")
        #expect(USBHubPower.parse(hubDescriptor: Self.descriptor(characteristics: 0x0002))?.switching == USBHubPower.Switching.none)
        #expect(USBHubPower.parse(hubDescriptor: Self.descriptor(characteristics: 0x0003))?.switching == USBHubPower.Switching.none)
        #expect(USBHubPower.parse(hubDescriptor: Self.descriptor(characteristics: 0x0001, type: 0x2A))?.switching == .individual, "USB 3 hubs too")
        let facts = USBHubPower.parse(hubDescriptor: Self.descriptor(characteristics: 0x0001))
        #expect(facts?.ports == 4)
        #expect(facts?.powerOnToGoodMilliseconds == 100)
    }

    @Test func otherDescriptorsAndShortOnesAreRefused() {
        #expect(USBHubPower.parse(hubDescriptor: Self.descriptor(characteristics: 1, type: 0x02)) == nil)
        #expect(USBHubPower.parse(hubDescriptor: Array(Self.descriptor(characteristics: 1).prefix(6))) == nil)
        #expect(USBHubPower.parse(hubDescriptor: [20] + Self.descriptor(characteristics: 1).dropFirst()) == nil, "bLength beyond the bytes")
    }

    @Test func portPowerRequestsAreClassRequestsToTheOtherRecipient() {
        #expect(USBHubPower.powerOff(port: 2).setupAndData == [0x23, 0x01, 0x08, 0x00, 0x02, 0x00, 0x00, 0x00])
        #expect(USBHubPower.powerOn(port: 2).setupAndData == [0x23, 0x03, 0x08, 0x00, 0x02, 0x00, 0x00, 0x00])
        #expect(USBHubPower.getHubDescriptor(superSpeed: false).setupAndData == [0xA0, 0x06, 0x00, 0x29, 0x00, 0x00, 71, 0x00])
        #expect(USBHubPower.getHubDescriptor(superSpeed: true).value == 0x2A00)
    }
}
