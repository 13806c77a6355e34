import ChargerPort
import Foundation
import FakeTerminal
import Ledger
import Platform
import PSPLink
import PSPTerminal
import Testing
import Timebase
import Uplink
@testable import PaymentEngine
@testable import Station
@testable import StationCore

// The station between the engine and a ledger that fails mid-batch: a relay the engine asked
// to open opens, and none closes on a record that is not durable. Real ledger files in a
// temporary directory; the faults come from a LedgerIO that fails chosen calls.

/// The system's ledger I/O, with pwrite and fdatasync failing on demand.
final class SwitchableLedgerIO: LedgerIO {
    let real = SystemLedgerIO()
    var failSync: Int32?
    var failWrite: Int32?
    /// pwrites that still succeed before `failWrite` applies.
    var writesBeforeFailing = 0
    private(set) var syncs = 0
    func mkdir(_ path: String) throws(SystemError) { try real.mkdir(path) }
    func open(_ path: String, flags: Int32, mode: mode_t) throws(SystemError) -> FileDescriptor { try real.open(path, flags: flags, mode: mode) }
    func close(_ fd: FileDescriptor) { real.close(fd) }
    func lockExclusive(_ fd: FileDescriptor) throws(SystemError) { try real.lockExclusive(fd) }
    func listDirectory(_ path: String) throws(SystemError) -> [String] { try real.listDirectory(path) }
    func fileSize(_ fd: FileDescriptor) throws(SystemError) -> Int { try real.fileSize(fd) }
    func pread(_ fd: FileDescriptor, into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws(SystemError) -> Int {
        try real.pread(fd, into: buffer, at: offset)
    }
    func pwrite(_ fd: FileDescriptor, _ bytes: UnsafeRawBufferPointer, at offset: Int) throws(SystemError) -> Int {
        if let e = failWrite {
            if writesBeforeFailing > 0 { writesBeforeFailing -= 1 } else { throw SystemError(call: "pwrite", errno: e) }
        }
        return try real.pwrite(fd, bytes, at: offset)
    }
    func fdatasync(_ fd: FileDescriptor) throws(SystemError) {
        if let e = failSync { throw SystemError(call: "fdatasync", errno: e) }
        syncs += 1
        try real.fdatasync(fd)
    }
    func fsync(_ fd: FileDescriptor) throws(SystemError) { try real.fsync(fd) }
    func ftruncate(_ fd: FileDescriptor, to length: Int) throws(SystemError) { try real.ftruncate(fd, to: length) }
    func fallocate(_ fd: FileDescriptor, length: Int) throws(SystemError) { try real.fallocate(fd, length: length) }
    func dropCache(_ fd: FileDescriptor) { real.dropCache(fd) }
    func link(_ from: String, _ to: String) throws(SystemError) { try real.link(from, to) }
    func rename(_ from: String, _ to: String) throws(SystemError) { try real.rename(from, to) }
    func unlink(_ path: String) throws(SystemError) { try real.unlink(path) }
}

/// Relays that remember each command with the number of fdatasyncs done before it.
final class RecordingRelays: ChargerPort {
    var onInputs: ([EngineInput]) -> Void = { _ in }
    var closed = [Bool](repeating: false, count: 4)
    private(set) var commands: [(connector: Int, close: Bool, syncsBefore: Int)] = []
    let io: SwitchableLedgerIO
    init(io: SwitchableLedgerIO) { self.io = io }
    func setRelay(connector: Int, closed c: Bool) {
        closed[connector] = c
        commands.append((connector, c, io.syncs))
    }
    func show(connector: Int, _ offer: PaymentEngine.ConnectorOffer) {}
}

final class QuietUplink: UplinkTransport {
    func send(_ message: OutboxMessage, completion: @escaping (DeliveryResult) -> Void) {}
}

final class SilentDecider: CardDecider {
    func decide(session: SessionKey, card: CardIdentity, connector: Int, reply: @escaping (CardDecision) -> Void) {}
}

@Suite(.serialized) struct StationLedgerFailure {
    /// An engine with `tariffs.count` approved sessions on connectors 0, 1, …, plugged in and
    /// charging when `charging`, and the entries it wrote on the way.
    func engine(tariffs: [Tariff?], charging: Bool, start: Instant) -> (PaymentEngine, [LedgerEntry]) {
        var config = EngineConfig()
        config.connectors = tariffs.count
        config.tariff = Tariff(currency: "EUR", energyPricePerKWh: 40_000)
        var e = PaymentEngine(config: config)
        var t = start
        var entries: [LedgerEntry] = []
        func at() -> Moment { Moment(monotonic: t, wallMillis: 1_700_000_000_000 + Int64(t.milliseconds)) }
        func keep(_ fx: [EngineEffect]) -> [EngineEffect] {
            for f in fx { if case .persist(let x) = f { entries.append(x) } }
            return fx
        }
        _ = keep(e.handle(.terminal(.ready([])), at: at()))
        for (i, tariff) in tariffs.enumerated() {
            t = t + .seconds(1)
            _ = keep(e.handle(.terminal(.cancelled), at: at()))
            t = t + .seconds(1)
            let fx = keep(e.tick(at: at()))
            guard let arm = fx.compactMap({ f -> (CommandID, TerminalCommand)? in
                if case let .terminal(id, cmd) = f, case .arm = cmd { return (id, cmd) } else { return nil }
            }).first else { fatalError("the engine did not arm the terminal: \(fx)") }
            _ = keep(e.handle(.terminal(.completed(arm.0, arm.1, .ok)), at: at()))
            _ = keep(e.handle(.terminal(.cardRead(CardIdentity(maskedPAN: "412345******000\(i)", hash: [UInt8(i + 1)]))), at: at()))
            let k = e.sessions.keys.max()!
            _ = keep(e.handle(.cloud(k, CardDecision(allowed: true, tariff: tariff)), at: at()))
            _ = keep(e.handle(.terminal(.approved(TerminalHandle(reference: UInt32(100 + i)), amount: 5000, pspRef: [])), at: at()))
            if charging { _ = keep(e.handle(.plug(connector: i, pluggedIn: true), at: at())) }
        }
        return (e, entries)
    }

    func station(_ engine: PaymentEngine, io: SwitchableLedgerIO, uplink: UplinkTransport?) throws -> (Station, RecordingRelays) {
        let dir = NSTemporaryDirectory() + "station-ledger-failure-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let loop = try EventLoop()
        let ledger = try Ledger.open(directory: dir, options: LedgerOptions(), io: io).ledger
        // A terminal that stays silent: these tests are about the ledger and the relays.
        let relays = RecordingRelays(io: io)
        for (i, c) in engine.relayCommands.enumerated() { relays.closed[i] = c }
        let s = Station(loop: loop, engine: engine, ledger: ledger, terminal: FakeTerminal(), charger: relays,
                        decider: SilentDecider(), uplink: uplink)
        return (s, relays)
    }

    /// One approved session (charging when `charging`) on a station with an uplink, its reporter
    /// primed with the session's entries, after one input: its status records wait for a sync.
    func reportingStation(charging: Bool) throws -> (Station, RecordingRelays, SwitchableLedgerIO) {
        let (engine, entries) = engine(tariffs: [nil], charging: charging, start: MonotonicClock.now())
        let io = SwitchableLedgerIO()
        let (st, relays) = try station(engine, io: io, uplink: QuietUplink())
        for e in entries { _ = st.core.reporter.messages(for: e, offline: false, now: 0) }
        st.post(.engine(.acceptNewSessions(true)))
        return (st, relays, io)
    }

    /// Two cars charging; in one tick session 0's meter record is due and session 1 reaches its
    /// cost cap. The disk is full: the meter record's append fails. Session 1's relay must
    /// still open, and session 0's too (nothing more can be recorded).
    @Test func aFailedAppendStillOpensTheRelaysAskedForInTheSameBatch() throws {
        let start = MonotonicClock.now() + .seconds(-120)
        let pricey = Tariff(currency: "EUR", timePricePerMinute: 10_000_000)
        let (engine, _) = engine(tariffs: [nil, pricey], charging: true, start: start)
        #expect(engine.relayCommands == [true, true])
        let io = SwitchableLedgerIO()
        let (st, relays) = try station(engine, io: io, uplink: nil)
        io.failWrite = ENOSPC
        st.post(.tick)
        #expect(st.ledgerError != nil)
        #expect(relays.closed[0] == false && relays.closed[1] == false, "relays \(relays.commands)")
        #expect(!relays.commands.contains { $0.close })
    }

    /// Status records wait for a deferred sync; the car unplugs; the sync the relay's open
    /// would wait for fails (EIO). The relay opens anyway: opening needs no record.
    @Test func aFailedSyncStillOpensTheRelay() throws {
        let (st, relays, io) = try reportingStation(charging: true)
        #expect(st.core.unsynced, "the scenario needs records waiting for a sync")
        io.failSync = EIO
        st.post(.engine(.plug(connector: 0, pluggedIn: false)))
        #expect(st.ledgerError != nil)
        #expect(relays.closed[0] == false, "relays \(relays.commands)")
    }

    /// The car plugs in: `charging` is appended, then its message for the cloud fails to
    /// append. The relay must not close: `charging` was never made durable.
    @Test func noRelayClosesOnARecordThatIsNotDurable() throws {
        let (st, relays, io) = try reportingStation(charging: false)
        st.post(.tick)   // the deferred sync of the status records
        #expect(!st.core.unsynced)
        io.failWrite = ENOSPC
        io.writesBeforeFailing = 1   // `charging` is written, its outbox record is not
        st.post(.engine(.plug(connector: 0, pluggedIn: true)))
        #expect(st.ledgerError != nil)
        #expect(!relays.commands.contains { $0.close }, "relays \(relays.commands)")
        #expect(relays.closed[0] == false)
    }
}
