import PSPCodec
import PSPLink
import PaymentEngine

/// Translates between the protocol-neutral payment engine and the PSP link. Pure.
///
/// The engine says `arm`, `authorise`, `capture`…; PSP says Start Session, Auth Session,
/// Commit Session…. Link events become engine inputs, with card data reduced to what the
/// bridge may keep (masked PAN, card hash, brand).
public struct PSPEngineAdapter: Sendable {
    public let family: TerminalFamily
    public let cardHashTags: [UInt32]
    /// Engine commands in flight, by the link's request id.
    var inFlight: [RequestID: (CommandID, TerminalCommand)] = [:]
    /// The amount of the last Start Session: Session Approved does not repeat it.
    var armedAmount: Int64 = 0
    /// The most in-flight commands to remember; the link's own queue is smaller, so this only
    /// bounds memory if the link ever stopped completing requests.
    public static let maxInFlight = 64
    /// Session ids gathered from the pages of one List Sessions answer so far.
    var listed: [UInt32] = []
    /// Where the next page starts, as the terminal counts (`offset + k`).
    var listOffset = 0
    /// The next page to ask for, when a List Sessions answer said there are more (`nextRequest`).
    var followUp: (command: HostCommand, id: CommandID)?

    /// What this family of terminal can do (psp.md): a P6X lists its open sessions; an Apollo
    /// approves partially and raises an approval (Update Session).
    public var capabilities: TerminalCapabilities {
        family == .p6x ? [.listOpenSessions] : [.partialApproval, .incrementalAuthorisation]
    }

    public init(family: TerminalFamily, cardHashTags: [UInt32] = DOLTag.cardHashCandidates) {
        self.family = family
        self.cardHashTags = cardHashTags
    }

    /// The PSP command for an engine command; nil when PSP cannot name what it refers to: a
    /// handle that is not a PSP session id (a payment another kind of terminal approved, whose
    /// ledger outlived it), which the terminal cannot know.
    public mutating func hostCommand(for command: TerminalCommand) -> HostCommand? {
        switch command {
        case let .arm(amount, reference):
            armedAmount = amount
            return .startSession(StartSession(amount: UInt32(clamping: amount), reference: reference))
        // PSP authorises what Start Session armed; a lower maximum from the cloud does not reach
        // the card (no `amountAtAuthorisation`), and the engine never captures above it.
        case .authorise: return .authSession
        case .cancel: return .cancelSession
        case let .capture(handle, amount, _):
            guard let id = handle.reference else { return nil }
            return .commitSession(sessionID: id, amount: UInt32(clamping: amount))
        case .release(let handle):
            guard let id = handle.reference else { return nil }
            return .voidSession(sessionID: id)
        case .listOpen:
            forgetListing()
            return .listSessions(offset: 0)
        }
    }

    /// A request the adapter needs sent on the engine's behalf (the next page of a session
    /// list), once; the shell submits it and reports it with `submitted(_:for:_:)`.
    public mutating func nextRequest() -> (command: HostCommand, id: CommandID, engineCommand: TerminalCommand)? {
        guard let f = followUp else { return nil }
        followUp = nil
        return (f.command, f.id, .listOpen)
    }

    /// Drops a listing in progress: a new one starts, or this one ended (whole or not).
    mutating func forgetListing() {
        listed = []
        listOffset = 0
        followUp = nil
    }

    /// Remembers which engine command a link request carries.
    public mutating func submitted(_ request: RequestID, for id: CommandID, _ command: TerminalCommand) {
        if inFlight.count >= PSPEngineAdapter.maxInFlight, let oldest = inFlight.keys.min(by: { $0.value < $1.value }) {
            inFlight[oldest] = nil
        }
        inFlight[request] = (id, command)
    }

    /// The engine inputs a link event stands for (often none).
    public mutating func inputs(for event: LinkEvent) -> [TerminalInput] {
        switch event {
        case .up:
            return [.ready(capabilities)]
        case .down, .terminalReset:
            forgetListing()
            return [.unavailable]
        case .message(let m):
            switch m {
            case .cardRead(let dol):
                let c = CardData(dol: dol, hashTags: cardHashTags)
                return [.cardRead(CardIdentity(maskedPAN: c.maskedPAN ?? "", hash: c.cardHash ?? [], brand: c.brand ?? ""))]
            case let .sessionApproved(id, dol):
                return [.approved(TerminalHandle(reference: id), amount: armedAmount, pspRef: CardData(dol: dol).hostReference ?? [])]
            case let .sessionPartiallyApproved(id, amount, dol):
                return [.approved(TerminalHandle(reference: id), amount: Int64(amount), pspRef: CardData(dol: dol).hostReference ?? [])]
            case .sessionDeclined(let reason, _):
                return [.declined(reason: reason)]
            case .sessionCancelled:
                return [.cancelled]
            default:
                return []
            }
        case let .completed(request, _, outcome):
            guard let (id, command) = inFlight.removeValue(forKey: request) else { return [] }
            switch outcome {
            case .result(let r) where r.ok && command == .listOpen:
                // OK without a list says nothing about which sessions are open.
                forgetListing()
                return [.completed(id, command, .unknown)]
            case .result(let r) where r.ok: return [.completed(id, command, .ok)]
            case .result(let r): return [.completed(id, command, .refused(notFound: r.reason == ResultReason.sessionNotFound))]
            case let .response(.sessionList(total, ids)):
                // One page (psp.md: while offset + k < total, ask again from offset + k). The
                // engine hears of the list once it is whole: a partial list would make it take
                // the sessions on later pages for ones that were never approved.
                // A session that moved between pages (another closed meanwhile) is counted once.
                let seen = Set(listed)
                listed += ids.filter { !seen.contains($0) }
                listOffset += ids.count
                if listOffset < Int(total) {
                    guard !ids.isEmpty, listOffset <= Int(UInt8.max) else {
                        forgetListing()
                        return [.completed(id, command, .unknown)]   // an empty page short of the total: no whole list
                    }
                    followUp = (.listSessions(offset: UInt8(listOffset)), id)
                    return []
                }
                let all = listed
                forgetListing()
                return [.completed(id, command, .ok), .openSessions(all.map(TerminalHandle.init(reference:)))]
            case .response, .assumedAccepted: return [.completed(id, command, .ok)]
            // Sent, but no answer: it may have taken effect.
            case .timedOut, .linkLost, .unreadable: return [.completed(id, command, .unknown)]
            case .notReady, .queueFull, .encodingFailed: return [.completed(id, command, .notSent)]
            }
        case .terminalState, .identity, .connectionInfo, .securityAlert, .malformed, .undecodable:
            return []
        }
    }
}
