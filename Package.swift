// swift-tools-version:6.0
// paybridge: bridges a card payment terminal on an EV charger to the charging platform.
// No package dependencies by design: Glibc, the Swift stdlib and (later) C system libraries only.
import PackageDescription

/// How the shipped daemon is linked in release builds, each for resident memory (figures from
/// daemon-bench, idle after a session; README "Daemon footprint and latency"):
/// - libstdc++ from its static archive (Sources/paybridged/link explains how): the Swift
///   runtime needs a few of its functions, and loading the shared one costs about 0.8 MiB.
/// - `--no-export-dynamic`: the toolchain's static-stdlib link exports every symbol, which only
///   dlsym-style lookups into the executable would need; we have none. A 175 kB symbol table
///   that every library load searched goes away (about 0.3 MiB).
/// - lld with packed relative relocations (DT_RELR): the Swift metadata's 435 kB of relocation
///   entries shrink to 3 kB (about 0.4 MiB). Needs glibc 2.36 or later on the target; an older
///   loader refuses the binary at start (GLIBC_ABI_DT_RELR), it does not misbehave.
/// - One symbol stays exported: CloudHTTP's `_gnutls_global_init_skip`, which libgnutls looks up
///   to learn that it must not initialise itself at load (about 0.6 MiB; GnuTLSImplicitInit.swift).
/// Debug builds (tests) link the toolchain's way.
let leanReleaseLink: [LinkerSetting] = [
    .unsafeFlags(["-L", Context.packageDirectory + "/Sources/paybridged/link",
                  "-use-ld=lld", "-Xlinker", "--no-export-dynamic", "-Xlinker", "--export-dynamic-symbol=_gnutls_global_init_skip",
                  "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs"],
                 .when(configuration: .release)),
]

let package = Package(
    name: "paybridge",
    products: [
        .executable(name: "paybridged", targets: ["paybridged"]),
        .executable(name: "paybridge-demo", targets: ["paybridge-demo"]),
        .executable(name: "paybridgectl", targets: ["paybridgectl"]),
        .executable(name: "terminal-sim", targets: ["terminal-sim"]),
        .executable(name: "cloud-sim", targets: ["cloud-sim"]),
        .executable(name: "charger-sim", targets: ["charger-sim"]),
        .executable(name: "meter-sim", targets: ["meter-sim"]),
        .executable(name: "psp-bench", targets: ["psp-bench"]),
        .executable(name: "engine-sim", targets: ["engine-sim"]),
        .executable(name: "uplink-bench", targets: ["uplink-bench"]),
        .executable(name: "ledger-bench", targets: ["ledger-bench"]),
        .executable(name: "ledger-torture", targets: ["ledger-torture"]),
        .executable(name: "daemon-bench", targets: ["daemon-bench"]),
        .executable(name: "usb-probe", targets: ["usb-probe"]),
    ],
    targets: [
        // Pure: monotonic instants, no clock reads.
        .target(name: "Timebase"),
        // Thin typed wrappers over Glibc: fds, termios, poll, sockets, ptys, child processes.
        .target(name: "Platform", dependencies: ["Timebase"]),
        // Pure: PSP frames and messages, bytes in, values out.
        // Pure: the wire primitives every codec shares: byte reader/writer, BCD, BER-TLV, hex, CRC-32C, CRC-16/KERMIT, CRC-16/MODBUS.
        .target(name: "WireFormat"),
        // Pure: a tiny ordered JSON writer for records, logs and the technicians' tool.
        .target(name: "JSONLines"),
        // Pure: the one card-data filter (card numbers, track data) and PAN masking, for every protocol.
        .target(name: "CardSafety"),
        // Pure: the WebSocket client (RFC 6455) for OCPP-J: opening handshake, frame codec, message
        // assembly with UTF-8 validation, and the connection core (keep-alive, close handshake).
        .target(name: "WebSocket", dependencies: ["WireFormat", "Timebase"]),
        .target(name: "PSPCodec", dependencies: ["JSONLines", "CardSafety", "WireFormat"]),
        // Pure: the PSP link state machine (bring-up, correlation, timeouts, keep-alive, recovery).
        .target(name: "PSPLink", dependencies: ["PSPCodec", "Timebase"]),
        // Pure: the payment engine (sessions, tariff, write-ahead entries, recovery).
        .target(name: "PaymentEngine", dependencies: ["Timebase", "WireFormat"]),
        // Pure: OCPP 2.1 payment payloads for the cloud uplink.
        .target(name: "Uplink", dependencies: ["JSONLines", "PaymentEngine", "Timebase", "WireFormat"]),
        // Pure: OCPP-J 2.1 RPC framing and the session core (one CALL in flight, timeouts, BootNotification first).
        .target(name: "OCPPJ", dependencies: ["JSONLines", "Timebase"]),
        // The OCPP-J uplink (issue 15): a WebSocket over libcurl's stream, WebSocketCore and RPCCore,
        // as the outbox's transport and the card decider.
        .target(name: "OCPPJUplink", dependencies: ["OCPPJ", "WebSocket", "CloudHTTP", "Station", "Uplink", "PaymentEngine", "JSONLines", "Platform", "Timebase"]),
        // Pure: the answers to the CSMS's requests (GetTransactionStatus, RequestStopTransaction, TriggerMessage, Reset,
        // ChangeAvailability, Get/SetVariables, GetBaseReport with its NotifyReport pages, UnlockConnector,
        // CancelReservation) from a view of the station, with the actions the station must then take.
        .target(name: "CSMSRequests", dependencies: ["JSONLines", "OCPPJ"]),
        // Pure: what `paybridgectl sessions`, `export` and `metrics` show: session rows over the engine's
        // sessions, entries and summaries, the reconciliation export (CSV, JSON lines), Prometheus text.
        .target(name: "StationReports", dependencies: ["PaymentEngine", "Uplink", "CardSafety", "JSONLines", "WireFormat"]),
        // Pure: the daemon's configuration file (parser with line-numbered problems).
        .target(name: "Configuration", dependencies: ["PaymentEngine", "Platform", "TerminalConditions", "USBCore"]),
        // Shell: byte streams to the terminal (serial, TCP) with reopen and capped backoff.
        .target(name: "Transport", dependencies: ["Platform", "Timebase"]),
        // Shell: runs a PSPLink over a Transport on the event loop.
        // Pure: the station's view of a payment terminal, whatever its protocol (commands in, inputs and status out).
        .target(name: "TerminalPort", dependencies: ["PaymentEngine"]),
        // Pure: the operating rules the terminal's conditions set (swap, tamper, battery, storage) and their ledger record.
        .target(name: "TerminalConditions", dependencies: ["TerminalPort", "PaymentEngine", "WireFormat"]),
        .target(name: "PSPTerminal", dependencies: ["TerminalPort", "PSPLink", "PSPCodec", "CardSafety", "PaymentEngine", "Transport", "Platform", "Timebase"]),
        // Pure: the station's decisions (write-ahead ordering, group commit, outbox, heartbeat, status,
        // compaction and storage watermark), effects out one at a time; the simulation runs it too.
        .target(name: "StationCore", dependencies: ["PaymentEngine", "Uplink", "JSONLines", "Timebase", "TerminalConditions", "TerminalPort"]),
        // Shell: the station core's effects carried out against the ledger, terminal, charger, card decider and cloud.
        // The charger's hardware as the station sees it (relays, plugs, meters): the port and the
        // charger of a daemon without charger I/O. Small on purpose: charger-sim links it, not the station.
        .target(name: "ChargerPort", dependencies: ["PaymentEngine", "Platform", "Timebase"]),
        .target(name: "Station", dependencies: ["StationCore", "TerminalConditions", "ChargerPort", "PaymentEngine", "TerminalPort", "Ledger", "Uplink", "CloudHTTP", "JSONLines", "Platform", "Timebase"]),
        // A charger behind the charger line protocol (one JSON object per line on a byte stream): the
        // codec both sides share, the station's port over a pair of fds, and a charger program run as a child.
        .target(name: "ChargerLine", dependencies: ["ChargerPort", "PaymentEngine", "JSONLines", "Platform", "Timebase"]),
        // The charger's own controller as the charger port (charger.io = socket): the diagnostic socket calls its
        // inputs; the meter plausibility check and the contactor confirmations are pure values inside it.
        .target(name: "ControllerInput", dependencies: ["ChargerPort", "PaymentEngine", "CardSafety", "Platform", "Timebase"]),
        // C: the Linux GPIO character device (uAPI v2 ioctls) as small non-variadic functions; no libgpiod.
        .target(name: "CGPIO"),
        // Shell: GPIO chips and lines (find by path/label and offset/name, request, set/get, edge events), SystemError style.
        .target(name: "GPIOLines", dependencies: ["CGPIO", "Platform", "Timebase"]),
        // Relays, mirror contacts and plug inputs on GPIO lines as the charger port (issue 16): the pure relay
        // core (MirroredRelays over ControllerInput's RelayConfirmations, DebouncedLevel) and GPIOChargerPort.
        .target(name: "GPIOCharger", dependencies: ["GPIOLines", "ControllerInput", "ChargerPort", "PaymentEngine", "Platform", "Timebase"]),
        // Test program for the QEMU guest's gpio-sim scenarios (HardwareSim/qemu): drives GPIOChargerPort and GPIOLines.
        .executableTarget(name: "gpio-probe", dependencies: ["GPIOCharger", "GPIOLines", "ChargerPort", "PaymentEngine", "Platform", "Timebase"],
                          path: "HardwareSim/gpio-probe"),
        // The simulated charger (relays with feedback, vehicles that plug in and draw energy): demo and tests only.
        .target(name: "ChargerSim", dependencies: ["ChargerPort", "PaymentEngine", "Platform", "Timebase"], path: "HardwareSim/ChargerSim"),
        // The simulated charger as a process speaking the charger line protocol: what paybridged runs for charger.io = simulated.
        .executableTarget(name: "charger-sim", dependencies: ["ChargerLine", "ChargerSim", "Platform", "Timebase"], path: "HardwareSim/charger-sim"),
        // Pure: Modbus RTU (issue 16): CRC-16/MODBUS framing, reads of holding/input registers and their
        // exceptions, the silent-interval framer, and the client core (one request outstanding, timeouts, retries).
        .target(name: "ModbusRTU", dependencies: ["WireFormat", "Timebase"]),
        // Pure: energy meters' register maps (Eastron SDM630/SDM72, ABB B23/B24) and the poll of one meter bus.
        .target(name: "EnergyMeters", dependencies: ["ModbusRTU", "Timebase"]),
        // Shell: a meter bus on a serial port (RS-485) on the event loop, reporting readings per meter.
        .target(name: "MeterLink", dependencies: ["EnergyMeters", "ModbusRTU", "Transport", "Platform", "Timebase"]),
        // The simulated meters (same register maps, scripted faults): library for in-process tests, and the executable.
        .target(name: "MeterSim", dependencies: ["EnergyMeters", "ModbusRTU", "WireFormat", "Platform", "Timebase"], path: "HardwareSim/MeterSim"),
        .executableTarget(name: "meter-sim", dependencies: ["MeterSim", "EnergyMeters", "ModbusRTU", "Platform", "Timebase"], path: "HardwareSim/meter-sim"),
        // Test support: a scriptable terminal behind the TerminalPort, for station tests that are not about a protocol.
        .target(name: "FakeTerminal", dependencies: ["TerminalPort", "PaymentEngine"], path: "HardwareSim/FakeTerminal"),
        // The simulated terminal: scenario-driven PSP terminal (library + executable).
        .target(name: "TerminalSim", dependencies: ["PSPCodec", "CardSafety", "Timebase", "JSONLines", "Platform"],
                path: "HardwareSim/TerminalSim"),
        // The deterministic simulation of the payment engine with its terminal, cloud, EVs and crashes.
        .target(name: "EngineSimulation", dependencies: ["StationCore", "PaymentEngine", "Uplink", "Timebase", "TerminalConditions"], path: "HardwareSim/EngineSimulation"),
        .executableTarget(name: "engine-sim", dependencies: ["EngineSimulation"]),
        // Drains a backlog to cloud-sim through the daemon's ledger, outbox and HTTPS client.
        .executableTarget(name: "uplink-bench", dependencies: ["Uplink", "Ledger", "CloudHTTP", "Station", "OCPPJ", "OCPPJUplink", "PaymentEngine", "Platform", "Timebase"]),
        .executableTarget(name: "daemon-bench", dependencies: ["TerminalSim", "CloudSim", "PSPCodec", "JSONLines", "Platform", "Timebase"]),
        .executableTarget(name: "terminal-sim", dependencies: ["TerminalSim", "Platform", "Transport", "JSONLines"],
                          path: "HardwareSim/terminal-sim"),
        // The simulated charging platform: the uplink's HTTP and OCPP-J bindings with scriptable faults (library + executable).
        .target(name: "CloudSim", dependencies: ["JSONLines", "Uplink", "OCPPJ", "WebSocket", "Platform", "Timebase", "WireFormat"], path: "HardwareSim/CloudSim"),
        .executableTarget(name: "cloud-sim", dependencies: ["CloudSim", "Platform", "Timebase"], path: "HardwareSim/cloud-sim"),
        // Pure: the diagnostic socket's protocol (JSON lines, commands, errors, access rule, line limits).
        .target(name: "DiagnosticsProtocol", dependencies: ["JSONLines"]),
        // Shell: the diagnostic socket on the event loop (clients, peer credentials, bounded buffers).
        .target(name: "DiagnosticsSocket", dependencies: ["DiagnosticsProtocol", "JSONLines", "Platform", "Timebase"]),
        // Shell: the daemon's log (levels, escaping, non-blocking standard error) and what it says about its terminal.
        .target(name: "DaemonLog", dependencies: ["PaymentEngine", "PSPTerminal", "PSPLink", "PSPCodec", "Platform", "Timebase"]),
        // The shipped daemon: no simulated terminal, cloud or charger (the demo is paybridge-demo; simulated
        // charger I/O is the charger-sim process, spoken to through ChargerLine).
        // The station daemon as a library tests drive in process: the arguments (`DaemonArguments`,
        // `DaemonCommand`) and `StationDaemon` (state directory, ledger and its write probe, recovery,
        // assembly, SIGHUP's reload, stop). No simulator: a test brings its own ports.
        .target(name: "Daemon", dependencies: ["Configuration", "Station", "StationReports", "TerminalConditions", "DiagnosticsProtocol", "DiagnosticsSocket", "JSONLines", "ChargerPort", "ChargerLine", "ControllerInput", "Ledger", "PaymentEngine", "Uplink", "CloudHTTP", "DaemonLog",
                                               "OCPPJUplink", "OCPPJ", "WebSocket", "CSMSRequests", "StationCore", "TerminalPort", "PSPTerminal", "PSPLink", "Transport", "Platform", "Timebase",
                                               "EnergyMeters", "MeterLink", "GPIOCharger", "GPIOLines"]),
        .executableTarget(name: "paybridged", dependencies: ["Daemon", "DaemonLog", "PSPTerminal", "PSPLink", "Transport", "Platform", "USBSysfs", "USBCore"],
                          exclude: ["link"], linkerSettings: leanReleaseLink),
        // The demo: the daemon's parts against an embedded simulated terminal, cloud and charger.
        .executableTarget(name: "paybridge-demo", dependencies: ["DaemonLog", "Station", "ChargerPort", "Ledger", "PaymentEngine", "CloudHTTP", "CloudSim", "TerminalSim",
                                                                 "OCPPJUplink", "OCPPJ", "Uplink",
                                                                 "ChargerSim", "PSPTerminal", "PSPLink", "PSPCodec", "Transport", "Platform", "Timebase", "JSONLines"]),
        // Linked as the daemon is (it ships beside it in the .deb): stripped 7.6 MB instead of 8.4,
        // and no libstdc++.so, so the package needs no libstdc++6. Needs glibc 2.36, as the daemon.
        .executableTarget(name: "paybridgectl", dependencies: ["PSPCodec", "CardSafety", "JSONLines", "WireFormat", "DiagnosticsProtocol", "Platform", "StationReports"],
                          linkerSettings: leanReleaseLink),
        // Counts heap allocations by interposing malloc & co. (glibc): only psp-bench may link it.
        .target(name: "CAllocCounter"),
        .executableTarget(name: "psp-bench", dependencies: ["PSPCodec", "PSPLink", "Platform", "Timebase", "CAllocCounter"]),
        // Shell: the durable write-ahead ledger (checksummed segment files, group commit, recovery, compaction).
        .target(name: "Ledger", dependencies: ["Platform", "Timebase", "WireFormat"]),
        .executableTarget(name: "ledger-bench", dependencies: ["Ledger", "Platform", "Timebase", "WireFormat"]),
        // Appends records durably and prints each acknowledged sequence: the kill -9 and power-cut tests run it.
        .executableTarget(name: "ledger-torture", dependencies: ["Ledger", "Platform"]),
        // Pure: USB identity (`terminal.usb` selectors, port paths), the adapter reset policy, and the
        // CDC-ACM / FTDI FT232 request builders (issue 17). No libusb: configuration and tests use it freely.
        .target(name: "USBCore", dependencies: ["Timebase"]),
        // C: libusb-1.0's header only (libusb-1.0-0-dev), linked by nothing: USBDevices loads
        // libusb-1.0.so.0 at run time, when the first USBContext is made. No pkg-config, whose
        // flags would link it. Only USBDevices imports it.
        .systemLibrary(name: "CLibUSB", path: "Sources/CLibUSB"),
        // Shell without libusb: USB identities and the kernel's tty for a device, read from sysfs. What the
        // daemon needs to find a terminal by identity while the kernel's serial driver runs it (no libusb loaded).
        .target(name: "USBSysfs", dependencies: ["USBCore", "Platform"]),
        // Shell: libusb wrappers, libusb on the event loop, hotplug. libusb (and libudev, about 0.5 MiB
        // of idle RSS) is loaded with dlopen by the first USBContext, so linking this costs nothing until then.
        .target(name: "USBDevices", dependencies: ["CLibUSB", "USBCore", "USBSysfs", "Platform", "Timebase"]),
        // What the USB layer sees (enumeration, selection, the tty, hotplug): the umockdev tests run it, technicians may.
        .executableTarget(name: "usb-probe", dependencies: ["USBDevices", "USBSysfs", "USBCore", "WireFormat", "Platform", "Timebase"], path: "HardwareSim/usb-probe"),
        // C: libcurl via pkg-config; its header adds typed wrappers for the variadic setopt/getinfo calls.
        .systemLibrary(name: "CCurl", path: "Sources/CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        // Shell: HTTPS POSTs through libcurl's multi interface on the event loop (the uplink's transport).
        .target(name: "CloudHTTP", dependencies: ["CCurl", "Platform", "Timebase", "WireFormat"]),
        .testTarget(name: "CloudHTTPTests", dependencies: ["CloudHTTP", "Platform", "Timebase"]),
        .testTarget(name: "PaymentEngineTests", dependencies: ["PaymentEngine", "EngineSimulation", "StationCore", "Timebase"]),
        .testTarget(name: "OCPPJTests", dependencies: ["OCPPJ", "JSONLines", "Platform", "Timebase"]),
        // Test support: Tests/Scripts/ocpp-csms.py (the PyPI `ocpp` package's CSMS) as a child process.
        .target(name: "CSMSProcess", dependencies: ["JSONLines", "Platform", "Timebase"], path: "HardwareSim/CSMSProcess"),
        .testTarget(name: "OCPPJUplinkTests", dependencies: ["CSMSProcess", "OCPPJUplink", "OCPPJ", "WebSocket", "CloudHTTP", "Station", "Uplink", "PaymentEngine", "JSONLines", "Platform", "Timebase"]),
        .testTarget(name: "CSMSRequestsTests", dependencies: ["CSMSRequests", "OCPPJ", "JSONLines", "Platform", "Timebase"]),
        .testTarget(name: "UplinkTests", dependencies: ["Uplink", "PaymentEngine", "JSONLines", "Platform", "Timebase"]),
        .testTarget(name: "StationReportsTests", dependencies: ["StationReports", "PaymentEngine", "Uplink", "JSONLines", "Platform", "Timebase"]),
        .testTarget(name: "ConfigurationTests", dependencies: ["Configuration", "PaymentEngine", "Platform", "TerminalConditions"]),
        .testTarget(name: "CardSafetyTests", dependencies: ["CardSafety", "Timebase"]),
        .testTarget(name: "PSPCodecTests", dependencies: ["PSPCodec", "CardSafety", "JSONLines", "Timebase"],
                    resources: [.copy("Vectors")]),
        .testTarget(name: "PSPLinkTests", dependencies: ["PSPLink", "PSPCodec", "Timebase", "TerminalSim"]),
        .testTarget(name: "PlatformTests", dependencies: ["Platform", "Timebase"]),
        .testTarget(name: "CloudSimTests", dependencies: ["JSONLines", "Uplink", "CloudSim", "OCPPJ", "WebSocket", "WireFormat", "Platform", "Timebase",
                                                      "OCPPJUplink", "CloudHTTP", "PaymentEngine"]),
        .testTarget(name: "LedgerTests", dependencies: ["Ledger", "Platform", "Timebase", "WireFormat"]),
        .testTarget(name: "StationCoreTests", dependencies: ["StationCore", "PaymentEngine", "Uplink", "Timebase", "TerminalConditions", "TerminalPort"]),
        .testTarget(name: "DiagnosticsTests", dependencies: ["DiagnosticsProtocol", "DiagnosticsSocket", "JSONLines", "Platform", "Timebase"]),
        .testTarget(name: "TerminalConditionsTests", dependencies: ["TerminalConditions", "TerminalPort", "PaymentEngine", "Timebase", "WireFormat"]),
        .testTarget(name: "WebSocketTests", dependencies: ["WebSocket", "WireFormat", "Platform", "Timebase"]),
        .testTarget(name: "ModbusRTUTests", dependencies: ["ModbusRTU", "EnergyMeters", "WireFormat", "Timebase"]),
        .testTarget(name: "MeterLinkTests", dependencies: ["MeterLink", "MeterSim", "EnergyMeters", "ModbusRTU", "Transport", "Platform", "Timebase"]),
        .testTarget(name: "USBCoreTests", dependencies: ["USBCore", "Timebase"]),
        .testTarget(name: "USBDevicesTests", dependencies: ["USBDevices", "USBSysfs", "USBCore", "Transport", "Platform", "Timebase"]),
        .testTarget(name: "WireFormatTests", dependencies: ["WireFormat", "Timebase"]),
        .testTarget(name: "DaemonTests", dependencies: ["CSMSProcess", "Daemon", "DaemonLog", "JSONLines", "Configuration", "Station", "StationCore", "Ledger", "PaymentEngine", "ChargerPort", "TerminalPort",
                                                    "FakeTerminal", "Uplink", "Platform", "Timebase"]),
        .testTarget(name: "GPIOTests", dependencies: ["GPIOCharger", "GPIOLines", "CGPIO", "ControllerInput", "PaymentEngine", "Timebase"]),
        .testTarget(name: "ControllerInputTests", dependencies: ["ControllerInput", "ChargerPort", "Station", "StationCore", "Ledger", "PaymentEngine",
                                                             "FakeTerminal", "TerminalPort", "Platform", "Timebase"]),
        .testTarget(name: "HardwareLoopTests", dependencies: ["CSMSProcess", "PSPTerminal", "PSPLink", "PSPCodec", "Transport", "Platform", "Timebase", "JSONLines",
                                                           "Station", "Ledger", "PaymentEngine", "Uplink", "CloudHTTP", "CardSafety", "WireFormat",
                                                           "TerminalPort", "FakeTerminal", "ChargerSim", "StationCore", "ChargerLine", "ChargerPort",
                                                           "TerminalConditions"]),
    ],
    swiftLanguageModes: [.v6]
)

// Nothing we ship uses Regex or _StringProcessing's string algorithms, and importing it
// implicitly links its regex engine into every executable (2 MiB of the daemon's 16).
// With the implicit import off, `String.contains(String)` and friends do not exist here;
// a substring search is Platform's `includes` (Platform/TextSearch.swift).
for target in package.targets where target.type == .regular || target.type == .executable {
    target.swiftSettings = (target.swiftSettings ?? []) + [
        .unsafeFlags(["-Xfrontend", "-disable-implicit-string-processing-module-import"]),
        // Optimised for size in release: the daemon's code is resident (fault-around maps most
        // of .text), and nothing it does is bound by instruction speed (daemon-bench, README).
        .unsafeFlags(["-Osize"], .when(configuration: .release)),
    ]
}
