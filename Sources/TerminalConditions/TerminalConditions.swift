import PaymentEngine
import TerminalPort

/// The operating rules a terminal's conditions set (issue 13), as a pure value: which terminal
/// this station trusts, when it last saw it powered and up, and what follows from that.
///
/// - **Swap and tamper.** The first terminal a fresh ledger sees is remembered. A terminal whose
///   serial number differs is a swap; a security alert the terminal reports (tamper) is the same
///   kind of event. Either disables payments, shows a warning and sends a security event once,
///   until an administrator accepts the terminal (`accepted`), which records it and enables
///   payments again. An alert stays until accepted even if the old terminal comes back: the
///   event itself (someone swapped the terminal, or opened it) is what a person must look at.
/// - **Battery (Apollo family).** An Apollo's tamper protection runs on a battery that lasts
///   about three months unpowered; after `batteryWarnDays` away the status asks for it to be
///   charged and checked for tampering, and the cloud hears of it once per absence.
/// - **Storage.** After more than `storageDays` away, a test transaction is recommended until
///   one succeeds.
///
/// Inputs go in with `handle` (wall-clock milliseconds passed in, no clock read); what must be
/// written, sent or changed comes out as `Effect`s. The state the ledger keeps is one snapshot
/// record (`recordKind`), written sparingly: on an identity change, an alert, an acceptance, a
/// link going down, a flag changing, and "last seen up" at most once per
/// `lastSeenPersistInterval`. Each snapshot carries a generation; the newest wins at recovery
/// and is the only one compaction keeps (`isLive`).
public struct TerminalConditions: Equatable, Sendable {
    /// The limits in force (`terminal.battery_warn_days`, `terminal.storage_days`, the family).
    public struct Settings: Equatable, Sendable {
        /// Days away or unpowered after which a battery-backed terminal needs charging and checking.
        public var batteryWarnDays: Int
        /// Days away after which a test transaction is recommended.
        public var storageDays: Int
        /// Whether the terminal's tamper protection lives on a battery (the Apollo family); the
        /// battery warning applies only then.
        public var batteryBacked: Bool

        public init(batteryWarnDays: Int = TerminalConditions.defaultBatteryWarnDays,
                    storageDays: Int = TerminalConditions.defaultStorageDays, batteryBacked: Bool = true) {
            self.batteryWarnDays = batteryWarnDays; self.storageDays = storageDays; self.batteryBacked = batteryBacked
        }
    }

    /// What happened, each with the wall-clock time it happened at (milliseconds since 1970).
    public enum Input: Equatable, Sendable {
        /// The daemon started (after recovery).
        case started(wallMillis: Int64)
        /// The terminal said who it is.
        case identified(TerminalInventory, wallMillis: Int64)
        /// The link came up: the terminal is powered and takes commands.
        case linkUp(wallMillis: Int64)
        /// The link went down.
        case linkDown(wallMillis: Int64)
        /// The link is still up (the station's periodic refresh while it is).
        case stillUp(wallMillis: Int64)
        /// Time passed with the link down (the station's periodic check): the battery rule.
        case timePassed(wallMillis: Int64)
        /// The terminal reported tamper or a security error, in words for a person.
        case securityAlert(String, wallMillis: Int64)
        /// An administrator accepted the terminal now connected (`paybridgectl accept-terminal`).
        case accepted(wallMillis: Int64)
        /// A transaction went through on this terminal: the storage recommendation is done.
        case testTransactionSucceeded(wallMillis: Int64)
    }

    /// What the shell does about an input.
    public enum Effect: Equatable, Sendable {
        /// Append this record to the ledger; what follows it in the same list depends on it being durable.
        case persist(kind: UInt16, body: [UInt8])
        /// Tell the cloud (OCPP SecurityEventNotification `type`, with `techInfo`).
        case securityEvent(type: String, techInfo: String)
        /// Take no new payments, for `reason`.
        case blockPayments(reason: String)
        /// The conditions no longer stand in the way of payments (after the record before it is durable).
        case unblockPayments
        /// For the log.
        case notice(NoticeSeverity, String)
    }

    /// A terminal that is not the one remembered.
    public struct Swap: Equatable, Sendable {
        /// The terminal this station trusted.
        public var expected: TerminalInventory
        /// The terminal now connected.
        public var reported: TerminalInventory
        /// When the swap was seen.
        public var at: Int64
        public init(expected: TerminalInventory, reported: TerminalInventory, at: Int64) {
            self.expected = expected; self.reported = reported; self.at = at
        }
    }

    /// A tamper or security error the terminal reported.
    public struct Alert: Equatable, Sendable {
        /// What the terminal said, in words for a person (cut to `maxTextBytes`).
        public var text: String
        /// When it said it.
        public var at: Int64
        public init(text: String, at: Int64) { self.text = text; self.at = at }
    }

    /// The OCPP security event types sent. OCPP 2.1 lists `TamperDetectionActivated` (critical);
    /// it has no type for a swapped component or a battery at risk, and its list is a "should",
    /// the field a string of 50: the two others are our own, named so a CSMS log reads plainly.
    public enum EventType {
        /// The terminal reported tamper or a security error.
        public static let tamper = "TamperDetectionActivated"
        /// A terminal with another serial number than the one remembered.
        public static let replaced = "TerminalReplaced"
        /// A battery-backed terminal was away or unpowered for more than `batteryWarnDays`: its
        /// tamper battery may be depleted, which puts it into a security violation. A security
        /// event rather than NotifyEvent: the risk is to the terminal's tamper protection, and a
        /// NotifyEvent would need a device-model component the platform does not know.
        public static let battery = "TerminalBatteryAtRisk"
    }

    /// Below Payter's three months: an Apollo's tamper battery lasts about that long unpowered.
    public static let defaultBatteryWarnDays = 80
    /// A terminal away this long is tried with a test transaction.
    public static let defaultStorageDays = 30
    /// `terminal.battery_warn_days` takes these: more than 90 would warn when the battery may already be flat.
    public static let batteryWarnDayRange: ClosedRange<Int> = 1...90
    /// `terminal.storage_days` takes these.
    public static let storageDayRange: ClosedRange<Int> = 1...365
    /// "Last seen up" is written at most this often while the link stays up (never per frame);
    /// the station also checks the away rules at this interval.
    public static let lastSeenPersistInterval: Duration = .seconds(3600)
    /// At a link going down "last seen up" is written, unless the one on disk is younger than
    /// this: a flapping link must not write a record per flap, and the rules count in days.
    public static let linkDownPersistGap: Duration = .seconds(60)
    /// An alert's text is cut to this many bytes of UTF-8.
    public static let maxTextBytes = 200
    static let dayMillis: Int64 = 86_400_000
    /// A wall-clock time before this (2020-01-01) is a clock not yet set (an RTC-less controller
    /// before NTP): it is neither recorded as "last seen up" nor used to judge an absence, or the
    /// first NTP step would look like decades away.
    public static let plausibleWallMillis: Int64 = 1_577_836_800_000

    /// The limits in force; a reload may change them.
    public var settings: Settings
    /// The terminal this station trusts: the first one seen, or the last one accepted.
    public private(set) var known: TerminalInventory?
    /// The terminal as it last identified itself (since start; not persisted).
    public private(set) var reported: TerminalInventory?
    /// When the terminal was last seen powered and up (wall-clock milliseconds).
    public private(set) var lastSeenUpMillis: Int64?
    /// A swap waiting for acceptance.
    public private(set) var swap: Swap?
    /// A tamper or security alert waiting for acceptance.
    public private(set) var alert: Alert?
    /// A test transaction is recommended (the terminal was away more than `storageDays`).
    public private(set) var recommendsTestTransaction = false
    /// The cloud has heard of the current absence (battery rule); cleared when the terminal is back.
    public private(set) var batteryNoticeSent = false
    /// The link is up now (not persisted: every start begins with it down).
    public private(set) var linkUp = false
    /// The generation of the newest snapshot written or recovered: compaction keeps that one only.
    public private(set) var generation: UInt64 = 0
    /// Condition records recovery could not read (kept in the ledger, ignored here).
    public private(set) var unreadableRecords = 0
    /// The latest wall-clock time an input carried: what the away rules are judged at.
    public private(set) var latestWallMillis: Int64?
    /// The time last written as "last seen up".
    var persistedSeenMillis: Int64?

    /// A fresh station: nothing known; or, with `records`, what the newest readable snapshot among
    /// them says. Other kinds are ignored; unreadable condition records are counted, never trusted.
    public init(settings: Settings = Settings(), records: [(kind: UInt16, body: [UInt8])] = []) {
        self.settings = settings
        var best: Snapshot?
        for r in records where TerminalConditions.recordKinds.contains(r.kind) {
            guard let s = try? Snapshot.decode(kind: r.kind, body: r.body) else { unreadableRecords += 1; continue }
            if best == nil || s.generation > best!.generation { best = s }
        }
        guard let s = best else { return }
        generation = s.generation
        known = s.known
        lastSeenUpMillis = s.lastSeenUp
        persistedSeenMillis = s.lastSeenUp
        swap = s.swap
        alert = s.alert
        recommendsTestTransaction = s.recommendsTest
        batteryNoticeSent = s.batteryNoticeSent
    }

    // MARK: queries for status

    /// Why the conditions stop payments (a swap or an alert waiting for acceptance); nil when they do not.
    public var paymentsBlockedReason: String? {
        var parts: [String] = []
        if let s = swap {
            parts.append("terminal replaced: serial \(s.reported.serialNumber) connected, \(s.expected.serialNumber) expected")
        }
        if let a = alert { parts.append("terminal security alert: \(a.text)") }
        guard !parts.isEmpty else { return nil }
        return parts.joined(separator: "; ") + "; payments disabled until an administrator accepts the terminal (paybridgectl accept-terminal)"
    }

    /// Whether the battery rule applies now: a battery-backed terminal away for more than `batteryWarnDays`.
    public var batteryWarning: Bool {
        guard settings.batteryBacked, !linkUp, let away = awayMillis else { return false }
        return away > Int64(settings.batteryWarnDays) * Self.dayMillis
    }

    /// How long the terminal has been away, judged at the latest input; nil while up or never seen.
    public var awayMillis: Int64? {
        guard !linkUp, let seen = lastSeenUpMillis, let now = latestWallMillis else { return nil }
        return max(0, now - seen)
    }

    /// What a person should know about the terminal's conditions, one line each.
    public var warnings: [String] {
        var w: [String] = []
        if let reason = paymentsBlockedReason { w.append(reason) }
        if batteryWarning, let away = awayMillis {
            w.append("terminal not seen powered for \(away / Self.dayMillis) days (more than \(settings.batteryWarnDays)): "
                     + "charge it and check it for tampering; its tamper battery lasts about three months")
        }
        if recommendsTestTransaction {
            w.append("terminal was away for more than \(settings.storageDays) days: run a test transaction")
        }
        return w
    }

    // MARK: inputs

    /// The effects of one input, in the order the shell carries them out.
    public mutating func handle(_ input: Input) -> [Effect] {
        let blockedBefore = paymentsBlockedReason
        var fx: [Effect] = []
        var dirty = false
        switch input {
        case .started(let wall):
            see(wall)
            dirty = checkStorage(wall) || dirty
            dirty = checkBattery(&fx) || dirty
        case let .identified(inventory, wall):
            see(wall)
            let inventory = Self.bounded(inventory)
            reported = inventory
            if let k = known {
                if k.serialNumber == inventory.serialNumber {
                    if k != inventory, swap == nil {
                        // The same terminal after a firmware update or a new SIM: the inventory follows.
                        known = inventory
                        dirty = true
                        fx.append(.notice(.info, "terminal \(inventory.serialNumber): inventory updated"))
                    }
                } else if swap?.reported.serialNumber != inventory.serialNumber {
                    swap = Swap(expected: k, reported: inventory, at: wall)
                    dirty = true
                    fx.append(.securityEvent(type: EventType.replaced,
                                             techInfo: "payment terminal \(k.serialNumber) replaced by \(inventory.serialNumber)"))
                    fx.append(.notice(.error, "terminal replaced: serial \(inventory.serialNumber) connected, \(k.serialNumber) expected; "
                                      + "payments disabled until accepted"))
                }
            } else {
                known = inventory
                dirty = true
                fx.append(.notice(.info, "terminal \(inventory.serialNumber) recorded (the first this station has seen)"))
            }
        case .linkUp(let wall):
            see(wall)
            dirty = checkStorage(wall) || dirty
            linkUp = true
            if batteryNoticeSent { batteryNoticeSent = false; dirty = true }
            dirty = refreshSeen(wall) || dirty
        case .stillUp(let wall):
            see(wall)
            linkUp = true
            dirty = refreshSeen(wall) || dirty
        case .linkDown(let wall):
            see(wall)
            if linkUp {
                linkUp = false
                guard wall >= Self.plausibleWallMillis else { break }
                lastSeenUpMillis = wall
                // A flapping link writes at most one record per `linkDownPersistGap`.
                dirty = persistedSeenMillis.map { wall - $0 >= Self.millis(Self.linkDownPersistGap) || wall < $0 } ?? true
            }
        case .timePassed(let wall):
            see(wall)
            if linkUp { dirty = refreshSeen(wall) || dirty }
            dirty = checkBattery(&fx) || dirty
        case let .securityAlert(text, wall):
            see(wall)
            let text = Self.cut(text, to: Self.maxTextBytes)
            if alert?.text != text {
                alert = Alert(text: text, at: wall)
                dirty = true
                let serial = reported?.serialNumber ?? known?.serialNumber ?? "unknown"
                fx.append(.securityEvent(type: EventType.tamper, techInfo: "payment terminal \(serial): \(text)"))
                fx.append(.notice(.error, "terminal security alert: \(text); payments disabled until accepted"))
            }
        case .accepted(let wall):
            see(wall)
            if let r = reported, known != r { known = r; dirty = true }
            if swap != nil || alert != nil { swap = nil; alert = nil; dirty = true }
            if dirty { fx.append(.notice(.warning, "terminal \(known?.serialNumber ?? "unknown") accepted by an administrator")) }
        case .testTransactionSucceeded(let wall):
            see(wall)
            if recommendsTestTransaction {
                recommendsTestTransaction = false
                dirty = true
                fx.append(.notice(.info, "terminal: test transaction succeeded"))
            }
        }
        if dirty { fx.append(persist()) }
        let blockedAfter = paymentsBlockedReason
        if let reason = blockedAfter, blockedBefore == nil {
            fx.append(.blockPayments(reason: reason))
        } else if blockedAfter == nil, blockedBefore != nil {
            // After the record: the acceptance is durable before payments resume.
            fx.append(.unblockPayments)
        }
        return fx
    }

    mutating func see(_ wall: Int64) {
        guard wall >= Self.plausibleWallMillis else { return }
        latestWallMillis = max(latestWallMillis ?? wall, wall)
    }

    /// "Last seen up" now; whether it is due to be written.
    mutating func refreshSeen(_ wall: Int64) -> Bool {
        guard wall >= Self.plausibleWallMillis else { return false }
        lastSeenUpMillis = wall
        guard let last = persistedSeenMillis else { return true }
        // A clock stepped back counts as due: the stored time would otherwise stay in the future.
        return wall - last >= Self.millis(Self.lastSeenPersistInterval) || wall < last
    }

    /// The storage rule at `wall`: whether the recommendation was newly set.
    mutating func checkStorage(_ wall: Int64) -> Bool {
        guard wall >= Self.plausibleWallMillis, !recommendsTestTransaction, let seen = lastSeenUpMillis, !linkUp,
              wall - seen > Int64(settings.storageDays) * Self.dayMillis else { return false }
        recommendsTestTransaction = true
        return true
    }

    /// The battery rule: the cloud hears of an absence once. Whether a record is due.
    mutating func checkBattery(_ fx: inout [Effect]) -> Bool {
        guard batteryWarning, !batteryNoticeSent, let away = awayMillis else { return false }
        batteryNoticeSent = true
        let serial = known?.serialNumber ?? "unknown"
        fx.append(.securityEvent(type: EventType.battery,
                                 techInfo: "payment terminal \(serial) not seen powered for \(away / Self.dayMillis) days: "
                                 + "charge it and check it for tampering"))
        fx.append(.notice(.warning, "terminal \(serial) not seen powered for \(away / Self.dayMillis) days: charge it and check it for tampering"))
        return true
    }

    /// The snapshot to append now (the next generation).
    mutating func persist() -> Effect {
        generation &+= 1
        persistedSeenMillis = lastSeenUpMillis
        let s = Snapshot(generation: generation, known: known, lastSeenUp: lastSeenUpMillis, swap: swap, alert: alert,
                         recommendsTest: recommendsTestTransaction, batteryNoticeSent: batteryNoticeSent)
        return .persist(kind: Self.recordKind, body: s.encodeBody())
    }

    /// An inventory whose fields fit the record format.
    static func bounded(_ i: TerminalInventory) -> TerminalInventory {
        TerminalInventory(serialNumber: cut(i.serialNumber, to: Snapshot.maxFieldBytes), model: i.model.map { cut($0, to: Snapshot.maxFieldBytes) },
                          firmware: i.firmware.map { cut($0, to: Snapshot.maxFieldBytes) },
                          simSerial: i.simSerial.map { cut($0, to: Snapshot.maxFieldBytes) },
                          samSerials: i.samSerials.prefix(Snapshot.maxSAMs).map { cut($0, to: Snapshot.maxFieldBytes) })
    }

    static func millis(_ d: Duration) -> Int64 { d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000 }

    /// `s` cut to at most `n` bytes of UTF-8, on a character boundary.
    static func cut(_ s: String, to n: Int) -> String {
        guard s.utf8.count > n else { return s }
        var out = Substring(s)
        while out.utf8.count > n { out = out.dropLast() }
        return String(out)
    }
}
