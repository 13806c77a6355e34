import Testing
import PaymentEngine

/// The ledger entries' binary bodies: round trips, exact layout, truncation, unknown kinds.
@Suite struct EntryCodecTests {
    static let card = CardIdentity(maskedPAN: "476173******0119", hash: [0xDE, 0xAD, 0xBE, 0xEF, 0x00, 0xFF], brand: "VISA")
    static let tariff = Tariff(currency: "EUR", startFee: 50, energyPricePerKWh: 39_900, timePricePerMinute: 1_500)

    /// At least one value of every case, with edge values (empty and non-ASCII strings,
    /// extreme integers, nil and non-nil optionals, every stop reason).
    static let samples: [LedgerEntry] = {
        var s: [LedgerEntry] = [
            .authRequested(1, connector: 0, amount: 5_000, card: card, tariff: tariff, at: 1_764_000_000_000),
            .authRequested(.max, connector: EngineConfig.maxConnectors - 1, amount: .max,
                           card: CardIdentity(maskedPAN: "", hash: [], brand: ""),
                           tariff: Tariff(currency: "", startFee: .min, energyPricePerKWh: .max, timePricePerMinute: -1), at: .min),
            .authRequested(7, connector: 3, amount: 0, card: CardIdentity(maskedPAN: "5413******0004", hash: Array(0...255), brand: "Carte Bancaire ✓ €"),
                           tariff: Tariff(currency: "CHF"), at: 0),
            .approved(2, handle: 7_001, authorised: 5_000, pspRef: Array("REF7001".utf8), at: 1_764_000_001_000),
            .approved(0, handle: TerminalHandle(reference: .max), authorised: 0, pspRef: [], at: -1),
            .approved(1, handle: TerminalHandle(bytes: Array(repeating: 0xFF, count: TerminalHandle.maxBytes), label: "ZVT receipt 9999 trace 999999")!,
                      authorised: 1, pspRef: Array("x".utf8), at: 5),
            .declined(3, reason: nil, at: 42),
            .declined(3, reason: 0, at: 42),
            .declined(3, reason: 255, at: .max),
            .abandoned(4, at: 1_764_000_000_500),
            .charging(5, at: 1_764_000_002_000),
            .meter(5, energyWh: 1_234, seconds: 1_800),
            .meter(5, energyWh: .min, seconds: .max),
            .captureRequested(5, amount: 144),
            .captureRequested(5, amount: -2),
            .captured(5, amount: 144, at: 1_764_000_003_000),
            .voidRequested(6),
            .voided(6, at: 1_764_000_004_000),
            .needsReconciliation(8, note: "capture answered 'session not found' — check with the acquirer"),
            .needsReconciliation(8, note: ""),
        ]
        for reason in StopReason.allCases {
            s.append(.stopped(9, reason: reason, energyWh: 1_234, seconds: 1_800, at: 1_764_000_002_500))
        }
        return s
    }()

    @Test func samplesCoverEveryKindAndKindsAreStable() {
        // The kinds are on disk: they must never change.
        let expected: [(LedgerEntry, UInt16)] = [
            (.authRequested(1, connector: 0, amount: 0, card: Self.card, tariff: Self.tariff, at: 0), 1),
            (.approved(1, handle: 0, authorised: 0, pspRef: [], at: 0), 13),
            (.declined(1, reason: nil, at: 0), 3),
            (.abandoned(1, at: 0), 4),
            (.charging(1, at: 0), 5),
            (.meter(1, energyWh: 0, seconds: 0), 6),
            (.stopped(1, reason: .unplugged, energyWh: 0, seconds: 0, at: 0), 7),
            (.captureRequested(1, amount: 0), 8),
            (.captured(1, amount: 0, at: 0), 9),
            (.voidRequested(1), 10),
            (.voided(1, at: 0), 11),
            (.needsReconciliation(1, note: ""), 12),
        ]
        for (entry, kind) in expected { #expect(entry.kind == kind, "\(entry)") }
        // Kind 2 (an approval in format 1) is read, never written.
        #expect(Set(Self.samples.map(\.kind)) == Set(1...13).subtracting([2]))
        #expect(StopReason.allCases.map(\.rawValue) == [1, 2, 3, 4, 5, 6, 7, 8])
    }

    @Test(arguments: samples)
    func roundTrips(_ entry: LedgerEntry) throws {
        let body = entry.encodeBody()
        let back = try LedgerEntry.decode(kind: entry.kind, body: body)
        #expect(back == entry)
        #expect(back.session == entry.session)
        #expect(back.encodeBody() == body)
    }

    @Test(arguments: samples)
    func everyTruncationThrowsTruncated(_ entry: LedgerEntry) {
        let body = entry.encodeBody()
        #expect(body.count >= 8)
        for cut in 0..<body.count {
            #expect(throws: EntryDecodeError.truncated, "\(entry) cut at \(cut) of \(body.count)") {
                try LedgerEntry.decode(kind: entry.kind, body: Array(body[..<cut]))
            }
        }
    }

    @Test func aLengthPrefixBeyondTheBodyIsTruncatedNotACrash() {
        // needsReconciliation: key then a string whose length says 2^32-1 bytes.
        let body: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 8, 0xFF, 0xFF, 0xFF, 0xFF, 0x41]
        #expect(throws: EntryDecodeError.truncated) { try LedgerEntry.decode(kind: 12, body: body) }
        // approved: a pspRef length one past the end.
        var a = LedgerEntry.approved(2, handle: 1, authorised: 1, pspRef: [1, 2, 3], at: 9).encodeBody()
        // key 8, handle 4 + 4, label 4 + 1, authorised 8: the pspRef length is bytes 29…32.
        a[32] = 12   // 12, but only 3 + 8 bytes follow
        #expect(throws: EntryDecodeError.truncated) { try LedgerEntry.decode(kind: 13, body: a) }
    }

    @Test func unknownKindsThrowUnknownKind() {
        let body = LedgerEntry.voided(6, at: 1).encodeBody()
        for kind: UInt16 in [0, 14, 99, 0x7FFF, .max] {
            #expect(throws: EntryDecodeError.unknownKind(kind)) { try LedgerEntry.decode(kind: kind, body: body) }
        }
        // A body that is just a session key is enough to learn the kind is unknown.
        #expect(throws: EntryDecodeError.unknownKind(14)) { try LedgerEntry.decode(kind: 14, body: [0, 0, 0, 0, 0, 0, 0, 1]) }
    }

    @Test func unknownKindWithAShortBodyIsReportedAsUnknownKind() {
        // A record of a newer format should be reported as such whatever its body; decode reads
        // the session key before looking at the kind, so a short body reports `.truncated`.
        #expect(throws: EntryDecodeError.unknownKind(14)) { try LedgerEntry.decode(kind: 14, body: []) }
        #expect(throws: EntryDecodeError.unknownKind(200)) { try LedgerEntry.decode(kind: 200, body: [1, 2, 3]) }
    }

    @Test func badStopReasonIsABadValue() {
        var body = LedgerEntry.stopped(9, reason: .unplugged, energyWh: 1, seconds: 2, at: 3).encodeBody()
        for raw: UInt8 in [0, 9, 255] {
            body[8] = raw
            #expect(throws: EntryDecodeError.badValue("stop reason")) { try LedgerEntry.decode(kind: 7, body: body) }
        }
    }

    // MARK: exact layout (big-endian, u32-length-prefixed byte strings)

    @Test func layoutIsBigEndianAndLengthPrefixed() throws {
        #expect(LedgerEntry.captureRequested(0x0102_0304_0506_0708, amount: -2).encodeBody()
                == [1, 2, 3, 4, 5, 6, 7, 8, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE])
        #expect(LedgerEntry.voidRequested(1).encodeBody() == [0, 0, 0, 0, 0, 0, 0, 1])
        // Format 2 (kind 13): the handle's bytes and label, each length-prefixed.
        #expect(LedgerEntry.approved(2, handle: 0x0A0B_0C0D, authorised: 5_000, pspRef: [0xAB], at: 1).encodeBody()
                == [0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 4, 0x0A, 0x0B, 0x0C, 0x0D] + [0, 0, 0, 9] + Array("168496141".utf8)
                    + [0, 0, 0, 0, 0, 0, 0x13, 0x88, 0, 0, 0, 1, 0xAB, 0, 0, 0, 0, 0, 0, 0, 1])
        // Format 1 (kind 2), as earlier releases wrote it: a 32-bit reference, read as that handle.
        let v1: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 2, 0x0A, 0x0B, 0x0C, 0x0D, 0, 0, 0, 0, 0, 0, 0x13, 0x88, 0, 0, 0, 1, 0xAB,
                           0, 0, 0, 0, 0, 0, 0, 1]
        #expect(try LedgerEntry.decode(kind: 2, body: v1) == .approved(2, handle: 0x0A0B_0C0D, authorised: 5_000, pspRef: [0xAB], at: 1))
        #expect(LedgerEntry.declined(3, reason: nil, at: 0).encodeBody() == [0, 0, 0, 0, 0, 0, 0, 3, 0, 0] + Array(repeating: 0, count: 8))
        #expect(LedgerEntry.declined(3, reason: 5, at: 0).encodeBody() == [0, 0, 0, 0, 0, 0, 0, 3, 1, 5] + Array(repeating: 0, count: 8))
        #expect(LedgerEntry.stopped(4, reason: .costLimit, energyWh: 1, seconds: 2, at: 3).encodeBody()
                == [0, 0, 0, 0, 0, 0, 0, 4, 3] + [0, 0, 0, 0, 0, 0, 0, 1] + [0, 0, 0, 0, 0, 0, 0, 2] + [0, 0, 0, 0, 0, 0, 0, 3])
        #expect(LedgerEntry.needsReconciliation(5, note: "é").encodeBody() == [0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 2, 0xC3, 0xA9])
        let auth = LedgerEntry.authRequested(6, connector: 2, amount: 5_000, card: CardIdentity(maskedPAN: "4*", hash: [9], brand: "V"),
                                             tariff: Tariff(currency: "EUR", startFee: 1, energyPricePerKWh: 2, timePricePerMinute: 3), at: 4)
        let i64: (Int64) -> [UInt8] = { v in (0..<8).map { UInt8(truncatingIfNeeded: v >> (56 - 8 * Int64($0))) } }
        #expect(auth.encodeBody() == i64(6) + [2] + i64(5_000) + [0, 0, 0, 2, 0x34, 0x2A] + [0, 0, 0, 1, 9] + [0, 0, 0, 1, 0x56]
                + [0, 0, 0, 3, 0x45, 0x55, 0x52] + i64(1) + i64(2) + i64(3) + i64(4))
    }

    @Test func sessionAndClosesSession() {
        for e in Self.samples {
            switch e {
            case .declined, .abandoned, .captured, .voided, .needsReconciliation: #expect(e.closesSession, "\(e)")
            default: #expect(!e.closesSession, "\(e)")
            }
        }
        #expect(LedgerEntry.meter(77, energyWh: 1, seconds: 1).session == 77)
        #expect(LedgerEntry.voidRequested(.max).session == .max)
        #expect(LedgerEntry.stopped(12, reason: .fault, energyWh: 0, seconds: 0, at: 0).session == 12)
    }
}
