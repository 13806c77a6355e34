import TerminalPort
import WireFormat

/// Why a conditions record could not be read. Recovery counts such records and ignores them;
/// compaction keeps them (never drop what we cannot judge).
public enum ConditionRecordError: Error, Equatable, Sendable {
    /// The record is not of a conditions kind.
    case unknownKind(UInt16)
    /// The body ended before the named field was complete.
    case truncated(field: String)
    /// A body format this version does not read.
    case unsupportedFormat(UInt8)
    /// A field holds a value the format does not allow (unknown flag bits, an over-long string,
    /// bytes after the last field).
    case badValue(field: String)
}

extension TerminalConditions {
    /// The ledger kind of a conditions snapshot: after the engine's entries (1–13, and 15 for a test
    /// transaction's mark) and the session summary (14), well below the outbox's (100–103). 21–29 stay free for later condition records.
    public static let recordKind: UInt16 = 20
    /// Every kind this module owns (recovery and compaction look at these).
    public static let recordKinds: ClosedRange<UInt16> = 20...29
    /// The body format written. Another one is refused (`unsupportedFormat`), and kept on disk.
    public static let formatVersion: UInt8 = 1

    /// Whether compaction keeps a ledger record of a conditions kind: the newest snapshot
    /// (generation `newest` or later) and anything this version cannot read. nil for other kinds.
    public static func isLive(kind: UInt16, body: [UInt8], newest: UInt64) -> Bool? {
        guard recordKinds.contains(kind) else { return nil }
        guard let s = try? Snapshot.decode(kind: kind, body: body) else { return true }
        return s.generation >= newest
    }

    /// The generation a conditions record carries, if it is one this version reads.
    public static func generation(kind: UInt16, body: [UInt8]) -> UInt64? {
        try? Snapshot.decode(kind: kind, body: body).generation
    }
}

/// The persisted state, one record: what the station must still know after a restart.
struct Snapshot: Equatable, Sendable {
    var generation: UInt64
    var known: TerminalInventory?
    var lastSeenUp: Int64?
    var swap: TerminalConditions.Swap?
    var alert: TerminalConditions.Alert?
    var recommendsTest: Bool
    var batteryNoticeSent: Bool

    /// A string field longer than this (UTF-8 bytes) is cut when written and refused when read.
    static let maxFieldBytes = 128
    /// SAM serials kept per inventory (a P6X has three slots).
    static let maxSAMs = 4

    enum Flag {
        static let known: UInt8 = 1 << 0
        static let lastSeen: UInt8 = 1 << 1
        static let swap: UInt8 = 1 << 2
        static let alert: UInt8 = 1 << 3
        static let recommendsTest: UInt8 = 1 << 4
        static let batteryNoticeSent: UInt8 = 1 << 5
        static let all: UInt8 = 0x3F
    }

    /// Big-endian like the engine's entries: format u8, generation u64, flags u8 (bit 0 known
    /// terminal, 1 last seen, 2 swap, 3 alert, 4 test recommended, 5 battery notice sent), then
    /// only the fields the flags name, in that order: an inventory, last seen i64, a swap
    /// (expected and reported inventories, time i64), an alert (text, time i64). An inventory is
    /// serial, model, firmware, SIM serial (each a presence u8 where optional, then a string),
    /// then a u8 count of SAM serials and each serial.
    ///
    /// A string is a u8 count of runs, each a kind u8 and a u8 length: 1, that many bytes of
    /// UTF-8 without a digit; 2, that many decimal digits packed as BCD (F-padded). A SIM's ICCID
    /// is 19–20 Luhn-valid digits: written as text it would be a card number to any scan of the
    /// ledger (and to our own card-data rule), so no string leaves ASCII digits on disk.
    func encodeBody() -> [UInt8] {
        var w = ByteWriter(capacity: 96)
        w.u8(TerminalConditions.formatVersion)
        w.u64be(generation)
        var flags: UInt8 = 0
        if known != nil { flags |= Flag.known }
        if lastSeenUp != nil { flags |= Flag.lastSeen }
        if swap != nil { flags |= Flag.swap }
        if alert != nil { flags |= Flag.alert }
        if recommendsTest { flags |= Flag.recommendsTest }
        if batteryNoticeSent { flags |= Flag.batteryNoticeSent }
        w.u8(flags)
        if let k = known { Self.write(k, &w) }
        if let t = lastSeenUp { w.u64be(UInt64(bitPattern: t)) }
        if let s = swap { Self.write(s.expected, &w); Self.write(s.reported, &w); w.u64be(UInt64(bitPattern: s.at)) }
        if let a = alert { Self.write(a.text, &w); w.u64be(UInt64(bitPattern: a.at)) }
        return w.bytes
    }

    static func isDigit(_ b: UInt8) -> Bool { b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") }

    static func write(_ s: String, _ w: inout ByteWriter) {
        var runs: [(digits: Bool, bytes: [UInt8])] = []
        for b in TerminalConditions.cut(s, to: maxFieldBytes).utf8 {
            if let last = runs.indices.last, runs[last].digits == isDigit(b) { runs[last].bytes.append(b) } else { runs.append((isDigit(b), [b])) }
        }
        w.u8(UInt8(runs.count))
        for run in runs {
            w.u8(run.digits ? RunKind.digits : RunKind.text)
            w.u8(UInt8(run.bytes.count))
            guard run.digits else { w.append(run.bytes); continue }
            let nibbles = run.bytes.map { $0 - UInt8(ascii: "0") } + (run.bytes.count % 2 == 1 ? [0xF] : [])
            for i in stride(from: 0, to: nibbles.count, by: 2) { w.u8(nibbles[i] << 4 | nibbles[i + 1]) }
        }
    }

    enum RunKind {
        static let text: UInt8 = 1
        static let digits: UInt8 = 2
    }

    static func write(_ o: String?, _ w: inout ByteWriter) {
        w.u8(o == nil ? 0 : 1)
        if let o { write(o, &w) }
    }

    static func write(_ i: TerminalInventory, _ w: inout ByteWriter) {
        write(i.serialNumber, &w)
        write(i.model as String?, &w); write(i.firmware as String?, &w); write(i.simSerial as String?, &w)
        let sams = i.samSerials.prefix(maxSAMs)
        w.u8(UInt8(sams.count))
        for s in sams { write(s, &w) }
    }

    /// Reads a body `encodeBody` wrote; anything else is an error, never a trap.
    static func decode(kind: UInt16, body: [UInt8]) throws(ConditionRecordError) -> Snapshot {
        guard kind == TerminalConditions.recordKind else { throw .unknownKind(kind) }
        var r = Reader(r: ByteReader(body[...]))
        let format = try r.u8("format")
        guard format == TerminalConditions.formatVersion else { throw .unsupportedFormat(format) }
        let generation = try r.u64("generation")
        let flags = try r.u8("flags")
        guard flags & ~Flag.all == 0 else { throw .badValue(field: "flags") }
        func has(_ f: UInt8) -> Bool { flags & f != 0 }
        let known = has(Flag.known) ? try r.inventory("known") : nil
        let seen = has(Flag.lastSeen) ? Int64(bitPattern: try r.u64("lastSeenUp")) : nil
        var swap: TerminalConditions.Swap?
        if has(Flag.swap) {
            let e = try r.inventory("swap.expected"), p = try r.inventory("swap.reported")
            swap = TerminalConditions.Swap(expected: e, reported: p, at: Int64(bitPattern: try r.u64("swap.at")))
        }
        var alert: TerminalConditions.Alert?
        if has(Flag.alert) {
            let text = try r.string("alert.text")
            alert = TerminalConditions.Alert(text: text, at: Int64(bitPattern: try r.u64("alert.at")))
        }
        guard r.r.isAtEnd else { throw .badValue(field: "trailing bytes") }
        return Snapshot(generation: generation, known: known, lastSeenUp: seen, swap: swap, alert: alert,
                        recommendsTest: has(Flag.recommendsTest), batteryNoticeSent: has(Flag.batteryNoticeSent))
    }

    /// WireFormat's reader with this record's errors and bounds.
    struct Reader {
        var r: ByteReader

        mutating func u8(_ f: String) throws(ConditionRecordError) -> UInt8 {
            do { return try r.u8(f) } catch { throw .truncated(field: f) }
        }

        mutating func u64(_ f: String) throws(ConditionRecordError) -> UInt64 {
            do { return try r.u64be(f) } catch { throw .truncated(field: f) }
        }

        mutating func take(_ n: Int, _ f: String) throws(ConditionRecordError) -> ArraySlice<UInt8> {
            do { return try r.take(n, f) } catch { throw .truncated(field: f) }
        }

        mutating func string(_ f: String) throws(ConditionRecordError) -> String {
            let runs = Int(try u8(f))
            var out: [UInt8] = []
            for _ in 0..<runs {
                let kind = try u8(f), n = Int(try u8(f))
                guard n > 0 else { throw .badValue(field: f) }
                switch kind {
                case Snapshot.RunKind.text:
                    let bytes = try take(n, f)
                    guard !bytes.contains(where: Snapshot.isDigit) else { throw .badValue(field: f) }
                    out += bytes
                case Snapshot.RunKind.digits:
                    let packed = try take((n + 1) / 2, f)
                    guard let digits = try? BCD.decodeDigits(packed), digits.utf8.count == n else { throw .badValue(field: f) }
                    out += digits.utf8
                default: throw .badValue(field: f)
                }
                guard out.count <= Snapshot.maxFieldBytes else { throw .badValue(field: f) }
            }
            return String(decoding: out, as: UTF8.self)
        }

        mutating func optional(_ f: String) throws(ConditionRecordError) -> String? {
            switch try u8(f) {
            case 0: return nil
            case 1: return try string(f)
            default: throw .badValue(field: f)
            }
        }

        mutating func inventory(_ f: String) throws(ConditionRecordError) -> TerminalInventory {
            let serial = try string(f + ".serial")
            let model = try optional(f + ".model"), firmware = try optional(f + ".firmware"), sim = try optional(f + ".sim")
            let n = Int(try u8(f + ".sams"))
            guard n <= Snapshot.maxSAMs else { throw .badValue(field: f + ".sams") }
            var sams: [String] = []
            for _ in 0..<n { sams.append(try string(f + ".sam")) }
            return TerminalInventory(serialNumber: serial, model: model, firmware: firmware, simSerial: sim, samSerials: sams)
        }
    }
}
