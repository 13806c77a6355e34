import DiagnosticsProtocol
import Glibc
import JSONLines
import Platform

let controlUsage = """
usage: paybridgectl [--socket PATH] [--json] COMMAND
  status                              the daemon, terminal link, connectors, ledger, outbox, payments, warnings
  sessions [--open] [--last N]        the ledger's sessions
  inventory                           terminal, SIM and SAM serials, charger serial, transfer number, processor
  test-transaction [--connector N] [--amount MINOR]
                                      a small pre-authorisation, then a void (no relay, no energy)
  stop CONNECTOR [--reason TEXT]      stop the session on a connector (numbered from 1) as an operator stop
  export [--from DATE] [--to DATE] [--format csv|json]
                                      settled, voided, declined and reconciliation sessions (DATE: YYYY-MM-DD, UTC)
  metrics                             Prometheus text
  watch                               the daemon's events, one line each, until Ctrl-C
  accept-terminal                     accept a replaced terminal (or one that reported tampering) and take payments again
  clear-fault CONNECTOR               after inspecting it: clear a welded relay's latch (refused while the contact reads closed)
  plug CONNECTOR in|out               the controller's inputs (charger.io = socket): a car plugged in or out,
  meter CONNECTOR WH [--power W]        the energy register, a fault that stops the session,
  fault CONNECTOR TEXT                  whether the connector is ready,
  evse-ready CONNECTOR yes|no           and a relay's confirmed state
  relay CONNECTOR closed|open
  controller [--confirm-relays]       be the charger's controller (charger.io = socket): print the relay
                                        requests and offers until Ctrl-C; payments are taken only while one
                                        is connected. --confirm-relays answers each request at once (a
                                        bench without contactors). When the connection ends it
                                        opens every contactor (here: says so) and exits 3
  --socket  the daemon's socket (default \(defaultSocket))
  --json    print the daemon's reply objects as they come, one per line
exit status: 0 done, 1 the daemon said no, 2 usage, 3 the daemon cannot be reached
"""

let defaultSocket = "/run/paybridge/paybridged.sock"

/// paybridgectl's exit statuses.
enum ControlExit {
    static let done: Int32 = 0
    static let refused: Int32 = 1
    static let usage: Int32 = 2
    static let unreachable: Int32 = 3
}

/// How long paybridgectl waits for a reply (a test transaction waits for the card and the bank).
let replyTimeoutMilliseconds: Int32 = 10_000
let testTransactionTimeoutMilliseconds: Int32 = 180_000
/// Sending the request: a daemon that does not read it within this long is not answering.
let sendTimeoutMilliseconds: Int32 = 5_000
/// After the request could not be sent (the daemon closed the connection), how long what it
/// said before closing (`busy`) may take to be read.
let refusalReadMilliseconds: Int32 = 1_000

func usageError(_ message: String) -> Never {
    die("\(message)\n\(controlUsage)", code: ControlExit.usage)
}

/// The command line after the global options, as a request.
func parseCommand(_ list: [String]) -> DiagnosticsCommand {
    var args = list
    guard !args.isEmpty else { usageError("no command") }
    let name = args.removeFirst()
    func take(_ what: String) -> String {
        guard !args.isEmpty else { usageError("\(name) needs \(what)") }
        return args.removeFirst()
    }
    func number(_ text: String, _ what: String) -> Int64 {
        guard let n = Int64(text) else { usageError("\(what) must be a whole number, not '\(text)'") }
        return n
    }
    func connector() -> Int {
        let text = take("a connector number (from 1)")
        guard let n = Int(text), n >= 1 else { usageError("connectors are numbered from 1, not '\(text)'") }
        return n
    }
    func option(_ flag: String) -> String? {
        guard let i = args.firstIndex(of: flag) else { return nil }
        guard i + 1 < args.count else { usageError("\(flag) needs a value") }
        let v = args[i + 1]
        args.removeSubrange(i...(i + 1))
        return v
    }
    func flag(_ f: String) -> Bool {
        guard let i = args.firstIndex(of: f) else { return false }
        args.remove(at: i)
        return true
    }
    func yesNo(_ text: String, _ yes: [String], _ no: [String]) -> Bool {
        if yes.contains(text) { return true }
        if no.contains(text) { return false }
        usageError("\(name) takes \(yes[0]) or \(no[0]), not '\(text)'")
    }
    let command: DiagnosticsCommand
    switch name {
    case "status": command = .status
    case "inventory": command = .inventory
    case "metrics": command = .metrics
    case "watch": command = .watch
    case "accept-terminal": command = .acceptTerminal
    case "controller": command = .controller
    case "sessions":
        let open = flag("--open")
        let last = option("--last").map { Int(number($0, "--last")) }
        command = .sessions(openOnly: open, last: last)
    case "export":
        let from = option("--from"), to = option("--to")
        let formatText = option("--format") ?? "csv"
        guard let format = ExportFormat(rawValue: formatText) else { usageError("--format is csv or json") }
        command = .export(from: from, to: to, format: format)
    case "test-transaction":
        let c = option("--connector").map { Int(number($0, "--connector")) }
        let amount = option("--amount").map { number($0, "--amount") }
        command = .testTransaction(connector: c, amount: amount)
    case "stop":
        let reason = option("--reason")
        command = .stop(connector: connector(), reason: reason)
    case "plug": let c = connector(); command = .plug(connector: c, plugged: yesNo(take("in or out"), ["in", "yes", "true"], ["out", "no", "false"]))
    case "meter":
        let power = option("--power").map { number($0, "--power") }
        let c = connector()
        command = .meter(connector: c, energyWh: number(take("the energy register in Wh"), "WH"), powerW: power)
    case "fault":
        let c = connector()
        let text = args.joined(separator: " ")
        guard !text.isEmpty else { usageError("fault needs a text") }
        args.removeAll()
        command = .fault(connector: c, text: text)
    case "evse-ready": let c = connector(); command = .evseReady(connector: c, ready: yesNo(take("yes or no"), ["yes", "true", "ready"], ["no", "false"]))
    case "relay": let c = connector(); command = .relay(connector: c, closed: yesNo(take("closed or open"), ["closed", "close"], ["open"]))
    case "clear-fault": command = .clearFault(connector: connector())
    default: usageError("unknown command '\(name)'")
    }
    if let extra = args.first { usageError("\(name): unexpected '\(extra)'") }
    return command
}

func runControl(_ list: [String]) -> Int32 {
    var args = list
    var socketPath = defaultSocket
    var json = false
    while let first = args.first, first.hasPrefix("--") {
        args.removeFirst()
        switch first {
        case "--socket":
            guard !args.isEmpty else { usageError("--socket needs a path") }
            socketPath = args.removeFirst()
        case "--json": json = true
        default: usageError("unknown option \(first)")
        }
    }
    // `controller --confirm-relays` is paybridgectl's own choice, not a field of the request.
    var confirmRelays = false
    if args.first == "controller", let i = args.firstIndex(of: "--confirm-relays") {
        args.remove(at: i)
        confirmRelays = true
    }
    let command = parseCommand(args)
    let fd: FileDescriptor
    do { fd = try UnixSocket.connect(path: socketPath) } catch {
        let cause: String
        switch error.errno {
        case ENOENT: cause = "no socket there: is paybridged running, and is diagnostics.socket this path?"
        case ECONNREFUSED: cause = "nothing listens there: paybridged is not running (a stale socket)"
        case EACCES, EPERM: cause = "permission denied: run as root or as a member of the daemon's group (diagnostics.admin_group)"
        default: cause = "\(error)"
        }
        die("cannot reach the daemon at \(socketPath): \(cause)", code: ControlExit.unreachable)
    }
    let request = Array(DiagnosticsWire.request(id: 1, command).utf8)
    var reader = ReplyReader(fd: fd)
    var nextID: Int64 = 1
    // A daemon with every client slot taken answers `busy` and closes at once, possibly before
    // the request is written: its refusal, not the broken pipe, is what the technician needs.
    if let code = sendAll(fd, request, timeoutMilliseconds: sendTimeoutMilliseconds), !reader.lineArrives(within: refusalReadMilliseconds) {
        die("cannot send to the daemon at \(socketPath): \(SystemError(call: "send", errno: code))", code: ControlExit.unreachable)
    }
    let streaming: Bool
    switch command {
    case .watch, .testTransaction, .controller: streaming = true
    default: streaming = false
    }
    let timeout: Int32
    switch command {
    case .watch, .controller: timeout = -1
    case .testTransaction: timeout = testTransactionTimeoutMilliseconds
    default: timeout = replyTimeoutMilliseconds
    }
    // As the controller: how many connectors the daemon said it drives (its first reply).
    var controlledConnectors = 0
    while true {
        guard let line = reader.next(timeoutMilliseconds: timeout) else {
            if case .controller = command, controlledConnectors > 0 { controllerLost(connectors: controlledConnectors, json: json) }
            die(reader.timedOut ? "no answer from the daemon within \(timeout / 1000) s" : "the daemon closed the connection", code: ControlExit.unreachable)
        }
        let reply: JSON
        do { reply = try JSON.parse(line) } catch { die("unreadable reply from the daemon: \(error)", code: ControlExit.unreachable) }
        if json { writeOut(reply.text) }
        if reply["ok"] == .bool(false) {
            if !json {
                let code = reply["error"]?["code"]?.stringValue ?? "?"
                let message = reply["error"]?["message"]?.stringValue ?? ""
                writeErr("paybridgectl: the daemon said no (\(code)): \(message)")
            }
            return ControlExit.refused
        }
        if !json { render(command, reply) }
        if case .controller = command, reply["controller"] == .bool(true), case .int(let n)? = reply["connectors"] { controlledConnectors = Int(n) }
        if confirmRelays, reply["event"]?.stringValue == "relay", case .int(let c)? = reply["connector"], case .bool(let closed)? = reply["closed"] {
            nextID += 1
            let confirmation = Array(DiagnosticsWire.request(id: nextID, .relay(connector: Int(c), closed: closed)).utf8)
            if let code = sendAll(fd, confirmation, timeoutMilliseconds: sendTimeoutMilliseconds) {
                die("cannot send to the daemon at \(socketPath): \(SystemError(call: "send", errno: code))", code: ControlExit.unreachable)
            }
        }
        if let event = reply["event"]?.stringValue {
            // A test transaction ends with its outcome event.
            if case .testTransaction = command, event == "outcome" {
                return reply["succeeded"] == .bool(true) ? ControlExit.done : ControlExit.refused
            }
            continue
        }
        if !streaming { return ControlExit.done }
        if case .watch = command { continue }
        if case .controller = command { continue }
    }
}

/// The controller's connection to the daemon ended (it stopped, was killed, or the watchdog
/// aborted it): a controller opens every contactor now, whatever it was last asked, because
/// nothing that could stop or bill the charge is listening any more (docs/diagnostics.md). This
/// bench controller has no contactors, so it says so, one line per connector.
func controllerLost(connectors: Int, json: Bool) {
    for c in 1...connectors {
        if json {
            writeOut("{\"event\":\"relay\",\"connector\":\(c),\"closed\":false,\"cause\":\"connection-lost\"}")
        } else {
            writeOut("relay      connector \(c): OPEN (the connection to the daemon ended: every contactor opens)")
        }
    }
}

/// Writes all of `bytes` to the socket without SIGPIPE (a closed connection is an error to
/// report, not the end of the tool); the errno of the failure, nil once everything is written.
func sendAll(_ fd: FileDescriptor, _ bytes: [UInt8], timeoutMilliseconds: Int32) -> Int32? {
    let deadline = MonotonicClock.now().nanoseconds + UInt64(max(0, timeoutMilliseconds)) * 1_000_000
    var offset = 0
    while offset < bytes.count {
        let n = bytes[offset...].withUnsafeBytes { send(fd.rawValue, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT)) }
        if n > 0 { offset += n; continue }
        let code = errno
        guard n < 0, code == EAGAIN || code == EINTR else { return n < 0 ? code : EPIPE }
        let now = MonotonicClock.now().nanoseconds
        let left = deadline > now ? deadline - now : 0
        guard left > 0 else { return ETIMEDOUT }
        var p = pollfd(fd: fd.rawValue, events: Int16(POLLOUT), revents: 0)
        _ = poll(&p, 1, Int32(min(left / 1_000_000 + 1, UInt64(Int32.max))))
    }
    return nil
}

/// Reads reply lines from the socket.
struct ReplyReader {
    let fd: FileDescriptor
    var buffer: [UInt8] = []
    var timedOut = false

    init(fd: FileDescriptor) { self.fd = fd }

    /// Whether a whole line arrives within `milliseconds`; it stays to be read by `next`.
    mutating func lineArrives(within milliseconds: Int32) -> Bool {
        guard let line = next(timeoutMilliseconds: milliseconds) else { return false }
        buffer = line + [0x0A] + buffer
        return true
    }

    mutating func next(timeoutMilliseconds: Int32) -> [UInt8]? {
        while true {
            if let nl = buffer.firstIndex(of: 0x0A) {
                let line = Array(buffer[..<nl])
                buffer.removeFirst(nl + 1)
                return line
            }
            var p = pollfd(fd: fd.rawValue, events: Int16(POLLIN), revents: 0)
            let r = poll(&p, 1, timeoutMilliseconds)
            if r == 0 { timedOut = true; return nil }
            if r < 0 { if errno == EINTR { continue }; return nil }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = chunk.withUnsafeMutableBytes { recv(fd.rawValue, $0.baseAddress, $0.count, 0) }
            if n < 0 { if errno == EINTR { continue }; return nil }
            if n == 0 { return nil }
            buffer += chunk[0..<n]
        }
    }
}

func writeErr(_ s: String) {
    let bytes = Array((s + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}
