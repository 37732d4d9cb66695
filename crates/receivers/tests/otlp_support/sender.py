"""Sends OTLP with the OpenTelemetry Python SDK, then prints (JSON) exactly what it sent.

usage: sender.py grpc|http ENDPOINT gzip|none [CA_FILE]
"""
import json
import sys

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

protocol, endpoint, compression = sys.argv[1], sys.argv[2], sys.argv[3]
ca = sys.argv[4] if len(sys.argv) > 4 else None

if protocol == "grpc":
    import grpc
    from grpc import Compression
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    comp = Compression.Gzip if compression == "gzip" else Compression.NoCompression
    kw = {"endpoint": endpoint, "compression": comp, "timeout": 10}
    if ca:
        kw["credentials"] = grpc.ssl_channel_credentials(root_certificates=open(ca, "rb").read())
    else:
        kw["insecure"] = True
    span_exporter = OTLPSpanExporter(**kw)
    metric_exporter = OTLPMetricExporter(**kw)
else:
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    comp = Compression.Gzip if compression == "gzip" else Compression.NoCompression
    kw = {"compression": comp, "timeout": 10}
    if ca:
        kw["certificate_file"] = ca
    span_exporter = OTLPSpanExporter(endpoint=endpoint + "/v1/traces", **kw)
    metric_exporter = OTLPMetricExporter(endpoint=endpoint + "/v1/metrics", **kw)

resource = Resource.create({"service.name": "py-shop", "deployment.environment": "test"})

tp = TracerProvider(resource=resource)
tp.add_span_processor(BatchSpanProcessor(span_exporter))
tracer = tp.get_tracer("shop.tracer")
sent_spans = []
with tracer.start_as_current_span("checkout", kind=SpanKind.SERVER,
                                  attributes={"http.request.method": "POST", "cart.items": 3,
                                              "cart.total": 41.5, "cart.gift": True}) as parent:
    with tracer.start_as_current_span("charge", kind=SpanKind.CLIENT) as child:
        child.set_attribute("payment.provider", "acme")
        child.set_status(Status(StatusCode.ERROR, "card declined"))
        sent_spans.append(child)
    sent_spans.append(parent)

mp = MeterProvider(
    resource=resource,
    metric_readers=[PeriodicExportingMetricReader(metric_exporter, export_interval_millis=3_600_000)],
    views=[View(instrument_name="latency.exp", aggregation=ExponentialBucketHistogramAggregation())],
)
meter = mp.get_meter("shop.meter")
orders = meter.create_counter("orders.placed", unit="{order}", description="Orders placed")
orders.add(5, {"region": "eu"})
orders.add(7, {"region": "eu"})
orders.add(1, {"region": "us"})
value = meter.create_histogram("order.value", unit="USD")
for v in (3, 30, 300):
    value.record(v, {"region": "eu"})
meter.create_up_down_counter("queue.size").add(4)
meter.create_histogram("latency.exp", unit="s").record(0.25)

ok_metrics = mp.force_flush(timeout_millis=15_000)
ok_spans = tp.force_flush(timeout_millis=15_000)


def ctx(s):
    return s.get_span_context()


print(json.dumps({
    "ok": bool(ok_metrics and ok_spans),
    "spans": [{
        "name": s.name,
        "trace_id": format(ctx(s).trace_id, "032x"),
        "span_id": format(ctx(s).span_id, "016x"),
        "parent_span_id": format(s.parent.span_id, "016x") if s.parent else "0" * 16,
        "start": s.start_time,
        "end": s.end_time,
    } for s in sent_spans],
}))
sys.stdout.flush()
mp.shutdown()
tp.shutdown()
