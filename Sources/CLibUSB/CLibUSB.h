#ifndef PAYBRIDGE_CLIBUSB_H
#define PAYBRIDGE_CLIBUSB_H

// libusb-1.0 for Swift. libusb_set_option is variadic, which Swift cannot call, and a few
// constants are macros or enumerators Swift imports awkwardly: fixed-type wrappers here.

#include <libusb.h>

static inline int pb_usb_set_log_level(libusb_context *ctx, int level) {
    return libusb_set_option(ctx, LIBUSB_OPTION_LOG_LEVEL, level);
}

/// The setup packet's size in front of a control transfer's data.
enum { PB_USB_CONTROL_SETUP_SIZE = LIBUSB_CONTROL_SETUP_SIZE };

#endif
