# A plain-http server on 127.0.0.1 for the tests: prints its port; a POST to a path starting
# /status/N/ is answered with status N (a JSON error body, or for 2xx a body that is not an
# AuthorizeResponse); /accept/... with an Accepted AuthorizeResponse.
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    def log_message(self, *a): pass
    def do_POST(self):
        self.rfile.read(int(self.headers.get('Content-Length', 0)))
        parts = self.path.split('/')
        if len(parts) > 2 and parts[1] == 'status':
            status = int(parts[2])
            body = b'<html>not json</html>' if 200 <= status < 300 else b'{"error":"scripted"}'
        else:
            status, body = 200, b'{"idTokenInfo":{"status":"Accepted"}}'
        self.send_response(status)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

class Server(ThreadingHTTPServer):
    daemon_threads = True

server = Server(('127.0.0.1', 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
