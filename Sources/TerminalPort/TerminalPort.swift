import PaymentEngine

/// What the station needs of a payment terminal, whatever protocol it speaks: engine commands
/// in, engine inputs out, and a snapshot for status displays. A protocol module (PSPTerminal;
/// ZVT later) implements it around its own link, adapter and paging, so the station never names
/// a protocol. It runs on the station's event loop and calls back on it.
public protocol TerminalPort: AnyObject {
    /// Where the terminal's inputs for the engine go, in the order they happened. An
    /// implementation never calls it from inside `perform`: an answer known at once (a command
    /// the terminal cannot take) is delivered on a later turn of the caller's queue.
    var onInputs: ([TerminalInput]) -> Void { get set }
    /// What a person should know about the terminal (card data where it does not belong, a
    /// command it cannot carry), with its severity.
    var onNotice: (NoticeSeverity, String) -> Void { get set }
    /// What the terminal says about itself that the station's operating rules judge (who it is,
    /// a tamper or security alert): `TerminalConditions` decides what follows. Called on the
    /// event loop, never from inside `perform`.
    var onCondition: (TerminalCondition) -> Void { get set }
    /// Opens the link and keeps reopening it until `stop`.
    func start()
    /// Closes the link; commands in flight complete as unknown.
    func stop()
    /// Carries out an engine command; its outcome comes back as `.completed(id, command, …)`.
    func perform(_ id: CommandID, _ command: TerminalCommand)
    /// What the terminal is doing now, for the technicians' status.
    var status: TerminalSnapshot { get }
}

/// What a terminal reports about itself, whatever its protocol.
public enum TerminalCondition: Equatable, Sendable {
    /// It said who it is (after each bring-up).
    case identified(TerminalInventory)
    /// It reported tamper or a security error, in words for a person (no card data).
    case securityAlert(String)
}

/// A snapshot of a terminal for status displays and the technicians' inventory.
public struct TerminalSnapshot: Equatable, Sendable {
    /// The protocol spoken ("PSP", later "ZVT").
    public var protocolName: String
    /// The terminal family as configured ("apollo", "p6x").
    public var family: String
    /// Where it is: a device path with line settings, or an address.
    public var endpoint: String
    /// The link is up and the terminal takes commands.
    public var linkUp: Bool
    /// The terminal's own state as last reported, in its protocol's words; nil when unknown.
    public var state: String?
    /// Why the link is down (or last went down); nil when it never failed.
    public var lastError: String?
    /// The terminal's identity as it reported it (already passed through the card-data filter).
    public var identity: TerminalInventory?
    /// What the terminal said about its network at the last bring-up; nil when it was not asked
    /// or had nothing to say.
    public var network: TerminalNetwork?
    /// What it can do beyond the basics.
    public var capabilities: TerminalCapabilities
    /// Counters a technician reads, by name (frames bad, link drops, card data removed, …).
    public var counters: [String: Int]

    public init(protocolName: String, family: String, endpoint: String, linkUp: Bool = false, state: String? = nil,
                lastError: String? = nil, identity: TerminalInventory? = nil, network: TerminalNetwork? = nil,
                capabilities: TerminalCapabilities = [], counters: [String: Int] = [:]) {
        self.protocolName = protocolName; self.family = family; self.endpoint = endpoint; self.linkUp = linkUp
        self.state = state; self.lastError = lastError; self.identity = identity; self.network = network
        self.capabilities = capabilities; self.counters = counters
    }
}

/// The serial numbers a terminal reports (what the operator must hand over on request).
public struct TerminalInventory: Equatable, Sendable {
    public var serialNumber: String
    public var model: String?
    public var firmware: String?
    /// The SIM's ICCID, where the terminal has one.
    public var simSerial: String?
    public var samSerials: [String]

    public init(serialNumber: String, model: String? = nil, firmware: String? = nil, simSerial: String? = nil, samSerials: [String] = []) {
        self.serialNumber = serialNumber; self.model = model; self.firmware = firmware
        self.simSerial = simSerial; self.samSerials = samSerials
    }
}

/// What a terminal says about its network connection, in the form it came (already passed
/// through the card-data filter): text when it was text, otherwise hex; never both.
public struct TerminalNetwork: Equatable, Sendable {
    /// The terminal's words (for instance key=value lines), when they were printable text.
    public var text: String?
    /// The bytes in upper-case hex, when they were not text.
    public var hex: String?
    /// Which command gave it and how far its reading can be trusted, for a person.
    public var source: String

    public init(text: String? = nil, hex: String? = nil, source: String) {
        self.text = text; self.hex = hex; self.source = source
    }
}
