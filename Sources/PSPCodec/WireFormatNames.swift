import WireFormat

// PSP's names for WireFormat's primitives, kept because every layer above (the link, the
// simulator, the tools, the tests) has used them since the first release. Each is the
// WireFormat type or a one-line call into it; nothing is implemented twice.

/// Why a payload could not be read as the message its header names: WireFormat's error, whose
/// cases (`truncated(field:)`, `invalid(field:)`, `tooLarge(bytes:limit:)`) PSP has always had.
public typealias PSPMessageError = WireFormatError

/// One BER-TLV data object from a PSP DOL (data object list).
public typealias TLV = WireFormat.TLV

/// BER-TLV parsing and building for DOL data.
public typealias BERTLV = WireFormat.BERTLV

/// Upper-case hex of a byte sequence.
public func hexString<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
    Hex.encode(bytes)
}

/// Bytes from hex text (either case); nil on an odd length or any other character.
public func hexBytes(_ s: String) -> [UInt8]? {
    try? Hex.decode(s)
}
