import DiagnosticsProtocol
import Glibc
import JSONLines
import Platform
import Timebase

/// One connected client, as a command handler sees it: who it is, and where its replies and
/// streamed events go. Everything written is buffered without blocking; a client that stops
/// reading is disconnected once `DiagnosticsLimits.maxOutputBytes` are waiting.
public final class DiagnosticsClient {
    /// The kernel's word on who connected.
    public let peer: PeerCredentials
    /// Administrator by the access rule, fixed at connect.
    public let isAdministrator: Bool
    /// A number for log lines (`client 3`).
    public let number: Int
    /// The request id of this client's `watch`, nil while it does not watch.
    public internal(set) var watchID: Int64?
    /// Called once when the client is gone (closed, dropped): a handler's subscriptions end here.
    public var onClose: [() -> Void] = []

    let fd: FileDescriptor
    unowned let server: DiagnosticsServer
    var output: [UInt8] = []
    var outputStart = 0
    var splitter = DiagnosticsLineSplitter()
    /// Lines read but not handled yet: backpressure reached in the middle of a read. Bounded by
    /// one read (`readChunkBytes`) and one line, since nothing more is read while any wait.
    var unhandled: [DiagnosticsLineSplitter.Piece] = []
    /// The client has ended its side (end of stream read): no more requests, but the replies to
    /// those it sent are still written before the connection is closed.
    var inputEnded = false
    var token: WatchToken?
    var closed = false
    /// Since when its unread replies are over `readPauseOutputBytes` without it taking any.
    var stalledSince: Instant?

    init(fd: FileDescriptor, peer: PeerCredentials, isAdministrator: Bool, number: Int, server: DiagnosticsServer) {
        self.fd = fd; self.peer = peer; self.isAdministrator = isAdministrator; self.number = number; self.server = server
    }

    /// Is still connected.
    public var isOpen: Bool { !closed }

    /// Bytes written to this client that it has not read yet.
    public var pendingOutput: Int { output.count - outputStart }

    /// Sends a success reply.
    public func reply(_ id: Int64?, _ fields: [(String, JSON)]) { send(DiagnosticsWire.ok(id: id, fields)) }
    /// Sends a refusal (counted by code).
    public func fail(_ id: Int64?, _ error: DiagnosticsError) {
        server.counters.errors[error.code, default: 0] += 1
        send(DiagnosticsWire.failure(id: id, error))
    }
    /// Sends a streamed event line.
    public func event(_ id: Int64?, kind: String, _ fields: [(String, JSON)]) { send(DiagnosticsWire.event(id: id, kind: kind, fields)) }

    /// The bound is on what was already waiting unread: one large reply (an export) to a client
    /// that reads is delivered whole; a client that stops reading is dropped at its next line.
    func send(_ line: String) {
        guard !closed else { return }
        if pendingOutput > DiagnosticsLimits.maxOutputBytes {
            server.counters.droppedSlow += 1
            server.log(.warning, "diagnostics: client \(number) (\(peer)) disconnected: \(pendingOutput) bytes of replies unread (limit \(DiagnosticsLimits.maxOutputBytes))")
            server.drop(self)
            return
        }
        output.append(contentsOf: line.utf8)
        flush()
    }

    /// Writes what the socket takes now; the rest waits for the socket to be writable.
    func flush() {
        while outputStart < output.count {
            let n: Int
            do {
                n = try output[outputStart...].withUnsafeBytes { (raw) throws(SystemError) -> Int in
                    let r = Glibc.send(fd.rawValue, raw.baseAddress, raw.count, Int32(MSG_DONTWAIT) | Int32(MSG_NOSIGNAL))
                    if r >= 0 { return r }
                    let code = Glibc.errno
                    if code == EAGAIN || code == EINTR { return 0 }
                    throw SystemError(call: "send", errno: code)
                }
            } catch {
                server.drop(self)
                return
            }
            if n == 0 { break }
            outputStart += n
            stalledSince = nil
        }
        if outputStart == output.count {
            output.removeAll(keepingCapacity: output.count <= 64 * 1024)
            outputStart = 0
        } else if outputStart > 64 * 1024 {
            output.removeFirst(outputStart)
            outputStart = 0
        }
        server.updateInterest(self)
    }
}

/// What the daemon does with each request. Called on the event loop; a handler answers at once
/// (`client.reply`/`fail`) or later (a test transaction's steps), and never blocks.
public protocol DiagnosticsHandler: AnyObject {
    func handle(_ command: DiagnosticsCommand, id: Int64, client: DiagnosticsClient)
}

/// The diagnostic socket on the event loop: accepts up to `maxClients`, reads request lines
/// (bounded), refuses what is malformed or not permitted, and hands the rest to the handler.
/// Authorisation is the peer's credentials only (`SO_PEERCRED`).
public final class DiagnosticsServer {
    /// What a technician reads in `status` and `metrics`.
    public struct Counters: Equatable, Sendable {
        public var accepted = 0
        /// Clients turned away because `maxClients` were connected.
        public var refusedBusy = 0
        /// Clients disconnected for not reading their replies (over the output bound, or held
        /// back for `stallTimeout`).
        public var droppedSlow = 0
        /// Clients disconnected for a request line still going past `maxDiscardedLineBytes`.
        public var droppedEndlessLine = 0
        /// Requests answered, all commands.
        public var requests = 0
        /// Refusals by error code.
        public var errors: [DiagnosticsErrorCode: Int] = [:]
        public var errorsTotal: Int { errors.values.reduce(0, +) }
    }

    public let listener: UnixListener
    public let access: DiagnosticsAccess
    public let maxClients: Int
    public internal(set) var counters = Counters()
    /// Where the server's own log lines go (refusals, drops).
    public var onLog: (NoticeLevel, String) -> Void = { _, _ in }
    /// Connected clients.
    public private(set) var clients: [DiagnosticsClient] = []

    /// The levels the server logs at.
    public enum NoticeLevel: Sendable { case warning, info }

    let loop: EventLoop
    weak var handler: DiagnosticsHandler?
    var listenToken: WatchToken?
    var nextNumber = 1

    /// How long a held-back client may take none of its replies (`DiagnosticsLimits.maxStalledSeconds`).
    public let stallTimeout: Duration
    lazy var stallTimer = DeadlineTimer(loop: loop) { [unowned self] in self.dropStalled() }

    public init(loop: EventLoop, listener: UnixListener, access: DiagnosticsAccess, maxClients: Int = DiagnosticsLimits.defaultMaxClients,
                handler: DiagnosticsHandler, stallTimeout: Duration = .seconds(DiagnosticsLimits.maxStalledSeconds)) {
        self.loop = loop
        self.stallTimeout = stallTimeout
        self.listener = listener
        self.access = access
        self.maxClients = max(1, min(maxClients, DiagnosticsLimits.maxClientsCeiling))
        self.handler = handler
        listenToken = loop.watch(listener.fd, read: true, write: false) { [unowned self] _ in self.acceptPending() }
    }

    /// Closes every client and the listener (removing the path it bound).
    public func close() {
        for c in clients { drop(c) }
        if let t = listenToken { loop.unwatch(t) }
        listenToken = nil
        listener.close()
    }

    func log(_ level: NoticeLevel, _ text: String) { onLog(level, text) }

    func acceptPending() {
        // A bounded number per turn, so a connect storm cannot hold the loop.
        for _ in 0..<maxClients + 4 {
            let fd: FileDescriptor
            do {
                guard let f = try listener.accept() else { return }
                fd = f
            } catch {
                log(.warning, "diagnostics: accept failed: \(error)")
                return
            }
            let peer: PeerCredentials
            do { peer = try UnixSocket.peerCredentials(fd) } catch {
                log(.warning, "diagnostics: no peer credentials (\(error)); connection closed")
                fd.close()
                continue
            }
            if clients.count >= maxClients { dropDeparted() }
            if clients.count >= maxClients {
                counters.refusedBusy += 1
                counters.errors[.busy, default: 0] += 1
                let line = Array(DiagnosticsWire.failure(id: nil, DiagnosticsError(.busy, "\(maxClients) clients are connected; try again later")).utf8)
                _ = line.withUnsafeBytes { Glibc.send(fd.rawValue, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT) | Int32(MSG_NOSIGNAL)) }
                log(.warning, "diagnostics: \(peer) turned away: \(maxClients) clients connected")
                fd.close()
                continue
            }
            counters.accepted += 1
            let client = DiagnosticsClient(fd: fd, peer: peer,
                                           isAdministrator: access.isAdministrator(uid: peer.uid, gid: peer.gid, groups: peer.groups),
                                           number: nextNumber, server: self)
            nextNumber += 1
            clients.append(client)
            client.token = loop.watch(fd, read: true, write: false) { [unowned self, unowned client] events in
                self.service(client, events)
            }
        }
    }

    /// Drops the clients whose peer has closed but whose end of stream is not read yet. A client
    /// that leaves in the same turn of the loop as another arrives still holds its slot until
    /// then, and the listener may be served first: without this the newcomer is told `busy`
    /// although a slot is free. Only a clean end with nothing left to answer counts: a peer that
    /// closed with requests unread, or ended its side with replies still to read, keeps its slot.
    func dropDeparted() {
        var probe: UInt8 = 0
        for client in clients {
            let n = recv(client.fd.rawValue, &probe, 1, Int32(MSG_PEEK) | Int32(MSG_DONTWAIT))
            let reset = n < 0 && Glibc.errno != EAGAIN && Glibc.errno != EINTR
            if reset || (n == 0 && client.pendingOutput == 0 && client.unhandled.isEmpty) { drop(client) }
        }
    }

    func service(_ client: DiagnosticsClient, _ events: PollEvents) {
        if events.contains(.writable) { client.flush() }
        guard !client.closed else { return }
        handleUnhandled(client)
        // Lines of an earlier read still wait for the client to take its replies: read no more.
        guard !client.closed, client.unhandled.isEmpty, !client.inputEnded else { return }
        guard events.contains(.readable) || events.contains(.hangUp) || events.contains(.error) else { return }
        var buffer = [UInt8](repeating: 0, count: DiagnosticsLimits.readChunkBytes)
        let n = buffer.withUnsafeMutableBytes { recv(client.fd.rawValue, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
        if n == 0 {
            // Its last requests may still be answering: closed once their replies are written.
            client.inputEnded = true
            handleUnhandled(client)
            return
        }
        if n < 0 {
            let code = Glibc.errno
            if code == EAGAIN || code == EINTR { return }
            drop(client)
            return
        }
        client.unhandled = client.splitter.feed(buffer[0..<n])
        if let skipped = client.splitter.skippingBytes, skipped > DiagnosticsLimits.maxDiscardedLineBytes {
            counters.droppedEndlessLine += 1
            log(.warning, "diagnostics: client \(client.number) (\(client.peer)) disconnected: a request line past \(skipped) bytes without an end")
            client.fail(nil, DiagnosticsError(.lineTooLong, "a request line past \(DiagnosticsLimits.maxDiscardedLineBytes) bytes without an end; disconnecting"))
            drop(client)
            return
        }
        handleUnhandled(client)
    }

    /// Handles the lines read, in order, while the client's unread output is within
    /// `readPauseOutputBytes`: the requests of one read are held back like the next read's, so
    /// that many requests sent at once wait for their replies to be read instead of piling up
    /// past `maxOutputBytes` (which would disconnect a client that does read).
    func handleUnhandled(_ client: DiagnosticsClient) {
        while !client.closed, !client.unhandled.isEmpty, client.pendingOutput <= DiagnosticsLimits.readPauseOutputBytes {
            switch client.unhandled.removeFirst() {
            case .tooLong(let bytes):
                client.fail(nil, DiagnosticsError(.lineTooLong, "a request line of \(bytes) bytes is over the limit of \(DiagnosticsLimits.maxLineBytes); skipped"))
            case .line(let line):
                if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { continue }
                request(line, client)
            }
        }
        if client.inputEnded && client.unhandled.isEmpty && client.pendingOutput == 0 {
            drop(client)
            return
        }
        updateInterest(client)
    }

    func request(_ line: [UInt8], _ client: DiagnosticsClient) {
        counters.requests += 1
        let (id, result) = DiagnosticsWire.parse(line)
        switch result {
        case .failure(let e): client.fail(id, e)
        case .success(let command):
            guard let id else { return }
            if command.changesSomething && !client.isAdministrator {
                log(.warning, "diagnostics: refused \(command.name) from uid \(client.peer.uid) pid \(client.peer.pid): not an administrator")
                client.fail(id, DiagnosticsError(.notPermitted, "\(command.name) changes something: only root, the daemon's user or the admin group may"))
                return
            }
            if case .watch = command { client.watchID = id }
            handler?.handle(command, id: id, client: client)
        }
    }

    /// Watches the socket for writing while output waits, and stops reading requests while too
    /// much does or lines already read wait. Lines waiting keep the write watch too: the output
    /// may drain through a flush outside `service` (an event to a watcher), and the socket's
    /// next writable report brings them back to `handleUnhandled`.
    /// A client whose input has ended is not read again (its end of stream would be reported
    /// for ever); it is watched for writing until `handleUnhandled` closes it after its last reply.
    func updateInterest(_ client: DiagnosticsClient) {
        guard !client.closed, let token = client.token else { return }
        let waiting = client.pendingOutput
        if waiting > DiagnosticsLimits.readPauseOutputBytes {
            if client.stalledSince == nil {
                client.stalledSince = MonotonicClock.now()
                armStallTimer()
            }
        } else {
            client.stalledSince = nil
        }
        let held = !client.unhandled.isEmpty
        loop.update(token, read: waiting <= DiagnosticsLimits.readPauseOutputBytes && !held && !client.inputEnded,
                    write: waiting > 0 || held || client.inputEnded)
    }

    /// Keeps the stall timer at the earliest moment a held-back client has waited `stallTimeout`.
    func armStallTimer() {
        stallTimer.arm(clients.compactMap(\.stalledSince).min().map { $0 + stallTimeout })
    }

    /// Disconnects the clients that took none of their replies for `stallTimeout`.
    func dropStalled() {
        let now = MonotonicClock.now()
        for client in clients {
            guard let since = client.stalledSince, now >= since + stallTimeout else { continue }
            counters.droppedSlow += 1
            log(.warning, "diagnostics: client \(client.number) (\(client.peer)) disconnected: \(client.pendingOutput) bytes of replies unread for \(stallTimeout)")
            drop(client)
        }
        armStallTimer()
    }

    func drop(_ client: DiagnosticsClient) {
        guard !client.closed else { return }
        client.closed = true
        if let t = client.token { loop.unwatch(t) }
        client.token = nil
        client.fd.close()
        clients.removeAll { $0 === client }
        let hooks = client.onClose
        client.onClose = []
        for h in hooks { h() }
    }

    /// Every client that asked to `watch`: where the daemon's events go.
    public var watchers: [DiagnosticsClient] { clients.filter { $0.watchID != nil } }
}
