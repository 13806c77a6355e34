#include "CGPIO.h"
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static void fill_config(struct gpio_v2_line_config *config, uint64_t flags, uint32_t debounce_us,
                        int has_output, int output_value) {
    memset(config, 0, sizeof *config);
    config->flags = flags;
    uint32_t n = 0;
    if (has_output) {
        config->attrs[n].attr.id = GPIO_V2_LINE_ATTR_ID_OUTPUT_VALUES;
        config->attrs[n].attr.values = output_value ? 1 : 0;
        config->attrs[n].mask = 1; // bit 0: the request's first line
        n++;
    }
    if (debounce_us > 0) {
        config->attrs[n].attr.id = GPIO_V2_LINE_ATTR_ID_DEBOUNCE;
        config->attrs[n].attr.debounce_period_us = debounce_us;
        config->attrs[n].mask = 1;
        n++;
    }
    config->num_attrs = n;
}

void cgpio_fill_request(struct gpio_v2_line_request *request, uint32_t offset, const char *consumer,
                        uint64_t flags, uint32_t debounce_us, int has_output, int output_value,
                        uint32_t event_buffer_size) {
    memset(request, 0, sizeof *request);
    request->offsets[0] = offset;
    request->num_lines = 1;
    if (consumer) strncpy(request->consumer, consumer, sizeof request->consumer - 1);
    fill_config(&request->config, flags, debounce_us, has_output, output_value);
    request->event_buffer_size = event_buffer_size;
    request->fd = -1;
}

int cgpio_chip_info(int chip_fd, struct gpiochip_info *info) {
    memset(info, 0, sizeof *info);
    return ioctl(chip_fd, GPIO_GET_CHIPINFO_IOCTL, info);
}

int cgpio_line_info(int chip_fd, uint32_t offset, struct gpio_v2_line_info *info) {
    memset(info, 0, sizeof *info);
    info->offset = offset;
    return ioctl(chip_fd, GPIO_V2_GET_LINEINFO_IOCTL, info);
}

int cgpio_request_line(int chip_fd, struct gpio_v2_line_request *request) {
    return ioctl(chip_fd, GPIO_V2_GET_LINE_IOCTL, request);
}

int cgpio_set_value(int line_fd, int value) {
    struct gpio_v2_line_values values = { .bits = value ? 1 : 0, .mask = 1 };
    return ioctl(line_fd, GPIO_V2_LINE_SET_VALUES_IOCTL, &values);
}

int cgpio_get_value(int line_fd, int *value) {
    struct gpio_v2_line_values values = { .bits = 0, .mask = 1 };
    int r = ioctl(line_fd, GPIO_V2_LINE_GET_VALUES_IOCTL, &values);
    if (r != -1) *value = (int)(values.bits & 1);
    return r;
}

int cgpio_set_config(int line_fd, uint64_t flags, uint32_t debounce_us, int has_output, int output_value) {
    struct gpio_v2_line_config config;
    fill_config(&config, flags, debounce_us, has_output, output_value);
    return ioctl(line_fd, GPIO_V2_LINE_SET_CONFIG_IOCTL, &config);
}

long cgpio_read_events(int line_fd, struct gpio_v2_line_event *events, int capacity) {
    if (capacity <= 0) return 0;
    return (long)read(line_fd, events, sizeof *events * (size_t)capacity);
}
