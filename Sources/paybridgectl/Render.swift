import DiagnosticsProtocol
import Glibc
import JSONLines
import StationReports

// What a technician reads: the daemon's reply objects as aligned text. `--json` skips all of this.

func age(_ seconds: Int64) -> String { HumanFormat.age(seconds: seconds) }

/// Bytes as a person reads them (KiB and MiB, one decimal).
func size(_ bytes: Int64) -> String {
    if bytes < 1024 { return "\(bytes) B" }
    let tenths = bytes * 10 / 1024
    if tenths < 10_240 { return "\(tenths / 10).\(tenths % 10) KiB" }
    let m = bytes * 10 / (1024 * 1024)
    return "\(m / 10).\(m % 10) MiB"
}

/// Columns aligned: the columns in `rightAligned` (numbers) to the right, text to the left.
func table(_ header: [String], _ rows: [[String]], rightAligned: Set<Int> = []) -> [String] {
    let alignments = header.indices.map { rightAligned.contains($0) ? TextTable.Alignment.right : .left }
    return TextTable(header: header, rows: rows, alignments: alignments).render().split(separator: "\n").map(String.init)
}

extension JSON {
    var int: Int64? { if case .int(let i) = self { return i }; return nil }
    var bool: Bool? { if case .bool(let b) = self { return b }; return nil }
    /// A string, number or decimal as text; "-" for null or absent.
    var shown: String {
        switch self {
        case .string(let s): return s.isEmpty ? "-" : s
        case .int(let i): return String(i)
        case .decimal(let d): return d
        case .bool(let b): return b ? "yes" : "no"
        case .null: return "-"
        default: return text
        }
    }
}

func shown(_ j: JSON?) -> String { j?.shown ?? "-" }

func utc(_ millis: Int64) -> String { UTCDate.iso8601(millis: millis) }

func render(_ command: DiagnosticsCommand, _ reply: JSON) {
    switch command {
    case .status: renderStatus(reply)
    case .sessions: renderSessions(reply)
    case .inventory: renderInventory(reply)
    case .export, .metrics: writeRaw(reply["text"]?.stringValue ?? "")
    case .watch:
        if let kind = reply["event"]?.stringValue {
            let at = reply["at"]?.int.map(utc) ?? "-"
            switch kind {
            case "log": writeOut("\(at) \(shown(reply["level"])): \(shown(reply["text"]))")
            default: writeOut("\(at) \(kind): \(reply.text)")
            }
        } else {
            writeOut("watching the daemon's events (Ctrl-C to stop)")
        }
    case .testTransaction:
        if let kind = reply["event"]?.stringValue {
            writeOut("\(kind == "outcome" ? (reply["succeeded"] == .bool(true) ? "SUCCEEDED" : "FAILED") : kind): \(shown(reply["text"]))")
        } else {
            writeOut("test transaction on connector \(shown(reply["connector"])) for \(shown(reply["amount"])) \(shown(reply["currency"])): started")
        }
    case .stop: writeOut("stopping session \(shown(reply["session"])) on connector \(shown(reply["connector"]))")
    case .acceptTerminal: writeOut(reply["text"]?.stringValue ?? "terminal accepted")
    case .plug, .meter, .fault, .evseReady, .relay, .clearFault: writeOut(reply["text"]?.stringValue ?? "accepted")
    case .controller:
        switch reply["event"]?.stringValue {
        case "relay"?: writeOut("relay      connector \(shown(reply["connector"])): \(reply["closed"] == .bool(true) ? "CLOSE" : "OPEN") requested")
        case "offer"?:
            let session = reply["session"].flatMap(\.int).map { " (session \($0))" } ?? ""
            writeOut("offer      connector \(shown(reply["connector"])): \(shown(reply["offer"]))\(session)")
        case nil where reply["controller"] == .bool(true):
            writeOut("controlling \(shown(reply["connectors"])) connectors (meter timeout \(shown(reply["meter_timeout_seconds"])) s, relays confirmed within \(shown(reply["relay_confirm_seconds"])) s; Ctrl-C to stop)")
        case nil: writeOut(reply["text"]?.stringValue ?? "accepted")
        default: writeOut(reply.text)
        }
    }
}

func renderStatus(_ r: JSON) {
    writeOut("paybridged \(shown(r["version"])), up \(age(r["uptime_seconds"]?.int ?? 0)), station \(shown(r["station_id"]))")
    if r["payments"]?["enabled"] == .bool(true) {
        writeOut("payments   enabled")
    } else {
        writeOut("payments   DISABLED: \(shown(r["payments"]?["reason"]))")
    }
    if let t = r["terminal"] {
        let since = t["since_seconds"]?.int.map { " for \(age($0))" } ?? ""
        writeOut("terminal   link \(shown(t["link"]))\(since), state \(shown(t["state"])), \(shown(t["protocol"])) \(shown(t["family"])) at \(shown(t["endpoint"]))"
                 + (t["link"] == .string("down") && t["last_error"] != .null ? " (last error: \(shown(t["last_error"])))" : ""))
    }
    var rows: [[String]] = []
    for c in r["connectors"]?.arrayValue ?? [] {
        var session = "-"
        if let s = c["session"], s != .null {
            let kwh = (s["energy_wh"]?.int ?? 0)
            session = "#\(shown(s["id"])) \(shown(s["phase"])) \(shown(s["card"])) \(shown(s["brand"])), \(kwh / 1000).\(String(kwh % 1000 / 10 + 100).dropFirst()) kWh, authorised \(shown(s["authorised"])) \(shown(s["currency"]))"
        }
        let status = c["latched"]?.stringValue.map { "\(shown(c["status"])) (\($0): clear-fault \(shown(c["connector"])))" } ?? shown(c["status"])
        rows.append([shown(c["connector"]), status, shown(c["relay"]), shown(c["plugged"]), session])
    }
    for line in table(["connector", "status", "relay", "plugged", "session"], rows, rightAligned: [0]) { writeOut("  " + line) }
    if let c = r["controller"], c != .null {
        writeOut(c["connected"] == .bool(true) ? "controller connected (uid \(shown(c["uid"])) pid \(shown(c["pid"])))"
                                               : "controller NOT CONNECTED (charger.io = socket)")
    }
    if let l = r["ledger"] {
        writeOut("ledger     \(shown(l["records_written"])) records written since start (\(shown(l["records_at_start"])) at start), "
                 + "\(size(l["used_bytes"]?.int ?? 0)) of \(size(l["budget_bytes"]?.int ?? 0))"
                 + (l["last_error"] != .null ? "; LAST ERROR: \(shown(l["last_error"]))" : ""))
    }
    if let o = r["outbox"] {
        let kinds = (o["by_action"].flatMap { j -> [(String, JSON)]? in if case .object(let f) = j { return f }; return nil } ?? [])
            .map { "\($0.0) \($0.1.shown)" }.joined(separator: ", ")
        let oldest = o["oldest_age_seconds"]?.int.map { ", oldest \(age($0))" } ?? ""
        var cloud = "cloud \(shown(o["cloud"]))"
        if let s = o["reachable_since_seconds"]?.int { cloud += " for \(age(s))" }
        if let s = o["unreachable_since_seconds"]?.int { cloud += " for \(age(s))" }
        writeOut("outbox     \(shown(o["queued"])) queued\(kinds.isEmpty ? "" : " (\(kinds))")\(oldest); \(shown(o["dead_letters"])) dead letters; \(cloud)")
        if let j = o["ocpp_j"], j != .null {
            writeOut("ocpp-j     \(shown(j["registration"]))\(j["subprotocol"].map { $0 == .null ? "" : " (\($0.shown))" } ?? ""); "
                     + "\(shown(j["connections"])) connections, \(shown(j["disconnects"])) lost, \(shown(j["connect_failures"])) failed connects; "
                     + "\(shown(j["timeouts"])) timeouts, \(shown(j["malformed"])) malformed from the CSMS")
        }
    }
    let warnings = r["warnings"]?.arrayValue ?? []
    if warnings.isEmpty {
        writeOut("warnings   none")
    } else {
        for (i, w) in warnings.enumerated() { writeOut((i == 0 ? "warnings   " : "           ") + shown(w)) }
    }
}

func renderSessions(_ r: JSON) {
    var rows: [SessionRow] = []
    for j in r["sessions"]?.arrayValue ?? [] {
        do { rows.append(try SessionRow(json: j)) } catch { writeErr("paybridgectl: a session the daemon sent is unreadable: \(error)") }
    }
    if rows.isEmpty { writeOut("no sessions"); return }
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    writeRaw(SessionTable.table(rows, now: Int64(now.tv_sec) * 1000).render())
}

func renderInventory(_ r: JSON) {
    var lines: [[String]] = []
    func add(_ label: String, _ v: JSON?) { lines.append([label, shown(v)]) }
    if let t = r["terminal"] {
        add("terminal model", t["model"]); add("terminal serial", t["serial_number"]); add("terminal firmware", t["firmware"])
        add("SIM serial (ICCID)", t["sim_serial"])
        lines.append(["SAM serials", (t["sam_serials"]?.arrayValue ?? []).map(\.shown).joined(separator: ", ").ifEmpty("-")])
        add("terminal family", t["family"]); add("terminal endpoint", t["endpoint"])
        add("transfer number", t["transfer_number"].flatMap { $0 == .string("") ? nil : $0 }); add("Payter domain", t["domain"])
        if let n = t["network"], n != .null {
            // The terminal's lines on one row; hex marked as such; and that the layout is a guess.
            let value = n["text"]?.stringValue.map { $0.split(separator: "\n").joined(separator: "; ") }
                ?? n["hex"]?.stringValue.map { "hex " + $0 }
            lines.append(["network", (value ?? "").ifEmpty("-")])
            add("network source", n["source"])
        }
    }
    if let c = r["charger"] { add("charger serial", c["serial_number"]); add("connectors", c["connectors"]); add("station id", c["station_id"]) }
    add("processor", r["payment"]?["processor"])
    add("paybridge version", r["paybridge"]?["version"])
    for line in table(["item", "value"], lines) { writeOut(line) }
}

extension String {
    func ifEmpty(_ other: String) -> String { isEmpty ? other : self }
}

/// Text that already ends its lines (an export, metrics).
func writeRaw(_ s: String) {
    var bytes = Array(s.utf8)
    if bytes.last == 0x0A { bytes.removeLast() }
    writeOut(String(decoding: bytes, as: UTF8.self))
}
