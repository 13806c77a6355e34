import CGPIO
import Timebase

/// The kernel's line flags (uAPI v2), as an option set with the kernel's values.
public struct GPIOLineFlags: OptionSet, Hashable, Sendable {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    /// Requested by someone (line info only).
    public static let used = GPIOLineFlags(rawValue: CGPIO_FLAG_USED)
    /// Logical value 1 is the physical low level.
    public static let activeLow = GPIOLineFlags(rawValue: CGPIO_FLAG_ACTIVE_LOW)
    public static let input = GPIOLineFlags(rawValue: CGPIO_FLAG_INPUT)
    public static let output = GPIOLineFlags(rawValue: CGPIO_FLAG_OUTPUT)
    /// Report inactive → active transitions as events on the line fd.
    public static let edgeRising = GPIOLineFlags(rawValue: CGPIO_FLAG_EDGE_RISING)
    /// Report active → inactive transitions as events on the line fd.
    public static let edgeFalling = GPIOLineFlags(rawValue: CGPIO_FLAG_EDGE_FALLING)
    public static let openDrain = GPIOLineFlags(rawValue: CGPIO_FLAG_OPEN_DRAIN)
    public static let openSource = GPIOLineFlags(rawValue: CGPIO_FLAG_OPEN_SOURCE)
    public static let biasPullUp = GPIOLineFlags(rawValue: CGPIO_FLAG_BIAS_PULL_UP)
    public static let biasPullDown = GPIOLineFlags(rawValue: CGPIO_FLAG_BIAS_PULL_DOWN)
    public static let biasDisabled = GPIOLineFlags(rawValue: CGPIO_FLAG_BIAS_DISABLED)
}

/// How one line is requested. Pure: `flags` and `request(offset:consumer:)` are what the ioctl
/// receives, so tests check the layout without a chip.
public struct GPIOLineSettings: Equatable, Sendable {
    /// An output, or an input with or without edge events.
    public enum Direction: Equatable, Sendable {
        /// Driven by us; `initiallyActive` is the logical level set atomically with the request
        /// (the line never glitches to the other level on the way).
        case output(initiallyActive: Bool)
        /// Read by us; `edges`: the kernel queues both edges as events on the line fd.
        case input(edges: Bool)
    }

    /// The bias an input asks the chip for. `asIs` requests none, which matters on gpio-sim and
    /// on boards whose pull is a resistor: a bias flag would override it.
    public enum Bias: Equatable, Sendable { case asIs, pullUp, pullDown, disabled }

    /// The longest debounce asked of the kernel (1 s): a contact that bounces longer is broken.
    public static let maxDebounce: Duration = .seconds(1)
    /// Edge events the kernel queues per line before dropping (it counts the loss in seqno).
    public static let eventBufferSize: UInt32 = 16

    public var direction: Direction
    /// Logical level 1 = physical low (the kernel inverts reads, writes and edges).
    public var activeLow: Bool
    public var bias: Bias
    /// Asked of the kernel for inputs (the chip debounces, or gpiolib does in software); zero: none.
    public var debounce: Duration

    public init(direction: Direction, activeLow: Bool = false, bias: Bias = .asIs, debounce: Duration = .zero) {
        self.direction = direction
        self.activeLow = activeLow
        self.bias = bias
        self.debounce = debounce
    }

    /// The kernel flags for this request.
    public var flags: GPIOLineFlags {
        var f: GPIOLineFlags = []
        switch direction {
        case .output: f.insert(.output)
        case .input(let edges):
            f.insert(.input)
            if edges { f.formUnion([.edgeRising, .edgeFalling]) }
        }
        if activeLow { f.insert(.activeLow) }
        switch bias {
        case .asIs: break
        case .pullUp: f.insert(.biasPullUp)
        case .pullDown: f.insert(.biasPullDown)
        case .disabled: f.insert(.biasDisabled)
        }
        return f
    }

    /// The debounce in whole microseconds, clamped to `maxDebounce`; zero for outputs.
    public var debounceMicroseconds: UInt32 {
        guard case .input = direction else { return 0 }
        let d = min(max(debounce, .zero), Self.maxDebounce)
        return UInt32(d.nanosecondsClamped / 1_000)
    }

    /// The kernel's request structure for one line (no system call).
    public func request(offset: UInt32, consumer: String) -> gpio_v2_line_request {
        var r = gpio_v2_line_request()
        var output: (has: Int32, value: Int32) = (0, 0)
        if case .output(let active) = direction { output = (1, active ? 1 : 0) }
        let edges: Bool = { if case .input(true) = direction { return true } else { return false } }()
        cgpio_fill_request(&r, offset, consumer, flags.rawValue, debounceMicroseconds, output.has, output.value,
                           edges ? Self.eventBufferSize : 0)
        return r
    }
}
