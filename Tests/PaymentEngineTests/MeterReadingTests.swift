import PaymentEngine
import Testing
import Timebase

// Issue 16: a connector whose meter named itself gets its start and end register written
// ahead with the meter's serial, so a capture can be explained; one whose meter never did
// (the simulated charger, the controller's socket) gets no such entries.
@Suite struct MeterReadingTests {
    private func readings(_ d: Harness) -> [LedgerEntry] {
        d.ledger.filter { if case .meterReading = $0 { return true }; return false }
    }

    @Test func startBeforeTheRelayClosesAndEndBeforeStopped() throws {
        var d = try readyHarness(config(tariff: energyOnly))
        d.send(.meterIdentity(connector: 0, serial: "SDM630-0042"))
        d.send(.meter(connector: 0, registerWh: 1_000_000))
        let k = try d.approvedSession(card(1), ref: 7_001)
        // The start reading is durable with `charging`, before the relay is told to close.
        #expect(d.send(.plug(connector: 0, pluggedIn: true)).fx == [
            .persist(.charging(k, at: d.wall)),
            .persist(.meterReading(k, .start, registerWh: 1_000_000, meterSerial: "SDM630-0042", at: d.wall)),
            .relay(0, close: true)])
        d.send(.meter(connector: 0, registerWh: 1_010_000))   // 10 kWh: 4.00 EUR
        let fx = d.send(.plug(connector: 0, pluggedIn: false)).fx
        #expect(fx == [.relay(0, close: false),
                       .persist(.meterReading(k, .end, registerWh: 1_010_000, meterSerial: "SDM630-0042", at: d.wall)),
                       .persist(.stopped(k, reason: .unplugged, energyWh: 10_000, seconds: 0, at: d.wall)),
                       .persist(.captureRequested(k, amount: 400)),
                       .cmd(.capture(7_001, amount: 400, reserved: 5_000))])
        // The capture is the tariff on end less start, and the summary says so.
        let summary = SessionSummary.summarise(d.ledger).first { $0.session == k }
        #expect(summary?.registerStartWh == 1_000_000 && summary?.registerEndWh == 1_010_000 && summary?.meterSerial == "SDM630-0042")
    }

    @Test func withoutAReadingBeforeTheCloseTheFirstAfterItIsTheStart() throws {
        var d = try readyHarness(config(tariff: energyOnly))
        d.send(.meterIdentity(connector: 0, serial: "B23-7"))
        let k = try d.approvedSession(card(1), ref: 7_001)
        #expect(d.send(.plug(connector: 0, pluggedIn: true)).fx == [.persist(.charging(k, at: d.wall)), .relay(0, close: true)])
        let first = d.send(.meter(connector: 0, registerWh: 500)).fx
        #expect(first.contains(.persist(.meterReading(k, .start, registerWh: 500, meterSerial: "B23-7", at: d.wall))))
        d.send(.meter(connector: 0, registerWh: 2_500))
        d.send(.operatorStop(connector: 0))
        #expect(readings(d) == [.meterReading(k, .start, registerWh: 500, meterSerial: "B23-7", at: d.wall),
                                .meterReading(k, .end, registerWh: 2_500, meterSerial: "B23-7", at: d.wall)])
    }

    @Test func aMeterThatNeverNamedItselfWritesNoReadings() throws {
        var (d, _) = try chargingHarness(config(tariff: energyOnly))
        d.send(.meter(connector: 0, registerWh: 0))
        d.send(.meter(connector: 0, registerWh: 5_000))
        d.send(.plug(connector: 0, pluggedIn: false))
        #expect(readings(d).isEmpty)
    }

    @Test func aLongSerialIsCutAndTheEntryRoundTrips() throws {
        var d = try readyHarness(config(tariff: energyOnly))
        d.send(.meterIdentity(connector: 0, serial: String(repeating: "9", count: 100)))
        d.send(.meter(connector: 0, registerWh: 7))
        let k = try d.approvedSession(card(1), ref: 7_001)
        d.send(.plug(connector: 0, pluggedIn: true))
        guard case let .meterReading(_, _, _, serial, _)? = readings(d).first else { Issue.record("no start reading"); return }
        #expect(serial.utf8.count == PaymentEngine.maxMeterSerialBytes)
        for e in [LedgerEntry.meterReading(k, .start, registerWh: 7, meterSerial: serial, at: 1),
                  .meterReading(k, .end, registerWh: .max, meterSerial: "", at: -1)] {
            #expect(e.kind == 18)
            let body = e.encodeBody()
            #expect(try LedgerEntry.decode(kind: 18, body: body) == e)
            for cut in 0..<body.count {
                #expect(throws: EntryDecodeError.truncated) { try LedgerEntry.decode(kind: 18, body: Array(body[..<cut])) }
            }
        }
        var bad = LedgerEntry.meterReading(k, .start, registerWh: 7, meterSerial: "x", at: 1).encodeBody()
        bad[8] = 3
        #expect(throws: EntryDecodeError.badValue("meter reading role")) { try LedgerEntry.decode(kind: 18, body: bad) }
    }
}
