import Testing
import JSONLines
import PaymentEngine
import StationReports
import Timebase

/// Rows over the diagnostic socket (JSON, lossless) and as `paybridgectl sessions` prints them.
@Suite struct SessionRowJSONTests {
    static func randomRow(_ g: inout SeededGenerator) -> SessionRow {
        func maybe(_ v: Int64) -> Int64? { Bool.random(using: &g) ? v : nil }
        func text() -> String {
            let alphabet = Array("aZ9 ,\"\\\n\r\t=é€-*")
            return String((0..<Int.random(in: 0...12, using: &g)).map { _ in alphabet.randomElement(using: &g)! })
        }
        var r = SessionRow(session: SessionKey.random(in: 0...UInt64(Int64.max), using: &g), state: SessionState.allCases.randomElement(using: &g)!)
        r.transactionId = Bool.random(using: &g) ? text() : nil
        r.connector = Bool.random(using: &g) ? Int.random(in: 1...8, using: &g) : nil
        r.startedAt = maybe(Int64.random(in: .min ... .max, using: &g))
        r.endedAt = maybe(Int64.random(in: .min ... .max, using: &g))
        r.maskedPAN = text(); r.brand = text(); r.terminalReference = text(); r.paymentReference = text()
        r.authorised = maybe(Int64.random(in: .min ... .max, using: &g))
        r.captured = maybe(Int64.random(in: .min ... .max, using: &g))
        r.currency = text()
        r.currencyExponent = Int.random(in: 0...3, using: &g)
        r.energyWh = maybe(Int64.random(in: .min ... .max, using: &g))
        r.note = text()
        r.outcome = Bool.random(using: &g) ? SessionOutcome.allCases.randomElement(using: &g) : nil
        return r
    }

    @Test(arguments: Seeds.sample(4))
    func rowsRoundTripThroughJSONText(seed: UInt64) throws {
        var g = Seeds.generator(seed, "row JSON round trip")
        for _ in 0..<300 {
            let r = Self.randomRow(&g)
            let back = try SessionRow(json: JSON.parse(r.json.text))
            #expect(back == r, "seed \(seed)")
        }
    }

    @Test func damagedRowsAreRefusedWithTheKey() throws {
        var r = SessionRow(session: 3, state: .settled)
        r.connector = 1
        r.outcome = .captured
        guard case .object(let fields) = r.json else { Issue.record("not an object"); return }
        func without(_ key: String) -> JSON { .object(fields.filter { $0.0 != key }) }
        func with(_ key: String, _ v: JSON) -> JSON { .object(fields.map { $0.0 == key ? (key, v) : $0 }) }
        #expect(throws: SessionRowDecodeError.notAnObject) { try SessionRow(json: .array([])) }
        #expect(throws: SessionRowDecodeError.missing("note")) { try SessionRow(json: without("note")) }
        #expect(throws: SessionRowDecodeError.badValue("state")) { try SessionRow(json: with("state", .string("lost"))) }
        #expect(throws: SessionRowDecodeError.badValue("session")) { try SessionRow(json: with("session", .int(-1))) }
        #expect(throws: SessionRowDecodeError.badValue("connector")) { try SessionRow(json: with("connector", .int(0))) }
        #expect(throws: SessionRowDecodeError.badValue("start_ms")) { try SessionRow(json: with("start_ms", .string("1"))) }
        #expect(throws: SessionRowDecodeError.badValue("currency_exponent")) { try SessionRow(json: with("currency_exponent", .int(40))) }
        #expect(throws: SessionRowDecodeError.badValue("outcome")) { try SessionRow(json: with("outcome", .string("captured"))) }
        #expect(throws: SessionRowDecodeError.badValue("transaction_id")) { try SessionRow(json: with("transaction_id", .int(1))) }
        #expect(try SessionRow(json: r.json) == r)
    }

    @Test func theSessionsTable() {
        let t0: Int64 = 1_796_450_462_000   // 2026-12-05T06:01:02Z
        var closed = SessionRow(session: 7, state: .needsReconciliation)
        closed.transactionId = "CP-7-7"
        closed.connector = 2; closed.startedAt = t0; closed.endedAt = t0 + 192_000
        closed.maskedPAN = "476173******0119"; closed.brand = "VISA"
        closed.authorised = 5_000; closed.captured = 1_234; closed.currency = "EUR"; closed.energyWh = 1_234
        closed.note = "capture unanswered\nlook"
        var open = SessionRow(session: 8, state: .charging)
        open.connector = 1; open.startedAt = t0 + 60_000; open.authorised = 500; open.currency = "JPY"; open.currencyExponent = 0
        let deciding = SessionRow(session: 9, state: .deciding)
        let text = SessionTable.table([closed, open, deciding], now: t0 + 60_000 + 7_500_000).render()
        #expect(text == """
            SESSION  CONN  STATE                 STARTED               DURATION  CARD              BRAND  AUTHORISED   CAPTURED  ENERGY_WH  NOTE
            CP-7-7      2  needs-reconciliation  2026-12-05T06:01:02Z     3m12s  476173******0119  VISA    50.00 EUR  12.34 EUR       1234  capture unanswered look
            8           1  charging              2026-12-05T06:02:02Z     2h05m                              500 JPY
            9              deciding

            """)
    }
}
