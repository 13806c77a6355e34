import Glibc

/// glibc functions that Swift's Glibc module does not expose, because the
/// headers declare them only under `_GNU_SOURCE`/`_XOPEN_SOURCE`. They exist in
/// every glibc this daemon supports (2.34+); resolving them by name keeps the C
/// calling convention and avoids a C shim target. They matter because they let
/// `O_CLOEXEC` be set atomically at creation: the create-then-`fcntl` fallback
/// leaves a window in which a concurrent `posix_spawn` leaks the descriptor into
/// a child (and a leaked pty master would stop the daemon ever seeing hang-up).
enum GNUExtensions {
    typealias Pipe2 = @convention(c) (UnsafeMutablePointer<Int32>?, Int32) -> Int32
    typealias Accept4 = @convention(c) (
        Int32, UnsafeMutablePointer<sockaddr>?, UnsafeMutablePointer<socklen_t>?, Int32
    ) -> Int32
    typealias UnlockPT = @convention(c) (Int32) -> Int32
    typealias PTSNameR = @convention(c) (Int32, UnsafeMutablePointer<CChar>?, Int) -> Int32
    typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, Int32) -> Int32

    static let pipe2: Pipe2 = required("pipe2")
    static let accept4: Accept4 = required("accept4")
    static let unlockpt: UnlockPT = required("unlockpt")
    static let ptsname_r: PTSNameR = required("ptsname_r")
    /// Optional: only an extra safety net against descriptors leaked by code that
    /// forgot `O_CLOEXEC`, so a libc without it still spawns children.
    static let addCloseFrom: AddCloseFrom? = optional("posix_spawn_file_actions_addclosefrom_np")

    private static func optional<Function>(_ name: String) -> Function? {
        // A nil handle is glibc's RTLD_DEFAULT: search the global symbol scope.
        guard let symbol = dlsym(nil, name) else { return nil }
        return unsafeBitCast(symbol, to: Function.self)
    }

    private static func required<Function>(_ name: String) -> Function {
        guard let function: Function = optional(name) else {
            fatalError("glibc lacks \(name); paybridge needs glibc 2.34 or later")
        }
        return function
    }
}
