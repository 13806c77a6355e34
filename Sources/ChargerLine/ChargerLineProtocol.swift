import JSONLines
import PaymentEngine

/// The charger line protocol (version 1): the station and a charger's I/O (a relay board, a
/// meter, HardwareSim's `charger-sim`) exchange one JSON object per line over a byte stream
/// (a pair of pipes today; the controller's socket later). docs/charger-line.md is its
/// description; this file is its one implementation, used by both sides.
///
/// Station → charger (`ChargerCommand`):
///
///     {"relay":C,"closed":true}                     drive connector C's relay (false: open)
///     {"show":C,"offer":"awaitingPlug","session":K} what connector C offers a driver now
///
/// Charger → station (`EngineInput`s):
///
///     {"plug":C,"pluggedIn":true}                   a car plugged in (false: unplugged)
///     {"meter":C,"registerWh":N}                    connector C's energy register, cumulative Wh
///     {"relay":C,"feedback":"closed"}               the contact's feedback: closed, opened,
///                                                   refusedToClose, welded
///
/// A line is at most `maxLineBytes` bytes before its `\n`. Every line is checked whole: a line
/// that is too long, not JSON, not an object, of no known kind, or with a connector outside
/// the station's is refused with a `ChargerLineError`, counted by the reader, and skipped; the
/// lines after it are read as usual. Keys a message does not use are ignored (room for later
/// fields); the message's kind is its first key that names one.
public enum ChargerLine {
    /// The longest line either side accepts, without its newline. The longest valid message is
    /// about 70 bytes; the rest is room for fields a later version adds.
    public static let maxLineBytes = 512

    /// The names of the connector offers on the wire.
    static func name(_ offer: PaymentEngine.ConnectorOffer) -> (String, SessionKey?) {
        switch offer {
        case .available: return ("available", nil)
        case .busy(let k): return ("busy", k)
        case .awaitingPlug(let k): return ("awaitingPlug", k)
        case .charging(let k): return ("charging", k)
        case .unavailable: return ("unavailable", nil)
        }
    }

    static func name(_ f: RelayFeedback) -> String {
        switch f {
        case .closed: return "closed"
        case .opened: return "opened"
        case .refusedToClose: return "refusedToClose"
        case .welded: return "welded"
        }
    }

    static let feedbacks: [String: RelayFeedback] = ["closed": .closed, "opened": .opened, "refusedToClose": .refusedToClose, "welded": .welded]

    // MARK: encoding (one line each, with its newline)

    /// A station command as its line.
    public static func encode(_ c: ChargerCommand) -> String {
        switch c {
        case let .relay(connector, closed):
            return JSON.object([("relay", .number(connector)), ("closed", .bool(closed))]).text + "\n"
        case let .show(connector, offer):
            let (n, k) = name(offer)
            var fields: [(String, JSON)] = [("show", .number(connector)), ("offer", .string(n))]
            if let k { fields.append(("session", .number(k))) }
            return JSON.object(fields).text + "\n"
        }
    }

    /// A charger input as its line; nil for inputs the protocol does not carry (only `.plug`,
    /// `.meter` and `.relay` come from a charger).
    public static func encode(_ input: EngineInput) -> String? {
        switch input {
        case let .plug(c, pluggedIn):
            return JSON.object([("plug", .number(c)), ("pluggedIn", .bool(pluggedIn))]).text + "\n"
        case let .meter(c, wh):
            return JSON.object([("meter", .number(c)), ("registerWh", .int(wh))]).text + "\n"
        case let .relay(c, f):
            return JSON.object([("relay", .number(c)), ("feedback", .string(name(f)))]).text + "\n"
        default:
            return nil
        }
    }

    // MARK: decoding

    /// A station command from one line (without its newline), for a charger of `connectors`.
    public static func decodeCommand(_ line: [UInt8], connectors: Int) -> Result<ChargerCommand, ChargerLineError> {
        let o: JSON, fields: [(String, JSON)]
        switch object(line) {
        case .success(let v): (o, fields) = v
        case .failure(let e): return .failure(e)
        }
        for (key, value) in fields {
            switch key {
            case "relay":
                guard let c = connector(value, connectors) else { return .failure(.badConnector(value.text)) }
                guard case .bool(let closed)? = o["closed"] else { return .failure(.badField("closed")) }
                return .success(.relay(connector: c, closed: closed))
            case "show":
                guard let c = connector(value, connectors) else { return .failure(.badConnector(value.text)) }
                guard let n = o["offer"]?.stringValue else { return .failure(.badField("offer")) }
                let key: SessionKey?
                switch o["session"] {
                case nil: key = nil
                case .int(let k)? where k >= 0: key = SessionKey(k)
                default: return .failure(.badField("session"))
                }
                switch (n, key) {
                case ("available", nil): return .success(.show(connector: c, .available))
                case ("unavailable", nil): return .success(.show(connector: c, .unavailable))
                case ("busy", let k?): return .success(.show(connector: c, .busy(k)))
                case ("awaitingPlug", let k?): return .success(.show(connector: c, .awaitingPlug(k)))
                case ("charging", let k?): return .success(.show(connector: c, .charging(k)))
                default: return .failure(.badField("offer"))
                }
            default: continue
            }
        }
        return .failure(.unknownKind)
    }

    /// A charger input from one line (without its newline), for a station of `connectors`.
    public static func decodeInput(_ line: [UInt8], connectors: Int) -> Result<EngineInput, ChargerLineError> {
        let o: JSON, fields: [(String, JSON)]
        switch object(line) {
        case .success(let v): (o, fields) = v
        case .failure(let e): return .failure(e)
        }
        for (key, value) in fields {
            switch key {
            case "plug":
                guard let c = connector(value, connectors) else { return .failure(.badConnector(value.text)) }
                guard case .bool(let p)? = o["pluggedIn"] else { return .failure(.badField("pluggedIn")) }
                return .success(.plug(connector: c, pluggedIn: p))
            case "meter":
                guard let c = connector(value, connectors) else { return .failure(.badConnector(value.text)) }
                guard case .int(let wh)? = o["registerWh"], wh >= 0 else { return .failure(.badField("registerWh")) }
                return .success(.meter(connector: c, registerWh: wh))
            case "relay":
                guard let c = connector(value, connectors) else { return .failure(.badConnector(value.text)) }
                guard let n = o["feedback"]?.stringValue, let f = feedbacks[n] else { return .failure(.badField("feedback")) }
                return .success(.relay(connector: c, f))
            default: continue
            }
        }
        return .failure(.unknownKind)
    }

    /// One line's JSON object and its fields, or why the line is not one (too long, not JSON, not an object).
    static func object(_ line: [UInt8]) -> Result<(JSON, [(String, JSON)]), ChargerLineError> {
        guard line.count <= maxLineBytes else { return .failure(.tooLong(line.count)) }
        let o: JSON
        do { o = try JSON.parse(line) } catch { return .failure(.notJSON(error.description)) }
        guard case .object(let fields) = o else { return .failure(.notAnObject) }
        return .success((o, fields))
    }

    static func connector(_ v: JSON, _ connectors: Int) -> Int? {
        guard case .int(let c) = v, c >= 0, c < Int64(connectors) else { return nil }
        return Int(c)
    }
}

/// What the station asks of a charger.
public enum ChargerCommand: Equatable, Sendable {
    case relay(connector: Int, closed: Bool)
    case show(connector: Int, PaymentEngine.ConnectorOffer)
}

/// Why a line was refused. Never fatal: the reader counts it and reads on.
public enum ChargerLineError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Longer than `ChargerLine.maxLineBytes` (the count: at least this many bytes).
    case tooLong(Int)
    /// The stream ended in the middle of a line.
    case unterminated(Int)
    case notJSON(String)
    case notAnObject
    /// No key naming a message of this direction.
    case unknownKind
    /// Not a connector of this station (the value as written).
    case badConnector(String)
    /// A field the message needs is missing or has the wrong type or value.
    case badField(String)

    public var description: String {
        switch self {
        case .tooLong(let n): return "line longer than \(ChargerLine.maxLineBytes) bytes (\(n)+)"
        case .unterminated(let n): return "\(n) bytes without a newline at the end of the stream"
        case .notJSON(let why): return "not JSON (\(why))"
        case .notAnObject: return "not a JSON object"
        case .unknownKind: return "no known message kind"
        case .badConnector(let v): return "connector \(v) is not one of this charger's"
        case .badField(let f): return "missing or invalid \"\(f)\""
        }
    }
}

/// Splits a byte stream into lines of at most `ChargerLine.maxLineBytes`, holding no more than
/// that: a longer line is dropped as it streams in and reported once, at its newline.
public struct ChargerLineSplitter: Sendable {
    public enum Piece: Equatable, Sendable {
        /// A whole line, without its newline.
        case line([UInt8])
        case refused(ChargerLineError)
    }

    var buffer: [UInt8] = []
    /// Bytes of the line being dropped, or nil while the current line fits.
    var dropping: Int?

    public init() {}

    public mutating func feed(_ bytes: some Collection<UInt8>) -> [Piece] {
        var out: [Piece] = []
        for b in bytes {
            if b == UInt8(ascii: "\n") {
                if let n = dropping { out.append(.refused(.tooLong(n))) } else { out.append(.line(buffer)) }
                buffer.removeAll(keepingCapacity: true)
                dropping = nil
            } else if let n = dropping {
                dropping = n + 1
            } else if buffer.count == ChargerLine.maxLineBytes {
                dropping = buffer.count + 1
                buffer.removeAll(keepingCapacity: true)
            } else {
                buffer.append(b)
            }
        }
        return out
    }

    /// The stream ended: a partial line is refused (a sender always ends its lines).
    public mutating func finish() -> Piece? {
        defer { buffer.removeAll(); dropping = nil }
        if let n = dropping { return .refused(.tooLong(n)) }
        return buffer.isEmpty ? nil : .refused(.unterminated(buffer.count))
    }
}
