import JSONLines
import Testing
import Timebase
import Uplink

/// `transactionLimit.maxCost` of a TransactionEventResponse, read exactly into minor units and
/// rounded down; the transaction id back to its session.
@Suite struct TransactionLimitReading {
    static func read(_ json: String, _ currency: String = "EUR") throws -> TransactionLimit.Reading {
        TransactionLimit.maxCost(inResponse: try JSON.parse(json), currency: currency)
    }

    @Test func majorUnitsBecomeMinorUnitsRoundedDown() throws {
        #expect(try Self.read(#"{"transactionLimit":{"maxCost":12.34}}"#) == .maxCost(1_234))
        #expect(try Self.read(#"{"transactionLimit":{"maxCost":12}}"#) == .maxCost(1_200))
        #expect(try Self.read(#"{"transactionLimit":{"maxCost":12.349}}"#) == .maxCost(1_234))
        #expect(try Self.read(#"{"transactionLimit":{"maxCost":0.009}}"#) == .maxCost(0))
        #expect(try Self.read(#"{"transactionLimit":{"maxCost":0}}"#) == .maxCost(0))
        #expect(try Self.read(#"{"transactionLimit":{"maxCost":-0.0}}"#) == .maxCost(0))
        #expect(try Self.read(#"{"transactionLimit":{"maxCost":1.5e1}}"#) == .maxCost(1_500))
        #expect(try Self.read(#"{"transactionLimit":{"maxCost":125E-2}}"#) == .maxCost(125))
        #expect(try Self.read(#"{"transactionLimit":{"maxCost":1e-5}}"#) == .maxCost(0))
        // The currency's own exponent: yen have none, dinars three.
        #expect(try Self.read(#"{"transactionLimit":{"maxCost":1500.7}}"#, "JPY") == .maxCost(1_500))
        #expect(try Self.read(#"{"transactionLimit":{"maxCost":1.2345}}"#, "KWD") == .maxCost(1_234))
        // Beyond Int64: no cap it could lower.
        #expect(try Self.read(#"{"transactionLimit":{"maxCost":1e30}}"#) == .maxCost(.max))
        #expect(try Self.read(#"{"transactionLimit":{"maxCost":99999999999999999999}}"#) == .maxCost(.max))
    }

    @Test func absentAndUnreadableLimits() throws {
        #expect(try Self.read(#"{"totalCost":1.5}"#) == .absent)
        #expect(try Self.read(#"{"transactionLimit":{"maxEnergy":1000}}"#) == .absent)
        guard case .unreadable = try Self.read(#"{"transactionLimit":{"maxCost":-1.5}}"#) else { Issue.record("negative read"); return }
        guard case .unreadable = try Self.read(#"{"transactionLimit":{"maxCost":"5.00"}}"#) else { Issue.record("string read"); return }
        guard case .unreadable = try Self.read(#"{"transactionLimit":{"maxCost":1e99999}}"#) else { Issue.record("huge exponent read"); return }
    }

    /// Seeded: any amount of minor units written as the reporter writes amounts reads back as itself,
    /// and one more digit below the last place never rounds it up.
    @Test func writtenAmountsReadBackExactly() throws {
        var rng = SeededGenerator(seed: 0x11_C057)
        for _ in 0..<2_000 {
            let minor = Int64.random(in: 0...10_000_000_000, using: &rng)
            let exp = [0, 2, 3].randomElement(using: &rng)!
            let currency = exp == 0 ? "JPY" : exp == 3 ? "KWD" : "EUR"
            let text = JSON.decimal(minor: minor, exponent: exp).text
            #expect(try Self.read(#"{"transactionLimit":{"maxCost":\#(text)}}"#, currency) == .maxCost(minor), "\(text) \(currency)")
            let more = text.contains(".") ? text + "9" : text + ".9"
            #expect(try Self.read(#"{"transactionLimit":{"maxCost":\#(more)}}"#, currency) == .maxCost(minor), "\(more) \(currency)")
        }
    }

    @Test func aTransactionIdNamesItsSession() {
        let r = TransactionReporter(stationId: "CS-0001")
        #expect(r.session(ofTransactionId: r.transactionId(42)) == 42)
        #expect(r.session(ofTransactionId: "CS-0001-7") == 7)
        #expect(r.session(ofTransactionId: "CS-0002-7") == nil)
        #expect(r.session(ofTransactionId: "CS-0001-") == nil)
        #expect(r.session(ofTransactionId: "CS-0001-x") == nil)
        #expect(r.session(ofTransactionId: "CS-0001-007") == nil)
        let long = TransactionReporter(stationId: String(repeating: "S", count: 30))
        #expect(long.session(ofTransactionId: long.transactionId(123)) == 123)
    }
}
