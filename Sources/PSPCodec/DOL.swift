import CardSafety
import WireFormat

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

/// The card facts the bridge may keep (PCI DSS): the masked number, the terminal's card hash,
/// the brand and the payment references. `init(dol:hashTags:)` passes every field through
/// `CardDataFilter` and `PANMask`; whatever held card data is masked or dropped, and named in
/// `redactedFields` so that the shell can count and report it.
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
    /// The fields the terminal sent with card data in them (a full number, track data) that
    /// were masked or dropped here: "maskedPAN", "brand", "cardHash", "hostReference", "itemReference".
    public private(set) var redactedFields: [String] = []

    public init(maskedPAN: String? = nil, cardHash: [UInt8]? = nil, brand: String? = nil,
                hostReference: [UInt8]? = nil, itemReference: [UInt8]? = nil) {
        var redacted: [String] = []
        func text(_ s: String?, _ name: String) -> String? {
            guard let s else { return nil }
            let (clean, found) = CardDataFilter.scrub(s)
            if found != nil { redacted.append(name) }
            return found == .trackData ? nil : clean
        }
        func bytes(_ b: [UInt8]?, _ name: String) -> [UInt8]? {
            guard let b, CardDataFilter.find(in: b) != nil else { return b }
            redacted.append(name)
            return nil
        }
        // The masked-PAN field may hold a number: PANMask keeps its first 6 and last 4. Anything
        // it has to hide beyond what the terminal masked, or track data, was card data.
        if let p = maskedPAN {
            if CardDataFilter.find(in: p) == .trackData {
                redacted.append("maskedPAN")
            } else {
                let masked = PANMask.mask(p)
                if masked != p { redacted.append("maskedPAN") }
                self.maskedPAN = masked
            }
        }
        if let h = cardHash, CardDataFilter.isCardData(wholeValue: h) {
            redacted.append("cardHash")
        } else {
            self.cardHash = cardHash
        }
        self.brand = text(brand, "brand")
        self.hostReference = bytes(hostReference, "hostReference")
        self.itemReference = bytes(itemReference, "itemReference")
        self.redactedFields = redacted
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
