import Glibc
import Platform
import Timebase
@testable import CloudHTTP

// Test servers are real processes on loopback: a small Python HTTPS server
// (http.server + ssl) and certificates from a throwaway CA made with the
// openssl CLI, both created once per test process in a temporary directory.

/// The temporary directory with the CA, server and client certificates and the server script.
struct Fixture: Sendable {
    let directory: String
    var caFile: String { directory + "/ca.pem" }
    var serverCert: String { directory + "/server.pem" }
    var serverKey: String { directory + "/server.key" }
    var wrongHostCert: String { directory + "/wronghost.pem" }
    var wrongHostKey: String { directory + "/wronghost.key" }
    var clientCert: String { directory + "/client.pem" }
    var clientKey: String { directory + "/client.key" }
    var script: String { directory + "/server.py" }

    static let shared: Fixture = {
        do { return try make() } catch { fatalError("test fixture: \(error)") }
    }()

    private static func make() throws -> Fixture {
        var template = Array("/tmp/cloudhttp-tests-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw SystemError(call: "mkdtemp", errno: errno) }
        let fixture = Fixture(directory: String(cString: made))
        try write(fixture.directory + "/certs.sh", certificateScript)
        try write(fixture.script, serverScript)
        let child = try ChildProcess.spawn("/bin/sh", [fixture.directory + "/certs.sh", fixture.directory],
                                           captureStdout: false, pipeStdin: false)
        guard child.wait(timeout: .seconds(30)) == 0 else { fatalError("openssl could not make the test certificates") }
        atexit {
            // Best effort: everything below the directory was made by these tests.
            guard let directory = Fixture.madeDirectory else { return }
            removeTree(directory)
        }
        madeDirectoryStorage.set(fixture.directory)
        return fixture
    }

    static var madeDirectory: String? { madeDirectoryStorage.get() }

    static func write(_ path: String, _ text: String, mode: mode_t = 0o644) throws {
        let fd = try FileDescriptor.open(path, flags: O_WRONLY | O_CREAT | O_TRUNC, mode: mode)
        defer { fd.close() }
        try fd.writeAll(Array(text.utf8), timeout: .seconds(2))
    }
}

/// Removes `path` and, for a directory (not followed through symlinks), everything below it.
func removeTree(_ path: String) {
    var info = stat()
    guard lstat(path, &info) == 0 else { return }
    if info.st_mode & S_IFMT == S_IFDIR, let dir = opendir(path) {
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if name != "." && name != ".." { names.append(name) }
        }
        closedir(dir)
        for name in names { removeTree(path + "/" + name) }
    }
    _ = remove(path)
}

/// Holds the fixture directory for the `atexit` handler (which cannot capture).
private final class LockedString: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    private var value: String?
    init() { pthread_mutex_init(&mutex, nil) }
    func set(_ s: String) { pthread_mutex_lock(&mutex); value = s; pthread_mutex_unlock(&mutex) }
    func get() -> String? { pthread_mutex_lock(&mutex); defer { pthread_mutex_unlock(&mutex) }; return value }
}
private let madeDirectoryStorage = LockedString()

/// A Python server process on 127.0.0.1 and the port it bound.
final class TestServer {
    let process: ChildProcess
    let port: UInt16

    /// `mode`: `https` (the echo server below) or `blackhole` (accepts TCP, never says a word).
    init(mode: String = "https", cert: String? = nil, key: String? = nil, clientCA: String? = nil) throws {
        let fixture = Fixture.shared
        var arguments = [fixture.script, "--mode", mode,
                         "--cert", cert ?? fixture.serverCert, "--key", key ?? fixture.serverKey]
        if let clientCA { arguments += ["--client-ca", clientCA] }
        process = try ChildProcess.spawn(Self.python, arguments, pipeStdin: false)
        guard let line = try process.readLine(timeout: .seconds(10)), let port = UInt16(line) else {
            throw SystemError(call: "test server did not report its port", errno: EIO)
        }
        self.port = port
    }

    deinit { process.terminate() }

    func url(_ path: String = "/echo") -> String { "https://127.0.0.1:\(port)\(path)" }

    static let python: String = {
        if access("/usr/bin/python3", X_OK) == 0 { return "/usr/bin/python3" }
        let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/bin:/bin"
        for dir in path.split(separator: ":") where access("\(dir)/python3", X_OK) == 0 { return "\(dir)/python3" }
        return "python3"
    }()
}

/// The echo server's answer: `key=value` lines.
func fields(_ response: HTTPResponse) -> [String: String] {
    var result: [String: String] = [:]
    for line in String(decoding: response.body, as: UTF8.self).split(separator: "\n") {
        guard let eq = line.firstIndex(of: "=") else { continue }
        result[String(line[..<eq])] = String(line[line.index(after: eq)...])
    }
    return result
}

/// Posts and runs the loop until the completion arrives (or `timeout`).
func postAndWait(_ client: HTTPClient, _ loop: EventLoop, _ request: HTTPRequest,
                 timeout: Duration = .seconds(10)) throws -> Result<HTTPResponse, HTTPError>? {
    var outcome: Result<HTTPResponse, HTTPError>?
    client.post(request) { outcome = $0 }
    _ = try loop.run(until: { outcome != nil }, deadline: MonotonicClock.now() + timeout)
    return outcome
}

/// A port nothing listens on (bound, read back, released).
func closedPort() throws -> UInt16 {
    let listener = try TCPListener.listen(port: 0)
    listener.close()
    return listener.port
}

func seconds(_ d: Duration) -> Double {
    Double(d.nanosecondsClamped) / 1e9
}

private let certificateScript = #"""
set -e
cd "$1"
cat > ca.cnf <<'EOF'
[req]
distinguished_name = dn
x509_extensions = v3_ca
prompt = no
[dn]
CN = paybridge-test-ca
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
EOF
printf 'basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > server.ext
printf 'basicConstraints=CA:FALSE\nsubjectAltName=DNS:wronghost.invalid\nextendedKeyUsage=serverAuth\n' > wronghost.ext
printf 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n' > client.ext
openssl req -x509 -config ca.cnf -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout ca.key -out ca.pem -days 2 2>/dev/null
for name in server wronghost client; do
    openssl req -new -config ca.cnf -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout $name.key -out $name.csr -subj "/CN=$name" 2>/dev/null
    openssl x509 -req -in $name.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out $name.pem \
        -days 2 -extfile $name.ext 2>/dev/null
done
chmod 600 *.key
"""#

private let serverScript = #"""
import argparse, os, select, socket, ssl, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse, parse_qs

p = argparse.ArgumentParser()
p.add_argument('--mode', default='https')
p.add_argument('--cert'); p.add_argument('--key'); p.add_argument('--client-ca')
args = p.parse_args()

if args.mode == 'blackhole':
    s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(64)
    print(s.getsockname()[1], flush=True)
    held = []
    while True:
        c, _ = s.accept(); held.append(c)

ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(args.cert, args.key)
if args.client_ca:
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(args.client_ca)

lock = threading.Lock()
connections = [0]

class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    def setup(self):
        # The TLS handshake runs here, on the connection's own thread.
        tls = ctx.wrap_socket(self.request, server_side=True, do_handshake_on_connect=False)
        try:
            tls.do_handshake()
        except Exception:
            # Lingering close: drain what the client sent before closing, so the kernel
            # sends FIN rather than RST and the client gets to read our TLS alert.
            try:
                tls.shutdown(socket.SHUT_WR)
                deadline = time.time() + 2
                while time.time() < deadline and select.select([tls.fileno()], [], [], 0.2)[0]:
                    if not os.read(tls.fileno(), 4096): break
            except Exception:
                pass
            raise
        self.request = tls
        with lock:
            connections[0] += 1
            self.conn_id = connections[0]
        self.served = 0
        super().setup()
    def log_message(self, *a): pass
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get('Content-Length', 0)))
        self.served += 1
        url = urlparse(self.path); q = parse_qs(url.query)
        status = 200
        if url.path == '/hang':
            time.sleep(120); return
        if url.path == '/slow':
            time.sleep(int(q['ms'][0]) / 1000.0)
        if url.path.startswith('/status/'):
            status = int(url.path.split('/')[2])
        if url.path == '/big':
            payload = b'x' * int(q['n'][0])
        else:
            peer = self.request.getpeercert() or {}
            cn = ''
            for rdn in peer.get('subject', ()):
                for k, v in rdn:
                    if k == 'commonName': cn = v
            h = self.headers
            lines = ['method=' + self.command, 'path=' + url.path,
                     'contentType=' + (h.get('Content-Type') or ''),
                     'idempotencyKey=' + (h.get('Idempotency-Key') or ''),
                     'authorization=' + (h.get('Authorization') or ''),
                     'expect=' + (h.get('Expect') or ''),
                     'body=' + body.decode('utf-8', 'replace'),
                     'conn=%d' % self.conn_id, 'served=%d' % self.served, 'peer=' + cn]
            payload = ('\n'.join(lines) + '\n').encode()
        self.send_response(status)
        self.send_header('Content-Type', 'text/plain')
        if 'chunked' in q:
            self.send_header('Transfer-Encoding', 'chunked'); self.end_headers()
            for i in range(0, len(payload), 1000):
                part = payload[i:i + 1000]
                self.wfile.write(b'%x\r\n%s\r\n' % (len(part), part))
            self.wfile.write(b'0\r\n\r\n')
        else:
            self.send_header('Content-Length', str(len(payload))); self.end_headers()
            self.wfile.write(payload)

class Server(ThreadingHTTPServer):
    daemon_threads = True
    def handle_error(self, request, client_address): pass

server = Server(('127.0.0.1', 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""#

/// Tests/Scripts/test-proxy.py: a forward proxy on loopback reporting every connection and
/// request line it sees.
final class TestProxy {
    let process: ChildProcess
    let port: UInt16

    init() throws {
        let script = #filePath.split(separator: "/", omittingEmptySubsequences: false).dropLast(2).joined(separator: "/")
            + "/Scripts/test-proxy.py"
        process = try ChildProcess.spawn(TestServer.python, [script], pipeStdin: false)
        guard let line = try process.readLine(timeout: .seconds(10)), let port = UInt16(line) else {
            throw SystemError(call: "test proxy did not report its port", errno: EIO)
        }
        self.port = port
    }

    deinit { process.terminate() }

    var url: String { "http://127.0.0.1:\(port)" }

    /// The lines it printed within `wait` (it prints as it goes).
    func lines(within wait: Duration) throws -> [String] {
        var out: [String] = []
        let deadline = MonotonicClock.now() + wait
        while MonotonicClock.now() < deadline, let line = try process.readLine(timeout: deadline - MonotonicClock.now()) { out.append(line) }
        return out
    }
}
