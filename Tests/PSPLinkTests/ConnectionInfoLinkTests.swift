import Testing
import PSPCodec
import PSPLink
import TerminalSim
import Timebase

/// Get Connection Info (0x44) is an inventory query: asked of an Apollo once per bring-up, after
/// Request Ids and before anything the engine asks, never of a P6X or with `.off`; a refusal,
/// an unreadable answer or silence is "not available", counted, and never takes the link down.
@Suite struct ConnectionInfoQuery {
    static let text = "ip=10.0.0.7 ssid=CHG apn=m2m"

    func infos(_ w: LinkWorld) -> [ConnectionInfo?] {
        w.events.compactMap { if case .connectionInfo(let c) = $0 { return .some(c) } else { return nil } }
    }

    /// The headers the host wrote, in order, Get Status keep-alives left out.
    func sentOrder(_ w: LinkWorld) -> [UInt8] { w.sentHeaders.map(\.header).filter { $0 != 0x26 } }

    @Test func anApolloIsAskedOnceAfterRequestIdsAndBeforeTheFirstPayment() {
        var w = apolloWorld { $0.connectionInfo = Array(Self.text.utf8) }
        #expect(w.run { $0.isUp })
        // What the engine does on hearing `.up`: arm at once. It waits behind the inventory queries.
        guard case .sessionApproved? = pay(&w) else { Issue.record("no approval"); return }
        w.run(within: .seconds(60)) { _ in false }
        let order = sentOrder(w)
        #expect(order.firstIndex(of: 0x27).map { order[$0 + 1] } == 0x44, "\(order)")
        #expect(order.firstIndex(of: 0x44)! < order.firstIndex(of: 0x34)!, "\(order)")
        #expect(w.sent(0x44).count == 1)
        #expect(infos(w) == [ConnectionInfo(reading: .text(Self.text))])
        #expect(w.link.counters.connectionInfoUnavailable == 0 && w.link.counters.bringUps == 1)
    }

    @Test func offAndP6XNeverAsk() {
        var off = apolloWorld({ $0.connectionInfo = Array(Self.text.utf8) }, link: { $0.connectionInfo = .off })
        #expect(off.run { $0.isUp })
        guard case .sessionApproved? = pay(&off) else { Issue.record("no approval"); return }
        off.run(within: .seconds(30)) { _ in false }
        #expect(off.sent(0x27).count == 1, "Request Ids still asked")
        #expect(off.sent(0x44).isEmpty && infos(off).isEmpty)

        var p6x = p6xWorld()
        #expect(PSPLinkConfig(family: .p6x, transport: .serial).connectionInfo == .auto, "auto, and still not asked")
        #expect(p6x.run { $0.isUp })
        guard case .sessionApproved? = pay(&p6x) else { Issue.record("no approval"); return }
        p6x.run(within: .seconds(30)) { _ in false }
        #expect(p6x.sent(0x44).isEmpty && infos(p6x).isEmpty)
    }

    @Test func unknownCommandIsNotAvailableAndTheLinkStaysUp() {
        // The simulator without connection info refuses it as it refuses any command it lacks.
        var w = apolloWorld()
        #expect(w.run { $0.isUp })
        w.run(within: .seconds(30)) { _ in false }
        #expect(infos(w) == [nil])
        #expect(w.link.counters.connectionInfoUnavailable == 1)
        #expect(w.sent(0x44).count == 1, "not asked again in this bring-up")
        #expect(w.isUp && w.link.counters.bringUps == 1 && w.count { $0 == .up } == 1)
        guard case .sessionApproved? = pay(&w) else { Issue.record("no approval"); return }
    }

    @Test func silenceIsNotAvailableWithoutARetryOrAReconnect() {
        var w = apolloWorld { $0.faults = [ArmedFault(.silent(command: "GetConnectionInfo", count: 1000), on: .frames(1))] }
        #expect(w.run { $0.isUp })
        let up = w.now
        guard case .sessionApproved? = pay(&w) else { Issue.record("no approval after the query went unanswered"); return }
        w.run(within: .seconds(60)) { _ in false }
        #expect(w.sent(0x44).count == 1, "never resent")
        // The first payment waited for the query's timeout, no longer.
        let start = w.sent(0x34).first!
        #expect(start >= w.sent(0x44)[0] + LinkTimeouts.defaults(for: .apollo).connectionInfo)
        #expect(start <= up + LinkTimeouts.defaults(for: .apollo).connectionInfo + .seconds(1))
        #expect(infos(w) == [nil] && w.link.counters.connectionInfoUnavailable == 1 && w.link.counters.timeouts >= 1)
        #expect(w.count { if case .down = $0 { return true }; return false } == 0, "an inventory query took the link down")
        #expect(w.link.counters.bringUps == 1)
    }

    @Test func anAnswerTooLongToReadIsNotAvailable() {
        // Extended format, so that a 600-byte answer fits a frame and reaches the codec's limit.
        var w = apolloWorld({ $0.connectionInfo = [UInt8](repeating: 0x61, count: ConnectionInfo.maxBytes + 88) },
                            link: { $0.protocolOptions?.insert(.extendedFormat) })
        #expect(w.run { $0.isUp })
        w.run(within: .seconds(30)) { _ in false }
        #expect(infos(w) == [nil] && w.link.counters.connectionInfoUnavailable == 1)
        #expect(w.count { if case .undecodable(0x44, .tooLarge) = $0 { return true }; return false } == 1)
        #expect(w.isUp && w.link.counters.bringUps == 1)
        guard case .sessionApproved? = pay(&w) else { Issue.record("no approval"); return }
    }

    @Test func eachBringUpAsksAgainOnce() {
        var w = apolloWorld { $0.connectionInfo = Array(Self.text.utf8) }
        #expect(w.run { $0.isUp })
        w.apply(w.sim.control(["reset"], now: w.now))
        #expect(w.run(within: .seconds(60)) { $0.link.counters.bringUps == 2 && $0.isUp && $0.sent(0x44).count == 2 })
        w.run(within: .seconds(30)) { _ in false }
        #expect(w.sent(0x44).count == 2 && infos(w).count == 2 && infos(w).allSatisfy { $0 != nil })
    }
}
