import CSMSProcess
import Foundation
import Testing
import Platform
import Timebase

/// Tests/Scripts/ocpp-csms.py (the PyPI `ocpp` package's v21 ChargePoint behind `websockets`,
/// every CALL checked against the official 2.1 schemas) for the bench: the shared `CSMSProcess`
/// with a record file of its own, read with Foundation like `Bench`'s records.
final class BenchCSMS {
    let csms: CSMSProcess
    let recordPath: String
    var port: Int { csms.port }

    /// nil (and why printed) when python3 or its `ocpp`/`websockets` packages are missing.
    init?(_ extra: [String] = []) throws {
        recordPath = FileManager.default.temporaryDirectory.appendingPathComponent("csms-\(UUID().uuidString.prefix(8)).jsonl").path
        guard let c = try CSMSProcess(extra, record: recordPath) else { return nil }
        csms = c
    }

    deinit { try? FileManager.default.removeItem(atPath: recordPath) }

    /// The daemon's `cloud.url` for this CSMS (`wss` for profiles 2 and 3).
    func url(scheme: String = "ws") -> String { "\(scheme)://127.0.0.1:\(port)/ocpp" }

    /// Sends one command and waits for its `ok`.
    func command(_ json: String, timeout: Duration = .seconds(10)) throws { try csms.command(json, timeout: timeout) }

    /// The record's events so far, oldest first.
    func events() -> [[String: Any]] {
        fileText(recordPath).split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    func events(_ kind: String) -> [[String: Any]] { events().filter { $0["event"] as? String == kind } }

    /// The station's CALLs (of `action`, when given), in the order they arrived.
    func calls(_ action: String? = nil) -> [[String: Any]] {
        events("call").filter { action == nil || $0["action"] as? String == action }
    }

    /// CALLs the CSMS answered with a CALLRESULT.
    func answered(_ action: String) -> [[String: Any]] { calls(action).filter { $0["answer"] as? String == "result" } }

    /// CALLs that failed the 2.1 schema (the `ocpp` package's own check), for a failure message.
    func invalidCalls() -> [[String: Any]] { calls().filter { $0["valid"] as? Bool != true } }
}

/// One station CALL from the record, as the tests look at it.
struct RecordedCall {
    let id: String
    let action: String
    let payload: [String: Any]
    let answer: String
    let t: Double

    init?(_ event: [String: Any]) {
        guard let id = event["id"] as? String, let action = event["action"] as? String else { return nil }
        self.id = id
        self.action = action
        payload = event["payload"] as? [String: Any] ?? [:]
        answer = event["answer"] as? String ?? ""
        t = event["t"] as? Double ?? 0
    }

    /// TransactionEvent's transactionInfo.transactionId, NotifySettlement's transactionId.
    var transactionId: String? {
        (payload["transactionInfo"] as? [String: Any])?["transactionId"] as? String ?? payload["transactionId"] as? String
    }

    var seqNo: Int? { payload["seqNo"] as? Int }
    var eventType: String? { payload["eventType"] as? String }
    var offline: Bool { payload["offline"] as? Bool ?? false }

    /// The event's own time (the payload's `timestamp`) in Unix seconds.
    var timestamp: Double? {
        guard let s = payload["timestamp"] as? String else { return nil }
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let d = f.date(from: s) { return d.timeIntervalSince1970 }
        f.formatOptions = [.withInternetDateTime]
        return f.date(from: s)?.timeIntervalSince1970
    }
}

/// What the record says about the transactions: per transaction id, its TransactionEvents in the
/// order they first arrived, one entry per distinct message id.
struct TransactionLedger {
    /// Every TransactionEvent CALL, resends included.
    let events: [RecordedCall]
    /// Distinct message ids per transaction, in first-arrival order.
    let byTransaction: [String: [RecordedCall]]
    /// Transaction ids in the order their first message arrived.
    let order: [String]

    init(_ csms: BenchCSMS) {
        events = csms.calls("TransactionEvent").compactMap(RecordedCall.init)
        var seen = Set<String>(), by: [String: [RecordedCall]] = [:], order: [String] = []
        for e in events where !seen.contains(e.id) {
            seen.insert(e.id)
            guard let tx = e.transactionId else { continue }
            if by[tx] == nil { order.append(tx) }
            by[tx, default: []].append(e)
        }
        byTransaction = by
        self.order = order
    }

    /// How many CALLRESULTs each message id got.
    var resultsPerId: [String: Int] {
        events.filter { $0.answer == "result" }.reduce(into: [:]) { $0[$1.id, default: 0] += 1 }
    }

    /// Problems with each transaction's sequence: seqNo 0, 1, 2… in arrival order, one message id
    /// per seqNo, Started first, Ended last and only there, Updated between.
    func sequenceProblems() -> [String] {
        var problems: [String] = []
        for tx in order {
            let msgs = byTransaction[tx]!
            let seq = msgs.compactMap(\.seqNo)
            if seq != Array(0..<msgs.count) { problems.append("\(tx): seqNo \(seq) in arrival order") }
            let types = msgs.compactMap(\.eventType)
            let expected = msgs.indices.map { $0 == 0 ? "Started" : $0 == msgs.count - 1 ? "Ended" : "Updated" }
            if types != expected || types.count < 2 { problems.append("\(tx): eventTypes \(types)") }
        }
        return problems
    }
}

/// A throwaway PKI made with the `openssl` CLI: a CA, a server certificate for 127.0.0.1 and a
/// client certificate whose CN is `clientCN`. Paths by name: ca.pem, server.pem/key, client.pem/key.
func makeThrowawayPKI(in dir: String, clientCN: String) throws -> [String: String] {
    func openssl(_ args: [String]) throws {
        let p = try ChildProcess.spawn("/bin/sh", ["-c", "cd \"$0\" && exec openssl \"$@\" >/dev/null 2>&1", dir] + args, pipeStdin: false)
        guard p.wait(timeout: .seconds(30)) == 0 else { throw HarnessError("openssl \(args.prefix(2)) failed") }
    }
    let curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    try openssl(["req", "-x509"] + curve + ["-keyout", "ca.key", "-out", "ca.pem", "-days", "1", "-subj", "/CN=paybridge HIL CA",
                                            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    func leaf(_ name: String, cn: String, usage: String, san: String?) throws {
        try openssl(["req"] + curve + ["-keyout", "\(name).key", "-out", "\(name).csr", "-subj", "/CN=\(cn)"])
        var ext = ["basicConstraints=CA:FALSE", "keyUsage=critical,digitalSignature", "extendedKeyUsage=\(usage)",
                   "subjectKeyIdentifier=hash", "authorityKeyIdentifier=keyid,issuer"]
        if let san { ext.append("subjectAltName=\(san)") }
        try Data((ext.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: "\(dir)/\(name).ext"))
        try openssl(["x509", "-req", "-in", "\(name).csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "1",
                     "-out", "\(name).pem", "-extfile", "\(name).ext"])
        chmod("\(dir)/\(name).key", 0o600)
    }
    try leaf("server", cn: "localhost", usage: "serverAuth", san: "IP:127.0.0.1,DNS:localhost")
    try leaf("client", cn: clientCN, usage: "clientAuth", san: nil)
    return Dictionary(uniqueKeysWithValues: ["ca.pem", "server.pem", "server.key", "client.pem", "client.key"].map { ($0, "\(dir)/\($0)") })
}

/// Writes `text` to `path` with mode 0600 (a password file the daemon accepts).
func writeSecret(_ text: String, to path: String) throws {
    try Data(text.utf8).write(to: URL(fileURLWithPath: path))
    chmod(path, 0o600)
}
