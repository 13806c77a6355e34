import Glibc

/// Why the state directory, or a file the daemon keeps in it, was refused.
public enum StateDirectoryError: Error, Equatable, CustomStringConvertible {
    /// The directory did not exist and could not be created; mkdir's errno.
    case cannotCreate(path: String, errno: Int32)
    /// `stat`/`lstat` or `open` failed for another reason than the ones below; the errno.
    case unreadable(path: String, errno: Int32)
    /// Something other than a directory is at the path.
    case notADirectory(path: String)
    /// A symbolic link where the daemon keeps its own directory or file (`ledger/`,
    /// `dead-letters.jsonl`): whoever planted it chooses what the daemon (as root) writes to.
    case symbolicLink(path: String)
    /// Group or others may write to it (`mode & 0o022 != 0`): they could plant links or
    /// replace files the daemon trusts. `chmod 750` it.
    case writableByOthers(path: String, mode: UInt32)
    /// Owned by another user than the one the daemon runs as.
    case wrongOwner(path: String, owner: UInt32)
    /// A file of the daemon's that is not a regular file (a FIFO, device or directory).
    case notRegularFile(path: String)
    /// A file of the daemon's with more than one hard link: another name elsewhere points at it.
    case hardLinked(path: String, links: Int)

    public var description: String {
        switch self {
        case .cannotCreate(let path, let errno): return "\(path): cannot be created: \(String(cString: strerror(errno)))"
        case .unreadable(let path, let errno): return "\(path): \(String(cString: strerror(errno)))"
        case .notADirectory(let path): return "\(path): not a directory"
        case .symbolicLink(let path): return "\(path): a symbolic link where the daemon keeps its own files; refused"
        case .writableByOthers(let path, let mode):
            return "\(path): mode \(String(mode & 0o7777, radix: 8)) lets group or others write to it; it must be 750 or stricter"
        case .wrongOwner(let path, let owner): return "\(path): owned by uid \(owner), not by uid \(geteuid()) that runs the daemon"
        case .notRegularFile(let path): return "\(path): not a regular file"
        case .hardLinked(let path, let links): return "\(path): has \(links) hard links; refused"
        }
    }
}

/// The daemon's state directory (`state.directory`): the ledger and the dead letters live
/// there, written by a daemon that usually runs as root. Whoever can write to that directory
/// can plant a symlink the daemon would follow, so the directory must be the daemon's alone,
/// and every file in it is opened without following symlinks.
public enum StateDirectory {
    /// The mode a missing state directory is created with.
    public static let mode: mode_t = 0o750

    /// Creates `path` (mode 0750) when missing, then checks it: a directory (the path itself may
    /// be a symlink an administrator made, e.g. to another disk; its target is judged), owned by
    /// this process's effective user, not writable by group or others. Each of `subdirectories`
    /// that exists must be a real directory (no symlink) under the same rules.
    public static func prepare(_ path: String, subdirectories: [String] = ["ledger"]) throws(StateDirectoryError) {
        if Glibc.mkdir(path, mode) != 0, errno != EEXIST { throw .cannotCreate(path: path, errno: errno) }
        try check(path, followingSymlink: true)
        for name in subdirectories {
            let sub = path + "/" + name
            var info = stat()
            if lstat(sub, &info) != 0 {
                if errno == ENOENT { continue }
                throw .unreadable(path: sub, errno: errno)
            }
            try check(sub, followingSymlink: false)
        }
    }

    /// The checks of `prepare` on one existing directory.
    public static func check(_ path: String, followingSymlink: Bool) throws(StateDirectoryError) {
        var info = stat()
        let status = followingSymlink ? stat(path, &info) : lstat(path, &info)
        guard status == 0 else { throw .unreadable(path: path, errno: errno) }
        if info.st_mode & S_IFMT == S_IFLNK { throw .symbolicLink(path: path) }
        guard info.st_mode & S_IFMT == S_IFDIR else { throw .notADirectory(path: path) }
        guard info.st_uid == geteuid() else { throw .wrongOwner(path: path, owner: info.st_uid) }
        guard info.st_mode & 0o022 == 0 else { throw .writableByOthers(path: path, mode: info.st_mode & 0o7777) }
    }

    /// Opens (creating it with `mode` when missing) a file the daemon appends to in its state
    /// directory: never through a symlink (`O_NOFOLLOW`), never blocking on a FIFO
    /// (`O_NONBLOCK`), close-on-exec; then a regular file of this user with one link.
    public static func openForAppend(_ path: String, mode: mode_t = 0o640) throws(StateDirectoryError) -> FileDescriptor {
        let fd: FileDescriptor
        do {
            fd = try FileDescriptor.open(path, flags: O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY, mode: mode)
        } catch {
            // ELOOP: the last component is a symlink.
            if error.errno == ELOOP { throw .symbolicLink(path: path) }
            if error.errno == ENXIO || error.errno == EISDIR { throw .notRegularFile(path: path) }
            throw .unreadable(path: path, errno: error.errno)
        }
        var info = stat()
        let problem: StateDirectoryError?
        if fstat(fd.rawValue, &info) != 0 {
            problem = .unreadable(path: path, errno: errno)
        } else if info.st_mode & S_IFMT != S_IFREG {
            problem = .notRegularFile(path: path)
        } else if info.st_nlink > 1 {
            problem = .hardLinked(path: path, links: Int(info.st_nlink))
        } else if info.st_uid != geteuid() {
            problem = .wrongOwner(path: path, owner: info.st_uid)
        } else {
            problem = nil
        }
        if let problem {
            fd.close()
            throw problem
        }
        return fd
    }
}
