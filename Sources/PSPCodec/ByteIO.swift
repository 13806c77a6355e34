/// Why a payload could not be read as the message its header names.
public enum PSPMessageError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The payload ended before `field` was complete.
    case truncated(field: String)
    /// `field` holds a value the protocol does not allow (for example a DOL length past the payload).
    case invalid(field: String)
    /// A host command would not fit the frame format in use.
    case tooLarge(bytes: Int, limit: Int)

    public var description: String {
        switch self {
        case .truncated(let f): return "payload truncated in \(f)"
        case .invalid(let f): return "invalid \(f)"
        case .tooLarge(let b, let l): return "payload of \(b) bytes exceeds the limit of \(l)"
        }
    }
}

/// Big-endian reader over a payload slice. Reads never trap; they throw `truncated`.
public struct ByteReader {
    public private(set) var bytes: ArraySlice<UInt8>

    public init(_ bytes: ArraySlice<UInt8>) { self.bytes = bytes }

    public var isAtEnd: Bool { bytes.isEmpty }
    public var remaining: Int { bytes.count }

    public mutating func u8(_ field: String) throws(PSPMessageError) -> UInt8 {
        guard let b = bytes.first else { throw .truncated(field: field) }
        bytes = bytes.dropFirst()
        return b
    }

    public mutating func u16be(_ field: String) throws(PSPMessageError) -> UInt16 {
        let hi = try u8(field), lo = try u8(field)
        return UInt16(hi) << 8 | UInt16(lo)
    }

    public mutating func u32be(_ field: String) throws(PSPMessageError) -> UInt32 {
        guard bytes.count >= 4 else { throw .truncated(field: field) }
        var v: UInt32 = 0
        for b in bytes.prefix(4) { v = v << 8 | UInt32(b) }
        bytes = bytes.dropFirst(4)
        return v
    }

    public mutating func take(_ n: Int, _ field: String) throws(PSPMessageError) -> ArraySlice<UInt8> {
        guard n >= 0, bytes.count >= n else { throw .truncated(field: field) }
        let out = bytes.prefix(n)
        bytes = bytes.dropFirst(n)
        return out
    }

    /// A NUL-terminated string; a missing terminator at the end of the payload is tolerated.
    public mutating func cString(_ field: String) throws(PSPMessageError) -> String {
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

/// Big-endian writer appending to a byte array.
public struct ByteWriter {
    public var bytes: [UInt8]

    public init(capacity: Int = 16) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    public mutating func u8(_ v: UInt8) { bytes.append(v) }
    public mutating func u16be(_ v: UInt16) { bytes.append(UInt8(v >> 8)); bytes.append(UInt8(truncatingIfNeeded: v)) }
    public mutating func u32be(_ v: UInt32) {
        bytes.append(UInt8(v >> 24)); bytes.append(UInt8(truncatingIfNeeded: v >> 16))
        bytes.append(UInt8(truncatingIfNeeded: v >> 8)); bytes.append(UInt8(truncatingIfNeeded: v))
    }
    public mutating func append<C: Collection>(_ c: C) where C.Element == UInt8 { bytes.append(contentsOf: c) }
    /// Writes `s` as UTF-8 followed by a NUL; an embedded NUL would end the field early, so it is dropped.
    public mutating func cString(_ s: String) {
        bytes.append(contentsOf: s.utf8.lazy.filter { $0 != 0 })
        bytes.append(0)
    }
}
