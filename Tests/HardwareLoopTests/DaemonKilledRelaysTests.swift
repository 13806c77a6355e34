import Foundation
import Glibc
import Platform
import Testing

/// The relay must be open whenever the daemon is not running, however it ended. With
/// `charger.io = simulated` the relays are charger-sim's, the daemon's child on a pipe: the real
/// paybridged is killed during a charge the way systemd does it (SIGKILL; the watchdog's SIGABRT
/// to every process of the service, then SIGKILL), and charger-sim's relay history must end open.
@Suite(.serialized) struct DaemonKilledRelays {
    /// A bench charging on connector 0 (the car draws for two minutes, far beyond the test).
    /// The daemon runs as systemd/paybridged.service has it: no core dumps (`LimitCORE=0`) and
    /// no Swift backtracer (`SWIFT_BACKTRACE=enable=no`), which would otherwise catch SIGABRT,
    /// print registers and memory, and leave the daemon running.
    func charging() throws -> Bench {
        let b = try Bench(terminal: ["--session", "approve", "--fallback", "nocard"], config: ["diagnostics.socket ="],
                          ev: "plug=100,charge=120000,power=360000",
                          launcher: ["/bin/sh", "-c", "ulimit -c 0; SWIFT_BACKTRACE=enable=no exec \"$0\" \"$@\""])
        #expect(waitUntil(.seconds(60)) { b.relayEverClosed }, "the relay never closed")
        #expect(!b.relayOpen, "the relay opened again before the daemon was killed: \(b.relay())")
        return b
    }

    /// The daemon's child processes (charger-sim), from /proc.
    func children(of pid: pid_t) -> [pid_t] {
        fileText("/proc/\(pid)/task/\(pid)/children").split(separator: " ").compactMap { pid_t($0) }
    }

    func command(_ pid: pid_t) -> String { fileText("/proc/\(pid)/comm").trimmingCharacters(in: .whitespacesAndNewlines) }

    /// Gone, or a zombie nobody reaps (PID 1 in a container may not): either way not running.
    func ended(_ pid: pid_t) -> Bool {
        let stat = fileText("/proc/\(pid)/stat")
        guard let close = stat.lastIndex(of: ")") else { return true }
        return stat[stat.index(close, offsetBy: 2)...].hasPrefix("Z")
    }

    /// Each connector's last recorded state and the cause recorded with it, from the history.
    func last(_ b: Bench) -> [Int: (closed: Bool, cause: String?)] {
        var out: [Int: (Bool, String?)] = [:]
        for line in fileText(b.dir + "/relay.jsonl").split(separator: "\n") {
            guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let c = o["connector"] as? Int, let closed = o["closed"] as? Bool else { continue }
            out[c] = (closed, o["cause"] as? String)
        }
        return out
    }

    func chargerSim(_ b: Bench) -> pid_t? {
        guard let daemon = b.daemon else { return nil }
        return children(of: daemon.pid).first { command($0) == "charger-sim" }
    }

    @Test func sigkillOfTheDaemonOpensTheRelay() throws {
        let b = try charging()
        let sim = try #require(chargerSim(b), "no charger-sim child of the daemon")
        b.daemon?.signal(SIGKILL)
        #expect(b.daemon?.wait(timeout: .seconds(10)) == 128 + SIGKILL)
        b.daemon = nil
        // Its input ended with the daemon: charger-sim opens what is closed, records it and exits.
        #expect(waitUntil(.seconds(10)) { last(b)[0]?.closed == false }, "relay history after SIGKILL: \(b.relay())")
        #expect(last(b)[0]?.cause == "end of input", "\(fileText(b.dir + "/relay.jsonl"))")
        #expect(last(b).values.allSatisfy { !$0.closed })
        #expect(waitUntil(.seconds(10)) { ended(sim) }, "charger-sim outlived the daemon")
    }

    /// systemd's watchdog: SIGABRT to the main process, then to every other process of the
    /// service (KillMode=control-group), before SIGKILL.
    @Test func theWatchdogsSigabrtToEveryProcessOpensTheRelay() throws {
        let b = try charging()
        let sim = try #require(chargerSim(b), "no charger-sim child of the daemon")
        b.daemon?.signal(SIGABRT)
        kill(sim, SIGABRT)
        #expect(b.daemon?.wait(timeout: .seconds(10)) == 128 + SIGABRT)
        b.daemon = nil
        #expect(waitUntil(.seconds(10)) { last(b)[0]?.closed == false }, "relay history after SIGABRT: \(b.relay())")
        // Whichever came first, the signal or the end of its input, is the recorded cause.
        #expect(["SIGABRT", "end of input"].contains(last(b)[0]?.cause ?? "-"), "\(fileText(b.dir + "/relay.jsonl"))")
        #expect(waitUntil(.seconds(10)) { ended(sim) }, "charger-sim still running")
    }

    /// The signal path alone: charger-sim aborted while the daemon lives opens its relays itself,
    /// and the daemon, its charger gone, takes the relays for open and stops taking payments.
    @Test func sigabrtToTheChargerAloneOpensTheRelay() throws {
        let b = try charging()
        let sim = try #require(chargerSim(b), "no charger-sim child of the daemon")
        kill(sim, SIGABRT)
        #expect(waitUntil(.seconds(10)) { last(b)[0]?.closed == false }, "relay history after SIGABRT: \(b.relay())")
        #expect(last(b)[0]?.cause == "SIGABRT", "\(fileText(b.dir + "/relay.jsonl"))")
        #expect(waitUntil(.seconds(10)) { ended(sim) }, "charger-sim still running")
        // The daemon itself keeps running and stops cleanly.
        #expect(b.stop() == 0)
    }

    /// `charger.io = socket`: the contactors are the controller's, and the rule is that it opens
    /// them when its connection to the daemon ends. The real paybridged is SIGKILLed while a
    /// session driven by paybridgectl's controller charges: the controller sees the connection
    /// end, opens every contactor (says so) and exits 3.
    @Test func sigkillOfTheDaemonEndsTheControllersConnectionAndItOpensEveryContactor() throws {
        let socket = DiagnosticsSocketTests.socketPath()
        let b = try Bench(terminal: ["--session", "approve", "--fallback", "nocard"],
                          config: ["diagnostics.socket = \(socket)", "charger.connectors = 2"] + ControllerSocketTests.settings, ev: nil,
                          launcher: ["/bin/sh", "-c", "ulimit -c 0; SWIFT_BACKTRACE=enable=no exec \"$0\" \"$@\""])
        defer { unlink(socket) }
        #expect(waitUntil(.seconds(10)) { access(socket, F_OK) == 0 })
        let controller = try ControllerSocketTests.Controller(socket: socket)
        defer { controller.process.terminate() }
        #expect(waitUntil(.seconds(30)) { controller.pump(); return controller.events("offer").contains { $0["offer"] as? String == "awaiting-plug" } },
                "\(controller.lines)")
        let connector = try #require(controller.events("offer").first { $0["offer"] as? String == "awaiting-plug" }?["connector"] as? Int)
        #expect(try paybridgectl(["--socket", socket, "plug", String(connector), "in"]).status == 0)
        #expect(waitUntil(.seconds(10)) { controller.pump(); return controller.events("relay").contains { $0["closed"] as? Bool == true } },
                "the controller was never asked to close a contactor: \(controller.lines)")

        b.daemon?.signal(SIGKILL)
        #expect(b.daemon?.wait(timeout: .seconds(10)) == 128 + SIGKILL)
        b.daemon = nil
        #expect(controller.process.wait(timeout: .seconds(10)) == 3, "the controller did not notice the daemon's end")
        controller.pump(.milliseconds(200))
        let opened = controller.events("relay").filter { $0["cause"] as? String == "connection-lost" }
        #expect(opened.compactMap { $0["connector"] as? Int }.sorted() == [1, 2], "\(controller.lines)")
        #expect(opened.allSatisfy { $0["closed"] as? Bool == false })
        // Its last word for every connector is open.
        for c in [1, 2] { #expect(controller.events("relay").last { $0["connector"] as? Int == c }?["closed"] as? Bool == false) }
    }
}
