import CLibUSB
import USBCore
import USBSysfs

/// What happened to the selected device.
public enum USBDeviceEvent: Equatable, Sendable {
    /// The selected device is present (at registration, when already plugged in, or on arrival).
    case arrived(USBDeviceIdentity)
    /// It left (unplugged, reset away, or powered down).
    case departed(USBDeviceIdentity)
}

/// Follows the one device a `USBSelector` names through libusb's hotplug events, delivered on the
/// event loop (through `USBEventDriver`'s event handling).
///
/// The handler runs inside libusb's event handling: open or close the device from
/// `USBEventDriver.afterEvents`, not in the handler itself. Only a departure of the device
/// that arrived is reported: another adapter of the same model
/// leaving is not the terminal. Where `USBContext.hasHotplug` is false, `start` throws
/// `notSupported` and the caller falls back to enumerating on each reopen with its backoff.
public final class USBDeviceWatcher {
    /// The selector followed.
    public let selector: USBSelector
    private let context: USBContext
    private let sysfsRoot: String
    private let handler: (USBDeviceEvent, USBDevice) -> Void
    private var registration: libusb_hotplug_callback_handle = 0
    private var registered = false
    private var current: (device: USBDevice, identity: USBDeviceIdentity)?

    /// A watcher; nothing is reported before `start`.
    public init(context: USBContext, selector: USBSelector, sysfsRoot: String = SysfsUSB.defaultRoot,
                handler: @escaping (USBDeviceEvent, USBDevice) -> Void) {
        self.context = context
        self.selector = selector
        self.sysfsRoot = sysfsRoot
        self.handler = handler
    }

    deinit { stop() }

    /// The device followed now, if present.
    public var present: USBDeviceIdentity? { current?.identity }

    /// Registers for arrivals and departures; a device already present is reported as arrived
    /// from inside this call (libusb's ENUMERATE flag).
    public func start() throws(USBError) {
        guard !registered else { return }
        guard context.hasHotplug else { throw USBError(call: "libusb_hotplug_register_callback", code: .notSupported) }
        var vendor = LIBUSB_HOTPLUG_MATCH_ANY
        var product = LIBUSB_HOTPLUG_MATCH_ANY
        if case .identity(let v, let p, _) = selector {
            vendor = Int32(v)
            product = Int32(p)
        }
        let events = Int32(LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED.rawValue | LIBUSB_HOTPLUG_EVENT_DEVICE_LEFT.rawValue)
        let me = Unmanaged.passUnretained(self).toOpaque()
        registered = true
        do {
            _ = try checkingUSB("libusb_hotplug_register_callback") {
                context.lib.libusb_hotplug_register_callback(context.raw, events, Int32(LIBUSB_HOTPLUG_ENUMERATE.rawValue), vendor, product,
                                                 LIBUSB_HOTPLUG_MATCH_ANY, { _, device, event, user in
                    guard let device, let user else { return 0 }
                    Unmanaged<USBDeviceWatcher>.fromOpaque(user).takeUnretainedValue().event(device, arrived: event == LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED)
                    return 0
                }, me, &registration)
            }
        } catch {
            registered = false
            throw error
        }
    }

    /// Deregisters; no event is reported afterwards.
    public func stop() {
        guard registered else { return }
        registered = false
        context.lib.libusb_hotplug_deregister_callback(context.raw, registration)
    }

    private func event(_ raw: OpaquePointer, arrived: Bool) {
        let device = USBDevice(retaining: raw, context: context)
        if arrived {
            guard current == nil, let identity = device.identity(sysfsRoot: sysfsRoot), selector.matches(identity) else { return }
            current = (device, identity)
            handler(.arrived(identity), device)
        } else {
            guard let followed = current, followed.device.isSame(as: device) else { return }
            current = nil
            handler(.departed(followed.identity), device)
        }
    }
}
