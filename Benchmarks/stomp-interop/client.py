#!/usr/bin/env python3
"""Independent STOMP 1.2 client for LoadKit's interop test (pip install stomp.py).

Connects to a LoadKit STOMP server (the server-role codec) over TCP or WebSocket, subscribes
with a receipt under an id that needs escaping (":" and "\\"), sends a message whose body has a
newline and a second one, checks both come back unchanged (the id too, in `subscription`), then
disconnects with a receipt.
Prints OK and exits 0 on success.
Usage: client.py tcp HOST PORT
       client.py ws HOST PORT PATH
"""
import sys
import threading

import stomp


class Listener(stomp.ConnectionListener):
    def __init__(self):
        self.messages = []
        self.receipts = set()
        self.errors = []
        self.cv = threading.Condition()

    def on_message(self, frame):
        with self.cv:
            self.messages.append(frame)
            self.cv.notify_all()

    def on_receipt(self, frame):
        with self.cv:
            self.receipts.add(frame.headers.get("receipt-id"))
            self.cv.notify_all()

    def on_error(self, frame):
        with self.cv:
            self.errors.append(frame.body)
            self.cv.notify_all()

    def wait(self, predicate, what):
        with self.cv:
            if not self.cv.wait_for(lambda: predicate() or self.errors, timeout=5):
                raise SystemExit(f"timed out waiting for {what}")
            if self.errors:
                raise SystemExit(f"ERROR frame: {self.errors}")


def main(argv):
    mode, host, port = argv[1], argv[2], int(argv[3])
    if mode == "ws":
        conn = stomp.WSStompConnection([(host, port)], ws_path=argv[4], heartbeats=(0, 0), vhost="test-vhost")
    else:
        conn = stomp.Connection12([(host, port)], heartbeats=(0, 0), vhost="test-vhost")
    listener = Listener()
    conn.set_listener("interop", listener)
    conn.connect("user", "pw", wait=True)
    topic = "/topic/stomp-py-interop"
    sub_id = "s:1\\x"
    conn.subscribe(topic, id=sub_id, ack="auto", headers={"receipt": "sub-1"})
    listener.wait(lambda: "sub-1" in listener.receipts, "the SUBSCRIBE receipt")
    conn.send(topic, "hello: interop\nline", content_type="text/plain", headers={"receipt": "send-1"})
    conn.send(topic, "second")
    listener.wait(lambda: len(listener.messages) >= 2, "two messages")
    first, second = listener.messages[0], listener.messages[1]
    assert first.body == "hello: interop\nline", first.body
    assert first.headers.get("subscription") == sub_id, first.headers
    assert second.body == "second", second.body
    conn.disconnect(receipt="bye")
    print("OK")


main(sys.argv)
