import CLibUSB
import USBCore

/// Which USB serial protocol a `USBSerialPort` speaks.
public enum USBSerialKind: Equatable, Sendable {
    /// An FTDI FT232 (single interface 0): vendor requests, two status bytes per IN packet.
    case ftdi(latencyMilliseconds: UInt8)
    /// A CDC-ACM device: class requests to the communications interface, raw data on the data interface.
    case cdcACM(communicationInterface: UInt8, dataInterface: UInt8)
}

/// Why a `USBSerialPort` stopped.
public enum USBSerialClosure: Equatable, Sendable {
    /// `close()` was called.
    case closed
    /// The device went away (unplugged, reset, powered off).
    case noDevice
    /// An endpoint stalled or a transfer failed: reopen (and count it towards a reset).
    case transferFailed(USBTransferOutcome)
}

/// A byte stream to a terminal over libusb, without the kernel's serial driver: the kernel
/// driver is detached (and bound again on close), the interfaces claimed, the line brought up
/// with the synchronous control requests, then one bulk IN transfer is always pending and
/// writes go out one bulk OUT transfer at a time, all completed on the event loop.
///
/// An FT232 sends a status-only packet every latency period even when the line is silent, so
/// an open FTDI port completes an IN transfer (and wakes the loop) 1000/latency times a second;
/// a CDC-ACM device NAKs instead and costs nothing while idle.
public final class USBSerialPort {
    /// Bytes queued for writing beyond which `write` refuses (the link writes frames of ≤ 8 KiB).
    public static let maxQueuedBytes = 64 * 1024
    /// A bulk OUT transfer's timeout: a terminal's adapter that accepts nothing for this long is hung.
    public static let writeTimeoutMilliseconds: UInt32 = 2000

    /// Called on the loop with each run of received bytes (status bytes already removed).
    public var onBytes: ([UInt8]) -> Void = { _ in }
    /// Called when every queued byte has been accepted by the device.
    public var onDrained: () -> Void = {}
    /// Called once when the port stops, whatever the reason.
    public var onClosed: (USBSerialClosure) -> Void = { _ in }

    /// FTDI packets that reported an overrun, parity, framing error or break.
    public private(set) var lineErrorPackets = 0
    /// The endpoints in use.
    public let inEndpoint: UInt8, outEndpoint: UInt8
    /// The IN endpoint's max packet size (FTDI status bytes repeat per packet).
    public let maxPacketSize: Int

    private let kind: USBSerialKind
    private let driver: USBEventDriver
    private var handle: USBDeviceHandle?
    private let reader: USBBulkTransfer
    private let writer: USBBulkTransfer
    private var queue: [UInt8] = []
    private var closure: USBSerialClosure?

    /// Opens `device` and brings the line up; throws when any step fails (the handle is closed again).
    /// `readPackets`: how many max-size packets one IN transfer holds.
    public init(device: USBDevice, kind: USBSerialKind, line: SerialLineSettings, driver: USBEventDriver, readPackets: Int = 1) throws(USBSerialOpenError) {
        precondition(readPackets >= 1)
        self.kind = kind
        self.driver = driver
        let dataInterface: UInt8
        let interfaces: [UInt8]
        let requests: [USBControlRequest]
        do throws(USBSerialError) {
            switch kind {
            case .ftdi(let latency):
                dataInterface = 0
                interfaces = [0]
                requests = try FTDI.bringUp(line, latencyMilliseconds: latency)
            case .cdcACM(let communication, let data):
                dataInterface = data
                interfaces = [communication, data]
                requests = try CDCACM.bringUp(line, interface: communication)
            }
        } catch {
            throw .setting(error)
        }
        do throws(USBError) {
            let endpoints = try device.bulkEndpoints(interface: dataInterface)
            guard let found = endpoints else { throw USBError(call: "libusb_get_active_config_descriptor", code: .notFound) }
            (inEndpoint, outEndpoint) = found
            maxPacketSize = try device.maxPacketSize(endpoint: inEndpoint)
            let handle = try device.open()
            do throws(USBError) {
                for interface in interfaces {
                    try handle.detachKernelDriverIfActive(interface: interface)
                    try handle.claim(interface: interface)
                }
                for request in requests { _ = try handle.control(request) }
            } catch {
                handle.close()
                throw error
            }
            self.handle = handle
            reader = USBBulkTransfer(handle: handle, endpoint: inEndpoint, capacity: maxPacketSize * readPackets)
            writer = USBBulkTransfer(handle: handle, endpoint: outEndpoint, capacity: Self.maxQueuedBytes)
        } catch {
            throw .usb(error)
        }
    }

    /// Starts reading; received bytes arrive through `onBytes`.
    public func start() {
        read()
    }

    /// Queues `bytes` for the terminal; `false` (nothing queued) when closed or past `maxQueuedBytes`.
    @discardableResult
    public func write(_ bytes: [UInt8]) -> Bool {
        guard closure == nil, queue.count + bytes.count <= Self.maxQueuedBytes else { return false }
        queue += bytes
        flush()
        return true
    }

    /// Stops: pending transfers are cancelled, and the handle closes (kernel driver bound again)
    /// once libusb has returned them, from the event loop.
    public func close() {
        finish(.closed)
    }

    private func read() {
        guard closure == nil else { return }
        do {
            try reader.submit { [weak self] outcome in self?.readDone(outcome) }
        } catch {
            finish(error.code == .noDevice ? .noDevice : .transferFailed(.failed))
        }
    }

    private func readDone(_ outcome: USBTransferOutcome) {
        guard closure == nil else { return closeHandleIfIdle() }
        switch outcome {
        case .completed(let received, _):
            var payload = received
            if case .ftdi = kind {
                let stripped = FTDIPacketStripper.strip(received, maxPacketSize: maxPacketSize)
                payload = stripped.payload
                lineErrorPackets += stripped.statuses.filter(\.hasLineError).count
            }
            if !payload.isEmpty { onBytes(payload) }
            read()
        case .timedOut:
            read()
        case .cancelled:
            closeHandleIfIdle()
        case .noDevice:
            finish(.noDevice)
        default:
            finish(.transferFailed(outcome))
        }
    }

    private func flush() {
        guard closure == nil, !writer.isInFlight, !queue.isEmpty else { return }
        let chunk = queue
        queue.removeAll()
        do {
            // A CDC device waits for more after a transfer of whole packets unless a zero-length one ends it.
            try writer.submit(chunk, timeoutMilliseconds: Self.writeTimeoutMilliseconds, zeroPacket: !isFTDI) { [weak self] outcome in
                self?.writeDone(outcome)
            }
        } catch {
            finish(error.code == .noDevice ? .noDevice : .transferFailed(.failed))
        }
    }

    private var isFTDI: Bool {
        if case .ftdi = kind { return true }
        return false
    }

    private func writeDone(_ outcome: USBTransferOutcome) {
        guard closure == nil else { return closeHandleIfIdle() }
        switch outcome {
        case .completed:
            flush()
            if !writer.isInFlight { onDrained() }
        case .cancelled:
            closeHandleIfIdle()
        case .noDevice:
            finish(.noDevice)
        default:
            finish(.transferFailed(outcome))
        }
    }

    private func finish(_ reason: USBSerialClosure) {
        guard closure == nil else { return }
        closure = reason
        queue.removeAll()
        reader.cancel()
        writer.cancel()
        closeHandleIfIdle()
        onClosed(reason)
    }

    private func closeHandleIfIdle() {
        guard closure != nil, !reader.isInFlight, !writer.isInFlight, let handle else { return }
        self.handle = nil
        // Often reached from a transfer's completion, where libusb_close would deadlock.
        driver.afterEvents { handle.close() }
    }
}

/// Why a `USBSerialPort` could not be opened.
public enum USBSerialOpenError: Error, Equatable, Sendable {
    /// The line settings cannot be expressed to this adapter.
    case setting(USBSerialError)
    /// A libusb step failed (open, detach, claim, a bring-up request, descriptors).
    case usb(USBError)
}

extension USBDevice {
    /// The first bulk IN and bulk OUT endpoints of `interface` (alternate setting 0) in the active
    /// configuration, or `nil` when it has not both.
    public func bulkEndpoints(interface number: UInt8) throws(USBError) -> (in: UInt8, out: UInt8)? {
        var config: UnsafeMutablePointer<libusb_config_descriptor>?
        _ = try checkingUSB("libusb_get_active_config_descriptor") { lib.libusb_get_active_config_descriptor(raw, &config) }
        defer { lib.libusb_free_config_descriptor(config) }
        guard let config else { return nil }
        for i in 0..<Int(config.pointee.bNumInterfaces) {
            let interface = config.pointee.interface[i]
            guard interface.num_altsetting > 0 else { continue }
            let setting = interface.altsetting[0]
            guard setting.bInterfaceNumber == number else { continue }
            var input: UInt8?, output: UInt8?
            for e in 0..<Int(setting.bNumEndpoints) {
                let endpoint = setting.endpoint[e]
                guard endpoint.bmAttributes & 0x03 == 0x02 else { continue }
                if endpoint.bEndpointAddress & 0x80 != 0 { input = input ?? endpoint.bEndpointAddress } else { output = output ?? endpoint.bEndpointAddress }
            }
            if let input, let output { return (input, output) }
        }
        return nil
    }
}
