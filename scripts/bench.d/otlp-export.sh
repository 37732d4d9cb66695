# summary: OTLP exporter: encoding and export of 1,000-span batches over HTTP/protobuf and gRPC to an in-process receiver, CPU time per batch (criterion)
# needs: nothing
# usage: [criterion arguments]
criterion_bench tapline-exporters otlp_export
