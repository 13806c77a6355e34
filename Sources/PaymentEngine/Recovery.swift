import Timebase

/// What recovery found in the ledger, for the log and the technicians.
public struct EngineRecovery: Equatable, Sendable {
    public var sessionsReplayed = 0
    public var openSessions = 0
    public var toRelease = 0
    public var toCapture = 0
    public var authorisationsInDoubt = 0
}

extension PaymentEngine {
    /// Rebuilds the engine from the ledger after a restart (or a crash at any point) and returns
    /// the effects that finish what was interrupted. Relays are open when the daemon starts.
    ///
    /// - approved, never charged → release;
    /// - charging, not stopped → stop with the last durable meter reading and capture its cost;
    /// - stopped, no request → capture or release as computed;
    /// - a cost limit (`costLimited`) → the lowest one caps what is captured, as it did live;
    /// - capture or release requested, unanswered → resend the same command (the terminal
    ///   takes a session's capture once: a repeat is answered "not found", never captured twice);
    /// - authorisation requested, no outcome → the approval may exist: listed where the terminal
    ///   can, else handed to reconciliation.
    public static func recover(config: EngineConfig, entries: [LedgerEntry], at now: Moment) -> (PaymentEngine, [EngineEffect], EngineRecovery) {
        var engine = PaymentEngine(config: config)
        var report = EngineRecovery()
        var order: [SessionKey] = []
        var closed = Set<SessionKey>()
        var maxKey: SessionKey = 0
        var stopReasons: [SessionKey: StopReason] = [:]
        for e in entries {
            let k = e.session
            maxKey = max(maxKey, k)
            if closed.contains(k) { continue }
            // A test mark without its authorisation request (a torn tail) marks nothing.
            if case .testTransaction = e, engine.sessions[k] == nil { continue }
            if e.closesSession {
                closed.insert(k)
                engine.sessions[k] = nil
                continue
            }
            if engine.sessions[k] == nil {
                order.append(k)
                engine.sessions[k] = Session(key: k, connector: -1, card: CardIdentity(maskedPAN: "", hash: []), tariff: config.tariff,
                                             phase: .authUnknown, requested: 0)
            }
            var s = engine.sessions[k]!
            switch e {
            case let .authRequested(_, connector, amount, card, tariff, _):
                // A connector the configuration no longer has (fewer configured since): the
                // money is still settled, with no connector to hold or relay to touch.
                s.connector = connector < config.connectors ? connector : -1
                s.requested = amount; s.card = card; s.tariff = tariff; s.phase = .authUnknown
            case let .approved(_, ref, authorised, _, _):
                s.handle = ref; s.authorised = authorised
                s.phase = .awaitingPlug(deadline: now.monotonic)
            case .charging:
                s.phase = .charging
            case let .meter(_, energy, seconds):
                s.energyWh = energy; s.secondsBefore = seconds; s.persistedWh = energy
            case let .stopped(_, reason, energy, seconds, _):
                s.energyWh = energy; s.secondsBefore = seconds
                s.phase = .disposing
                stopReasons[k] = reason
            case .captureRequested(_, let amount):
                s.disposition = .capture(amount); s.phase = .disposing
                // It may have been sent: a "not found" answer then means it most likely worked.
                s.attemptUnknown = true
            case .voidRequested:
                s.disposition = .release; s.phase = .disposing; s.attemptUnknown = true
            case .testTransaction:
                s.isTest = true
            case .costLimited(_, let maxCost, _):
                // The lowest limit holds, whatever order the entries came in.
                s.costLimit = min(s.costLimit ?? maxCost, maxCost)
            case .reportRequested:
                s.reportsRequested += 1
            default: break
            }
            engine.sessions[k] = s
        }
        report.sessionsReplayed = Set(entries.map(\.session)).count
        engine.nextKey = maxKey + 1
        engine.flow = .unavailable
        var fx: [EngineEffect] = []
        for k in order {
            guard let s = engine.sessions[k] else { continue }
            report.openSessions += 1
            switch s.phase {
            case .awaitingPlug, .deciding:
                // Approved but the driver never charged before the restart: release.
                report.toRelease += 1
                engine.dispose(k, .release, now, &fx)
            case .charging:
                report.toCapture += 1
                fx.append(.persist(.stopped(k, reason: .recovery, energyWh: s.energyWh, seconds: s.secondsBefore, at: now.wallMillis)))
                engine.sessions[k]?.phase = .disposing
                engine.dispose(k, PaymentEngine.disposition(tariff: s.tariff, authorised: s.authorised, energyWh: s.energyWh,
                                                            seconds: s.secondsBefore, reason: .recovery, costLimit: s.costLimit), now, &fx)
            case .disposing where s.disposition == nil:
                let d = PaymentEngine.disposition(tariff: s.tariff, authorised: s.authorised, energyWh: s.energyWh,
                                                  seconds: s.secondsBefore, reason: stopReasons[k], costLimit: s.costLimit)
                if case .capture = d { report.toCapture += 1 } else { report.toRelease += 1 }
                engine.dispose(k, d, now, &fx)
            case .disposing:
                if case .capture = s.disposition { report.toCapture += 1 } else { report.toRelease += 1 }
                engine.sessions[k]?.nextRetry = now.monotonic
            case .authUnknown, .authorising:
                engine.sessions[k]?.phase = .authUnknown
                // The driver saw the charger restart: a late approval is released, never charged on.
                engine.sessions[k]?.connector = -1
                report.authorisationsInDoubt += 1
            case .frozen:
                break
            }
        }
        for (i, _) in engine.connectors.enumerated() { engine.connectors[i].session = nil }
        return (engine, fx, report)
    }
}
