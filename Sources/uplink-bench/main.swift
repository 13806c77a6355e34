// uplink-bench: drains a backlog of queued OCPP messages from the outbox to cloud-sim over
// loopback through the daemon's own parts (ledger, outbox, libcurl client), and reports the
// rate and this process's memory. Usage: uplink-bench [--messages N] [--in-flight K] [--cloud URL] [--protocol https|ocpp-j]
// With ocpp-j the messages go as OCPP-J CALLs over one WebSocket, one CALL in flight (the
// spec's rule; --in-flight is then 1).
import CloudHTTP
import Glibc
import Ledger
import PaymentEngine
import Platform
import Station
import Timebase
import Uplink
import OCPPJ
import OCPPJUplink

struct Options {
    var messages = 10_000
    var inFlight = 4
    var cloud: String?
    var protocolName = "https"
    static func parse(_ list: [String]) -> Options {
        var o = Options()
        var a = list
        while !a.isEmpty {
            let f = a.removeFirst()
            guard !a.isEmpty else { print("usage: uplink-bench [--messages N] [--in-flight K] [--cloud URL] [--protocol https|ocpp-j]"); exit(2) }
            let v = a.removeFirst()
            switch f {
            case "--messages": o.messages = Int(v) ?? o.messages
            case "--in-flight": o.inFlight = Int(v) ?? o.inFlight
            case "--cloud": o.cloud = v
            case "--protocol":
                guard v == "https" || v == "ocpp-j" else { print("--protocol https|ocpp-j"); exit(2) }
                o.protocolName = v
            default: print("unknown option \(f)"); exit(2)
            }
        }
        return o
    }
}

func rssKB(_ field: String) -> Int {
    guard let f = fopen("/proc/self/status", "r") else { return -1 }
    defer { fclose(f) }
    var line = [CChar](repeating: 0, count: 256)
    while fgets(&line, 256, f) != nil {
        let s = String(cString: line)
        if s.hasPrefix(field + ":") { return Int(s.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first ?? "") ?? -1 }
    }
    return -1
}

var o = Options.parse(Array(CommandLine.arguments.dropFirst()))
if o.protocolName == "ocpp-j" { o.inFlight = 1 }
let loop = try EventLoop()
var cloudProcess: ChildProcess?
var url = o.cloud ?? ""
if o.cloud == nil {
    let p = try ChildProcess.spawn(ChildProcess.executableDirectory() + "/cloud-sim", ["--port", "0", "--exit-with-stdin"])
    guard let line = try p.readLine(timeout: .seconds(30)), let port = line.split(separator: ":").last else { print("cloud-sim did not start"); exit(1) }
    url = "http://127.0.0.1:\(port)"
    cloudProcess = p
}
var template = Array("/tmp/uplink-bench-XXXXXX".utf8CString)
guard let d = mkdtemp(&template) else { print("mkdtemp failed"); exit(1) }
let dir = String(cString: d)
let (ledger, _, _) = try Ledger.open(directory: dir + "/ledger", options: LedgerOptions(diskBudgetBytes: 256 << 20))

// The backlog: N TransactionEvents over 100 transactions, written durably as the daemon would.
var reporterCard = CardIdentity(maskedPAN: "476173******0119", hash: [1, 2, 3, 4], brand: "VISA")
reporterCard.brand = "VISA"
var records: [OutboxRecord] = []
for i in 0..<o.messages {
    let tx = "CS-BENCH-\(i % 100)"
    let body = OCPPPayload.transactionEvent(transactionId: tx, seqNo: i / 100, stage: .meter(energyWh: Int64(i), seconds: Int64(i)),
                                            at: 1_764_054_044_000 + Int64(i), offline: true, card: reporterCard, connector: 0, currency: "EUR")
    let m = OutboxMessage(id: MessageIDs.derive("\(tx)/\(i)"), queue: tx, action: .transactionEvent, kind: .updated, body: Array(body.text.utf8))
    let r = OutboxRecord.queued(m)
    _ = try ledger.append(kind: r.kind, body: r.encodeBody())
    records.append(r)
}
try ledger.sync()
var config = OutboxConfig()
config.maxInFlight = o.inFlight
config.budgetBytes = 256 << 20
let outbox = Outbox.recover(config: config, records: records, now: MonotonicClock.now())
let client = try HTTPClient(loop: loop, limits: HTTPClientLimits(maxConcurrent: o.inFlight, maxConnects: o.inFlight))
let uplink: UplinkTransport
var ocppj: OCPPJUplink?
if o.protocolName == "ocpp-j" {
    let ws = (url.hasPrefix("http://") ? "ws://" + url.dropFirst(7) : url) + "/ocpp"
    var settings = OCPPJSettings(url: try WebSocketURL(parsing: ws), stationId: "CS-BENCH",
                                 bootPayload: BootPayload.make(reason: .powerUp, vendor: "paybridge", model: "uplink-bench"))
    settings.pingInterval = nil
    let j = OCPPJUplink(loop: loop, client: client, settings: settings, seed: 1)
    var ready = false
    j.onReady = { ready = true }
    j.start()
    _ = try loop.run(until: { ready }, deadline: MonotonicClock.now() + .seconds(10))
    guard ready else { print("no accepted BootNotification from \(ws)"); exit(1) }
    uplink = j
    ocppj = j
} else {
    uplink = HTTPUplink(client: client, baseURL: url, stationId: "CS-BENCH")
}
/// The drain loop's state; the station does the same with its outbox.
final class Drain {
    var outbox: Outbox
    let ledger: Ledger
    let uplink: UplinkTransport
    var failures = 0
    init(outbox: Outbox, ledger: Ledger, uplink: UplinkTransport) { self.outbox = outbox; self.ledger = ledger; self.uplink = uplink }

    func handle(_ fx: [OutboxEffect]) {
        var unsynced = false
        var sends: [OutboxMessage] = []
        for e in fx {
            switch e {
            case .persist(let r):
                _ = try? ledger.append(kind: r.kind, body: r.encodeBody())
                unsynced = true
            case .send(let m): sends.append(m)
            case .notice: failures += 1
            }
        }
        // Acknowledgements are durable before more goes out, as in the station.
        if unsynced { try? ledger.sync() }
        for m in sends {
            uplink.send(m) { [unowned self] result in self.handle(self.outbox.completed(m.id, result, now: MonotonicClock.now())) }
        }
    }
}
let drain = Drain(outbox: outbox, ledger: ledger, uplink: uplink)
let rssBefore = rssKB("VmRSS")
var peak = rssBefore

let start = MonotonicClock.now()
drain.handle(drain.outbox.tick(now: start))
var lastSample = start
_ = try loop.run(until: {
    let now = MonotonicClock.now()
    if now - lastSample > .milliseconds(100) { peak = max(peak, rssKB("VmRSS")); lastSample = now }
    if drain.outbox.pending > 0, drain.outbox.inFlight == 0, let next = drain.outbox.nextDeadline, next <= now {
        drain.handle(drain.outbox.tick(now: now))
    }
    return drain.outbox.pending == 0
}, deadline: start + .seconds(600))
let elapsed = Double((MonotonicClock.now() - start).nanosecondsClamped) / 1e9
peak = max(peak, rssKB("VmRSS"))
let rate = Double(drain.outbox.delivered) / elapsed
print("drained \(drain.outbox.delivered) of \(o.messages) messages over \(o.protocolName) in \(String(Int(elapsed * 1000))) ms with \(o.inFlight) in flight: \(Int(rate)) messages/s; \(drain.failures) failures")
print("RSS before \(rssBefore) kB, peak while draining \(peak) kB, high-water \(rssKB("VmHWM")) kB")
ocppj?.stop()
print("RESULT name=uplink_drain protocol=\(o.protocolName) messages=\(drain.outbox.delivered) per_second=\(Int(rate)) rss_peak_kb=\(peak)")
ledger.close()
cloudProcess?.terminate()
exit(drain.outbox.pending == 0 ? 0 : 1)
