import CardSafety
// paybridgectl decode psp: captured PSP traffic as JSON lines.
import Glibc
import JSONLines
import PSPCodec
import WireFormat

let decodeUsage = """
usage: paybridgectl decode psp [--from host|terminal] [--extended] [--zero result|status]

decode psp   Reads hex from standard input (whitespace ignored; one capture per line; a frame may
             continue on the next line) and prints one JSON object per line for each frame, and
             {"error": ...} objects for bytes that are not a frame.
  --from       who sent the bytes: terminal (default) or host
  --extended   4-byte length fields (Apollo extended block format)
  --zero       how to read a 0x00 frame from the terminal: result (default) or status
"""

func writeOut(_ s: String) {
    var bytes = Array(s.utf8)
    bytes.append(0x0A)
    var off = 0
    while off < bytes.count {
        let n = bytes[off...].withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
        if n < 0 { if errno == EINTR { continue }; exit(1) }
        off += n
    }
}

func die(_ message: String, code: Int32 = 2) -> Never {
    let text = Array("paybridgectl: \(message)\n".utf8)
    _ = text.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    exit(code)
}

func readAllStandardInput() -> [UInt8] {
    var out: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = buf.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
        if n == 0 { return out }
        if n < 0 { if errno == EINTR { continue }; die("reading standard input: errno \(errno)", code: 1) }
        out += buf[0..<n]
    }
}

struct DecodeOptions {
    var fromHost = false
    var format = PSPFrameFormat.normal
    var zero = ZeroHeaderReading.result
}

/// Decodes captured traffic into JSON lines. Card numbers go through the codec's masking.
func decodePSP(_ o: DecodeOptions) {
    let input = readAllStandardInput()
    var decoder = PSPFrameDecoder(options: .lenient(format: o.format))
    var stream: [UInt8] = []          // every byte fed, to show bad frames by offset
    var lineOfOffset: [Int] = []      // input line of each fed byte
    func emit(_ e: PSPDecodeEvent, at offset: Int) {
        let line = offset < lineOfOffset.count ? lineOfOffset[offset] : lineOfOffset.last ?? 0
        switch e {
        case .frame(let f):
            var fields: [(String, JSON)] = [("line", .number(line)), ("header", .number(f.header))]
            let decoded: (String, [(String, JSON)], String?)
            if o.fromHost {
                do {
                    let c = try HostCommand.decode(header: f.header, payload: f.payload)
                    decoded = (c.name, PSPDescribe.fields(c), nil)
                } catch { decoded = (HostCommand.raw(header: f.header, payload: []).name, [], "\(error)") }
            } else {
                do {
                    let m = try TerminalMessage.decode(header: f.header, payload: f.payload,
                                                       context: TerminalDecodeContext(zeroHeader: o.zero, wideDOLLength: o.format == .extended))
                    var extra = PSPDescribe.fields(m)
                    if f.header == 0x00, o.zero == .result, f.payload.count == 2,
                       let s = try? TerminalMessage.decode(header: 0, payload: f.payload, context: .init(zeroHeader: .status)) {
                        // Result and Get Status Response share header 0x00: show the other reading too.
                        extra.append(("asStatus", .object(PSPDescribe.fields(s))))
                    }
                    decoded = (m.name, extra, nil)
                } catch { decoded = (TerminalMessage.other(header: f.header, payload: []).name, [], "\(error)") }
            }
            fields += [("name", .string(decoded.0)), ("length", .number(f.length)), ("preamble", .number(f.preamble)),
                       ("magic", .number(f.magic)), ("payload", .string(payloadHex(f))), ("checksumOK", .bool(true))]
            fields += decoded.1
            if let err = decoded.2 { fields.append(("error", .string("payload: \(err)"))) }
            writeOut(JSON.object(fields).text)
        case let .malformed(kind, skipped):
            var fields: [(String, JSON)] = [("line", .number(line)), ("error", .string(describe(kind))), ("skippedBytes", .number(skipped))]
            if kind == .badChecksum, let bad = frameAt(offset) { fields += bad }
            writeOut(JSON.object(fields).text)
        }
    }
    func payloadHex(_ f: PSPFrame) -> String {
        // The hex is shown only where it cannot be card data: never for a message that carries a
        // card's DOL or a receipt (the decoded fields above show what may be shown), and never when
        // the card-data filter finds a number or track in it.
        if !o.fromHost && cardMessageHeaders.contains(f.header) { return "(withheld: card message)" }
        return CardDataFilter.find(in: f.payload) == nil ? hexString(f.payload) : "(withheld: card data)"
    }
    func frameAt(_ offset: Int) -> [(String, JSON)]? {
        let p = o.format.prefixSize
        guard offset + p < stream.count else { return nil }
        var length = 0
        for i in 1..<p { length = length << 8 | Int(stream[offset + i]) }
        let end = offset + p + length
        guard length >= 2, end < stream.count else { return nil }
        let sum = PSPFrameEncoder.checksum(stream[offset..<end])
        // The payload of a frame that failed its checksum is not printed: it may be a card message
        // with a damaged header, and the technician has the captured hex already.
        return [("header", .number(stream[offset + p + 1])), ("length", .number(length)),
                ("payloadLength", .number(length - 2)), ("checksumOK", .bool(false)),
                ("checksum", .number(stream[end])), ("expectedChecksum", .number(sum))]
    }
    func drain() {
        while true {
            let at = decoder.consumed
            guard let e = decoder.next() else { break }
            emit(e, at: at)
        }
    }

    var lineNumber = 0
    for rawLine in input.split(separator: 0x0A, omittingEmptySubsequences: false) {
        lineNumber += 1
        let bytes: [UInt8]
        do {
            bytes = try Hex.decode(utf8: rawLine, skipping: [.whitespace, .separators])
        } catch {
            writeOut(JSON.object([("line", .number(lineNumber)), ("error", .string(error.description))]).text)
            continue
        }
        if bytes.isEmpty { continue }
        // Each line is its own capture: a fresh decoder, flushed at the end of the line.
        decoder = PSPFrameDecoder(options: .lenient(format: o.format))
        stream = bytes
        lineOfOffset = Array(repeating: lineNumber, count: bytes.count)
        decoder.append(contentsOf: bytes)
        drain()
        var offset = decoder.consumed
        for e in decoder.flushStale() {
            emit(e, at: offset)
            switch e {
            case .frame(let f): offset += f.length + o.format.prefixSize + 1
            case .malformed(_, let n): offset += n
            }
        }
    }
}

/// Terminal messages that carry a card's DOL or receipt: Session Approved, Declined, Card Read,
/// Partially Approved, proprietary Card Read, Receipt.
let cardMessageHeaders: Set<UInt8> = [0x31, 0x32, 0x34, 0x35, 0x40, 0x45]

func describe(_ k: MalformedKind) -> String {
    switch k {
    case .noPreamble: return "not a frame: no preamble"
    case .lengthTooShort: return "not a frame: length below 2"
    case .lengthTooLong: return "not a frame: length above the limit"
    case .badMagic: return "not a frame: unexpected magic byte"
    case .badChecksum: return "bad checksum"
    case .truncated: return "truncated frame"
    }
}

func runDecode(_ list: [String]) -> Never {
var args = list
guard args.count >= 1, args[0] == "psp" else { die("decode takes psp\n\(decodeUsage)") }
args.removeFirst()
var options = DecodeOptions()
while !args.isEmpty {
    let a = args.removeFirst()
    switch a {
    case "--from":
        guard let v = args.first else { die("--from needs host or terminal") }
        args.removeFirst()
        switch v { case "host": options.fromHost = true; case "terminal": options.fromHost = false; default: die("--from takes host or terminal") }
    case "--extended": options.format = .extended
    case "--zero":
        guard let v = args.first, let z = ZeroHeaderReading(rawValue: v) else { die("--zero takes result or status") }
        args.removeFirst()
        options.zero = z
    default: die("unknown option \(a)\n\(decodeUsage)")
    }
}
decodePSP(options)
exit(0)
}
