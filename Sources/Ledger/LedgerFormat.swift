import WireFormat

/// The ledger's on-disk format, version 1. Every integer is little-endian.
///
/// A segment file `seg-XXXXXXXXXXXXXXXX.log` (16 lower-case hex digits: the
/// sequence of its first record, so names sort in log order) holds:
///
/// Segment header, 32 bytes:
///
/// | offset | size | field |
/// |---:|---:|---|
/// | 0 | 8 | magic `PBLEDGER` (ASCII) |
/// | 8 | 2 | format version (1) |
/// | 10 | 2 | header length (32) |
/// | 12 | 4 | reserved, written as zero |
/// | 16 | 8 | first sequence (equals the file name's) |
/// | 24 | 4 | reserved, written as zero |
/// | 28 | 4 | CRC-32C of bytes 0..<28 |
///
/// then records back to back, no padding. Record header, 20 bytes, then the body:
///
/// | offset | size | field |
/// |---:|---:|---|
/// | 0 | 4 | body length in bytes |
/// | 4 | 2 | kind (the engine's) |
/// | 6 | 2 | flags: bit 0 = relocated by compaction; other bits zero |
/// | 8 | 8 | sequence: exactly the previous record's + 1 (the first: the header's) |
/// | 16 | 4 | CRC-32C of header bytes 0..<16 followed by the body |
///
/// A relocated record's stored body starts with the original record's
/// sequence (8 bytes) followed by the original body; readers report the
/// original sequence, so a record keeps its sequence for life.
///
/// After the last record: nothing, or zeros (preallocated space). Zeros never
/// parse (sequence 0 is never written and the CRC of a zero header is not zero).
public enum LedgerFormat {
    /// The format this build writes and the only one it reads.
    public static let version: UInt16 = 1
    /// `PBLEDGER`.
    public static let magic: [UInt8] = Array("PBLEDGER".utf8)
    /// Bytes in a segment header.
    public static let segmentHeaderBytes = 32
    /// Bytes in a record header.
    public static let recordHeaderBytes = 20
    /// Bytes a relocated record adds to its body (the original sequence).
    public static let relocationPrefixBytes = 8
    /// Flag bit: the record is a copy made by compaction.
    public static let relocatedFlag: UInt16 = 1
    /// Flags a version-1 reader understands; a record with any other bit is not parsed.
    public static let knownFlags: UInt16 = relocatedFlag
    /// Largest body the format admits, whatever the options: a length field
    /// above it is damage, not a record, so a flipped high bit cannot make
    /// recovery allocate gigabytes.
    public static let maxBodyBytes = 16 << 20
    /// Largest segment file recovery reads (it reads a segment whole).
    public static let maxSegmentFileBytes = 1 << 30
    /// File name prefix and suffix of a live segment.
    public static let segmentPrefix = "seg-"
    /// See `segmentPrefix`.
    public static let segmentSuffix = ".log"
    /// Suffix of a segment being created or rewritten; such a file never holds
    /// an acknowledged record, and recovery deletes it.
    public static let temporarySuffix = ".new"
    /// Suffix of a damaged segment set aside by recovery (`.damaged`, then
    /// `.damaged.2`, ... if that name is taken). Never read or deleted by the ledger.
    public static let damagedSuffix = ".damaged"

    /// The highest sequence this ledger writes or accepts. Sequences count up
    /// from 1, one per record, so no ledger comes near it (at a million records a
    /// second, 292,000 years); what it buys is headroom: no sequence arithmetic
    /// (the next sequence, the last live one, gaps) can overflow. A segment named
    /// or headed outside `sequences`, or a record numbered outside it, was not
    /// written by this ledger: recovery treats it as damage.
    public static let maxSequence = UInt64(Int64.max)
    /// Every sequence a record may carry: `1...maxSequence` (0 is never written).
    public static let sequences: ClosedRange<UInt64> = 1...maxSequence

    /// How many damaged copies of one segment name recovery keeps before it
    /// refuses to open (something is rewriting the same damage in a loop).
    public static let maxDamagedCopiesPerSegment = 100

    /// `seg-<16 hex digits>.log`.
    public static func segmentName(firstSequence: UInt64) -> String {
        let hex = String(firstSequence, radix: 16)
        return segmentPrefix + String(repeating: "0", count: 16 - hex.count) + hex + segmentSuffix
    }

    /// The first sequence encoded in a live segment's name, or nil for any other name.
    public static func firstSequence(ofSegmentNamed name: String) -> UInt64? {
        guard name.hasPrefix(segmentPrefix), name.hasSuffix(segmentSuffix) else { return nil }
        let hex = name.dropFirst(segmentPrefix.count).dropLast(segmentSuffix.count)
        guard hex.count == 16, hex.allSatisfy({ $0.isHexDigit && !$0.isUppercase }) else { return nil }
        return UInt64(hex, radix: 16)
    }

    /// A segment header for `firstSequence`.
    static func segmentHeader(firstSequence: UInt64) -> [UInt8] {
        var h = [UInt8](repeating: 0, count: segmentHeaderBytes)
        h.replaceSubrange(0..<8, with: magic)
        h.storeLE(version, at: 8)
        h.storeLE(UInt16(segmentHeaderBytes), at: 10)
        h.storeLE(firstSequence, at: 16)
        let crc = h.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<28])) }
        h.storeLE(crc, at: 28)
        return h
    }

    /// What a segment header says.
    enum HeaderReading: Equatable {
        /// A valid version-1 header.
        case valid(firstSequence: UInt64)
        /// Magic and CRC are right but the version (or, for this version, the
        /// header length) is one this build cannot read.
        case unsupported(version: UInt16, headerBytes: UInt16)
        /// Too short, wrong magic, or wrong CRC.
        case damaged
    }

    static func readSegmentHeader(_ bytes: UnsafeRawBufferPointer) -> HeaderReading {
        guard bytes.count >= segmentHeaderBytes else { return .damaged }
        for i in 0..<8 where bytes[i] != magic[i] { return .damaged }
        let crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: bytes[0..<28]))
        guard crc == bytes.loadLE(UInt32.self, at: 28) else { return .damaged }
        let version = bytes.loadLE(UInt16.self, at: 8)
        let headerBytes = bytes.loadLE(UInt16.self, at: 10)
        guard version == self.version, headerBytes == UInt16(segmentHeaderBytes) else {
            return .unsupported(version: version, headerBytes: headerBytes)
        }
        return .valid(firstSequence: bytes.loadLE(UInt64.self, at: 16))
    }

    /// Writes a record (header and body) at `offset` of `out`, which must have room.
    static func encodeRecord(
        into out: UnsafeMutableRawBufferPointer, sequence: UInt64, kind: UInt16, flags: UInt16,
        prefix: UInt64?, body: [UInt8]
    ) -> Int {
        let prefixBytes = prefix == nil ? 0 : relocationPrefixBytes
        let bodyBytes = prefixBytes + body.count
        out.storeBytes(of: UInt32(bodyBytes).littleEndian, toByteOffset: 0, as: UInt32.self)
        out.storeBytes(of: kind.littleEndian, toByteOffset: 4, as: UInt16.self)
        out.storeBytes(of: flags.littleEndian, toByteOffset: 6, as: UInt16.self)
        out.storeBytes(of: sequence.littleEndian, toByteOffset: 8, as: UInt64.self)
        if let prefix {
            out.storeBytes(of: prefix.littleEndian, toByteOffset: recordHeaderBytes, as: UInt64.self)
        }
        body.withUnsafeBytes { src in
            guard src.count > 0 else { return }
            UnsafeMutableRawBufferPointer(rebasing: out[(recordHeaderBytes + prefixBytes)...]).copyMemory(from: src)
        }
        var crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: out[0..<16]))
        crc = CRC32C.update(crc, UnsafeRawBufferPointer(
            rebasing: out[recordHeaderBytes..<(recordHeaderBytes + bodyBytes)]))
        out.storeBytes(of: crc.littleEndian, toByteOffset: 16, as: UInt32.self)
        return recordHeaderBytes + bodyBytes
    }

    /// A record found in a segment image.
    struct RawRecord {
        var sequence: UInt64
        var kind: UInt16
        var flags: UInt16
        /// Offset of the stored body in the image.
        var bodyOffset: Int
        var bodyBytes: Int
        var end: Int { bodyOffset + bodyBytes }
    }

    /// The record at `offset` if it is complete within `end`, carries a
    /// sequence in `acceptable` and in `sequences` (a relocated record's original
    /// too), has only known flags, and its CRC matches.
    /// The cheap checks come first: most garbage fails before the CRC.
    @inline(__always)
    static func record(in image: UnsafeRawBufferPointer, at offset: Int, end: Int,
                       acceptable: ClosedRange<UInt64>) -> RawRecord? {
        guard end - offset >= recordHeaderBytes else { return nil }
        let sequence = image.loadLE(UInt64.self, at: offset + 8)
        guard acceptable.contains(sequence), sequences.contains(sequence) else { return nil }
        let length = Int(image.loadLE(UInt32.self, at: offset))
        guard length <= maxBodyBytes, length <= end - offset - recordHeaderBytes else { return nil }
        let flags = image.loadLE(UInt16.self, at: offset + 6)
        guard flags & ~knownFlags == 0 else { return nil }
        let bodyOffset = offset + recordHeaderBytes
        if flags & relocatedFlag != 0 {
            guard length >= relocationPrefixBytes, sequences.contains(image.loadLE(UInt64.self, at: bodyOffset)) else { return nil }
        }
        var crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: image[offset..<(offset + 16)]))
        crc = CRC32C.update(crc, UnsafeRawBufferPointer(rebasing: image[bodyOffset..<(bodyOffset + length)]))
        guard crc == image.loadLE(UInt32.self, at: offset + 16) else { return nil }
        return RawRecord(sequence: sequence, kind: image.loadLE(UInt16.self, at: offset + 4), flags: flags,
                         bodyOffset: bodyOffset, bodyBytes: length)
    }
}

extension UnsafeRawBufferPointer {
    @inline(__always)
    func loadLE<T: FixedWidthInteger>(_ type: T.Type, at offset: Int) -> T {
        T(littleEndian: loadUnaligned(fromByteOffset: offset, as: T.self))
    }
}

extension Array where Element == UInt8 {
    mutating func storeLE<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        withUnsafeMutableBytes { $0.storeBytes(of: value.littleEndian, toByteOffset: offset, as: T.self) }
    }
}

extension Array where Element == UInt8 {
    /// `withUnsafeBytes` keeping a typed error: the stdlib's `rethrows` erases it to `any Error`.
    func withBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try withUnsafeBytes { raw in Result { () throws(E) in try body(raw) } }.get()
    }
}
