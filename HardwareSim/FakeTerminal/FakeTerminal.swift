import PaymentEngine
import TerminalPort

/// A terminal behind the `TerminalPort` for station tests that are not about a protocol: it
/// records every command, and the test says what the terminal answers (`deliver`), or leaves it
/// silent (a link that never comes up). No link, no device, no timers.
public final class FakeTerminal: TerminalPort {
    public var onInputs: ([TerminalInput]) -> Void = { _ in }
    public var onNotice: (NoticeSeverity, String) -> Void = { _, _ in }
    public var onCondition: (TerminalCondition) -> Void = { _ in }
    /// Every command the station gave, in order.
    public private(set) var commands: [(id: CommandID, command: TerminalCommand)] = []
    public private(set) var started = false
    public private(set) var stopped = false
    public var status: TerminalSnapshot

    public init(family: String = "fake", capabilities: TerminalCapabilities = []) {
        status = TerminalSnapshot(protocolName: "fake", family: family, endpoint: "nowhere", capabilities: capabilities)
    }

    public func start() { started = true }
    public func stop() { stopped = true; status.linkUp = false }
    public func perform(_ id: CommandID, _ command: TerminalCommand) { commands.append((id, command)) }

    /// The terminal says something: the inputs reach the station as a real terminal's would.
    public func deliver(_ inputs: [TerminalInput]) {
        if inputs.contains(where: { if case .ready = $0 { return true } else { return false } }) { status.linkUp = true }
        onInputs(inputs)
    }

    /// The terminal says who it is: the snapshot shows it and the station hears of it.
    public func identify(_ inventory: TerminalInventory) {
        status.identity = inventory
        onCondition(.identified(inventory))
    }

    /// The terminal reports tamper or a security error.
    public func securityAlert(_ text: String) { onCondition(.securityAlert(text)) }
}
