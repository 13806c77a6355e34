import WireFormat

/// Ledger kinds and binary bodies of the outbox's records (they share the engine's ledger, so a
/// message is durable before its first send and gone from disk only after it was acknowledged).
extension OutboxRecord {
    /// Ledger record kinds 100…103; the engine uses 1…13, 15 and 16 (14 is a session summary).
    public static let kinds: ClosedRange<UInt16> = 100...103

    public var kind: UInt16 {
        switch self {
        case .queued: return 100
        case .acknowledged: return 101
        case .deadLettered: return 102
        case .thinned: return 103
        }
    }

    public var messageID: String {
        switch self {
        case .queued(let m): return m.id
        case .acknowledged(let id), .deadLettered(let id, _, _), .thinned(let id): return id
        }
    }

    /// Strings and byte strings after a big-endian UInt32 count, as the engine's entries have them.
    public func encodeBody() -> [UInt8] {
        var w = ByteWriter()
        func string(_ s: String) { w.lengthPrefixed32be(s.utf8) }
        switch self {
        case .queued(let m):
            string(m.id); string(m.queue); string(m.action.rawValue); w.u8(m.kind.rawValue); w.lengthPrefixed32be(m.body)
        case .acknowledged(let id), .thinned(let id):
            string(id)
        case let .deadLettered(id, status, response):
            string(id); string(String(status)); string(response)
        }
        return w.bytes
    }

    public static func decode(kind: UInt16, body: [UInt8]) -> OutboxRecord? {
        var r = ByteReader(body[...])
        func string() -> String? { (try? r.lengthPrefixed32be("string")).map { String(decoding: $0, as: UTF8.self) } }
        switch kind {
        case 100:
            guard let id = string(), let q = string(), let a = string(), let action = OCPPAction(rawValue: a),
                  let k = (try? r.u8("kind")).flatMap(OutboxMessage.Kind.init(rawValue:)),
                  let b = try? r.lengthPrefixed32be("body") else { return nil }
            return .queued(OutboxMessage(id: id, queue: q, action: action, kind: k, body: Array(b)))
        case 101: return string().map { .acknowledged(id: $0) }
        case 102:
            guard let id = string(), let s = string(), let status = Int(s), let r = string() else { return nil }
            return .deadLettered(id: id, status: status, response: r)
        case 103: return string().map { .thinned(id: $0) }
        default: return nil
        }
    }
}
