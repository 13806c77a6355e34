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
    return m.includes("alert") && (m.includes("ssl") || m.includes("tls"))
}
