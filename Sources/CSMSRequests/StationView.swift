import JSONLines

/// What the answers to the CSMS's requests may read of the station: a value the daemon fills in
/// from its engine, ledger, outbox, terminal and configuration before each request. The handler
/// never asks for more, so every answer is a function of this view, the payload and the time.
public struct StationView: Equatable, Sendable {
    /// The station's identity, as its BootNotification gives it.
    public struct Identity: Equatable, Sendable {
        public var vendor: String
        public var model: String
        public var serialNumber: String?
        public var firmwareVersion: String?

        public init(vendor: String, model: String, serialNumber: String? = nil, firmwareVersion: String? = nil) {
            self.vendor = vendor; self.model = model; self.serialNumber = serialNumber; self.firmwareVersion = firmwareVersion
        }
    }

    /// One EVSE (OCPP numbers them from 1; the station's connector n is EVSE n).
    public struct EVSE: Equatable, Sendable {
        /// The EVSE id, 1 or more.
        public var id: Int
        /// Its connectors, numbered 1...connectors.
        public var connectors: Int
        /// Operative (the terminal may arm it) or inoperative (set so by ChangeAvailability or the station).
        public var operative: Bool
        /// A payment session is under way here and has not settled (armed, authorised, charging,
        /// or waiting for its capture): what Reset OnIdle and ChangeAvailability wait for.
        public var sessionOngoing: Bool
        /// The OCPP transaction of that session, once it has one.
        public var transactionId: String?
        /// That transaction can be reported on request now (TriggerMessage TransactionEvent):
        /// started, not ended, and not asked about too often (`PaymentEngine.reportable`).
        public var transactionReportable: Bool

        public init(id: Int, connectors: Int = 1, operative: Bool = true, sessionOngoing: Bool = false, transactionId: String? = nil,
                    transactionReportable: Bool = false) {
            self.id = id; self.connectors = connectors; self.operative = operative
            self.sessionOngoing = sessionOngoing; self.transactionId = transactionId
            self.transactionReportable = transactionReportable
        }

        /// Something has yet to settle here: a session, or a transaction the view names even
        /// where `sessionOngoing` was left false.
        public var busy: Bool { sessionOngoing || transactionId != nil }
    }

    /// A transaction the ledger still holds: ongoing, or ended with messages not yet delivered.
    public struct Transaction: Equatable, Sendable {
        public var id: String
        /// The transaction has not ended.
        public var ongoing: Bool
        /// The outbox still holds messages of it (GetTransactionStatus's `messagesInQueue`).
        public var messagesInQueue: Bool

        public init(id: String, ongoing: Bool, messagesInQueue: Bool) {
            self.id = id; self.ongoing = ongoing; self.messagesInQueue = messagesInQueue
        }
    }

    /// The payment terminal's inventory; nil where the terminal has not said (or has no such thing).
    public struct TerminalInventory: Equatable, Sendable {
        public var vendor: String?
        public var model: String?
        public var serialNumber: String?
        public var firmwareVersion: String?
        /// The SIM's ICCID.
        public var simSerial: String?
        /// `payment.processor`: who acquires the payments (platform or own).
        public var processorOption: String?
        /// Payter's Terminal Transfer Number.
        public var transferNumber: String?

        public init(vendor: String? = nil, model: String? = nil, serialNumber: String? = nil, firmwareVersion: String? = nil,
                    simSerial: String? = nil, processorOption: String? = nil, transferNumber: String? = nil) {
            self.vendor = vendor; self.model = model; self.serialNumber = serialNumber; self.firmwareVersion = firmwareVersion
            self.simSerial = simSerial; self.processorOption = processorOption; self.transferNumber = transferNumber
        }
    }

    /// An open reservation.
    public struct Reservation: Equatable, Sendable {
        public var id: Int64
        /// The EVSE it holds, nil when it is for any EVSE.
        public var evseId: Int?

        public init(id: Int64, evseId: Int? = nil) { self.id = id; self.evseId = evseId }
    }

    /// The settings the CSMS may change through SetVariables, as they are now.
    public struct Settings: Equatable, Sendable {
        /// `OCPPCommCtrlr.HeartbeatInterval` in seconds, 0 = never (`cloud.heartbeat_seconds`).
        public var heartbeatIntervalSeconds: Int64
        /// `AuthCtrlr.OfflineTxForUnknownIdEnabled`: a card the platform cannot be asked about in
        /// time charges (`cloud.offline_policy = allow`) or not (`deny`).
        public var offlineChargingAllowed: Bool

        public init(heartbeatIntervalSeconds: Int64, offlineChargingAllowed: Bool) {
            self.heartbeatIntervalSeconds = heartbeatIntervalSeconds; self.offlineChargingAllowed = offlineChargingAllowed
        }
    }

    /// Who the station is (ChargingStation's variables).
    public var identity: Identity
    /// The EVSEs, in id order.
    public var evses: [EVSE]
    /// The whole station operative (a station-wide ChangeAvailability Inoperative clears it).
    public var stationOperative: Bool
    /// What the ledger still holds of transactions (GetTransactionStatus, RequestStopTransaction).
    public var transactions: [Transaction]
    /// PaymentCtrlr's variables.
    public var terminal: TerminalInventory
    /// The charger can release a connector's cable lock on command.
    public var unlockSupported: Bool
    /// Open reservations (CancelReservation).
    public var reservations: [Reservation]
    /// The writable variables' values now.
    public var settings: Settings
    /// The CSMS accepted the last BootNotification (a triggered BootNotification is then refused).
    public var bootAccepted: Bool

    public init(identity: Identity, evses: [EVSE], stationOperative: Bool = true, transactions: [Transaction] = [],
                terminal: TerminalInventory = TerminalInventory(), unlockSupported: Bool = false, reservations: [Reservation] = [],
                settings: Settings, bootAccepted: Bool = true) {
        self.identity = identity; self.evses = evses; self.stationOperative = stationOperative; self.transactions = transactions
        self.terminal = terminal; self.unlockSupported = unlockSupported; self.reservations = reservations
        self.settings = settings; self.bootAccepted = bootAccepted
    }

    /// The EVSE with this id, if the station has one.
    public func evse(_ id: Int64) -> EVSE? { evses.first { Int64($0.id) == id } }

    /// A session is under way on some EVSE.
    public var anySessionOngoing: Bool { evses.contains { $0.busy } }
}

/// What a station can be asked to send by TriggerMessage.
public enum TriggeredMessage: String, Equatable, Sendable, CaseIterable {
    case bootNotification = "BootNotification"
    case heartbeat = "Heartbeat"
    case statusNotification = "StatusNotification"
    /// An Updated event (triggerReason Trigger) for each reportable transaction in scope,
    /// written ahead through the engine so its seqNo and id survive a restart.
    case transactionEvent = "TransactionEvent"
}

/// How a Reset is carried out.
public enum ResetKind: Equatable, Sendable {
    /// Now: ongoing sessions are stopped first (stoppedReason ImmediateReset) and settled after the restart.
    case immediate
    /// As soon as no session is under way; new sessions are not started meanwhile.
    case onIdle
}

/// What the station must do after it has sent the answer; in order.
public enum StationAction: Equatable, Sendable {
    /// Stop the session of this transaction (RequestStopTransaction): stoppedReason Remote.
    case stopTransaction(transactionId: String)
    /// Send this message; `evseId` narrows TransactionEvent to one EVSE (nil: every transaction)
    /// and names StatusNotification's EVSE (always given; its one connector, or each of its connectors).
    case trigger(TriggeredMessage, evseId: Int?)
    case reset(ResetKind)
    /// Make the EVSE (nil: the whole station) operative or inoperative. Going inoperative while a
    /// session is under way takes effect when it has settled; the terminal stops arming that
    /// connector at once.
    case setAvailability(evseId: Int?, operative: Bool)
    /// Apply a new value; names are the device model's spelling, the value is canonical
    /// (an integer in decimal, `true`/`false`).
    case setVariable(component: String, variable: String, value: String)
    /// Send these NotifyReportRequest payloads, in order (one GetBaseReport's pages).
    case sendReport(requestId: Int64, report: [JSON])
    case cancelReservation(id: Int64)
    /// Release the cable lock of this connector.
    case unlockConnector(evseId: Int, connectorId: Int)
}

/// The answer to a request: the CALLRESULT payload and what to do once it is sent.
public struct HandlerResult: Equatable, Sendable {
    /// The CALLRESULT's payload: the action's Response, valid against its schema.
    public var payload: JSON
    /// What to do once the answer is sent, in order (nothing for a refusal or a question).
    public var actions: [StationAction]

    public init(payload: JSON, actions: [StationAction] = []) { self.payload = payload; self.actions = actions }
}
