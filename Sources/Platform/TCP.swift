import Glibc
import Timebase

/// Outgoing TCP connections for terminals reached over Ethernet.
public enum TCP {
    /// Connects to `host:port`, trying each address in turn until one
    /// accepts or `timeout` runs out, and returns a non-blocking, close-on-exec
    /// socket with `TCP_NODELAY` and keepalive on.
    ///
    /// `host` must be a numeric address (`isNumericAddress`): names are refused, never
    /// resolved, because resolution blocks the calling thread (the event loop) for as long
    /// as DNS takes.
    public static func connect(host: String, port: UInt16, timeout: Duration) throws(SystemError) -> FileDescriptor {
        let deadline = MonotonicClock.now() + timeout
        let label = "connect \(host) port \(port)"
        return try withAddresses(host: host, port: port, passive: false) { (addresses) throws(SystemError) in
            var lastError = SystemError(call: label, errno: EADDRNOTAVAIL)
            for address in addresses {
                do throws(SystemError) {
                    return try connect(address.pointee, deadline: deadline, label: label)
                } catch {
                    lastError = error
                }
                if MonotonicClock.now() >= deadline { break }
            }
            throw lastError
        }
    }

    /// Starts a connection without waiting for the handshake, so an event loop can keep
    /// serving its other fds and timers: watch the fd for writability, then `finishConnect`.
    /// `host` must be a numeric address (see `connect`); a name fails at once with `getaddrinfo`'s error.
    public static func startConnect(host: String, port: UInt16) throws(SystemError) -> (fd: FileDescriptor, connected: Bool) {
        let label = "connect \(host) port \(port)"
        return try withAddresses(host: host, port: port, passive: false) { (addresses) throws(SystemError) in
            guard let address = addresses.first?.pointee else { throw SystemError(call: label, errno: EADDRNOTAVAIL) }
            let fd = try Socket.open(family: address.ai_family, protocol: address.ai_protocol)
            if Glibc.connect(fd.rawValue, address.ai_addr, address.ai_addrlen) == 0 {
                do throws(SystemError) { try Socket.configureStream(fd) } catch { fd.close(); throw error }
                return (fd, true)
            }
            let code = Glibc.errno
            // EINTR: the handshake carries on in the kernel, exactly like EINPROGRESS.
            guard code == EINPROGRESS || code == EINTR else {
                fd.close()
                trapOnBug(label, code)
                throw SystemError(call: label, errno: code)
            }
            return (fd, false)
        }
    }

    /// Completes a connection begun by `startConnect` once its fd polled writable: reads the
    /// handshake's outcome (SO_ERROR) and sets the stream options. The caller closes the fd on error.
    public static func finishConnect(_ fd: FileDescriptor, label: String) throws(SystemError) {
        let code = try Socket.intOption(fd, SOL_SOCKET, SO_ERROR, "SO_ERROR")
        if code != 0 { throw SystemError(call: label, errno: code) }
        try Socket.configureStream(fd)
    }

    private static func connect(_ address: addrinfo, deadline: Instant, label: String) throws(SystemError) -> FileDescriptor {
        let fd = try Socket.open(family: address.ai_family, protocol: address.ai_protocol)
        do throws(SystemError) {
            // Not retried on EINTR: the handshake carries on in the kernel and a
            // second connect() would fail with EALREADY. Treat it as in progress.
            if Glibc.connect(fd.rawValue, address.ai_addr, address.ai_addrlen) == -1 {
                let code = Glibc.errno
                guard code == EINPROGRESS || code == EINTR else {
                    trapOnBug(label, code)
                    throw SystemError(call: label, errno: code)
                }
                try awaitConnection(fd, deadline: deadline, label: label)
            }
            try Socket.configureStream(fd)
            return fd
        } catch {
            fd.close()
            throw error
        }
    }

    private static func awaitConnection(_ fd: FileDescriptor, deadline: Instant, label: String) throws(SystemError) {
        var entry = [pollfd(fd: fd.rawValue, events: Int16(POLLOUT), revents: 0)]
        while entry[0].revents == 0 {
            let remaining = deadline - MonotonicClock.now()
            guard remaining > .zero else { throw SystemError(call: label, errno: ETIMEDOUT) }
            _ = try Poll.wait(&entry, timeout: remaining)
        }
        let code = try Socket.intOption(fd, SOL_SOCKET, SO_ERROR, "SO_ERROR")
        if code != 0 { throw SystemError(call: label, errno: code) }
    }

    /// Whether `host` is an address `connect` and `TCPListener.listen` take: a dotted-quad IPv4
    /// address (no leading zeros, which `inet_aton` would read as octal) or an IPv6 address, the
    /// latter optionally with a `%zone` (interface name or index). No brackets, no spaces, no names.
    public static func isNumericAddress(_ host: String) -> Bool {
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 { return true }
        var address = Substring(host)
        if let percent = host.firstIndex(of: "%") {
            let zone = host.utf8[host.utf8.index(after: percent)...]
            let allowed = { (b: UInt8) in (b >= 0x30 && b <= 0x39) || (b | 0x20 >= 0x61 && b | 0x20 <= 0x7A) || b == 0x2D || b == 0x2E || b == 0x5F }
            guard !zone.isEmpty, zone.count < 16, zone.allSatisfy(allowed) else { return false }   // IF_NAMESIZE
            address = host[..<percent]
        }
        var v6 = in6_addr()
        return inet_pton(AF_INET6, String(address), &v6) == 1
    }

    /// The addresses of the numeric `host` (`AI_NUMERICHOST`: a name is an error, never a DNS
    /// query that would block the event loop), handed to `body` in getaddrinfo's order.
    static func withAddresses<T>(
        host: String, port: UInt16, passive: Bool,
        _ body: ([UnsafeMutablePointer<addrinfo>]) throws(SystemError) -> T
    ) throws(SystemError) -> T {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | (passive ? AI_PASSIVE : 0)
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &list)
        guard rc == 0 else {
            let code: Int32 = switch rc {
            case EAI_SYSTEM: Glibc.errno
            case EAI_AGAIN: EAGAIN
            case EAI_MEMORY: ENOMEM
            case EAI_NONAME, EAI_FAMILY, EAI_SERVICE: ENOENT
            default: EINVAL
            }
            let reason = rc == EAI_NONAME
                ? "not a numeric IP address (host names are not resolved: resolution would block the event loop)"
                : String(decoding: UnsafeRawBufferPointer(start: gai_strerror(rc), count: strlen(gai_strerror(rc))), as: UTF8.self)
            throw SystemError(call: "getaddrinfo \(host): \(reason)", errno: code)
        }
        defer { freeaddrinfo(list) }
        var addresses: [UnsafeMutablePointer<addrinfo>] = []
        var next = list
        while let entry = next {
            addresses.append(entry)
            next = entry.pointee.ai_next
        }
        return try body(addresses)
    }
}

/// A listening TCP socket, used by the simulated terminal and by tests.
public struct TCPListener: Sendable {
    /// The listening socket; non-blocking, so watch it for readability before `accept()`.
    public let fd: FileDescriptor
    /// The bound port; the kernel's choice when `listen` was given port 0.
    public let port: UInt16

    /// Binds and listens on `host:port` (`SO_REUSEADDR`, so a restarted simulator
    /// can rebind while old connections sit in TIME_WAIT).
    public static func listen(host: String = "127.0.0.1", port: UInt16, backlog: Int32 = 16) throws(SystemError) -> TCPListener {
        try TCP.withAddresses(host: host, port: port, passive: true) { (addresses) throws(SystemError) in
            guard let address = addresses.first?.pointee else {
                throw SystemError(call: "getaddrinfo \(host)", errno: ENOENT)
            }
            let fd = try Socket.open(family: address.ai_family, protocol: address.ai_protocol)
            do throws(SystemError) {
                try Socket.setIntOption(fd, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR")
                _ = try retryingEINTR("bind \(host) port \(port)") { bind(fd.rawValue, address.ai_addr, address.ai_addrlen) }
                _ = try retryingEINTR("listen") { Glibc.listen(fd.rawValue, backlog) }
                return TCPListener(fd: fd, port: try boundPort(fd))
            } catch {
                fd.close()
                throw error
            }
        }
    }

    /// Accepts one pending connection as a non-blocking, close-on-exec socket
    /// with `TCP_NODELAY`; `nil` when none is pending.
    public func accept() throws(SystemError) -> FileDescriptor? {
        let flags = Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        while true {
            let raw = GNUExtensions.accept4(fd.rawValue, nil, nil, flags)
            if raw >= 0 {
                let connection = FileDescriptor(rawValue: raw)
                do {
                    try Socket.configureStream(connection)
                } catch {
                    connection.close()
                    throw error
                }
                return connection
            }
            let code = Glibc.errno
            switch code {
            case EAGAIN: return nil
            // accept(2): the connection died in the backlog; the next one may be fine.
            case EINTR, ECONNABORTED, EPROTO, ENETDOWN, ENOPROTOOPT, EHOSTDOWN, ENONET,
                 EHOSTUNREACH, EOPNOTSUPP, ENETUNREACH:
                continue
            default:
                trapOnBug("accept4", code)
                throw SystemError(call: "accept4", errno: code)
            }
        }
    }

    /// Stops listening.
    public func close() { fd.close() }

    private static func boundPort(_ fd: FileDescriptor) throws(SystemError) -> UInt16 {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = try withUnsafeMutablePointer(to: &storage) { storagePointer in
            Result { () throws(SystemError) in
                try storagePointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { (address) throws(SystemError) in
                    try retryingEINTR("getsockname") { getsockname(fd.rawValue, address, &length) }
                }
            }
        }.get()
        // Both sockaddr_in and sockaddr_in6 keep the port, in network order, right after the family.
        let networkOrder = withUnsafeBytes(of: &storage) { $0.load(fromByteOffset: 2, as: UInt16.self) }
        return UInt16(bigEndian: networkOrder)
    }
}

/// Socket plumbing shared by `TCP` and `TCPListener`.
enum Socket {
    static func open(family: Int32, protocol proto: Int32) throws(SystemError) -> FileDescriptor {
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        return FileDescriptor(rawValue: try retryingEINTR("socket") { socket(family, type, proto) })
    }

    /// Small frames must leave at once (Nagle would hold an ACK for up to 40 ms),
    /// and a peer that vanished without a FIN (power cut, cable pulled) must be
    /// noticed in about a minute rather than the kernel default of two hours.
    static func configureStream(_ fd: FileDescriptor) throws(SystemError) {
        let tcp = Int32(IPPROTO_TCP)
        try setIntOption(fd, tcp, TCP_NODELAY, 1, "TCP_NODELAY")
        try setIntOption(fd, SOL_SOCKET, SO_KEEPALIVE, 1, "SO_KEEPALIVE")
        try setIntOption(fd, tcp, TCP_KEEPIDLE, 30, "TCP_KEEPIDLE")
        try setIntOption(fd, tcp, TCP_KEEPINTVL, 10, "TCP_KEEPINTVL")
        try setIntOption(fd, tcp, TCP_KEEPCNT, 3, "TCP_KEEPCNT")
    }

    static func setIntOption(_ fd: FileDescriptor, _ level: Int32, _ name: Int32, _ value: Int32, _ label: String) throws(SystemError) {
        var value = value
        _ = try retryingEINTR("setsockopt(\(label))") {
            setsockopt(fd.rawValue, level, name, &value, socklen_t(MemoryLayout<Int32>.size))
        }
    }

    static func intOption(_ fd: FileDescriptor, _ level: Int32, _ name: Int32, _ label: String) throws(SystemError) -> Int32 {
        var value: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        _ = try retryingEINTR("getsockopt(\(label))") { getsockopt(fd.rawValue, level, name, &value, &length) }
        return value
    }
}
