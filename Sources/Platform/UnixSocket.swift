import Glibc

/// Who is on the other end of a Unix stream socket, as the kernel says (`SO_PEERCRED`, taken at
/// `connect`), never as the peer says: the diagnostic socket's authorisation rests on it.
public struct PeerCredentials: Equatable, Sendable, CustomStringConvertible {
    public var pid: Int32
    public var uid: UInt32
    public var gid: UInt32
    /// The peer's supplementary groups (`SO_PEERGROUPS`, Linux 4.13+); empty when the kernel
    /// cannot say, so that membership is then judged on the primary group alone.
    public var groups: [UInt32]

    public init(pid: Int32, uid: UInt32, gid: UInt32, groups: [UInt32] = []) {
        self.pid = pid; self.uid = uid; self.gid = gid; self.groups = groups
    }

    public var description: String { "uid \(uid) pid \(pid)" }
}

/// A listening Unix stream socket: bound by path (`UnixSocket.listen`) or handed over by systemd
/// (`SystemdSocketActivation`). Non-blocking and close-on-exec.
public struct UnixListener: Sendable {
    public let fd: FileDescriptor
    /// The path bound, nil for a socket systemd passed in (systemd owns its path).
    public let path: String?

    public init(fd: FileDescriptor, path: String?) { self.fd = fd; self.path = path }

    /// Accepts one pending connection as a non-blocking, close-on-exec socket; nil when none is pending.
    public func accept() throws(SystemError) -> FileDescriptor? {
        let flags = Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        while true {
            let raw = GNUExtensions.accept4(fd.rawValue, nil, nil, flags)
            if raw >= 0 { return FileDescriptor(rawValue: raw) }
            let code = Glibc.errno
            switch code {
            case EAGAIN: return nil
            case EINTR, ECONNABORTED, EPROTO: continue
            default:
                trapOnBug("accept4", code)
                throw SystemError(call: "accept4", errno: code)
            }
        }
    }

    /// Stops listening and removes the path it bound (a socket systemd passed keeps its path).
    public func close() {
        fd.close()
        if let path { _ = unlink(path) }
    }
}

/// Unix stream sockets: the diagnostic socket's listener, its client, and the peer's credentials.
public enum UnixSocket {
    /// The longest path a `sockaddr_un` holds, without its terminating NUL.
    public static let maxPathBytes = 107

    /// Binds and listens on `path` with `mode` (0660: the daemon's user and group). A socket left at
    /// the path by an earlier run is replaced; anything else there (a file, a directory, a symlink)
    /// is refused with EEXIST, so that a mistyped path never deletes a file.
    public static func listen(path: String, mode: mode_t = 0o660, backlog: Int32 = 16) throws(SystemError) -> UnixListener {
        var address = try socketAddress(path)
        var st = stat()
        if lstat(path, &st) == 0 {
            guard (st.st_mode & S_IFMT) == S_IFSOCK else { throw SystemError(call: "listen \(path): not a socket", errno: EEXIST) }
            _ = try retryingEINTR("unlink \(path)") { unlink(path) }
        }
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        let fd = FileDescriptor(rawValue: try retryingEINTR("socket(AF_UNIX)") { socket(AF_UNIX, type, 0) })
        do throws(SystemError) {
            _ = try withUnsafePointer(to: &address) { p in
                Result { () throws(SystemError) in
                    try retryingEINTR("bind \(path)") {
                        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd.rawValue, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
                    }
                }
            }.get()
            _ = try retryingEINTR("chmod \(path)") { chmod(path, mode) }
            _ = try retryingEINTR("listen \(path)") { Glibc.listen(fd.rawValue, backlog) }
        } catch {
            fd.close()
            _ = unlink(path)
            throw error
        }
        return UnixListener(fd: fd, path: path)
    }

    /// Connects to the socket at `path` (blocking, close-on-exec): the technicians' tool's side.
    public static func connect(path: String) throws(SystemError) -> FileDescriptor {
        var address = try socketAddress(path)
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        let fd = FileDescriptor(rawValue: try retryingEINTR("socket(AF_UNIX)") { socket(AF_UNIX, type, 0) })
        let rc = withUnsafePointer(to: &address) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd.rawValue, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        if rc != 0 {
            let code = Glibc.errno
            fd.close()
            throw SystemError(call: "connect \(path)", errno: code)
        }
        return fd
    }

    /// The peer's credentials as the kernel recorded them at connect time.
    public static func peerCredentials(_ fd: FileDescriptor) throws(SystemError) -> PeerCredentials {
        // struct ucred { pid_t pid; uid_t uid; gid_t gid; } (Glibc exposes it only under _GNU_SOURCE).
        var cred: (Int32, UInt32, UInt32) = (0, 0, 0)
        var length = socklen_t(MemoryLayout<(Int32, UInt32, UInt32)>.size)
        _ = try retryingEINTR("getsockopt(SO_PEERCRED)") { getsockopt(fd.rawValue, SOL_SOCKET, soPeerCred, &cred, &length) }
        var groups = [UInt32](repeating: 0, count: maxPeerGroups)
        var groupBytes = socklen_t(groups.count * MemoryLayout<UInt32>.size)
        let rc = groups.withUnsafeMutableBytes { getsockopt(fd.rawValue, SOL_SOCKET, soPeerGroups, $0.baseAddress, &groupBytes) }
        let found = rc == 0 ? Int(groupBytes) / MemoryLayout<UInt32>.size : 0
        return PeerCredentials(pid: cred.0, uid: cred.1, gid: cred.2, groups: Array(groups.prefix(found)))
    }

    /// The group id of `name` from the system's group database, nil when there is no such group.
    public static func groupID(named name: String) -> UInt32? {
        var group = Glibc.group()
        var result: UnsafeMutablePointer<Glibc.group>?
        var buffer = [CChar](repeating: 0, count: 16384)
        let rc = getgrnam_r(name, &group, &buffer, buffer.count, &result)
        guard rc == 0, result != nil else { return nil }
        return group.gr_gid
    }

    /// Supplementary groups read from a peer beyond this many are ignored (NGROUPS_MAX is 65536;
    /// a technician's account has a handful).
    public static let maxPeerGroups = 256
    static let soPeerCred: Int32 = 17      // SO_PEERCRED, asm-generic/socket.h
    static let soPeerGroups: Int32 = 59    // SO_PEERGROUPS, Linux 4.13

    static func socketAddress(_ path: String) throws(SystemError) -> sockaddr_un {
        let bytes = Array(path.utf8)
        guard !bytes.isEmpty, bytes.count <= maxPathBytes, !bytes.contains(0) else {
            throw SystemError(call: "socket path \(path) (1 to \(maxPathBytes) bytes)", errno: ENAMETOOLONG)
        }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        return address
    }
}

/// Sockets systemd opened for this process (socket activation: `LISTEN_PID`, `LISTEN_FDS`, the
/// descriptors from 3 on; sd_listen_fds(3)). The variables are removed once read, so that a child
/// never believes the sockets are its own.
public enum SystemdSocketActivation {
    /// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
    public static let firstDescriptor: Int32 = 3
    /// More passed descriptors than this are not believed (the unit passes one).
    public static let maxDescriptors = 16

    /// Why a passed socket was not used.
    public enum Problem: Error, Equatable, Sendable, CustomStringConvertible {
        /// `LISTEN_FDS` is not a number from 1 to `maxDescriptors`.
        case badCount(String)
        /// The descriptor is not a listening Unix stream socket.
        case notAUnixListener(Int32)

        public var description: String {
            switch self {
            case .badCount(let v): return "LISTEN_FDS=\(v) is not a count from 1 to \(SystemdSocketActivation.maxDescriptors)"
            case .notAUnixListener(let fd): return "passed descriptor \(fd) is not a listening Unix stream socket"
            }
        }
    }

    /// The passed listening Unix stream socket: nil when systemd passed none to this process (no
    /// `LISTEN_PID` naming it); a problem when what was passed is unusable. Only the first is used.
    public static func takeListener(environment: (String) -> String? = { getenv($0).map { String(cString: $0) } },
                                    pid: Int32 = getpid()) -> Result<UnixListener, Problem>? {
        defer {
            _ = unsetenv("LISTEN_PID"); _ = unsetenv("LISTEN_FDS"); _ = unsetenv("LISTEN_FDNAMES")
        }
        guard let pidText = environment("LISTEN_PID"), Int32(pidText) == pid else { return nil }
        let countText = environment("LISTEN_FDS") ?? ""
        guard let count = Int(countText), count >= 1, count <= maxDescriptors else { return .failure(.badCount(countText)) }
        let fd = FileDescriptor(rawValue: firstDescriptor)
        for extra in 1..<count { FileDescriptor(rawValue: firstDescriptor + Int32(extra)).close() }
        guard isUnixStreamListener(fd) else { return .failure(.notAUnixListener(fd.rawValue)) }
        do {
            try fd.setCloseOnExec()
            try fd.setNonBlocking()
        } catch { return .failure(.notAUnixListener(fd.rawValue)) }
        return .success(UnixListener(fd: fd, path: nil))
    }

    static func isUnixStreamListener(_ fd: FileDescriptor) -> Bool {
        func option(_ name: Int32) -> Int32? {
            var value: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            return getsockopt(fd.rawValue, SOL_SOCKET, name, &value, &length) == 0 ? value : nil
        }
        return option(SO_DOMAIN) == AF_UNIX && option(SO_TYPE) == Int32(SOCK_STREAM.rawValue) && option(SO_ACCEPTCONN) == 1
    }
}
