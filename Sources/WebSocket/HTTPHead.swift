/// Where an HTTP head ends in bytes that arrive piecemeal: the first empty line, CRLF CRLF or a
/// bare LF taken as a line end (RFC 9112 section 2.2). Shared by the client's response parser and
/// the server's request parser. The search resumes where the last one stopped, so many small
/// reads cost linear time.
struct HTTPHeadBoundary: Sendable {
    private var scanned = 0

    /// The head's end (the index of the empty line's first byte) and where the bytes after it
    /// start; nil while the empty line has not arrived.
    mutating func find(in buffer: [UInt8]) -> (headEnd: Int, bodyStart: Int)? {
        var i = max(scanned, 1)
        while i < buffer.count {
            if buffer[i] == 0x0A {
                if buffer[i - 1] == 0x0A { return (i - 1, i + 1) }
                if i >= 2, buffer[i - 1] == 0x0D, buffer[i - 2] == 0x0A { return (i - 2, i + 1) }
            }
            i += 1
        }
        scanned = max(buffer.count - 1, 1)
        return nil
    }

    /// The head's lines, each without its CR.
    static func lines(_ head: ArraySlice<UInt8>) -> [ArraySlice<UInt8>] {
        head.split(separator: 0x0A, omittingEmptySubsequences: false).map { $0.last == 0x0D ? $0.dropLast() : $0 }
    }
}
