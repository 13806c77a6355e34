import Glibc
import Testing
import Platform

/// The state directory's checks (issue 11 item 6), on real directories and files.
@Suite(.serialized) struct StateDirectoryTests {
    let base: String

    init() throws {
        var template = Array("/tmp/state-dir-tests-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw SystemError(call: "mkdtemp", errno: errno) }
        base = String(cString: made)
    }

    func directory(_ name: String, mode: mode_t) -> String {
        let path = base + "/" + name
        #expect(mkdir(path, 0o700) == 0)
        #expect(chmod(path, mode) == 0)   // exactly, whatever the umask
        return path
    }

    @Test func aMissingDirectoryIsCreatedPrivate() throws {
        let path = base + "/fresh"
        try StateDirectory.prepare(path)
        var info = stat()
        #expect(stat(path, &info) == 0 && info.st_mode & 0o7777 == 0o750)
    }

    @Test func aPrivateDirectoryIsAccepted() throws {
        try StateDirectory.prepare(directory("private", mode: 0o750))
        try StateDirectory.prepare(directory("readable", mode: 0o755))
        try StateDirectory.prepare(directory("own", mode: 0o700))
    }

    @Test func aDirectoryOthersMayWriteIsRefused() {
        for mode: mode_t in [0o777, 0o770, 0o757, 0o1777] {
            let path = directory("open-\(String(mode, radix: 8))", mode: mode)
            #expect(throws: StateDirectoryError.writableByOthers(path: path, mode: UInt32(mode))) { try StateDirectory.prepare(path) }
        }
    }

    @Test func aDirectoryOfAnotherUserIsRefused() {
        guard geteuid() == 0 else { return }   // only root can give it away
        let path = directory("nobody", mode: 0o750)
        #expect(chown(path, 65534, 65534) == 0)
        #expect(throws: StateDirectoryError.wrongOwner(path: path, owner: 65534)) { try StateDirectory.prepare(path) }
    }

    @Test func theLedgerSubdirectoryIsCheckedToo() {
        let state = directory("with-ledger", mode: 0o750)
        let ledger = state + "/ledger"
        #expect(mkdir(ledger, 0o777) == 0 && chmod(ledger, 0o777) == 0)
        #expect(throws: StateDirectoryError.writableByOthers(path: ledger, mode: 0o777)) { try StateDirectory.prepare(state) }

        let linked = directory("linked-ledger", mode: 0o750)
        let elsewhere = directory("elsewhere", mode: 0o750)
        #expect(symlink(elsewhere, linked + "/ledger") == 0)
        #expect(throws: StateDirectoryError.symbolicLink(path: linked + "/ledger")) { try StateDirectory.prepare(linked) }
    }

    @Test func aFileWhereTheDirectoryShouldBeIsRefused() throws {
        let path = base + "/file"
        let fd = try FileDescriptor.open(path, flags: O_WRONLY | O_CREAT, mode: 0o600)
        fd.close()
        #expect(throws: StateDirectoryError.notADirectory(path: path)) { try StateDirectory.prepare(path) }
    }

    @Test func appendingNeverFollowsASymlinkOrAHardLink() throws {
        let state = directory("files", mode: 0o750)
        let victim = base + "/victim"
        let v = try FileDescriptor.open(victim, flags: O_WRONLY | O_CREAT, mode: 0o644)
        try v.writeAll(Array("precious\n".utf8), timeout: .seconds(1))
        v.close()
        #expect(symlink(victim, state + "/dead-letters.jsonl") == 0)
        #expect(throws: StateDirectoryError.symbolicLink(path: state + "/dead-letters.jsonl")) {
            _ = try StateDirectory.openForAppend(state + "/dead-letters.jsonl")
        }
        #expect(link(victim, state + "/hard.jsonl") == 0)
        #expect(throws: StateDirectoryError.hardLinked(path: state + "/hard.jsonl", links: 2)) {
            _ = try StateDirectory.openForAppend(state + "/hard.jsonl")
        }
        #expect(mkfifo(state + "/fifo.jsonl", 0o600) == 0)
        #expect(throws: StateDirectoryError.notRegularFile(path: state + "/fifo.jsonl")) {
            _ = try StateDirectory.openForAppend(state + "/fifo.jsonl")
        }
        var info = stat()
        #expect(stat(victim, &info) == 0 && info.st_size == 9, "the victim was written to")
        // An ordinary file is created and appended to.
        let fd = try StateDirectory.openForAppend(state + "/ok.jsonl")
        try fd.writeAll(Array("x\n".utf8), timeout: .seconds(1))
        fd.close()
        #expect(stat(state + "/ok.jsonl", &info) == 0 && info.st_size == 2 && info.st_mode & 0o777 == 0o640)
    }
}
