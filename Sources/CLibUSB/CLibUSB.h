#ifndef PAYBRIDGE_CLIBUSB_H
#define PAYBRIDGE_CLIBUSB_H

// libusb-1.0's types and constants for Swift. Nothing here links libusb: USBDevices loads
// libusb-1.0.so.0 with dlopen when the first USBContext is made (LibUSB.swift), so a daemon
// that never opens a USB device pays none of libusb's and libudev's memory. The header comes
// from libusb-1.0-0-dev; its directory is named here because pkg-config would also add -lusb-1.0.

#include <libusb-1.0/libusb.h>

// The type of a pointer to each libusb function USBDevices calls, taken from libusb's own
// prototypes so the Swift side cannot get a signature wrong (LibUSB resolves them with dlsym).
#define PB_USB_FN(name) typedef __typeof__(&name) pb_##name##_fn;
PB_USB_FN(libusb_init)
PB_USB_FN(libusb_exit)
PB_USB_FN(libusb_has_capability)
PB_USB_FN(libusb_get_device_list)
PB_USB_FN(libusb_free_device_list)
PB_USB_FN(libusb_ref_device)
PB_USB_FN(libusb_unref_device)
PB_USB_FN(libusb_get_device_descriptor)
PB_USB_FN(libusb_get_bus_number)
PB_USB_FN(libusb_get_device_address)
PB_USB_FN(libusb_get_port_numbers)
PB_USB_FN(libusb_get_device_speed)
PB_USB_FN(libusb_get_max_packet_size)
PB_USB_FN(libusb_get_active_config_descriptor)
PB_USB_FN(libusb_free_config_descriptor)
PB_USB_FN(libusb_open)
PB_USB_FN(libusb_close)
PB_USB_FN(libusb_claim_interface)
PB_USB_FN(libusb_release_interface)
PB_USB_FN(libusb_kernel_driver_active)
PB_USB_FN(libusb_detach_kernel_driver)
PB_USB_FN(libusb_attach_kernel_driver)
PB_USB_FN(libusb_control_transfer)
PB_USB_FN(libusb_get_string_descriptor_ascii)
PB_USB_FN(libusb_clear_halt)
PB_USB_FN(libusb_reset_device)
PB_USB_FN(libusb_alloc_transfer)
PB_USB_FN(libusb_free_transfer)
PB_USB_FN(libusb_submit_transfer)
PB_USB_FN(libusb_cancel_transfer)
PB_USB_FN(libusb_set_pollfd_notifiers)
PB_USB_FN(libusb_get_pollfds)
PB_USB_FN(libusb_free_pollfds)
PB_USB_FN(libusb_handle_events_timeout_completed)
PB_USB_FN(libusb_get_next_timeout)
PB_USB_FN(libusb_hotplug_register_callback)
PB_USB_FN(libusb_hotplug_deregister_callback)
#undef PB_USB_FN

/// Sets libusb's log level through `set_option`, libusb_set_option's address from dlsym.
/// libusb_set_option is variadic: Swift can neither call nor even type a variadic function
/// pointer, C can, so the pointer crosses as `void *` and is called with the real prototype.
static inline int pb_usb_set_log_level(void *set_option, libusb_context *ctx, int level) {
    int (*call)(libusb_context *, enum libusb_option, ...) = (int (*)(libusb_context *, enum libusb_option, ...))set_option;
    return call(ctx, LIBUSB_OPTION_LOG_LEVEL, level);
}

/// The setup packet's size in front of a control transfer's data.
enum { PB_USB_CONTROL_SETUP_SIZE = LIBUSB_CONTROL_SETUP_SIZE };

#endif
