"""cutproxy.py - a TCP proxy on 127.0.0.1 that "kills the server" at a
deterministic point: it relays both ways until LIMIT bytes have gone from
the server to the client in total, then drops every connection and stops
listening (later connects are refused), as if the server had died in the
middle of a download.

  /usr/bin/python3 cutproxy.py TARGET_HOST:PORT LIMIT_BYTES
prints "listening PORT" when ready, "cut" when it cut; runs until killed.
"""
import socket
import sys
import threading

host, port = sys.argv[1].rsplit(":", 1)
limit = int(sys.argv[2])
lock = threading.Lock()
relayed = 0
socks = []
dead = threading.Event()

ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", 0))
ls.listen(64)
print("listening %d" % ls.getsockname()[1], flush=True)


def cut():
    if dead.is_set():
        return
    dead.set()
    print("cut", flush=True)
    try:
        ls.close()
    except OSError:
        pass
    with lock:
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


def pipe(src, dst, downstream):
    global relayed
    try:
        while not dead.is_set():
            data = src.recv(65536)
            if not data:
                break
            if downstream:
                with lock:
                    relayed += len(data)
                    over = relayed > limit
                if over:
                    cut()
                    return
            dst.sendall(data)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


while not dead.is_set():
    try:
        c, _ = ls.accept()
    except OSError:
        break
    try:
        s = socket.create_connection((host, int(port)))
    except OSError:
        c.close()
        continue
    with lock:
        socks.extend([c, s])
    threading.Thread(target=pipe, args=(c, s, False), daemon=True).start()
    threading.Thread(target=pipe, args=(s, c, True), daemon=True).start()
dead.wait()
threading.Event().wait()  # stay up (refusing) until killed
