/// One BER-TLV data object (ISO 7816-4 / EMV Book 3 annex B): PSP's DOLs, ZVT's BMP 06, EMV records.
public struct TLV: Equatable, Sendable {
    /// The tag's bytes as a big-endian integer, e.g. 0xDFCA0B.
    public var tag: UInt32
    public var value: [UInt8]

    public init(tag: UInt32, value: [UInt8]) { self.tag = tag; self.value = value }

    /// Tag as upper-case hex ("DFCA0B").
    public var tagHex: String { Hex.encode(tagBytes) }

    /// The tag's bytes, without leading zero bytes (tag 0 is one zero byte).
    public var tagBytes: [UInt8] {
        var t = tag, out: [UInt8] = []
        repeat { out.insert(UInt8(truncatingIfNeeded: t), at: 0); t >>= 8 } while t != 0
        return out
    }
}

/// BER-TLV parsing and building, bounded: tags of at most `maxTagBytes`, lengths in the short
/// form or the long form with at most `maxLengthBytes` bytes after the 0x8N byte.
public enum BERTLV {
    /// Tags longer than this are rejected; PSP tags are 3 bytes, EMV's at most 3, and a UInt32 holds 4.
    public static let maxTagBytes = 4
    /// Long-form length bytes after 0x81/0x82: 1–3-byte length fields in all, values up to 64 KiB − 1,
    /// which is more than any frame of the protocols here carries.
    public static let maxLengthBytes = 2
    /// The longest value `encode` can describe with `maxLengthBytes`.
    public static let maxValueBytes = 0xFFFF

    /// Parses a run of TLVs. Throws on a tag or length that overruns the data or a longer form than
    /// the bounds allow.
    public static func parse(_ data: ArraySlice<UInt8>) throws(WireFormatError) -> [TLV] {
        var r = ByteReader(data)
        var out: [TLV] = []
        out.reserveCapacity(8)
        while !r.isAtEnd {
            // Some encoders pad DOL data with 0x00 or 0xFF between objects (ISO 7816-4 allows it).
            if let b = r.bytes.first, b == 0x00 || b == 0xFF { _ = try r.u8("padding"); continue }
            let tag = try readTag(&r)
            let l0 = try r.u8("length")
            var length = 0
            if l0 < 0x80 {
                length = Int(l0)
            } else {
                let n = Int(l0 & 0x7F)
                guard n >= 1 && n <= maxLengthBytes else { throw .invalid(field: "length form") }
                for _ in 0..<n { length = length << 8 | Int(try r.u8("length")) }
            }
            // A fixed field name: building the tag's hex here would allocate on every TLV of every frame.
            out.append(TLV(tag: tag, value: Array(try r.take(length, "TLV value"))))
        }
        return out
    }

    /// One BER tag: a low-five-bits-all-set first byte continues while bit 8 is set.
    public static func readTag(_ r: inout ByteReader) throws(WireFormatError) -> UInt32 {
        var tag = UInt32(try r.u8("tag"))
        guard tag & 0x1F == 0x1F else { return tag }
        var n = 1
        while true {
            let b = try r.u8("tag")
            tag = tag << 8 | UInt32(b)
            n += 1
            guard n <= maxTagBytes else { throw .invalid(field: "tag length") }
            if b & 0x80 == 0 { return tag }
        }
    }

    /// The TLVs back to back, each length in its shortest form. A value longer than
    /// `maxValueBytes` cannot be described within the bounds; callers size their values (PSP's
    /// frames are far smaller), so one is a bug and traps.
    public static func encode(_ items: [TLV]) -> [UInt8] {
        var w = ByteWriter()
        for t in items {
            w.append(t.tagBytes)
            let n = t.value.count
            precondition(n <= maxValueBytes, "TLV value of \(n) bytes is beyond BERTLV.maxValueBytes")
            if n < 0x80 { w.u8(UInt8(n)) } else if n <= 0xFF { w.u8(0x81); w.u8(UInt8(n)) } else { w.u8(0x82); w.u16be(UInt16(n)) }
            w.append(t.value)
        }
        return w.bytes
    }

    /// A tag list (as PSP's Start Session / Read Card and EMV's DOLs send it): concatenated tags, no lengths.
    public static func encodeTagList(_ tags: [UInt32]) -> [UInt8] {
        tags.flatMap { TLV(tag: $0, value: []).tagBytes }
    }

    public static func parseTagList(_ data: ArraySlice<UInt8>) throws(WireFormatError) -> [UInt32] {
        var r = ByteReader(data)
        var out: [UInt32] = []
        while !r.isAtEnd {
            out.append(try readTag(&r))
        }
        return out
    }
}
