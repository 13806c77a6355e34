/// Ledger kinds and binary bodies of the outbox's records (they share the engine's ledger, so a
/// message is durable before its first send and gone from disk only after it was acknowledged).
extension OutboxRecord {
    /// Ledger record kinds 100…103; the engine uses 1…12.
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

    public func encodeBody() -> [UInt8] {
        var out: [UInt8] = []
        func bytes(_ b: [UInt8]) {
            let n = UInt32(b.count)
            out += [UInt8(n >> 24), UInt8(truncatingIfNeeded: n >> 16), UInt8(truncatingIfNeeded: n >> 8), UInt8(truncatingIfNeeded: n)]
            out += b
        }
        func string(_ s: String) { bytes(Array(s.utf8)) }
        switch self {
        case .queued(let m):
            string(m.id); string(m.queue); string(m.action.rawValue); out.append(m.kind.rawValue); bytes(m.body)
        case .acknowledged(let id), .thinned(let id):
            string(id)
        case let .deadLettered(id, status, response):
            string(id); string(String(status)); string(response)
        }
        return out
    }

    public static func decode(kind: UInt16, body: [UInt8]) -> OutboxRecord? {
        var at = 0
        func bytes() -> [UInt8]? {
            guard at + 4 <= body.count else { return nil }
            let n = Int(body[at]) << 24 | Int(body[at + 1]) << 16 | Int(body[at + 2]) << 8 | Int(body[at + 3])
            at += 4
            guard n <= body.count - at else { return nil }
            defer { at += n }
            return Array(body[at..<(at + n)])
        }
        func string() -> String? { bytes().map { String(decoding: $0, as: UTF8.self) } }
        switch kind {
        case 100:
            guard let id = string(), let q = string(), let a = string(), let action = OCPPAction(rawValue: a), at < body.count,
                  let k = OutboxMessage.Kind(rawValue: body[at]) else { return nil }
            at += 1
            guard let b = bytes() else { return nil }
            return .queued(OutboxMessage(id: id, queue: q, action: action, kind: k, body: b))
        case 101: return string().map { .acknowledged(id: $0) }
        case 102:
            guard let id = string(), let s = string(), let status = Int(s), let r = string() else { return nil }
            return .deadLettered(id: id, status: status, response: r)
        case 103: return string().map { .thinned(id: $0) }
        default: return nil
        }
    }
}
