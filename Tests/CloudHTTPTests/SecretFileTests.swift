import Glibc
import Platform
import Testing
import Timebase
@testable import CloudHTTP

/// The client key gets the bearer token's checks (issue 11 item 5): real files in a fresh
/// directory, at the modes and shapes an installer gets wrong.
@Suite(.serialized) struct SecretFileTests {
    let fixture = Fixture.shared
    let dir: String

    init() throws {
        var template = Array("/tmp/secret-files-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw SystemError(call: "mkdtemp", errno: errno) }
        dir = String(cString: made)
    }

    /// A copy of the fixture's client key at `mode`.
    func key(_ name: String, mode: mode_t, text: String? = nil) throws -> String {
        let path = dir + "/" + name
        try Fixture.write(path, text ?? (try read(fixture.clientKey)), mode: mode)
        // The umask may have masked bits off; set exactly what the test means.
        #expect(chmod(path, mode) == 0)
        return path
    }

    func read(_ path: String) throws -> String {
        let fd = try FileDescriptor.open(path, flags: O_RDONLY)
        defer { fd.close() }
        var bytes: [UInt8] = []
        while case .bytes(let more) = try fd.read(maxCount: 4096) { bytes += more }
        return String(decoding: bytes, as: UTF8.self)
    }

    func setUp(clientKey: String?, certificate: String? = nil) throws(HTTPClientSetupError) {
        let loop: EventLoop
        do { loop = try EventLoop() } catch { throw .curl("event loop: \(error)") }
        _ = try HTTPClient(loop: loop, tls: TLSSettings(caFile: fixture.caFile, clientCertificate: certificate ?? fixture.clientCert,
                                                        clientKey: clientKey))
    }

    @Test func aWorldReadableKeyIsRefused() throws {
        let path = try key("open.key", mode: 0o644)
        #expect(throws: HTTPClientSetupError.unprotectedKey(.permissionsTooOpen(path: path, mode: 0o644))) { try setUp(clientKey: path) }
        let group = try key("group.key", mode: 0o640)
        #expect(throws: HTTPClientSetupError.unprotectedKey(.permissionsTooOpen(path: group, mode: 0o640))) { try setUp(clientKey: group) }
    }

    @Test func aPrivateKeyIsAccepted() throws {
        let path = try key("private.key", mode: 0o600)
        try setUp(clientKey: path)
        let readOnly = try key("readonly.key", mode: 0o400)
        try setUp(clientKey: readOnly)
    }

    @Test func aSymlinkIsJudgedByItsTarget() throws {
        let good = try key("target-good.key", mode: 0o600)
        let bad = try key("target-bad.key", mode: 0o644)
        #expect(symlink(good, dir + "/link-good.key") == 0)
        #expect(symlink(bad, dir + "/link-bad.key") == 0)
        try setUp(clientKey: dir + "/link-good.key")
        #expect(throws: HTTPClientSetupError.unprotectedKey(.permissionsTooOpen(path: dir + "/link-bad.key", mode: 0o644))) {
            try setUp(clientKey: dir + "/link-bad.key")
        }
    }

    @Test func aDirectoryIsRefused() throws {
        let path = dir + "/key.d"
        #expect(mkdir(path, 0o700) == 0)
        #expect(throws: HTTPClientSetupError.unprotectedKey(.notRegularFile(path: path))) { try setUp(clientKey: path) }
    }

    @Test func aKeyOwnedByAnotherUserIsRefused() throws {
        guard geteuid() == 0 else { return }   // only root can give a file away
        let path = try key("nobody.key", mode: 0o600)
        #expect(chown(path, 65534, 65534) == 0)
        #expect(throws: HTTPClientSetupError.unprotectedKey(.wrongOwner(path: path, owner: 65534))) { try setUp(clientKey: path) }
    }

    /// Without `clientKey`, libcurl reads the key from the certificate file: that file is the secret.
    @Test func aCertificateFileHoldingTheKeyIsCheckedToo() throws {
        let bundle = try read(fixture.clientCert) + (try read(fixture.clientKey))
        let open = try key("bundle-open.pem", mode: 0o644, text: bundle)
        #expect(throws: HTTPClientSetupError.unprotectedKey(.permissionsTooOpen(path: open, mode: 0o644))) {
            try setUp(clientKey: nil, certificate: open)
        }
        let closed = try key("bundle.pem", mode: 0o600, text: bundle)
        try setUp(clientKey: nil, certificate: closed)
    }
}
