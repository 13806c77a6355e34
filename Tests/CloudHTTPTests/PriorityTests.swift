import Glibc
import Platform
import Testing
import Timebase
@testable import CloudHTTP

/// The card decision does not wait behind queued messages (issue 11 item 9).
@Suite(.serialized) struct PriorityTests {
    let fixture = Fixture.shared

    init() throws { try Signals.ignore(SIGPIPE) }

    @Test func anUrgentRequestStartsAtOnceWhileOrdinaryOnesHoldEverySlot() throws {
        let server = try TestServer()
        let loop = try EventLoop()
        let http = try HTTPClient(loop: loop, tls: TLSSettings(caFile: fixture.caFile),
                                  limits: HTTPClientLimits(maxConcurrent: 2, reservedUrgent: 1))
        // A backlog: twice as many slow messages as there are ordinary slots.
        var ordinaryDone = 0
        for _ in 0..<4 { http.post(HTTPRequest(url: server.url("/slow?ms=2500"))) { _ in ordinaryDone += 1 } }
        let posted = MonotonicClock.now()
        var urgent: (Result<HTTPResponse, HTTPError>, Instant)?
        http.post(HTTPRequest(url: server.url("/echo")), priority: .urgent) { urgent = ($0, MonotonicClock.now()) }
        _ = try loop.run(until: { urgent != nil }, deadline: posted + .seconds(15))
        let (result, at) = try #require(urgent)
        #expect(try result.get().status == 200)
        #expect(at - posted < .milliseconds(1500), "the urgent request took \(seconds(at - posted)) s behind the backlog")
        #expect(ordinaryDone == 0, "it did not overtake the backlog")
        _ = try loop.run(until: { ordinaryDone == 4 }, deadline: MonotonicClock.now() + .seconds(20))
        #expect(ordinaryDone == 4, "the backlog was not served")
    }

    @Test func withNoReservedSlotAnUrgentRequestWaitsAheadOfQueuedOrdinaryOnes() throws {
        let server = try TestServer()
        let loop = try EventLoop()
        let http = try HTTPClient(loop: loop, tls: TLSSettings(caFile: fixture.caFile),
                                  limits: HTTPClientLimits(maxConcurrent: 1, reservedUrgent: 0))
        var order: [String] = []
        http.post(HTTPRequest(url: server.url("/slow?ms=600"))) { _ in order.append("first") }
        http.post(HTTPRequest(url: server.url("/echo"))) { _ in order.append("queued") }
        http.post(HTTPRequest(url: server.url("/echo")), priority: .urgent) { _ in order.append("urgent") }
        _ = try loop.run(until: { order.count == 3 }, deadline: MonotonicClock.now() + .seconds(15))
        #expect(order == ["first", "urgent", "queued"])
        #expect(http.inFlight == 0)
    }
}
