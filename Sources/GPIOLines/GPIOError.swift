import Platform

/// Why a GPIO chip or line could not be found, requested or driven. Each case says what an
/// installer must look at; the system call's errno is kept where there was one.
public enum GPIOError: Error, Equatable, Sendable, CustomStringConvertible {
    /// No `/dev/gpiochip*` has this label (and it is not a path): the driver is not loaded, the
    /// label is misspelt, or the daemon cannot read `/dev` (ProtectDevices, udev's group).
    case chipNotFound(String)
    /// The chip has no line with this name (line names come from the device tree or gpio-sim).
    case lineNotFound(name: String, chip: String)
    /// The offset is not below the chip's number of lines.
    case offsetOutOfRange(UInt32, lines: UInt32, chip: String)
    /// The line is already requested by someone (`consumer` as the kernel reports it, may be
    /// empty): another process or a kernel driver (a LED, a key) holds it. Nothing is driven.
    case lineBusy(offset: UInt32, consumer: String, chip: String)
    /// A system call failed (open, an ioctl, read): the call names which.
    case system(SystemError)

    /// One line for the log.
    public var description: String {
        switch self {
        case .chipNotFound(let c): return "no GPIO chip with path or label \"\(c)\""
        case .lineNotFound(let n, let c): return "GPIO chip \(c) has no line named \"\(n)\""
        case .offsetOutOfRange(let o, let n, let c): return "GPIO chip \(c) has \(n) lines; offset \(o) is not one of them"
        case .lineBusy(let o, let who, let c): return "GPIO line \(o) of \(c) is in use by \(who.isEmpty ? "another consumer" : "\"\(who)\"")"
        case .system(let e): return e.description
        }
    }
}
