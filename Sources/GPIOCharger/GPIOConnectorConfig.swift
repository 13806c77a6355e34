import Timebase

/// One GPIO line as configured: the chip (a path such as `/dev/gpiochip0`, or the chip's label,
/// which survives renumbering) and the line (a decimal offset, or the line's name).
public struct GPIOLineRef: Equatable, Sendable, CustomStringConvertible {
    public var chip: String
    public var line: String
    /// Logical "active" (relay energised, contact closed, plug present) is the physical low level.
    public var activeLow: Bool

    public init(chip: String, line: String, activeLow: Bool = false) {
        self.chip = chip
        self.line = line
        self.activeLow = activeLow
    }

    /// `chip:line`, with `(active low)` when it is.
    public var description: String { "\(chip):\(line)\(activeLow ? " (active low)" : "")" }
}

/// One connector's GPIO lines (the daemon parses `charger.gpio.N.*` keys into it).
public struct GPIOConnectorConfig: Equatable, Sendable {
    /// The default debounce of the mirror and plug inputs.
    public static let defaultDebounce: Duration = .milliseconds(20)

    /// The relay's coil driver: an output, active = energised = contacts closed.
    public var relay: GPIOLineRef
    /// The relay's auxiliary contact, active = closed. Without it the relay is trusted on command
    /// (no refused or welded contact can be detected).
    public var mirror: GPIOLineRef?
    /// The plug-detect input, active = plugged. Without it the plug comes from elsewhere (the
    /// controller's socket) or not at all.
    public var plug: GPIOLineRef?
    /// How long the mirror and plug inputs must hold a new level before it counts (also asked of
    /// the kernel as the lines' debounce attribute).
    public var debounce: Duration

    public init(relay: GPIOLineRef, mirror: GPIOLineRef? = nil, plug: GPIOLineRef? = nil,
                debounce: Duration = GPIOConnectorConfig.defaultDebounce) {
        self.relay = relay
        self.mirror = mirror
        self.plug = plug
        self.debounce = debounce
    }
}
