// meter-sim: simulated Modbus RTU energy meters (Eastron SDM630/SDM72, ABB B23/B24 register
// maps) on a pty or a serial device, with energy that advances at a configurable power and
// faults scripted on standard input (docs/meters.md, "meter-sim").
import EnergyMeters
import Glibc
import MeterSim
import ModbusRTU
import Platform
import Timebase

let usage = """
usage: meter-sim --meter ADDRESS:MODEL[:SERIAL[:POWER_W[:ENERGY_WH]]] ... [--device PATH] [--line "9600 8N1"]

MODEL is sdm630, sdm72, abb-b23 (or abb-b24). Without --device a pty is opened and its path
printed first on standard output as "pty PATH". Commands on standard input, one per line, each
answered "ok ..." or "error ..." on standard output:
  power A W | energy A WH | backwards A WH | serial A N | silence A N|on|off | crc A N |
  exception A CODE [N] | clear A | show A
Exits at the end of standard input, and on SIGTERM or SIGINT.
"""

func say(_ line: String) {
    _ = try? FileDescriptor.standardOutput.writeAll(Array((line + "\n").utf8), timeout: .seconds(5))
}

func fail(_ text: String) -> Never {
    _ = try? FileDescriptor.standardError.writeAll(Array("meter-sim: \(text)\n".utf8), timeout: .seconds(1))
    exit(2)
}

struct MeterOption {
    var address: UInt8
    var model: MeterModel
    var serial: UInt32
    var powerW: Int64
    var energyWh: Int64

    /// `ADDRESS:MODEL[:SERIAL[:POWER_W[:ENERGY_WH]]]`.
    static func parse(_ text: String) -> MeterOption? {
        let f = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard (2...5).contains(f.count), let a = UInt8(f[0]), (1...247).contains(a), let model = MeterModel.named(f[1]) else { return nil }
        var o = MeterOption(address: a, model: model, serial: 10_000_000 + UInt32(a), powerW: 0, energyWh: 0)
        if f.count > 2 { guard let s = UInt32(f[2]) else { return nil }; o.serial = s }
        if f.count > 3 { guard let p = Int64(f[3]), (0...MeterSimLimits.maxPowerW).contains(p) else { return nil }; o.powerW = p }
        if f.count > 4 { guard let e = Int64(f[4]), (0...1_000_000_000_000).contains(e) else { return nil }; o.energyWh = e }
        return o
    }
}

var meters: [MeterOption] = []
var device: String?
var line = LineSettings(baud: 9600, dataBits: 8, parity: .none, stopBits: 1)
var args = CommandLine.arguments.dropFirst()
while let flag = args.popFirst() {
    switch flag {
    case "--help", "-h":
        say(usage)
        exit(0)
    case "--meter":
        guard let v = args.popFirst(), let m = MeterOption.parse(v) else { fail("--meter: expected ADDRESS:MODEL[:SERIAL[:POWER_W[:ENERGY_WH]]]") }
        guard !meters.contains(where: { $0.address == m.address }) else { fail("--meter: address \(m.address) given twice") }
        meters.append(m)
    case "--device":
        guard let v = args.popFirst() else { fail("--device needs a path") }
        device = v
    case "--line":
        guard let v = args.popFirst(), let l = LineSettings.parse(v) else { fail("--line: expected e.g. \"9600 8N1\"") }
        line = l
    default:
        fail("unknown option \(flag)")
    }
}
guard !meters.isEmpty, meters.count <= MeterSimLimits.maxMeters else { fail("expected 1…\(MeterSimLimits.maxMeters) --meter options") }

do {
    try Signals.ignore(SIGPIPE)
    let loop = try EventLoop()
    let now = MonotonicClock.now()
    let core = MeterSimCore(meters: meters.map {
        SimulatedMeter(address: $0.address, model: $0.model, serial: $0.serial, powerW: $0.powerW, importWh: $0.energyWh, now: now)
    })
    let fd: FileDescriptor
    var pty: PseudoTerminal?
    if let device {
        do { fd = try SerialPort.open(path: device, settings: line) } catch { fail("\(error)") }
    } else {
        pty = try PseudoTerminal.open()
        fd = pty!.master
        say("pty \(pty!.path)")
    }
    let timing = ModbusTiming(baud: line.baud, bitsPerCharacter: 1 + line.dataBits + (line.parity == .none ? 0 : 1) + line.stopBits)
    let server = MeterSimServer(loop: loop, fd: fd, core: core, timing: timing)
    server.onClosed = { reason in fail("the line closed: \(reason)") }
    server.start()
    for signo in [SIGTERM, SIGINT] { try loop.onSignal(signo) { exit(0) } }
    try FileDescriptor.standardInput.setNonBlocking()
    var pending: [UInt8] = []
    _ = loop.watch(.standardInput, read: true, write: false) { _ in
        while true {
            switch (try? FileDescriptor.standardInput.read(maxCount: 4096)) ?? .endOfFile {
            case .bytes(let bytes):
                pending += bytes
                while let nl = pending.firstIndex(of: 10) {
                    let text = String(decoding: pending[..<nl], as: UTF8.self)
                    pending.removeSubrange(...nl)
                    if text.isEmpty { continue }
                    switch server.command(text) {
                    case .success(let reply): say("ok \(reply)")
                    case .failure(let e): say("error \(e.text)")
                    }
                }
                // A line longer than any command is noise; drop it rather than grow.
                if pending.count > 1024 { pending.removeAll() }
            case .wouldBlock: return
            case .endOfFile: exit(0)
            }
        }
    }
    try loop.run()
    _ = pty
} catch {
    fail("\(error)")
}
