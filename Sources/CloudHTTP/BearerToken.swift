import Glibc
import Platform

/// Why a secret file (the bearer token, the TLS client key, or a client certificate file that
/// holds its key) was refused.
public enum BearerTokenError: Error, Equatable, CustomStringConvertible {
    /// Nothing at the path (`ENOENT`, or a directory on the way is missing: `ENOTDIR`).
    case missing(path: String)
    /// It exists but could not be opened or read; the errno (`EACCES`, `EIO`, ...).
    case unreadable(path: String, errno: Int32)
    /// Not a regular file: a directory, FIFO, socket or device.
    case notRegularFile(path: String)
    /// Group or others may read or write it (`mode & 0o077 != 0`); `chmod 600` it.
    case permissionsTooOpen(path: String, mode: UInt32)
    /// Owned by neither this process's effective user nor root.
    case wrongOwner(path: String, owner: UInt32)
    /// Larger than `BearerToken.maxBytes`.
    case tooLarge(path: String, bytes: Int)
    /// Empty, or whitespace only.
    case empty(path: String)
    /// After trimming, a byte outside visible ASCII (0x21–0x7E), e.g. an inner space
    /// or line break: it would corrupt or split the `Authorization` header.
    case invalidCharacters(path: String)

    public var description: String {
        switch self {
        case .missing(let path): return "\(path): no such file"
        case .unreadable(let path, let errno): return "\(path): cannot be read (errno \(errno))"
        case .notRegularFile(let path): return "\(path): not a regular file"
        case .permissionsTooOpen(let path, let mode):
            return "\(path): mode \(String(mode & 0o7777, radix: 8)) lets group or others at it; it must be 600 or stricter"
        case .wrongOwner(let path, let owner): return "\(path): owned by uid \(owner), not by this user or root"
        case .tooLarge(let path, let bytes): return "\(path): \(bytes) bytes, more than \(BearerToken.maxBytes)"
        case .empty(let path): return "\(path): empty"
        case .invalidCharacters(let path): return "\(path): the token contains spaces, control or non-ASCII characters"
        }
    }
}

/// Loads the uplink's bearer token from a file that only this service may read.
public enum BearerToken {
    /// The largest token file accepted.
    public static let maxBytes = 8192

    /// Reads the token at `path`: a regular file (symlinks are followed), owned by
    /// this process's effective user or by root, with no permission bits for group
    /// or others, at most 8 KiB. Leading and trailing whitespace (the usual final
    /// newline) is trimmed; what remains must be non-empty visible ASCII.
    ///
    /// The checks are made on the opened descriptor (`fstat`), so the file cannot
    /// be swapped between the check and the read.
    public static func load(path: String) throws(BearerTokenError) -> String {
        let (fd, info) = try SecretFile.open(path)
        defer { fd.close() }
        guard info.st_size <= maxBytes else { throw .tooLarge(path: path, bytes: Int(info.st_size)) }

        // Read to end of file (one byte past the limit, in case it grew since fstat).
        var bytes: [UInt8] = []
        while bytes.count <= maxBytes {
            let chunk: FileDescriptor.ReadChunk
            do { chunk = try fd.read(maxCount: maxBytes + 1 - bytes.count) } catch {
                throw .unreadable(path: path, errno: error.errno)
            }
            switch chunk {
            case .bytes(let more): bytes += more
            case .endOfFile, .wouldBlock: return try token(from: bytes, path: path)
            }
        }
        throw .tooLarge(path: path, bytes: bytes.count)
    }

    /// Trims ASCII whitespace and checks what remains.
    static func token(from bytes: [UInt8], path: String) throws(BearerTokenError) -> String {
        func isSpace(_ b: UInt8) -> Bool { b == 0x20 || (0x09...0x0D).contains(b) }
        guard let first = bytes.firstIndex(where: { !isSpace($0) }),
              let last = bytes.lastIndex(where: { !isSpace($0) }) else { throw .empty(path: path) }
        let token = bytes[first...last]
        guard token.allSatisfy({ (0x21...0x7E).contains($0) }) else { throw .invalidCharacters(path: path) }
        return String(decoding: token, as: UTF8.self)
    }
}

/// The checks every secret file gets before the daemon uses it: the bearer token, the TLS client
/// key, and the client certificate when it holds the key too (libcurl reads the key from it).
/// A private key anyone on the charger can read is a station identity anyone can take.
public enum SecretFile {
    /// Opens `path` for reading and checks, on the opened descriptor (`fstat`, so the file cannot
    /// be swapped between check and read): a regular file (a symlink is followed and its target
    /// judged), owned by this process's effective user or by root, no permission bits for group
    /// or others. The caller closes the descriptor.
    static func open(_ path: String) throws(BearerTokenError) -> (FileDescriptor, stat) {
        let fd: FileDescriptor
        do {
            fd = try FileDescriptor.open(path, flags: O_RDONLY | O_NONBLOCK | O_NOCTTY)
        } catch {
            if error.errno == ENOENT || error.errno == ENOTDIR { throw .missing(path: path) }
            throw .unreadable(path: path, errno: error.errno)
        }
        var info = stat()
        if fstat(fd.rawValue, &info) != 0 {
            let code = Glibc.errno
            fd.close()
            throw .unreadable(path: path, errno: code)
        }
        let problem: BearerTokenError?
        if info.st_mode & S_IFMT != S_IFREG {
            problem = .notRegularFile(path: path)
        } else if info.st_mode & 0o077 != 0 {
            problem = .permissionsTooOpen(path: path, mode: info.st_mode & 0o7777)
        } else if info.st_uid != geteuid() && info.st_uid != 0 {
            problem = .wrongOwner(path: path, owner: info.st_uid)
        } else {
            problem = nil
        }
        if let problem {
            fd.close()
            throw problem
        }
        return (fd, info)
    }

    /// Checks `path` as `open` does, without reading it (libcurl reads the key itself).
    public static func check(_ path: String) throws(BearerTokenError) {
        let (fd, _) = try open(path)
        fd.close()
    }
}
