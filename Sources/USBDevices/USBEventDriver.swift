import CLibUSB
import Glibc
import Platform
import Timebase

/// Runs a libusb context on the daemon's `EventLoop`, the way CloudHTTP runs libcurl's multi
/// handle: libusb's descriptors (`libusb_get_pollfds`, then its added/removed notifiers) are
/// watched by the loop, and when one is ready `libusb_handle_events_timeout_completed` runs with
/// a zero timeout, so it never blocks. Timeouts that libusb cannot put on a timerfd come from
/// `libusb_get_next_timeout` as one loop timer. No thread of ours, no polling.
///
/// libusb's Linux backend keeps one thread of its own for udev's hotplug monitor; it only
/// queues events, which reach callbacks here, on the loop thread.
public final class USBEventDriver {
    /// The context driven.
    public let context: USBContext
    private let loop: EventLoop
    private var watches: [Int32: WatchToken] = [:]
    private var timer: TimerToken?
    private var timerDeadline: Instant?
    /// Times libusb's events were handled (for the wake-up budget).
    public private(set) var passes = 0
    private var handling = false
    private var afterEventsWork: [() -> Void] = []

    /// The least delay of the timeout timer, so a timeout libusb fails to consume cannot spin the loop.
    static let minimumTimerDelay = Duration.milliseconds(1)

    /// Starts watching `context`'s descriptors on `loop`. Keep the driver while the context is in use.
    public init(context: USBContext, loop: EventLoop) {
        self.context = context
        self.loop = loop
        let me = Unmanaged.passUnretained(self).toOpaque()
        context.lib.libusb_set_pollfd_notifiers(context.raw, { fd, events, user in
            Unmanaged<USBEventDriver>.fromOpaque(user!).takeUnretainedValue().added(fd: fd, events: events)
        }, { fd, user in
            Unmanaged<USBEventDriver>.fromOpaque(user!).takeUnretainedValue().removed(fd: fd)
        }, me)
        if let list = context.lib.libusb_get_pollfds(context.raw) {
            var index = 0
            while let entry = list[index] {
                added(fd: entry.pointee.fd, events: entry.pointee.events)
                index += 1
            }
            context.lib.libusb_free_pollfds(list)
        }
        rearmTimer()
    }

    deinit {
        context.lib.libusb_set_pollfd_notifiers(context.raw, nil, nil, nil)
        for token in watches.values { loop.unwatch(token) }
        if let timer { loop.cancel(timer) }
    }

    /// The descriptors watched now (for tests and the diagnostic view).
    public var watchedDescriptors: [Int32] { watches.keys.sorted() }

    /// Handles whatever libusb has ready, without waiting; call after submitting a transfer
    /// from outside a loop handler only if the timer must move (the loop does the rest).
    public func handleEvents() {
        var zero = timeval(tv_sec: 0, tv_usec: 0)
        handling = true
        _ = context.lib.libusb_handle_events_timeout_completed(context.raw, &zero, nil)
        handling = false
        passes += 1
        while !afterEventsWork.isEmpty {
            let work = afterEventsWork
            afterEventsWork.removeAll()
            for item in work { item() }
        }
        rearmTimer()
    }

    /// Runs `work` once libusb's event handling has returned, or now when it is not running.
    /// For what libusb forbids inside its callbacks: `libusb_close` from a transfer callback
    /// waits for a lock the event handler holds, for ever.
    public func afterEvents(_ work: @escaping () -> Void) {
        if handling { afterEventsWork.append(work) } else { work() }
    }

    /// The earliest libusb timeout as one loop timer (none when libusb has none, as on Linux,
    /// where its timeouts live on a watched timerfd).
    public func rearmTimer() {
        var tv = timeval()
        let rc = context.lib.libusb_get_next_timeout(context.raw, &tv)
        let deadline: Instant?
        if rc == 1 {
            let wait = max(Duration.seconds(Int64(tv.tv_sec)) + .microseconds(Int64(tv.tv_usec)), Self.minimumTimerDelay)
            deadline = MonotonicClock.now() + wait
        } else {
            deadline = nil
        }
        guard deadline != timerDeadline || (deadline != nil && timer == nil) else { return }
        if let timer { loop.cancel(timer) }
        timer = nil
        timerDeadline = deadline
        if let deadline {
            timer = loop.schedule(at: deadline) { [weak self] in
                self?.timer = nil
                self?.timerDeadline = nil
                self?.handleEvents()
            }
        }
    }

    private func added(fd: Int32, events: Int16) {
        if let old = watches.removeValue(forKey: fd) { loop.unwatch(old) }
        let read = Int32(events) & (POLLIN | POLLPRI) != 0
        let write = Int32(events) & POLLOUT != 0
        watches[fd] = loop.watch(FileDescriptor(rawValue: fd), read: read, write: write) { [weak self] _ in
            self?.handleEvents()
        }
    }

    private func removed(fd: Int32) {
        if let token = watches.removeValue(forKey: fd) { loop.unwatch(token) }
    }
}
