/// PSP framing: `preamble | length (1 or 4 B, big-endian) | magic | header | payload | checksum`.
///
/// `length` counts magic + header + payload; the checksum is the sum mod 256 of
/// every byte before it, preamble included (verified on all of Payter's examples).

/// The block format: normal (1-byte length) or extended (4-byte length, Apollo, Protocol option 0x04).
public enum PSPFrameFormat: String, Sendable, Equatable {
    case normal, extended

    /// Bytes before magic: preamble plus the length field.
    public var prefixSize: Int { self == .normal ? 2 : 5 }
}

/// Named limits of the PSP framing. Each is the loosest reading of Payter's docs, so
/// that input from any firmware is accepted, while output keeps to the strictest.
public enum PSPLimits {
    /// Normal-format length byte ceiling (protocol version 3+: "257 bytes a command").
    public static let maxNormalLength = 0xFF
    /// Protocol versions 1 and 2 allow "36 bytes a command"; read loosely (preamble and checksum
    /// excluded) a length byte of up to 35 is accepted, and we send at most 33 (everything included).
    public static let maxLegacyLengthAccepted = 35
    public static let maxLegacyLengthSent = 33
    /// Extended frames carry QR URLs up to 0x10C9 bytes plus the other Start Session fields;
    /// 8 KiB leaves room without letting a corrupt length field make us buffer megabytes.
    public static let maxExtendedLength = 8 * 1024
    /// Smallest legal length: magic + header.
    public static let minLength = 2
    /// Frame bytes around the payload: preamble, magic, header, checksum (+ length field).
    public static func overhead(_ format: PSPFrameFormat) -> Int { format.prefixSize + 3 }
}

/// Conventional preamble and magic values.
public enum PSPConstants {
    public static let hostPreamble: UInt8 = 0xCC
    public static let apolloPreamble: UInt8 = 0xAA
    public static let magic: UInt8 = 0x3C
}

/// A checked frame. `payload` is a slice of the decoder's buffer: copy what you keep.
public struct PSPFrame: Equatable, Sendable {
    public var preamble: UInt8
    public var magic: UInt8
    public var header: UInt8
    public var payload: ArraySlice<UInt8>
    public var format: PSPFrameFormat

    public init(preamble: UInt8, magic: UInt8 = PSPConstants.magic, header: UInt8,
                payload: ArraySlice<UInt8>, format: PSPFrameFormat = .normal) {
        self.preamble = preamble; self.magic = magic; self.header = header
        self.payload = payload; self.format = format
    }

    /// The length field's value.
    public var length: Int { payload.count + 2 }
}

/// Builds PSP frames.
public enum PSPFrameEncoder {
    /// Sum mod 256 of `bytes`.
    @inlinable
    public static func checksum<C: Collection>(_ bytes: C) -> UInt8 where C.Element == UInt8 {
        var sum: UInt8 = 0
        for b in bytes { sum &+= b }
        return sum
    }

    /// Appends one encoded frame to `out`. Throws when the payload does not fit `maxLength`.
    public static func encode<C: Collection>(header: UInt8, payload: C, preamble: UInt8, magic: UInt8 = PSPConstants.magic,
                                             format: PSPFrameFormat, maxLength: Int, into out: inout [UInt8])
        throws(PSPMessageError) where C.Element == UInt8 {
        let length = payload.count + 2
        guard length <= maxLength else { throw .tooLarge(bytes: payload.count, limit: maxLength - 2) }
        let start = out.count
        out.reserveCapacity(start + length + PSPLimits.overhead(format))
        out.append(preamble)
        if format == .normal {
            out.append(UInt8(length))
        } else {
            let l = UInt32(length)
            out.append(UInt8(l >> 24)); out.append(UInt8(truncatingIfNeeded: l >> 16))
            out.append(UInt8(truncatingIfNeeded: l >> 8)); out.append(UInt8(truncatingIfNeeded: l))
        }
        out.append(magic)
        out.append(header)
        out.append(contentsOf: payload)
        out.append(checksum(out[start...]))
    }

    /// One encoded frame as a new array.
    public static func frame<C: Collection>(header: UInt8, payload: C, preamble: UInt8, magic: UInt8 = PSPConstants.magic,
                                            format: PSPFrameFormat = .normal, maxLength: Int? = nil)
        throws(PSPMessageError) -> [UInt8] where C.Element == UInt8 {
        var out: [UInt8] = []
        let limit = maxLength ?? (format == .normal ? PSPLimits.maxNormalLength : PSPLimits.maxExtendedLength)
        try encode(header: header, payload: payload, preamble: preamble, magic: magic, format: format, maxLength: limit, into: &out)
        return out
    }
}
