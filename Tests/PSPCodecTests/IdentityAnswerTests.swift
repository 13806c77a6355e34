import Testing
import PSPCodec

/// Request Ids (psp.md §4.1): P6X fixed offsets, Apollo NUL-terminated strings; keep what can be read.
@Suite struct RequestIdsReadings {
    func p6x(_ p: [UInt8]) throws -> TerminalIdentity {
        guard case .identity(let i) = try TerminalMessage.decode(header: 0x27, payload: ArraySlice(p), context: .init(identityLayout: .p6x))
        else { throw PSPMessageError.invalid(field: "not an identity") }
        return i
    }
    func fixed(_ s: String, _ n: Int) -> [UInt8] { Array(s.utf8) + [UInt8](repeating: 0, count: n - s.utf8.count) }
    var full: [UInt8] {
        fixed("P68-0042", 15) + [1] + [1, 2, 3, 4, 5, 6, 7, 8] + [0] + [UInt8](repeating: 0, count: 8) + [1] + [9, 9, 9, 9, 9, 9, 9, 9]
            + [0x00, 0x1A, 0x2B, 0x3C, 0x4D, 0x5E] + [1] + fixed("8931440000000000042", 33)
    }

    @Test func theFixedP6XLayoutWithAndWithoutFirmware() throws {
        #expect(full.count == 82)
        let bare = try p6x(full)
        #expect(bare.serialNumber == "P68-0042" && bare.firmware == nil)
        #expect(bare.samSerials == ["0102030405060708", "0909090909090909"])
        #expect(bare.macAddress == "00:1a:2b:3c:4d:5e" && bare.simSerial == "8931440000000000042")
        // A firmware name longer than the documented 65 bytes, and bytes after its NUL: kept, cut at the NUL.
        let long = try p6x(full + Array(String(repeating: "F", count: 80).utf8) + [0, 0xEE])
        #expect(long.firmware == String(repeating: "F", count: 80))
    }

    @Test func aShortP6XAnswerKeepsTheFieldsItHoldsInFull() throws {
        let cut = try p6x(Array(full.prefix(30)))
        #expect(cut.serialNumber == "P68-0042")
        #expect(cut.samSerials == ["0102030405060708"], "SAM 1 is cut off")
        #expect(cut.macAddress == nil && cut.simSerial == nil && cut.firmware == nil)
        #expect(try p6x(Array("P68-9".utf8)).serialNumber == "P68-9", "a serial shorter than its field")
        #expect(try p6x(Array(full.prefix(48))).macAddress == "00:1a:2b:3c:4d:5e")
    }

    @Test func anEmptyAnswerHasNoIdentityInEitherLayout() {
        #expect(throws: PSPMessageError.self) { try TerminalMessage.decode(header: 0x27, payload: [], context: .init(identityLayout: .apollo)) }
        #expect(throws: PSPMessageError.self) { try TerminalMessage.decode(header: 0x27, payload: [], context: .init(identityLayout: .p6x)) }
    }
}
