import Timebase

/// The engine's own name for a payment session (one card on one connector), assigned in order
/// and kept in the ledger; the terminal's session reference is a separate field.
public typealias SessionKey = UInt64

/// The card facts the bridge may keep (PCI DSS): masked number, terminal card hash, brand,
/// payment reference. Protocol-neutral: PSP and ZVT both map into it.
public struct CardIdentity: Equatable, Sendable {
    public var maskedPAN: String
    /// The terminal's card hash: how tap-to-stop recognises the same card.
    public var hash: [UInt8]
    public var brand: String

    public init(maskedPAN: String, hash: [UInt8], brand: String = "") {
        self.maskedPAN = maskedPAN; self.hash = hash; self.brand = brand
    }
}

/// Why charging stopped.
public enum StopReason: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case tapToStop = 1, unplugged, costLimit, operatorCommand, fault, shutdown, recovery, relayRefused

    public var description: String {
        switch self {
        case .tapToStop: return "tap to stop"
        case .unplugged: return "unplugged"
        case .costLimit: return "cost limit reached"
        case .operatorCommand: return "operator"
        case .fault: return "fault"
        case .shutdown: return "shutdown"
        case .recovery: return "recovered after restart"
        case .relayRefused: return "relay refused to close"
        }
    }
}

/// The instant of an input: monotonic for deadlines (immune to clock steps), wall-clock
/// milliseconds for what is recorded and reported.
public struct Moment: Equatable, Sendable {
    public var monotonic: Instant
    public var wallMillis: Int64
    public init(monotonic: Instant, wallMillis: Int64) { self.monotonic = monotonic; self.wallMillis = wallMillis }
}

/// Identifies a command the engine gave the terminal, to match its outcome.
public typealias CommandID = UInt64

/// The terminal's own name for an approved payment, opaque to the engine: what a capture or a
/// release must quote (PSP: the session id; ZVT: receipt and trace numbers). Bounded, so that a
/// terminal cannot make the ledger keep an arbitrary blob.
public struct TerminalHandle: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// A handle longer than this is refused by `init(bytes:label:)`.
    public static let maxBytes = 32
    /// The label is cut to this many bytes of UTF-8.
    public static let maxLabelBytes = 32
    /// What the terminal needs back, byte for byte.
    public let bytes: [UInt8]
    /// How people see it (the log, `terminal-<label>` payment references): the terminal's notation.
    public let label: String

    /// nil for an empty handle or one over `maxBytes`.
    public init?(bytes: [UInt8], label: String) {
        guard !bytes.isEmpty, bytes.count <= TerminalHandle.maxBytes else { return nil }
        self.bytes = bytes
        var l = Substring(label)
        while l.utf8.count > TerminalHandle.maxLabelBytes { l = l.dropLast() }
        self.label = String(l)
    }

    /// A 32-bit reference: big-endian bytes, decimal label. Entry format 1 stored every handle this
    /// way (PSP's session id was the only kind), so a PSP terminal's handles must be made here too.
    public init(reference: UInt32) {
        bytes = (0..<4).map { UInt8(truncatingIfNeeded: reference >> (24 - 8 * UInt32($0))) }
        label = String(reference)
    }

    /// The 32-bit reference `init(reference:)` made, when this is one.
    public var reference: UInt32? {
        guard bytes.count == 4 else { return nil }
        return bytes.reduce(0) { $0 << 8 | UInt32($1) }
    }

    public var description: String { label }

    /// Byte order (for a 32-bit reference, numeric order): listings are handled deterministically.
    public static func < (a: TerminalHandle, b: TerminalHandle) -> Bool { a.bytes.lexicographicallyPrecedes(b.bytes) }
}

/// What a terminal can do beyond arm, authorise, capture and release. The engine consults it
/// instead of knowing terminal families; each protocol's adapter says what its terminal has.
public struct TerminalCapabilities: OptionSet, Hashable, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// It lists the approved payments it still holds (P6X List Sessions): recovery asks it instead
    /// of leaving an approval in doubt to the terminal's own timeout.
    public static let listOpenSessions = TerminalCapabilities(rawValue: 1 << 0)
    /// It can raise an approval's amount (Apollo Update Session, ZVT pre-authorisation increment).
    public static let incrementalAuthorisation = TerminalCapabilities(rawValue: 1 << 1)
    /// It may approve less than asked (Apollo Session Partially Approved).
    public static let partialApproval = TerminalCapabilities(rawValue: 1 << 2)
    /// It takes the amount when authorising, not only when armed (ZVT reservation): the cloud's
    /// lower maximum reaches the card.
    public static let amountAtAuthorisation = TerminalCapabilities(rawValue: 1 << 3)
}

/// Protocol-neutral terminal commands.
public enum TerminalCommand: Equatable, Sendable {
    /// Reserve: start a payment flow for `amount` and wait for a card (PSP Start Session, ZVT reservation).
    case arm(amount: Int64, reference: UInt32)
    /// Authorise the card just read for `amount`: the armed amount, or the cloud's lower maximum.
    /// A terminal without `amountAtAuthorisation` authorises what it was armed with.
    case authorise(amount: Int64)
    /// Drop the card just read or stop waiting for one.
    case cancel
    /// Capture `amount` of an approved payment that reserved `reserved` (ZVT's partial reversal
    /// and a terminal's own sanity check need both).
    case capture(TerminalHandle, amount: Int64, reserved: Int64)
    /// Release an approved payment's reservation.
    case release(TerminalHandle)
    /// Ask which approved payments the terminal still holds (needs `listOpenSessions`).
    case listOpen
}

/// How a terminal command ended, as far as the link can tell.
public enum CommandOutcome: Equatable, Sendable {
    case ok
    /// The terminal refused; `notFound` when it says it does not know the session.
    case refused(notFound: Bool)
    /// No answer (timeout, link lost): the command may or may not have taken effect.
    case unknown
    /// Never sent (link not up).
    case notSent
}

/// Protocol-neutral inputs from the terminal.
public enum TerminalInput: Equatable, Sendable {
    /// The link is up and the terminal accepts commands; what it can do beyond the basics.
    case ready(TerminalCapabilities)
    case unavailable
    case cardRead(CardIdentity)
    case approved(TerminalHandle, amount: Int64, pspRef: [UInt8])
    case declined(reason: UInt8?)
    case cancelled
    case completed(CommandID, TerminalCommand, CommandOutcome)
    case openSessions([TerminalHandle])
}

/// What the cloud said about a card.
public struct CardDecision: Equatable, Sendable {
    public var allowed: Bool
    /// A tariff for this session (from the cloud's answer), else the configured one.
    public var tariff: Tariff?
    /// A lower pre-authorisation amount, if the cloud wants one.
    public var maxAmount: Int64?
    public init(allowed: Bool, tariff: Tariff? = nil, maxAmount: Int64? = nil) {
        self.allowed = allowed; self.tariff = tariff; self.maxAmount = maxAmount
    }
}

/// What the offline policy does when the cloud does not answer a card decision in time.
public enum OfflinePolicy: String, Sendable {
    /// Authorise with the default pre-authorisation (the terminal still asks the bank).
    case allow
    case deny
}

/// Relay feedback.
public enum RelayFeedback: Equatable, Sendable {
    case closed, opened
    /// The relay did not close (contactor fault): the session ends without energy.
    case refusedToClose
    /// The relay did not open: a safety fault; the engine stops taking sessions on this connector.
    case welded
}

/// How much a notice matters to whoever reads the log or the station's status. The log level
/// follows it, so `log.level = warning` still shows every error and warning.
public enum NoticeSeverity: Int, Comparable, Sendable, CustomStringConvertible {
    /// Money or safety is at stake and a person must act: the ledger failed, a relay welded.
    case error = 3
    /// Handled, but a person should know: a session needs reconciliation, storage is full, a
    /// connector fault, a relay that did not close, a card decided by the offline policy.
    case warning = 4
    /// The normal course of a session.
    case info = 6

    public static func < (a: NoticeSeverity, b: NoticeSeverity) -> Bool { a.rawValue < b.rawValue }

    public var description: String {
        switch self {
        case .error: return "error"
        case .warning: return "warning"
        case .info: return "info"
        }
    }
}
