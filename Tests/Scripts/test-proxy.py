# A forward proxy on 127.0.0.1 for the tests: prints its port, then one line per connection
# ("accepted") and per request head ("request <first line>"), flushed at once. CONNECT is
# tunnelled to its target; anything else (a plain-http request through a proxy) gets 502.
import select, socket, sys, threading

listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(('127.0.0.1', 0))
listener.listen(64)
print(listener.getsockname()[1], flush=True)
lock = threading.Lock()

def say(line):
    with lock:
        print(line, flush=True)

def pump(a, b):
    try:
        while True:
            ready, _, _ = select.select([a, b], [], [], 30)
            if not ready:
                return
            for s in ready:
                data = s.recv(65536)
                if not data:
                    return
                (b if s is a else a).sendall(data)
    except OSError:
        pass
    finally:
        a.close(); b.close()

def handle(c):
    say('accepted')
    data = b''
    while b'\r\n\r\n' not in data and len(data) < 65536:
        chunk = c.recv(4096)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b'\r\n\r\n')
    line = head.split(b'\r\n', 1)[0].decode('latin-1')
    say('request ' + line)
    parts = line.split()
    if len(parts) >= 2 and parts[0] == 'CONNECT':
        host, _, port = parts[1].rpartition(':')
        try:
            upstream = socket.create_connection((host.strip('[]'), int(port)), timeout=5)
        except OSError:
            c.sendall(b'HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n'); c.close(); return
        c.sendall(b'HTTP/1.1 200 Connection established\r\n\r\n')
        if rest:
            upstream.sendall(rest)
        pump(c, upstream)
    else:
        c.sendall(b'HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n')
        c.close()

while True:
    conn, _ = listener.accept()
    threading.Thread(target=handle, args=(conn,), daemon=True).start()
