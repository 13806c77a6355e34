import CardSafety

/// Get Connection Info Response (0x44, Apollo): what the terminal says about its network.
///
/// Payter names the command and its response (psp.md §4) but not their payloads ([NOT FOUND]),
/// so nothing here assumes a layout. The payload is kept whole, bounded by `maxBytes`, and read
/// in one of two ways:
/// - **text** when every byte is printable UTF-8 (tabs and line breaks allowed). NULs at the end
///   are dropped and NULs inside end a line, because the Apollo's other text answers (Request
///   Ids, UI Event) are NUL-terminated strings [INFERRED]; CR LF and CR become LF. Key=value
///   lines, if that is what comes, stay as they came.
/// - **hex** otherwise.
///
/// Either reading passes the card-data filter first (`CardDataFilter`), like every other string
/// a terminal sends: a card number in the text is masked (first 6, last 4), text with track data
/// becomes `CardDataFilter.removed`, and bytes holding a card number or track in BCD are
/// withheld, never shown as hex. The filter errs towards masking, so a 15-digit IMEI or a
/// 19-digit ICCID in the text may come out masked: this field is not the SIM-serial field.
public struct ConnectionInfo: Equatable, Sendable {
    /// The longest answer read, in bytes. Larger is refused whole (`PSPMessageError.tooLarge`),
    /// never cut: a cut could split a card number where the filter no longer recognises it, and
    /// network information (addresses, an SSID, an APN) is far shorter than this.
    public static let maxBytes = 512

    /// How the payload reads.
    public enum Reading: Equatable, Sendable {
        /// Printable UTF-8 after the card-data filter.
        case text(String)
        /// Anything else, as upper-case hex.
        case hex(String)
        /// Not printable, and holding card data in BCD: nothing of it is shown.
        case withheld
    }

    /// What the answer says, in the one reading it admits, already through the card-data filter.
    public var reading: Reading
    /// The card-data filter found a card number or track data and masked or withheld it: the
    /// terminal is misconfigured, and the operator is told.
    public var cardDataFound: Bool

    public init(reading: Reading, cardDataFound: Bool = false) {
        self.reading = reading; self.cardDataFound = cardDataFound
    }

    /// The bytes that give this reading (the simulator's side): text as UTF-8, hex as its bytes,
    /// nothing for a withheld value.
    public var payload: [UInt8] {
        switch reading {
        case .text(let t): return Array(t.utf8)
        case .hex(let h): return hexBytes(h) ?? []
        case .withheld: return []
        }
    }

    /// Nothing to show: an empty answer, or one of NULs only.
    public var isEmpty: Bool {
        switch reading {
        case .text(let t): return t.isEmpty
        case .hex(let h): return h.isEmpty
        case .withheld: return false
        }
    }

    /// Reads a Get Connection Info Response payload; throws `.tooLarge` above `maxBytes`.
    public static func read(_ payload: ArraySlice<UInt8>) throws(PSPMessageError) -> ConnectionInfo {
        guard payload.count <= maxBytes else { throw .tooLarge(bytes: payload.count, limit: maxBytes) }
        if let text = text(payload) {
            let (clean, found) = CardDataFilter.scrub(text)
            return ConnectionInfo(reading: .text(clean), cardDataFound: found != nil)
        }
        if CardDataFilter.find(in: payload) != nil { return ConnectionInfo(reading: .withheld, cardDataFound: true) }
        return ConnectionInfo(reading: .hex(hexString(payload)))
    }

    /// The text reading, or nil when some byte is not printable UTF-8.
    static func text(_ payload: ArraySlice<UInt8>) -> String? {
        var bytes = payload[...]
        while bytes.last == 0 { bytes = bytes.dropLast() }
        var scalars = String.UnicodeScalarView()
        var it = bytes.makeIterator()
        var decoder = UTF8()
        var afterCR = false
        while true {
            switch decoder.decode(&it) {
            case .scalarValue(let c):
                defer { afterCR = c == "\r" }
                switch c.value {
                case 0x00, 0x0A: if !afterCR { scalars.append("\n") }
                case 0x0D: scalars.append("\n")
                case 0x09: scalars.append(c)
                case 0x00..<0x20, 0x7F...0x9F: return nil
                default: scalars.append(c)
                }
            case .emptyInput: return String(scalars)
            case .error: return nil
            }
        }
    }
}
