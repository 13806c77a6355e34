import Foundation
import Glibc
import Testing
import Platform

/// sd_notify as systemd sees it: a datagram socket named by NOTIFY_SOCKET.
@Suite(.serialized) struct SystemdNotify {
    /// Binds a datagram socket at `path` and returns its fd (non-blocking).
    func bindDatagram(_ path: String) throws -> Int32 {
        let s = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard s >= 0 else { throw HarnessError("socket") }
        var a = sockaddr_un()
        a.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &a.sun_path) { dst in for (i, b) in path.utf8.enumerated() { dst[i] = b } }
        let ok = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        guard ok == 0 else { throw HarnessError("bind \(path): errno \(errno)") }
        return s
    }

    func receive(_ s: Int32) -> [String] {
        var out: [String] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buf.withUnsafeMutableBytes { recv(s, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return out }
            out.append(String(decoding: buf[0..<n], as: UTF8.self))
        }
    }

    @Test func readyStatusWatchdogAndStopping() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("notify-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let sock = try bindDatagram(dir + "/notify")
        defer { close(sock) }
        let tty = dir + "/ttyPSP"
        let sim = try SimProcess(["--pty", "--link", tty])
        var env = ProcessInfo.processInfo.environment.map { "\($0.key)=\($0.value)" }
        env += ["NOTIFY_SOCKET=\(dir)/notify", "WATCHDOG_USEC=400000"]
        let p = try ChildProcess.spawn(ChildProcess.executableDirectory() + "/paybridged",
                                       ["--terminal", "serial:\(tty)", "--state", dir + "/state", "--charger-io", "simulated", "--sim-ev", "none", "--log-level", "warning"],
                                       environment: env, captureStdout: false, pipeStdin: false)
        var messages: [String] = []
        #expect(waitUntil(.seconds(30)) {
            messages += receive(sock)
            return messages.contains { $0.contains("READY=1") } && messages.filter { $0 == "WATCHDOG=1" }.count >= 3
                && messages.contains { $0.contains("STATUS=terminal link up") }
        }, "\(messages)")
        p.signal(SIGTERM)
        #expect(p.wait(timeout: .seconds(10)) == 0)
        messages += receive(sock)
        #expect(messages.contains("STOPPING=1"))
        // READY comes before the first watchdog ping, and the ledger is recovered by then.
        let ready = messages.firstIndex { $0.contains("READY=1") }
        #expect(ready != nil && messages[ready!].contains("ledger recovered"))
        _ = sim
    }
}
