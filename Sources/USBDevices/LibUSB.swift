import CLibUSB
import Glibc

/// libusb-1.0, loaded at run time: `dlopen` of `libusb-1.0.so.0` when the first `USBContext` is
/// made, then `dlsym` of every libusb function this module calls, each as a typed C function
/// pointer (the types come from libusb's own prototypes, `pb_*_fn` in CLibUSB.h).
///
/// Why: linked at build time, libusb and the libudev it needs cost every daemon 0.4–0.6 MiB of
/// idle RSS, USB terminal or not. Nothing links libusb now (CLibUSB has no `link`), so a direct
/// call of a libusb function from Swift fails to link: every call goes through a `LibUSB`.
///
/// A missing library, or one without a function used here (older than 1.0.22, which added
/// `libusb_set_option`), is `USBError.Code.libraryUnavailable` with dlerror's text.
public final class LibUSB: @unchecked Sendable { // immutable after init; libusb's functions are thread-safe where we use them
    /// The library's soname, what the `libusb-1.0-0` package installs. A `StaticString` so that
    /// the name is in the binary's read-only data, where packaging/make-deb finds it to add the
    /// package to Depends (a 15-byte `String` literal would be an inline small string).
    public static let defaultLibraryName: StaticString = "libusb-1.0.so.0"

    /// The oldest libusb with every function resolved here (`libusb_set_option`: 1.0.22).
    public static let minimumVersion = "1.0.22"

    /// The file loaded (as given to dlopen).
    public let libraryName: String
    /// Every function resolved, by name, with its address (for tests and diagnostics).
    public let symbols: [(name: String, address: UnsafeRawPointer)]
    /// The dlopen handle. Never closed once loaded: libusb keeps a udev monitor thread and
    /// process-wide state past its last context, and the shared instance lives as long as the process.
    private let library: UnsafeMutableRawPointer

    let libusb_init: pb_libusb_init_fn
    let libusb_exit: pb_libusb_exit_fn
    /// Variadic, so only C calls it: through `setLogLevel`.
    private let libusb_set_option: UnsafeMutableRawPointer
    let libusb_has_capability: pb_libusb_has_capability_fn
    let libusb_get_device_list: pb_libusb_get_device_list_fn
    let libusb_free_device_list: pb_libusb_free_device_list_fn
    let libusb_ref_device: pb_libusb_ref_device_fn
    let libusb_unref_device: pb_libusb_unref_device_fn
    let libusb_get_device_descriptor: pb_libusb_get_device_descriptor_fn
    let libusb_get_bus_number: pb_libusb_get_bus_number_fn
    let libusb_get_device_address: pb_libusb_get_device_address_fn
    let libusb_get_port_numbers: pb_libusb_get_port_numbers_fn
    let libusb_get_device_speed: pb_libusb_get_device_speed_fn
    let libusb_get_max_packet_size: pb_libusb_get_max_packet_size_fn
    let libusb_get_active_config_descriptor: pb_libusb_get_active_config_descriptor_fn
    let libusb_free_config_descriptor: pb_libusb_free_config_descriptor_fn
    let libusb_open: pb_libusb_open_fn
    let libusb_close: pb_libusb_close_fn
    let libusb_claim_interface: pb_libusb_claim_interface_fn
    let libusb_release_interface: pb_libusb_release_interface_fn
    let libusb_kernel_driver_active: pb_libusb_kernel_driver_active_fn
    let libusb_detach_kernel_driver: pb_libusb_detach_kernel_driver_fn
    let libusb_attach_kernel_driver: pb_libusb_attach_kernel_driver_fn
    let libusb_control_transfer: pb_libusb_control_transfer_fn
    let libusb_get_string_descriptor_ascii: pb_libusb_get_string_descriptor_ascii_fn
    let libusb_clear_halt: pb_libusb_clear_halt_fn
    let libusb_reset_device: pb_libusb_reset_device_fn
    let libusb_alloc_transfer: pb_libusb_alloc_transfer_fn
    let libusb_free_transfer: pb_libusb_free_transfer_fn
    let libusb_submit_transfer: pb_libusb_submit_transfer_fn
    let libusb_cancel_transfer: pb_libusb_cancel_transfer_fn
    let libusb_set_pollfd_notifiers: pb_libusb_set_pollfd_notifiers_fn
    let libusb_get_pollfds: pb_libusb_get_pollfds_fn
    let libusb_free_pollfds: pb_libusb_free_pollfds_fn
    let libusb_handle_events_timeout_completed: pb_libusb_handle_events_timeout_completed_fn
    let libusb_get_next_timeout: pb_libusb_get_next_timeout_fn
    let libusb_hotplug_register_callback: pb_libusb_hotplug_register_callback_fn
    let libusb_hotplug_deregister_callback: pb_libusb_hotplug_deregister_callback_fn

    /// Loads `libraryName` (a soname or a path) and resolves every function, or throws
    /// `libraryUnavailable` (`call` "dlopen" or "dlsym"; `detail` dlerror's text) and unloads
    /// it again. The process's libusb is `shared()`; this is for tests and tools that name another.
    public init(libraryName: String) throws(USBError) {
        // RTLD_NOW: a library that cannot bind its own dependencies (libudev) fails here, not
        // at some later call; RTLD_LOCAL: its symbols stay out of the process's namespace.
        guard let library = dlopen(libraryName, RTLD_NOW | RTLD_LOCAL) else {
            throw USBError(call: "dlopen", code: .libraryUnavailable, detail: Self.lastDLError(or: libraryName + ": dlopen failed"))
        }
        var resolved: [(name: String, address: UnsafeRawPointer)] = []
        var complete = false
        defer { if !complete { dlclose(library) } }
        func symbol<Function>(_ name: String, as _: Function.Type = Function.self) throws(USBError) -> Function {
            _ = dlerror()
            guard let address = dlsym(library, name) else {
                throw USBError(call: "dlsym", code: .libraryUnavailable, detail: Self.lastDLError(or: libraryName + ": no " + name))
            }
            resolved.append((name, UnsafeRawPointer(address)))
            return unsafeBitCast(address, to: Function.self)
        }
        libusb_init = try symbol("libusb_init")
        libusb_exit = try symbol("libusb_exit")
        libusb_set_option = try symbol("libusb_set_option", as: UnsafeMutableRawPointer.self)
        libusb_has_capability = try symbol("libusb_has_capability")
        libusb_get_device_list = try symbol("libusb_get_device_list")
        libusb_free_device_list = try symbol("libusb_free_device_list")
        libusb_ref_device = try symbol("libusb_ref_device")
        libusb_unref_device = try symbol("libusb_unref_device")
        libusb_get_device_descriptor = try symbol("libusb_get_device_descriptor")
        libusb_get_bus_number = try symbol("libusb_get_bus_number")
        libusb_get_device_address = try symbol("libusb_get_device_address")
        libusb_get_port_numbers = try symbol("libusb_get_port_numbers")
        libusb_get_device_speed = try symbol("libusb_get_device_speed")
        libusb_get_max_packet_size = try symbol("libusb_get_max_packet_size")
        libusb_get_active_config_descriptor = try symbol("libusb_get_active_config_descriptor")
        libusb_free_config_descriptor = try symbol("libusb_free_config_descriptor")
        libusb_open = try symbol("libusb_open")
        libusb_close = try symbol("libusb_close")
        libusb_claim_interface = try symbol("libusb_claim_interface")
        libusb_release_interface = try symbol("libusb_release_interface")
        libusb_kernel_driver_active = try symbol("libusb_kernel_driver_active")
        libusb_detach_kernel_driver = try symbol("libusb_detach_kernel_driver")
        libusb_attach_kernel_driver = try symbol("libusb_attach_kernel_driver")
        libusb_control_transfer = try symbol("libusb_control_transfer")
        libusb_get_string_descriptor_ascii = try symbol("libusb_get_string_descriptor_ascii")
        libusb_clear_halt = try symbol("libusb_clear_halt")
        libusb_reset_device = try symbol("libusb_reset_device")
        libusb_alloc_transfer = try symbol("libusb_alloc_transfer")
        libusb_free_transfer = try symbol("libusb_free_transfer")
        libusb_submit_transfer = try symbol("libusb_submit_transfer")
        libusb_cancel_transfer = try symbol("libusb_cancel_transfer")
        libusb_set_pollfd_notifiers = try symbol("libusb_set_pollfd_notifiers")
        libusb_get_pollfds = try symbol("libusb_get_pollfds")
        libusb_free_pollfds = try symbol("libusb_free_pollfds")
        libusb_handle_events_timeout_completed = try symbol("libusb_handle_events_timeout_completed")
        libusb_get_next_timeout = try symbol("libusb_get_next_timeout")
        libusb_hotplug_register_callback = try symbol("libusb_hotplug_register_callback")
        libusb_hotplug_deregister_callback = try symbol("libusb_hotplug_deregister_callback")
        self.library = library
        self.libraryName = libraryName
        self.symbols = resolved
        complete = true
    }

    /// libusb's `LIBUSB_OPTION_LOG_LEVEL` for `context`, through C (libusb_set_option is variadic).
    func setLogLevel(_ context: OpaquePointer, _ level: libusb_log_level) -> Int32 {
        pb_usb_set_log_level(libusb_set_option, context, Int32(level.rawValue))
    }

    /// The process's libusb (`defaultLibraryName`), loaded by the first call; every later call,
    /// from any thread, gets the same instance, or the same error: a library installed after a
    /// failed load is picked up by the next start of the process.
    public static func shared() throws(USBError) -> LibUSB {
        try loadedOnce.get()
    }

    /// Swift runs a static's initialiser exactly once, thread-safely (swift_once), on first use.
    private static let loadedOnce: Result<LibUSB, USBError> = Result { () throws(USBError) -> LibUSB in
        try LibUSB(libraryName: String(describing: defaultLibraryName))
    }

    private static func lastDLError(or fallback: String) -> String {
        guard let text = dlerror() else { return fallback }
        return String(cString: text)
    }
}
