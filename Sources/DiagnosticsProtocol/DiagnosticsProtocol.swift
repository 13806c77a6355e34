import JSONLines

// The technicians' and the charger controller's protocol on the daemon's local socket
// (docs/diagnostics.md): one JSON object per line each way. Pure: lines in, values out; the
// socket, the peer's credentials and the daemon's state are the shell's.

/// The protocol's limits. The daemon's configuration can lower the client count only.
public enum DiagnosticsLimits {
    /// The protocol version this daemon speaks (`"v"` in every request and reply).
    public static let version: Int64 = 1
    /// A request line longer than this (without its newline) is refused with `line_too_long`
    /// and skipped up to its newline; the connection stays open.
    public static let maxLineBytes = 64 * 1024
    /// An overlong line still going after this many bytes is not a mistake but a stream: the
    /// client is told `line_too_long` and disconnected, instead of costing the loop a read per
    /// turn for as long as it likes.
    public static let maxDiscardedLineBytes = 1 << 20
    /// Clients connected at once (default of `diagnostics.max_clients`); the next is told `busy` and closed.
    public static let defaultMaxClients = 16
    /// Highest `diagnostics.max_clients` accepted.
    public static let maxClientsCeiling = 64
    /// A client whose unread replies and events pass this many bytes is disconnected: it is not
    /// reading, and the daemon will not hold memory for it.
    public static let maxOutputBytes = 1 << 20
    /// While a client's unread output is above this, the daemon stops reading its requests
    /// (backpressure), so a client that floods requests without reading waits instead of growing the buffer.
    public static let readPauseOutputBytes = 256 * 1024
    /// Bytes read from one client per turn of the event loop: a flooding client cannot hold the
    /// loop for longer than it takes to answer this much.
    public static let readChunkBytes = 4096
    /// A client whose unread replies stay over `readPauseOutputBytes` this long without it taking
    /// any is disconnected: held back, it could otherwise keep one of the slots for ever.
    public static let maxStalledSeconds: Int64 = 30
    /// `sessions --last N` and similar counts are capped here.
    public static let maxListed = 10_000
    /// Operator texts (a stop reason, a fault) are cut to this many bytes.
    public static let maxTextBytes = 200
}

/// Why a request was refused. The `code` is what scripts match on; the message is for people.
public enum DiagnosticsErrorCode: String, Sendable, CaseIterable {
    /// The line is not a JSON object.
    case badJSON = "bad_json"
    /// `"v"` is missing or not the version this daemon speaks.
    case versionMismatch = "version_mismatch"
    /// `"cmd"` names no command this daemon knows.
    case unknownCommand = "unknown_command"
    /// The line was longer than `DiagnosticsLimits.maxLineBytes`.
    case lineTooLong = "line_too_long"
    /// A field the command needs is absent.
    case missingField = "missing_field"
    /// A field has the wrong type or a value out of range.
    case badField = "bad_field"
    /// The command changes something and the peer is not an administrator (uid 0, the daemon's
    /// uid, or a member of `diagnostics.admin_group`), judged from the peer's credentials.
    case notPermitted = "not_permitted"
    /// The daemon understood and declined (no session on that connector, a test transaction
    /// while a session runs, controller input without `charger.io = socket`, …).
    case refused = "refused"
    /// Too many clients are connected; this one is closed after the reply.
    case busy = "busy"
}

/// A refusal: a code and a sentence for the technician.
public struct DiagnosticsError: Error, Equatable, Sendable, CustomStringConvertible {
    public var code: DiagnosticsErrorCode
    public var message: String
    public init(_ code: DiagnosticsErrorCode, _ message: String) { self.code = code; self.message = message }
    public var description: String { "\(code.rawValue): \(message)" }
}

/// The formats `export` writes.
public enum ExportFormat: String, Sendable, Equatable { case csv, json }

/// What a client can ask. Connectors are numbered from 1, as on the charger's label and in OCPP.
public enum DiagnosticsCommand: Equatable, Sendable {
    case status
    case sessions(openOnly: Bool, last: Int?)
    case inventory
    case metrics
    /// Streams the daemon's events as lines until the client closes.
    case watch
    /// `from`/`to`: `YYYY-MM-DD` (UTC day, `to` inclusive) or `YYYY-MM-DDTHH:MM:SSZ`, checked by the daemon.
    case export(from: String?, to: String?, format: ExportFormat)
    case stop(connector: Int, reason: String?)
    case testTransaction(connector: Int?, amount: Int64?)
    case acceptTerminal
    /// The controller's inputs (`charger.io = socket`).
    case plug(connector: Int, plugged: Bool)
    case meter(connector: Int, energyWh: Int64, powerW: Int64?)
    case fault(connector: Int, text: String)
    case evseReady(connector: Int, ready: Bool)
    /// The controller confirms that a relay is now closed or open.
    case relay(connector: Int, closed: Bool)
    /// This connection is the charger's controller (`charger.io = socket`): it is sent the relay
    /// requests and the connectors' offers as events until it closes; payments are taken only
    /// while one is connected. At most one at a time.
    case controller
    /// A technician clears a welded relay's latch after inspecting the contactor.
    case clearFault(connector: Int)

    /// Every command name, as on the wire.
    public static let names = ["status", "sessions", "inventory", "metrics", "watch", "export", "stop", "test-transaction",
                               "accept-terminal", "plug", "meter", "fault", "evse-ready", "relay", "controller", "clear-fault"]

    public var name: String {
        switch self {
        case .status: return "status"
        case .sessions: return "sessions"
        case .inventory: return "inventory"
        case .metrics: return "metrics"
        case .watch: return "watch"
        case .export: return "export"
        case .stop: return "stop"
        case .testTransaction: return "test-transaction"
        case .acceptTerminal: return "accept-terminal"
        case .plug: return "plug"
        case .meter: return "meter"
        case .fault: return "fault"
        case .evseReady: return "evse-ready"
        case .relay: return "relay"
        case .controller: return "controller"
        case .clearFault: return "clear-fault"
        }
    }

    /// Changes something (a session, the terminal's acceptance, what the charger's hardware is
    /// said to be): administrators only.
    public var changesSomething: Bool {
        switch self {
        case .status, .sessions, .inventory, .metrics, .watch, .export: return false
        case .stop, .testTransaction, .acceptTerminal, .plug, .meter, .fault, .evseReady, .relay, .controller, .clearFault: return true
        }
    }

    /// The request's fields after `v`, `id` and `cmd`.
    public var fields: [(String, JSON)] {
        switch self {
        case .status, .inventory, .metrics, .watch, .acceptTerminal, .controller: return []
        case let .sessions(openOnly, last):
            return [("open", .bool(openOnly))] + (last.map { [("last", .number($0))] } ?? [])
        case let .export(from, to, format):
            return (from.map { [("from", .string($0))] } ?? []) + (to.map { [("to", .string($0))] } ?? []) + [("format", .string(format.rawValue))]
        case let .stop(c, reason): return [("connector", .number(c))] + (reason.map { [("reason", .string($0))] } ?? [])
        case let .testTransaction(c, amount):
            return (c.map { [("connector", .number($0))] } ?? []) + (amount.map { [("amount", .int($0))] } ?? [])
        case let .plug(c, p): return [("connector", .number(c)), ("plugged", .bool(p))]
        case let .meter(c, wh, w): return [("connector", .number(c)), ("energy_wh", .int(wh))] + (w.map { [("power_w", .int($0))] } ?? [])
        case let .fault(c, text): return [("connector", .number(c)), ("text", .string(text))]
        case let .evseReady(c, ready): return [("connector", .number(c)), ("ready", .bool(ready))]
        case let .relay(c, closed): return [("connector", .number(c)), ("closed", .bool(closed))]
        case let .clearFault(c): return [("connector", .number(c))]
        }
    }
}

/// Who may change something, from the peer's credentials (never from what the client says).
public struct DiagnosticsAccess: Equatable, Sendable {
    /// The daemon's own uid.
    public var daemonUID: UInt32
    /// `diagnostics.admin_group`'s gid; nil when the group does not exist on this system.
    public var adminGID: UInt32?

    public init(daemonUID: UInt32, adminGID: UInt32?) { self.daemonUID = daemonUID; self.adminGID = adminGID }

    /// uid 0, the daemon's uid, or a member (primary or supplementary) of the admin group.
    public func isAdministrator(uid: UInt32, gid: UInt32, groups: [UInt32]) -> Bool {
        if uid == 0 || uid == daemonUID { return true }
        guard let admin = adminGID else { return false }
        return gid == admin || groups.contains(admin)
    }
}

/// Reading requests and writing replies.
public enum DiagnosticsWire {
    /// A request line read: its id (when one could be read, so that even a refusal names it) and
    /// the command or why it is refused.
    public static func parse(_ line: [UInt8]) -> (id: Int64?, result: Result<DiagnosticsCommand, DiagnosticsError>) {
        let json: JSON
        do { json = try JSON.parse(line) } catch {
            return (nil, .failure(DiagnosticsError(.badJSON, "not JSON: \(error)")))
        }
        guard case .object = json else { return (nil, .failure(DiagnosticsError(.badJSON, "a request is a JSON object"))) }
        var id: Int64?
        if case .int(let i)? = json["id"] { id = i }
        guard let idValue = json["id"] else { return (nil, .failure(DiagnosticsError(.missingField, "\"id\" (an integer) is required"))) }
        guard id != nil else { return (nil, .failure(DiagnosticsError(.badField, "\"id\" must be an integer, not \(idValue.text.prefix(40))"))) }
        guard let v = json["v"] else { return (id, .failure(DiagnosticsError(.versionMismatch, "\"v\" is missing; this daemon speaks version \(DiagnosticsLimits.version)"))) }
        guard case .int(DiagnosticsLimits.version) = v else {
            return (id, .failure(DiagnosticsError(.versionMismatch, "version \(v.text.prefix(20)) requested; this daemon speaks version \(DiagnosticsLimits.version)")))
        }
        guard let cmdValue = json["cmd"] else { return (id, .failure(DiagnosticsError(.missingField, "\"cmd\" is required"))) }
        guard let cmd = cmdValue.stringValue else { return (id, .failure(DiagnosticsError(.badField, "\"cmd\" must be a string"))) }
        do throws(DiagnosticsError) { return (id, .success(try command(cmd, json))) } catch { return (id, .failure(error)) }
    }

    static func command(_ cmd: String, _ j: JSON) throws(DiagnosticsError) -> DiagnosticsCommand {
        switch cmd {
        case "status": return .status
        case "inventory": return .inventory
        case "metrics": return .metrics
        case "watch": return .watch
        case "accept-terminal": return .acceptTerminal
        case "controller": return .controller
        case "sessions":
            return .sessions(openOnly: try optionalBool(j, "open") ?? false,
                             last: try optionalInt(j, "last", 1...Int64(DiagnosticsLimits.maxListed)).map { Int($0) })
        case "export":
            let formatText = try optionalString(j, "format") ?? "csv"
            guard let format = ExportFormat(rawValue: formatText) else { throw DiagnosticsError(.badField, "\"format\" is csv or json, not \(formatText.prefix(20))") }
            return .export(from: try optionalString(j, "from"), to: try optionalString(j, "to"), format: format)
        case "stop":
            return .stop(connector: try connector(j), reason: try optionalString(j, "reason").map(cut))
        case "test-transaction":
            return .testTransaction(connector: try optionalInt(j, "connector", connectors).map { Int($0) },
                                    amount: try optionalInt(j, "amount", 1...100_000_000))
        case "plug": return .plug(connector: try connector(j), plugged: try bool(j, "plugged"))
        case "meter":
            return .meter(connector: try connector(j), energyWh: try int(j, "energy_wh", 0...Int64(Int32.max) * 1000),
                          powerW: try optionalInt(j, "power_w", 0...100_000_000))
        case "fault":
            guard let text = try optionalString(j, "text") else { throw DiagnosticsError(.missingField, "\"text\" is required") }
            return .fault(connector: try connector(j), text: cut(text))
        case "evse-ready": return .evseReady(connector: try connector(j), ready: try bool(j, "ready"))
        case "relay": return .relay(connector: try connector(j), closed: try bool(j, "closed"))
        case "clear-fault": return .clearFault(connector: try connector(j))
        default:
            throw DiagnosticsError(.unknownCommand, "unknown command \"\(cmd.prefix(40))\"; commands: \(DiagnosticsCommand.names.joined(separator: ", "))")
        }
    }

    /// Connector numbers a request may carry; the daemon checks them against its own count.
    static let connectors: ClosedRange<Int64> = 1...8

    static func connector(_ j: JSON) throws(DiagnosticsError) -> Int { Int(try int(j, "connector", connectors)) }

    static func int(_ j: JSON, _ key: String, _ range: ClosedRange<Int64>) throws(DiagnosticsError) -> Int64 {
        guard let v = try optionalInt(j, key, range) else { throw DiagnosticsError(.missingField, "\"\(key)\" is required") }
        return v
    }

    static func optionalInt(_ j: JSON, _ key: String, _ range: ClosedRange<Int64>) throws(DiagnosticsError) -> Int64? {
        guard let v = j[key], v != .null else { return nil }
        guard case .int(let i) = v else { throw DiagnosticsError(.badField, "\"\(key)\" must be an integer") }
        guard range.contains(i) else { throw DiagnosticsError(.badField, "\"\(key)\" must be from \(range.lowerBound) to \(range.upperBound), not \(i)") }
        return i
    }

    static func bool(_ j: JSON, _ key: String) throws(DiagnosticsError) -> Bool {
        guard let b = try optionalBool(j, key) else { throw DiagnosticsError(.missingField, "\"\(key)\" (true or false) is required") }
        return b
    }

    static func optionalBool(_ j: JSON, _ key: String) throws(DiagnosticsError) -> Bool? {
        guard let v = j[key], v != .null else { return nil }
        guard case .bool(let b) = v else { throw DiagnosticsError(.badField, "\"\(key)\" must be true or false") }
        return b
    }

    static func optionalString(_ j: JSON, _ key: String) throws(DiagnosticsError) -> String? {
        guard let v = j[key], v != .null else { return nil }
        guard let s = v.stringValue else { throw DiagnosticsError(.badField, "\"\(key)\" must be a string") }
        return s
    }

    static func cut(_ s: String) -> String {
        var out = ""
        for ch in s {
            if out.utf8.count + String(ch).utf8.count > DiagnosticsLimits.maxTextBytes { break }
            out.append(ch)
        }
        return out
    }

    /// A request line (with its newline), as `paybridgectl` sends it.
    public static func request(id: Int64, _ command: DiagnosticsCommand) -> String {
        JSON.object([("v", .int(DiagnosticsLimits.version)), ("id", .int(id)), ("cmd", .string(command.name))] + command.fields).text + "\n"
    }

    /// A success reply line with the command's fields.
    public static func ok(id: Int64?, _ fields: [(String, JSON)]) -> String {
        JSON.object([("v", .int(DiagnosticsLimits.version)), ("id", id.map { .int($0) } ?? .null), ("ok", .bool(true))] + fields).text + "\n"
    }

    /// A refusal reply line.
    public static func failure(id: Int64?, _ error: DiagnosticsError) -> String {
        JSON.object([("v", .int(DiagnosticsLimits.version)), ("id", id.map { .int($0) } ?? .null), ("ok", .bool(false)),
                     ("error", .object([("code", .string(error.code.rawValue)), ("message", .string(error.message))]))]).text + "\n"
    }

    /// A streamed event line (`watch`, a test transaction's steps): `{"v":1,"id":N,"event":KIND,…}`.
    public static func event(id: Int64?, kind: String, _ fields: [(String, JSON)]) -> String {
        JSON.object([("v", .int(DiagnosticsLimits.version)), ("id", id.map { .int($0) } ?? .null), ("event", .string(kind))] + fields).text + "\n"
    }
}

/// Splits a byte stream into request lines, refusing (and skipping to its newline) any line
/// longer than `DiagnosticsLimits.maxLineBytes`. A `\r` before the newline is dropped.
public struct DiagnosticsLineSplitter: Sendable {
    public enum Piece: Equatable, Sendable {
        case line([UInt8])
        /// A line of this many bytes was too long and was skipped.
        case tooLong(Int)
    }

    var buffer: [UInt8] = []
    var dropping: Int?
    let limit: Int

    public init(limit: Int = DiagnosticsLimits.maxLineBytes) { self.limit = limit }

    /// Bytes held for an unfinished line.
    public var pendingBytes: Int { buffer.count }
    /// Bytes of an overlong line skipped so far while its end has not come; nil when none.
    public var skippingBytes: Int? { dropping }

    public mutating func feed(_ bytes: some Collection<UInt8>) -> [Piece] {
        var out: [Piece] = []
        for b in bytes {
            if b == UInt8(ascii: "\n") {
                if let n = dropping {
                    out.append(.tooLong(n))
                } else {
                    if buffer.last == UInt8(ascii: "\r") { buffer.removeLast() }
                    out.append(.line(buffer))
                }
                buffer.removeAll(keepingCapacity: true)
                dropping = nil
            } else if let n = dropping {
                dropping = n + 1
            } else if buffer.count == limit {
                dropping = buffer.count + 1
                buffer.removeAll(keepingCapacity: false)
            } else {
                buffer.append(b)
            }
        }
        return out
    }
}
