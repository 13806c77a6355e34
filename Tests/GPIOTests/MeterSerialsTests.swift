import GPIOCharger
import Testing

@Suite struct MeterSerialsTests {
    @Test func aSerialThatChangesWhileChargingIsRejectedAndTheFirstStays() {
        var m = MeterSerials(connectors: 2)
        #expect(m.check(connector: 0, serial: "SDM-1", charging: false) == .same)
        #expect(m.check(connector: 0, serial: "SDM-1", charging: true) == .same)
        #expect(m.check(connector: 0, serial: "SDM-2", charging: true) == .changedWhileCharging(expected: "SDM-1"))
        #expect(m.check(connector: 0, serial: "SDM-2", charging: true) == .changedWhileCharging(expected: "SDM-1"))
        #expect(m.serials == ["SDM-1", nil])
        // No serial given: nothing to compare, nothing adopted.
        #expect(m.check(connector: 0, serial: nil, charging: true) == .same)
        // The other connector has its own meter.
        #expect(m.check(connector: 1, serial: "SDM-2", charging: true) == .same)
    }

    @Test func aNewSerialBetweenSessionsIsAReplacedMeter() {
        var m = MeterSerials(connectors: 1)
        _ = m.check(connector: 0, serial: "A", charging: false)
        #expect(m.check(connector: 0, serial: "B", charging: false) == .replaced(previous: "A"))
        #expect(m.check(connector: 0, serial: "B", charging: true) == .same)
        #expect(m.check(connector: 0, serial: "A", charging: true) == .changedWhileCharging(expected: "B"))
    }

    @Test func aLongSerialIsComparedOnItsPrefixAndAnUnknownConnectorIsIgnored() {
        var m = MeterSerials(connectors: 1)
        let long = String(repeating: "9", count: 200)
        _ = m.check(connector: 0, serial: long, charging: false)
        #expect(m.serials[0]?.utf8.count == MeterSerials.maxSerialBytes)
        #expect(m.check(connector: 0, serial: long + "x", charging: true) == .same)
        #expect(m.check(connector: 5, serial: "Z", charging: true) == .same)
    }
}
