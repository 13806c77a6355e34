import Glibc
import Platform

/// `STATE/connector-faults`: connectors whose relay welded, latched until a technician clears
/// them (`paybridgectl clear-fault N`): one line `welded=1,2` (1-based), replaced whole
/// (`SmallStateFile`) on every change. A welded contactor is a safety fault: it must not take
/// a session after a restart any more than before it, so the latch is written as soon as the
/// weld is seen. Unknown or damaged content is skipped with a reason.
enum ConnectorFaultsFile {
    static let name = "connector-faults"
    static let maxBytes = 256

    static func path(_ state: String) -> String { state + "/" + name }

    /// The latched connectors (0-based) and what was skipped.
    static func read(state: String, connectors: Int) -> (welded: Set<Int>, skipped: [String]) {
        var welded = Set<Int>()
        var skipped: [String] = []
        guard let text = SmallStateFile.read(path(state), maxBytes: maxBytes) else { return (welded, []) }
        for line in text.split(separator: "\n") where !line.isEmpty {
            guard line.hasPrefix("welded=") else { skipped.append("'\(line.prefix(40))'"); continue }
            for n in line.dropFirst("welded=".count).split(separator: ",") {
                if let c = Int(n), c >= 1, c <= connectors { welded.insert(c - 1) } else { skipped.append("welded connector '\(n)'") }
            }
        }
        return (welded, skipped)
    }

    /// Keeps `welded` (0-based): durable when this returns. An empty set removes the file.
    static func write(_ welded: Set<Int>, state: String) throws(SystemError) {
        if welded.isEmpty {
            do { _ = try retryingEINTR("unlink \(path(state))") { unlink(path(state)) } } catch where error.errno == ENOENT {}
            return
        }
        try SmallStateFile.write("welded=" + welded.sorted().map { String($0 + 1) }.joined(separator: ",") + "\n",
                                 to: path(state), directory: state)
    }
}
