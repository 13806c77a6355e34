import Glibc
import PaymentEngine
import Platform
import Timebase

/// Seeds for the property tests: fixed ones, or REPORTS_SEED to replay a failure. Each test
/// prints its seed, so a failure in a log can be replayed without reading the test.
enum Seeds {
    static func sample(_ n: Int) -> [UInt64] {
        if let p = getenv("REPORTS_SEED"), let s = UInt64(String(cString: p)) { return [s] }
        return (0..<UInt64(n)).map { 0x5E55_0000 + $0 }
    }

    static func generator(_ seed: UInt64, _ test: String) -> SeededGenerator {
        print("\(test): seed \(seed) (replay with REPORTS_SEED=\(seed))")
        return SeededGenerator(seed: seed)
    }
}

enum DriverError: Error { case noCommand(String), noSession }

/// A real engine driven through a session's life, its durable entries kept as the ledger
/// would: the open sessions the rows are built from are the engine's own.
struct EngineDriver {
    var engine: PaymentEngine
    var now = Moment(monotonic: Instant(nanoseconds: 1_000_000_000_000), wallMillis: 1_764_918_000_000)
    var ledger: [LedgerEntry] = []
    var pending: [CommandID: TerminalCommand] = [:]

    init(connectors: Int = 2, tariff: Tariff = Tariff(currency: "EUR", startFee: 0, energyPricePerKWh: 40_000, timePricePerMinute: 0)) {
        var c = EngineConfig()
        c.connectors = connectors
        c.tariff = tariff
        engine = PaymentEngine(config: c)
        send(.terminal(.ready([])))
    }

    @discardableResult
    mutating func send(_ input: EngineInput) -> [EngineEffect] { record(engine.handle(input, at: now)) }

    mutating func advance(_ d: Duration) {
        now = Moment(monotonic: now.monotonic + d, wallMillis: now.wallMillis + d.millisecondsClamped)
        record(engine.tick(at: now))
    }

    @discardableResult
    mutating func record(_ fx: [EngineEffect]) -> [EngineEffect] {
        for e in fx {
            switch e {
            case .persist(let entry): ledger.append(entry)
            case let .terminal(id, c): pending[id] = c
            default: break
            }
        }
        return fx
    }

    mutating func complete(_ match: (TerminalCommand) -> Bool, _ what: String) throws {
        guard let (id, c) = pending.filter({ match($0.value) }).max(by: { $0.key < $1.key }) else { throw DriverError.noCommand(what) }
        pending[id] = nil
        send(.terminal(.completed(id, c, .ok)))
    }

    /// A card on the terminal: the session is deciding (nothing durable yet).
    mutating func tap(_ card: CardIdentity) throws -> SessionKey {
        advance(.seconds(1))   // the terminal is armed on a tick
        try complete({ if case .arm = $0 { return true }; return false }, "arm")
        for e in send(.terminal(.cardRead(card))) { if case let .askCloud(k, _, _) = e { return k } }
        throw DriverError.noSession
    }

    /// Allowed and approved: the session waits for the plug.
    mutating func approve(_ k: SessionKey, handle: UInt32, amount: Int64 = 5_000, pspRef: [UInt8]) throws {
        advance(.seconds(2))
        send(.cloud(k, CardDecision(allowed: true)))
        try complete({ if case .authorise = $0 { return true }; return false }, "authorise")
        advance(.seconds(3))
        send(.terminal(.approved(TerminalHandle(reference: handle), amount: amount, pspRef: pspRef)))
    }
}

/// python3 with prometheus_client, for checking the exposition with the reference parser.
enum PythonPrometheus {
    static let available: Bool = {
        guard let p = try? ChildProcess.spawn("/usr/bin/env", ["python3", "-c", "import prometheus_client"], captureStdout: false, pipeStdin: false)
        else { return false }
        return p.wait(timeout: .seconds(60)) == 0
    }()
}

/// Tests name terminal handles by their 32-bit reference, as a PSP terminal does.
extension TerminalHandle: ExpressibleByIntegerLiteral {
    public init(integerLiteral value: UInt32) { self.init(reference: value) }
}
