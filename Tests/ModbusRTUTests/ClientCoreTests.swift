import ModbusRTU
import Testing
import Timebase

@Suite struct ClientCoreTests {
    static let timing = ModbusTiming(baud: 9600, bitsPerCharacter: 11)
    static func client(retries: Int = 2, queue: Int = 8) -> ModbusClientCore {
        ModbusClientCore(config: ModbusClientConfig(timing: timing, responseTimeout: .milliseconds(500), maxRetries: retries, maxQueued: queue))
    }
    static let energy = try! ReadRequest(address: 3, function: .readInputRegisters, start: 0x48, count: 2)
    static let serial = try! ReadRequest(address: 3, function: .readHoldingRegisters, start: 0xFC00, count: 2)

    static func sent(_ fx: [ModbusClientEffect]) -> [[UInt8]] {
        fx.compactMap { if case .send(let b) = $0 { b } else { nil } }
    }
    static func completions(_ fx: [ModbusClientEffect]) -> [Result<[UInt16], ModbusFailure>] {
        fx.compactMap { if case .completed(_, _, let r) = $0 { r } else { nil } }
    }

    @Test func aReadIsSentAtOnceAndItsAnswerCompletesIt() {
        var c = Self.client()
        let (_, fx) = c.submit(Self.energy, now: .ms(0))
        #expect(Self.sent(fx) == [Self.energy.encode()])
        // The deadline covers both frames on the wire plus the response timeout.
        let onWire = Self.timing.transmissionTime(bytes: 8 + Self.energy.responseLength)
        #expect(c.nextDeadline == .ms(0) + onWire + .milliseconds(500))
        #expect(fx.contains(.waitUntil(c.nextDeadline!)))
        let answer = ReadResponse.registers([0x4479, 0x8000]).encode(for: Self.energy)
        let done = c.receive(frame: answer, now: .ms(30))
        #expect(Self.completions(done) == [.success([0x4479, 0x8000])])
        #expect(c.nextDeadline == nil)
        #expect(c.counters.requestsSent == 1)
    }

    @Test func oneRequestIsOnTheBusAndTheNextWaitsForTheSilence() {
        var c = Self.client()
        _ = c.submit(Self.energy, now: .ms(0))
        let (_, second) = c.submit(Self.serial, now: .ms(1))
        #expect(Self.sent(second).isEmpty, "the first is still outstanding")
        let fx = c.receive(frame: ReadResponse.registers([1, 2]).encode(for: Self.energy), now: .ms(40))
        #expect(Self.sent(fx).isEmpty, "t3.5 must pass after the answer")
        let quiet = Instant.ms(40) + Self.timing.frameSilence
        #expect(fx.contains(.waitUntil(quiet)))
        #expect(c.nextDeadline == quiet)
        #expect(Self.sent(c.tick(now: .ms(42))).isEmpty)
        #expect(Self.sent(c.tick(now: quiet)) == [Self.serial.encode()])
    }

    @Test func silenceIsRetriedThenReportedWithTheAttempts() {
        var c = Self.client(retries: 2)
        var now = Instant.ms(0)
        var fx = c.submit(Self.energy, now: now).1
        var sends = Self.sent(fx).count
        var outcome: [Result<[UInt16], ModbusFailure>] = []
        for _ in 0..<10 {
            guard let d = c.nextDeadline else { break }
            now = d
            fx = c.tick(now: now)
            sends += Self.sent(fx).count
            outcome += Self.completions(fx)
        }
        #expect(sends == 3)
        #expect(outcome == [.failure(.noResponse(attempts: 3))])
        #expect(c.counters.timeouts == 3)
        #expect(c.counters.retries == 2)
    }

    @Test func aDamagedAnswerIsRetriedAndTheLastDamageReported() {
        var c = Self.client(retries: 1)
        _ = c.submit(Self.energy, now: .ms(0))
        var bad = ReadResponse.registers([1, 2]).encode(for: Self.energy)
        bad[bad.count - 1] ^= 0xFF
        var fx = c.receive(frame: bad, now: .ms(30))
        #expect(Self.completions(fx).isEmpty)
        #expect(Self.sent(fx).isEmpty)
        fx = c.tick(now: .ms(30) + Self.timing.frameSilence)
        #expect(Self.sent(fx) == [Self.energy.encode()], "retried after the silence")
        fx = c.receive(frame: bad, now: .ms(80))
        guard case .failure(.invalidResponse(.crcMismatch, attempts: 2))? = Self.completions(fx).first else {
            Issue.record("expected a CRC failure after 2 attempts, got \(fx)")
            return
        }
        #expect(c.counters.invalidFrames["crc"] == 2)
    }

    @Test func anEchoOfTheRequestIsIgnoredAndTheAnswerStillTaken() {
        var c = Self.client()
        _ = c.submit(Self.energy, now: .ms(0))
        #expect(c.receive(frame: Self.energy.encode(), now: .ms(9)).isEmpty)
        #expect(c.counters.echoes == 1)
        let done = c.receive(frame: ReadResponse.registers([7, 8]).encode(for: Self.energy), now: .ms(40))
        #expect(Self.completions(done) == [.success([7, 8])])
        #expect(c.counters.invalidFrames.isEmpty)
    }

    @Test func anExceptionIsTheServersAnswerAndNotRetried() {
        var c = Self.client()
        _ = c.submit(Self.energy, now: .ms(0))
        let fx = c.receive(frame: ReadResponse.exception(.illegalDataAddress).encode(for: Self.energy), now: .ms(20))
        #expect(Self.completions(fx) == [.failure(.exception(.illegalDataAddress))])
        #expect(c.counters.retries == 0)
        #expect(c.nextDeadline == nil)
    }

    @Test func theQueueIsBoundedAndLinkDownFailsEverything() {
        var c = Self.client(queue: 2)
        _ = c.submit(Self.energy, now: .ms(0))
        _ = c.submit(Self.serial, now: .ms(0))
        _ = c.submit(Self.serial, now: .ms(0))
        let (_, full) = c.submit(Self.serial, now: .ms(0))
        #expect(Self.completions(full) == [.failure(.queueFull)])
        let down = c.linkDown()
        #expect(Self.completions(down) == Array(repeating: .failure(.linkDown), count: 3))
        #expect(c.pendingCount == 0)
        #expect(c.receive(frame: [1, 2, 3], now: .ms(5)).isEmpty)
        #expect(c.counters.unsolicited == 1)
    }

    /// Against a server that answers, stays silent or garbles at random: every read completes
    /// exactly once, never more than one request is outstanding, and a read's attempts never
    /// exceed 1 + retries.
    @Test(arguments: Seeds.sample(8))
    func everyReadCompletesOnceWhateverTheServerDoes(seed: UInt64) {
        var g = Seeds.generator(seed, "client core")
        let retries = Int.random(in: 0...3, using: &g)
        var c = Self.client(retries: retries, queue: 64)
        var now = Instant.ms(1)
        var submitted: [ModbusRequestID: ReadRequest] = [:]
        var completed: [ModbusRequestID: Int] = [:]
        var inFlight: ReadRequest?
        var lastSendAt: Instant?
        func take(_ fx: [ModbusClientEffect]) {
            for e in fx {
                switch e {
                case .send(let bytes):
                    if let last = lastSendAt { #expect(now - last >= Self.timing.frameSilence, "seed \(seed): frames too close") }
                    lastSendAt = now
                    inFlight = try? ReadRequest.decode(bytes)
                    #expect(inFlight != nil, "seed \(seed): the client sent an unreadable frame")
                case .completed(let id, let r, let result):
                    completed[id, default: 0] += 1
                    #expect(submitted[id] == r)
                    if case .failure(.noResponse(let n)) = result { #expect(n == retries + 1, "seed \(seed)") }
                    if case .failure(.invalidResponse(_, let n)) = result { #expect(n == retries + 1, "seed \(seed)") }
                case .waitUntil(let t):
                    #expect(t >= now)
                }
            }
        }
        for step in 0..<3000 {
            now = now + .milliseconds(Int64.random(in: 0...40, using: &g))
            switch Int.random(in: 0..<10, using: &g) {
            case 0 where step < 2500, 1 where step < 2500:
                let count = UInt16.random(in: 1...20, using: &g)
                let r = try! ReadRequest(address: UInt8.random(in: 1...3, using: &g), function: .readInputRegisters,
                                         start: UInt16.random(in: 0...1000, using: &g), count: count)
                let (id, fx) = c.submit(r, now: now)
                submitted[id] = r
                take(fx)
            case 2, 3:
                if let r = inFlight {
                    var frame = ReadResponse.registers((0..<Int(r.count)).map { UInt16($0) }).encode(for: r)
                    if Bool.random(using: &g) { frame[Int.random(in: 0..<frame.count, using: &g)] ^= 0x5A }
                    take(c.receive(frame: frame, now: now))
                } else {
                    take(c.receive(frame: g.bytes(Int.random(in: 0...12, using: &g)), now: now))
                }
            case 4:
                if let r = inFlight { take(c.receive(frame: ReadResponse.exception(.serverDeviceBusy).encode(for: r), now: now)) }
            default:
                take(c.tick(now: now))
            }
            #expect(c.pendingCount <= 64 + 1)
        }
        // Drain: time alone finishes everything.
        var guardSteps = 0
        while let d = c.nextDeadline, guardSteps < 10_000 {
            now = max(now, d)
            take(c.tick(now: now))
            guardSteps += 1
        }
        #expect(c.pendingCount == 0, "seed \(seed)")
        #expect(Set(completed.keys) == Set(submitted.keys), "seed \(seed)")
        #expect(completed.values.allSatisfy { $0 == 1 }, "seed \(seed)")
    }
}
