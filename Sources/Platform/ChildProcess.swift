import Glibc
import Timebase

/// A child process started with `posix_spawn`, with optional pipes to its
/// stdin and from its stdout; stderr is inherited so its diagnostics reach our log.
///
/// Test and demo support (it runs the simulated terminal as a real process).
/// A child still running when this object is destroyed is killed and reaped,
/// so a failing test never leaks processes.
public final class ChildProcess {
    /// The child's process id; only signalled while the child is unreaped, so a
    /// recycled pid is never hit.
    public let pid: pid_t
    /// Our (non-blocking) end of the child's stdin, until `closeStdin()`.
    public private(set) var stdinFD: FileDescriptor?
    /// Our (non-blocking) end of the child's stdout.
    public let stdoutFD: FileDescriptor?
    /// The exit status once reaped: the exit code, or 128 + signal number as shells report it.
    public private(set) var exitStatus: Int32?

    private var reaped = false
    private var lineBuffer: [UInt8] = []
    private var stdoutAtEnd = false

    private init(pid: pid_t, stdinFD: FileDescriptor?, stdoutFD: FileDescriptor?) {
        self.pid = pid
        self.stdinFD = stdinFD
        self.stdoutFD = stdoutFD
    }

    deinit {
        if !reaped {
            _ = kill(pid, SIGKILL)
            var status: Int32 = 0
            while waitpid(pid, &status, 0) == -1 && Glibc.errno == EINTR {}
        }
        stdinFD?.close()
        stdoutFD?.close()
    }

    /// Starts `path` (not searched in `PATH`) with `arguments` after argv[0]
    /// (which is `path`), and `environment` as `NAME=value` strings (`nil`: ours).
    ///
    /// The child starts with every signal at its default disposition and none
    /// blocked: ignoring `SIGPIPE` or blocking signals is this daemon's policy,
    /// not the child's. Descriptors other than 0-2 are closed in the child, except `passing`:
    /// those become the child's descriptors 3, 4, … in order (where systemd's socket activation
    /// puts the sockets it passes, `SD_LISTEN_FDS_START`); the caller's own stay open.
    public static func spawn(
        _ path: String, _ arguments: [String], environment: [String]? = nil,
        captureStdout: Bool = true, pipeStdin: Bool = true, standardErrorPath: String? = nil,
        standardError: FileDescriptor? = nil, passing: [FileDescriptor] = []
    ) throws(SystemError) -> ChildProcess {
        // Close-on-exec pipes, so a concurrent spawn elsewhere cannot inherit
        // them. Only our ends are made non-blocking: the child's must block, as
        // a program reading a non-blocking stdin takes EAGAIN for an error.
        var created: [FileDescriptor] = []
        do throws(SystemError) {
            var childStdin: FileDescriptor?, ourStdin: FileDescriptor?
            var childStdout: FileDescriptor?, ourStdout: FileDescriptor?
            if pipeStdin {
                let p = try FileDescriptor.pipe(flags: O_CLOEXEC)
                created += [p.read, p.write]
                try p.write.setNonBlocking()
                (childStdin, ourStdin) = (p.read, p.write)
            }
            if captureStdout {
                let p = try FileDescriptor.pipe(flags: O_CLOEXEC)
                created += [p.read, p.write]
                try p.read.setNonBlocking()
                (childStdout, ourStdout) = (p.write, p.read)
            }
            let pid = try launch(path, arguments, environment, stdin: childStdin, stdout: childStdout, stderrPath: standardErrorPath,
                                 stderr: standardError, passing: passing)
            childStdin?.close()
            childStdout?.close()
            return ChildProcess(pid: pid, stdinFD: ourStdin, stdoutFD: ourStdout)
        } catch {
            for fd in created { fd.close() }
            throw error
        }
    }

    private static func launch(
        _ path: String, _ arguments: [String], _ environment: [String]?,
        stdin: FileDescriptor?, stdout: FileDescriptor?, stderrPath: String?, stderr: FileDescriptor?, passing: [FileDescriptor]
    ) throws(SystemError) -> pid_t {
        // Each passed descriptor is first copied above the targets (close-on-exec), so that a
        // source numbered 3 or 4 is not overwritten by an earlier dup2 before it is itself moved.
        let firstUnpassed = 3 + Int32(passing.count)
        var staged: [FileDescriptor] = []
        defer { for fd in staged { fd.close() } }
        for fd in passing {
            staged.append(FileDescriptor(rawValue: try retryingEINTR("fcntl(F_DUPFD_CLOEXEC)") { fcntl(fd.rawValue, F_DUPFD_CLOEXEC, firstUnpassed) }))
        }
        var actions = posix_spawn_file_actions_t()
        var attributes = posix_spawnattr_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawnattr_init(&attributes)
        defer {
            posix_spawn_file_actions_destroy(&actions)
            posix_spawnattr_destroy(&attributes)
        }
        // dup2 clears close-on-exec on the target, so only 0 and 1 survive exec.
        if let stdin { posix_spawn_file_actions_adddup2(&actions, stdin.rawValue, STDIN_FILENO) }
        if let stdout { posix_spawn_file_actions_adddup2(&actions, stdout.rawValue, STDOUT_FILENO) }
        // Standard error appended to a file, opened in the child: no shell in between (whose own
        // signal dispositions would hide the program's).
        // Or a descriptor of the caller's (a pipe the caller may never read, in the log tests).
        if let stderr { posix_spawn_file_actions_adddup2(&actions, stderr.rawValue, STDERR_FILENO) }
        if let stderrPath { posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, stderrPath, O_WRONLY | O_CREAT | O_APPEND, 0o644) }
        // After the standard streams: their sources may be numbered 3 or 4 too.
        for (i, fd) in staged.enumerated() { posix_spawn_file_actions_adddup2(&actions, fd.rawValue, 3 + Int32(i)) }
        // Safety net for descriptors some library opened without O_CLOEXEC: a
        // stray pipe end held by a long-lived child would hide EOF from its owner.
        if let addCloseFrom = GNUExtensions.addCloseFrom { _ = addCloseFrom(&actions, firstUnpassed) }

        var noSignals = sigset_t(), allSignals = sigset_t()
        sigemptyset(&noSignals)
        sigfillset(&allSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        posix_spawnattr_setsigdefault(&attributes, &allSignals)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv = CStringArray([path] + arguments)
        let envp = environment.map(CStringArray.init)
        var pid: pid_t = 0
        let rc = argv.withPointers { argvPointers in
            if let envp {
                return envp.withPointers { posix_spawn(&pid, path, &actions, &attributes, argvPointers, $0) }
            }
            return posix_spawn(&pid, path, &actions, &attributes, argvPointers, environ)
        }
        // posix_spawn returns the error number instead of setting errno.
        guard rc == 0 else { throw SystemError(call: "posix_spawn \(path)", errno: rc) }
        return pid
    }

    /// The next line from the child's stdout, without its `\n`. `nil` on timeout
    /// (a partial line stays buffered) or at end of file; an unterminated last
    /// line is returned before end of file is reported.
    public func readLine(timeout: Duration) throws(SystemError) -> String? {
        guard let fd = stdoutFD else { preconditionFailure("readLine: stdout was not captured") }
        let deadline = MonotonicClock.now() + timeout
        while true {
            if let newline = lineBuffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: lineBuffer[..<newline], as: UTF8.self)
                lineBuffer.removeSubrange(...newline)
                return line
            }
            if stdoutAtEnd {
                guard !lineBuffer.isEmpty else { return nil }
                defer { lineBuffer.removeAll() }
                return String(decoding: lineBuffer, as: UTF8.self)
            }
            switch try fd.read(maxCount: 4096) {
            case .bytes(let bytes): lineBuffer += bytes
            case .endOfFile: stdoutAtEnd = true
            case .wouldBlock:
                let remaining = deadline - MonotonicClock.now()
                if remaining <= .zero { return nil }
                var entry = [pollfd(fd: fd.rawValue, events: Int16(POLLIN), revents: 0)]
                _ = try Poll.wait(&entry, timeout: remaining)
            }
        }
    }

    /// Writes `s` and a newline to the child's stdin within `timeout`.
    public func writeLine(_ s: String, timeout: Duration = .seconds(5)) throws(SystemError) {
        guard let fd = stdinFD else { preconditionFailure("writeLine: stdin is not piped or already closed") }
        try fd.writeAll(Array(s.utf8) + [UInt8(ascii: "\n")], timeout: timeout)
    }

    /// Closes the child's stdin, so it reads end of file.
    public func closeStdin() {
        stdinFD?.close()
        stdinFD = nil
    }

    /// Sends `signo` unless the child has already been reaped.
    public func signal(_ signo: Int32) {
        guard !reaped else { return }
        _ = kill(pid, signo)
    }

    /// Waits up to `timeout` for the child to exit and reaps it; returns the
    /// exit status (128 + signal if killed), or `nil` if it is still running.
    ///
    /// Sleeps in short steps between `waitpid(WNOHANG)` calls: acceptable for
    /// test and demo support, and it avoids a process-wide `SIGCHLD` handler.
    public func wait(timeout: Duration) -> Int32? {
        if reaped { return exitStatus }
        let deadline = MonotonicClock.now() + timeout
        var pause = Duration.milliseconds(1)
        while true {
            var status: Int32 = 0
            let rc = waitpid(pid, &status, WNOHANG)
            if rc == pid {
                reaped = true
                exitStatus = Self.decode(status)
                return exitStatus
            }
            if rc == -1 {
                let code = Glibc.errno
                if code == EINTR { continue }
                // ECHILD: reaped behind our back (SIGCHLD ignored); the status is lost.
                precondition(code == ECHILD, "waitpid: errno \(code)")
                reaped = true
                return nil
            }
            let remaining = deadline - MonotonicClock.now()
            if remaining <= .zero { return nil }
            var none: [pollfd] = []
            _ = try? Poll.wait(&none, timeout: min(pause, remaining))
            pause = min(pause * 2, .milliseconds(20))
        }
    }

    /// Asks the child to exit (`SIGTERM`), and kills it if it has not within 2 s.
    public func terminate() {
        guard !reaped else { return }
        signal(SIGTERM)
        if wait(timeout: .seconds(2)) != nil || reaped { return }
        signal(SIGKILL)
        _ = wait(timeout: .seconds(5))
    }

    /// The directory holding this executable, from `/proc/self/exe`; tests use
    /// it to find sibling binaries such as `terminal-sim`. `"."` if unreadable.
    public static func executableDirectory() -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX))
        let length = readlink("/proc/self/exe", &buffer, buffer.count)
        guard length > 0 else { return "." }
        let path = buffer[..<length].map { UInt8(bitPattern: $0) }
        guard let slash = path.lastIndex(of: UInt8(ascii: "/")) else { return "." }
        return slash == 0 ? "/" : String(decoding: path[..<slash], as: UTF8.self)
    }

    /// Shell-style status: the exit code, or 128 + the terminating signal.
    private static func decode(_ status: Int32) -> Int32 {
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }
}

/// A NULL-terminated `char *[]` built from Swift strings, freed on deinit.
private final class CStringArray {
    private var pointers: [UnsafeMutablePointer<CChar>?]

    init(_ strings: [String]) {
        pointers = strings.map { strdup($0) } + [nil]
    }

    deinit {
        for pointer in pointers { free(pointer) }
    }

    func withPointers<R>(_ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
        pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
    }
}
