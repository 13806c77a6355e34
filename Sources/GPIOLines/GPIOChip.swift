import CGPIO
import Glibc
import Platform

/// What the kernel says about a chip.
public struct GPIOChipInfo: Equatable, Sendable {
    /// `gpiochipN`.
    public var name: String
    /// The driver's label (`gpio-sim.0-node0`, `pinctrl-bcm2711`, ...): stable across boots, unlike N.
    public var label: String
    public var lines: UInt32
}

/// What the kernel says about one line.
public struct GPIOLineInfo: Equatable, Sendable {
    public var offset: UInt32
    /// The line's name (device tree `gpio-line-names`, gpio-sim's `name`); may be empty.
    public var name: String
    /// Who requested it, when `flags` has `.used`.
    public var consumer: String
    public var flags: GPIOLineFlags
}

/// An open GPIO chip (`/dev/gpiochipN`): where lines are looked up and requested. Owns its fd
/// (closed by `close()` or deinit); lines requested from it stay valid after it is closed.
public final class GPIOChip {
    /// Where chips are found by label.
    public static let deviceDirectory = "/dev"
    /// The most chips scanned for a label (a board has a handful; gpio-sim a few).
    public static let maxChipsScanned = 64

    public let path: String
    public let info: GPIOChipInfo
    var fd: FileDescriptor?

    /// Opens the chip at `path` (`/dev/gpiochipN`) and reads its info.
    public init(path: String) throws(GPIOError) {
        let fd: FileDescriptor
        do { fd = try FileDescriptor.open(path, flags: O_RDWR) } catch { throw .system(error) }
        var raw = gpiochip_info()
        do {
            _ = try retryingEINTR("ioctl GPIO_GET_CHIPINFO \(path)") { cgpio_chip_info(fd.rawValue, &raw) }
        } catch {
            fd.close()
            throw .system(error)
        }
        self.path = path
        self.fd = fd
        info = GPIOChipInfo(name: cString(raw.name), label: cString(raw.label), lines: raw.lines)
    }

    deinit { close() }

    /// Closes the chip's fd (requested lines keep their own).
    public func close() {
        fd?.close()
        fd = nil
    }

    /// A chip by path (anything starting with `/`) or by label, scanning `/dev/gpiochip*` in
    /// name order; a chip that cannot be opened while scanning is skipped (its label is unknown).
    public static func find(_ pathOrLabel: String) throws(GPIOError) -> GPIOChip {
        if pathOrLabel.hasPrefix("/") { return try GPIOChip(path: pathOrLabel) }
        for path in chipPaths() {
            guard let chip = try? GPIOChip(path: path) else { continue }
            if chip.info.label == pathOrLabel { return chip }
        }
        throw .chipNotFound(pathOrLabel)
    }

    /// `/dev/gpiochip*`, sorted, at most `maxChipsScanned`.
    static func chipPaths() -> [String] {
        guard let dir = opendir(deviceDirectory) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir), names.count < maxChipsScanned {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name.hasPrefix("gpiochip") { names.append(name) }
        }
        return names.sorted().map { "\(deviceDirectory)/\($0)" }
    }

    /// One line's info.
    public func lineInfo(offset: UInt32) throws(GPIOError) -> GPIOLineInfo {
        guard offset < info.lines else { throw .offsetOutOfRange(offset, lines: info.lines, chip: path) }
        var raw = gpio_v2_line_info()
        let fd = try openFD()
        do {
            _ = try retryingEINTR("ioctl GPIO_V2_GET_LINEINFO \(path)") { cgpio_line_info(fd.rawValue, offset, &raw) }
        } catch { throw .system(error) }
        return GPIOLineInfo(offset: raw.offset, name: cString(raw.name), consumer: cString(raw.consumer),
                            flags: GPIOLineFlags(rawValue: raw.flags))
    }

    /// A line's offset from a decimal offset or a name (the first line with that name).
    public func offset(of offsetOrName: String) throws(GPIOError) -> UInt32 {
        if let n = UInt32(offsetOrName) {
            guard n < info.lines else { throw .offsetOutOfRange(n, lines: info.lines, chip: path) }
            return n
        }
        for o in 0..<info.lines where try lineInfo(offset: o).name == offsetOrName { return o }
        throw .lineNotFound(name: offsetOrName, chip: path)
    }

    /// Requests one line. The fd is non-blocking and close-on-exec; `consumer` is what others
    /// see in the line's info. A line someone holds is `lineBusy` with their name.
    public func request(offset: UInt32, consumer: String, _ settings: GPIOLineSettings) throws(GPIOError) -> GPIOLine {
        guard offset < info.lines else { throw .offsetOutOfRange(offset, lines: info.lines, chip: path) }
        let fd = try openFD()
        var req = settings.request(offset: offset, consumer: consumer)
        do {
            _ = try retryingEINTR("ioctl GPIO_V2_GET_LINE \(path) line \(offset)") { cgpio_request_line(fd.rawValue, &req) }
        } catch {
            if error.errno == EBUSY {
                let who = (try? lineInfo(offset: offset))?.consumer ?? ""
                throw .lineBusy(offset: offset, consumer: who, chip: path)
            }
            throw .system(error)
        }
        let line = FileDescriptor(rawValue: req.fd)
        do { try line.setNonBlocking() } catch {
            line.close()
            throw .system(error)
        }
        return GPIOLine(fd: line, chip: path, offset: offset, settings: settings)
    }

    func openFD() throws(GPIOError) -> FileDescriptor {
        guard let fd else { throw .system(SystemError(call: "GPIOChip \(path) (closed)", errno: EBADF)) }
        return fd
    }
}

/// A NUL-terminated fixed-size C char array (imported as a tuple) as a String.
func cString<T>(_ tuple: T) -> String {
    withUnsafeBytes(of: tuple) { raw in String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self) }
}
