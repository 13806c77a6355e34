// cloud-sim: the simulated charging platform behind the daemon's uplink (OCPP 2.1 payloads over
// HTTP, or OCPP-J RPC over a WebSocket, on one port).
import CloudSim
import Glibc
import Platform
import Timebase

let usage = """
usage: cloud-sim [--port N] [--host ADDR] [--binding https|ocpp-j|both] [--station ID] [--record FILE]
                 [--exit-with-stdin] [--down] [--slow MS] [--fail5xx ACTION|all [COUNT]]
                 [--fail4xx ACTION|all [COUNT]] [--drop ACTION|all [COUNT]] [--refuse-card LAST4 [STATUS]]
                 [--require-token TOKEN] [--boot STATUS [INTERVAL]] [--close-ws COUNT]
                 [--refuse-upgrades COUNT [STATUS]] [--idle-timeout MS] [--ws-idle-timeout MS]
                 [--max-connections N]

Answers BootNotification, Authorize, TransactionEvent, NotifySettlement, SecurityEventNotification,
StatusNotification and Heartbeat with OCPP 2.1 response payloads, over two bindings on one port
(--binding, default both):
  https   POST /{stationId}/{Action} (any path prefix), the payload as a JSON body, deduplicated
          by Idempotency-Key
  ocpp-j  a WebSocket upgrade of GET /{anything}/{stationId} (subprotocol ocpp2.1, else ocpp2.0.1),
          then OCPP-J RPC: [2,id,action,payload] in, [3,id,payload] or [4,id,code,description,{}]
          out, deduplicated by message id. Other OCPP 2.1 actions: NotSupported; unknown ones:
          NotImplemented. Faults as CALLERRORs: fail5xx InternalError, fail4xx GenericError.
Both bindings share one decision, one memory of message ids and one record file. A message id
seen before is a retry, answered as the first time, only for the same action and payload;
otherwise it is refused (422; OCPP-J: GenericError). Prints
"listening HOST:PORT" when ready. --port 0 (the default) takes an ephemeral port.

Standard input takes the same directives, one per line, each acknowledged on standard output
with "ok …" or "error …":
  down | up                       close every connection (and each new one) at once / serve again
  slow MS                         delay every response by MS (0: off)
  fail5xx ACTION|all [COUNT]      answer the next COUNT (default 1) requests with 503 (OCPP-J: InternalError)
  fail4xx ACTION|all [COUNT]      answer them with 400 {"error":"rejected by cloud-sim"} (OCPP-J: GenericError)
  drop ACTION|all [COUNT]         read and process them, then close the connection unanswered
  refuse-card LAST4 [STATUS]      Authorize for CardLast4Digits LAST4 gets STATUS (default Invalid)
  accept-card LAST4               undo refuse-card
  require-token [TOKEN]           answer 401 unless "Authorization: Bearer TOKEN" (an OCPP-J upgrade
                                  may send Basic STATIONID:TOKEN instead; none: stop checking)
  boot STATUS [INTERVAL]          answer BootNotification Accepted|Pending|Rejected with INTERVAL
                                  seconds (default Accepted, 300)
  close-ws [COUNT]                close the WebSocket (1001) after answering the next COUNT (default 1)
                                  OCPP-J messages, counted over all connections (0: off)
  refuse-upgrades [COUNT [STATUS]] refuse the next COUNT WebSocket upgrades with STATUS
                                  (default 1, 503; 400 401 403 404 429 500 503)
  clear                           up, not slow, no faults, no refused cards, boot Accepted 300
  forget                          forget every remembered message id
  quit

--record FILE appends one JSON object per request, upgrade or OCPP-J message:
  {"action":…,"station":…,"messageId":…,"body":…,"duplicate":false,"status":200,"t":<Unix ms>,"binding":"https"}
plus "dropped":true, "error":"…", "rpcError":"<CALLERROR code>" and "subprotocol":"…" (an accepted
upgrade, status 101, action null) when they apply. OCPP-J records carry the status the HTTP binding
would answer (200, 400, 404, 422, 503); 0 for messages that get no answer (SEND, CALLRESULT).
"""

func fail(_ message: String) -> Never {
    _ = try? FileDescriptor.standardError.writeAll(Array("cloud-sim: \(message)\n".utf8), timeout: .seconds(1))
    exit(2)
}

func say(_ line: String) {
    _ = try? FileDescriptor.standardOutput.writeAll(Array((line + "\n").utf8), timeout: .seconds(5))
}

func log(_ line: String) {
    _ = try? FileDescriptor.standardError.writeAll(Array("cloud-sim: \(line)\n".utf8), timeout: .seconds(1))
}

struct Options {
    var host = "127.0.0.1"
    var port: UInt16 = 0
    var station: String?
    var record: String?
    var exitWithStdin = false
    var directives: [CloudDirective] = []
    var limits = CloudServerLimits()
    var bindings = Set(CloudBinding.allCases)

    static func parse(_ arguments: [String]) -> Options {
        var o = Options()
        var args = arguments[...]

        func take(_ flag: String) -> String {
            guard let v = args.popFirst() else { fail("\(flag) needs a value\n\(usage)") }
            return v
        }
        /// A directive's words from the arguments after its flag: one quoted argument
        /// ("fail5xx 'Authorize 2'") or separate ones, the optional last word taken when it fits.
        func directiveWords(_ name: String, optionalLast: (String) -> Bool) -> [String] {
            let first = take("--\(name)")
            if first.contains(" ") { return [name] + first.split(separator: " ").map(String.init) }
            var words = [name, first]
            if let next = args.first, optionalLast(next) { words.append(next); args.removeFirst() }
            return words
        }
        func add(_ words: [String]) {
            do { o.directives.append(try CloudDirective.parse(words)) } catch { fail("--\(words.joined(separator: " ")): \(error)") }
        }
        func number(_ flag: String, _ range: ClosedRange<Int>) -> Int {
            let text = take(flag)
            guard let n = Int(text), range.contains(n) else { fail("\(flag): \(text) is not in \(range)") }
            return n
        }

        while let a = args.popFirst() {
            switch a {
            case "--port": o.port = UInt16(number(a, 0...65535))
            case "--host": o.host = take(a)
            case "--station": o.station = take(a)
            case "--record": o.record = take(a)
            case "--exit-with-stdin": o.exitWithStdin = true
            case "--idle-timeout": o.limits.idleTimeout = .milliseconds(number(a, 1...86_400_000))
            case "--ws-idle-timeout": o.limits.webSocketIdleTimeout = .milliseconds(number(a, 1...86_400_000))
            case "--binding":
                let value = take(a)
                if value == "both" {
                    o.bindings = Set(CloudBinding.allCases)
                } else if let binding = CloudBinding(rawValue: value) {
                    o.bindings = [binding]
                } else {
                    fail("--binding: \(value) is not https, ocpp-j or both")
                }
            case "--boot":
                add(directiveWords("boot", optionalLast: { Int($0) != nil }))
            case "--close-ws": add(["close-ws", take(a)])
            case "--refuse-upgrades":
                add(directiveWords("refuse-upgrades", optionalLast: { Int($0) != nil }))
            case "--max-connections": o.limits.maxConnections = number(a, 1...1000)
            case "--down": add(["down"])
            case "--slow": add(["slow", take(a)])
            case "--fail5xx", "--fail4xx", "--drop":
                add(directiveWords(String(a.dropFirst(2)), optionalLast: { Int($0) != nil }))
            case "--require-token": add(["require-token", take(a)])
            case "--refuse-card":
                add(directiveWords("refuse-card", optionalLast: { CloudDirective.refusalStatuses.contains($0) }))
            case "--help", "-h": say(usage); exit(0)
            default: fail("unknown option \(a)\n\(usage)")
            }
        }
        return o
    }
}

do {
    try Signals.ignore(SIGPIPE)
    let options = Options.parse(Array(CommandLine.arguments.dropFirst()))
    let loop = try EventLoop()
    var core = CloudSimCore(station: options.station, bindings: options.bindings)
    for directive in options.directives { _ = core.apply(directive) }
    let server = try CloudServer(loop: loop, host: options.host, port: options.port, core: core,
                                 record: options.record, limits: options.limits)
    server.announce = say
    server.log = log
    server.exitsWhenStandardInputCloses = options.exitWithStdin
    try loop.onSignal(SIGTERM) { exit(0) }
    try loop.onSignal(SIGINT) { exit(0) }
    try server.start()
    try loop.run()
} catch {
    fail("\(error)")
}
