import Platform
import Testing
import Timebase
import USBDevices

/// libusb on the daemon's loop in this process, with whatever devices the machine has.
@Suite struct EventDriverTests {
    @Test func libusbDescriptorsAreWatchedAndAnIdleLoopSleeps() throws {
        let context: USBContext
        do { context = try USBContext() } catch {
            print("EventDriverTests skipped: libusb_init failed here (\(error))")
            return
        }
        let loop = try EventLoop()
        let driver = USBEventDriver(context: context, loop: loop)
        #expect(!driver.watchedDescriptors.isEmpty, "libusb's event descriptor (and timerfd) are on the loop")
        let before = loop.wakeUps
        _ = try loop.run(until: { false }, deadline: MonotonicClock.now() + .milliseconds(1500))
        // The deadline itself ends one wait; beyond that, libusb may wake the loop once (hotplug start-up).
        #expect(loop.wakeUps - before <= 3, "an idle libusb context must not spin the loop")
        withExtendedLifetime(driver) {}
    }

    @Test func droppingTheDriverUnwatchesItsDescriptors() throws {
        guard let context = try? USBContext() else { return }
        let loop = try EventLoop()
        var driver: USBEventDriver? = USBEventDriver(context: context, loop: loop)
        let watched = driver!.watchedDescriptors
        driver = nil
        // Nothing of libusb's is polled any more: a short run wakes only for its own deadline.
        let before = loop.wakeUps
        _ = try loop.run(until: { false }, deadline: MonotonicClock.now() + .milliseconds(50))
        #expect(loop.wakeUps - before == 1)
        #expect(!watched.isEmpty)
    }
}
