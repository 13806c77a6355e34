/// Why bytes could not be read (or written) in the format asked for. The field names are the
/// caller's, so that an error says where in a message it happened, not just that it did.
public enum WireFormatError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The input ended before `field` was complete.
    case truncated(field: String)
    /// `field` holds a value the format does not allow (a TLV length form, a non-BCD nibble, a
    /// length past the end of the data).
    case invalid(field: String)
    /// A value of `bytes` would not fit the format, whose limit is `limit`.
    case tooLarge(bytes: Int, limit: Int)

    public var description: String {
        // "payload" because every reader so far reads a message's or a record's payload; the
        // PSP link's log lines have said it this way since the first release.
        switch self {
        case .truncated(let f): return "payload truncated in \(f)"
        case .invalid(let f): return "invalid \(f)"
        case .tooLarge(let b, let l): return "payload of \(b) bytes exceeds the limit of \(l)"
        }
    }
}
