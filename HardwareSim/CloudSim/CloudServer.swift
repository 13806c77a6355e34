import Glibc
import Platform
import Timebase
import WebSocket

/// Bounds on what the server holds.
public struct CloudServerLimits: Sendable {
    /// Connections open at once; more are accepted and closed at once.
    public var maxConnections = 64
    /// An HTTP connection with nothing in flight for this long is closed.
    public var idleTimeout: Duration = .seconds(60)
    /// A WebSocket with nothing received or sent for this long is closed. Longer than the HTTP
    /// timeout: a station holds its OCPP-J connection open between heartbeats (300 s by default),
    /// and its pings are its own business; a bound still frees the slot of a peer that vanished.
    public var webSocketIdleTimeout: Duration = .seconds(3600)
    /// After an error response the server stops writing and drains what the client still sends
    /// for at most this long before closing, so the client reads the response rather than a reset.
    public var lingerTimeout: Duration = .seconds(1)
    /// Responses waiting to be written beyond which a connection is not read further.
    public var maxPendingOutput = 64 * 1024
    public var http = HTTPLimits()

    public init() {}
}

/// The simulated cloud's shell: a TCP listener and its connections on the event loop, the
/// record file and the scripting on standard input; everything else is `CloudSimCore`. Both
/// bindings share the port: a request whose `Upgrade` header names websocket (when OCPP-J is
/// served) is a WebSocket upgrade, and an accepted one turns its connection into an OCPP-J WebSocket, run by
/// a server-role `WebSocketCore`.
public final class CloudServer {
    public private(set) var core: CloudSimCore
    public let limits: CloudServerLimits
    let loop: EventLoop
    let host: String
    let requestedPort: UInt16
    var listener: TCPListener?
    var listenerWatch: WatchToken?
    var connections: [ObjectIdentifier: Connection] = [:]
    var recordFD: FileDescriptor?
    var stdinBuffer: [UInt8] = []
    var stdinWatch: WatchToken?
    let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 1)

    /// Lines for standard output: "listening HOST:PORT", then "ok …" / "error …" for each directive read.
    public var announce: (String) -> Void = { _ in }
    /// Diagnostics for standard error.
    public var log: (String) -> Void = { _ in }
    /// Called after each record line is written.
    public var onRecord: (CloudJSON) -> Void = { _ in }
    /// Called after a request's answer was queued, with its record and when its last bytes
    /// arrived: the cloud's own time, which benchmarks subtract from the client's.
    public var onAnswered: (CloudJSON, Instant) -> Void = { _, _ in }
    /// Called for `quit` (after its acknowledgement) and, when asked, at the end of standard input.
    public var onQuit: () -> Void = { exit(0) }
    /// Whether to read directives from standard input.
    public var readsStandardInput = true
    /// Quit when standard input reaches end of file, so a test that dies leaves no server behind.
    public var exitsWhenStandardInputCloses = false

    /// The bound port (the kernel's choice for port 0), once started.
    public var port: UInt16 { listener?.port ?? 0 }
    /// Connections open now.
    public var connectionCount: Int { connections.count }

    public init(loop: EventLoop, host: String = "127.0.0.1", port: UInt16, core: CloudSimCore,
                record: String?, limits: CloudServerLimits = CloudServerLimits()) throws(SystemError) {
        self.loop = loop
        self.host = host
        self.requestedPort = port
        self.core = core
        self.limits = limits
        if let record {
            recordFD = try FileDescriptor.open(record, flags: O_WRONLY | O_CREAT | O_APPEND, mode: 0o644)
        }
    }

    deinit {
        for connection in connections.values { close(connection) }
        if let w = listenerWatch { loop.unwatch(w) }
        listener?.close()
        if let w = stdinWatch { loop.unwatch(w) }
        recordFD?.close()
        readBuffer.deallocate()
    }

    /// Listens, announces the port, and starts reading directives.
    public func start() throws(SystemError) {
        let l = try TCPListener.listen(host: host, port: requestedPort, backlog: 128)
        listener = l
        listenerWatch = loop.watch(l.fd, read: true, write: false) { [unowned self] _ in self.acceptClients() }
        // A closed descriptor 0 (started with <&-) would trap on EBADF when read.
        if readsStandardInput && fcntl(STDIN_FILENO, F_GETFD) != -1 {
            stdinWatch = loop.watch(.standardInput, read: true, write: false) { [unowned self] _ in self.stdinReadable() }
        }
        announce("listening \(host):\(l.port)")
    }

    /// Applies a directive now; returns its acknowledgement. `quit` calls `onQuit`.
    @discardableResult
    public func perform(_ directive: CloudDirective) -> String {
        let ack = core.apply(directive)
        switch directive {
        case .down:
            for connection in Array(connections.values) { close(connection) }
        case .quit:
            onQuit()
        default:
            break
        }
        return ack
    }

    // MARK: Standard input

    func stdinReadable() {
        let chunk: [UInt8]
        switch try? FileDescriptor.standardInput.read(maxCount: 4096) {
        case .bytes(let b)?: chunk = b
        case .wouldBlock?: return
        default:
            if let w = stdinWatch { loop.unwatch(w); stdinWatch = nil }
            if exitsWhenStandardInputCloses { onQuit() }
            return
        }
        stdinBuffer += chunk
        while let newline = stdinBuffer.firstIndex(of: 0x0A) {
            let text = String(decoding: stdinBuffer[..<newline], as: UTF8.self)
            stdinBuffer.removeSubrange(...newline)
            let words = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }).map(String.init)
            if words.isEmpty || words[0].hasPrefix("#") { continue }
            do {
                let directive = try CloudDirective.parse(words)
                if directive == .quit { announce("ok quit") }
                let ack = perform(directive)
                announce("ok \(ack)")
            } catch {
                announce("error \(error)")
            }
        }
        if stdinBuffer.count > 4096 { stdinBuffer.removeAll() }
    }

    // MARK: Connections

    final class Connection {
        let fd: FileDescriptor
        var watch: WatchToken?
        /// When the last bytes arrived: the moment a request completed, for `onAnswered`.
        var lastRead = MonotonicClock.now()
        var parser: HTTPRequestParser
        var output: [UInt8] = []
        var outputOffset = 0
        /// A response held back by `slow`; no further request is read until it is sent.
        var delayed: TimerToken?
        var closeWhenFlushed = false
        /// The client finished sending (EOF): answer what is in hand, then close.
        var peerClosed = false
        /// Write side shut after a final response; reading only to drain.
        var lingering = false
        var lingerTimer: TimerToken?
        var idleTimer: TimerToken?
        var lastActivity: Instant
        var closed = false
        /// Set once an upgrade was accepted: the connection speaks OCPP-J from then on.
        var socket: WebSocketCore<SeededGenerator>?
        /// The station id the upgrade's path named.
        var station = ""
        /// Messages received and not yet answered, oldest first: answers go out in order, `slow` holding the rest.
        var inbox: [WebSocketMessage] = []
        /// The socket core's pong or close deadline.
        var socketTimer: TimerToken?

        init(fd: FileDescriptor, limits: HTTPLimits, now: Instant) {
            self.fd = fd
            parser = HTTPRequestParser(limits: limits)
            lastActivity = now
        }

        var pendingOutput: Int { output.count - outputOffset }
    }

    func acceptClients() {
        guard let listener else { return }
        while true {
            let accepted: FileDescriptor?
            do {
                accepted = try listener.accept()
            } catch {
                log("accept: \(error)")
                return
            }
            guard let fd = accepted else { return }
            if core.script.down || connections.count >= limits.maxConnections {
                // Down: the client sees its connection closed before any answer. Full: likewise.
                if !core.script.down { log("connection refused: \(limits.maxConnections) already open") }
                fd.close()
                continue
            }
            let connection = Connection(fd: fd, limits: limits.http, now: MonotonicClock.now())
            connections[ObjectIdentifier(connection)] = connection
            connection.watch = loop.watch(fd, read: true, write: false) { [unowned self, weak connection] events in
                guard let connection else { return }
                self.handle(connection, events)
            }
            armIdleTimer(connection)
        }
    }

    func handle(_ c: Connection, _ events: PollEvents) {
        if events.contains(.writable) { flush(c) }
        guard !c.closed else { return }
        if events.contains(.readable) || events.contains(.hangUp) || events.contains(.error) {
            receive(c, events)
        }
    }

    func receive(_ c: Connection, _ events: PollEvents) {
        let outcome: FileDescriptor.ReadResult
        do {
            outcome = try c.fd.read(into: readBuffer)
        } catch {
            close(c)  // ECONNRESET and the like
            return
        }
        switch outcome {
        case .bytes(let n):
            c.lastActivity = MonotonicClock.now()
            c.lastRead = c.lastActivity
            if c.lingering { return }
            if c.socket != nil {
                c.socket!.receive(UnsafeRawBufferPointer(rebasing: readBuffer[0..<n]), at: c.lastRead)
                takeSocketEffects(c)
                processMessages(c)
                return
            }
            c.parser.feed(UnsafeRawBufferPointer(rebasing: readBuffer[0..<n]))
            process(c)
        case .wouldBlock:
            if events.contains(.hangUp) || events.contains(.error) { close(c) }
        case .endOfFile:
            if c.socket != nil && !c.lingering {
                // Gone without a close handshake (1006): nothing can be delivered any more.
                c.socket!.connectionLost()
                log("ocpp-j \(c.station): connection lost without a close handshake")
                close(c)
                return
            }
            if c.lingering || (c.delayed == nil && c.pendingOutput == 0) {
                close(c)
                return
            }
            c.peerClosed = true
            updateInterest(c)
        }
    }

    /// Takes the parser's events while the connection may answer the next request.
    func process(_ c: Connection) {
        if c.socket != nil {
            processMessages(c)
            return
        }
        while !c.closed && c.delayed == nil && !c.closeWhenFlushed && !c.lingering {
            guard let event = c.parser.next() else { break }
            let now = WallClock.nowMillisecondsSinceEpoch()
            switch event {
            case .continueExpected:
                queue(c, HTTPResponse.continueBytes, closeAfter: false)
            case .request(let request):
                if core.bindings.contains(.ocppJ) && CloudSimCore.asksForWebSocket(request) {
                    if upgrade(c, request, wallMilliseconds: now) { return }
                    continue
                }
                let outcome = core.handle(request, wallMilliseconds: now)
                writeRecord(outcome.record)
                guard let response = outcome.response else {
                    close(c)
                    return
                }
                let keepAlive = request.keepAlive && !outcome.closeAfter
                deliver(c, response.serialized(keepAlive: keepAlive), closeAfter: !keepAlive, delayMilliseconds: outcome.delayMilliseconds)
                onAnswered(outcome.record, c.lastRead)
            case let .failure(status, reason, partial):
                let outcome = core.failure(status: status, reason: reason, partial: partial, wallMilliseconds: now)
                writeRecord(outcome.record)
                if let response = outcome.response {
                    deliver(c, response.serialized(keepAlive: false), closeAfter: true, delayMilliseconds: 0)
                } else {
                    close(c)
                }
            }
        }
        guard !c.closed else { return }
        if c.peerClosed && c.delayed == nil && c.pendingOutput == 0 {
            close(c)
            return
        }
        updateInterest(c)
    }

    // MARK: OCPP-J

    /// Answers an Upgrade request; true when the connection is a WebSocket now.
    func upgrade(_ c: Connection, _ request: HTTPRequest, wallMilliseconds now: Int64) -> Bool {
        let outcome = core.upgrade(request, wallMilliseconds: now)
        writeRecord(outcome.record)
        guard outcome.accepted != nil else {
            deliver(c, outcome.response, closeAfter: true, delayMilliseconds: 0)
            return false
        }
        c.station = outcome.station
        // A server draws no mask key: the generator is never used.
        c.socket = WebSocketCore(role: .server, maskKeys: SeededGenerator(seed: 0), leftover: c.parser.takeBuffered(), at: MonotonicClock.now())
        queue(c, outcome.response, closeAfter: false)
        takeSocketEffects(c)
        processMessages(c)
        return true
    }

    /// Carries out the socket core's effects: writes queued, messages into the inbox, and the
    /// connection closed once its last bytes are out when the core has ended.
    func takeSocketEffects(_ c: Connection) {
        guard !c.closed, c.socket != nil else { return }
        var ended = false
        for effect in c.socket!.takeEffects() {
            switch effect {
            case .write(let bytes): c.output += bytes
            case .message(let m): c.inbox.append(m)
            case .closed: ended = true
            case .failed(let failure):
                log("ocpp-j \(c.station): \(failure)")
                ended = true
            }
        }
        // After our close frame nothing more can be answered.
        if ended || c.socket!.state != .open { c.inbox.removeAll() }
        if ended { c.closeWhenFlushed = true }
        armSocketTimer(c)
        flush(c)
    }

    /// Answers the inbox in order, one at a time, while nothing holds it.
    func processMessages(_ c: Connection) {
        while !c.closed && c.delayed == nil && !c.closeWhenFlushed && c.socket?.state == .open && !c.inbox.isEmpty {
            let message = c.inbox.removeFirst()
            let now = WallClock.nowMillisecondsSinceEpoch()
            let outcome: CloudRPCOutcome
            switch message {
            case .text(let text): outcome = core.handle(rpc: text, station: c.station, wallMilliseconds: now)
            case .binary: outcome = core.binaryMessage(station: c.station, wallMilliseconds: now)
            }
            writeRecord(outcome.record)
            if outcome.after == .drop {
                close(c)
                return
            }
            guard outcome.delayMilliseconds > 0 else {
                finish(c, outcome)
                continue
            }
            c.delayed = loop.schedule(at: MonotonicClock.now() + .milliseconds(outcome.delayMilliseconds)) { [weak self, weak c] in
                guard let self, let c, !c.closed else { return }
                c.delayed = nil
                self.finish(c, outcome)
                self.processMessages(c)
            }
        }
        if !c.closed { updateInterest(c) }
    }

    /// Sends a message's reply and starts the close `after` asks for.
    func finish(_ c: Connection, _ outcome: CloudRPCOutcome) {
        guard !c.closed, c.socket != nil else { return }
        // notOpen (the peer's close came first) leaves nothing to answer to.
        if let reply = outcome.reply { try? c.socket!.sendText(reply.text) }
        if case .close(let code, let reason) = outcome.after {
            try? c.socket!.close(code: code, reason: reason, at: MonotonicClock.now())
        }
        onAnswered(outcome.record, c.lastRead)
        takeSocketEffects(c)
    }

    /// One timer at the socket core's deadline (the peer's close after ours).
    func armSocketTimer(_ c: Connection) {
        if let t = c.socketTimer { loop.cancel(t); c.socketTimer = nil }
        guard !c.closed, let deadline = c.socket?.nextDeadline else { return }
        c.socketTimer = loop.schedule(at: deadline) { [weak self, weak c] in
            guard let self, let c, !c.closed, c.socket != nil else { return }
            c.socketTimer = nil
            c.socket!.advance(to: MonotonicClock.now())
            self.takeSocketEffects(c)
        }
    }

    // MARK: Output

    func deliver(_ c: Connection, _ bytes: [UInt8], closeAfter: Bool, delayMilliseconds: Int) {
        guard delayMilliseconds > 0 else {
            queue(c, bytes, closeAfter: closeAfter)
            return
        }
        c.delayed = loop.schedule(at: MonotonicClock.now() + .milliseconds(delayMilliseconds)) { [weak self, weak c] in
            guard let self, let c, !c.closed else { return }
            c.delayed = nil
            self.queue(c, bytes, closeAfter: closeAfter)
            if !c.closed { self.process(c) }
        }
        updateInterest(c)
    }

    func queue(_ c: Connection, _ bytes: [UInt8], closeAfter: Bool) {
        c.output += bytes
        if closeAfter { c.closeWhenFlushed = true }
        flush(c)
    }

    func flush(_ c: Connection) {
        while c.pendingOutput > 0 {
            let written: Int
            do {
                written = try c.output.withUnsafeBytes { all in
                    Result { () throws(SystemError) in try c.fd.write(UnsafeRawBufferPointer(rebasing: all[c.outputOffset...])) }
                }.get()
            } catch {
                close(c)  // EPIPE, ECONNRESET: the client is gone
                return
            }
            if written == 0 { break }
            c.outputOffset += written
            c.lastActivity = MonotonicClock.now()
        }
        if c.pendingOutput == 0 {
            c.output.removeAll(keepingCapacity: true)
            c.outputOffset = 0
            if c.closeWhenFlushed && !c.lingering {
                startLinger(c)
                return
            }
            if c.peerClosed && c.delayed == nil && c.parser.isIdle {
                close(c)
                return
            }
        }
        updateInterest(c)
    }

    func startLinger(_ c: Connection) {
        c.lingering = true
        _ = Glibc.shutdown(c.fd.rawValue, Int32(SHUT_WR))
        c.lingerTimer = loop.schedule(at: MonotonicClock.now() + limits.lingerTimeout) { [weak self, weak c] in
            guard let self, let c else { return }
            c.lingerTimer = nil
            self.close(c)
        }
        updateInterest(c)
    }

    func updateInterest(_ c: Connection) {
        guard !c.closed, let watch = c.watch else { return }
        let read = c.lingering || (c.delayed == nil && !c.closeWhenFlushed && !c.peerClosed
                                   && c.pendingOutput < limits.maxPendingOutput)
        loop.update(watch, read: read, write: c.pendingOutput > 0 && !c.lingering)
    }

    func armIdleTimer(_ c: Connection) {
        let timeout = c.socket == nil ? limits.idleTimeout : limits.webSocketIdleTimeout
        let at = max(c.lastActivity + timeout, MonotonicClock.now() + .milliseconds(1))
        c.idleTimer = loop.schedule(at: at) { [weak self, weak c] in
            guard let self, let c, !c.closed else { return }
            c.idleTimer = nil
            let quietFor = MonotonicClock.now() - c.lastActivity
            if quietFor >= (c.socket == nil ? self.limits.idleTimeout : self.limits.webSocketIdleTimeout) && c.delayed == nil {
                self.close(c)
            } else {
                if c.delayed != nil { c.lastActivity = MonotonicClock.now() }
                self.armIdleTimer(c)
            }
        }
    }

    func close(_ c: Connection) {
        guard !c.closed else { return }
        c.closed = true
        if let w = c.watch { loop.unwatch(w); c.watch = nil }
        for timer in [c.delayed, c.lingerTimer, c.idleTimer, c.socketTimer] { if let timer { loop.cancel(timer) } }
        c.socketTimer = nil
        c.delayed = nil
        c.lingerTimer = nil
        c.idleTimer = nil
        c.fd.close()
        connections[ObjectIdentifier(c)] = nil
    }

    // MARK: Record

    func writeRecord(_ record: CloudJSON) {
        if let fd = recordFD {
            do {
                try fd.writeAll(Array((record.text + "\n").utf8), timeout: .seconds(2))
            } catch {
                log("record: \(error)")
            }
        }
        onRecord(record)
    }
}
