import Testing
import PaymentEngine
import TerminalPort
import Timebase
import WireFormat
@testable import TerminalConditions

/// The operating rules alone: inputs with wall-clock times in, effects out.
@Suite struct TerminalConditionsRules {
    static let day: Int64 = 86_400_000
    static let hour: Int64 = 3_600_000
    let t0: Int64 = 1_780_000_000_000
    let apollo = TerminalInventory(serialNumber: "APO-1001", model: "Apollo", firmware: "3.1", simSerial: "8931000000000000001")
    let other = TerminalInventory(serialNumber: "APO-2002", model: "Apollo", firmware: "3.1")

    /// The records an effect list persists, as the ledger would hold them.
    static func records(_ fx: [TerminalConditions.Effect]) -> [(kind: UInt16, body: [UInt8])] {
        fx.compactMap { if case let .persist(k, b) = $0 { return (k, b) }; return nil }
    }

    static func events(_ fx: [TerminalConditions.Effect]) -> [String] {
        fx.compactMap { if case let .securityEvent(type, _) = $0 { return type }; return nil }
    }

    /// A station that has seen `apollo` up at `t0` and kept every record it wrote.
    func running() -> (TerminalConditions, [(kind: UInt16, body: [UInt8])]) {
        var c = TerminalConditions()
        var ledger: [(kind: UInt16, body: [UInt8])] = []
        ledger += Self.records(c.handle(.started(wallMillis: t0)))
        ledger += Self.records(c.handle(.linkUp(wallMillis: t0)))
        ledger += Self.records(c.handle(.identified(apollo, wallMillis: t0)))
        return (c, ledger)
    }

    @Test func theFirstTerminalAFreshLedgerSeesIsRecordedNotASwap() {
        var c = TerminalConditions()
        _ = c.handle(.started(wallMillis: t0))
        _ = c.handle(.linkUp(wallMillis: t0))
        let fx = c.handle(.identified(apollo, wallMillis: t0))
        #expect(c.known == apollo)
        #expect(Self.records(fx).count == 1)
        #expect(Self.events(fx).isEmpty)
        #expect(!fx.contains { if case .blockPayments = $0 { return true }; return false })
        #expect(c.paymentsBlockedReason == nil)
        #expect(c.warnings.isEmpty)
    }

    @Test func anotherSerialNumberIsASwapThatBlocksPaymentsUntilAccepted() {
        var (c, _) = running()
        let fx = c.handle(.identified(other, wallMillis: t0 + 10))
        #expect(Self.events(fx) == [TerminalConditions.EventType.replaced])
        guard let block = fx.firstIndex(where: { if case .blockPayments = $0 { return true }; return false }),
              let persist = fx.firstIndex(where: { if case .persist = $0 { return true }; return false }) else {
            Issue.record("no block or no record: \(fx)"); return
        }
        #expect(persist < block)
        #expect(c.paymentsBlockedReason?.contains("APO-2002") == true)
        #expect(c.warnings.count == 1)
        #expect(c.known == apollo, "the trusted terminal stays until accepted")

        // Identified again (each bring-up): no second event, no second record.
        let again = c.handle(.identified(other, wallMillis: t0 + 20))
        #expect(again.isEmpty, "\(again)")

        let accept = c.handle(.accepted(wallMillis: t0 + 30))
        guard let unblock = accept.firstIndex(of: .unblockPayments),
              let record = accept.firstIndex(where: { if case .persist = $0 { return true }; return false }) else {
            Issue.record("accept did not record and unblock: \(accept)"); return
        }
        #expect(record < unblock, "the acceptance is recorded before payments resume")
        #expect(c.known == other)
        #expect(c.paymentsBlockedReason == nil)
        #expect(c.warnings.isEmpty)
    }

    @Test func theOldTerminalComingBackDoesNotClearASwapWithoutAcceptance() {
        var (c, _) = running()
        _ = c.handle(.identified(other, wallMillis: t0 + 10))
        let back = c.handle(.identified(apollo, wallMillis: t0 + 20))
        #expect(Self.events(back).isEmpty)
        #expect(c.paymentsBlockedReason != nil)
        _ = c.handle(.accepted(wallMillis: t0 + 30))
        #expect(c.known == apollo)
        #expect(c.paymentsBlockedReason == nil)
    }

    @Test func theSameTerminalWithNewFirmwareIsAnInventoryUpdateNotASwap() {
        var (c, _) = running()
        var updated = apollo
        updated.firmware = "3.2"
        let fx = c.handle(.identified(updated, wallMillis: t0 + 10))
        #expect(Self.events(fx).isEmpty)
        #expect(Self.records(fx).count == 1)
        #expect(c.known?.firmware == "3.2")
        #expect(c.paymentsBlockedReason == nil)
    }

    @Test func aSecurityAlertBlocksPaymentsSendsOneEventAndIsClearedByAcceptance() {
        var (c, _) = running()
        let fx = c.handle(.securityAlert("tamper: payment application refused Enable", wallMillis: t0 + 5))
        #expect(Self.events(fx) == [TerminalConditions.EventType.tamper])
        #expect(fx.contains { if case .blockPayments = $0 { return true }; return false })
        #expect(c.paymentsBlockedReason?.contains("security alert") == true)
        #expect(c.handle(.securityAlert("tamper: payment application refused Enable", wallMillis: t0 + 6)).isEmpty)
        let accept = c.handle(.accepted(wallMillis: t0 + 7))
        #expect(accept.contains(.unblockPayments))
        #expect(c.paymentsBlockedReason == nil)
        #expect(c.alert == nil)
    }

    @Test func aSwapAndAnAlertTogetherBlockOnceAndUnblockOnce() {
        var (c, _) = running()
        var all = c.handle(.identified(other, wallMillis: t0 + 1))
        all += c.handle(.securityAlert("security violation", wallMillis: t0 + 2))
        #expect(all.filter { if case .blockPayments = $0 { return true }; return false }.count == 1)
        #expect(c.warnings.first?.contains("security violation") == true)
        #expect(c.handle(.accepted(wallMillis: t0 + 3)).filter { $0 == .unblockPayments }.count == 1)
    }

    @Test func lastSeenIsWrittenAtMostOncePerIntervalNeverPerRefresh() {
        var (c, _) = running()
        var written = 0
        // A refresh every minute for three hours.
        for m in 1...180 { written += Self.records(c.handle(.stillUp(wallMillis: t0 + Int64(m) * 60_000))).count }
        #expect(written == 3, "one record per hour, got \(written)")
        #expect(c.lastSeenUpMillis == t0 + 180 * 60_000)
    }

    @Test func aLinkGoingDownRecordsLastSeenButAFlappingLinkDoesNotWriteAtEveryFlap() {
        var (c, _) = running()
        let down = c.handle(.linkDown(wallMillis: t0 + 2 * Self.hour))
        #expect(Self.records(down).count == 1)
        var written = 0
        for s in 1...30 {
            let at = t0 + 2 * Self.hour + Int64(s) * 2000
            written += Self.records(c.handle(.linkUp(wallMillis: at))).count
            written += Self.records(c.handle(.linkDown(wallMillis: at + 1000))).count
        }
        #expect(written <= 1, "a flap every 2 s for a minute wrote \(written) records")
    }

    @Test func anApolloAwayForMoreThanTheBatteryDaysIsWarnedAndTheCloudHearsOnce() {
        var (c, _) = running()
        _ = c.handle(.linkDown(wallMillis: t0))
        let early = c.handle(.timePassed(wallMillis: t0 + 80 * Self.day))
        #expect(Self.events(early).isEmpty, "exactly 80 days is not more than 80")
        #expect(!c.batteryWarning)
        let late = c.handle(.timePassed(wallMillis: t0 + 80 * Self.day + Self.hour))
        #expect(Self.events(late) == [TerminalConditions.EventType.battery])
        #expect(Self.records(late).count == 1, "the notice being sent is recorded, so a restart does not send it again")
        #expect(c.warnings.contains { $0.contains("charge it and check it for tampering") })
        #expect(c.paymentsBlockedReason == nil, "the battery rule warns; it does not block")
        let later = c.handle(.timePassed(wallMillis: t0 + 81 * Self.day))
        #expect(Self.events(later).isEmpty)
        // Back up: the warning goes, and a later absence is told again.
        _ = c.handle(.linkUp(wallMillis: t0 + 82 * Self.day))
        #expect(!c.batteryWarning)
        #expect(!c.batteryNoticeSent)
    }

    @Test func aRestartAfterTheBatteryNoticeDoesNotSendItAgain() {
        var (c, ledger) = running()
        ledger += Self.records(c.handle(.linkDown(wallMillis: t0)))
        ledger += Self.records(c.handle(.timePassed(wallMillis: t0 + 90 * Self.day)))
        var again = TerminalConditions(records: ledger)
        let fx = again.handle(.started(wallMillis: t0 + 91 * Self.day))
        #expect(Self.events(fx).isEmpty)
        #expect(again.batteryWarning)
    }

    @Test func aTerminalWithoutATamperBatteryGetsNoBatteryWarning() {
        var c = TerminalConditions(settings: .init(batteryBacked: false))
        _ = c.handle(.linkUp(wallMillis: t0))
        _ = c.handle(.linkDown(wallMillis: t0))
        #expect(Self.events(c.handle(.timePassed(wallMillis: t0 + 200 * Self.day))).isEmpty)
        #expect(!c.batteryWarning)
    }

    @Test func theBatteryDaysAreASetting() {
        var c = TerminalConditions(settings: .init(batteryWarnDays: 10))
        _ = c.handle(.linkUp(wallMillis: t0))
        _ = c.handle(.linkDown(wallMillis: t0))
        #expect(Self.events(c.handle(.timePassed(wallMillis: t0 + 11 * Self.day))) == [TerminalConditions.EventType.battery])
    }

    @Test func aStartAfterStorageRecommendsATestTransactionUntilOneSucceeds() {
        var (c, ledger) = running()
        ledger += Self.records(c.handle(.linkDown(wallMillis: t0)))
        var restarted = TerminalConditions(records: ledger)
        ledger += Self.records(restarted.handle(.started(wallMillis: t0 + 31 * Self.day)))
        #expect(restarted.recommendsTestTransaction)
        #expect(restarted.warnings.contains { $0.contains("test transaction") })
        _ = restarted.handle(.linkUp(wallMillis: t0 + 31 * Self.day + 1000))
        #expect(restarted.recommendsTestTransaction, "coming up is not a test transaction")

        // A restart before the test keeps the recommendation (it was recorded).
        var again = TerminalConditions(records: ledger)
        _ = again.handle(.started(wallMillis: t0 + 31 * Self.day + 2000))
        #expect(again.recommendsTestTransaction)
        let ok = again.handle(.testTransactionSucceeded(wallMillis: t0 + 31 * Self.day + 3000))
        #expect(Self.records(ok).count == 1)
        #expect(!again.recommendsTestTransaction)
        #expect(again.warnings.isEmpty)
    }

    @Test func aClockNotYetSetIsNeitherRecordedNorJudged() {
        // Booted without a real-time clock: 1970 until NTP steps the clock to now.
        var c = TerminalConditions()
        _ = c.handle(.started(wallMillis: 5_000))
        _ = c.handle(.linkUp(wallMillis: 6_000))
        _ = c.handle(.identified(apollo, wallMillis: 6_000))
        _ = c.handle(.linkDown(wallMillis: 7_000))
        #expect(c.lastSeenUpMillis == nil)
        let fx = c.handle(.timePassed(wallMillis: t0))
        #expect(Self.events(fx).isEmpty, "decades 'away' by a clock step is no battery notice")
        #expect(!c.batteryWarning)
        _ = c.handle(.linkUp(wallMillis: t0 + 1))
        #expect(!c.recommendsTestTransaction)
        #expect(c.lastSeenUpMillis == t0 + 1)
        #expect(c.known == apollo)
    }

    @Test func aStartWithinTheStorageDaysRecommendsNothing() {
        var (c, ledger) = running()
        ledger += Self.records(c.handle(.linkDown(wallMillis: t0)))
        var restarted = TerminalConditions(records: ledger)
        _ = restarted.handle(.started(wallMillis: t0 + 30 * Self.day))
        #expect(!restarted.recommendsTestTransaction)
    }

    @Test func recoveryKeepsTheTrustedTerminalAndAPendingSwap() {
        var (c, ledger) = running()
        ledger += Self.records(c.handle(.identified(other, wallMillis: t0 + 10)))
        let back = TerminalConditions(records: ledger)
        #expect(back.known == apollo)
        #expect(back.swap?.reported == other)
        #expect(back.paymentsBlockedReason != nil, "a restart must not enable payments on a swapped terminal")
        #expect(back.generation == c.generation)
        // The next record after recovery is a newer generation than any on disk.
        var next = back
        let fx = next.handle(.accepted(wallMillis: t0 + 20))
        let gen = Self.records(fx).compactMap { TerminalConditions.generation(kind: $0.kind, body: $0.body) }.first
        #expect(gen == c.generation + 1)
    }

    @Test func recoveryTakesTheNewestGenerationWhateverTheOrder() {
        var (c, ledger) = running()
        ledger += Self.records(c.handle(.securityAlert("tamper", wallMillis: t0 + 1)))
        // Compaction relocates older records after newer ones: order on disk proves nothing.
        let back = TerminalConditions(records: ledger.reversed())
        #expect(back.alert?.text == "tamper")
    }

    @Test func garbageRecordsAreCountedNotTrustedAndNeverTrap() {
        var (c, ledger) = running()
        ledger += Self.records(c.handle(.linkDown(wallMillis: t0 + 5 * Self.hour)))
        let good = ledger.last!.body
        let seed = UInt64(0xC0_FFEE)
        var rng = SeededGenerator(seed: seed)
        var garbage: [(kind: UInt16, body: [UInt8])] = [(TerminalConditions.recordKind, []), (TerminalConditions.recordKind, [9]),
                                                         (TerminalConditions.recordKind, good + [0]), (TerminalConditions.recordKind, Array(good.dropLast()))]
        for _ in 0..<2000 {
            var b = good
            switch rng.next() % 3 {
            case 0: b[Int(rng.next() % UInt64(b.count))] ^= UInt8(truncatingIfNeeded: rng.next() | 1)
            case 1: b = Array(b.prefix(Int(rng.next() % UInt64(b.count))))
            default: b = (0..<Int(rng.next() % 64)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            }
            garbage.append((TerminalConditions.recordKind, b))
        }
        var unreadable = 0
        for g in garbage {
            do { _ = try Snapshot.decode(kind: g.kind, body: g.body) } catch { unreadable += 1 }
        }
        #expect(unreadable >= 4, "seed \(seed)")
        // Only records that fail to decode count; and none of them can replace the newest good one
        // unless it decodes to a higher generation (a flipped generation byte can).
        let onlyGarbage = TerminalConditions(records: Array(garbage.prefix(4)))
        #expect(onlyGarbage.unreadableRecords == 4)
        #expect(onlyGarbage.known == nil)
        let mixed = TerminalConditions(records: ledger + Array(garbage.prefix(4)))
        #expect(mixed.known == apollo, "seed \(seed)")
        #expect(mixed.lastSeenUpMillis == t0 + 5 * Self.hour)
        #expect(throws: ConditionRecordError.unknownKind(14)) { try Snapshot.decode(kind: 14, body: good) }
        var wrongFormat = good
        wrongFormat[0] = 2
        #expect(throws: ConditionRecordError.unsupportedFormat(2)) { try Snapshot.decode(kind: TerminalConditions.recordKind, body: wrongFormat) }
    }

    @Test func recordsRoundTripEveryField() throws {
        let s = Snapshot(generation: 42, known: apollo, lastSeenUp: t0, swap: .init(expected: apollo, reported: other, at: t0 + 1),
                         alert: .init(text: "tamper ✓", at: t0 + 2), recommendsTest: true, batteryNoticeSent: true)
        #expect(try Snapshot.decode(kind: TerminalConditions.recordKind, body: s.encodeBody()) == s)
        let empty = Snapshot(generation: 1, known: nil, lastSeenUp: nil, swap: nil, alert: nil, recommendsTest: false, batteryNoticeSent: false)
        #expect(try Snapshot.decode(kind: TerminalConditions.recordKind, body: empty.encodeBody()) == empty)
    }

    /// An ICCID is a Luhn-valid run of 19–20 digits: on disk as text it would read as a card
    /// number to any scan (and to the card-data rule), so digits are packed, never ASCII.
    @Test func noStringLeavesADigitRunInTheRecord() throws {
        let p6x = TerminalInventory(serialNumber: "2301000123456789", model: nil, firmware: "P6X 2.4.1",
                                    simSerial: "8931440000000000042", samSerials: ["0102030405060708", "A1B2C3D4E5F60718"])
        let s = Snapshot(generation: 7, known: p6x, lastSeenUp: nil, swap: .init(expected: p6x, reported: apollo, at: t0),
                         alert: .init(text: "refused Setup at 20260101000000000 (0x0E)", at: t0), recommendsTest: false, batteryNoticeSent: false)
        let body = s.encodeBody()
        var run = 0, longest = 0
        for b in body { run = (0x30...0x39).contains(b) ? run + 1 : 0; longest = max(longest, run) }
        #expect(longest < 4, "a run of \(longest) ASCII digits in the record")
        #expect(try Snapshot.decode(kind: TerminalConditions.recordKind, body: body) == s)
        // A text run holding a digit, or packed digits that are not digits, are refused.
        var w = ByteWriter()
        w.u8(1); w.u8(Snapshot.RunKind.text); w.u8(2); w.append(Array("a1".utf8))
        var r = Snapshot.Reader(r: ByteReader(w.bytes[...]))
        #expect(throws: ConditionRecordError.badValue(field: "t")) { try r.string("t") }
        var v = ByteWriter()
        v.u8(1); v.u8(Snapshot.RunKind.digits); v.u8(2); v.u8(0x1A)
        var q = Snapshot.Reader(r: ByteReader(v.bytes[...]))
        #expect(throws: ConditionRecordError.badValue(field: "t")) { try q.string("t") }
    }

    @Test func anOverlongInventoryIsCutToWhatTheRecordHolds() {
        var c = TerminalConditions()
        let long = TerminalInventory(serialNumber: String(repeating: "9", count: 500), samSerials: Array(repeating: "S", count: 9))
        let fx = c.handle(.identified(long, wallMillis: t0))
        let back = TerminalConditions(records: Self.records(fx))
        #expect(back.known?.serialNumber.utf8.count == Snapshot.maxFieldBytes)
        #expect(back.known?.samSerials.count == Snapshot.maxSAMs)
        #expect(back.unreadableRecords == 0)
        // The same terminal identifying again is not a swap, though its serial was cut.
        #expect(c.handle(.identified(long, wallMillis: t0 + 1)).isEmpty)
    }

    @Test func compactionKeepsOnlyTheNewestSnapshotAndWhatItCannotRead() {
        var (c, ledger) = running()
        ledger += Self.records(c.handle(.linkDown(wallMillis: t0 + 2 * Self.hour)))
        #expect(ledger.count >= 2)
        let newest = c.generation
        let live = ledger.filter { TerminalConditions.isLive(kind: $0.kind, body: $0.body, newest: newest) == true }
        #expect(live.count == 1)
        #expect(TerminalConditions(records: live) == TerminalConditions(records: ledger))
        #expect(TerminalConditions.isLive(kind: TerminalConditions.recordKind, body: [0xFF], newest: newest) == true)
        #expect(TerminalConditions.isLive(kind: 3, body: [], newest: newest) == nil, "other kinds are not judged here")
    }
}
