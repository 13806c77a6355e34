/// One BER-TLV data object from a PSP DOL (data object list).
public struct TLV: Equatable, Sendable {
    /// The tag's bytes as a big-endian integer, e.g. 0xDFCA0B.
    public var tag: UInt32
    public var value: [UInt8]

    public init(tag: UInt32, value: [UInt8]) { self.tag = tag; self.value = value }

    /// Tag as upper-case hex ("DFCA0B").
    public var tagHex: String { tagBytes.map { hexByte($0) }.joined() }

    var tagBytes: [UInt8] {
        var t = tag, out: [UInt8] = []
        repeat { out.insert(UInt8(truncatingIfNeeded: t), at: 0); t >>= 8 } while t != 0
        return out
    }
}

func hexByte(_ b: UInt8) -> String {
    let d = Array("0123456789ABCDEF".utf8)
    return String(decoding: [d[Int(b >> 4)], d[Int(b & 0xF)]], as: UTF8.self)
}

/// Upper-case hex of a byte sequence.
public func hexString<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
    bytes.map { hexByte($0) }.joined()
}

/// Tags that matter to the bridge (Payter's DOL page).
public enum DOLTag {
    public static let maskedPAN: UInt32 = 0xDFCA0B
    public static let hostTransactionReference: UInt32 = 0xDFCA03
    public static let itemReference: UInt32 = 0xDFCA09
    public static let brandName: UInt32 = 0xDFCA0A
    public static let brandID: UInt32 = 0xDFCA07
    public static let hostResponseCode: UInt32 = 0xDFCA02
    public static let encryptedCardData: UInt32 = 0xDFAA6C
    public static let cardHashExtended: UInt32 = 0xDFAA70
    /// The default Card Read set; which of DFF002/DFF003/DFF006 is the card hash is not documented.
    public static let defaultCardRead: [UInt32] = [0xDFF006, 0xDFCA0B, 0xDFCA09, 0xDFF002, 0xDFF003, 0xDFCA03]
    /// Candidate card-hash tags, most specific first; configurable in the link options.
    public static let cardHashCandidates: [UInt32] = [0xDFAA70, 0xDFF006, 0xDFF002, 0xDFF003]
}

/// BER-TLV parsing and building for DOL data.
public enum BERTLV {
    /// Tags longer than this are rejected; PSP tags are 3 bytes.
    public static let maxTagBytes = 4

    /// Parses a run of TLVs. Throws on a tag or length that overruns the data.
    public static func parse(_ data: ArraySlice<UInt8>) throws(PSPMessageError) -> [TLV] {
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
                guard n >= 1 && n <= 2 else { throw .invalid(field: "length form") }
                for _ in 0..<n { length = length << 8 | Int(try r.u8("length")) }
            }
            // A fixed field name: building the tag's hex here would allocate on every TLV of every frame.
            out.append(TLV(tag: tag, value: Array(try r.take(length, "TLV value"))))
        }
        return out
    }

    /// One BER tag: a low-five-bits-all-set first byte continues while bit 8 is set.
    static func readTag(_ r: inout ByteReader) throws(PSPMessageError) -> UInt32 {
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

    public static func encode(_ items: [TLV]) -> [UInt8] {
        var w = ByteWriter()
        for t in items {
            w.append(t.tagBytes)
            let n = t.value.count
            if n < 0x80 { w.u8(UInt8(n)) } else if n <= 0xFF { w.u8(0x81); w.u8(UInt8(n)) } else { w.u8(0x82); w.u16be(UInt16(n)) }
            w.append(t.value)
        }
        return w.bytes
    }

    /// A tag list (as sent in Start Session / Read Card): concatenated tags, no lengths.
    public static func encodeTagList(_ tags: [UInt32]) -> [UInt8] {
        tags.flatMap { TLV(tag: $0, value: []).tagBytes }
    }

    public static func parseTagList(_ data: ArraySlice<UInt8>) throws(PSPMessageError) -> [UInt32] {
        var r = ByteReader(data)
        var out: [UInt32] = []
        while !r.isAtEnd {
            out.append(try readTag(&r))
        }
        return out
    }
}

/// The card facts the bridge may keep (PCI DSS): the masked number, the terminal's card hash,
/// the brand and the payment references. Built only through `init(dol:hashTags:)`, which masks.
public struct CardData: Equatable, Sendable {
    /// First 6 and last 4 digits at most; every other digit is '*'.
    public var maskedPAN: String?
    /// The terminal's card hash (opaque bytes), used to match "tap to stop".
    public var cardHash: [UInt8]?
    public var brand: String?
    /// DFCA03: the host/acquirer transaction reference (the pspRef for settlement).
    public var hostReference: [UInt8]?
    /// DFCA09: the terminal's item reference.
    public var itemReference: [UInt8]?

    public init(maskedPAN: String? = nil, cardHash: [UInt8]? = nil, brand: String? = nil,
                hostReference: [UInt8]? = nil, itemReference: [UInt8]? = nil) {
        self.maskedPAN = maskedPAN.map(PANMask.mask)
        self.cardHash = cardHash; self.brand = brand
        self.hostReference = hostReference; self.itemReference = itemReference
    }

    /// Extracts card facts from DOL data; `hashTags` lists candidate hash tags in order of preference.
    public init(dol: [TLV], hashTags: [UInt32] = DOLTag.cardHashCandidates) {
        func value(_ tag: UInt32) -> [UInt8]? { dol.first { $0.tag == tag }?.value }
        self.init(maskedPAN: value(DOLTag.maskedPAN).map { String(decoding: $0, as: UTF8.self) },
                  cardHash: hashTags.lazy.compactMap(value).first { !$0.isEmpty },
                  brand: value(DOLTag.brandName).map { String(decoding: $0, as: UTF8.self) },
                  hostReference: value(DOLTag.hostTransactionReference),
                  itemReference: value(DOLTag.itemReference))
    }

    /// First six digits, when the masked number carries them.
    public var bin: String? {
        guard let p = maskedPAN else { return nil }
        let digits = p.prefix { $0.isASCII && $0.isNumber }
        return digits.count >= 6 ? String(digits.prefix(6)) : nil
    }

    /// Last four digits, when the masked number carries them.
    public var last4: String? {
        guard let p = maskedPAN else { return nil }
        let tail = p.reversed().prefix { $0.isASCII && $0.isNumber }
        return tail.count >= 4 ? String(tail.prefix(4).reversed()) : nil
    }
}

/// PAN masking: the terminal is meant to send a masked number already; this makes
/// sure a full number (a misconfigured terminal, a test card) never goes further.
///
/// Digits are judged by Unicode scalar, not by Character: every scalar with a numeric value in
/// any script (fullwidth ４, Arabic-Indic ٤, mathematical 𝟒, …) is a digit, and combining marks
/// are dropped, since a digit followed by a mark is one Character that is neither ASCII nor a
/// plain digit, which would otherwise let a whole number through unmasked.
public enum PANMask {
    /// Keeps the first 6 and last 4 digits and replaces every other digit with '*'.
    /// An all-digit string of 12 digits or fewer keeps only its last 4: it might be a short PAN.
    /// A string already masked by the terminal keeps its visible digits up to 6 + 4.
    /// Kept digits come out as ASCII digits (a numeric scalar that is not a digit 0…9, such as ½,
    /// as '*'); combining marks are removed.
    public static func mask(_ s: String) -> String {
        let scalars = s.unicodeScalars.filter { !isMark($0) }.map { $0 }
        let digitPositions = scalars.indices.filter { isDigit(scalars[$0]) }
        let n = digitPositions.count
        var keep = Set<Int>()
        let alreadyMasked: Bool = {
            guard let a = digitPositions.first, let b = digitPositions.last, a < b else { return false }
            return scalars[a...b].contains { $0 == "*" || $0 == "X" || $0 == "x" || $0 == "#" }
        }()
        if n >= 13 || (alreadyMasked && n >= 4) {
            keep.formUnion(digitPositions.prefix(6))
            keep.formUnion(digitPositions.suffix(4))
        } else {
            keep.formUnion(digitPositions.suffix(min(4, max(0, n - 1))))
        }
        var out = String.UnicodeScalarView()
        for (i, c) in scalars.enumerated() {
            out.append(isDigit(c) ? (keep.contains(i) ? asciiDigit(c) : "*") : c)
        }
        return String(out)
    }

    /// True when `s` contains a run of 13 or more digits (a possible full card number): digits as
    /// `mask` counts them, in any script; spaces, dashes, combining marks and invisible format
    /// characters between them do not end a run.
    public static func containsPANLikeRun(_ s: String) -> Bool {
        var run = 0
        for c in s.unicodeScalars {
            if isDigit(c) {
                run += 1
                if run >= 13 { return true }
            } else if !continuesRun(c) {
                run = 0
            }
        }
        return false
    }

    /// A scalar with a numeric value, in any script.
    static func isDigit(_ c: Unicode.Scalar) -> Bool {
        if c.isASCII { return c.value >= 0x30 && c.value <= 0x39 }
        return c.properties.numericType != nil
    }

    static func isMark(_ c: Unicode.Scalar) -> Bool {
        switch c.properties.generalCategory {
        case .nonspacingMark, .spacingMark, .enclosingMark: return true
        default: return false
        }
    }

    /// Separators a number may be written with: they neither count as digits nor end a run.
    static func continuesRun(_ c: Unicode.Scalar) -> Bool {
        if c == " " || c == "-" { return true }
        if c.isASCII { return false }
        switch c.properties.generalCategory {
        case .nonspacingMark, .spacingMark, .enclosingMark, .format, .spaceSeparator, .dashPunctuation: return true
        default: return false
        }
    }

    /// The ASCII digit of a digit scalar (its numeric value 0…9), or '*' for any other numeric value.
    static func asciiDigit(_ c: Unicode.Scalar) -> Unicode.Scalar {
        if c.isASCII { return c }
        guard let v = c.properties.numericValue, v >= 0, v <= 9, v == v.rounded(.towardZero),
              let digit = Unicode.Scalar(0x30 + UInt32(v)) else { return "*" }
        return digit
    }
}
