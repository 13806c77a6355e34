import Daemon
import Foundation
import Platform
import Testing

/// Runs a program to its end; its exit status, standard output and standard error.
func runProgram(_ path: String, _ arguments: [String], environment: [String: String]? = nil) throws -> (status: Int32, out: String, err: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = arguments
    if let environment { p.environment = environment }
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    p.standardInput = FileHandle.nullDevice
    try p.run()
    // Read both before waiting: a usage text larger than a pipe's buffer must not deadlock.
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}

/// `--help` answers on any machine: a build host or a fresh image has no
/// /etc/paybridge/paybridge.conf, and the packaging checks run `paybridged --help` there.
@Suite struct Help {
    let dir = ChildProcess.executableDirectory()

    @Test func helpIsAskedBeforeAnyFileIsRead() throws {
        for line in [["--help"], ["-h"], ["--config", "/nonexistent/paybridge.conf", "--help"], ["--check-config", "/nonexistent.conf", "-h"],
                     ["--bogus", "--help"], ["--terminal", "tcp:127.0.0.1", "--charger-io", "simulated", "--help"]] {
            guard case .help = try DaemonArguments.parse(line) else { Issue.record("\(line) is not a request for help"); continue }
        }
    }

    @Test func paybridgedPrintsItsUsageAndExitsZeroWithoutAConfiguration() throws {
        for args in [["--help"], ["-h"], ["--config", "/nonexistent/paybridge.conf", "--help"]] {
            let r = try runProgram(dir + "/paybridged", args)
            #expect(r.status == 0, "paybridged \(args): status \(r.status), \(r.err)")
            #expect(r.out.hasPrefix("usage: paybridged"), "\(args): \(r.out)")
            #expect(r.out.trimmingCharacters(in: .newlines) == usage, "\(args): the usage, whole")
            #expect(r.err.isEmpty, "\(args): \(r.err)")
        }
        // Without --help the missing file is still an error: help changed nothing else.
        let r = try runProgram(dir + "/paybridged", ["--config", "/nonexistent/paybridge.conf"])
        #expect(r.status == 2, "\(r)")
    }

    @Test func paybridgectlPrintsItsUsageAndExitsZero() throws {
        for args in [["--help"], ["-h"], ["help"], ["--socket", "/nonexistent.sock", "--help"], ["--json", "-h"], ["status", "--help"]] {
            let r = try runProgram(dir + "/paybridgectl", args)
            #expect(r.status == 0, "paybridgectl \(args): status \(r.status), \(r.err)")
            #expect(r.out.hasPrefix("usage: paybridgectl [--socket PATH]"), "\(args): \(r.out)")
            #expect(r.out.contains("usage: paybridgectl decode psp"), "\(args): the decoder's usage too")
        }
        for args in [["decode", "--help"], ["decode", "psp", "-h"]] {
            let r = try runProgram(dir + "/paybridgectl", args)
            #expect(r.status == 0, "paybridgectl \(args): status \(r.status), \(r.err)")
            #expect(r.out.hasPrefix("usage: paybridgectl decode psp"), "\(args): \(r.out)")
        }
        // No arguments is still a usage error, and free text that happens to be -h is not help.
        #expect(try runProgram(dir + "/paybridgectl", []).status == 2)
        let fault = try runProgram(dir + "/paybridgectl", ["--socket", "/nonexistent.sock", "fault", "1", "short", "-h"])
        #expect(fault.status == 3, "a fault text is sent, not taken as --help: \(fault)")
    }
}
