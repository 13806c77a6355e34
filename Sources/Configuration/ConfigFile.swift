import Glibc
import Platform

/// Why a configuration file could not be read. Any of these refuses the file as a whole: at
/// start the daemon exits, on SIGHUP nothing is reloaded. A file that cannot be read is never
/// taken as an empty file (that would silently put every setting back to its default).
public enum ConfigFileError: Error, Equatable, CustomStringConvertible {
    /// `open` failed: no such file, no permission, a loop of links (the call and errno).
    case cannotOpen(path: String, SystemError)
    /// The path names a directory, device, FIFO or socket, not a regular file.
    case notRegularFile(path: String, kind: String)
    /// `fstat` or `read` failed part-way (e.g. EIO): what was read is not the file.
    case readFailed(path: String, SystemError)
    /// Larger than `ConfigParser.maxBytes`: not a configuration file.
    case tooLarge(path: String, bytes: Int)

    public var description: String {
        switch self {
        case let .cannotOpen(path, e): return "cannot open \(path): \(e)"
        case let .notRegularFile(path, kind): return "\(path) is a \(kind), not a regular file"
        case let .readFailed(path, e): return "cannot read \(path): \(e)"
        case let .tooLarge(path, bytes): return "\(path): \(bytes) bytes, more than \(ConfigParser.maxBytes): not a configuration file"
        }
    }
}

public enum ConfigFile {
    /// The text of the configuration file at `path`: a regular file (a symlink to one is
    /// followed, as /etc often has them), read whole. Checks are made on the opened descriptor,
    /// so what is checked is what is read. `O_NONBLOCK` keeps a FIFO put in its place from
    /// hanging the daemon in `open`.
    public static func read(_ path: String) throws(ConfigFileError) -> String {
        let fd: FileDescriptor
        do { fd = try FileDescriptor.open(path, flags: O_RDONLY | O_NONBLOCK | O_NOCTTY) } catch {
            throw .cannotOpen(path: path, error)
        }
        defer { fd.close() }
        var info = stat()
        if fstat(fd.rawValue, &info) != 0 { throw .readFailed(path: path, SystemError(call: "fstat \(path)", errno: errno)) }
        guard info.st_mode & S_IFMT == S_IFREG else { throw .notRegularFile(path: path, kind: kind(info.st_mode)) }
        guard info.st_size <= ConfigParser.maxBytes else { throw .tooLarge(path: path, bytes: Int(info.st_size)) }
        var bytes: [UInt8] = []
        while true {
            let chunk: FileDescriptor.ReadChunk
            do { chunk = try fd.read(maxCount: 4096) } catch { throw .readFailed(path: path, error) }
            switch chunk {
            case .bytes(let more):
                bytes += more
                if bytes.count > ConfigParser.maxBytes { throw .tooLarge(path: path, bytes: bytes.count) }
            case .endOfFile, .wouldBlock:
                return String(decoding: bytes, as: UTF8.self)
            }
        }
    }

    static func kind(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFDIR: return "directory"
        case S_IFCHR: return "character device"
        case S_IFBLK: return "block device"
        case S_IFIFO: return "FIFO"
        case S_IFSOCK: return "socket"
        default: return "special file"
        }
    }
}

/// The command line's `--terminal` forms, turned into the configuration keys they stand for, so
/// that the flag and the file are checked by the same rules (`ConfigParser.apply`).
public enum TerminalFlag {
    /// `serial:PATH[,BAUD 8N1]` → terminal.transport, terminal.device (and terminal.line);
    /// `tcp:ADDRESS[:PORT]` with ADDRESS an IPv4 address or a bracketed IPv6 address
    /// (`tcp:[fe80::1%eth0]:3202`; a bare IPv6 address without a port is taken whole) →
    /// terminal.transport, terminal.host (and terminal.port). Nil with the reason for anything else,
    /// such as an extra field (`tcp:10.0.0.5:3201:99`).
    public static func keys(_ s: String) -> Result<[(key: String, value: String)], ConfigFlagError> {
        if s.hasPrefix("serial:") {
            let rest = String(s.dropFirst("serial:".count))
            let parts = rest.split(separator: ",", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            var keys: [(key: String, value: String)] = [("terminal.transport", "serial"), ("terminal.device", parts[0])]
            if parts.count == 2 { keys.append(("terminal.line", parts[1])) }
            return .success(keys)
        }
        guard s.hasPrefix("tcp:") else { return .failure(ConfigFlagError(message: "expected serial:PATH[,BAUD 8N1] or tcp:ADDRESS[:PORT]")) }
        let rest = Substring(s.dropFirst("tcp:".count))
        var host: Substring
        var port: Substring?
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { return .failure(ConfigFlagError(message: "'[' without ']' in '\(s)'")) }
            host = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { return .failure(ConfigFlagError(message: "expected ':PORT' after ']' in '\(s)'")) }
                port = after.dropFirst()
            }
        } else {
            let colons = rest.filter { $0 == ":" }.count
            if colons > 1 {
                // More than one colon without brackets: an IPv6 address alone, or a mistake.
                guard TCP.isNumericAddress(String(rest)) else {
                    return .failure(ConfigFlagError(message: "'\(rest)' is neither ADDRESS:PORT nor an IPv6 address (write IPv6 with a port as [ADDRESS]:PORT)"))
                }
                host = rest
            } else if let colon = rest.firstIndex(of: ":") {
                host = rest[..<colon]
                port = rest[rest.index(after: colon)...]
            } else {
                host = rest
            }
        }
        guard !host.isEmpty else { return .failure(ConfigFlagError(message: "tcp: needs an address")) }
        var keys: [(key: String, value: String)] = [("terminal.transport", "tcp"), ("terminal.host", String(host))]
        if let port { keys.append(("terminal.port", String(port))) }
        return .success(keys)
    }
}

/// A command-line value that no configuration key can take.
public struct ConfigFlagError: Error, Equatable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
