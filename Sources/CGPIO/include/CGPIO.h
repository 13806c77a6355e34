#ifndef CGPIO_H
#define CGPIO_H

// The Linux GPIO character device, uAPI v2 (<linux/gpio.h>), as small non-variadic functions
// Swift can call: ioctl is variadic, and the kernel's flag enum uses 64-bit values Swift would
// import unreliably. Each call returns what the system call returned (-1 with errno on failure);
// retrying EINTR is the Swift wrapper's business. No libgpiod: Debian 12's speaks the v1 uAPI.

#include <stdint.h>
#include <linux/gpio.h>

// The kernel's line flags (enum gpio_v2_line_flag), as 64-bit constants.
static const uint64_t CGPIO_FLAG_USED = GPIO_V2_LINE_FLAG_USED;
static const uint64_t CGPIO_FLAG_ACTIVE_LOW = GPIO_V2_LINE_FLAG_ACTIVE_LOW;
static const uint64_t CGPIO_FLAG_INPUT = GPIO_V2_LINE_FLAG_INPUT;
static const uint64_t CGPIO_FLAG_OUTPUT = GPIO_V2_LINE_FLAG_OUTPUT;
static const uint64_t CGPIO_FLAG_EDGE_RISING = GPIO_V2_LINE_FLAG_EDGE_RISING;
static const uint64_t CGPIO_FLAG_EDGE_FALLING = GPIO_V2_LINE_FLAG_EDGE_FALLING;
static const uint64_t CGPIO_FLAG_OPEN_DRAIN = GPIO_V2_LINE_FLAG_OPEN_DRAIN;
static const uint64_t CGPIO_FLAG_OPEN_SOURCE = GPIO_V2_LINE_FLAG_OPEN_SOURCE;
static const uint64_t CGPIO_FLAG_BIAS_PULL_UP = GPIO_V2_LINE_FLAG_BIAS_PULL_UP;
static const uint64_t CGPIO_FLAG_BIAS_PULL_DOWN = GPIO_V2_LINE_FLAG_BIAS_PULL_DOWN;
static const uint64_t CGPIO_FLAG_BIAS_DISABLED = GPIO_V2_LINE_FLAG_BIAS_DISABLED;

static const uint32_t CGPIO_ATTR_ID_FLAGS = GPIO_V2_LINE_ATTR_ID_FLAGS;
static const uint32_t CGPIO_ATTR_ID_OUTPUT_VALUES = GPIO_V2_LINE_ATTR_ID_OUTPUT_VALUES;
static const uint32_t CGPIO_ATTR_ID_DEBOUNCE = GPIO_V2_LINE_ATTR_ID_DEBOUNCE;
static const uint32_t CGPIO_EVENT_RISING_EDGE = GPIO_V2_LINE_EVENT_RISING_EDGE;
static const uint32_t CGPIO_EVENT_FALLING_EDGE = GPIO_V2_LINE_EVENT_FALLING_EDGE;
static const int CGPIO_NAME_SIZE = GPIO_MAX_NAME_SIZE;
static const int CGPIO_ATTRS_MAX = GPIO_V2_LINE_NUM_ATTRS_MAX;

/// Fills `request` for one line (pure: no system call): `flags` as the line's flags; an output
/// value attribute when `has_output` (value 0 or 1, logical: active_low applies); a debounce
/// attribute when `debounce_us` > 0; `consumer` truncated to the kernel's 31 characters.
void cgpio_fill_request(struct gpio_v2_line_request *request, uint32_t offset, const char *consumer,
                        uint64_t flags, uint32_t debounce_us, int has_output, int output_value,
                        uint32_t event_buffer_size);

/// GPIO_GET_CHIPINFO_IOCTL: the chip's name (gpiochipN), label and number of lines.
int cgpio_chip_info(int chip_fd, struct gpiochip_info *info);

/// GPIO_V2_GET_LINEINFO_IOCTL for one offset.
int cgpio_line_info(int chip_fd, uint32_t offset, struct gpio_v2_line_info *info);

/// GPIO_V2_GET_LINE_IOCTL: on success the line's fd is in `request->fd` (close-on-exec).
int cgpio_request_line(int chip_fd, struct gpio_v2_line_request *request);

/// GPIO_V2_LINE_SET_VALUES_IOCTL for the first (only) line of a request: value 0 or 1, logical.
int cgpio_set_value(int line_fd, int value);

/// GPIO_V2_LINE_GET_VALUES_IOCTL for the first (only) line of a request: logical value in `value`.
int cgpio_get_value(int line_fd, int *value);

/// GPIO_V2_LINE_SET_CONFIG_IOCTL: new flags (and a debounce when > 0) for a requested line.
int cgpio_set_config(int line_fd, uint64_t flags, uint32_t debounce_us, int has_output, int output_value);

/// Reads up to `capacity` edge events from a line fd (the fd's blocking mode applies): the
/// number of bytes read, or -1.
long cgpio_read_events(int line_fd, struct gpio_v2_line_event *events, int capacity);

#endif
