import Platform

/// Maps a failed transfer's `CURLcode` to an `HTTPError`.
///
/// `requestStarted`: libcurl got past connection setup (its pre-transfer time
/// is set, or request bytes were sent); before that nothing was sent, so a
/// timeout is a connect failure. `exceeded`: the write callback refused the body.
/// `responseStarted`: a status line arrived; without one, a broken connection means nothing
/// behind the address answered (`noResponse`).
func httpError(curlCode code: Int, message: String, requestStarted: Bool, exceeded: Bool, responseStarted: Bool = true) -> HTTPError {
    if exceeded { return .tooLarge }
    switch code {
    case 5, 6, 7, 45:
        // COULDNT_RESOLVE_PROXY, COULDNT_RESOLVE_HOST, COULDNT_CONNECT, INTERFACE_FAILED
        return .couldNotConnect(message)
    case 28: // OPERATION_TIMEDOUT
        return requestStarted ? .timedOut : .couldNotConnect(message)
    case 35, 53, 54, 58, 59, 60, 64, 66, 77, 80, 82, 83, 90, 91, 98:
        // SSL_CONNECT_ERROR, SSL_ENGINE_NOTFOUND, SSL_ENGINE_SETFAILED, SSL_CERTPROBLEM,
        // SSL_CIPHER, PEER_FAILED_VERIFICATION, USE_SSL_FAILED, SSL_ENGINE_INITFAILED,
        // SSL_CACERT_BADFILE, SSL_SHUTDOWN_FAILED, SSL_CRL_BADFILE, SSL_ISSUER_ERROR,
        // SSL_PINNEDPUBKEYNOTMATCH, SSL_INVALIDCERTSTATUS, SSL_CLIENTCERT
        return .tls(message)
    case 55, 56:
        // SEND_ERROR, RECV_ERROR. A TLS alert read after a TLS 1.3 handshake is the
        // server refusing our client certificate: a TLS failure, not a broken line.
        if isTLSAlert(message) { return .tls(message) }
        return responseStarted ? .sendOrReceive(message) : .noResponse(message)
    case 52: // GOT_NOTHING: accepted and closed without a response byte
        return .noResponse(message)
    case 8, 16, 18, 92:
        // WEIRD_SERVER_REPLY, HTTP2, PARTIAL_FILE, HTTP2_STREAM
        return .sendOrReceive(message)
    case 63: // FILESIZE_EXCEEDED (Content-Length above CURLOPT_MAXFILESIZE_LARGE)
        return .tooLarge
    default:
        return .other(code: code, message)
    }
}

private func isTLSAlert(_ message: String) -> Bool {
    let m = message.lowercased()
    return tlsAlertNumber(in: message) != nil || (m.includes("alert") && (m.includes("ssl") || m.includes("tls")))
}

/// The TLS alert a peer sent, from OpenSSL's packed error code in libcurl's message
/// ("error:0A00045C:…"). An OpenSSL built without its error strings (`no-err`, common in
/// firmware images to save flash) prints only the code, and a refused client certificate
/// must still read as a TLS failure, not as an unreachable cloud.
/// OpenSSL files an alert under the SSL library (20) as reason 1000 + the alert number;
/// OpenSSL 3 packs the library above bit 23, 1.1 above bit 24.
func tlsAlertNumber(in message: String) -> Int? {
    let parts = message.split(separator: ":", omittingEmptySubsequences: false)
    for (word, hex) in zip(parts, parts.dropFirst()) where word.hasSuffix("error") && hex.count == 8 {
        guard let code = UInt32(hex, radix: 16) else { continue }
        let reason: UInt32
        if code >> 23 == 20 { reason = code & 0x7F_FFFF }
        else if code >> 24 == 20 { reason = code & 0xFFF }
        else { continue }
        if (1000...1255).contains(reason) { return Int(reason) - 1000 }
    }
    return nil
}

/// Names of the TLS alerts (RFC 8446 §6) a misconfigured station or platform meets.
let tlsAlertNames: [Int: String] = [
    10: "unexpected message", 20: "bad record MAC", 40: "handshake failure", 42: "bad certificate",
    43: "unsupported certificate", 44: "certificate revoked", 45: "certificate expired",
    46: "certificate unknown", 47: "illegal parameter", 48: "unknown CA", 49: "access denied",
    50: "decode error", 51: "decrypt error", 70: "protocol version", 71: "insufficient security",
    80: "internal error", 112: "unrecognized name", 116: "certificate required",
]

/// `message` with the alert it carries spelled out, when OpenSSL gave only its code.
func explainingTLSAlert(_ message: String) -> String {
    guard let alert = tlsAlertNumber(in: message), !message.lowercased().includes("alert") else { return message }
    return message + " (the peer sent TLS alert \(alert)" + (tlsAlertNames[alert].map { ": \($0)" } ?? "") + ")"
}
