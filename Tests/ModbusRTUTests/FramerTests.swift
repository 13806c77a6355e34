import ModbusRTU
import Testing
import Timebase

@Suite struct FramerTests {
    @Test func theSilenceIsThreeAndAHalfCharactersUpTo19200ThenFixed() {
        // 11 bits at 9600 baud: 3.5 × 11 / 9600 s = 4.0104 ms.
        #expect(ModbusTiming(baud: 9600, bitsPerCharacter: 11).frameSilence == .nanoseconds(4_010_416))
        #expect(ModbusTiming(baud: 9600, bitsPerCharacter: 10).frameSilence == .nanoseconds(3_645_833))
        #expect(ModbusTiming(baud: 19200, bitsPerCharacter: 11).frameSilence == .nanoseconds(2_005_208))
        #expect(ModbusTiming(baud: 38400, bitsPerCharacter: 11).frameSilence == .microseconds(1750))
        #expect(ModbusTiming(baud: 115200, bitsPerCharacter: 10).frameSilence == .microseconds(1750))
        #expect(ModbusTiming(baud: 9600, bitsPerCharacter: 10).transmissionTime(bytes: 8) == .nanoseconds(8_333_333))
    }

    @Test func aFrameEndsAfterTheSilenceAndNotBefore() {
        var f = ModbusFramer(silence: .milliseconds(4))
        #expect(f.receive([1, 4], at: .ms(100)) == nil)
        #expect(f.receive([4, 0], at: .ms(103)) == nil)  // 3 ms: the same frame
        #expect(f.nextDeadline == .ms(107))
        #expect(f.tick(now: .ms(106)) == nil)
        #expect(f.tick(now: .ms(107)) == [1, 4, 4, 0])
        #expect(f.nextDeadline == nil)
        #expect(f.tick(now: .ms(200)) == nil)
        // Bytes after a silence end the previous frame even before any tick.
        #expect(f.receive([9], at: .ms(300)) == nil)
        #expect(f.receive([8], at: .ms(305)) == [9])
        #expect(f.tick(now: .ms(309)) == [8])
        #expect(f.counters.frames == 3)
    }

    @Test func aRunLongerThanAnyFrameIsDroppedWholeUntilSilence() {
        var f = ModbusFramer(silence: .milliseconds(4))
        _ = f.receive([UInt8](repeating: 0xAA, count: 200), at: .ms(0))
        _ = f.receive([UInt8](repeating: 0xAA, count: 100), at: .ms(1))
        _ = f.receive([UInt8](repeating: 0xAA, count: 10), at: .ms(2))
        #expect(f.tick(now: .ms(10)) == nil)
        #expect(f.counters.oversized == 1)
        #expect(f.counters.bytesDiscarded == 310)
        _ = f.receive([1, 2, 3], at: .ms(20))
        #expect(f.tick(now: .ms(30)) == [1, 2, 3])
        // Exactly 256 bytes is still a frame.
        _ = f.receive([UInt8](repeating: 1, count: 256), at: .ms(40))
        #expect(f.tick(now: .ms(50))?.count == 256)
    }

    /// A model of the framing: runs of chunks separated by gaps of at least the silence.
    @Test(arguments: Seeds.sample(8))
    func randomBytesAndSplitsNeverCrashAndFramesAreTheSilenceSeparatedRuns(seed: UInt64) {
        var g = Seeds.generator(seed, "framer")
        let silence = Duration.milliseconds(4)
        var f = ModbusFramer(silence: silence)
        var now = Instant.ms(1)
        var run: [UInt8] = []
        var expected: [[UInt8]] = []
        var got: [[UInt8]] = []
        var fed = 0
        var lastBytesAt = now
        for _ in 0..<2000 {
            now = now + .milliseconds(Int64.random(in: 0...8, using: &g))
            if now - lastBytesAt >= silence, !run.isEmpty {
                if run.count <= 256 { expected.append(run) }
                run = []
            }
            if Int.random(in: 0..<4, using: &g) == 0, let frame = f.tick(now: now) { got.append(frame) }
            let chunk = g.bytes(Int.random(in: 0...Int.random(in: 1...300, using: &g), using: &g))
            fed += chunk.count
            if !chunk.isEmpty { run += chunk; lastBytesAt = now }
            if let frame = f.receive(chunk, at: now) { got.append(frame) }
            if let d = f.nextDeadline { #expect(d > now, "seed \(seed)") }
        }
        now = now + silence
        if let frame = f.tick(now: now) { got.append(frame) }
        if !run.isEmpty, run.count <= 256 { expected.append(run) }
        #expect(got == expected, "seed \(seed)")
        #expect(got.allSatisfy { $0.count <= ModbusLimits.maxFrameBytes })
        #expect(got.reduce(0) { $0 + $1.count } + f.counters.bytesDiscarded == fed, "seed \(seed): every byte is a frame's or counted")
    }
}
