import Foundation
import Glibc
import Platform
import Testing

/// The real paybridged's technicians' socket, asked by the real paybridgectl (and by a peer that
/// is not an administrator), with terminal-sim on a pty and the simulated charger.
@Suite(.serialized) struct DiagnosticsSocketTests {
    func ctl(_ args: [String], launcher: [String] = []) throws -> (status: Int32?, out: [String]) {
        try paybridgectl(args, launcher: launcher)
    }

    func json(_ line: String?) -> [String: Any] { jsonObject(line) }

    /// The longest run of ASCII digits: a full card number has 13 to 19.
    func longestDigitRun(_ s: String) -> Int {
        var best = 0, run = 0
        for b in s.utf8 { if b >= 0x30 && b <= 0x39 { run += 1; best = max(best, run) } else { run = 0 } }
        return best
    }

    static func socketPath() -> String { "/tmp/pb-ctl-\(UUID().uuidString.prefix(8)).sock" }

    @Test func statusInventorySessionsAndExportComeFromTheRunningDaemon() throws {
        let socket = Self.socketPath()
        let bench = try Bench(terminal: ["--serial", "P68-TEST-0042", "--sim-serial", "8931440000000000042"],
                              config: ["diagnostics.socket = \(socket)", "charger.serial = CHG-0042"], ev: "plug=200,charge=1500,power=7400")
        defer { _ = bench.stop() }
        #expect(waitUntil(.seconds(10)) { access(socket, F_OK) == 0 })
        var st = stat()
        #expect(lstat(socket, &st) == 0 && st.st_mode & 0o777 == 0o660)
        // A session settles (the simulated car charges and leaves), then the ledger's views show it.
        var exported: [String] = []
        #expect(waitUntil(.seconds(30)) {
            exported = (try? ctl(["--socket", socket, "export", "--format", "csv"]).out) ?? []
            return exported.count >= 2
        }, "no settled session exported: \(exported)")
        #expect(exported.first?.hasPrefix("station_id,session_id,connector,start_utc,end_utc,masked_card,brand,terminal_reference,payment_reference,authorised,captured,currency,energy_wh,final_state,note,meter_serial,meter_start_wh,meter_end_wh") == true)
        #expect(exported.dropFirst().allSatisfy { $0.hasPrefix("BENCH-1,BENCH-1-") })
        // No full card number anywhere in what the socket says.
        #expect(longestDigitRun(exported.joined(separator: "\n")) < 13, "a card-number-like digit run in the export")

        let status = try ctl(["--socket", socket, "--json", "status"])
        #expect(status.status == 0)
        let s = json(status.out.first)
        #expect(s["ok"] as? Bool == true && s["version"] as? String != nil)
        #expect((s["terminal"] as? [String: Any])?["link"] as? String == "up")
        #expect(((s["connectors"] as? [[String: Any]])?.first)?["connector"] as? Int == 1)
        #expect((s["payments"] as? [String: Any])?["enabled"] as? Bool == true)

        let inventory = json(try ctl(["--socket", socket, "--json", "inventory"]).out.first)
        let terminal = inventory["terminal"] as? [String: Any]
        #expect(terminal?["serial_number"] as? String == "P68-TEST-0042")
        // An ICCID is 19-20 digits: the card-data filter may mask its middle, never drop it.
        #expect((terminal?["sim_serial"] as? String)?.hasPrefix("893144") == true, "\(String(describing: terminal))")
        #expect((inventory["charger"] as? [String: Any])?["serial_number"] as? String == "CHG-0042")

        let human = try ctl(["--socket", socket, "status"])
        #expect(human.status == 0 && human.out.first?.hasPrefix("paybridged ") == true && human.out.contains { $0.hasPrefix("payments   enabled") })

        // The daemon says no: exit 1; usage: 2; nobody listening: 3.
        #expect(try ctl(["--socket", socket, "stop", "7"]).status == 1)
        #expect(try ctl(["--socket", socket, "stop"]).status == 2)
        #expect(try ctl(["--socket", socket + ".missing", "status"]).status == 3)
    }

    @Test(.enabled(if: getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv"), "needs root and setpriv"))
    func aPeerThatIsNotAnAdministratorMayReadButNotChange() throws {
        let socket = Self.socketPath()
        let bench = try Bench(terminal: [], config: ["diagnostics.socket = \(socket)", "diagnostics.admin_group = pbtestnone"], ev: "plug=200,charge=60000,power=7400")
        defer { _ = bench.stop() }
        #expect(waitUntil(.seconds(10)) { access(socket, F_OK) == 0 })
        // Let "nobody" connect at all (the unit's group would decide that on a charger).
        chmod(socket, 0o666)
        let nobody = ["/usr/bin/setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"]
        #expect(try ctl(["--socket", socket, "status"], launcher: nobody).status == 0)
        let refused = try ctl(["--socket", socket, "--json", "stop", "1"], launcher: nobody)
        #expect(refused.status == 1)
        #expect(((json(refused.out.first)["error"] as? [String: Any])?["code"] as? String) == "not_permitted")
        #expect(try ctl(["--socket", socket, "--json", "test-transaction"], launcher: nobody).status == 1)
    }
}
