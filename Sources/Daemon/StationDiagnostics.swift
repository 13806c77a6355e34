import Configuration
import ControllerInput
import DaemonLog
import DiagnosticsProtocol
import DiagnosticsSocket
import Glibc
import JSONLines
import PaymentEngine
import Platform
import Station
import StationReports
import TerminalPort
import Timebase
import Uplink

/// The daemon's version, shown by `paybridgectl status` and in the inventory.
public let paybridgeVersion = "0.13.0"

/// The daemon's answers on the diagnostic socket (docs/diagnostics.md): it reads the station's
/// state and posts operator inputs like any other input. It runs on the station's loop and never
/// blocks it; every answer is built from memory (the ledger's records for `sessions` and `export`
/// are the ones recovery read plus what the engine wrote since, kept by `SessionBook`).
public final class StationDiagnostics: DiagnosticsHandler {
    unowned let daemon: StationDaemon
    let startedAt: Instant
    let startedWall: Int64
    /// Watch streams, by client.
    var watchers: [ObjectIdentifier: (DiagnosticsClient, Int64)] = [:]
    /// The client following the running test transaction, and the step it was last told.
    var testFollower: (client: DiagnosticsClient, id: Int64, told: TestTransaction.Step?)?
    /// The connection that is the charger's controller (`charger.io = socket`) and the id of its
    /// `controller` request, which its events carry.
    var controllerClient: (client: DiagnosticsClient, id: Int64)?
    /// A test transaction's amount when the technician names none (minor units: 1.00 EUR).
    public static let defaultTestAmount: Int64 = 100

    init(daemon: StationDaemon) {
        self.daemon = daemon
        startedAt = MonotonicClock.now()
        startedWall = WallClock.nowMillisecondsSinceEpoch()
    }

    var station: Station { daemon.station }
    var config: DaemonConfig { daemon.running }

    public func handle(_ command: DiagnosticsCommand, id: Int64, client: DiagnosticsClient) {
        switch command {
        case .status: client.reply(id, status())
        case .inventory: client.reply(id, inventory())
        case .watch:
            watchers[ObjectIdentifier(client)] = (client, id)
            client.onClose.append { [weak self, unowned client] in self?.watchers[ObjectIdentifier(client)] = nil }
            client.reply(id, [("watching", .bool(true))])
        case let .stop(connector, reason):
            guard let c = checkedConnector(connector, id, client) else { return }
            guard let key = station.engine.connectorOffers[c].sessionKey else {
                client.fail(id, DiagnosticsError(.refused, "no session on connector \(connector)"))
                return
            }
            Log.warning("operator stop of session \(key) on connector \(connector) by uid \(client.peer.uid) pid \(client.peer.pid)\(reason.map { ": \($0)" } ?? "")")
            station.post(.engine(.operatorStop(connector: c)))
            client.reply(id, [("connector", .number(connector)), ("session", .number(key)), ("stopping", .bool(true))])
        case let .sessions(openOnly, last):
            var rows = SessionRows.rows(open: station.engine.sessions, summaries: daemon.book.summaries, entries: [], stationId: config.stationId)
            rows = SessionRows.filter(rows, SessionRows.Filter(openOnly: openOnly, last: last))
            client.reply(id, [("sessions", .array(rows.map(\.json)))])
        case let .export(from, to, format):
            let period: (from: Int64?, to: Int64?)
            do throws(DateArgumentError) { period = try DateArgument.period(from: from, to: to) } catch {
                client.fail(id, DiagnosticsError(.badField, "\(error)"))
                return
            }
            var rows = SessionRows.rows(open: [:], summaries: daemon.book.summaries, entries: [], stationId: config.stationId)
            rows = SessionRows.filter(rows, SessionRows.Filter(from: period.from, to: period.to))
            let text = format == .csv ? ReconciliationExport.csv(rows, stationId: config.stationId) : ReconciliationExport.json(rows, stationId: config.stationId)
            client.reply(id, [("format", .string(format.rawValue)), ("rows", .number(ReconciliationExport.exported(rows).count)), ("text", .string(text))])
        case .metrics:
            client.reply(id, [("text", .string(metrics().prometheusText()))])
        case .acceptTerminal:
            let c = station.conditions
            guard c.swap != nil || c.alert != nil else {
                client.fail(id, DiagnosticsError(.refused, "nothing to accept: the terminal is the one recorded and reported no tampering"))
                return
            }
            Log.warning("terminal accepted by uid \(client.peer.uid) pid \(client.peer.pid): \(c.reported?.serialNumber ?? "?") is now the station's terminal")
            station.post(.conditions(.accepted(wallMillis: WallClock.nowMillisecondsSinceEpoch())))
            client.reply(id, [("text", .string("terminal \(c.reported?.serialNumber ?? "?") accepted; payments resume once the record is on disk"))])
        case let .testTransaction(connector, amount):
            startTest(connector: connector ?? 1, amount: amount ?? min(Self.defaultTestAmount, config.engine.preauthAmount), id, client)
        case .controller: becomeController(id, client)
        case let .clearFault(c):
            guard (1...config.engine.connectors).contains(c) else {
                client.fail(id, DiagnosticsError(.badField, "no connector \(c) (this charger has \(config.engine.connectors))"))
                return
            }
            if let refusal = daemon.clearWeld(connector: c - 1) {
                client.fail(id, DiagnosticsError(.refused, refusal))
                return
            }
            Log.warning("connector \(c): welded-relay latch cleared by uid \(client.peer.uid) pid \(client.peer.pid)")
            client.reply(id, [("connector", .number(c)), ("text", .string("connector \(c): welded-relay latch cleared; the connector takes sessions again"))])
        case let .plug(c, plugged):
            controllerInput(id, client, "connector \(c): \(plugged ? "plugged in" : "unplugged")") { (p) throws(ControllerInputError) in try p.plug(connector: c, plugged: plugged) }
        case let .meter(c, wh, w):
            if daemon.meterFeed != nil {
                client.fail(id, DiagnosticsError(.refused, "the daemon reads the energy meters itself (meter.device = \(config.meterDevice)); a reading from the socket is not billed"))
                return
            }
            controllerInput(id, client, "connector \(c): register \(wh) Wh\(w.map { ", \($0) W" } ?? "") accepted") { (p) throws(ControllerInputError) in
                try p.meter(connector: c, registerWh: wh, powerW: w)
            }
        case let .fault(c, text):
            controllerInput(id, client, "connector \(c): fault reported") { (p) throws(ControllerInputError) in try p.fault(connector: c, text: text) }
        case let .evseReady(c, ready):
            controllerInput(id, client, "connector \(c): \(ready ? "ready" : "not ready")") { (p) throws(ControllerInputError) in try p.evseReady(connector: c, ready: ready) }
        case let .relay(c, closed):
            controllerInput(id, client, "connector \(c): relay \(closed ? "closed" : "open") noted") { (p) throws(ControllerInputError) in try p.relayFeedback(connector: c, closed: closed) }
        }
    }

    // MARK: the charger's controller

    /// `controller`: this connection receives the relay requests and offers from now on.
    func becomeController(_ id: Int64, _ client: DiagnosticsClient) {
        guard let port = daemon.controller else {
            client.fail(id, DiagnosticsError(.refused, "charger.io = \(config.chargerIO.rawValue): the charger's hardware is not driven through this socket"))
            return
        }
        if let current = controllerClient, current.client.isOpen {
            client.fail(id, DiagnosticsError(.refused, "a controller is already connected (uid \(current.client.peer.uid) pid \(current.client.peer.pid))"))
            return
        }
        // A controller that left a moment ago may not have been let go yet (that is done from the
        // loop): the new one must be told every connector's state again.
        daemon.controllerConnection(false)
        controllerClient = (client, id)
        client.onClose.append { [weak self, unowned client] in self?.controllerClosed(client) }
        client.reply(id, [("controller", .bool(true)), ("connectors", .number(port.connectors)),
                          ("meter_timeout_seconds", .int(config.meterTimeoutSeconds)),
                          ("relay_confirm_seconds", .int(port.relays.confirmTimeout.components.seconds))])
        Log.info("charger controller connected: uid \(client.peer.uid) pid \(client.peer.pid)")
        daemon.controllerConnection(true)
        for (c, offer) in station.engine.connectorOffers.enumerated() { offered(connector: c + 1, offer) }
    }

    /// The controller's connection is gone. Dropping a client can happen while the engine is
    /// asking for a relay (a reply to a slow reader): the port is told from the loop instead.
    func controllerClosed(_ client: DiagnosticsClient) {
        guard let current = controllerClient, current.client === client else { return }
        controllerClient = nil
        Log.warning("charger controller disconnected (uid \(client.peer.uid) pid \(client.peer.pid))")
        _ = daemon.loop.schedule(at: MonotonicClock.now()) { [weak self] in
            guard let self, self.controllerClient == nil else { return }
            self.daemon.controllerConnection(false)
        }
    }

    /// The engine asks for a contactor (`ControllerChargerPort.onRelayRequest`).
    func relayRequested(connector: Int, closed: Bool) {
        guard let c = controllerClient else { return }
        c.client.event(c.id, kind: "relay", [("connector", .number(connector)), ("closed", .bool(closed))])
    }

    /// What a connector offers now (`ControllerChargerPort.onOffer`), for the controller's display.
    func offered(connector: Int, _ offer: PaymentEngine.ConnectorOffer) {
        guard let c = controllerClient else { return }
        c.client.event(c.id, kind: "offer", [("connector", .number(connector)), ("offer", .string(offer.wireName)),
                                             ("session", offer.sessionKey.map { .number($0) } ?? .null)])
    }

    /// A controller input (`plug`, `meter`, `fault`, `evse-ready`, `relay`) from any administrator's
    /// connection (the controller's own, or `paybridgectl` on a bench).
    func controllerInput(_ id: Int64, _ client: DiagnosticsClient, _ done: String,
                         _ act: (ControllerChargerPort) throws(ControllerInputError) -> Void) {
        guard let port = daemon.controller else {
            client.fail(id, DiagnosticsError(.refused, "charger.io = \(config.chargerIO.rawValue): the charger's inputs do not come from this socket"))
            return
        }
        do throws(ControllerInputError) { try act(port) } catch {
            switch error {
            case let .connectorOutOfRange(n, count):
                client.fail(id, DiagnosticsError(.badField, "this charger has connectors 1…\(count), not \(n)"))
            case .meterRejected(let why):
                Log.warning("controller: meter reading refused (\(why.rawValue)) from uid \(client.peer.uid) pid \(client.peer.pid)")
                client.fail(id, DiagnosticsError(.refused, "meter reading refused: \(why.explanation)"))
            case .emptyFaultText: client.fail(id, DiagnosticsError(.badField, "a fault needs a text"))
            case .faultTextTooLong(let max): client.fail(id, DiagnosticsError(.badField, "a fault text is at most \(max) bytes"))
            }
            return
        }
        client.reply(id, [("text", .string(done))])
    }

    func startTest(connector: Int, amount: Int64, _ id: Int64, _ client: DiagnosticsClient) {
        guard let c = checkedConnector(connector, id, client) else { return }
        guard amount <= config.engine.preauthAmount else {
            client.fail(id, DiagnosticsError(.badField, "a test transaction reserves at most the pre-authorisation amount (\(config.engine.preauthAmount))"))
            return
        }
        if let why = station.engine.testRefusal(connector: c) {
            client.fail(id, DiagnosticsError(.refused, "no test transaction now: \(why)"))
            return
        }
        Log.info("test transaction on connector \(connector) for \(amount) asked by uid \(client.peer.uid) pid \(client.peer.pid)")
        // The reply before the steps: posting runs the engine at once, and its first step would
        // otherwise reach the technician ahead of the answer to the request.
        let currency = config.engine.tariff.currency
        client.reply(id, [("connector", .number(connector)), ("amount", .decimal(minor: amount, exponent: CurrencyExponent.of(currency))),
                          ("currency", .string(currency))])
        testFollower = (client, id, nil)
        station.post(.engine(.testTransaction(connector: c, amount: amount)))
        stationChanged()
    }

    /// Called after each station notice: tells the test transaction's follower what changed.
    func stationChanged() {
        guard let f = testFollower, let test = station.engine.lastTest, test.step != f.told else { return }
        testFollower?.told = test.step
        guard f.client.isOpen else { testFollower = nil; return }
        switch test.step {
        case .waitingForCard: f.client.event(f.id, kind: "step", [("text", .string("waiting for a card on the terminal"))])
        case .authorising(let k): f.client.event(f.id, kind: "step", [("session", .number(k)), ("text", .string("card read; authorising (session \(k))"))])
        case .voiding(let k): f.client.event(f.id, kind: "step", [("session", .number(k)), ("text", .string("approved; voiding the reservation"))])
        case .succeeded(let k):
            f.client.event(f.id, kind: "outcome", [("succeeded", .bool(true)), ("session", .number(k)), ("text", .string("approved and voided: the terminal and the acquirer answer"))])
            testFollower = nil
            onTestSucceeded()
        case .failed(let why):
            f.client.event(f.id, kind: "outcome", [("succeeded", .bool(false)), ("text", .string(why))])
            testFollower = nil
        }
    }

    /// A test transaction went through: the storage rule's recommendation ends.
    func onTestSucceeded() {
        station.post(.conditions(.testTransactionSucceeded(wallMillis: WallClock.nowMillisecondsSinceEpoch())))
    }

    /// The figures `metrics` and the metrics file show.
    func metrics() -> StationMetrics {
        var m = StationMetrics()
        for s in daemon.book.summaries {
            if let o = s.outcome { m.sessionsByOutcome[o, default: 0] += 1 }
            if s.outcome == .captured, let c = s.captured { m.capturedMinorByCurrency[s.currency, default: 0] += c }
        }
        let counters = station.terminal.status.counters
        m.linkDrops = counters["linkHangUps"] ?? 0
        m.framesBad = (counters["framesMalformed"] ?? 0) + (counters["framesUndecodable"] ?? 0)
        m.outboxDepth = station.outbox.pending
        if let oldest = station.outbox.oldestQueuedAt { m.outboxOldestAgeSeconds = Double((MonotonicClock.now() - oldest).nanosecondsClamped) / 1e9 }
        m.deadLetters = station.outbox.deadLetters
        m.ledgerSyncs = station.syncs
        m.syncLatency = syncLatency
        m.relayOperations = station.relayOperations
        m.activeWarnings = warnings().count
        m.metricsFileFailures = daemon.metricsFile?.outcomes.failures ?? 0
        return m
    }

    /// The ledger's sync times since start.
    var syncLatency = SyncLatencyHistogram()

    /// The engine's connector index for a person's connector number, or a refusal sent.
    func checkedConnector(_ n: Int, _ id: Int64, _ client: DiagnosticsClient) -> Int? {
        let count = station.engine.config.connectors
        guard n >= 1, n <= count else {
            client.fail(id, DiagnosticsError(.badField, "this charger has connectors 1…\(count), not \(n)"))
            return nil
        }
        return n - 1
    }

    /// A log line for every watcher (`{"event":"log","level":…,"text":…}`).
    func logged(_ level: LogLevel, _ text: String) {
        guard !watchers.isEmpty else { return }
        let wall = WallClock.nowMillisecondsSinceEpoch()
        for (client, id) in watchers.values {
            client.event(id, kind: "log", [("at", .int(wall)), ("level", .string(level.name)), ("text", .string(text))])
        }
    }

    // MARK: status

    func seconds(since i: Instant?, now: Instant) -> JSON {
        guard let i else { return .null }
        return .int(max(0, (now - i).nanosecondsClamped / 1_000_000_000))
    }

    func status() -> [(String, JSON)] {
        let now = MonotonicClock.now()
        let engine = station.engine
        let t = station.terminal.status
        var terminal: [(String, JSON)] = [
            ("link", .string(t.linkUp ? "up" : "down")),
            ("since_seconds", seconds(since: daemon.linkChangedAt, now: now)),
            ("state", t.state.map { .string($0) } ?? .null),
            ("protocol", .string(t.protocolName)), ("family", .string(t.family)), ("endpoint", .string(t.endpoint)),
            ("last_error", t.lastError.map { .string($0) } ?? .null),
        ]
        terminal.append(("counters", .object(t.counters.sorted { $0.key < $1.key }.map { ($0.key, .number($0.value)) })))
        let statuses = engine.connectorStatuses
        let offers = engine.connectorOffers
        let relays = engine.relayCommands
        let plugs = engine.pluggedIn
        var connectors: [JSON] = []
        for c in 0..<engine.config.connectors {
            var fields: [(String, JSON)] = [("connector", .number(c + 1)), ("status", .string(statuses[c].rawValue)),
                                            ("relay", .string(relays[c] ? "closed" : "open")), ("plugged", .bool(plugs[c]))]
            // A latch a technician must clear (after inspecting the contactor), or null.
            fields.append(("latched", daemon.weldedLatched.contains(c) ? .string("welded relay") : .null))
            if let key = offers[c].sessionKey, let s = engine.sessions[key] {
                fields.append(("session", .object(sessionFields(s, now: now))))
            } else {
                fields.append(("session", .null))
            }
            connectors.append(.object(fields))
        }
        var meterFields: JSON = .null
        if let feed = daemon.meterFeed {
            var each: [JSON] = []
            for (address, m) in feed.meters.sorted(by: { $0.key < $1.key }) {
                each.append(.object([("address", .number(Int(address))), ("connector", .number(m.connector + 1)), ("model", .string(m.model.rawValue)),
                                     ("serial", m.serial.map(JSON.string) ?? .null), ("register_wh", m.registerWh.map { JSON.int($0) } ?? .null),
                                     ("read_seconds_ago", m.readAt.map { JSON.int((now - $0).components.seconds) } ?? .null),
                                     ("accepted", .number(m.accepted)), ("rejected", .number(m.rejected)), ("failures", .number(m.failures)),
                                     ("problem", m.lastProblem.map(JSON.string) ?? .null)]))
            }
            meterFields = .object([("device", .string(config.meterDevice)), ("port_problem", feed.lastPortProblem.map(JSON.string) ?? .null),
                                   ("port_problems", .number(feed.portProblems)), ("meters", .array(each))])
        }
        let ledger = station.ledger
        let outbox = station.outbox
        var outboxFields: [(String, JSON)] = [
            ("queued", .number(outbox.pending)),
            ("by_action", .object(outbox.pendingByAction.sorted { $0.key < $1.key }.map { ($0.key, .number($0.value)) })),
            ("oldest_age_seconds", seconds(since: outbox.oldestQueuedAt, now: now)),
            ("dead_letters", .number(outbox.deadLetters)),
            ("delivered", .number(outbox.delivered)),
            ("cloud", .string(station.uplink == nil ? "none" : outbox.reachable ? "reachable" : "unreachable")),
            ("protocol", station.uplink == nil ? .null : .string(config.cloudProtocol.rawValue)),
        ]
        if let j = daemon.ocppj {
            let rpc = j.rpcCounters
            outboxFields.append(("ocpp_j", .object([
                ("registration", .string("\(j.registration)")),
                ("subprotocol", j.subprotocol.map { .string($0) } ?? .null),
                ("heartbeat_seconds", j.heartbeatInterval.map { .number($0.components.seconds) } ?? .null),
                ("connections", .number(j.counters.connections)), ("disconnects", .number(j.counters.disconnects)),
                ("connect_failures", .number(j.counters.connectFailures)),
                ("authorize_offline", .number(j.counters.authorizeOffline)), ("authorize_refused", .number(j.counters.authorizeRefused)),
                ("malformed", .number(rpc.malformed)), ("timeouts", .number(rpc.timeouts)),
                ("unhandled_actions", .number(rpc.unhandledActions)), ("late_responses", .number(rpc.lateOrUnknownResponses)),
                ("cost_differences", .number(daemon.csmsCostDifferences)),
            ])))
        }
        outboxFields.append((outbox.reachable ? "reachable_since_seconds" : "unreachable_since_seconds",
                             outbox.reachableChangedAt.map { seconds(since: $0, now: now) } ?? seconds(since: startedAt, now: now)))
        let why = notTakingPaymentsReason()
        return [
            ("version", .string(paybridgeVersion)),
            ("uptime_seconds", seconds(since: startedAt, now: now)),
            ("station_id", .string(config.stationId)),
            ("terminal", .object(terminal)),
            ("connectors", .array(connectors)),
            ("energy_meters", meterFields),
            ("ledger", .object([
                ("records_written", .number(station.persisted)),
                ("records_at_start", .number(daemon.recovered?.records ?? 0)),
                ("used_bytes", .number(ledger.usedBytes)), ("budget_bytes", .number(ledger.options.diskBudgetBytes)),
                ("last_error", station.ledgerError.map { .string("\($0)") } ?? .null),
            ])),
            ("outbox", .object(outboxFields)),
            ("payments", .object([("enabled", .bool(why == nil)), ("reason", why.map { .string($0) } ?? .null)])),
            ("warnings", .array(warnings().map { .string($0) })),
            ("charger_io", .string(config.chargerIO.rawValue)),
            ("controller", controllerStatus()),
            ("socket", .object([("clients", .number(daemon.diagnosticsServer?.clients.count ?? 0)),
                                ("errors", .number(daemon.diagnosticsServer?.counters.errorsTotal ?? 0))])),
        ]
    }

    /// `charger.io = socket`: whether the controller is connected, who it is, and what its
    /// port counted (readings accepted and refused, relay confirmations, meter timeouts).
    func controllerStatus() -> JSON {
        guard let port = daemon.controller else { return .null }
        var fields: [(String, JSON)] = [("connected", .bool(port.controllerConnected))]
        if let c = controllerClient {
            fields += [("uid", .int(Int64(c.client.peer.uid))), ("pid", .int(Int64(c.client.peer.pid)))]
        }
        fields.append(("counters", .object(port.counters.sorted { $0.key < $1.key }.map { ($0.key, .number($0.value)) })))
        return .object(fields)
    }

    func sessionFields(_ s: Session, now: Instant) -> [(String, JSON)] {
        let exponent = CurrencyExponent.of(s.tariff.currency)
        return [
            ("id", .number(s.key)), ("phase", .string(Self.phaseName(s.phase))),
            ("card", .string(s.card.maskedPAN)), ("brand", .string(s.card.brand)),
            ("authorised", .decimal(minor: s.authorised, exponent: exponent)), ("currency", .string(s.tariff.currency)),
            ("energy_wh", .int(s.energyWh)),
            ("terminal_reference", s.handle.map { .string($0.label) } ?? .null),
        ]
    }

    static func phaseName(_ p: Session.Phase) -> String {
        switch p {
        case .deciding: return "deciding"
        case .authorising: return "authorising"
        case .authUnknown: return "authorisation-unknown"
        case .awaitingPlug: return "awaiting-plug"
        case .charging: return "charging"
        case .disposing: return "settling"
        case .frozen: return "frozen"
        }
    }

    /// Why no new payments are taken now, nil when they are.
    func notTakingPaymentsReason() -> String? {
        if let why = station.notTakingPayments { return why }
        if let why = station.conditions.paymentsBlockedReason { return why }
        if let e = station.ledgerError { return "the ledger failed: \(e)" }
        if !station.engine.acceptingPayments { return "the payment engine is not taking new sessions (storage full, stopping or paused)" }
        return nil
    }

    /// What a technician should act on: the last error or warning, the terminal's conditions.
    func warnings() -> [String] {
        var out = station.conditions.warnings
        if station.conditions.recommendsTestTransaction {
            out.append("the terminal was away longer than terminal.storage_days: run paybridgectl test-transaction")
        }
        if let p = station.lastProblem { out.append("\(p.severity): \(p.text)") }
        return out
    }

    // MARK: inventory

    func inventory() -> [(String, JSON)] {
        let t = station.terminal.status
        let id = t.identity
        func text(_ s: String?) -> JSON { s.map { .string($0) } ?? .null }
        return [
            ("terminal", .object([
                ("protocol", .string(t.protocolName)), ("family", .string(t.family)),
                ("model", text(id?.model)), ("serial_number", text(id?.serialNumber)), ("firmware", text(id?.firmware)),
                ("sim_serial", text(id?.simSerial)), ("sam_serials", .array((id?.samSerials ?? []).map { .string($0) })),
                ("endpoint", .string(t.endpoint)),
                ("transfer_number", .string(config.terminalTransferNumber)), ("domain", .string(config.terminalDomain)),
                // Text or hex as the terminal gave it (card data already filtered), and where from.
                ("network", t.network.map { n -> JSON in
                    .object((n.text.map { [("text", JSON.string($0))] } ?? []) + (n.hex.map { [("hex", JSON.string($0))] } ?? [])
                            + [("source", .string(n.source))])
                } ?? .null),
            ])),
            ("charger", .object([("serial_number", .string(config.chargerSerial)), ("connectors", .number(config.engine.connectors)),
                                 ("station_id", .string(config.stationId))])),
            ("payment", .object([("processor", .string(config.paymentProcessor.rawValue))])),
            ("paybridge", .object([("version", .string(paybridgeVersion))])),
        ]
    }
}

extension PaymentEngine.ConnectorOffer {
    /// The offer's name in `offer` events.
    var wireName: String {
        switch self {
        case .available: return "available"
        case .busy: return "busy"
        case .awaitingPlug: return "awaiting-plug"
        case .charging: return "charging"
        case .unavailable: return "unavailable"
        }
    }

    /// The session shown on this connector, if any.
    var sessionKey: SessionKey? {
        switch self {
        case .busy(let k), .awaitingPlug(let k), .charging(let k): return k
        case .available, .unavailable: return nil
        }
    }
}
