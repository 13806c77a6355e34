/// A failed libusb call: which call, and which `LIBUSB_ERROR_*` it returned.
///
/// Unlike `SystemError`, libusb's codes are few and fixed, so they are an enum: callers switch
/// on `noDevice` (unplugged: wait for hotplug) or `busy` (someone else claimed the interface)
/// without comparing numbers.
public struct USBError: Error, Equatable, Hashable, Sendable, CustomStringConvertible {
    /// What libusb reported.
    public enum Code: Int32, Sendable {
        /// Input/output error (`LIBUSB_ERROR_IO`): usbfs failed the request, e.g. a device
        /// that stopped answering mid-transfer.
        case io = -1
        /// Invalid parameter (`LIBUSB_ERROR_INVALID_PARAM`): a bug here, or an endpoint or
        /// interface the device does not have.
        case invalidParameter = -2
        /// Access denied (`LIBUSB_ERROR_ACCESS`): the device node's permissions (a udev rule
        /// must give the daemon's group the node).
        case access = -3
        /// No such device (`LIBUSB_ERROR_NO_DEVICE`): it was unplugged or reset away.
        case noDevice = -4
        /// Entity not found (`LIBUSB_ERROR_NOT_FOUND`): e.g. no kernel driver to detach, or
        /// releasing an interface not claimed.
        case notFound = -5
        /// Resource busy (`LIBUSB_ERROR_BUSY`): another process or a kernel driver holds the interface.
        case busy = -6
        /// Operation timed out (`LIBUSB_ERROR_TIMEOUT`).
        case timeout = -7
        /// Overflow (`LIBUSB_ERROR_OVERFLOW`): the device sent more than the buffer holds.
        case overflow = -8
        /// Pipe error (`LIBUSB_ERROR_PIPE`): the endpoint stalled, or a control request was refused.
        case pipe = -9
        /// System call interrupted (`LIBUSB_ERROR_INTERRUPTED`).
        case interrupted = -10
        /// Insufficient memory (`LIBUSB_ERROR_NO_MEM`).
        case noMemory = -11
        /// Operation not supported on this platform or device (`LIBUSB_ERROR_NOT_SUPPORTED`).
        case notSupported = -12
        /// Any other error (`LIBUSB_ERROR_OTHER`, or a code newer than this enum).
        case other = -99
        /// libusb itself could not be loaded (`call` "dlopen") or lacks a function this module
        /// calls (`call` "dlsym"): the `libusb-1.0-0` package is not installed, or is older than
        /// `LibUSB.minimumVersion`. `detail` holds dlerror's text. Not a libusb code: no libusb
        /// call returns it, and `init(call:returned:)` never makes it.
        case libraryUnavailable = -1000
    }

    /// The libusb function that failed, e.g. `"libusb_claim_interface"`.
    public let call: String
    /// Its error.
    public let code: Code
    /// What the system said beyond the code: dlerror's text for `libraryUnavailable`, else `nil`.
    public let detail: String?

    /// An error from its parts.
    public init(call: String, code: Code, detail: String? = nil) {
        self.call = call
        self.code = code
        self.detail = detail
    }

    /// An error from a negative libusb return value; unknown codes become `other`.
    public init(call: String, returned value: Int32) {
        let known = Code(rawValue: value).flatMap { $0 == .libraryUnavailable ? nil : $0 }
        self.init(call: call, code: known ?? .other)
    }

    /// `"libusb_open: LIBUSB_ERROR_ACCESS"`, or for a library that is not there
    /// `"dlopen: libusb not loaded: libusb-1.0.so.0: cannot open shared object file: …"`.
    public var description: String {
        call + ": " + code.name + (detail.map { ": " + $0 } ?? "")
    }
}

extension USBError.Code {
    /// libusb's name for the code (what `libusb_error_name` returns), spelled here so that an
    /// error reads the same when libusb is not loaded.
    public var name: String {
        switch self {
        case .io: "LIBUSB_ERROR_IO"
        case .invalidParameter: "LIBUSB_ERROR_INVALID_PARAM"
        case .access: "LIBUSB_ERROR_ACCESS"
        case .noDevice: "LIBUSB_ERROR_NO_DEVICE"
        case .notFound: "LIBUSB_ERROR_NOT_FOUND"
        case .busy: "LIBUSB_ERROR_BUSY"
        case .timeout: "LIBUSB_ERROR_TIMEOUT"
        case .overflow: "LIBUSB_ERROR_OVERFLOW"
        case .pipe: "LIBUSB_ERROR_PIPE"
        case .interrupted: "LIBUSB_ERROR_INTERRUPTED"
        case .noMemory: "LIBUSB_ERROR_NO_MEM"
        case .notSupported: "LIBUSB_ERROR_NOT_SUPPORTED"
        case .other: "LIBUSB_ERROR_OTHER"
        case .libraryUnavailable: "libusb not loaded"
        }
    }
}

/// Runs a libusb call that returns a negative `LIBUSB_ERROR_*` on failure, and its result otherwise.
@inlinable
func checkingUSB(_ call: String, _ body: () -> Int32) throws(USBError) -> Int32 {
    let result = body()
    if result < 0 { throw USBError(call: call, returned: result) }
    return result
}
