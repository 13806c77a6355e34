// gpio-probe: drives GPIOChargerPort (and GPIOLines) against real GPIO lines, for the QEMU
// guest's gpio-sim scenarios (HardwareSim/qemu). Not shipped: the daemon is the product.
import ChargerPort
import GPIOCharger
import GPIOLines
import Glibc
import PaymentEngine
import Platform
import Timebase

let usage = """
usage: gpio-probe info CHIP
       gpio-probe deenergise CHIP LINE [--active-low]
       gpio-probe --chip CHIP --relay LINE [--mirror LINE] [--plug LINE] [--active-low]
                  [--feedback-ms MS] [--debounce-ms MS] STEP...

CHIP is a path or a label; LINE an offset or a name. Steps, in order:
  close | open              the engine's setRelay
  expect:WHAT[:MS]          wait (default 2000 ms) for the port's next input to be WHAT:
                            closed opened refused welded fault plug-in plug-out
  quiet:MS                  no input at all for MS
  sleep:MS                  run the loop for MS
  touch:PATH | rm:PATH      create or remove a file (signals to the scenario's simulated contactor)
  hold                      print HOLDING and run the loop until killed
Prints one line per input (`input ...`) and per step; exits 0 when every step passed, 1 at
the first failed step, 2 on bad arguments or lines that cannot be requested.
"""

func say(_ line: String) {
    _ = try? FileDescriptor.standardOutput.writeAll(Array((line + "\n").utf8), timeout: .seconds(5))
}

func fail(_ code: Int32, _ text: String) -> Never {
    say("FAIL \(text)")
    exit(code)
}

var args = Array(CommandLine.arguments.dropFirst())
if args.first == "info", args.count == 2 {
    do {
        let chip = try GPIOChip.find(args[1])
        say("chip \(chip.path) name=\(chip.info.name) label=\(chip.info.label) lines=\(chip.info.lines)")
        for o in 0..<chip.info.lines {
            let i = try chip.lineInfo(offset: o)
            say("line \(o) name=\(i.name) consumer=\(i.consumer) flags=0x\(String(i.flags.rawValue, radix: 16))")
        }
        exit(0)
    } catch { fail(2, "\(error)") }
}

if args.first == "deenergise", args.count >= 3 {
    let ref = GPIOLineRef(chip: args[1], line: args[2], activeLow: args.dropFirst(3).contains("--active-low"))
    do {
        try GPIOChargerPort.deenergiseRelays([GPIOConnectorConfig(relay: ref)], consumer: "gpio-probe")
        say("deenergised \(ref)")
        exit(0)
    } catch { fail(2, "\(error)") }
}

var chip = "", relay = "", mirror: String?, plug: String?, activeLow = false
var feedbackMs = 500, debounceMs = 20
var steps: [String] = []
while !args.isEmpty {
    let a = args.removeFirst()
    func value() -> String { guard !args.isEmpty else { fail(2, "\(a) needs a value\n\(usage)") }; return args.removeFirst() }
    switch a {
    case "--chip": chip = value()
    case "--relay": relay = value()
    case "--mirror": mirror = value()
    case "--plug": plug = value()
    case "--active-low": activeLow = true
    case "--feedback-ms": feedbackMs = Int(value()) ?? -1
    case "--debounce-ms": debounceMs = Int(value()) ?? -1
    default: steps.append(a)
    }
}
guard !chip.isEmpty, !relay.isEmpty, feedbackMs > 0, debounceMs >= 0 else { fail(2, "bad arguments\n\(usage)") }

/// Runs the steps against one connector's lines; exits with the probe's status.
func runProbe(_ config: GPIOConnectorConfig, feedbackMs: Int, steps: [String]) -> Never {
    let loop: EventLoop
    do { loop = try EventLoop() } catch { fail(2, "\(error)") }
    let port: GPIOChargerPort
    do {
        port = try GPIOChargerPort(loop: loop, connectors: [config], feedbackTimeout: .milliseconds(feedbackMs),
                                   maxPowerW: 22_000, meterTimeout: .seconds(600), consumer: "gpio-probe")
    } catch { fail(2, "\(error)") }

    let start = MonotonicClock.now()
    func ms() -> Int64 { (MonotonicClock.now() - start).millisecondsClamped }
    var received: [String] = []
    port.onInputs = { inputs in
        for i in inputs {
            let word: String
            switch i {
            case .relay(_, .closed): word = "closed"
            case .relay(_, .opened): word = "opened"
            case .relay(_, .refusedToClose): word = "refused"
            case .relay(_, .welded): word = "welded"
            case .fault(_, let text): word = "fault"; say("fault text: \(text)")
            case .plug(_, let p): word = p ? "plug-in" : "plug-out"
            default: word = "other"
            }
            say("input \(word) t=\(ms())ms")
            received.append(word)
        }
    }
    port.onNotice = { s, text in say("notice \(s): \(text)") }

    func runLoop(for d: Duration) {
        let until = MonotonicClock.now() + d
        _ = try? loop.run(until: { false }, deadline: until)
    }

    // Whatever the port says at start (a welded mirror, a cable already in) comes first.
    runLoop(for: .milliseconds(50))
    for step in steps {
        let parts = step.split(separator: ":", maxSplits: 2).map(String.init)
        say("step \(step) t=\(ms())ms")
        switch parts[0] {
        case "close": port.setRelay(connector: 0, closed: true)
        case "open": port.setRelay(connector: 0, closed: false)
        case "expect":
            guard parts.count >= 2 else { fail(2, "expect needs a value") }
            let want = parts[1]
            let limit = Duration.milliseconds(parts.count > 2 ? Int(parts[2]) ?? 2000 : 2000)
            let ok = (try? loop.run(until: { !received.isEmpty }, deadline: MonotonicClock.now() + limit)) ?? false
            guard ok else { fail(1, "\(step): nothing within \(limit)") }
            let got = received.removeFirst()
            guard got == want else { fail(1, "\(step): got \(got)") }
            say("PASS \(step) t=\(ms())ms")
        case "quiet":
            runLoop(for: .milliseconds(parts.count > 1 ? Int(parts[1]) ?? 0 : 0))
            guard received.isEmpty else { fail(1, "\(step): got \(received)") }
            say("PASS \(step)")
        case "sleep": runLoop(for: .milliseconds(parts.count > 1 ? Int(parts[1]) ?? 0 : 0))
        case "touch":
            guard parts.count > 1, let fd = try? FileDescriptor.open(parts[1], flags: O_WRONLY | O_CREAT) else { fail(2, "touch \(step)") }
            fd.close()
        case "rm":
        guard parts.count > 1 else { fail(2, "rm needs a path") }
        _ = unlink(parts[1])
    case "hold":
            say("HOLDING")
            _ = try? loop.run()
        default: fail(2, "unknown step \(step)\n\(usage)")
        }
    }
    port.shutdown()
    say("DONE counters=\(port.counters.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ","))")
    exit(0)
}

runProbe(GPIOConnectorConfig(relay: GPIOLineRef(chip: chip, line: relay, activeLow: activeLow),
                             mirror: mirror.map { GPIOLineRef(chip: chip, line: $0) },
                             plug: plug.map { GPIOLineRef(chip: chip, line: $0) },
                             debounce: .milliseconds(debounceMs)),
         feedbackMs: feedbackMs, steps: steps)
