import Testing
import WebSocket
import WireFormat

@Suite struct HandshakeTests {
    /// RFC 6455 section 1.3's nonce: "the sample nonce", 16 bytes.
    let rfcNonce = Array("the sample nonce".utf8)

    func ok(accept: String = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", protocolLine: String? = "Sec-WebSocket-Protocol: ocpp2.1", extra: String = "") -> String {
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: \(accept)\r\n"
            + (protocolLine.map { $0 + "\r\n" } ?? "") + extra + "\r\n"
    }

    func handshake(offer201: Bool = false) throws -> WebSocketHandshake {
        try WebSocketHandshake(request: .ocpp(host: "csms.example", port: 443, secure: true, pathPrefix: "/ocpp", stationId: "CP-1",
                                              offerOCPP201: offer201), nonce: rfcNonce)
    }

    func parse(_ text: String, offer201: Bool = false) throws -> WebSocketHandshakeResult? {
        var p = WebSocketResponseParser(handshake: try handshake(offer201: offer201))
        return try p.append(Array(text.utf8))
    }

    @Test func rfcKeyAndAccept() throws {
        let h = try handshake()
        #expect(h.key == "dGhlIHNhbXBsZSBub25jZQ==")
        #expect(h.expectedAccept == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        #expect(WebSocketHandshake.accept(forKey: "dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    }

    @Test func requestBytes() throws {
        let h = try handshake()
        #expect(String(decoding: h.requestBytes, as: UTF8.self) ==
            "GET /ocpp/CP-1 HTTP/1.1\r\nHost: csms.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ocpp2.1\r\n\r\n")
        // Non-default port, 2.0.1 after 2.1, Basic credentials (station id : password bytes), an extra header,
        // and a station id that needs percent-encoding in the path.
        let r = WebSocketRequest.ocpp(host: "10.0.0.2", port: 8443, secure: true, pathPrefix: "ocpp/", stationId: "CP 1/ä",
                                      offerOCPP201: true, password: Array("pass:wörd".utf8), extraHeaders: [("User-Agent", "paybridge/1")])
        let text = String(decoding: try WebSocketHandshake(request: r, nonce: rfcNonce).requestBytes, as: UTF8.self)
        let lines = text.split(separator: "\r\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines[0] == "GET /ocpp/CP%201%2F%C3%A4 HTTP/1.1")
        #expect(lines[1] == "Host: 10.0.0.2:8443")
        #expect(lines[6] == "Sec-WebSocket-Protocol: ocpp2.1, ocpp2.0.1")
        #expect(lines[7] == "Authorization: Basic " + Base64.encode(Array("CP 1/ä:pass:wörd".utf8)))
        #expect(lines[8] == "User-Agent: paybridge/1")
        #expect(lines[9] == "" && lines[10] == "" && lines.count == 11)
        // ws:// on port 80 needs no port in Host; ws:// on 443 does.
        let plain = WebSocketRequest(host: "h", port: 80, secure: false, path: "/", subprotocols: ["ocpp2.1"])
        #expect(String(decoding: try WebSocketHandshake(request: plain, nonce: rfcNonce).requestBytes, as: UTF8.self).hasPrefix("GET / HTTP/1.1\r\nHost: h\r\n"))
        let odd = WebSocketRequest(host: "h", port: 443, secure: false, path: "/", subprotocols: ["ocpp2.1"])
        #expect(String(decoding: try WebSocketHandshake(request: odd, nonce: rfcNonce).requestBytes, as: UTF8.self).hasPrefix("GET / HTTP/1.1\r\nHost: h:443\r\n"))
        // The password never shows in a description.
        #expect(!"\(r.credentials!)".contains("w\u{F6}rd"))
        #expect(String(reflecting: r).contains("password: <10 bytes>"))
        #expect(!String(reflecting: r).contains("112, 97, 115, 115"))
        #expect("\(r.credentials!)" == "BasicCredentials(user: CP 1/ä, password: <10 bytes>)")
    }

    @Test func requestRefusals() {
        func request(_ mutate: (inout WebSocketRequest) -> Void) -> WebSocketRequest {
            var r = WebSocketRequest(host: "h", port: 443, secure: true, path: "/ocpp/x", subprotocols: ["ocpp2.1"])
            mutate(&r)
            return r
        }
        #expect(throws: WebSocketRequestError.nonceLength(15)) { try WebSocketHandshake(request: request { _ in }, nonce: [UInt8](repeating: 0, count: 15)) }
        #expect(throws: WebSocketRequestError.noSubprotocol) { try WebSocketHandshake(request: request { $0.subprotocols = [] }, nonce: rfcNonce) }
        #expect(throws: WebSocketRequestError.invalidToken("ocpp 2.1")) { try WebSocketHandshake(request: request { $0.subprotocols = ["ocpp 2.1"] }, nonce: rfcNonce) }
        #expect(throws: WebSocketRequestError.invalidValue(field: "host")) { try WebSocketHandshake(request: request { $0.host = "h\r\nX: y" }, nonce: rfcNonce) }
        #expect(throws: WebSocketRequestError.invalidValue(field: "path")) { try WebSocketHandshake(request: request { $0.path = "/a b" }, nonce: rfcNonce) }
        #expect(throws: WebSocketRequestError.invalidValue(field: "X-A")) { try WebSocketHandshake(request: request { $0.extraHeaders = [("X-A", "1\n2")] }, nonce: rfcNonce) }
        #expect(throws: WebSocketRequestError.invalidToken("X A")) { try WebSocketHandshake(request: request { $0.extraHeaders = [("X A", "1")] }, nonce: rfcNonce) }
        #expect(throws: WebSocketRequestError.reservedHeader("Sec-WebSocket-Extensions")) {
            try WebSocketHandshake(request: request { $0.extraHeaders = [("Sec-WebSocket-Extensions", "permessage-deflate")] }, nonce: rfcNonce)
        }
        #expect(throws: WebSocketRequestError.reservedHeader("authorization")) { try WebSocketHandshake(request: request { $0.extraHeaders = [("authorization", "x")] }, nonce: rfcNonce) }
        #expect(throws: WebSocketRequestError.colonInUser) {
            try WebSocketHandshake(request: request { $0.credentials = BasicCredentials(user: "a:b", password: []) }, nonce: rfcNonce)
        }
        #expect(throws: WebSocketRequestError.invalidPort(0)) { try WebSocketHandshake(request: request { $0.port = 0 }, nonce: rfcNonce) }
    }

    @Test func acceptsTheRFCAnswerInAnySplitAndReturnsWhatFollows() throws {
        let frame: [UInt8] = [0x81, 0x02, 0x5B, 0x5D]
        let bytes = Array(ok().utf8) + frame
        for split in 1..<bytes.count {
            var p = WebSocketResponseParser(handshake: try handshake())
            #expect(try p.append(bytes[..<split]) == nil || split >= bytes.count - frame.count, "split \(split)")
            var p2 = WebSocketResponseParser(handshake: try handshake())
            var result: WebSocketHandshakeResult?
            for b in bytes[..<split] { if let r = try p2.append([b]) { result = r } }
            if let r = try p2.append(bytes[split...]) { result = r }
            let expectedLeft = split > bytes.count - frame.count ? Array(bytes[split...]) : frame
            if split <= bytes.count - frame.count {
                #expect(result == WebSocketHandshakeResult(subprotocol: "ocpp2.1", leftover: expectedLeft), "split \(split)")
            } else {
                #expect(result?.subprotocol == "ocpp2.1", "split \(split)")
            }
        }
        // Tokens are case-insensitive and may be lists; names too; bare LF line ends.
        let loose = "HTTP/1.1 101 \nupgrade: WebSocket\nCONNECTION: keep-alive, UPGRADE\nsec-websocket-accept:s3pPLMBiTxaQ9kYGzzhZRbK+xOo=  \nSec-WebSocket-Protocol: ocpp2.0.1\n\n"
        #expect(try parse(loose, offer201: true) == WebSocketHandshakeResult(subprotocol: "ocpp2.0.1", leftover: []))
        // An empty extensions header is no extension.
        #expect(try parse(ok(extra: "Sec-WebSocket-Extensions: \r\n"))?.subprotocol == "ocpp2.1")
    }

    @Test func refusalsOfA101() {
        func fails(_ text: String, offer201: Bool = false) -> WebSocketHandshakeError? {
            do { _ = try parse(text, offer201: offer201); return nil } catch { return error as? WebSocketHandshakeError }
        }
        #expect(fails(ok().replacingFirst("Upgrade: websocket", "Upgrade: h2c")) == .missingUpgrade)
        #expect(fails(ok().replacingFirst("Connection: Upgrade", "Connection: close")) == .missingConnectionUpgrade)
        #expect(fails(ok(accept: "dGhlIHNhbXBsZSBub25jZQ==")) == .acceptMismatch(received: "dGhlIHNhbXBsZSBub25jZQ=="))
        #expect(fails(ok(accept: "S3PPLMBITXAQ9KYGZZHZRBK+XOO=")) == .acceptMismatch(received: "S3PPLMBITXAQ9KYGZZHZRBK+XOO="))
        #expect(fails(ok(extra: "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n")) == .missingAccept)
        #expect(fails(ok().replacingFirst("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n", "")) == .missingAccept)
        #expect(fails(ok(protocolLine: nil)) == .missingSubprotocol)
        #expect(fails(ok(protocolLine: "Sec-WebSocket-Protocol: ocpp2.0.1")) == .unofferedSubprotocol("ocpp2.0.1"))
        #expect(fails(ok(protocolLine: "Sec-WebSocket-Protocol: ocpp1.6")) == .unofferedSubprotocol("ocpp1.6"))
        #expect(fails(ok(protocolLine: "Sec-WebSocket-Protocol: ocpp2.1, ocpp2.0.1"), offer201: true) == .unofferedSubprotocol("ocpp2.1, ocpp2.0.1"))
        #expect(fails(ok(extra: "Sec-WebSocket-Extensions: permessage-deflate\r\n")) == .unrequestedExtension("permessage-deflate"))
        #expect(fails("HTTP/1.0 101 Switching Protocols\r\n\r\n") == .malformedStatusLine)
        #expect(fails("HTTP/1.1 1x1 Nope\r\n\r\n") == .malformedStatusLine)
        #expect(fails("SSH-2.0-OpenSSH\r\n\r\n") == .malformedStatusLine)
        #expect(fails(ok(extra: "NoColonHere\r\n")) == .malformedHeaderLine(number: 6))
        #expect(fails(ok(extra: " folded: value\r\n")) == .malformedHeaderLine(number: 6))
        #expect(fails(ok(extra: "Bad Name: value\r\n")) == .malformedHeaderLine(number: 6))
    }

    @Test func nonUpgradeAnswersCarryTheStatus() {
        func refusal(_ text: String) -> WebSocketHandshakeError? {
            do { _ = try parse(text); return nil } catch { return error as? WebSocketHandshakeError }
        }
        #expect(refusal("HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"ocpp\"\r\nContent-Length: 0\r\n\r\n")
                == .refused(status: 401, reason: "Unauthorized", retryAfterSeconds: nil, retryAfter: nil))
        #expect(refusal("HTTP/1.1 403 Forbidden\r\n\r\n") == .refused(status: 403, reason: "Forbidden", retryAfterSeconds: nil, retryAfter: nil))
        #expect(refusal("HTTP/1.1 404 Not Found\r\n\r\nno such station") == .refused(status: 404, reason: "Not Found", retryAfterSeconds: nil, retryAfter: nil))
        #expect(refusal("HTTP/1.1 503 Service Unavailable\r\nRetry-After: 120\r\n\r\n")
                == .refused(status: 503, reason: "Service Unavailable", retryAfterSeconds: 120, retryAfter: "120"))
        #expect(refusal("HTTP/1.1 503 Busy\r\nRetry-After: Fri, 31 Dec 2027 23:59:59 GMT\r\n\r\n")
                == .refused(status: 503, reason: "Busy", retryAfterSeconds: nil, retryAfter: "Fri, 31 Dec 2027 23:59:59 GMT"))
        #expect(refusal("HTTP/1.1 200 OK\r\n\r\n") == .refused(status: 200, reason: "OK", retryAfterSeconds: nil, retryAfter: nil))
        #expect(refusal("HTTP/1.1 503\r\n\r\n") == .refused(status: 503, reason: "", retryAfterSeconds: nil, retryAfter: nil))
    }

    @Test func limits() throws {
        // A header block that never ends is refused once past 8 KiB, not buffered forever.
        var p = WebSocketResponseParser(handshake: try handshake())
        #expect(try p.append(Array("HTTP/1.1 101 Switching Protocols\r\n".utf8)) == nil)
        let filler = Array("X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n".utf8)
        var thrown: WebSocketHandshakeError?
        for _ in 0..<200 {
            do { _ = try p.append(filler) } catch { thrown = error; break }
        }
        #expect(thrown == .headerTooLarge(limit: WebSocketLimits.maxResponseHeaderBytes))
        // More than 64 fields, even short ones.
        let many = ok(extra: String(repeating: "A: b\r\n", count: 64))
        #expect(throws: WebSocketHandshakeError.tooManyHeaderFields(limit: 64)) { try parse(many) }
        #expect(try parse(ok(extra: String(repeating: "A: b\r\n", count: 59)))?.subprotocol == "ocpp2.1")
    }
}

extension String {
    func replacingFirst(_ target: String, _ replacement: String) -> String {
        let t = Array(target.utf8), s = Array(utf8)
        guard t.count <= s.count else { return self }
        for i in 0...(s.count - t.count) where Array(s[i..<(i + t.count)]) == t {
            return String(decoding: Array(s[..<i]) + Array(replacement.utf8) + Array(s[(i + t.count)...]), as: UTF8.self)
        }
        return self
    }
}
