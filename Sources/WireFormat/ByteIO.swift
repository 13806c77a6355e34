/// A reader over a byte slice, big- or little-endian as each read says. Reads never trap: a read
/// past the end throws `truncated` with the caller's field name and consumes nothing.
public struct ByteReader {
    /// What is left to read; its indices are the original slice's.
    public private(set) var bytes: ArraySlice<UInt8>

    public init(_ bytes: ArraySlice<UInt8>) { self.bytes = bytes }

    public var isAtEnd: Bool { bytes.isEmpty }
    public var remaining: Int { bytes.count }

    public mutating func u8(_ field: String) throws(WireFormatError) -> UInt8 {
        guard let b = bytes.first else { throw .truncated(field: field) }
        bytes = bytes.dropFirst()
        return b
    }

    public mutating func u16be(_ field: String) throws(WireFormatError) -> UInt16 { try fixed(field, bigEndian: true) }
    public mutating func u16le(_ field: String) throws(WireFormatError) -> UInt16 { try fixed(field, bigEndian: false) }
    public mutating func u32be(_ field: String) throws(WireFormatError) -> UInt32 { try fixed(field, bigEndian: true) }
    public mutating func u32le(_ field: String) throws(WireFormatError) -> UInt32 { try fixed(field, bigEndian: false) }
    public mutating func u64be(_ field: String) throws(WireFormatError) -> UInt64 { try fixed(field, bigEndian: true) }
    public mutating func u64le(_ field: String) throws(WireFormatError) -> UInt64 { try fixed(field, bigEndian: false) }

    /// One unsigned integer of `T`'s width; all or nothing.
    mutating func fixed<T: FixedWidthInteger & UnsignedInteger>(_ field: String, bigEndian: Bool) throws(WireFormatError) -> T {
        let width = T.bitWidth / 8
        guard bytes.count >= width else { throw .truncated(field: field) }
        var v: T = 0
        if bigEndian {
            for b in bytes.prefix(width) { v = v << 8 | T(b) }
        } else {
            for b in bytes.prefix(width).reversed() { v = v << 8 | T(b) }
        }
        bytes = bytes.dropFirst(width)
        return v
    }

    public mutating func take(_ n: Int, _ field: String) throws(WireFormatError) -> ArraySlice<UInt8> {
        guard n >= 0, bytes.count >= n else { throw .truncated(field: field) }
        let out = bytes.prefix(n)
        bytes = bytes.dropFirst(n)
        return out
    }

    /// Bytes preceded by their count as a big-endian UInt32 (the ledger's records use this for
    /// every string and byte string). A count past the end is `truncated`, and nothing is consumed.
    public mutating func lengthPrefixed32be(_ field: String) throws(WireFormatError) -> ArraySlice<UInt8> {
        var look = self
        let n = try look.u32be(field)
        // Compared as UInt32 first: on a 32-bit Int a count above Int.max must not trap.
        guard n <= UInt32(clamping: look.remaining) else { throw .truncated(field: field) }
        let out = try look.take(Int(n), field)
        self = look
        return out
    }

    /// A NUL-terminated string; a missing terminator at the end of the input is tolerated.
    public mutating func cString(_ field: String) throws(WireFormatError) -> String {
        guard !bytes.isEmpty else { throw .truncated(field: field) }
        if let nul = bytes.firstIndex(of: 0) {
            let s = String(decoding: bytes[bytes.startIndex..<nul], as: UTF8.self)
            bytes = bytes[(nul + 1)...]
            return s
        }
        let s = String(decoding: bytes, as: UTF8.self)
        bytes = bytes[bytes.endIndex...]
        return s
    }

    public mutating func rest() -> ArraySlice<UInt8> {
        let out = bytes
        bytes = bytes[bytes.endIndex...]
        return out
    }
}

/// A writer appending to a byte array, big- or little-endian as each write says.
public struct ByteWriter {
    public var bytes: [UInt8]

    /// The default is what one PSP command or ledger record header needs; larger ones grow.
    public static let defaultCapacity = 16

    public init(capacity: Int = ByteWriter.defaultCapacity) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    public mutating func u8(_ v: UInt8) { bytes.append(v) }
    public mutating func u16be(_ v: UInt16) { fixed(v, bigEndian: true) }
    public mutating func u16le(_ v: UInt16) { fixed(v, bigEndian: false) }
    public mutating func u32be(_ v: UInt32) { fixed(v, bigEndian: true) }
    public mutating func u32le(_ v: UInt32) { fixed(v, bigEndian: false) }
    public mutating func u64be(_ v: UInt64) { fixed(v, bigEndian: true) }
    public mutating func u64le(_ v: UInt64) { fixed(v, bigEndian: false) }

    mutating func fixed<T: FixedWidthInteger & UnsignedInteger>(_ v: T, bigEndian: Bool) {
        let width = T.bitWidth / 8
        for i in 0..<width {
            let shift = bigEndian ? (width - 1 - i) * 8 : i * 8
            bytes.append(UInt8(truncatingIfNeeded: v >> shift))
        }
    }

    public mutating func append<C: Collection>(_ c: C) where C.Element == UInt8 { bytes.append(contentsOf: c) }

    /// `b` preceded by its count as a big-endian UInt32: what `ByteReader.lengthPrefixed32be` reads.
    /// More than UInt32.max bytes cannot be described by the prefix, so that is a bug here.
    public mutating func lengthPrefixed32be<C: Collection>(_ b: C) where C.Element == UInt8 {
        u32be(UInt32(b.count))
        bytes.append(contentsOf: b)
    }

    /// Writes `s` as UTF-8 followed by a NUL; an embedded NUL would end the field early, so it is dropped.
    public mutating func cString(_ s: String) {
        bytes.append(contentsOf: s.utf8.lazy.filter { $0 != 0 })
        bytes.append(0)
    }
}
