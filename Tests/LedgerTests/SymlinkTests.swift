import Foundation
import Glibc
import Ledger
import Testing

/// The ledger never opens one of its files through a symlink (issue 11 item 6): a link planted
/// in place of a segment would have the daemon (as root) append records to whatever it names.
@Suite struct LedgerSymlinkTests {
    @Test func aSegmentReplacedByASymlinkIsRefusedAndItsTargetUntouched() throws {
        let dir = TemporaryDirectory()
        let ledgerDir = dir.sub("ledger")
        let first = try Ledger.open(directory: ledgerDir)
        _ = try first.ledger.appendDurably(kind: 1, body: [1, 2, 3])
        let name = try #require(first.ledger.segmentNames.last)
        first.ledger.close()
        // The victim holds a valid segment, so a ledger that follows the link would use it.
        let victim = dir.sub("victim")
        #expect(rename(ledgerDir + "/" + name, victim) == 0)
        #expect(symlink(victim, ledgerDir + "/" + name) == 0)
        let before = Files.read(victim)
        #expect(throws: LedgerError.self) {
            let reopened = try Ledger.open(directory: ledgerDir)
            _ = try? reopened.ledger.appendDurably(kind: 1, body: [4, 5, 6])
            reopened.ledger.close()
        }
        let untouched = Files.read(victim) == before   // compared aside: the segment is preallocated, megabytes to print
        #expect(untouched, "the ledger wrote through the symlink")
    }
}
