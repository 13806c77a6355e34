import CLibUSB

/// How an asynchronous transfer ended.
public enum USBTransferOutcome: Equatable, Sendable {
    /// Completed: the bytes received (IN) or the count sent (OUT, in `sent`).
    case completed(received: [UInt8], sent: Int)
    /// The transfer's own timeout passed (the bytes that made it are in `sent`/`received`).
    case timedOut(received: [UInt8], sent: Int)
    /// Cancelled by `cancel` (or by closing).
    case cancelled
    /// The endpoint stalled: clear the halt before using it again.
    case stalled
    /// The device went away.
    case noDevice
    /// The device sent more than asked for.
    case overflow
    /// Any other failure of the transfer.
    case failed
}

/// One asynchronous bulk transfer, completed on the event loop by `USBEventDriver`.
///
/// The object keeps itself alive while submitted; its buffer belongs to it. The completion runs
/// on the loop thread, inside libusb's event handling.
public final class USBBulkTransfer {
    private let raw: UnsafeMutablePointer<libusb_transfer>
    private let buffer: UnsafeMutablePointer<UInt8>
    private let capacity: Int
    private let handle: USBDeviceHandle
    private let lib: LibUSB
    private var completion: ((USBTransferOutcome) -> Void)?
    /// Whether it is submitted and not yet completed.
    public private(set) var isInFlight = false

    /// A transfer on `endpoint` (bit 7 set: IN) holding up to `capacity` bytes. For an FTDI IN
    /// endpoint, make `capacity` a multiple of the max packet size (see `FTDIPacketStripper`).
    public init(handle: USBDeviceHandle, endpoint: UInt8, capacity: Int) {
        precondition(capacity > 0 && capacity <= Int(Int32.max))
        lib = handle.lib
        raw = lib.libusb_alloc_transfer(0)!
        buffer = .allocate(capacity: capacity)
        self.capacity = capacity
        self.handle = handle
        raw.pointee.dev_handle = handle.raw
        raw.pointee.endpoint = endpoint
        raw.pointee.type = UInt8(LIBUSB_TRANSFER_TYPE_BULK.rawValue)
        raw.pointee.buffer = buffer
        raw.pointee.callback = { transfer in
            guard let transfer, let context = transfer.pointee.user_data else { return }
            Unmanaged<USBBulkTransfer>.fromOpaque(context).takeRetainedValue().finish()
        }
    }

    deinit {
        precondition(!isInFlight, "a submitted transfer keeps itself alive")
        lib.libusb_free_transfer(raw)
        buffer.deallocate()
    }

    private var isIn: Bool { raw.pointee.endpoint & 0x80 != 0 }

    /// Submits the transfer: `bytes` for OUT (at most `capacity`), ignored for IN (which asks for
    /// `capacity`). `timeoutMilliseconds` 0 waits for ever (the usual for an IN endpoint polled
    /// for a terminal's bytes). `zeroPacket`: end an OUT whose length is a multiple of the max
    /// packet size with a zero-length packet (CDC-ACM needs it).
    public func submit(_ bytes: [UInt8] = [], timeoutMilliseconds: UInt32 = 0, zeroPacket: Bool = false,
                       completion: @escaping (USBTransferOutcome) -> Void) throws(USBError) {
        precondition(!isInFlight, "one submission at a time")
        let length: Int
        if isIn {
            length = capacity
        } else {
            precondition(bytes.count <= capacity, "an OUT transfer holds at most its capacity")
            bytes.withUnsafeBufferPointer { source in
                if let base = source.baseAddress { buffer.update(from: base, count: source.count) }
            }
            length = bytes.count
        }
        raw.pointee.length = Int32(length)
        raw.pointee.timeout = timeoutMilliseconds
        raw.pointee.flags = zeroPacket ? UInt8(LIBUSB_TRANSFER_ADD_ZERO_PACKET.rawValue) : 0
        raw.pointee.user_data = Unmanaged.passRetained(self).toOpaque()
        self.completion = completion
        isInFlight = true
        handle.inFlight += 1
        let rc = lib.libusb_submit_transfer(raw)
        if rc < 0 {
            Unmanaged<USBBulkTransfer>.fromOpaque(raw.pointee.user_data!).release()
            raw.pointee.user_data = nil
            self.completion = nil
            isInFlight = false
            handle.inFlight -= 1
            throw USBError(call: "libusb_submit_transfer", returned: rc)
        }
    }

    /// Asks libusb to cancel; the completion still runs (with `.cancelled`) from the event loop.
    public func cancel() {
        guard isInFlight else { return }
        _ = lib.libusb_cancel_transfer(raw)
    }

    private func finish() {
        isInFlight = false
        handle.inFlight -= 1
        raw.pointee.user_data = nil
        let actual = Int(raw.pointee.actual_length)
        let received = isIn ? Array(UnsafeBufferPointer(start: buffer, count: actual)) : []
        let sent = isIn ? 0 : actual
        let outcome: USBTransferOutcome
        switch raw.pointee.status {
        case LIBUSB_TRANSFER_COMPLETED: outcome = .completed(received: received, sent: sent)
        case LIBUSB_TRANSFER_TIMED_OUT: outcome = .timedOut(received: received, sent: sent)
        case LIBUSB_TRANSFER_CANCELLED: outcome = .cancelled
        case LIBUSB_TRANSFER_STALL: outcome = .stalled
        case LIBUSB_TRANSFER_NO_DEVICE: outcome = .noDevice
        case LIBUSB_TRANSFER_OVERFLOW: outcome = .overflow
        default: outcome = .failed
        }
        let done = completion
        completion = nil
        done?(outcome)
    }
}
