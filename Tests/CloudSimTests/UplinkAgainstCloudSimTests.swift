import CloudHTTP
import CloudSim
import Glibc
import JSONLines
import OCPPJ
import OCPPJUplink
import PaymentEngine
import Platform
import Testing
import Timebase
import Uplink
import WebSocket

/// The daemon's own OCPP-J uplink (`OCPPJUplink`) against cloud-sim's OCPP-J binding, both on one
/// event loop over loopback, as the demo hosts them: Boot first, the outbox's ids as message ids,
/// Authorize as the card decider, and the scripted faults as the station meets them.
@Suite(.serialized) struct UplinkAgainstCloudSimTests {
    init() throws { try Signals.ignore(SIGPIPE) }

    final class Rig {
        let loop: EventLoop
        let server: CloudServer
        let client: CloudHTTP.HTTPClient
        let uplink: OCPPJUplink
        var ready = 0
        var notices: [String] = []
        var records: [CloudJSON] = []

        init(core: CloudSimCore = CloudSimCore(station: "CS-1")) throws {
            loop = try EventLoop()
            server = try CloudServer(loop: loop, port: 0, core: core, record: nil)
            server.readsStandardInput = false
            try server.start()
            client = try CloudHTTP.HTTPClient(loop: loop, tls: TLSSettings())
            var settings = OCPPJSettings(url: try WebSocketURL(parsing: "ws://127.0.0.1:\(server.port)/ocpp"), stationId: "CS-1",
                                         bootPayload: BootPayload.make(reason: .powerUp, vendor: "paybridge", model: "test", serial: "CS-1"))
            settings.backoffInitial = .milliseconds(100)
            settings.backoffCap = .milliseconds(500)
            uplink = OCPPJUplink(loop: loop, client: client, settings: settings, seed: 11)
            uplink.onReady = { [unowned self] in self.ready += 1 }
            uplink.onNotice = { [unowned self] _, text in self.notices.append(text) }
            server.onRecord = { [unowned self] in self.records.append($0) }
        }

        @discardableResult
        func run(_ seconds: Int = 10, until: () -> Bool) throws -> Bool {
            let deadline = MonotonicClock.now() + .seconds(Int64(seconds))
            while !until() {
                guard MonotonicClock.now() < deadline else { return false }
                try loop.runOnce(maxWait: .milliseconds(20))
            }
            return true
        }

        func deliver(_ m: OutboxMessage) throws -> DeliveryResult? {
            var result: DeliveryResult?
            uplink.send(m) { result = $0 }
            try run { result != nil }
            return result
        }

        func calls(_ action: String) -> [CloudJSON] { records.filter { $0["action"]?.stringValue == action } }
    }

    static let card = CardIdentity(maskedPAN: "476173******0119", hash: Array(repeating: 0xAB, count: 20), brand: "VISA")

    static func event(_ tx: String, seq: Int, stage: OCPPPayload.Stage = .charging) -> OutboxMessage {
        let body = OCPPPayload.transactionEvent(transactionId: tx, seqNo: seq, stage: stage, at: 1_765_000_000_000 + Int64(seq) * 1000,
                                                offline: false, card: card, connector: 1, currency: "EUR")
        return OutboxMessage(id: MessageIDs.derive("\(tx)/TransactionEvent/\(seq)"), queue: tx, action: .transactionEvent,
                             kind: seq == 0 ? .started : .updated, body: Array(body.text.utf8))
    }

    @Test func bootsDeliversAndAuthorizes() throws {
        let rig = try Rig()
        rig.uplink.start()
        #expect(try rig.run { rig.ready == 1 })
        #expect(rig.uplink.registration == .accepted && rig.uplink.subprotocol == "ocpp2.1")
        #expect(rig.uplink.heartbeatInterval == .seconds(300))
        let m = Self.event("tx-1", seq: 0, stage: .started(authorised: 5000))
        #expect(try rig.deliver(m) == .delivered)
        #expect(rig.calls("TransactionEvent").map { $0["messageId"]?.stringValue } == [m.id])

        var decisions: [CardDecision] = []
        rig.uplink.decide(session: 1, card: Self.card, connector: 1) { decisions.append($0) }
        try rig.run { decisions.count == 1 }
        rig.server.perform(.refuseCard(last4: "0119", status: "Blocked"))
        rig.uplink.decide(session: 2, card: Self.card, connector: 1) { decisions.append($0) }
        try rig.run { decisions.count == 2 }
        #expect(decisions.map(\.allowed) == [true, false])
        #expect(rig.records.first?["status"] == .int(101))
        #expect(rig.records.allSatisfy { $0["binding"] == .string("ocpp-j") && $0["station"] == .string("CS-1") })
        rig.uplink.stop()
    }

    @Test func faultsAsTheStationMeetsThem() throws {
        let rig = try Rig()
        rig.uplink.start()
        #expect(try rig.run { rig.ready == 1 })
        // fail5xx: an InternalError; the retry under the same id is processed.
        rig.server.perform(.fault(.fail5xx, .action(.transactionEvent), count: 1))
        let m0 = Self.event("tx-2", seq: 0, stage: .started(authorised: 5000))
        #expect(try rig.deliver(m0) == .callError(code: "InternalError", description: "unavailable (cloud-sim)"))
        #expect(try rig.deliver(m0) == .delivered)

        // drop: processed, the connection goes with the answer; the station boots again and the
        // resent message is a duplicate.
        rig.server.perform(.fault(.drop, .action(.transactionEvent), count: 1))
        let m1 = Self.event("tx-2", seq: 1)
        guard case .unreachable? = try rig.deliver(m1) else { Issue.record("the drop should leave the message unreachable"); return }
        #expect(try rig.run { rig.ready == 2 })
        #expect(try rig.deliver(m1) == .delivered)
        #expect(rig.calls("TransactionEvent").compactMap { $0["duplicate"]?.boolValue } == [false, false, false, true])

        // close-ws: the answer arrives, then the close; the station connects and boots again.
        rig.server.perform(.closeWebSocket(afterMessages: 1))
        #expect(try rig.deliver(Self.event("tx-2", seq: 2)) == .delivered)
        #expect(try rig.run { rig.ready == 3 })

        // refuse-upgrades: the next attempt is refused, a later one accepted.
        rig.server.perform(.refuseUpgrades(count: 1, status: 503))
        rig.server.perform(.closeWebSocket(afterMessages: 1))
        #expect(try rig.deliver(Self.event("tx-2", seq: 3)) == .delivered)
        #expect(try rig.run { rig.ready == 4 })
        let upgrades = rig.records.filter { $0["action"] == .null }.compactMap { $0["status"]?.intValue }
        #expect(upgrades == [101, 101, 101, 503, 101])
        #expect(rig.calls("BootNotification").count == 4)
        rig.uplink.stop()
    }
}

extension JSON {
    var boolValue: Bool? { if case .bool(let b) = self { return b } else { return nil } }
    var intValue: Int? { if case .int(let n) = self { return Int(n) } else { return nil } }
}
