#!/usr/bin/env python3
"""A real Kafka client (kafka-python) for the tests: produces and consumes through a broker.

  kafka_client.py --bootstrap HOST:PORT --topic NAME=COUNT ... [--denied NAME]

Produces COUNT messages to each topic, each one `send().get()` (one Produce request each,
nothing batched), then one message to the --denied topic (the broker refuses it), then reads
every topic back from the beginning with its own consumer (`assign()`, no consumer group)
and checks the values. Prints a JSON summary.
"""

import argparse
import json
import sys
import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", action="append", default=[])
    ap.add_argument("--denied")
    args = ap.parse_args()
    topics = {t.split("=")[0]: int(t.split("=")[1]) for t in args.topic}

    producer = KafkaProducer(bootstrap_servers=args.bootstrap, client_id="tapline-test",
                             request_timeout_ms=10000, max_block_ms=10000, linger_ms=0)
    for topic, n in topics.items():
        for i in range(n):
            producer.send(topic, value=f"{topic}-{i}".encode()).get(timeout=10)
    denied_error = None
    if args.denied:
        try:
            producer.send(args.denied, value=b"no").get(timeout=10)
        except KafkaError as e:
            denied_error = type(e).__name__
    producer.close(timeout=10)

    consumed = {}
    for topic, n in topics.items():
        consumer = KafkaConsumer(bootstrap_servers=args.bootstrap, client_id="tapline-test",
                                 group_id=None, enable_auto_commit=False,
                                 request_timeout_ms=10000)
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        values = []
        deadline = time.monotonic() + 30
        while len(values) < n and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                values += [r.value.decode() for r in records]
        # one more fetch finds nothing new (within a fetch session: a request naming no topic)
        extra = sum(len(rs) for rs in consumer.poll(timeout_ms=300).values())
        consumer.close()
        if extra:
            sys.exit(f"{topic}: {extra} records more than produced")
        want = [f"{topic}-{i}" for i in range(n)]
        if values != want:
            sys.exit(f"{topic}: read back {values[:5]}... ({len(values)}), want {len(want)}")
        consumed[topic] = len(values)

    print(json.dumps({"consumed": consumed, "denied_error": denied_error}))


if __name__ == "__main__":
    main()
