import CGPIO
import GPIOLines
import Testing

/// The Swift side of the uAPI v2 structures: what `GPIOLineSettings` puts into the kernel's
/// request, checked without a chip. The sizes and bit positions are the kernel's stable ABI
/// (include/uapi/linux/gpio.h); a header that disagreed would mean a different ABI.
@Suite struct GPIOLayoutTests {
    @Test func theStructuresHaveTheKernelsSizes() {
        #expect(MemoryLayout<gpio_v2_line_attribute>.size == 16)
        #expect(MemoryLayout<gpio_v2_line_config_attribute>.size == 24)
        #expect(MemoryLayout<gpio_v2_line_config>.size == 272)
        #expect(MemoryLayout<gpio_v2_line_request>.size == 592)
        #expect(MemoryLayout<gpio_v2_line_info>.size == 256)
        #expect(MemoryLayout<gpio_v2_line_event>.size == 48)
        #expect(MemoryLayout<gpiochip_info>.size == 68)
    }

    @Test func theFlagsAreTheKernelsBits() {
        #expect(GPIOLineFlags.used.rawValue == 1 << 0)
        #expect(GPIOLineFlags.activeLow.rawValue == 1 << 1)
        #expect(GPIOLineFlags.input.rawValue == 1 << 2)
        #expect(GPIOLineFlags.output.rawValue == 1 << 3)
        #expect(GPIOLineFlags.edgeRising.rawValue == 1 << 4)
        #expect(GPIOLineFlags.edgeFalling.rawValue == 1 << 5)
        #expect(GPIOLineFlags.biasPullUp.rawValue == 1 << 8)
        #expect(GPIOLineFlags.biasPullDown.rawValue == 1 << 9)
        #expect(GPIOLineFlags.biasDisabled.rawValue == 1 << 10)
        #expect(CGPIO_ATTR_ID_OUTPUT_VALUES == 2 && CGPIO_ATTR_ID_DEBOUNCE == 3)
    }

    /// A relay output: output, active low as configured, no bias, the inactive level set by the
    /// request itself (the output-values attribute, line 0 of the request), no event buffer.
    @Test func aRelayOutputIsRequestedInactiveWithItsLevelInTheRequest() {
        let s = GPIOLineSettings(direction: .output(initiallyActive: false), activeLow: true, debounce: .milliseconds(20))
        #expect(s.flags == [.output, .activeLow])
        #expect(s.debounceMicroseconds == 0)
        let r = s.request(offset: 7, consumer: "paybridged")
        #expect(r.offsets.0 == 7 && r.offsets.1 == 0)
        #expect(r.num_lines == 1)
        #expect(r.config.flags == GPIOLineFlags([.output, .activeLow]).rawValue)
        #expect(r.config.num_attrs == 1)
        #expect(r.config.attrs.0.attr.id == 2)
        #expect(r.config.attrs.0.attr.values == 0)
        #expect(r.config.attrs.0.mask == 1)
        #expect(r.event_buffer_size == 0)
        #expect(r.fd == -1)
        #expect(withUnsafeBytes(of: r.consumer) { Array($0.prefix(11)) } == Array("paybridged".utf8) + [0])

        let on = GPIOLineSettings(direction: .output(initiallyActive: true)).request(offset: 0, consumer: "x")
        #expect(on.config.attrs.0.attr.values == 1)
        #expect(on.config.flags == GPIOLineFlags.output.rawValue)
    }

    /// A mirror or plug input: input with both edges, the debounce as an attribute in
    /// microseconds, an event buffer; bias only when asked (gpio-sim's pull must survive).
    @Test func anInputWithEdgesCarriesItsDebounceAttribute() {
        let s = GPIOLineSettings(direction: .input(edges: true), debounce: .milliseconds(20))
        #expect(s.flags == [.input, .edgeRising, .edgeFalling])
        let r = s.request(offset: 3, consumer: "paybridged")
        #expect(r.config.num_attrs == 1)
        #expect(r.config.attrs.0.attr.id == 3)
        #expect(r.config.attrs.0.attr.debounce_period_us == 20_000)
        #expect(r.config.attrs.0.mask == 1)
        #expect(r.event_buffer_size == GPIOLineSettings.eventBufferSize)

        let plain = GPIOLineSettings(direction: .input(edges: false), bias: .pullDown).request(offset: 3, consumer: "")
        #expect(plain.config.num_attrs == 0)
        #expect(plain.config.flags == GPIOLineFlags([.input, .biasPullDown]).rawValue)
        #expect(plain.event_buffer_size == 0)
    }

    @Test func theDebounceIsClampedAndALongConsumerIsCut() {
        #expect(GPIOLineSettings(direction: .input(edges: true), debounce: .seconds(5)).debounceMicroseconds == 1_000_000)
        #expect(GPIOLineSettings(direction: .input(edges: true), debounce: .milliseconds(-5)).debounceMicroseconds == 0)
        #expect(GPIOLineSettings(direction: .input(edges: true), debounce: .microseconds(1500)).debounceMicroseconds == 1_500)
        let long = String(repeating: "c", count: 80)
        let r = GPIOLineSettings(direction: .input(edges: false)).request(offset: 0, consumer: long)
        let bytes = withUnsafeBytes(of: r.consumer) { Array($0) }
        #expect(bytes.count == 32)
        #expect(bytes.prefix(31).allSatisfy { $0 == UInt8(ascii: "c") } && bytes[31] == 0)
    }
}
