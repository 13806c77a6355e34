import Glibc

/// Serial line parameters, written the way terminal manuals do: `"57600 8N1"`.
public struct LineSettings: Equatable, Hashable, Sendable, CustomStringConvertible {
    /// Parity bit mode.
    public enum Parity: String, Sendable {
        /// No parity bit.
        case none
        /// Even parity.
        case even
        /// Odd parity.
        case odd
    }

    /// Bits per second; must be one of `supportedBauds`.
    public var baud: Int
    /// Data bits per character, 5 to 8.
    public var dataBits: Int
    /// Parity bit mode.
    public var parity: Parity
    /// Stop bits, 1 or 2.
    public var stopBits: Int

    /// Settings as given; `SerialPort.open` rejects unsupported ones.
    public init(baud: Int, dataBits: Int, parity: Parity, stopBits: Int) {
        self.baud = baud
        self.dataBits = dataBits
        self.parity = parity
        self.stopBits = stopBits
    }

    /// The payment terminal's line: 57600 baud, 8 data bits, no parity, 1 stop bit.
    public static let psp = LineSettings(baud: 57600, dataBits: 8, parity: .none, stopBits: 1)

    /// Rates with a standard termios constant; others would need the non-portable
    /// `BOTHER` interface, and no terminal this daemon drives uses one.
    public static let supportedBauds: [Int] = [1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400]

    /// Parses `"<baud> <data bits><N|E|O><stop bits>"`, e.g. `"9600 7O1"`;
    /// `nil` for malformed text or unsupported values.
    public static func parse(_ s: String) -> LineSettings? {
        let fields = s.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard fields.count == 2, let baud = Int(fields[0]) else { return nil }
        let frame = Array(fields[1].utf8)
        guard frame.count == 3 else { return nil }
        let parity: Parity
        switch frame[1] {
        case UInt8(ascii: "N"), UInt8(ascii: "n"): parity = .none
        case UInt8(ascii: "E"), UInt8(ascii: "e"): parity = .even
        case UInt8(ascii: "O"), UInt8(ascii: "o"): parity = .odd
        default: return nil
        }
        let settings = LineSettings(
            baud: baud, dataBits: Int(frame[0]) - 48, parity: parity, stopBits: Int(frame[2]) - 48)
        return settings.unsupportedReason == nil ? settings : nil
    }

    /// `"57600 8N1"`.
    public var description: String {
        let letter = switch parity { case .none: "N"; case .even: "E"; case .odd: "O" }
        return "\(baud) \(dataBits)\(letter)\(stopBits)"
    }

    /// Why these settings cannot be applied, or `nil` if they can.
    var unsupportedReason: String? {
        if Self.speed(forBaud: baud) == nil { return "unsupported baud rate \(baud)" }
        if !(5...8).contains(dataBits) { return "unsupported data bits \(dataBits)" }
        if !(1...2).contains(stopBits) { return "unsupported stop bits \(stopBits)" }
        return nil
    }

    static func speed(forBaud baud: Int) -> speed_t? {
        let constant: Int32
        switch baud {
        case 1200: constant = B1200
        case 2400: constant = B2400
        case 4800: constant = B4800
        case 9600: constant = B9600
        case 19200: constant = B19200
        case 38400: constant = B38400
        case 57600: constant = B57600
        case 115200: constant = B115200
        case 230400: constant = B230400
        default: return nil
        }
        return speed_t(constant)
    }

    /// The `c_cflag` bits that encode the character frame.
    var frameFlags: tcflag_t {
        var flags: tcflag_t = switch dataBits {
        case 5: tcflag_t(CS5)
        case 6: tcflag_t(CS6)
        case 7: tcflag_t(CS7)
        default: tcflag_t(CS8)
        }
        if parity != .none { flags |= tcflag_t(PARENB) }
        if parity == .odd { flags |= tcflag_t(PARODD) }
        if stopBits == 2 { flags |= tcflag_t(CSTOPB) }
        return flags
    }

    static let frameMask = tcflag_t(CSIZE | PARENB | PARODD | CSTOPB)
}

/// Why a serial port could not be opened.
public enum SerialOpenError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The device node is missing or its hardware is gone (`ENOENT`, `ENXIO`,
    /// `ENODEV`): typically a USB adapter was unplugged; retry later.
    case notFound(String)
    /// Another process holds the port (our `flock`, or `TIOCEXCL` for non-root).
    /// Two writers on one line would corrupt every frame, so this is never overridden.
    case busy(String)
    /// The requested baud rate or character frame cannot be set; a configuration error.
    case unsupportedSettings(String)
    /// Any other system failure.
    case system(SystemError)

    /// A log line naming the device and the cause.
    public var description: String {
        switch self {
        case .notFound(let path): "serial port \(path) not found"
        case .busy(let path): "serial port \(path) is in use by another process"
        case .unsupportedSettings(let why): "unsupported serial settings: \(why)"
        case .system(let error): "serial port: \(error)"
        }
    }
}

/// Opens and configures serial ports for a binary protocol.
public enum SerialPort {
    /// Opens `path` exclusively in raw, non-blocking mode with `settings`, and
    /// discards whatever the port had buffered before we owned it.
    ///
    /// Close the result with `SerialPort.close(_:)`, which also lifts `TIOCEXCL`.
    public static func open(path: String, settings: LineSettings) throws(SerialOpenError) -> FileDescriptor {
        if let why = settings.unsupportedReason { throw .unsupportedSettings(why) }
        let fd: FileDescriptor
        do {
            // O_NONBLOCK also keeps open() from waiting for carrier detect on modem lines.
            fd = try FileDescriptor.open(path, flags: O_RDWR | O_NOCTTY | O_NONBLOCK)
        } catch {
            switch error.errno {
            case ENOENT, ENXIO, ENODEV: throw .notFound(path)
            case EBUSY: throw .busy(path)  // TIOCEXCL held by another process, and we are not root
            default: throw .system(error)
            }
        }
        do {
            try lockExclusively(fd, path: path)
        } catch {
            // Plain close: TIOCNXCL here would lift the current owner's exclusive mode.
            fd.close()
            throw error
        }
        do {
            try configure(fd, settings)
        } catch {
            close(fd)
            throw error
        }
        return fd
    }

    /// Releases exclusive mode and closes. A pty's exclusive flag outlives our
    /// descriptor while the simulator holds the other side open, and would keep
    /// a non-root daemon from reopening the port after a link reset.
    public static func close(_ fd: FileDescriptor) {
        _ = ioctl(fd.rawValue, UInt(TIOCNXCL))
        fd.close()
    }

    /// `flock` first: root ignores `TIOCEXCL`, and the daemon runs as root on
    /// chargers, so the lock is what actually keeps two instances apart. Taking
    /// it first also means we never set `TIOCEXCL` on a port someone else owns.
    private static func lockExclusively(_ fd: FileDescriptor, path: String) throws(SerialOpenError) {
        do {
            _ = try retryingEINTR("flock") { flock(fd.rawValue, LOCK_EX | LOCK_NB) }
            _ = try retryingEINTR("ioctl(TIOCEXCL)") { ioctl(fd.rawValue, UInt(TIOCEXCL)) }
        } catch {
            if error.errno == EWOULDBLOCK { throw .busy(path) }
            throw .system(error)
        }
    }

    private static func configure(_ fd: FileDescriptor, _ settings: LineSettings) throws(SerialOpenError) {
        guard let speed = LineSettings.speed(forBaud: settings.baud) else {
            throw .unsupportedSettings("unsupported baud rate \(settings.baud)")
        }
        let applied: Bool
        do { applied = try apply(settings, speed: speed, to: fd) } catch { throw .system(error) }
        guard applied else { throw .unsupportedSettings("device rejected \(settings)") }
    }

    /// Returns false if the driver did not take the frame or speed.
    private static func apply(_ settings: LineSettings, speed: speed_t, to fd: FileDescriptor) throws(SystemError) -> Bool {
        var t = try Termios.get(fd)
        Termios.makeRaw(&t)
        t.c_cflag = (t.c_cflag & ~LineSettings.frameMask) | settings.frameFlags
        // With parity on, the kernel checks it and delivers a bad character as
        // NUL, which the protocol checksum then rejects.
        if settings.parity != .none { t.c_iflag |= tcflag_t(INPCK) }
        _ = cfsetispeed(&t, speed)
        _ = cfsetospeed(&t, speed)
        try Termios.set(fd, t)
        // tcsetattr succeeds if *any* change took; a driver that cannot do the
        // requested frame or rate must fail here, not garble bytes later.
        var readBack = try Termios.get(fd)
        let frameApplied = readBack.c_cflag & LineSettings.frameMask == settings.frameFlags
        guard frameApplied || isPseudoTerminalSlave(fd),
              cfgetispeed(&readBack) == speed, cfgetospeed(&readBack) == speed else { return false }
        _ = try retryingEINTR("tcflush") { tcflush(fd.rawValue, TCIOFLUSH) }
        return true
    }

    /// A pty has no wire, so no character frame: the kernel forces CS8 without
    /// parity on it, and the simulator must still work with any configured frame.
    private static func isPseudoTerminalSlave(_ fd: FileDescriptor) -> Bool {
        var status = stat()
        guard fstat(fd.rawValue, &status) == 0 else { return false }
        // glibc's dev_t encoding (the major() macro does not import into Swift).
        let device = UInt64(status.st_rdev)
        let major = ((device >> 8) & 0xfff) | ((device >> 32) & ~0xfff)
        return (136...143).contains(major)  // UNIX98_PTY_SLAVE_MAJOR and its spares
    }
}

/// termios helpers shared by serial ports and pseudo-terminals.
enum Termios {
    static func get(_ fd: FileDescriptor) throws(SystemError) -> termios {
        var t = termios()
        _ = try retryingEINTR("tcgetattr") { tcgetattr(fd.rawValue, &t) }
        return t
    }

    static func set(_ fd: FileDescriptor, _ t: termios) throws(SystemError) {
        var t = t
        _ = try retryingEINTR("tcsetattr") { tcsetattr(fd.rawValue, TCSANOW, &t) }
    }

    /// `cfmakeraw` plus no software or hardware flow control: bytes pass through
    /// untouched. Protocol bytes include 0x03 (would be SIGINT), 0x11/0x13
    /// (XON/XOFF), 0x0D (CR→NL) and 0xFF (doubled by PARMRK); the line discipline
    /// must treat none of them specially.
    static func makeRaw(_ t: inout termios) {
        t.c_iflag &= ~tcflag_t(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL
            | IXON | IXOFF | IXANY | IGNPAR | INPCK)
        t.c_oflag &= ~tcflag_t(OPOST)
        t.c_lflag &= ~tcflag_t(ECHO | ECHONL | ICANON | ISIG | IEXTEN)
        t.c_cflag &= ~(tcflag_t(CSIZE | PARENB) | CRTSCTS)
        t.c_cflag |= tcflag_t(CS8 | CLOCAL | CREAD)
        // VMIN=1, not 0: with VMIN=0 and VTIME=0 Linux returns 0 from read() on an
        // idle tty even with O_NONBLOCK, indistinguishable from end of file. With
        // VMIN=1 an idle non-blocking read gets EAGAIN, and a read with data
        // pending still returns at once with what is there.
        withUnsafeMutableBytes(of: &t.c_cc) { cc in
            cc[Int(VMIN)] = 1
            cc[Int(VTIME)] = 0
        }
    }
}
