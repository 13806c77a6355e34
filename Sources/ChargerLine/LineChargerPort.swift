import ChargerPort
import Glibc
import PaymentEngine
import Platform
import Timebase

/// A charger behind the charger line protocol (`ChargerLine`) on a pair of non-blocking
/// descriptors: commands written to `output`, inputs read from `input`. Whoever made the
/// descriptors owns them (a child's pipes, later the controller's socket); the port never closes
/// them.
///
/// When the stream is lost (end of file, a read or write error, or a charger that has not read
/// its commands for `stallTimeout`), the charger's state is unknown and the port takes the safe
/// reading: every relay is considered open. It stops writing, says why once (`onLost`, before
/// anything else), then gives the engine a `.fault` for every connector, so a charging session
/// stops and is captured for the energy metered so far, and an approval awaiting its plug is
/// released. From then on it answers like `NoChargerIO`: a close is refused, an open is
/// trivially true, nothing plugs in. Deciding whether to keep taking payments is the daemon's
/// (it stops: nothing could close a relay).
public final class LineChargerPort: ChargerPort {
    public var onInputs: ([EngineInput]) -> Void = { _ in }
    /// The stream is gone, with why; called once, on the loop, before the connectors' faults.
    public var onLost: (String) -> Void = { _ in }
    /// Lines the station could not read (rate-limited: at most one call per `problemInterval`,
    /// with the count so far).
    public var onProblem: (NoticeSeverity, String) -> Void = { _, _ in }

    /// What the port has seen, for status and tests.
    public struct Counters: Equatable, Sendable {
        /// Lines read that became engine inputs.
        public var inputs = 0
        /// Lines refused (`ChargerLineError`) and skipped.
        public var malformed = 0
        /// Commands written (lines).
        public var commands = 0
        /// 1 once the stream was lost (it is never reopened).
        public var lost = 0
    }
    public private(set) var counters = Counters()
    /// Why the stream was lost; nil while it is up.
    public private(set) var lostReason: String?
    /// The last refused line's reason.
    public private(set) var lastMalformed: ChargerLineError?

    /// Commands waiting to be written this long, unread by the charger: it is treated as lost.
    public static let stallTimeout: Duration = .seconds(5)
    /// Commands buffered beyond this many bytes: lost as well (the charger does not read).
    public static let maxPendingBytes = 64 * 1024
    /// At most one malformed-line report per this interval.
    public static let problemInterval: Duration = .seconds(10)

    let loop: EventLoop
    let connectors: Int
    let input: FileDescriptor
    let output: FileDescriptor
    let name: String
    var splitter = ChargerLineSplitter()
    var readWatch: WatchToken?
    var writeWatch: WatchToken?
    var pending: [UInt8] = []
    var pendingSince: Instant?
    var stallTimer: TimerToken?
    var lastProblemReport: Instant?
    var unreported = 0

    /// `name` says in notices which charger this is (e.g. "charger-sim (pid 1234)").
    public init(loop: EventLoop, connectors: Int, input: FileDescriptor, output: FileDescriptor, name: String) {
        self.loop = loop
        self.connectors = connectors
        self.input = input
        self.output = output
        self.name = name
    }

    /// Starts reading the charger's inputs.
    public func start() {
        guard readWatch == nil, lostReason == nil else { return }
        readWatch = loop.watch(input, read: true, write: false) { [weak self] _ in self?.readable() }
    }

    /// Stops reading and writing (the daemon is stopping); what is still buffered is written
    /// within `flushTimeout` first, so the charger hears the last relay openings.
    public func stop(flushTimeout: Duration = .seconds(1)) {
        if let t = readWatch { loop.unwatch(t); readWatch = nil }
        if let t = writeWatch { loop.unwatch(t); writeWatch = nil }
        if let t = stallTimer { loop.cancel(t); stallTimer = nil }
        if lostReason == nil, !pending.isEmpty { try? output.writeAll(pending, timeout: flushTimeout) }
        pending.removeAll()
        if lostReason == nil { lostReason = "stopped" }
    }

    public func setRelay(connector c: Int, closed: Bool) {
        guard (0..<connectors).contains(c) else { return }
        if lostReason != nil {
            let feedback: RelayFeedback = closed ? .refusedToClose : .opened
            _ = loop.schedule(at: MonotonicClock.now()) { [weak self] in self?.onInputs([.relay(connector: c, feedback)]) }
            return
        }
        send(.relay(connector: c, closed: closed))
    }

    public func show(connector c: Int, _ offer: PaymentEngine.ConnectorOffer) {
        guard (0..<connectors).contains(c), lostReason == nil else { return }
        send(.show(connector: c, offer))
    }

    // MARK: writing

    func send(_ command: ChargerCommand) {
        pending += Array(ChargerLine.encode(command).utf8)
        counters.commands += 1
        guard pending.count <= Self.maxPendingBytes else {
            lose("it has not read \(pending.count) bytes of commands")
            return
        }
        if writeWatch == nil { flush() }
    }

    func flush() {
        guard lostReason == nil else { return }
        do {
            while !pending.isEmpty {
                let n = try pending.withUnsafeBytes { b in Result { () throws(SystemError) in try output.write(b) } }.get()
                if n == 0 { break }
                pending.removeFirst(n)
            }
        } catch {
            lose("writing to it failed: \(error)")
            return
        }
        if pending.isEmpty {
            pendingSince = nil
            if let t = writeWatch { loop.unwatch(t); writeWatch = nil }
            if let t = stallTimer { loop.cancel(t); stallTimer = nil }
        } else if writeWatch == nil {
            pendingSince = MonotonicClock.now()
            writeWatch = loop.watch(output, read: false, write: true) { [weak self] _ in self?.flush() }
            stallTimer = loop.schedule(at: MonotonicClock.now() + Self.stallTimeout) { [weak self] in
                guard let self else { return }
                self.stallTimer = nil
                if !self.pending.isEmpty { self.lose("it has not read its commands for \(Self.stallTimeout)") }
            }
        }
    }

    // MARK: reading

    func readable() {
        guard lostReason == nil else { return }
        var inputs: [EngineInput] = []
        var ended: String?
        // A bounded amount per wake-up, so a flooding charger cannot starve the loop.
        for _ in 0..<16 {
            let chunk: FileDescriptor.ReadChunk
            do { chunk = try input.read(maxCount: 4096) } catch {
                ended = "reading from it failed: \(error)"
                break
            }
            switch chunk {
            case .bytes(let bytes):
                for piece in splitter.feed(bytes) { take(piece, into: &inputs) }
                continue
            case .wouldBlock: break
            case .endOfFile:
                if let piece = splitter.finish() { take(piece, into: &inputs) }
                ended = "its stream ended"
            }
            break
        }
        if !inputs.isEmpty { onInputs(inputs) }
        if let ended { lose(ended) }
    }

    func take(_ piece: ChargerLineSplitter.Piece, into inputs: inout [EngineInput]) {
        let result: Result<EngineInput, ChargerLineError>
        switch piece {
        case .line(let line): result = ChargerLine.decodeInput(line, connectors: connectors)
        case .refused(let e): result = .failure(e)
        }
        switch result {
        case .success(let i):
            counters.inputs += 1
            inputs.append(i)
        case .failure(let e):
            counters.malformed += 1
            lastMalformed = e
            unreported += 1
            let now = MonotonicClock.now()
            if lastProblemReport.map({ now - $0 >= Self.problemInterval }) ?? true {
                lastProblemReport = now
                onProblem(.warning, "charger I/O: \(unreported) malformed line\(unreported == 1 ? "" : "s") from \(name) skipped (\(counters.malformed) in all; last: \(e))")
                unreported = 0
            }
        }
    }

    // MARK: loss

    /// The stream is gone: relays are considered open; the daemon hears it once, then the engine
    /// gets a fault on every connector. Always reported from the loop, never from inside a call.
    func lose(_ why: String) {
        guard lostReason == nil else { return }
        let reason = "\(name): \(why)"
        lostReason = reason
        counters.lost += 1
        pending.removeAll()
        if let t = readWatch { loop.unwatch(t); readWatch = nil }
        if let t = writeWatch { loop.unwatch(t); writeWatch = nil }
        if let t = stallTimer { loop.cancel(t); stallTimer = nil }
        _ = loop.schedule(at: MonotonicClock.now()) { [weak self] in
            guard let self else { return }
            self.onLost(reason)
            self.onInputs((0..<self.connectors).map { .fault(connector: $0, "charger I/O lost, relay considered open") })
        }
    }
}
