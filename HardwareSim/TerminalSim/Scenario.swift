import CardSafety
import PSPCodec

/// What the simulated cardholder and bank do in one payment session.
public enum SessionScript: Equatable, Sendable {
    case approve
    /// Apollo: approve less than requested.
    case partial(amount: UInt32)
    case decline(reason: UInt8)
    /// The cardholder aborts on the terminal after the card was read.
    case cancel
    /// Nobody taps: the terminal waits until the host cancels or its card-detect timeout.
    case noCard
}

/// A card as the simulated terminal reports it: only masked data, as a real terminal does.
public struct SimCard: Equatable, Sendable {
    public var maskedPAN: String
    public var hash: [UInt8]
    public var brand: String
    /// The host transaction reference (DFCA03) the approval carries; nil: "PSPREF<session id>".
    public var hostReference: [UInt8]?
    /// More data objects appended to the Card Read and approval DOLs (for tests of what the
    /// daemon does with a terminal that sends card data it should not).
    public var extraDOL: [TLV] = []
    public init(maskedPAN: String = "476173******0119", hash: [UInt8] = [0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0xF6, 0x07, 0x18],
                brand: String = "VISA", hostReference: [UInt8]? = nil, extraDOL: [TLV] = []) {
        self.maskedPAN = maskedPAN; self.hash = hash; self.brand = brand
        self.hostReference = hostReference; self.extraDOL = extraDOL
    }
}

/// One scripted session: behaviour plus the card tapped.
public struct ScriptedSession: Equatable, Sendable {
    public var script: SessionScript
    public var card: SimCard
    public init(_ script: SessionScript, card: SimCard = SimCard()) { self.script = script; self.card = card }
}

/// When a fault fires.
public enum SimTrigger: Equatable, Sendable {
    /// Right after the nth approval (1-based) is sent.
    case approved(Int)
    /// Right after the nth Card Read is sent.
    case cardRead(Int)
    /// On receipt of the nth command with this name (Payter's name, e.g. "CommitSession").
    case command(String, Int)
    /// After the nth frame from the host.
    case frames(Int)
}

/// A misbehaviour of the terminal or its cable.
public enum SimFault: Equatable, Sendable {
    /// Write `count` random bytes on the line.
    case garbage(count: Int)
    /// Corrupt the checksum of the next frame sent.
    case corruptNext
    /// Terminal reboots: PSP state back to OFFLINE, card in progress lost, approved sessions kept.
    case reset
    /// Cable pulled for this long (the pty or TCP connection disappears), then plugged back.
    case unplug(milliseconds: Int)
    /// Ignore the next `count` commands with this name.
    case silent(command: String, count: Int)
    /// Answer the next `count` commands with this name with this frame instead (the command has no
    /// other effect): a refusal (`0x00`, `[0x01, 0x05]`) or a payload the host cannot read.
    case reply(command: String, header: UInt8, payload: [UInt8], count: Int)
    /// The tamper sensor trips: the terminal restarts into its security violation mode and stays
    /// there (`SimScenario.tampered`).
    case tamper
}

/// A fault armed for a trigger.
public struct ArmedFault: Equatable, Sendable {
    public var fault: SimFault
    public var trigger: SimTrigger
    public init(_ fault: SimFault, on trigger: SimTrigger) { self.fault = fault; self.trigger = trigger }
}

/// Everything that makes one simulated run: the terminal model and its script.
public struct SimScenario: Equatable, Sendable {
    public var family: SimFamily = .apollo
    /// Preamble the terminal sends (Apollo 0xAA; P6X configurable).
    public var preamble: UInt8 = PSPConstants.apolloPreamble
    public var magic: UInt8 = PSPConstants.magic
    public var headers: PSPHeaderMap = .standard
    /// Answer Start Session with an immediate Result (the docs do not say whether terminals do).
    public var startResult = true
    /// PSP protocol version the terminal speaks: 1 and 2 are legacy P6X with 36-byte frames;
    /// a Protocol command asking for another version is refused.
    public var protocolVersion: UInt8 = 3
    /// Milliseconds from Start Session to the card tap.
    public var tapDelay = 150
    /// Milliseconds from Auth Session to the bank's answer.
    public var authDelay = 100
    /// Per-command answer delay in milliseconds, by command name.
    public var delays: [String: Int] = [:]
    /// Write every frame one byte at a time, 1 ms apart, to exercise reassembly.
    public var splitBytes = false
    /// Card-detect timeout: with no tap, the scan ends with Session Cancelled.
    public var cardDetectMilliseconds = 60_000
    /// TCP only: close the connection after this much silence from the host (Apollo: 20 s).
    public var idleCloseMilliseconds: Int? = nil
    public var sessions: [ScriptedSession] = []
    /// What happens once the scripted sessions are used up.
    public var fallback = ScriptedSession(.approve)
    public var faults: [ArmedFault] = []
    public var identity = TerminalIdentity(layout: .apollo, serialNumber: "APO-SIM-000123", model: "Apollo Max",
                                           firmware: "sim/1.0", applications: ["psp/3.0"])
    public var seed: UInt64 = 1
    /// What an Apollo answers to Get Connection Info (0x44), byte for byte: the layout is
    /// undocumented (psp.md §4), so tests choose it. nil, or a P6X: the command is refused as
    /// unknown, like every command the simulated terminal does not have.
    public var connectionInfo: [UInt8]? = nil
    /// The terminal is in its security violation (tamper) mode: it answers Synchronize and Get
    /// Status but refuses Setup and Enable with "payment application in an invalid state"
    /// (0x0E, with detailed codes on). [INFERRED]: Payter documents that a tampered Apollo
    /// restarts into an inactive mode showing a security violation, not what PSP then says;
    /// this is the daemon's reading (`PSPLinkConfig.securityRefusals`), played back.
    public var tampered = false

    public init() {}

    /// Scenario defaults for a family: P6X uses another preamble and its fixed Request Ids layout.
    public static func defaults(for family: SimFamily) -> SimScenario {
        var s = SimScenario()
        s.family = family
        if family == .p6x {
            s.preamble = 0x55
            s.identity = TerminalIdentity(layout: .p6x, serialNumber: "P68-SIM-0042", firmware: "P6X-SIM 2.4",
                                          simSerial: "8931440000000000042", samSerials: ["0102030405060708"],
                                          macAddress: "00:1a:2b:3c:4d:5e")
        }
        return s
    }
}

/// Terminal models the simulator plays.
public enum SimFamily: String, Sendable {
    case apollo, p6x
}

/// Errors in scenario text, with the line they came from.
public struct ScenarioError: Error, Equatable, CustomStringConvertible {
    public var line: Int
    public var message: String
    public var description: String { line > 0 ? "line \(line): \(message)" : message }
}

/// Scenario text: one directive per line, `#` comments. The same directives work as
/// command-line flags (`--session approve`, `--fault "reset on approved 1"`).
///
///     family apollo|p6x
///     preamble 0x55            magic 0x3C
///     session approve|decline [reason=N]|partial amount=N|cancel|nocard [card=MASKED] [hash=HEX]
///             [brand=TEXT ('_' for a space)] [host-ref=TEXT] [dol=HEX (TLVs added to Card Read and approval)]
///     fallback <session spec>
///     delay <Command> <ms>     tap-delay <ms>     auth-delay <ms>
///     start-result on|off      split on|off       card-detect <ms>     idle-close <ms>
///     fault garbage N|corrupt|reset|unplug MS|silent <Command> N|reply <Command> <header> <hex payload|-> N|tamper
///           on approved N|cardread N|command <Command> N|frames N
///     tampered on|off          (start in the security violation mode)
///     seed N                   protocol-version 1|2|3
public enum ScenarioParser {
    public static func parse(_ text: String, into s: inout SimScenario) throws(ScenarioError) {
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }).map(String.init)
            guard !words.isEmpty else { continue }
            do throws(ScenarioError) { try apply(words, to: &s) } catch { throw ScenarioError(line: i + 1, message: error.message) }
        }
    }

    /// Applies one directive, given as words.
    public static func apply(_ w: [String], to s: inout SimScenario) throws(ScenarioError) {
        func fail(_ m: String) -> ScenarioError { ScenarioError(line: 0, message: m) }
        func int(_ x: String?) throws(ScenarioError) -> Int {
            guard let x, let v = x.hasPrefix("0x") ? Int(x.dropFirst(2), radix: 16) : Int(x), v >= 0 else {
                throw fail("expected a number, got \(x ?? "nothing")")
            }
            return v
        }
        func onOff(_ x: String?) throws(ScenarioError) -> Bool {
            switch x { case "on": return true; case "off": return false; default: throw fail("expected on or off") }
        }
        switch w[0] {
        case "family":
            guard w.count == 2, let f = SimFamily(rawValue: w[1]) else { throw fail("family is apollo or p6x") }
            let keep = s.sessions, faults = s.faults, tampered = s.tampered
            s = SimScenario.defaults(for: f)
            s.sessions = keep; s.faults = faults; s.tampered = tampered
        case "preamble": s.preamble = UInt8(clamping: try int(w.count > 1 ? w[1] : nil))
        case "magic": s.magic = UInt8(clamping: try int(w.count > 1 ? w[1] : nil))
        case "session": s.sessions.append(try session(Array(w.dropFirst())))
        case "fallback": s.fallback = try session(Array(w.dropFirst()))
        case "delay":
            guard w.count == 3 else { throw fail("delay <Command> <ms>") }
            s.delays[w[1]] = try int(w[2])
        case "tap-delay": s.tapDelay = try int(w.count > 1 ? w[1] : nil)
        case "auth-delay": s.authDelay = try int(w.count > 1 ? w[1] : nil)
        case "card-detect": s.cardDetectMilliseconds = try int(w.count > 1 ? w[1] : nil)
        case "idle-close": s.idleCloseMilliseconds = try int(w.count > 1 ? w[1] : nil)
        case "start-result": s.startResult = try onOff(w.count > 1 ? w[1] : nil)
        case "split": s.splitBytes = try onOff(w.count > 1 ? w[1] : nil)
        case "tampered": s.tampered = try onOff(w.count > 1 ? w[1] : nil)
        case "seed": s.seed = UInt64(try int(w.count > 1 ? w[1] : nil))
        case "protocol-version":
            let v = try int(w.count > 1 ? w[1] : nil)
            guard (1...3).contains(v) else { throw fail("protocol-version is 1, 2 or 3") }
            s.protocolVersion = UInt8(v)
        case "fault": s.faults.append(try fault(Array(w.dropFirst())))
        default: throw fail("unknown directive \(w[0])")
        }
    }

    static func session(_ w: [String]) throws(ScenarioError) -> ScriptedSession {
        func fail(_ m: String) -> ScenarioError { ScenarioError(line: 0, message: m) }
        guard let kind = w.first else { throw fail("session needs a kind") }
        var opts: [String: String] = [:]
        for kv in w.dropFirst() {
            let parts = kv.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { throw fail("expected key=value, got \(kv)") }
            opts[parts[0]] = parts[1]
        }
        var card = SimCard()
        if let c = opts.removeValue(forKey: "card") { card.maskedPAN = PANMask.mask(c) }
        // A terminal that breaks the rule and sends the whole card number: for the tests that
        // the daemon masks it everywhere it writes.
        if let c = opts.removeValue(forKey: "unmasked-pan") { card.maskedPAN = c }
        if let b = opts.removeValue(forKey: "brand") { card.brand = String(b.map { $0 == "_" ? " " : $0 }) }
        if let r = opts.removeValue(forKey: "host-ref") { card.hostReference = Array(r.utf8) }
        if let d = opts.removeValue(forKey: "dol") {
            guard let b = hexBytes(d), let tlvs = try? BERTLV.parse(b[...]) else { throw fail("dol must be hex BER-TLV") }
            card.extraDOL = tlvs
        }
        if let h = opts.removeValue(forKey: "hash") {
            guard let b = hexBytes(h), !b.isEmpty else { throw fail("hash must be hex") }
            card.hash = b
        }
        let script: SessionScript
        switch kind {
        case "approve": script = .approve
        case "decline":
            let r = opts.removeValue(forKey: "reason") ?? "9"
            guard let v = UInt8(r) else { throw fail("reason must be 0-255") }
            script = .decline(reason: v)
        case "partial":
            guard let a = opts.removeValue(forKey: "amount"), let v = UInt32(a) else { throw fail("partial needs amount=N") }
            script = .partial(amount: v)
        case "cancel": script = .cancel
        case "nocard": script = .noCard
        default: throw fail("unknown session kind \(kind)")
        }
        if let k = opts.keys.first { throw fail("unknown session option \(k)") }
        return ScriptedSession(script, card: card)
    }

    static func fault(_ w: [String]) throws(ScenarioError) -> ArmedFault {
        func fail(_ m: String) -> ScenarioError { ScenarioError(line: 0, message: m) }
        guard let on = w.firstIndex(of: "on") else { throw fail("fault needs 'on <trigger>'") }
        let f = Array(w[..<on]), t = Array(w[(on + 1)...])
        let fault: SimFault
        switch (f.first, f.count) {
        case ("garbage", 2): guard let n = Int(f[1]), n > 0 else { throw fail("garbage N") }; fault = .garbage(count: n)
        case ("corrupt", 1): fault = .corruptNext
        case ("reset", 1): fault = .reset
        case ("tamper", 1): fault = .tamper
        case ("unplug", 2): guard let n = Int(f[1]), n >= 0 else { throw fail("unplug MS") }; fault = .unplug(milliseconds: n)
        case ("silent", 3): guard let n = Int(f[2]), n > 0 else { throw fail("silent <Command> N") }; fault = .silent(command: f[1], count: n)
        case ("reply", 5):
            let h = f[2].hasPrefix("0x") ? UInt8(f[2].dropFirst(2), radix: 16) : UInt8(f[2])
            let payload = f[3] == "-" ? [] : hexBytes(f[3])
            guard let h, let payload, let n = Int(f[4]), n > 0 else { throw fail("reply <Command> <header> <hex payload|-> N") }
            fault = .reply(command: f[1], header: h, payload: payload, count: n)
        default: throw fail("unknown fault \(f.joined(separator: " "))")
        }
        let n = t.last.flatMap { Int($0) } ?? 1
        let trigger: SimTrigger
        switch t.first {
        case "approved": trigger = .approved(n)
        case "cardread": trigger = .cardRead(n)
        case "frames": trigger = .frames(n)
        case "command":
            guard t.count >= 2 else { throw fail("command <Command> [N]") }
            trigger = .command(t[1], t.count >= 3 ? n : 1)
        default: throw fail("unknown trigger \(t.joined(separator: " "))")
        }
        return ArmedFault(fault, on: trigger)
    }
}
