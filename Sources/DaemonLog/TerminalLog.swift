import Glibc
import Platform
import PSPCodec
import PSPLink
import PSPTerminal
import Timebase

/// What the daemon logs about its terminal: the link's events (`describe`), the terminal being
/// away and back (`AvailabilityReport`, once per reason), and bad input summarised at most once
/// per `LineNoiseLimits.reportInterval` (`LineNoiseSummary`), never one line per bad frame.
public final class TerminalLog {
    let loop: EventLoop
    let endpoint: String
    var noise: LineNoiseSummary
    lazy var timer = DeadlineTimer(loop: loop) { [unowned self] in
        self.report(self.noise.tick(now: MonotonicClock.now()))
    }

    public init(loop: EventLoop, driver: PSPLinkDriver) {
        self.loop = loop
        endpoint = "\(driver.connection.endpoint)"
        noise = LineNoiseSummary(now: MonotonicClock.now())
        driver.onAvailability = { [unowned self] r in
            let (level, text) = self.text(for: r)
            Log.write(level, text)
        }
    }

    /// Logs one link event. Bad input is counted and summarised; a link that went down is
    /// reported by the availability reports (once per reason), so its event is debug here.
    public func log(_ e: LinkEvent) {
        let now = MonotonicClock.now()
        switch e {
        case let .malformed(kind, n): report(noise.malformed(kind, skipped: n, now: now))
        case let .undecodable(h, _): report(noise.undecodable(header: h, now: now))
        case .down:
            Log.write(.debug, describe(e).1)
        case .message(.cardRead), .message(.propCardRead):
            // Describing a card runs the card-data filter over its DOL again, before the card's
            // question leaves for the cloud: only for a line that is written (info).
            guard LogLevel.info <= Log.threshold else { return }
            let (level, text) = describe(e)
            Log.write(level, text)
        default:
            let (level, text) = describe(e)
            Log.write(level, text)
        }
    }

    /// The daemon is stopping: what is still counted is logged now.
    public func flush() {
        report(noise.flush(now: MonotonicClock.now()))
    }

    func report(_ r: LineNoiseReport?) {
        if let r { Log.warning(Self.summary(r, total: noise.total, interval: noise.interval)) }
        timer.arm(noise.nextDeadline)
    }

    func text(for r: AvailabilityReport) -> (LogLevel, String) {
        switch r {
        case .unreachable(let reason):
            return (.warning, "terminal \(endpoint) cannot be opened: \(reason); retrying (logged again only for another reason)")
        case .lost(let reason):
            return (.warning, "terminal link down: \(reason)")
        case .silent(let after):
            return (.warning, "terminal \(endpoint) is open but has not answered bring-up (Synchronize) for \(Self.seconds(after)); still trying")
        case .back(let away):
            return (.info, "terminal link up after \(Self.seconds(away)) away")
        }
    }

    /// One line for a period's bad input, with the totals since the start, so that the lines
    /// add up and a reader can tell nothing was left out.
    static func summary(_ r: LineNoiseReport, total: LineNoiseReport, interval: Duration) -> String {
        var parts: [String] = []
        if r.malformedTotal > 0 {
            let kinds = MalformedKind.allCases.filter { r[$0] > 0 }.map { "\($0.rawValue) \(r[$0])" }
            parts.append("\(r.malformedTotal) malformed (\(kinds.joined(separator: ", "))), \(r.bytesDiscarded) bytes discarded")
        }
        if r.undecodableTotal > 0 {
            let headers = r.undecodable.keys.sorted().map { "0x\(String($0, radix: 16)) \(r.undecodable[$0]!)" }
            parts.append("\(r.undecodableTotal) undecodable (\(headers.joined(separator: ", ")))")
        }
        let span = r.last - r.first
        return "bad input from the terminal\(span >= .milliseconds(100) ? " over \(seconds(span))" : ""): " + parts.joined(separator: "; ")
            + "; since start: \(total.malformedTotal) malformed, \(total.bytesDiscarded) bytes discarded, \(total.undecodableTotal) undecodable"
            + "; at most one such line every \(seconds(interval))"
    }

    /// "42.3 s".
    static func seconds(_ d: Duration) -> String {
        let tenths = max(0, d.nanosecondsClamped / 100_000_000)
        return "\(tenths / 10).\(tenths % 10) s"
    }
}

/// Log lines for link events; card data only as the codec's masked form.
public func describe(_ e: LinkEvent) -> (LogLevel, String) {
    switch e {
    case .up: return (.info, "terminal link up: ENABLED")
    case .down(let reason): return (.warning, "terminal link down: \(reason)")
    case .terminalReset: return (.warning, "terminal reset: PSP state lost, bringing the link up again")
    case .terminalState(let s): return (.debug, "terminal state \(s)")
    case .identity(let id):
        var parts = ["serial \(id.serialNumber)"]
        if let m = id.model { parts.append("model \(m)") }
        if let f = id.firmware { parts.append("firmware \(f)") }
        if let sim = id.simSerial { parts.append("SIM \(sim)") }
        return (.info, "terminal identity: " + parts.joined(separator: ", "))
    case .connectionInfo(let c?):
        let shown: String
        switch c.reading {
        case .text(let t): shown = t
        case .hex(let h): shown = "hex \(h)"
        case .withheld: shown = "withheld (card data)"
        }
        return (.info, "terminal network (Get Connection Info, layout undocumented): \(shown)")
    case .connectionInfo(nil):
        return (.info, "terminal network information (Get Connection Info) not available")
    case let .securityAlert(command, reason):
        return (.error, "terminal refused \(command): \(ResultReason.name(reason)); taken as its security violation (tamper) mode")
    case let .completed(id, cmd, outcome):
        // Named, never printed whole: a response can carry the card's DOL (Card Read answering
        // Start Session, Session Approved answering Auth), and only CardData masks it.
        let what: String
        switch outcome {
        case .result(let r): what = r.ok ? "OK" : "Not OK\(r.reason.map { " (reason \($0))" } ?? "")"
        case .response(let m): what = m.name
        default: what = "\(outcome)"
        }
        return (.debug, "request \(id) \(cmd.name): \(what)")
    case .message(let m):
        switch m {
        case .cardRead(let dol), .propCardRead(let dol):
            let c = CardData(dol: dol)
            return (.info, "card read: \(c.maskedPAN ?? "no PAN")\(c.brand.map { " \($0)" } ?? "")")
        case let .sessionApproved(id, _): return (.info, "session \(id) approved")
        case let .sessionPartiallyApproved(id, amount, _): return (.info, "session \(id) partially approved for \(amount)")
        case .sessionDeclined(let r, _): return (.info, "session declined\(r.map { ": \(DeclineReason.name($0))" } ?? "")")
        case .sessionCancelled: return (.info, "session cancelled")
        default: return (.debug, "terminal: \(m.name)")
        }
    case let .malformed(kind, n): return (.warning, "discarded \(n) bytes from the terminal (\(kind.rawValue))")
    case let .undecodable(h, err): return (.warning, "undecodable frame 0x\(String(h, radix: 16)): \(err)")
    }
}
