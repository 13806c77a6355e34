import PSPCodec

/// Terminal families speaking PSP.
public enum TerminalFamily: String, Sendable {
    /// P66, P66S, P68: RS-232, configurable preamble and magic, List Sessions.
    case p6x
    /// Apollo, Apollo Max, Apollo Polar: TCP 3201 or USB-C serial, extended format, detailed codes.
    case apollo
}

/// Whether the link asks an Apollo for its network information (Get Connection Info, 0x44):
/// `terminal.connection_info`. Inventory only: an answer or its absence never touches payments.
public enum ConnectionInfoQuery: String, Sendable, CaseIterable {
    /// Once per bring-up, after Request Ids and before anything the engine asks, on an Apollo
    /// only (psp.md §4 lists the command for the Apollo family alone).
    case auto
    /// Never.
    case off
}

/// How the link reaches the terminal; decides keep-alive and recovery behaviour.
public enum LinkTransportKind: String, Sendable {
    case serial, tcp
}

/// Per-command response timeouts (Payter's TIMEOUTS table).
public struct LinkTimeouts: Equatable, Sendable {
    /// "Anything else": 10 s on P6X, 5 s on Apollo.
    public var general: Duration
    /// Auth Session: 30 s on P6X, 3 min 30 s on Apollo (three PIN attempts).
    public var auth: Duration
    /// Commit and Void: 60 s on both.
    public var commitVoid: Duration
    /// Start Session / Read Card until a card is read: the terminal's card-detect timeout (60 s default) plus margin.
    public var cardDetect: Duration
    /// Get Receipt: 15 s.
    public var receipt: Duration
    /// How long to wait for the optional immediate Result to Start Session / Read Card before
    /// treating the command as accepted (the docs do not say whether a Result is sent).
    public var startResultGrace: Duration
    /// Interval between Synchronize polls while bringing the link up.
    public var synchronizeInterval: Duration
    /// Idle time after which a Get Status is sent: well inside the Apollo's 20 s idle close,
    /// and on serial the way a dead or reset terminal is noticed.
    public var keepAlive: Duration
    /// Silence with a partial frame buffered after which the partial frame is discarded.
    public var interByte: Duration
    /// After a Get Status answered with no certain status (refused, or readable both ways):
    /// when to ask again (a few times, then back to the keep-alive interval).
    public var statusRecheck: Duration = .seconds(1)
    /// After an Auth Session is answered without its outcome (a bare OK), or goes unanswered:
    /// how long a Session Approved / Partially Approved / Declined is still taken as its outcome.
    /// Longer than the engine's `authOutcomeTimeout` (120 s), so nothing the engine still waits
    /// for is turned away. A later outcome is rejected as implausible; a real one is then still
    /// settled by the in-doubt path (P6X: List Sessions and a void; Apollo: reconciliation and
    /// the terminal's session timeout).
    public var authOutcome: Duration = .seconds(150)
    /// Get Connection Info: Payter's TIMEOUTS table does not list it [NOT FOUND], so the Apollo's
    /// "anything else" (5 s). Unanswered, it is taken as not available and not asked again until
    /// the next bring-up; the first payment after a bring-up waits at most this long for it.
    public var connectionInfo: Duration = .seconds(5)

    public static func defaults(for family: TerminalFamily) -> LinkTimeouts {
        LinkTimeouts(general: family == .apollo ? .seconds(5) : .seconds(10),
                     auth: family == .apollo ? .seconds(210) : .seconds(30),
                     commitVoid: .seconds(60), cardDetect: .seconds(65), receipt: .seconds(15),
                     startResultGrace: .seconds(1), synchronizeInterval: .seconds(1),
                     keepAlive: .seconds(10), interByte: .milliseconds(500))
    }
}

/// Everything the link needs to know about the terminal and the wire. Ambiguities in
/// Payter's docs are settings here, with the reading we believe most likely as default.
public struct PSPLinkConfig: Equatable, Sendable {
    public var family: TerminalFamily
    public var transport: LinkTransportKind
    /// Protocol version sent in Protocol (0x13); 3 is the only current one.
    public var protocolVersion: UInt8 = 3
    /// Options for Protocol; nil = do not send Protocol (version 3, no options assumed).
    public var protocolOptions: ProtocolOptions?
    /// Setup: lifetime of an approved session on the terminal, and the action when it expires.
    /// Void, and long enough for the longest charge plus the offline commit window.
    public var sessionTimeoutSeconds: UInt32 = 48 * 3600
    public var sessionTimeoutAction: SessionTimeoutAction = .void
    /// Preamble and magic we send.
    public var hostPreamble: UInt8 = PSPConstants.hostPreamble
    public var hostMagic: UInt8 = PSPConstants.magic
    /// What we accept as preamble and magic.
    public var acceptPreamble: BytePolicy
    public var acceptMagic: BytePolicy
    public var headers: PSPHeaderMap = .standard
    /// Card-hash DOL tags in order of preference.
    public var cardHashTags: [UInt32] = DOLTag.cardHashCandidates
    public var timeouts: LinkTimeouts
    /// Resends of an idempotent request after a timeout (Get Status, Enable, Setup, …).
    /// Session commands (Start, Auth, Commit, Void, Cancel) are never resent by the link: the
    /// payment engine decides, because a lost answer does not mean a lost command.
    public var maxRetries: Int = 2
    /// Requests waiting behind the outstanding one.
    public var maxQueuedRequests: Int = 16
    /// Ask the terminal for its serial numbers after every bring-up (technicians' inventory).
    public var requestIdentity: Bool = true
    /// Ask an Apollo for its network information after every bring-up (technicians' inventory).
    public var connectionInfo: ConnectionInfoQuery = .auto
    /// Learn the preamble and magic the terminal uses from its answer to our Synchronize at each
    /// bring-up, and accept only those until the next bring-up. It matters where `acceptPreamble`
    /// / `acceptMagic` are `.any` (P6X: configurable on the terminal, so unknown to us): an 8-bit
    /// checksum alone lets about one random byte position in 256 pass as a frame, and two fixed
    /// bytes cut that by 65536 (measured: `psp-bench noise`, docs/ARCHITECTURE.md). A policy that
    /// is already `.only` (Apollo) is kept as it is. A terminal whose answers stop matching fails
    /// its next bring-up step or keep-alive, and the bring-up that follows learns again.
    public var lockFraming: Bool = true
    /// A Card Read is acted on only when it names a card: a non-empty masked PAN (DFCA0B) or card
    /// hash (`cardHashTags`). Payter's default Card Read DOLs carry both (psp.md §4.4).
    public var requireCardIdentity: Bool = true
    /// A Session Approved / Partially Approved whose session ID the link already saw since the
    /// last bring-up (approved, committed, voided, updated or listed) is rejected as implausible:
    /// the terminal gives each approval a new ID. Cleared at each bring-up, because a terminal that
    /// restarted may number its sessions afresh.
    public var rejectKnownSessionIDs: Bool = true
    /// How many such session IDs the link remembers (the oldest is forgotten first).
    public var maxKnownSessionIDs: Int = 256
    /// Detailed Result reasons that, refusing Setup or Enable during bring-up, are taken as the
    /// terminal's tamper / security violation mode (`LinkEvent.securityAlert`). [INFERRED]: PSP
    /// documents no tamper signal. Payter's Apollo manual says a tampered terminal deletes its
    /// keys and "restarts into an inactive mode" showing a security violation; a terminal whose
    /// payment application cannot run is most plausibly refused with 0x0E ("payment application
    /// in an invalid state for the request"). Only an Apollo gives detailed reasons (Protocol
    /// option 0x08), so a P6X's tamper is not seen this way. Empty: never taken as tamper.
    public var securityRefusals: Set<UInt8> = [ResultReason.paymentApplicationInvalidState]

    public init(family: TerminalFamily, transport: LinkTransportKind) {
        self.family = family
        self.transport = transport
        self.timeouts = .defaults(for: family)
        switch family {
        case .apollo:
            acceptPreamble = .only(PSPConstants.apolloPreamble)
            acceptMagic = .only(PSPConstants.magic)
            protocolOptions = [.transactionEvents, .authorizationDOL, .detailedResults]
        case .p6x:
            // P6X preamble and magic are configurable on the terminal: accept any.
            acceptPreamble = .any
            acceptMagic = .any
            protocolOptions = [.transactionEvents, .authorizationDOL]
        }
    }

    /// Get Connection Info is asked at bring-up: `.auto` and an Apollo.
    public var asksConnectionInfo: Bool { connectionInfo == .auto && family == .apollo }

    /// The largest length field we send in the given format.
    func maxSendLength(_ format: PSPFrameFormat) -> Int {
        if format == .extended { return PSPLimits.maxExtendedLength }
        return protocolVersion >= 3 ? PSPLimits.maxNormalLength : PSPLimits.maxLegacyLengthSent
    }

    func maxAcceptLength(_ format: PSPFrameFormat) -> Int {
        if format == .extended { return PSPLimits.maxExtendedLength }
        return protocolVersion >= 3 ? PSPLimits.maxNormalLength : PSPLimits.maxLegacyLengthAccepted
    }
}
