import CardSafety
import PaymentEngine
import Platform
import PSPCodec
import PSPLink
import TerminalPort
import Timebase
import Transport

/// A Payter terminal behind the station's `TerminalPort`: the PSP link driver, the engine
/// adapter and List Sessions paging, and the card-data warnings, all in one place, so that the
/// station names no PSP type.
public final class PSPTerminalPort: TerminalPort {
    public var onInputs: ([TerminalInput]) -> Void = { _ in }
    public var onNotice: (NoticeSeverity, String) -> Void = { _, _ in }
    public var onCondition: (TerminalCondition) -> Void = { _ in }
    /// The link, for the daemon's PSP-specific log (`TerminalLog` wraps its `onEvent`).
    public let driver: PSPLinkDriver
    var adapter: PSPEngineAdapter
    let loop: EventLoop
    /// Link events that arrived while a command was being submitted: the link may answer at
    /// once (not ready), and the adapter must learn the request before it sees the answer.
    var held: [LinkEvent] = []
    var submitting = false
    var identity: TerminalIdentity?
    /// The last bring-up's Get Connection Info answer; nil when not asked or not available.
    var network: ConnectionInfo?
    /// Fields of terminal messages in which the card-data filter found a card number or track
    /// data: each was masked or dropped by the codec before anything used it.
    public private(set) var cardDataRedactions = 0

    public init(loop: EventLoop, driver: PSPLinkDriver) {
        self.loop = loop
        self.driver = driver
        adapter = PSPEngineAdapter(family: driver.core.config.family, cardHashTags: driver.core.config.cardHashTags)
        driver.onEvent = { [unowned self] e in self.linkEvent(e) }
    }

    public func start() { driver.start() }
    public func stop() { driver.stop() }

    public func perform(_ id: CommandID, _ command: TerminalCommand) {
        guard let host = adapter.hostCommand(for: command) else {
            // A payment PSP cannot name (another kind of terminal approved it): this terminal
            // does not know it. Answered on the next turn, never from inside `perform`.
            onNotice(.warning, "terminal: \(command) names a payment this terminal cannot know")
            _ = loop.schedule(at: MonotonicClock.now()) { [weak self] in
                self?.onInputs([.completed(id, command, .refused(notFound: true))])
            }
            return
        }
        submit(host, id, command)
    }

    func submit(_ host: HostCommand, _ id: CommandID, _ command: TerminalCommand) {
        submitting = true
        let request = driver.submit(host)
        adapter.submitted(request, for: id, command)
        submitting = false
        let now = held
        held = []
        for e in now { linkEvent(e) }
    }

    func linkEvent(_ e: LinkEvent) {
        if submitting { held.append(e); return }
        if case .identity(let id) = e { identity = id }
        if case .connectionInfo(let c) = e { network = c }
        let inputs = adapter.inputs(for: e)
        if !inputs.isEmpty { onInputs(inputs) }
        // After the inputs: the station hears the link is up before it hears who is on it.
        if let c = PSPTerminalPort.condition(for: e) { onCondition(c) }
        // After the inputs: counting the filtered fields runs the card-data filter over the DOL
        // once more, and a card's question to the cloud need not wait for that.
        noteFilteredCardData(e)
        // The next page of a session list, asked on the engine's behalf.
        if let next = adapter.nextRequest() { submit(next.command, next.id, next.engineCommand) }
    }

    /// A terminal that puts card data where it does not belong is misconfigured (its DOL set, or
    /// a test card profile): nothing leaked, but the operator must know, so it is a warning.
    func noteFilteredCardData(_ e: LinkEvent) {
        let fields: [String]
        switch e {
        case .identity(let id): fields = id.redactedFields
        case .connectionInfo(let c?) where c.cardDataFound: fields = ["connectionInfo"]
        case .message(.cardRead(let d)), .message(.propCardRead(let d)), .message(.sessionApproved(_, let d)),
             .message(.sessionPartiallyApproved(_, _, let d)), .message(.sessionDeclined(_, let d)):
            fields = CardData(dol: d, hashTags: adapter.cardHashTags).redactedFields
        default: return
        }
        guard !fields.isEmpty else { return }
        cardDataRedactions += fields.count
        onNotice(.warning, "card data filter: the terminal sent card data in \(fields.joined(separator: ", ")); masked or dropped before use (\(cardDataRedactions) fields so far); check the terminal's configuration")
    }

    /// What a link event says about the terminal's conditions: its identity (already through the
    /// card-data filter), or the refusal taken as its security violation mode (psp.md has no
    /// tamper signal; `PSPLinkConfig.securityRefusals` says which refusal, [INFERRED]).
    public static func condition(for e: LinkEvent) -> TerminalCondition? {
        switch e {
        case .identity(let id): return .identified(inventory(id))
        case let .securityAlert(command, reason):
            let hex = String(reason, radix: 16, uppercase: true)
            return .securityAlert("terminal refused \(command) with \(ResultReason.name(reason)) (0x\(hex.count < 2 ? "0" + hex : hex)): "
                                  + "taken as its security violation (tamper) mode")
        default: return nil
        }
    }

    /// Where the inventory's network information comes from, and that its reading is a guess.
    public static let networkSource = "Get Connection Info 0x44 (layout undocumented)"

    /// The answer as the station shows it. Card data the codec withheld is shown as removed, the
    /// way text with track data already is.
    public static func network(_ c: ConnectionInfo) -> TerminalNetwork {
        switch c.reading {
        case .text(let t): return TerminalNetwork(text: t, source: networkSource)
        case .hex(let h): return TerminalNetwork(hex: h, source: networkSource)
        case .withheld: return TerminalNetwork(text: CardDataFilter.removed, source: networkSource)
        }
    }

    static func inventory(_ id: TerminalIdentity) -> TerminalInventory {
        TerminalInventory(serialNumber: id.serialNumber, model: id.model, firmware: id.firmware, simSerial: id.simSerial, samSerials: id.samSerials)
    }

    public var status: TerminalSnapshot {
        let core = driver.core
        let c = core.counters
        return TerminalSnapshot(
            protocolName: "PSP", family: core.config.family.rawValue, endpoint: "\(driver.connection.endpoint)",
            linkUp: core.phase == .ready, state: core.terminalState.map { "\($0)" }, lastError: driver.connection.lastError,
            identity: identity.map(PSPTerminalPort.inventory), network: network.map(PSPTerminalPort.network),
            capabilities: adapter.capabilities,
            counters: ["framesSent": c.framesSent, "framesReceived": c.framesReceived, "framesMalformed": c.malformed.malformedTotal,
                       "bytesDiscarded": c.malformed.bytesDiscarded, "framesUndecodable": c.undecodable,
                       "framesImplausible": c.implausibleTotal, "timeouts": c.timeouts, "terminalResets": c.terminalResets,
                       "bringUps": c.bringUps, "connectionInfoUnavailable": c.connectionInfoUnavailable, "linkOpens": driver.connection.counters.opens,
                       "linkHangUps": driver.connection.counters.hangUps, "cardDataRedactions": cardDataRedactions])
    }
}
