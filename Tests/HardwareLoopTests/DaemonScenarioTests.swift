import Foundation
import Testing
import Platform

/// One charger on the bench: terminal-sim on a pty, cloud-sim on loopback, and the real
/// `paybridged` started from a configuration file with a simulated vehicle and relay.
/// Everything a test asserts comes from the simulators' own records and the relay's history.
final class Bench {
    let dir: String
    /// terminal-sim now (`replaceTerminal` starts another on the same link).
    private(set) var sim: SimProcess
    /// The terminal-sims replaced, oldest first, kept so that their records stay readable.
    private(set) var replaced: [SimProcess] = []
    let cloud: CloudProcess
    var daemon: ChildProcess?
    /// terminal-sim's arguments before the test's own: the pty's link, family and delays.
    let simBase: [String]
    /// Starts paybridged with the bench's command line.
    let launch: () throws -> ChildProcess

    /// The daemon's standard error, when the bench was asked to keep it.
    var daemonLog: String { fileText(dir + "/daemon.log") }

    /// `terminal`: terminal-sim's arguments beyond the pty; `config`: lines added to the file
    /// (replacing the bench's own line for the same key); `keepLog`: the daemon's standard
    /// error goes to `daemonLog`; `environment`: the daemon's (nil: the test process's);
    /// `launcher`: a command that execs the daemon's command line given after it (same pid),
    /// e.g. to run it in a namespace of its own. `standardError`: the daemon's standard error
    /// (without `keepLog` or a launcher).
    /// `ev`: the simulated vehicles (simulated charger I/O on the command line); nil: the
    /// configuration alone decides the charger I/O, and there is no relay history.
    /// `passing`: descriptors the daemon (or its launcher) gets as 3, 4, … (socket activation).
    init(family: String = "p6x", terminal: [String], cloud cloudArgs: [String] = [], config: [String] = [], ev: String?,
         keepLog: Bool = false, environment: [String]? = nil, launcher: [String] = [], standardError: FileDescriptor? = nil,
         passing: [FileDescriptor] = []) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bench-\(UUID().uuidString.prefix(8))").path
        self.dir = dir
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let tty = dir + "/ttyPSP"
        simBase = ["--pty", "--link", tty, "--family", family, "--tap-delay", "50", "--auth-delay", "50"]
        sim = try SimProcess(simBase + terminal)
        cloud = try CloudProcess(cloudArgs)
        let defaults = ["terminal.family = \(family)", "terminal.device = \(tty)", "cloud.url = \(cloud.url)", "cloud.protocol = https",
                        "cloud.station_id = BENCH-1", "state.directory = \(dir)/state", "log.level = warning",
                        "tariff.energy_per_kwh_milli = 40000"]
        func key(_ line: String) -> String { line.split(separator: "=").first.map { $0.trimmingCharacters(in: .whitespaces) } ?? line }
        let overridden = Set(config.map(key))
        let file = defaults.filter { !overridden.contains(key($0)) } + config
        try Data((file.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: dir + "/paybridge.conf"))
        let exe = ChildProcess.executableDirectory() + "/paybridged"
        let args = ["--config", dir + "/paybridge.conf"]
            + (ev.map { ["--relay-history", dir + "/relay.jsonl", "--charger-io", "simulated", "--sim-ev", $0] } ?? [])
        // The shell execs the daemon in its own place (same pid), with standard error in a file.
        let logPath = dir + "/daemon.log"
        launch = {
            if let first = launcher.first {
                return try ChildProcess.spawn(first, Array(launcher.dropFirst()) + [exe] + args, environment: environment,
                                              captureStdout: false, pipeStdin: false, passing: passing)
            }
            return keepLog
                ? try ChildProcess.spawn("/bin/sh", ["-c", "exec \"$0\" \"$@\" 2>>\"\(logPath)\"", exe] + args,
                                         environment: environment, captureStdout: false, pipeStdin: false, passing: passing)
                : try ChildProcess.spawn(exe, args, environment: environment, captureStdout: false, pipeStdin: false,
                                         standardError: standardError, passing: passing)
        }
        daemon = try launch()
    }

    /// The terminal swapped on the charger: terminal-sim stopped, and another started on the same
    /// link path with `terminal` (e.g. another `--serial`).
    func replaceTerminal(_ terminal: [String]) throws {
        sim.process.terminate()
        replaced.append(sim)
        sim = try SimProcess(simBase + terminal)
    }

    /// SIGTERM, then paybridged started again with the same command line; the stop's exit status.
    func restartDaemon() throws -> Int32? {
        let status = stop()
        daemon = try launch()
        return status
    }

    deinit {
        daemon?.terminate()
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// SIGTERM and the exit status.
    func stop() -> Int32? {
        daemon?.signal(SIGTERM)
        let s = daemon?.wait(timeout: .seconds(15))
        daemon = nil
        return s
    }

    /// The relay's history as (connector, closed) pairs, oldest first.
    func relay() -> [(Int, Bool)] {
        fileText(dir + "/relay.jsonl").split(separator: "\n").compactMap {
            guard let o = try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any],
                  let c = o["connector"] as? Int, let closed = o["closed"] as? Bool else { return nil }
            return (c, closed)
        }
    }

    var relayEverClosed: Bool { relay().contains { $0.1 } }
    var relayOpen: Bool { relay().last.map { !$0.1 } ?? true }

    func cloudBodies(_ action: String) -> [[String: Any]] {
        cloud.processed().filter { $0["action"] as? String == action }.compactMap { $0["body"] as? [String: Any] }
    }

    /// The TransactionEvent Ended bodies the cloud processed.
    func ended() -> [[String: Any]] { cloudBodies("TransactionEvent").filter { $0["eventType"] as? String == "Ended" } }

    func settlements(_ status: String) -> [[String: Any]] { cloudBodies("NotifySettlement").filter { $0["status"] as? String == status } }
}

func minor(_ n: Any?) -> Int? {
    (n as? NSNumber).map { NSDecimalNumber(decimal: $0.decimalValue * 100).intValue }
}

/// The card-present scenarios of issue 5, each on its own bench.
@Suite(.serialized) struct DaemonScenarios {
    @Test func happyPathChargesCapturesTheCostAndReportsIt() throws {
        let b = try Bench(terminal: ["--session", "approve", "--fallback", "nocard"], ev: "plug=100,charge=1500,power=3600000")
        #expect(waitUntil(.seconds(60)) { !b.settlements("Settled").isEmpty }, "no settlement reached the cloud")
        #expect(b.stop() == 0)
        let approved = b.sim.records("approved"), committed = b.sim.records("committed")
        #expect(approved.count == 1 && committed.count == 1)
        let amount = committed.first?["amount"] as? Int ?? 0
        #expect(amount > 0 && amount <= approved.first?["amount"] as? Int ?? 0, "captured \(amount)")
        #expect(b.sim.records("voided").isEmpty)
        // The relay closed once for the session and is open again.
        #expect(b.relay().filter { $0.1 }.count == 1)
        #expect(b.relayOpen)
        // The cloud saw the card asked about, the transaction, and a settlement of the same amount.
        #expect(b.cloudBodies("Authorize").count == 1)
        #expect(b.ended().first.flatMap { ($0["transactionInfo"] as? [String: Any])?["stoppedReason"] as? String } == "EVDisconnected")
        #expect(minor(b.settlements("Settled").first?["settlementAmount"]) == amount)
    }

    @Test func bankDeclineNeverClosesTheRelay() throws {
        let b = try Bench(family: "apollo", terminal: ["--session", "decline reason=5", "--fallback", "nocard"], ev: "plug=100,charge=1500,power=3600000")
        #expect(waitUntil(.seconds(60)) { !b.sim.records("declined").isEmpty })
        // Give the daemon time to (wrongly) act on it.
        usleep(1_000_000)
        #expect(b.stop() == 0)
        #expect(b.sim.records("approved").isEmpty)
        #expect(!b.relayEverClosed, "relay closed for a declined card: \(b.relay())")
        #expect(b.sim.records("committed").isEmpty && b.sim.records("voided").isEmpty)
        #expect(b.cloudBodies("TransactionEvent").isEmpty, "a declined card is not a transaction")
    }

    @Test func theCloudRefusingTheCardStopsBeforeAnyAuthorisation() throws {
        let b = try Bench(terminal: ["--session", "approve", "--fallback", "nocard"], cloud: ["--refuse-card", "0119"],
                          ev: "plug=100,charge=1500,power=3600000")
        #expect(waitUntil(.seconds(60)) { b.cloudBodies("Authorize").count >= 1 })
        #expect(waitUntil(.seconds(30)) { b.sim.records("cancelled").contains { $0["by"] as? String == "host" } },
                "the terminal was not told to drop the card")
        #expect(b.stop() == 0)
        #expect(b.sim.records("approved").isEmpty, "the bank was asked although the platform refused the card")
        #expect(!b.relayEverClosed)
    }

    @Test func cardholderCancelLeavesNothingReservedAndTheNextDriverCharges() throws {
        let b = try Bench(terminal: ["--session", "cancel", "--session", "approve", "--fallback", "nocard"],
                          ev: "plug=100,charge=800,power=3600000")
        #expect(waitUntil(.seconds(60)) { !b.sim.records("committed").isEmpty }, "the driver after the cancel did not get to pay")
        #expect(b.stop() == 0)
        let cancelled = b.sim.records("cancelled").filter { $0["by"] as? String == "cardholder" }
        #expect(cancelled.count == 1)
        // One approval (the second driver), closed once; the relay closed only for it.
        #expect(b.sim.records("approved").count == 1)
        #expect(b.sim.records("committed").count == 1 && b.sim.records("voided").isEmpty)
        #expect(b.relay().filter { $0.1 }.count == 1)
        #expect(b.relayOpen)
    }

    @Test func aDriverWhoNeverPlugsInIsReleased() throws {
        let b = try Bench(terminal: ["--session", "approve", "--fallback", "nocard"], config: ["timeouts.plug_in_seconds = 10"], ev: "none")
        #expect(waitUntil(.seconds(60)) { !b.sim.records("voided").isEmpty }, "the reservation was not released")
        #expect(waitUntil(.seconds(30)) { !b.settlements("Canceled").isEmpty }, "the cloud was not told of the release")
        #expect(b.stop() == 0)
        let approved = b.sim.records("approved").compactMap { $0["sessionId"] as? Int }
        #expect(b.sim.records("voided").compactMap { $0["sessionId"] as? Int } == approved)
        #expect(b.sim.records("committed").isEmpty)
        #expect(!b.relayEverClosed)
    }

    /// A terminal that sends the whole card number (it must not): the daemon, logging at debug
    /// level, keeps it out of its log, its ledger and everything it sends to the cloud.
    @Test func aFullCardNumberFromTheTerminalIsWrittenNowhere() throws {
        let pan = "4761739001010119"
        let b = try Bench(terminal: ["--session", "approve unmasked-pan=\(pan)", "--fallback", "nocard"], config: ["log.level = debug"],
                          ev: "plug=100,charge=800,power=3600000", keepLog: true)
        #expect(waitUntil(.seconds(60)) { !b.settlements("Settled").isEmpty }, "no settlement reached the cloud")
        #expect(b.stop() == 0)
        // The log is the debug log of the whole session, card read included.
        let log = b.daemonLog
        #expect(log.contains("card read") && log.contains("<7>"), "\(log.prefix(2000))")
        #expect(log.contains("476173******0119"), "the masked number (first 6, last 4) is what the log shows")
        var written: [(name: String, text: String, isLedger: Bool)] = [("log", log, false), ("cloud", fileText(b.cloud.recordPath), false)]
        let state = b.dir + "/state"
        for name in (try? FileManager.default.subpathsOfDirectory(atPath: state)) ?? [] {
            if let data = FileManager.default.contents(atPath: state + "/" + name) {
                written.append((name, String(decoding: data, as: UTF8.self), true))
            }
        }
        #expect(written.count > 2, "no ledger files found")
        // Every 10 consecutive digits of the number include some of the 6 the mask hides; each
        // is looked for as text, and as its bytes printed in decimal (Swift's array format) or hex.
        let digits = Array(pan.utf8)
        let windows = (0...(digits.count - 10)).flatMap { i -> [String] in
            let w = Array(digits[i..<(i + 10)])
            return [String(decoding: w, as: UTF8.self), w.map(String.init).joined(separator: ", "),
                    w.map { String($0, radix: 16) }.joined(), w.map { String($0, radix: 16) }.joined(separator: " ")]
        }
        for w in written {
            for piece in windows { #expect(!w.text.contains(piece), "\(piece) of the card number in \(w.name)") }
            // The ledger holds no long digit runs at all (the log and the cloud's record carry
            // millisecond timestamps and the SIM's ICCID, which are not card numbers).
            guard w.isLedger else { continue }
            var run = 0, longest = 0
            for c in w.text.utf8 { if c >= 0x30 && c <= 0x39 { run += 1; longest = max(longest, run) } else { run = 0 } }
            #expect(longest < 13, "a run of \(longest) digits in \(w.name)")
        }
    }

    /// The review's case (issue 11 item 1): a terminal that puts whole card numbers in the other
    /// card fields. The brand is `VISA 4111111111111111`, the host reference `4111111111111111`,
    /// and the Card Read and approval also carry EMV 5A (a BCD number), 57 (track 2 equivalent)
    /// and 56 (track 1). Nothing of them reaches the log (at debug), the ledger or the cloud.
    @Test func cardDataInAnyTerminalFieldIsWrittenNowhere() throws {
        let dol = "5A085555555555554444" + "57104012888888881881D25121010000000F"
            + "5624" + Array("%B378282246310005^TEST/CARD^2512101?".utf8).map { String(format: "%02X", $0) }.joined()
        let b = try Bench(terminal: ["--session", "approve brand=VISA_4111111111111111 host-ref=4111111111111111 dol=\(dol)",
                                     "--fallback", "nocard"],
                          config: ["log.level = debug"], ev: "plug=100,charge=800,power=3600000", keepLog: true)
        #expect(waitUntil(.seconds(60)) { !b.settlements("Settled").isEmpty }, "no settlement reached the cloud")
        #expect(b.stop() == 0)
        let log = b.daemonLog
        #expect(log.contains("VISA 411111******1111"), "the brand is shown masked: \(log.prefix(3000))")
        #expect(log.contains("card data filter"), "the operator is not told that the terminal sends card data")
        // The host reference held a card number: the settlement names the terminal's session instead.
        #expect((b.settlements("Settled").first?["pspRef"] as? String)?.hasPrefix("terminal-") == true)
        var written: [(name: String, text: String)] = [("log", log), ("cloud", fileText(b.cloud.recordPath))]
        let state = b.dir + "/state"
        for name in (try? FileManager.default.subpathsOfDirectory(atPath: state)) ?? [] {
            if var data = FileManager.default.contents(atPath: state + "/" + name) {
                // Ledger segments are preallocated: the zeros after the last record hold nothing.
                while data.last == 0 { data.removeLast() }
                written.append((name, String(decoding: data, as: UTF8.self)))
                // A BCD number written as bytes shows as its own digits in hex.
                written.append((name + " (hex)", data.map { String(format: "%02X", $0) }.joined()))
            }
        }
        #expect(written.contains { $0.name.contains("seg-") }, "no ledger files found")
        for w in written {
            for number in ["4111111111111111", "5555555555554444", "4012888888881881", "378282246310005"] {
                for piece in tenDigitWindows(number) { #expect(!w.text.contains(piece), "\(piece) of \(number) in \(w.name)") }
            }
            #expect(!w.text.contains("TEST/CARD"), "the cardholder name in \(w.name)")
            if !w.name.hasSuffix("(hex)") { #expect(luhnValidRuns(w.text).isEmpty, "\(w.name): \(luhnValidRuns(w.text))") }
        }
    }

    @Test func tapToStopEndsTheChargeWithTheSameCard() throws {
        // The first tap pays; the terminal then scans with the same card in reach, which the
        // test taps while the car is still charging.
        let card = "card=4761739001010119 hash=0102030405060708"
        let b = try Bench(terminal: ["--session", "approve \(card)", "--session", "nocard \(card)", "--fallback", "nocard"],
                          ev: "plug=100,charge=120000,power=3600000")
        #expect(waitUntil(.seconds(60)) { b.relayEverClosed }, "never charged")
        usleep(1_500_000)
        #expect(b.sim.records("committed").isEmpty, "stopped before the tap")
        try b.sim.control("tap")
        #expect(waitUntil(.seconds(30)) { !b.sim.records("committed").isEmpty }, "the tap did not stop the session")
        #expect(b.relayOpen, "relay still closed after tap to stop")
        #expect(waitUntil(.seconds(30)) { !b.ended().isEmpty })
        #expect(b.stop() == 0)
        #expect(b.sim.records("committed").count == 1)
        #expect((b.sim.records("committed").first?["amount"] as? Int ?? 0) > 0)
        #expect(b.sim.records("approved").count == 1, "the stopping tap became a second payment")
        #expect(b.ended().first.flatMap { ($0["transactionInfo"] as? [String: Any])?["stoppedReason"] as? String } == "Local")
    }

    @Test func theCostCapStopsTheChargeAndCapturesExactlyTheReservation() throws {
        // 3.00 reserved; 10 kWh a second at 0.40 reaches it in under a second.
        let b = try Bench(family: "apollo", terminal: ["--session", "approve", "--fallback", "nocard"], config: ["payment.preauth = 300"],
                          ev: "plug=100,charge=120000,power=36000000")
        #expect(waitUntil(.seconds(60)) { !b.sim.records("committed").isEmpty }, "the cap did not stop the session")
        #expect(b.relayEverClosed && b.relayOpen, "relay: \(b.relay())")
        #expect(waitUntil(.seconds(30)) { !b.settlements("Settled").isEmpty })
        #expect(b.stop() == 0)
        #expect(b.sim.records("committed").first?["amount"] as? Int == 300, "\(b.sim.records("committed"))")
        #expect(b.ended().first.flatMap { ($0["transactionInfo"] as? [String: Any])?["stoppedReason"] as? String } == "LocalOutOfCredit")
        #expect(minor(b.settlements("Settled").first?["settlementAmount"]) == 300)
    }

    @Test func sighupChangesTheNextSessionsTermsNotTheRunningOne() throws {
        // Two connectors. The first driver pays; the terminal is then armed for the second
        // connector (nobody taps that scan); the scan after the reload brings the second driver.
        let second = "card=5413330089010434 hash=0A0B0C0D"
        let b = try Bench(terminal: ["--session", "approve", "--session", "nocard", "--session", "approve \(second)", "--fallback", "nocard"],
                          config: ["payment.preauth = 5000", "charger.connectors = 2"], ev: "plug=100,charge=4000,power=360000")
        #expect(waitUntil(.seconds(60)) { b.relayEverClosed }, "the first driver never charged")
        #expect(waitUntil(.seconds(30)) { b.sim.records("started").count >= 2 }, "the terminal was not armed for the second connector")
        // Reload: half the reservation and a tariff a hundred times dearer, for new sessions only.
        let conf = b.dir + "/paybridge.conf"
        let text = fileText(conf).replacingOccurrences(of: "payment.preauth = 5000", with: "payment.preauth = 2500")
            .replacingOccurrences(of: "tariff.energy_per_kwh_milli = 40000", with: "tariff.energy_per_kwh_milli = 4000000")
        try Data(text.utf8).write(to: URL(fileURLWithPath: conf))
        b.daemon?.signal(SIGHUP)
        // The scan armed with the old amount is re-armed with the new one, and the second driver taps.
        #expect(waitUntil(.seconds(60)) { b.sim.records("committed").count >= 1 && b.sim.records("approved").count >= 2 })
        #expect(b.stop() == 0)
        let approved = b.sim.records("approved")
        // What the terminal showed: the old amount until the reload, then the new one.
        #expect(b.sim.records("started").compactMap { $0["amount"] as? Int }.prefix(3) == [5000, 5000, 2500])
        #expect(approved.first?["requested"] as? Int == 5000)
        #expect(approved.dropFirst().first?["requested"] as? Int == 2500, "the reload did not reach the next reservation: \(approved)")
        // The first session was billed at the tariff it started with: 0.1 kWh a second for 4 s at
        // 0.40 is well under a euro; at the new tariff it would have hit the 50.00 cap.
        let first = b.sim.records("committed").first { $0["sessionId"] as? Int == approved.first?["sessionId"] as? Int }
        let amount = first?["amount"] as? Int ?? -1
        #expect(amount > 0 && amount < 100, "first session captured \(amount)")
    }

    @Test func aRotatedTokenIsPickedUpOnSighupAndNoMessageIsLostMeanwhile() throws {
        let keys = FileManager.default.temporaryDirectory.appendingPathComponent("token-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: keys, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: keys) }
        func writeToken(_ t: String) throws {
            // Written aside and renamed, mode 0600 from the start, as an operator's tool would.
            let tmp = keys + "/token.new"
            #expect(FileManager.default.createFile(atPath: tmp, contents: Data((t + "\n").utf8), attributes: [.posixPermissions: 0o600]))
            #expect(rename(tmp, keys + "/token") == 0)
        }
        try writeToken("token-A-0123456789")
        let b = try Bench(terminal: ["--session", "approve", "--fallback", "nocard"], cloud: ["--require-token", "token-A-0123456789"],
                          config: ["cloud.token_file = \(keys)/token"], ev: "plug=100,charge=2500,power=3600000")
        #expect(waitUntil(.seconds(60)) { b.relayEverClosed && b.cloudBodies("TransactionEvent").count >= 1 }, "no transaction started")
        // The platform rotates the station's token while the car charges: what the daemon sends
        // now is refused with 401 and must be kept, not dead-lettered.
        try b.cloud.directive("require-token token-B-9876543210")
        #expect(waitUntil(.seconds(60)) { b.cloud.records().contains { $0["status"] as? Int == 401 } }, "nothing was refused")
        try writeToken("token-B-9876543210")
        b.daemon?.signal(SIGHUP)
        #expect(waitUntil(.seconds(90)) { !b.settlements("Settled").isEmpty }, "the settlement never got through with the new token")
        #expect(b.stop() == 0)
        #expect(fileText(b.dir + "/state/dead-letters.jsonl").isEmpty, "a message refused for credentials was dead-lettered")
        let ended = b.ended()
        #expect(ended.count == 1)
        // Neither token is ever written to the daemon's state.
        for name in (try? FileManager.default.contentsOfDirectory(atPath: b.dir + "/state/ledger")) ?? [] {
            #expect(!fileText(b.dir + "/state/ledger/" + name).contains("token-"), "a token in \(name)")
        }
    }
}
