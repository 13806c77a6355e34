import CLibUSB
import USBCore
import USBSysfs

/// One libusb context: its devices, its event sources (driven by `USBEventDriver`) and hotplug.
///
/// Not thread-safe by design: like everything else, it lives on the event loop's thread.
/// Destroy every handle, transfer and hotplug registration before the context.
public final class USBContext {
    /// The libusb context (for the wrappers in this module).
    let raw: OpaquePointer
    /// The loaded libusb whose functions every wrapper here calls.
    let lib: LibUSB

    /// Initialises libusb, loading it first if no context has (`LibUSB.shared()`): a missing
    /// or too old `libusb-1.0.so.0` throws `libraryUnavailable`. Its log stays off: failures
    /// come back as `USBError`s and the daemon's log says what they mean.
    public init() throws(USBError) {
        let lib = try LibUSB.shared()
        var context: OpaquePointer?
        _ = try checkingUSB("libusb_init") { lib.libusb_init(&context) }
        self.lib = lib
        raw = context!
        _ = lib.setLogLevel(raw, LIBUSB_LOG_LEVEL_NONE)
    }

    deinit {
        lib.libusb_exit(raw)
    }

    /// Whether this libusb and kernel deliver hotplug events; without them the daemon falls back
    /// to reopening with backoff and enumerating on each attempt.
    public var hasHotplug: Bool {
        lib.libusb_has_capability(UInt32(LIBUSB_CAP_HAS_HOTPLUG.rawValue)) != 0
    }

    /// The devices attached now (hubs included).
    public func devices() throws(USBError) -> [USBDevice] {
        var list: UnsafeMutablePointer<OpaquePointer?>?
        let count = try checkingUSB("libusb_get_device_list") { Int32(truncatingIfNeeded: lib.libusb_get_device_list(raw, &list)) }
        defer { lib.libusb_free_device_list(list, 1) }
        return (0..<Int(count)).compactMap { index in list![index].map { USBDevice(retaining: $0, context: self) } }
    }

    /// The identities of the devices attached now, serials read from sysfs (no device opened).
    public func identities(sysfsRoot: String = SysfsUSB.defaultRoot) throws(USBError) -> [USBDeviceIdentity] {
        try devices().compactMap { $0.identity(sysfsRoot: sysfsRoot) }
    }
}

/// A USB device libusb enumerated (a reference; it stays valid while held, even unplugged).
public final class USBDevice {
    let raw: OpaquePointer
    /// Kept so the context outlives its devices.
    let context: USBContext

    init(retaining raw: OpaquePointer, context: USBContext) {
        self.raw = context.lib.libusb_ref_device(raw)!
        self.context = context
    }

    deinit {
        lib.libusb_unref_device(raw)
    }

    var lib: LibUSB { context.lib }

    /// The device descriptor (libusb keeps it cached: no I/O).
    public func descriptor() throws(USBError) -> libusb_device_descriptor {
        var descriptor = libusb_device_descriptor()
        _ = try checkingUSB("libusb_get_device_descriptor") { lib.libusb_get_device_descriptor(raw, &descriptor) }
        return descriptor
    }

    /// The bus number.
    public var bus: UInt8 { lib.libusb_get_bus_number(raw) }
    /// The address on the bus (new on every replug).
    public var address: UInt8 { lib.libusb_get_device_address(raw) }

    /// Where it is plugged in; `nil` for a root hub (no port).
    public var portPath: USBPortPath? {
        var ports = [UInt8](repeating: 0, count: USBPortPath.maxDepth)
        let count = lib.libusb_get_port_numbers(raw, &ports, Int32(ports.count))
        guard count > 0 else { return nil }
        return USBPortPath(bus: bus, ports: Array(ports.prefix(Int(count))))
    }

    /// The negotiated speed.
    public var speed: USBSpeed {
        switch lib.libusb_get_device_speed(raw) {
        case Int32(LIBUSB_SPEED_LOW.rawValue): .low
        case Int32(LIBUSB_SPEED_FULL.rawValue): .full
        case Int32(LIBUSB_SPEED_HIGH.rawValue): .high
        case Int32(LIBUSB_SPEED_SUPER.rawValue): .superSpeed
        case Int32(LIBUSB_SPEED_SUPER_PLUS.rawValue): .superSpeedPlus
        default: .unknown
        }
    }

    /// Vendor, product, port, speed and address from libusb, the serial from sysfs; `nil` for
    /// a root hub or a device whose descriptor cannot be read.
    public func identity(sysfsRoot: String = SysfsUSB.defaultRoot) -> USBDeviceIdentity? {
        guard let port = portPath, let d = try? descriptor() else { return nil }
        return USBDeviceIdentity(vendorID: d.idVendor, productID: d.idProduct, serial: SysfsUSB.serial(at: port, sysfsRoot: sysfsRoot),
                                 portPath: port, speed: speed, address: address)
    }

    /// Opens the device (needs write access to its `/dev/bus/usb` node).
    public func open() throws(USBError) -> USBDeviceHandle {
        var handle: OpaquePointer?
        _ = try checkingUSB("libusb_open") { lib.libusb_open(raw, &handle) }
        return USBDeviceHandle(raw: handle!, device: self)
    }

    /// The max packet size of `endpoint` in the active configuration (what FTDI's status bytes repeat per).
    public func maxPacketSize(endpoint: UInt8) throws(USBError) -> Int {
        Int(try checkingUSB("libusb_get_max_packet_size") { lib.libusb_get_max_packet_size(raw, endpoint) })
    }

    /// Whether two references name the same enumerated device (a replug is a new one).
    public func isSame(as other: USBDevice) -> Bool { raw == other.raw }
}

/// An open device. Close it (or let it go) only with no transfer in flight.
public final class USBDeviceHandle {
    let raw: OpaquePointer
    /// The device it was opened from.
    public let device: USBDevice
    private var isOpen = true
    private var claimed: Set<UInt8> = []
    private var detached: Set<UInt8> = []
    /// Transfers submitted and not yet completed; closing with any is a bug.
    var inFlight = 0

    /// The timeout for synchronous control requests: only bring-up uses them, and a device that
    /// takes longer than this to answer one is hung.
    public static let controlTimeoutMilliseconds: UInt32 = 500

    init(raw: OpaquePointer, device: USBDevice) {
        self.raw = raw
        self.device = device
    }

    var lib: LibUSB { device.context.lib }

    deinit { close() }

    /// Releases the claimed interfaces, gives detached interfaces back to their kernel drivers,
    /// and closes the device. Errors are ignored: the device may be gone already. Never from a
    /// transfer or hotplug callback: libusb deadlocks (use `USBEventDriver.afterEvents`).
    public func close() {
        guard isOpen else { return }
        precondition(inFlight == 0, "USBDeviceHandle.close with \(inFlight) transfers in flight")
        for interface in claimed { _ = lib.libusb_release_interface(raw, Int32(interface)) }
        for interface in detached { _ = lib.libusb_attach_kernel_driver(raw, Int32(interface)) }
        claimed.removeAll()
        detached.removeAll()
        lib.libusb_close(raw)
        isOpen = false
    }

    /// Claims an interface for this process (`busy` while a kernel driver or another process has it).
    public func claim(interface: UInt8) throws(USBError) {
        _ = try checkingUSB("libusb_claim_interface") { lib.libusb_claim_interface(raw, Int32(interface)) }
        claimed.insert(interface)
    }

    /// Releases a claimed interface.
    public func release(interface: UInt8) throws(USBError) {
        claimed.remove(interface)
        _ = try checkingUSB("libusb_release_interface") { lib.libusb_release_interface(raw, Int32(interface)) }
    }

    /// Whether a kernel driver (ftdi_sio, cdc_acm…) is bound to the interface.
    public func kernelDriverActive(interface: UInt8) throws(USBError) -> Bool {
        try checkingUSB("libusb_kernel_driver_active") { lib.libusb_kernel_driver_active(raw, Int32(interface)) } == 1
    }

    /// Unbinds the kernel driver from the interface if one is bound; `close` binds it again.
    /// Returns whether one was detached.
    @discardableResult
    public func detachKernelDriverIfActive(interface: UInt8) throws(USBError) -> Bool {
        guard try kernelDriverActive(interface: interface) else { return false }
        _ = try checkingUSB("libusb_detach_kernel_driver") { lib.libusb_detach_kernel_driver(raw, Int32(interface)) }
        detached.insert(interface)
        return true
    }

    /// Binds the kernel driver again now (otherwise `close` does).
    public func attachKernelDriver(interface: UInt8) throws(USBError) {
        detached.remove(interface)
        _ = try checkingUSB("libusb_attach_kernel_driver") { lib.libusb_attach_kernel_driver(raw, Int32(interface)) }
    }

    /// Sends a control request and waits for it, at most `controlTimeoutMilliseconds`: for the
    /// few bring-up requests only (it blocks the loop meanwhile). Returns the IN data.
    public func control(_ request: USBControlRequest, timeoutMilliseconds: UInt32 = controlTimeoutMilliseconds) throws(USBError) -> [UInt8] {
        var buffer = request.isIn ? [UInt8](repeating: 0, count: Int(request.inLength)) : request.data
        let count = try checkingUSB("libusb_control_transfer") {
            buffer.withUnsafeMutableBufferPointer { b in
                lib.libusb_control_transfer(raw, request.requestType, request.request, request.value, request.index,
                                        b.baseAddress, request.length, timeoutMilliseconds)
            }
        }
        if !request.isIn && Int(count) != request.data.count { throw USBError(call: "libusb_control_transfer", code: .io) }
        return request.isIn ? Array(buffer.prefix(Int(count))) : []
    }

    /// A string descriptor in ASCII (the device must answer a GET_DESCRIPTOR; prefer sysfs's copy).
    public func stringDescriptorASCII(index: UInt8) throws(USBError) -> String {
        var buffer = [UInt8](repeating: 0, count: 256)
        let count = try checkingUSB("libusb_get_string_descriptor_ascii") {
            lib.libusb_get_string_descriptor_ascii(raw, index, &buffer, Int32(buffer.count))
        }
        return String(decoding: buffer.prefix(Int(count)), as: UTF8.self)
    }

    /// Clears a stalled endpoint.
    public func clearHalt(endpoint: UInt8) throws(USBError) {
        _ = try checkingUSB("libusb_clear_halt") { lib.libusb_clear_halt(raw, endpoint) }
    }

    /// A USB port reset: the device re-enumerates. `notFound` from libusb means it came back as a
    /// different device (descriptors changed): the handle is then useless, close it and enumerate.
    public func reset() throws(USBError) {
        _ = try checkingUSB("libusb_reset_device") { lib.libusb_reset_device(raw) }
    }
}
