import ChargerPort
import ChargerSim
import CloudHTTP
import DaemonLog
import CloudSim
import Glibc
import JSONLines
import Ledger
import PaymentEngine
import Platform
import PSPCodec
import PSPLink
import PSPTerminal
import Station
import TerminalSim
import Timebase
import Transport
import Uplink
import OCPPJ
import OCPPJUplink

/// `paybridged --demo`: the real link, payment engine, ledger and uplink against an embedded
/// simulated Apollo on a real pseudo-terminal, an embedded cloud-sim on loopback, a simulated
/// relay and vehicles.
/// Three drivers: one charges and pays, one is declined, one never plugs in (released).
final class Demo {
    let loop: EventLoop
    let directory: String
    let keep: Bool
    var records: [JSON] = []
    var cardsSeen = 0
    var cloudMessages = 0

    init(loop: EventLoop, directory: String?) throws {
        self.loop = loop
        if let directory {
            mkdir(directory, 0o755)
            self.directory = directory
            keep = true
        } else {
            var template = Array("/tmp/paybridge-demo-XXXXXX".utf8CString)
            guard let p = mkdtemp(&template) else { throw SystemError(call: "mkdtemp", errno: errno) }
            self.directory = String(cString: p)
            keep = false
        }
    }

    func show(_ s: String) { print(s); fflush(nil) }

    func count(_ event: String) -> Int { records.filter { $0["event"] == .string(event) }.count }

    func run() throws -> Bool {
        let device = directory + "/ttyPSP"
        var scenario = SimScenario.defaults(for: .apollo)
        scenario.sessions = [ScriptedSession(.approve),
                             ScriptedSession(.decline(reason: 0x09), card: SimCard(maskedPAN: "541333******0434", hash: [1, 2, 3, 4], brand: "MASTERCARD")),
                             ScriptedSession(.approve, card: SimCard(maskedPAN: "374245*****1006", hash: [9, 9, 9, 9], brand: "AMEX"))]
        scenario.tapDelay = 700
        scenario.authDelay = 400
        let simRecord = directory + "/terminal-sim.record.jsonl"
        let sim = try SimulatorShell(loop: loop, mode: .pty(link: device), scenario: scenario, record: simRecord)
        sim.readsStandardInput = false
        sim.announce = { [unowned self] line in self.show("  [terminal-sim] \(line)") }
        sim.log = { line in Log.debug("terminal-sim: \(line)") }
        try sim.start()

        var config = EngineConfig()
        config.preauthAmount = 5000
        config.tariff = Tariff(currency: "EUR", startFee: 50, energyPricePerKWh: 40_000, timePricePerMinute: 0)
        config.plugInTimeout = .seconds(3)
        // The simulated terminal taps the next scripted card whenever it scans: keep it idle
        // while the connector is busy so each driver's card goes to their own session.
        config.scanForTapToStop = false
        let (ledger, _, _) = try Ledger.open(directory: directory + "/ledger")
        let driver = PSPLinkDriver(loop: loop, endpoint: .serial(path: device, settings: .psp),
                                   config: PSPLinkConfig(family: .apollo, transport: .serial))
        // 720 kW is not a car, but it makes 2.5 s of demo worth 0.50 kWh.
        let charger = try SimulatedCharger(loop: loop, connectors: 1, historyPath: directory + "/relay.jsonl",
                                           vehicles: SimulatedEVSettings(plugAfter: .milliseconds(600), chargeFor: .milliseconds(2500),
                                                                         powerW: 720_000, plugs: [true, false]))
        // The embedded cloud: cloud-sim's server on loopback, spoken to over OCPP-J (the daemon's
        // default binding) through the daemon's own WebSocket uplink.
        let cloud = try CloudServer(loop: loop, port: 0, core: CloudSimCore(station: "DEMO-1"), record: directory + "/cloud-sim.record.jsonl")
        cloud.readsStandardInput = false
        cloud.announce = { [unowned self] line in self.show("  [cloud-sim] \(line)") }
        cloud.onRecord = { [unowned self] r in
            guard case .string(let action)? = r["action"] else { return }
            var what = action
            if case .string(let e)? = r["body"]?["eventType"] { what += " \(e)" }
            if case .string(let st)? = r["body"]?["status"] { what += " \(st)" }
            if let amount = r["body"]?["settlementAmount"] { what += " \(amount.text)" }
            self.cloudMessages += 1
            self.show("  [cloud-sim got] \(what)")
        }
        try cloud.start()
        let client = try HTTPClient(loop: loop)
        var settings = OCPPJSettings(url: try WebSocketURL(parsing: "ws://127.0.0.1:\(cloud.port)/ocpp"), stationId: "DEMO-1",
                                     bootPayload: BootPayload.make(reason: .powerUp, vendor: "paybridge", model: "paybridge-demo", serial: "DEMO-1"))
        settings.pingInterval = nil
        let uplink = OCPPJUplink(loop: loop, client: client, settings: settings, seed: 42)
        var outboxConfig = OutboxConfig()
        outboxConfig.maxInFlight = 1
        outboxConfig.startsOffline = true
        let station = Station(loop: loop, engine: PaymentEngine(config: config), ledger: ledger,
                              terminal: PSPTerminalPort(loop: loop, driver: driver), charger: charger, decider: uplink, uplink: uplink, stationId: "DEMO-1",
                              outbox: Outbox(config: outboxConfig))
        uplink.onReady = { [unowned station] in station.post(.uplinkReady) }
        uplink.onNotice = { [unowned self] _, text in self.show("  [uplink] \(text)") }
        station.onNotice = { [unowned self] _, text in self.show("  [engine] \(text)") }
        let engineLink = driver.onEvent
        driver.onEvent = { [unowned self] e in
            let (level, text) = describe(e)
            if level <= .info, case .message = e { self.show("  [terminal] \(text)") }
            if case .up = e { self.show("  [terminal] \(text)") }
            engineLink(e)
        }
        sim.onRecord = { [unowned self] r in
            self.records.append(r)
            // The timing records (for latency tests) would only interrupt the story.
            if r["event"] == .string("cardRead") || r["event"] == .string("authSession") { return }
            self.show("  [terminal-sim record] \(r.text)")
            let outcomes = self.count("approved") + self.count("declined")
            if outcomes == 1 && self.count("declined") == 0 && r["event"] == .string("approved") {
                self.show("1. Driver A paid and plugged in: charging at a simulated 720 kW for about 2.5 s (tariff: 0.50 start fee + 0.40 per kWh)")
            }
            if outcomes >= 3 { station.post(.engine(.acceptNewSessions(false))) }
        }
        show("paybridge demo: PSP link, payment engine and write-ahead ledger against a simulated Apollo on \(device)")
        show("Three drivers tap in turn: A charges and pays; B's bank declines; C is approved but never plugs in (released after 3 s).")
        station.start(recoveryEffects: [])
        uplink.start()
        let done = try loop.run(until: { [unowned self] in
            self.count("approved") + self.count("declined") >= 3 && station.engine.sessions.isEmpty
                && self.count("committed") + self.count("voided") >= self.count("approved") && station.outbox.pending == 0
        }, deadline: MonotonicClock.now() + .seconds(60))
        station.shutdown()
        uplink.stop()
        _ = try loop.run(until: { false }, deadline: MonotonicClock.now() + .milliseconds(50))
        ledger.close()
        let open = count("approved") + count("partiallyApproved") - count("committed") - count("voided")
        let captured = records.filter { $0["event"] == .string("committed") }.compactMap { r -> Int64? in
            if case .int(let a)? = r["amount"] { return a } else { return nil }
        }
        show("summary: settled=\(count("committed")) voided=\(count("voided")) declined=\(count("declined")) open=\(open) cloudMessages=\(cloudMessages)"
             + (captured.isEmpty ? "" : " captured=\(captured.map(String.init).joined(separator: ","))") + (done ? "" : " error=timed out"))
        if keep {
            show("kept in \(directory): terminal-sim.record.jsonl, cloud-sim.record.jsonl, relay.jsonl, ledger/")
        } else {
            for f in ["terminal-sim.record.jsonl", "cloud-sim.record.jsonl", "relay.jsonl", "ttyPSP"] { unlink(directory + "/" + f) }
            if let names = try? SystemLedgerIO().listDirectory(directory + "/ledger") {
                for n in names { unlink(directory + "/ledger/" + n) }
            }
            rmdir(directory + "/ledger")
            rmdir(directory)
        }
        return done && open == 0
    }
}
