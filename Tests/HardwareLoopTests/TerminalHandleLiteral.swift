import PaymentEngine

/// Tests name terminal handles by their 32-bit reference, as a PSP terminal does.
extension TerminalHandle: ExpressibleByIntegerLiteral {
    public init(integerLiteral value: UInt32) { self.init(reference: value) }
}
