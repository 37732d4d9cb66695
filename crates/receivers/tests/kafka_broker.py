#!/usr/bin/env python3
"""A minimal Kafka broker for tests. NOT a real Kafka broker.

It speaks just enough of the Kafka wire protocol (https://kafka.apache.org/protocol, field
versions as in Kafka's message JSON specs) for a real client library's plain producer
(`send().get()`, idempotent by default) and a consumer using `assign()` without a group:

  ApiVersions v0-v4, Metadata, Produce, Fetch, ListOffsets, InitProducerId

with the highest versions set by `--profile` (see PROFILES), so the client negotiates
different Produce/Fetch/Metadata versions from run to run. It is the single broker, node 0,
advertised at 127.0.0.1:--advertise-port (a recording proxy in front of it), and every
partition 0 of any topic exists. Records are kept per topic as the client's record batches
(magic 2): the broker only rewrites each batch's base offset, which the batch CRC does not
cover, and returns the batches unchanged on Fetch.

Topics named in --deny answer Produce with TOPIC_AUTHORIZATION_FAILED (29), so the client
sees a real error reply.

Every request is appended to --log as one JSON line, written before the reply is sent:
  {"api": key, "version": v, "topic": first topic on the wire or null, "error": code}
where `topic` is the first topic of the request (of the response when the request names
none: Metadata for all topics, an incremental Fetch; for an incremental Fetch that names none
either, the first topic of the full fetch that opened its session) and `error` the error
code of the first topic/partition entry of the reply.
That is the independent count the test compares the parser's operations against.
"""

import argparse
import json
import socket
import struct
import threading
import time
import uuid

PRODUCE, FETCH, LIST_OFFSETS, METADATA, API_VERSIONS, INIT_PRODUCER_ID = 0, 1, 2, 3, 18, 22

# api key -> (min, max) advertised, and the version from which each API is flexible.
PROFILES = {
    # Kafka 2.4+ style: compact strings/arrays and tagged fields everywhere the client goes
    "flexible": {PRODUCE: (3, 9), FETCH: (4, 12), LIST_OFFSETS: (1, 6), METADATA: (0, 12),
                 API_VERSIONS: (0, 4), INIT_PRODUCER_ID: (0, 1)},
    # the last classic (non-flexible) versions
    "classic": {PRODUCE: (3, 8), FETCH: (4, 11), LIST_OFFSETS: (1, 5), METADATA: (0, 8),
                API_VERSIONS: (0, 4), INIT_PRODUCER_ID: (0, 1)},
    # Kafka 0.11's versions: the oldest with record batches (magic 2), which this broker keeps
    "oldest": {PRODUCE: (3, 3), FETCH: (4, 5), LIST_OFFSETS: (1, 2), METADATA: (0, 4),
               API_VERSIONS: (0, 4), INIT_PRODUCER_ID: (0, 0)},
}
FLEXIBLE_FROM = {PRODUCE: 9, FETCH: 12, LIST_OFFSETS: 6, METADATA: 9, API_VERSIONS: 3,
                 INIT_PRODUCER_ID: 2}

TOPIC_AUTHORIZATION_FAILED = 29
UNSUPPORTED_VERSION = 35


class Reader:
    def __init__(self, b, flexible=False):
        self.b, self.i, self.flexible = b, 0, flexible

    def take(self, n):
        if self.i + n > len(self.b):
            raise ValueError("short message")
        s = self.b[self.i:self.i + n]
        self.i += n
        return s

    def i8(self):
        return struct.unpack(">b", self.take(1))[0]

    def i16(self):
        return struct.unpack(">h", self.take(2))[0]

    def i32(self):
        return struct.unpack(">i", self.take(4))[0]

    def i64(self):
        return struct.unpack(">q", self.take(8))[0]

    def uvarint(self):
        v, shift = 0, 0
        while True:
            c = self.take(1)[0]
            v |= (c & 0x7F) << shift
            if not c & 0x80:
                return v
            shift += 7

    def string(self):
        n = self.uvarint() - 1 if self.flexible else self.i16()
        return None if n < 0 else self.take(n).decode()

    def legacy_string(self):
        n = self.i16()
        return None if n < 0 else self.take(n).decode()

    def bytes(self):
        n = self.uvarint() - 1 if self.flexible else self.i32()
        return None if n < 0 else self.take(n)

    def array(self, item):
        n = self.uvarint() - 1 if self.flexible else self.i32()
        return [] if n < 0 else [item() for _ in range(n)]

    def uuid(self):
        return self.take(16)

    def tags(self):
        if self.flexible:
            for _ in range(self.uvarint()):
                self.uvarint()
                self.take(self.uvarint())


class Writer:
    def __init__(self, flexible=False):
        self.b, self.flexible = bytearray(), flexible

    def i8(self, v):
        self.b += struct.pack(">b", v)

    def i16(self, v):
        self.b += struct.pack(">h", v)

    def i32(self, v):
        self.b += struct.pack(">i", v)

    def i64(self, v):
        self.b += struct.pack(">q", v)

    def uvarint(self, v):
        while v >= 0x80:
            self.b.append((v & 0x7F) | 0x80)
            v >>= 7
        self.b.append(v)

    def _len(self, n):
        if self.flexible:
            self.uvarint(n + 1)
        else:
            self.i16(n)

    def string(self, s):
        if s is None:
            self._len(-1) if not self.flexible else self.uvarint(0)
            return
        e = s.encode()
        self._len(len(e))
        self.b += e

    def bytes(self, data):
        if self.flexible:
            self.uvarint(0 if data is None else len(data) + 1)
        else:
            self.i32(-1 if data is None else len(data))
        if data is not None:
            self.b += data

    def array(self, items, write):
        if self.flexible:
            self.uvarint(len(items) + 1)
        else:
            self.i32(len(items))
        for it in items:
            write(it)

    def tags(self):
        if self.flexible:
            self.uvarint(0)


class Log:
    """One partition's log: a list of (base offset, batch bytes)."""

    def __init__(self):
        self.batches, self.end = [], 0

    def append(self, records):
        base = self.end
        i = 0
        while i < len(records):
            length = struct.unpack(">i", records[i + 8:i + 12])[0]
            batch = bytearray(records[i:i + 12 + length])
            if len(batch) < 61 or batch[16] != 2:
                raise ValueError("only record batches (magic 2) are kept")
            last_delta = struct.unpack(">i", batch[23:27])[0]
            batch[0:8] = struct.pack(">q", self.end)
            self.batches.append((self.end, bytes(batch)))
            self.end += last_delta + 1
            i += 12 + length
        return base

    def read(self, offset, max_bytes):
        out = bytearray()
        for base, batch in self.batches:
            last = base + struct.unpack(">i", batch[23:27])[0]
            if last < offset:
                continue
            if out and len(out) + len(batch) > max_bytes:
                break
            out += batch
        return bytes(out)


class Broker:
    def __init__(self, args):
        self.versions = PROFILES[args.profile]
        self.advertise_port = args.advertise_port
        self.deny = set(args.deny)
        self.logs = {}  # (topic, partition) -> Log
        self.topic_ids = {}  # topic -> 16 bytes
        self.sessions = {}  # fetch session id -> {(topic, partition): (offset, max bytes, hw)}
        self.session_topics = {}  # fetch session id -> first topic of its full fetch
        self.next_session = 0
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.log_file = open(args.log, "a", buffering=1)

    def topic_id(self, topic):
        with self.lock:
            return self.topic_ids.setdefault(topic, uuid.uuid4().bytes)

    def topic_by_id(self, tid):
        with self.lock:
            for t, i in self.topic_ids.items():
                if i == tid:
                    return t
        return None

    def partition(self, topic, p):
        return self.logs.setdefault((topic, p), Log())

    def record(self, api, version, topic, error):
        line = json.dumps({"api": api, "version": version, "topic": topic, "error": error})
        with self.lock:
            self.log_file.write(line + "\n")

    # ---- the APIs: each returns (body bytes, first topic, error code) ----

    def api_versions(self, v, r):
        lo, hi = self.versions[API_VERSIONS]
        error = 0 if lo <= v <= hi else UNSUPPORTED_VERSION
        if error:
            v = 0  # like a real broker: a v0 reply listing what it supports
        w = Writer(v >= 3)
        w.i16(error)

        def key(k):
            w.i16(k)
            w.i16(self.versions[k][0])
            w.i16(self.versions[k][1])
            w.tags()

        w.array(sorted(self.versions), key)
        if v >= 1:
            w.i32(0)  # throttle_time_ms
        w.tags()
        return w.b, None, error

    def metadata(self, v, r):
        flex = v >= 9

        def topic_entry():
            tid = r.uuid() if v >= 10 else None
            name = r.string()
            if name is None and tid is not None:
                name = self.topic_by_id(tid)
            r.tags()
            return name

        topics = r.array(topic_entry) if not (v >= 1 and self._null_array(r)) else None
        if topics is None or (v == 0 and not topics):  # all topics
            with self.lock:
                topics = sorted({t for t, _ in self.logs} | set(self.topic_ids))
        w = Writer(flex)
        if v >= 3:
            w.i32(0)

        def broker(_):
            w.i32(0)
            w.string("127.0.0.1")
            w.i32(self.advertise_port)
            if v >= 1:
                w.string(None)  # rack
            w.tags()

        w.array([0], broker)
        if v >= 2:
            w.string("tapline-test-broker")
        if v >= 1:
            w.i32(0)  # controller

        def topic(name):
            w.i16(0)
            w.string(name)
            if v >= 10:
                w.b += self.topic_id(name)
            if v >= 1:
                w.i8(0)  # is_internal

            def part(p):
                w.i16(0)
                w.i32(p)
                w.i32(0)  # leader
                if v >= 7:
                    w.i32(0)  # leader epoch
                w.array([0], w.i32)  # replicas
                w.array([0], w.i32)  # isr
                if v >= 5:
                    w.array([], w.i32)  # offline
                w.tags()

            w.array([0], part)
            if v >= 8:
                w.i32(-2147483648)  # authorized operations: not requested
            w.tags()

        w.array(topics, topic)
        if 8 <= v <= 10:
            w.i32(-2147483648)
        w.tags()
        return w.b, (topics[0] if topics else None), 0

    @staticmethod
    def _null_array(r):
        """Peeks whether the next array is null (and consumes it if so)."""
        if r.flexible:
            if r.b[r.i] == 0:
                r.i += 1
                return True
            return False
        if struct.unpack(">i", r.b[r.i:r.i + 4])[0] == -1:
            r.i += 4
            return True
        return False

    def produce(self, v, r):
        if v >= 3:
            r.string()  # transactional_id
        acks = r.i16()
        r.i32()  # timeout

        def partition():
            p = r.i32()
            records = r.bytes()
            r.tags()
            return p, records

        def topic():
            name = r.string()
            parts = r.array(partition)
            r.tags()
            return name, parts

        topics = r.array(topic)
        r.tags()
        results = []
        first_error = None
        for name, parts in topics:
            res = []
            for p, records in parts:
                if name in self.deny:
                    err, base = TOPIC_AUTHORIZATION_FAILED, -1
                else:
                    with self.cond:
                        err, base = 0, self.partition(name, p).append(records or b"")
                        self.cond.notify_all()
                if first_error is None:
                    first_error = err
                res.append((p, err, base))
            results.append((name, res))
        if acks == 0:
            return None, (topics[0][0] if topics else None), first_error or 0
        w = Writer(v >= 9)

        def part(x):
            p, err, base = x
            w.i32(p)
            w.i16(err)
            w.i64(base)
            if v >= 2:
                w.i64(-1)  # log_append_time
            if v >= 5:
                w.i64(0)  # log_start_offset
            if v >= 8:
                w.array([], None)  # record_errors
                w.string(None)  # error_message
            w.tags()

        def topic_out(x):
            w.string(x[0])
            w.array(x[1], part)
            w.tags()

        w.array(results, topic_out)
        w.i32(0)  # throttle_time_ms (v1+)
        w.tags()
        return w.b, (topics[0][0] if topics else None), first_error or 0

    def fetch(self, v, r):
        if v <= 14:
            r.i32()  # replica_id
        max_wait = r.i32()
        r.i32()  # min_bytes
        if v >= 3:
            r.i32()  # max_bytes
        if v >= 4:
            r.i8()
        session_id, epoch = (r.i32(), r.i32()) if v >= 7 else (0, -1)

        def partition():
            p = r.i32()
            if v >= 9:
                r.i32()
            offset = r.i64()
            if v >= 12:
                r.i32()
            if v >= 5:
                r.i64()
            max_bytes = r.i32()
            r.tags()
            return p, offset, max_bytes

        def topic():
            name = r.string() if v <= 12 else self.topic_by_id(r.uuid())
            parts = r.array(partition)
            r.tags()
            return name, parts

        def forgotten_topic():
            name = r.string() if v <= 12 else self.topic_by_id(r.uuid())
            parts = r.array(r.i32)
            r.tags()
            return name, parts

        topics = r.array(topic)
        forgotten = r.array(forgotten_topic) if v >= 7 else []
        # the rest (rack id) is not needed
        requested = {(t, p): (off, mb) for t, parts in topics for p, off, mb in parts}

        # Fetch sessions (KIP-227), as a real broker since 1.1 keeps them: epoch 0 opens one
        # (every partition answered), later epochs send and get only what changed; -1 is a
        # full fetch outside any session.
        with self.lock:
            if epoch == 0:
                self.next_session += 1
                session_id = self.next_session
                self.sessions[session_id] = {}
                self.session_topics[session_id] = topics[0][0] if topics else None
            elif epoch < 0:
                self.sessions.pop(session_id, None)
                session_id = 0
            session = self.sessions.get(session_id)
            full = session is None or epoch == 0
            wanted = dict(requested)
            if session is not None:
                for t, parts in forgotten:
                    for p in parts:
                        session.pop((t, p), None)
                for tp, (off, mb) in requested.items():
                    hw = session.get(tp, (0, 0, -1))[2]
                    session[tp] = (off, mb, hw)
                wanted = {tp: (off, mb) for tp, (off, mb, _) in session.items()}

        def changed(tp):
            off, _ = wanted[tp]
            end = self.partition(*tp).end
            return full or end > off or (session is not None and session[tp][2] != end)

        with self.cond:
            deadline = time.monotonic() + min(max_wait, 200) / 1000
            while not any(self.partition(*tp).end > off for tp, (off, _) in wanted.items()) \
                    and time.monotonic() < deadline:
                self.cond.wait(max(0.0, deadline - time.monotonic()))
            data = {}
            for tp, (off, mb) in wanted.items():
                if changed(tp):
                    log = self.partition(*tp)
                    data.setdefault(tp[0], []).append((tp[1], log.end, log.read(off, mb)))
                    if session is not None:
                        session[tp] = (off, mb, log.end)
            data = list(data.items())
        w = Writer(v >= 12)
        if v >= 1:
            w.i32(0)  # throttle
        if v >= 7:
            w.i16(0)
            w.i32(session_id)

        def part(x):
            p, end, records = x
            w.i32(p)
            w.i16(0)
            w.i64(end)  # high watermark
            if v >= 4:
                w.i64(end)  # last stable offset
            if v >= 5:
                w.i64(0)  # log start offset
            if v >= 4:
                w.array([], None)  # aborted transactions
            if v >= 11:
                w.i32(-1)  # preferred read replica
            w.bytes(records)
            w.tags()

        def topic_out(x):
            w.string(x[0])
            w.array(x[1], part)
            w.tags()

        w.array(data, topic_out)
        w.tags()
        first = topics[0][0] if topics else (data[0][0] if data else None)
        if first is None:
            first = self.session_topics.get(session_id)
        return w.b, first, 0

    def list_offsets(self, v, r):
        r.i32()  # replica_id
        if v >= 2:
            r.i8()

        def partition():
            p = r.i32()
            if v >= 4:
                r.i32()
            ts = r.i64()
            if v == 0:
                r.i32()
            r.tags()
            return p, ts

        def topic():
            name = r.string()
            parts = r.array(partition)
            r.tags()
            return name, parts

        topics = r.array(topic)
        w = Writer(v >= 6)
        if v >= 2:
            w.i32(0)

        def part(x):
            p, ts = x
            with self.lock:
                end = self.partition(name_of[0], p).end
            w.i32(p)
            w.i16(0)
            w.i64(-1)  # timestamp
            w.i64(0 if ts == -2 else end)  # earliest (-2) or latest
            if v >= 4:
                w.i32(0)
            w.tags()

        name_of = [None]

        def topic_out(x):
            name_of[0] = x[0]
            w.string(x[0])
            w.array(x[1], part)
            w.tags()

        w.array(topics, topic_out)
        w.tags()
        return w.b, None, 0

    def init_producer_id(self, v, r):
        w = Writer(v >= 2)
        w.i32(0)
        w.i16(0)
        w.i64(1000)  # producer id
        w.i16(0)  # epoch
        w.tags()
        return w.b, None, 0

    # ---- connections ----

    def serve(self, conn):
        handlers = {API_VERSIONS: self.api_versions, METADATA: self.metadata,
                    PRODUCE: self.produce, FETCH: self.fetch,
                    LIST_OFFSETS: self.list_offsets, INIT_PRODUCER_ID: self.init_producer_id}
        buf = b""
        try:
            while True:
                while len(buf) < 4 or len(buf) < 4 + struct.unpack(">i", buf[:4])[0]:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                n = struct.unpack(">i", buf[:4])[0]
                msg, buf = buf[4:4 + n], buf[4 + n:]
                r = Reader(msg)
                api, v, corr = r.i16(), r.i16(), r.i32()
                r.legacy_string()  # client id
                flex = v >= FLEXIBLE_FROM.get(api, 1 << 15)
                if flex:
                    r.flexible = True
                    r.tags()
                if api not in handlers:
                    raise ValueError(f"api {api} v{v} is not implemented by the test broker")
                lo, hi = self.versions[api]
                if api != API_VERSIONS and not lo <= v <= hi:
                    raise ValueError(f"api {api} v{v} was not advertised")
                body, topic, error = handlers[api](v, r)
                self.record(api, v, topic, error)
                if body is None:
                    continue  # acks=0
                header = Writer()
                header.i32(corr)
                if flex and api != API_VERSIONS:
                    header.uvarint(0)  # response header v1: tagged fields
                out = bytes(header.b) + bytes(body)
                conn.sendall(struct.pack(">i", len(out)) + out)
        except Exception as e:  # noqa: BLE001 - a test broker says what went wrong and hangs up
            with self.lock:
                self.log_file.write(json.dumps({"broker_error": repr(e)}) + "\n")
        finally:
            conn.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--advertise-port", type=int, required=True)
    ap.add_argument("--profile", choices=sorted(PROFILES), default="flexible")
    ap.add_argument("--deny", action="append", default=[])
    ap.add_argument("--log", required=True)
    args = ap.parse_args()
    broker = Broker(args)
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", args.port))
    srv.listen(64)
    while True:
        conn, _ = srv.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=broker.serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
