import Timebase

/// When to reset a USB adapter whose terminal stopped answering (pure; time passed in).
///
/// USB-serial adapters hang in the field (a wedged FTDI after a brown-out, a CDC device whose
/// firmware stopped servicing its endpoints) while still enumerating: reopening the tty does not
/// help, a bus reset (`libusb_reset_device`) usually does. A reset re-enumerates the device and
/// drops every open handle, so it is rate-limited: a terminal that is simply switched off must
/// not be reset in a loop.
public struct USBRecoveryPolicy: Sendable {
    /// The policy's settings.
    public struct Settings: Equatable, Sendable {
        /// Consecutive failed bring-ups before a reset is asked for.
        public var failuresBeforeReset: Int
        /// At most one reset per this interval, measured from the previous reset.
        public var minimumResetInterval: Duration
        /// `terminal.usb_power_cycle`: also switch the hub port's power off and on. Only hubs that
        /// implement per-port power switching can (hub descriptor wHubCharacteristics bits 1:0 =
        /// 01, "individual"); 00 means every port of the hub switches together, 1x none at all.
        /// Few hubs do it per port: most consumer hubs gang their ports or cannot switch, and a
        /// hub that says 01 may still not cut VBUS. uhubctl's compatibility list is the practical
        /// reference (industrial hubs such as B+B SmartWorx UHR204; some VIA VL81x-based hubs).
        /// A configuration value only here: the policy says when; the shell must read the hub
        /// descriptor (`USBHubPower.parse`) and refuse `on` for a hub that cannot.
        public var powerCycle: Bool

        /// Allowed failures before a reset.
        public static let failuresRange = 1...20
        /// Allowed reset intervals: 30 s to a day.
        public static let intervalRange = Duration.seconds(30)...Duration.seconds(86_400)
        /// 3 failed bring-ups, one reset per 5 minutes, no power cycle.
        public static let defaults = Settings(failuresBeforeReset: 3, minimumResetInterval: .seconds(300), powerCycle: false)

        /// Settings checked against their ranges.
        public init(failuresBeforeReset: Int, minimumResetInterval: Duration, powerCycle: Bool) {
            self.failuresBeforeReset = failuresBeforeReset
            self.minimumResetInterval = minimumResetInterval
            self.powerCycle = powerCycle
        }

        /// Why these settings cannot be used, or `nil`.
        public var problem: USBRecoveryProblem? {
            if !Self.failuresRange.contains(failuresBeforeReset) { return .failuresOutOfRange(failuresBeforeReset) }
            if !Self.intervalRange.contains(minimumResetInterval) { return .intervalOutOfRange(minimumResetInterval) }
            return nil
        }
    }

    /// What the shell should do after an input.
    public enum Decision: Equatable, Sendable {
        /// Nothing: keep reopening with the link's own backoff.
        case none
        /// Reset the device now (and power-cycle its port first when `powerCycle` is set).
        case reset(powerCycle: Bool)
        /// A reset is due but the last one was too recent; it will be asked for again on the
        /// first failure at or after `notBefore`.
        case suppressed(notBefore: Instant)
    }

    /// What the policy did, for logs and metrics.
    public struct Counters: Equatable, Sendable {
        /// Resets asked for.
        public var resets = 0
        /// Resets held back by the rate limit.
        public var suppressed = 0
        /// Resets the shell reported as failed.
        public var resetFailures = 0
    }

    /// The settings in force.
    public let settings: Settings
    /// Failed bring-ups since the last success or reset.
    public private(set) var consecutiveFailures = 0
    /// When the last reset was asked for.
    public private(set) var lastReset: Instant?
    /// Counters since start.
    public private(set) var counters = Counters()

    /// A policy with checked settings (`settings.problem` must be `nil`).
    public init(settings: Settings) {
        precondition(settings.problem == nil, "USBRecoveryPolicy: \(String(describing: settings.problem))")
        self.settings = settings
    }

    /// The link came up: the adapter works, start counting afresh.
    public mutating func bringUpSucceeded() {
        consecutiveFailures = 0
    }

    /// A bring-up failed (the link core gave up on the terminal) at `now`.
    public mutating func bringUpFailed(at now: Instant) -> Decision {
        consecutiveFailures += 1
        guard consecutiveFailures >= settings.failuresBeforeReset else { return .none }
        if let lastReset {
            let notBefore = lastReset + settings.minimumResetInterval
            if now < notBefore {
                counters.suppressed += 1
                return .suppressed(notBefore: notBefore)
            }
        }
        lastReset = now
        consecutiveFailures = 0
        counters.resets += 1
        return .reset(powerCycle: settings.powerCycle)
    }

    /// The shell's reset failed (the device is gone, or the kernel refused): counted; the rate
    /// limit still holds, so a device that cannot be reset is not hammered.
    public mutating func resetFailed() {
        counters.resetFailures += 1
    }
}

/// Why recovery settings were refused.
public enum USBRecoveryProblem: Error, Equatable, Sendable {
    /// `failuresBeforeReset` outside `Settings.failuresRange`.
    case failuresOutOfRange(Int)
    /// `minimumResetInterval` outside `Settings.intervalRange`.
    case intervalOutOfRange(Duration)
}
