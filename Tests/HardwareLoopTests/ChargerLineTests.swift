import ChargerPort
import Foundation
import Glibc
import Testing
@testable import ChargerLine
import PaymentEngine
import Platform
import Timebase

/// The charger line protocol (docs/charger-line.md): both directions round-trip, and every kind
/// of bad line is refused with its reason, never a trap.
@Suite struct ChargerLineProtocol {
    func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

    @Test func commandsAndInputsRoundTrip() {
        let commands: [ChargerCommand] = [
            .relay(connector: 0, closed: true), .relay(connector: 1, closed: false),
            .show(connector: 0, .available), .show(connector: 1, .busy(7)), .show(connector: 0, .awaitingPlug(8)),
            .show(connector: 1, .charging(UInt64(Int64.max))), .show(connector: 0, .unavailable),
        ]
        for c in commands {
            let line = ChargerLine.encode(c)
            #expect(line.hasSuffix("\n") && line.utf8.count <= ChargerLine.maxLineBytes)
            #expect(ChargerLine.decodeCommand(bytes(String(line.dropLast())), connectors: 2) == .success(c), "\(line)")
        }
        let inputs: [EngineInput] = [
            .plug(connector: 0, pluggedIn: true), .plug(connector: 1, pluggedIn: false), .meter(connector: 1, registerWh: Int64.max),
            .relay(connector: 0, .closed), .relay(connector: 0, .opened), .relay(connector: 1, .refusedToClose), .relay(connector: 1, .welded),
        ]
        for i in inputs {
            let line = ChargerLine.encode(i)!
            #expect(ChargerLine.decodeInput(bytes(String(line.dropLast())), connectors: 2) == .success(i), "\(line)")
        }
        // The wire form is the documented one.
        #expect(ChargerLine.encode(.relay(connector: 0, closed: true)) == "{\"relay\":0,\"closed\":true}\n")
        #expect(ChargerLine.encode(.show(connector: 0, .awaitingPlug(3))) == "{\"show\":0,\"offer\":\"awaitingPlug\",\"session\":3}\n")
        #expect(ChargerLine.encode(.meter(connector: 0, registerWh: 12)) == "{\"meter\":0,\"registerWh\":12}\n")
        #expect(ChargerLine.encode(.relay(connector: 0, .welded)) == "{\"relay\":0,\"feedback\":\"welded\"}\n")
        // Only what a charger says travels this way.
        #expect(ChargerLine.encode(.shutdown) == nil)
    }

    @Test(arguments: [
        ("", ChargerLineError.notJSON("expected a value at byte 0")),
        ("not json", .notJSON("invalid literal at byte 0")),
        ("[1,2]", .notAnObject),
        ("{}", .unknownKind),
        ("{\"volts\":230}", .unknownKind),
        ("{\"plug\":2,\"pluggedIn\":true}", .badConnector("2")),
        ("{\"plug\":-1,\"pluggedIn\":true}", .badConnector("-1")),
        ("{\"plug\":\"0\",\"pluggedIn\":true}", .badConnector("\"0\"")),
        ("{\"plug\":0}", .badField("pluggedIn")),
        ("{\"meter\":0,\"registerWh\":-5}", .badField("registerWh")),
        ("{\"meter\":0,\"registerWh\":1.5}", .badField("registerWh")),
        ("{\"meter\":0,\"registerWh\":99999999999999999999}", .badField("registerWh")),
        ("{\"relay\":0,\"feedback\":\"melted\"}", .badField("feedback")),
        ("{\"relay\":0,\"closed\":true}", .badField("feedback")),
    ])
    func badInputLinesAreRefusedWithAReason(line: String, error: ChargerLineError) {
        let got = ChargerLine.decodeInput(bytes(line), connectors: 2)
        guard case .failure(let e) = got else { Issue.record("\(line) accepted: \(got)"); return }
        if case .notJSON = error { if case .notJSON = e {} else { Issue.record("\(line): \(e)") } } else { #expect(e == error, "\(line)") }
    }

    @Test func badCommandLinesAreRefused() {
        for line in ["{\"relay\":0}", "{\"relay\":0,\"closed\":1}", "{\"show\":0,\"offer\":\"charging\"}",
                     "{\"show\":0,\"offer\":\"available\",\"session\":3}", "{\"show\":0,\"offer\":\"dancing\"}",
                     "{\"show\":0,\"offer\":\"busy\",\"session\":-3}", "{\"show\":1,\"offer\":\"available\"}", "{\"plug\":0,\"pluggedIn\":true}"] {
            guard case .failure = ChargerLine.decodeCommand(bytes(line), connectors: 1) else { Issue.record("\(line) accepted"); continue }
        }
    }

    /// Unknown keys are room for later fields; the kind is the first key that names one.
    @Test func extraKeysAreIgnored() {
        #expect(ChargerLine.decodeInput(bytes("{\"t\":1,\"plug\":0,\"pluggedIn\":true,\"by\":\"sim\"}"), connectors: 1)
                == .success(.plug(connector: 0, pluggedIn: true)))
    }

    /// Lines longer than the limit are dropped as they stream in (never buffered) and reported
    /// once; the lines around them are read as usual, whatever the chunking.
    @Test func theSplitterBoundsLinesAndResynchronises() {
        let long = String(repeating: "x", count: ChargerLine.maxLineBytes + 100)
        let exact = String(repeating: "y", count: ChargerLine.maxLineBytes)
        let stream = bytes("a\n" + long + "\n" + exact + "\nb\n\ntail")
        for chunk in [1, 7, 4096] {
            var s = ChargerLineSplitter()
            var pieces: [ChargerLineSplitter.Piece] = []
            var i = 0
            while i < stream.count {
                pieces += s.feed(stream[i..<min(stream.count, i + chunk)])
                #expect(s.buffer.count <= ChargerLine.maxLineBytes)
                i += chunk
            }
            #expect(pieces == [.line(bytes("a")), .refused(.tooLong(ChargerLine.maxLineBytes + 100)), .line(bytes(exact)), .line(bytes("b")), .line([])],
                    "chunk \(chunk)")
            #expect(s.finish() == .refused(.unterminated(4)))
        }
    }
}

/// `LineChargerPort` over a pair of pipes, the far ends played by the test.
@Suite struct LineChargerPortOverPipes {
    final class Rig {
        let loop: EventLoop
        let port: LineChargerPort
        let toPort: (read: FileDescriptor, write: FileDescriptor)
        let fromPort: (read: FileDescriptor, write: FileDescriptor)
        var inputs: [EngineInput] = []
        var lost: [String] = []
        var problems: [String] = []
        var chargerEndOpen = true

        init(connectors: Int = 2) throws {
            loop = try EventLoop()
            toPort = try FileDescriptor.pipe()
            fromPort = try FileDescriptor.pipe()
            try toPort.read.setNonBlocking()
            try fromPort.write.setNonBlocking()
            try fromPort.read.setNonBlocking()
            port = LineChargerPort(loop: loop, connectors: connectors, input: toPort.read, output: fromPort.write, name: "test charger")
            port.onInputs = { [unowned self] in self.inputs += $0 }
            port.onLost = { [unowned self] in self.lost.append($0) }
            port.onProblem = { [unowned self] _, text in self.problems.append(text) }
            port.start()
        }

        deinit {
            port.stop(flushTimeout: .zero)
            for fd in [toPort.read, fromPort.read, fromPort.write] { fd.close() }
            if chargerEndOpen { toPort.write.close() }
        }

        /// The charger's end of its output closes, as when the charger process dies.
        func closeChargerEnd() {
            toPort.write.close()
            chargerEndOpen = false
        }

        func say(_ s: String) throws { try toPort.write.writeAll(Array(s.utf8), timeout: .seconds(1)) }
        func run(until condition: () -> Bool) throws -> Bool {
            try loop.run(until: condition, deadline: MonotonicClock.now() + .seconds(5))
        }
        func written() -> String {
            guard case .bytes(let b)? = try? fromPort.read.read(maxCount: 65536) else { return "" }
            return String(decoding: b, as: UTF8.self)
        }
    }

    @Test func commandsGoOutAndInputsComeInInOrderAndBadLinesAreCounted() throws {
        let r = try Rig()
        r.port.setRelay(connector: 1, closed: true)
        r.port.show(connector: 0, .awaitingPlug(4))
        r.port.setRelay(connector: 9, closed: true)   // not a connector: nothing is sent
        #expect(r.written() == "{\"relay\":1,\"closed\":true}\n{\"show\":0,\"offer\":\"awaitingPlug\",\"session\":4}\n")
        try r.say("{\"relay\":1,\"feedback\":\"closed\"}\ngarbage\n{\"plug\":0,\"pluggedIn\":true}\n" + String(repeating: "z", count: 5000) + "\n{\"meter\":0,\"registerWh\":5}\n")
        #expect(try r.run { r.inputs.count == 3 })
        #expect(r.inputs == [.relay(connector: 1, .closed), .plug(connector: 0, pluggedIn: true), .meter(connector: 0, registerWh: 5)])
        #expect(r.port.counters.malformed == 2 && r.port.counters.inputs == 3)
        // Reported once (rate-limited), with the count.
        #expect(r.problems.count == 1 && r.problems[0].contains("malformed line"), "\(r.problems)")
        #expect(r.lost.isEmpty)
    }

    /// The charger's end closing (a child that died): lost once, every relay considered open, a
    /// fault on every connector after the report; a close is refused from then on.
    @Test func endOfStreamIsLossWithFaultsAndRelaysOpen() throws {
        let r = try Rig()
        try r.say("{\"plug\":0,\"pluggedIn\":true}\n")
        r.closeChargerEnd()
        #expect(try r.run { !r.lost.isEmpty && r.inputs.count >= 3 })
        #expect(r.lost.count == 1 && r.lost[0].contains("test charger") && r.lost[0].contains("stream ended"), "\(r.lost)")
        #expect(r.inputs == [.plug(connector: 0, pluggedIn: true),
                             .fault(connector: 0, "charger I/O lost, relay considered open"), .fault(connector: 1, "charger I/O lost, relay considered open")])
        #expect(r.port.counters.lost == 1 && r.port.lostReason != nil)
        r.inputs = []
        r.port.setRelay(connector: 0, closed: true)
        r.port.setRelay(connector: 1, closed: false)
        #expect(try r.run { r.inputs.count == 2 })
        #expect(r.inputs == [.relay(connector: 0, .refusedToClose), .relay(connector: 1, .opened)])
        #expect(r.written() == "", "nothing is written to a lost charger")
    }

    /// A charger that stops reading its commands is lost too: bounded buffer, bounded wait.
    @Test func aChargerThatStopsReadingIsLost() throws {
        let r = try Rig(connectors: 1)
        for _ in 0..<20_000 { r.port.show(connector: 0, .charging(1)) }   // more than a pipe and the buffer hold
        #expect(try r.run { !r.lost.isEmpty })
        #expect(r.lost.first?.contains("has not read") == true, "\(r.lost)")
    }

}

/// `charger.io = simulated` runs charger-sim as a child process; when it dies, the daemon takes
/// the safe reading and says so.
@Suite(.serialized) struct ChargerSimChild {
    /// The children of `pid` whose command is `name` (from /proc: no CONFIG_PROC_CHILDREN needed).
    static func children(of pid: pid_t, named name: String) -> [pid_t] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { e -> pid_t? in
            guard let p = pid_t(e), let stat = try? String(contentsOfFile: "/proc/\(e)/stat", encoding: .utf8),
                  let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")") else { return nil }
            let comm = stat[stat.index(after: open)..<close]
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 2, comm == name, pid_t(fields[1]) == pid else { return nil }
            return p
        }
    }

    /// The daemon runs charger-sim as its child while it runs, and reaps it when it stops.
    @Test func theSimulatedChargerIsAChildProcessReapedAtExit() throws {
        let b = try Bench(terminal: ["--fallback", "nocard"], ev: "none", keepLog: true)
        let daemon = b.daemon!.pid
        var child: [pid_t] = []
        #expect(waitUntil(.seconds(30)) { child = Self.children(of: daemon, named: "charger-sim"); return child.count == 1 }, "\(b.daemonLog)")
        #expect(b.daemonLog.contains("charger I/O is SIMULATED"), "\(b.daemonLog)")
        #expect(b.stop() == 0)
        for c in child { #expect(!FileManager.default.fileExists(atPath: "/proc/\(c)"), "charger-sim \(c) outlived the daemon") }
    }

    /// SIGKILL to charger-sim while a car charges: the relay is considered open, the session
    /// stops (a fault) and is captured for the energy metered until then, the daemon says so at
    /// error level, and takes no more payments (the terminal is not armed again), with the reason.
    @Test func killingChargerSimWhileChargingStopsTheSessionAndPayments() throws {
        // One card (terminal-sim would present a second one as the same card: a tap to stop).
        let b = try Bench(terminal: ["--session", "approve", "--fallback", "nocard"],
                          config: ["log.level = info"], ev: "plug=100,charge=600000,power=3600000", keepLog: true)
        let daemon = b.daemon!.pid
        // Charging: the relay closed and the meter has counted for a while (1 kWh a second).
        #expect(waitUntil(.seconds(60)) { b.relayEverClosed }, "never charged:\n\(b.daemonLog)")
        usleep(2_500_000)
        let child = Self.children(of: daemon, named: "charger-sim")
        try #require(child.count == 1, "charger-sim children: \(child)")
        let armedBefore = b.sim.records("started").count
        kill(child[0], SIGKILL)
        #expect(waitUntil(.seconds(60)) { !b.settlements("Settled").isEmpty }, "no settlement after the loss:\n\(b.daemonLog)")
        let log = b.daemonLog
        #expect(log.contains("<3>") && log.contains("charger I/O lost") && log.contains("killed by signal 9"), "\(log)")
        #expect(log.contains("relay considered open"), "\(log)")
        #expect(log.contains("no payments are taken"), "\(log)")
        // Payments stop: give the daemon time to (wrongly) arm the terminal for the next card.
        usleep(3_000_000)
        #expect(b.sim.records("started").count <= armedBefore, "the terminal was armed again: \(b.sim.records("started"))")
        #expect(b.sim.records("approved").count == 1)
        #expect(b.stop() == 0)
        // Captured once, for the metered energy; nothing voided; the cloud hears the same amount.
        let committed = b.sim.records("committed")
        let amount = committed.first?["amount"] as? Int ?? 0
        #expect(committed.count == 1 && amount > 0 && amount <= b.sim.records("approved").first?["amount"] as? Int ?? 0, "\(committed)")
        #expect(b.sim.records("voided").isEmpty)
        #expect(minor(b.settlements("Settled").first?["settlementAmount"]) == amount)
        #expect(b.ended().first.flatMap { ($0["transactionInfo"] as? [String: Any])?["stoppedReason"] as? String } == "Other")
        // The relay history (charger-sim's) ends closed: it died before it could open it, which is
        // why the daemon must not trust it any more.
        #expect(b.relay().last?.1 == true, "\(b.relay())")
    }
}
