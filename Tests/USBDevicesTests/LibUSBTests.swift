import Glibc
import Platform
import Testing
import Timebase
import USBDevices

/// libusb loaded at run time (LibUSB.swift): every function resolved from the library itself,
/// a missing or wrong library a `libraryUnavailable` error, and nothing mapped before a context.
@Suite struct LibUSBTests {
    /// The names USBDevices calls through its loader (`lib.libusb_xxx(`), read from its sources.
    static func namesCalledInSources() throws -> Set<String> {
        let directory = fixturesDirectory + "/../../Sources/USBDevices"
        guard let dir = opendir(directory) else { throw SystemError(call: "opendir", errno: errno) }
        defer { closedir(dir) }
        var names: Set<String> = []
        while let entry = readdir(dir) {
            let file = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard file.hasSuffix(".swift") else { continue }
            let text = Array(try readWholeFile(directory + "/" + file).utf8)
            let marker = Array("lib.libusb_".utf8)
            var i = 0
            while i + marker.count <= text.count {
                guard text[i..<(i + marker.count)].elementsEqual(marker), i == 0 || !isIdentifier(text[i - 1]) else { i += 1; continue }
                var end = i + 4
                while end < text.count, isIdentifier(text[end]) { end += 1 }
                if end < text.count, text[end] == UInt8(ascii: "(") { names.insert(String(decoding: text[(i + 4)..<end], as: UTF8.self)) }
                i = end
            }
        }
        return names
    }

    static func isIdentifier(_ byte: UInt8) -> Bool {
        (byte >= 0x61 && byte <= 0x7a) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x30 && byte <= 0x39) || byte == 0x5f
    }

    static func readWholeFile(_ path: String) throws -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError(call: "open", errno: errno) }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count <= 0 { break }
            bytes += chunk.prefix(count)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    @Test func everyFunctionUSBDevicesCallsIsResolvedFromLibusbItself() throws {
        let lib = try LibUSB(libraryName: String(describing: LibUSB.defaultLibraryName))
        let resolved = lib.symbols.map(\.name)
        #expect(Set(resolved).count == resolved.count, "each function resolved once")
        let called = try Self.namesCalledInSources()
        #expect(called.count >= 30, "the source scan found the calls (\(called.count))")
        // The variadic libusb_set_option is called from C (pb_usb_set_log_level), not as lib.libusb_set_option(.
        #expect(called.subtracting(resolved).isEmpty, "called but not resolved: \(called.subtracting(resolved).sorted())")
        #expect(Set(resolved).subtracting(called) == ["libusb_set_option"], "resolved but never called: \(Set(resolved).subtracting(called).sorted())")
        let same = dlopen(lib.libraryName, RTLD_NOW | RTLD_NOLOAD)
        #expect(same != nil, "the library is loaded")
        defer { if let same { dlclose(same) } }
        let maps = try Self.readWholeFile("/proc/self/maps").split(separator: "\n")
        for symbol in lib.symbols {
            #expect(dlsym(same, symbol.name).map(UnsafeRawPointer.init) == symbol.address, "\(symbol.name) is libusb's \(symbol.name)")
            let address = UInt(bitPattern: symbol.address)
            let file = maps.first { line in
                let range = line.prefix { $0 != " " }.split(separator: "-").compactMap { UInt($0, radix: 16) }
                return range.count == 2 && range[0] <= address && address < range[1]
            }.flatMap { $0.split(separator: " ", omittingEmptySubsequences: true).last.map(String.init) } ?? "?"
            #expect(file.includes("/libusb-1.0.so"), "\(symbol.name) lies in \(file)")
        }
    }

    @Test func aMissingLibraryIsLibraryUnavailableWithDlerrorsText() {
        let name = "libusb-absent-\(getpid()).so.0"
        do {
            _ = try LibUSB(libraryName: name)
            Issue.record("loading \(name) succeeded")
        } catch {
            #expect(error.code == .libraryUnavailable)
            #expect(error.call == "dlopen")
            #expect(error.detail?.includes(name) == true && error.detail?.includes("cannot open shared object file") == true, "\(error.detail ?? "nil")")
            #expect(error.description == "dlopen: libusb not loaded: " + (error.detail ?? ""))
        }
    }

    @Test func aLibraryWithoutLibusbsFunctionsIsLibraryUnavailableNamingTheFirstMissing() {
        do {
            _ = try LibUSB(libraryName: "libc.so.6")
            Issue.record("libc resolved as libusb")
        } catch {
            #expect(error.code == .libraryUnavailable)
            #expect(error.call == "dlsym")
            #expect(error.detail?.includes("libusb_init") == true, "\(error.detail ?? "nil")")
        }
    }

    @Test func sharedLoadsOnceForEveryThread() async throws {
        let first = try LibUSB.shared()
        let others = try await withThrowingTaskGroup(of: ObjectIdentifier.self) { group in
            for _ in 0..<8 { group.addTask { ObjectIdentifier(try LibUSB.shared()) } }
            return try await group.reduce(into: Set<ObjectIdentifier>()) { $0.insert($1) }
        }
        #expect(others == [ObjectIdentifier(first)])
    }

    /// The names USBError spells out are libusb's own (USBError reads without libusb loaded).
    @Test func errorNamesAreLibusbErrorName() throws {
        guard let library = dlopen(String(describing: LibUSB.defaultLibraryName), RTLD_NOW | RTLD_LOCAL),
              let address = dlsym(library, "libusb_error_name") else {
            Issue.record("libusb-1.0.so.0 not loadable here")
            return
        }
        defer { dlclose(library) }
        let errorName = unsafeBitCast(address, to: (@convention(c) (Int32) -> UnsafePointer<CChar>?).self)
        let codes: [USBError.Code] = [.io, .invalidParameter, .access, .noDevice, .notFound, .busy, .timeout, .overflow, .pipe,
                                      .interrupted, .noMemory, .notSupported, .other]
        for code in codes {
            #expect(code.name == errorName(code.rawValue).map { String(cString: $0) }, "\(code)")
        }
        #expect(USBError(call: "x", returned: USBError.Code.libraryUnavailable.rawValue).code == .other, "no libusb return value means the library is missing")
    }

    /// Nothing links libusb: usb-probe maps neither libusb nor libudev until it makes a context.
    @Test func libusbAndLibudevAreMappedOnlyOnceAContextIsMade() throws {
        let child = try ChildProcess.spawn(ChildProcess.executableDirectory() + "/usb-probe", ["library"], pipeStdin: false)
        defer { child.terminate() }
        var lines: [String] = []
        let deadline = MonotonicClock.now() + .seconds(20)
        while MonotonicClock.now() < deadline, let line = try child.readLine(timeout: deadline - MonotonicClock.now()) { lines.append(line) }
        #expect(child.wait(timeout: .seconds(5)) == 0)
        #expect(lines.first?.hasPrefix("before libusb=no libudev=no rss=") == true, "\(lines)")
        #expect(lines.last?.hasPrefix("after libusb=yes libudev=yes rss=") == true, "\(lines)")
    }
}
