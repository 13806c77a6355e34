import Glibc
import Timebase
import WebSocket
import WireFormat

/// Seeds for the property tests: fixed ones, or WS_SEED to replay a failure. Each test prints its
/// seed, so a failure in a log can be replayed without reading the test.
enum Seeds {
    static func sample(_ n: Int) -> [UInt64] {
        if let p = getenv("WS_SEED"), let s = UInt64(String(cString: p)) { return [s] }
        return (0..<UInt64(n)).map { 0x5753_0000 + $0 }
    }

    static func generator(_ seed: UInt64, _ test: String) -> SeededGenerator {
        print("\(test): seed \(seed) (replay with WS_SEED=\(seed))")
        return SeededGenerator(seed: seed)
    }
}

extension SeededGenerator {
    mutating func byte() -> UInt8 { UInt8.random(in: 0...255, using: &self) }
    mutating func bytes(_ n: Int) -> [UInt8] { (0..<n).map { _ in byte() } }
}

/// The server's side of the frame format, written independently of the client's encoder: what a
/// test's server sends. `lengthForm` forces a longer length encoding (for the non-minimal cases),
/// `rsv` sets reserved bits, `mask` masks (which a server must not do).
enum ServerFrame {
    enum LengthForm { case minimal, sixteen, sixtyFour }

    static func encode(fin: Bool = true, opcode: UInt8, payload: [UInt8], rsv: UInt8 = 0,
                       lengthForm: LengthForm = .minimal, mask: [UInt8]? = nil) -> [UInt8] {
        var out: [UInt8] = [(fin ? 0x80 : 0) | rsv << 4 | opcode]
        let maskBit: UInt8 = mask == nil ? 0 : 0x80
        let n = payload.count
        var form = lengthForm
        if form == .minimal { form = n < 126 ? .minimal : (n <= 0xFFFF ? .sixteen : .sixtyFour) }
        switch form {
        case .minimal: out.append(maskBit | UInt8(n))
        case .sixteen: out += [maskBit | 126, UInt8(n >> 8), UInt8(n & 0xFF)]
        case .sixtyFour:
            out.append(maskBit | 127)
            for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: UInt64(n) >> UInt64(shift))) }
        }
        if let mask {
            out += mask
            out += payload.enumerated().map { $0.element ^ mask[$0.offset & 3] }
        } else {
            out += payload
        }
        return out
    }

    static func text(_ s: String, fin: Bool = true) -> [UInt8] { encode(fin: fin, opcode: 1, payload: Array(s.utf8)) }
    static func close(_ code: UInt16, _ reason: String = "") -> [UInt8] {
        encode(opcode: 8, payload: [UInt8(code >> 8), UInt8(code & 0xFF)] + Array(reason.utf8))
    }
}

/// Undoes a client frame's masking: the frame the server would see (nil if not one whole frame).
func unmaskClientFrame(_ bytes: [UInt8]) -> (fin: Bool, opcode: UInt8, payload: [UInt8])? {
    guard bytes.count >= 6, bytes[1] & 0x80 != 0 else { return nil }
    var n = Int(bytes[1] & 0x7F)
    var i = 2
    if n == 126 { n = Int(bytes[2]) << 8 | Int(bytes[3]); i = 4 } else if n == 127 {
        n = 0
        for j in 2..<10 { n = n << 8 | Int(bytes[j]) }
        i = 10
    }
    let key = Array(bytes[i..<(i + 4)])
    i += 4
    guard bytes.count == i + n else { return nil }
    return (bytes[0] & 0x80 != 0, bytes[0] & 0x0F, bytes[i...].enumerated().map { $0.element ^ key[$0.offset & 3] })
}

/// Every frame decodable from `bytes`, or the error.
func decodeAll(_ bytes: [UInt8], maxFramePayload: Int = WebSocketLimits.defaultMaxFramePayload) throws(WebSocketProtocolError) -> [WebSocketFrame] {
    var d = WebSocketFrameDecoder(maxFramePayload: maxFramePayload)
    d.append(contentsOf: bytes)
    var out: [WebSocketFrame] = []
    while let f = try d.next() { out.append(f) }
    return out
}
