//! The one place that converts between tapline's data model and OTLP protobuf messages.

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1 as pc;
use opentelemetry_proto::tonic::metrics::v1 as pm;
use opentelemetry_proto::tonic::resource::v1 as pr;
use opentelemetry_proto::tonic::trace::v1 as pt;

use super::*;

// ---- tapline → OTLP ----

pub fn attributes_to_proto(attrs: &Attributes) -> Vec<pc::KeyValue> {
    attrs
        .iter()
        .map(|(k, v)| pc::KeyValue {
            key: k.to_string(),
            value: Some(value_to_proto(v)),
        })
        .collect()
}

fn value_to_proto(v: &Value) -> pc::AnyValue {
    use pc::any_value::Value as V;
    pc::AnyValue {
        value: Some(match v {
            Value::Str(s) => V::StringValue(s.to_string()),
            Value::Int(i) => V::IntValue(*i),
            Value::Double(d) => V::DoubleValue(*d),
            Value::Bool(b) => V::BoolValue(*b),
        }),
    }
}

fn resource_to_proto(r: &Resource) -> pr::Resource {
    pr::Resource {
        attributes: attributes_to_proto(&r.attributes),
        ..Default::default()
    }
}

fn scope_to_proto(scope: &Str) -> Option<pc::InstrumentationScope> {
    Some(pc::InstrumentationScope {
        name: scope.to_string(),
        ..Default::default()
    })
}

fn temporality_to_proto(t: Temporality) -> i32 {
    match t {
        Temporality::Delta => pm::AggregationTemporality::Delta as i32,
        Temporality::Cumulative => pm::AggregationTemporality::Cumulative as i32,
    }
}

fn number_point_to_proto(p: &NumberPoint) -> pm::NumberDataPoint {
    pm::NumberDataPoint {
        attributes: attributes_to_proto(&p.attributes),
        start_time_unix_nano: p.start_time_ns,
        time_unix_nano: p.time_ns,
        value: Some(match p.value {
            Number::Int(i) => pm::number_data_point::Value::AsInt(i),
            Number::Double(d) => pm::number_data_point::Value::AsDouble(d),
        }),
        ..Default::default()
    }
}

fn histogram_point_to_proto(p: &HistogramPoint) -> pm::HistogramDataPoint {
    pm::HistogramDataPoint {
        attributes: attributes_to_proto(&p.attributes),
        start_time_unix_nano: p.start_time_ns,
        time_unix_nano: p.time_ns,
        count: p.count,
        sum: Some(p.sum),
        bucket_counts: p.bucket_counts.clone(),
        explicit_bounds: p.bounds.to_vec(),
        min: p.min,
        max: p.max,
        ..Default::default()
    }
}

pub fn metric_to_proto(m: &Metric) -> pm::Metric {
    use pm::metric::Data;
    let data = match &m.data {
        MetricData::Sum {
            temporality,
            monotonic,
            points,
        } => Data::Sum(pm::Sum {
            data_points: points.iter().map(number_point_to_proto).collect(),
            aggregation_temporality: temporality_to_proto(*temporality),
            is_monotonic: *monotonic,
        }),
        MetricData::Gauge { points } => Data::Gauge(pm::Gauge {
            data_points: points.iter().map(number_point_to_proto).collect(),
        }),
        MetricData::Histogram {
            temporality,
            points,
        } => Data::Histogram(pm::Histogram {
            data_points: points.iter().map(histogram_point_to_proto).collect(),
            aggregation_temporality: temporality_to_proto(*temporality),
        }),
    };
    pm::Metric {
        name: m.name.to_string(),
        description: m.description.to_string(),
        unit: m.unit.to_string(),
        data: Some(data),
        ..Default::default()
    }
}

pub fn metrics_to_proto(metrics: &Metrics) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: metrics
            .resource_metrics
            .iter()
            .map(|rm| pm::ResourceMetrics {
                resource: Some(resource_to_proto(&rm.resource)),
                scope_metrics: vec![pm::ScopeMetrics {
                    scope: scope_to_proto(&rm.scope),
                    metrics: rm.metrics.iter().map(metric_to_proto).collect(),
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
    }
}

fn span_kind_to_proto(k: SpanKind) -> i32 {
    use pt::span::SpanKind as K;
    (match k {
        SpanKind::Internal => K::Internal,
        SpanKind::Server => K::Server,
        SpanKind::Client => K::Client,
        SpanKind::Producer => K::Producer,
        SpanKind::Consumer => K::Consumer,
    }) as i32
}

fn span_to_proto(s: &Span) -> pt::Span {
    use pt::status::StatusCode as C;
    let code = match s.status {
        StatusCode::Unset => C::Unset,
        StatusCode::Ok => C::Ok,
        StatusCode::Error => C::Error,
    };
    pt::Span {
        trace_id: s.trace_id.to_vec(),
        span_id: s.span_id.to_vec(),
        parent_span_id: if s.parent_span_id == [0; 8] {
            Vec::new()
        } else {
            s.parent_span_id.to_vec()
        },
        name: s.name.to_string(),
        kind: span_kind_to_proto(s.kind),
        start_time_unix_nano: s.start_time_ns,
        end_time_unix_nano: s.end_time_ns,
        attributes: attributes_to_proto(&s.attributes),
        status: Some(pt::Status {
            message: s.status_message.to_string(),
            code: code as i32,
        }),
        ..Default::default()
    }
}

pub fn traces_to_proto(traces: &Traces) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: traces
            .resource_spans
            .iter()
            .map(|rs| pt::ResourceSpans {
                resource: Some(resource_to_proto(&rs.resource)),
                scope_spans: vec![pt::ScopeSpans {
                    scope: scope_to_proto(&rs.scope),
                    spans: rs.spans.iter().map(span_to_proto).collect(),
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
    }
}

// ---- tapline → OTLP wire bytes, directly ----
//
// The exporters' hot path: encoding `traces_to_proto`'s message with prost first builds a
// tree of owned strings and vectors and then walks it; writing the protobuf bytes straight
// from tapline's model skips the tree. The output is byte-identical to prost's encoding of
// `traces_to_proto` (a test checks it), so both paths stay interchangeable.

mod wire {
    pub const LEN: u8 = 2;
    pub const VARINT: u8 = 0;
    pub const I64: u8 = 1;

    pub fn varint_len(mut v: u64) -> usize {
        let mut n = 1;
        while v >= 0x80 {
            v >>= 7;
            n += 1;
        }
        n
    }
    pub fn varint(buf: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        buf.push(v as u8);
    }
    pub fn key(buf: &mut Vec<u8>, field: u32, wire_type: u8) {
        varint(buf, ((field as u64) << 3) | wire_type as u64);
    }
    /// Length of a length-delimited field whose body is `len` bytes (fields < 16).
    pub fn len_field(len: usize) -> usize {
        1 + varint_len(len as u64) + len
    }
    pub fn bytes_field_len(b: &[u8]) -> usize {
        if b.is_empty() {
            0
        } else {
            len_field(b.len())
        }
    }
    pub fn bytes(buf: &mut Vec<u8>, field: u32, b: &[u8]) {
        if !b.is_empty() {
            key(buf, field, LEN);
            varint(buf, b.len() as u64);
            buf.extend_from_slice(b);
        }
    }
    pub fn message_header(buf: &mut Vec<u8>, field: u32, len: usize) {
        key(buf, field, LEN);
        varint(buf, len as u64);
    }
    pub fn fixed64(buf: &mut Vec<u8>, field: u32, v: u64) {
        if v != 0 {
            key(buf, field, I64);
            buf.extend_from_slice(&v.to_le_bytes());
        }
    }
    pub fn fixed64_len(v: u64) -> usize {
        if v == 0 {
            0
        } else {
            9
        }
    }
    pub fn uint(buf: &mut Vec<u8>, field: u32, v: u64) {
        if v != 0 {
            key(buf, field, VARINT);
            varint(buf, v);
        }
    }
    pub fn uint_len(v: u64) -> usize {
        if v == 0 {
            0
        } else {
            1 + varint_len(v)
        }
    }
}

fn any_value_len(v: &Value) -> usize {
    match v {
        Value::Str(s) => wire::len_field(s.len()),
        Value::Int(i) => 1 + wire::varint_len(*i as u64),
        Value::Double(_) => 9,
        Value::Bool(_) => 2,
    }
}

fn encode_any_value(buf: &mut Vec<u8>, v: &Value) {
    // A oneof member is written even when it holds its type's default.
    match v {
        Value::Str(s) => {
            wire::message_header(buf, 1, s.len());
            buf.extend_from_slice(s.as_bytes());
        }
        Value::Bool(b) => {
            wire::key(buf, 2, wire::VARINT);
            buf.push(*b as u8);
        }
        Value::Int(i) => {
            wire::key(buf, 3, wire::VARINT);
            wire::varint(buf, *i as u64);
        }
        Value::Double(d) => {
            wire::key(buf, 4, wire::I64);
            buf.extend_from_slice(&d.to_le_bytes());
        }
    }
}

fn key_value_len(k: &str, v: &Value) -> usize {
    wire::bytes_field_len(k.as_bytes()) + wire::len_field(any_value_len(v))
}

fn encode_attributes(buf: &mut Vec<u8>, field: u32, attrs: &Attributes) {
    for (k, v) in attrs.iter() {
        wire::message_header(buf, field, key_value_len(k, v));
        wire::bytes(buf, 1, k.as_bytes());
        wire::message_header(buf, 2, any_value_len(v));
        encode_any_value(buf, v);
    }
}

fn attributes_len(attrs: &Attributes) -> usize {
    attrs
        .iter()
        .map(|(k, v)| wire::len_field(key_value_len(k, v)))
        .sum()
}

fn status_len(s: &Span) -> usize {
    wire::bytes_field_len(s.status_message.as_bytes()) + wire::uint_len(status_code(s.status))
}

fn status_code(c: StatusCode) -> u64 {
    match c {
        StatusCode::Unset => 0,
        StatusCode::Ok => 1,
        StatusCode::Error => 2,
    }
}

fn span_len(s: &Span) -> usize {
    let parent: &[u8] = if s.parent_span_id == [0; 8] {
        &[]
    } else {
        &s.parent_span_id
    };
    wire::bytes_field_len(&s.trace_id)
        + wire::bytes_field_len(&s.span_id)
        + wire::bytes_field_len(parent)
        + wire::bytes_field_len(s.name.as_bytes())
        + wire::uint_len(span_kind_to_proto(s.kind) as u64)
        + wire::fixed64_len(s.start_time_ns)
        + wire::fixed64_len(s.end_time_ns)
        + attributes_len(&s.attributes)
        + wire::len_field(status_len(s))
}

fn encode_span(buf: &mut Vec<u8>, s: &Span) {
    wire::bytes(buf, 1, &s.trace_id);
    wire::bytes(buf, 2, &s.span_id);
    if s.parent_span_id != [0; 8] {
        wire::bytes(buf, 4, &s.parent_span_id);
    }
    wire::bytes(buf, 5, s.name.as_bytes());
    wire::uint(buf, 6, span_kind_to_proto(s.kind) as u64);
    wire::fixed64(buf, 7, s.start_time_ns);
    wire::fixed64(buf, 8, s.end_time_ns);
    encode_attributes(buf, 9, &s.attributes);
    // `status` is always present, as `traces_to_proto` sets it.
    wire::message_header(buf, 15, status_len(s));
    wire::bytes(buf, 2, s.status_message.as_bytes());
    wire::uint(buf, 3, status_code(s.status));
}

/// Encodes `traces` as an `ExportTraceServiceRequest`, byte-identical to encoding
/// [`traces_to_proto`]'s result, without building it.
pub fn encode_traces_request(traces: &Traces) -> Vec<u8> {
    let mut sizes = Vec::with_capacity(traces.item_count());
    let mut total = 0;
    let mut rs_lens = Vec::with_capacity(traces.resource_spans.len());
    for rs in &traces.resource_spans {
        let resource_len = attributes_len(&rs.resource.attributes);
        let scope_len = wire::bytes_field_len(rs.scope.as_bytes());
        let mut spans_len = 0;
        for s in &rs.spans {
            let l = span_len(s);
            sizes.push(l);
            spans_len += wire::len_field(l);
        }
        let scope_spans_len = wire::len_field(scope_len) + spans_len;
        let body = wire::len_field(resource_len) + wire::len_field(scope_spans_len);
        rs_lens.push((body, resource_len, scope_len, scope_spans_len));
        total += wire::len_field(body);
    }
    let mut buf = Vec::with_capacity(total);
    let mut sizes = sizes.into_iter();
    for (rs, (body, resource_len, scope_len, scope_spans_len)) in
        traces.resource_spans.iter().zip(rs_lens)
    {
        wire::message_header(&mut buf, 1, body);
        wire::message_header(&mut buf, 1, resource_len);
        encode_attributes(&mut buf, 1, &rs.resource.attributes);
        wire::message_header(&mut buf, 2, scope_spans_len);
        wire::message_header(&mut buf, 1, scope_len);
        wire::bytes(&mut buf, 1, rs.scope.as_bytes());
        for s in &rs.spans {
            wire::message_header(&mut buf, 2, sizes.next().unwrap_or_default());
            encode_span(&mut buf, s);
        }
    }
    debug_assert_eq!(buf.len(), total);
    buf
}

// ---- OTLP → tapline ----

/// Why an OTLP message could not be taken in; names the offending element.
#[derive(Debug, thiserror::Error)]
#[error("invalid OTLP data at {path}: {reason}")]
pub struct FromProtoError {
    pub path: String,
    pub reason: String,
}

fn invalid(path: impl Into<String>, reason: impl Into<String>) -> FromProtoError {
    FromProtoError {
        path: path.into(),
        reason: reason.into(),
    }
}

pub fn attributes_from_proto(kvs: &[pc::KeyValue]) -> Attributes {
    kvs.iter()
        .filter_map(|kv| {
            let v = kv.value.as_ref().and_then(value_from_proto)?;
            Some((Str::from(kv.key.clone()), v))
        })
        .collect()
}

fn value_from_proto(v: &pc::AnyValue) -> Option<Value> {
    use pc::any_value::Value as V;
    Some(match v.value.as_ref()? {
        V::StringValue(s) => Value::Str(s.clone().into()),
        V::IntValue(i) => Value::Int(*i),
        V::DoubleValue(d) => Value::Double(*d),
        V::BoolValue(b) => Value::Bool(*b),
        V::BytesValue(b) => Value::Str(hex(b).into()),
        // Nested values have no counterpart in tapline's model; keep their content as text.
        V::ArrayValue(a) => Value::Str(
            format!(
                "[{}]",
                a.values
                    .iter()
                    .filter_map(value_from_proto)
                    .map(|v| v.to_text().into_owned())
                    .collect::<Vec<_>>()
                    .join(",")
            )
            .into(),
        ),
        V::KvlistValue(kv) => Value::Str(
            format!(
                "{{{}}}",
                attributes_from_proto(&kv.values)
                    .iter()
                    .map(|(k, v)| format!("{k}={}", v.to_text()))
                    .collect::<Vec<_>>()
                    .join(",")
            )
            .into(),
        ),
    })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn resource_from_proto(r: Option<&pr::Resource>) -> Arc<Resource> {
    Resource::new(
        r.map(|r| attributes_from_proto(&r.attributes))
            .unwrap_or_default(),
    )
}

fn temporality_from_proto(t: i32, path: &str) -> Result<Temporality, FromProtoError> {
    match pm::AggregationTemporality::try_from(t) {
        Ok(pm::AggregationTemporality::Delta) => Ok(Temporality::Delta),
        Ok(pm::AggregationTemporality::Cumulative) => Ok(Temporality::Cumulative),
        _ => Err(invalid(
            path,
            format!("aggregation temporality {t} is not delta or cumulative"),
        )),
    }
}

fn number_point_from_proto(p: &pm::NumberDataPoint) -> NumberPoint {
    NumberPoint {
        attributes: attributes_from_proto(&p.attributes),
        start_time_ns: p.start_time_unix_nano,
        time_ns: p.time_unix_nano,
        value: match p.value {
            Some(pm::number_data_point::Value::AsInt(i)) => Number::Int(i),
            Some(pm::number_data_point::Value::AsDouble(d)) => Number::Double(d),
            None => Number::Int(0),
        },
    }
}

fn histogram_point_from_proto(
    p: &pm::HistogramDataPoint,
    path: &str,
) -> Result<HistogramPoint, FromProtoError> {
    if p.bucket_counts.len() != p.explicit_bounds.len() + 1 && !p.bucket_counts.is_empty() {
        return Err(invalid(
            path,
            format!(
                "{} bucket counts for {} bounds (want bounds + 1)",
                p.bucket_counts.len(),
                p.explicit_bounds.len()
            ),
        ));
    }
    let mut bucket_counts = p.bucket_counts.clone();
    if bucket_counts.is_empty() {
        bucket_counts = vec![0; p.explicit_bounds.len() + 1];
        bucket_counts[p.explicit_bounds.len()] = p.count;
    }
    Ok(HistogramPoint {
        attributes: attributes_from_proto(&p.attributes),
        start_time_ns: p.start_time_unix_nano,
        time_ns: p.time_unix_nano,
        count: p.count,
        sum: p.sum.unwrap_or(0.0),
        bounds: p.explicit_bounds.clone().into(),
        bucket_counts,
        min: p.min,
        max: p.max,
    })
}

/// Converts an OTLP metrics request. Exponential histograms and summaries are not part of
/// tapline's model: they are skipped and counted in the returned number.
pub fn metrics_from_proto(
    req: &ExportMetricsServiceRequest,
) -> Result<(Metrics, usize), FromProtoError> {
    use pm::metric::Data;
    let mut out = Metrics::default();
    let mut skipped = 0;
    for (ri, rm) in req.resource_metrics.iter().enumerate() {
        let resource = resource_from_proto(rm.resource.as_ref());
        for (si, sm) in rm.scope_metrics.iter().enumerate() {
            let mut metrics = Vec::with_capacity(sm.metrics.len());
            for (mi, m) in sm.metrics.iter().enumerate() {
                let path = format!("resource_metrics[{ri}].scope_metrics[{si}].metrics[{mi}]");
                let data = match &m.data {
                    Some(Data::Sum(s)) => MetricData::Sum {
                        temporality: temporality_from_proto(s.aggregation_temporality, &path)?,
                        monotonic: s.is_monotonic,
                        points: s.data_points.iter().map(number_point_from_proto).collect(),
                    },
                    Some(Data::Gauge(g)) => MetricData::Gauge {
                        points: g.data_points.iter().map(number_point_from_proto).collect(),
                    },
                    Some(Data::Histogram(h)) => MetricData::Histogram {
                        temporality: temporality_from_proto(h.aggregation_temporality, &path)?,
                        points: h
                            .data_points
                            .iter()
                            .map(|p| histogram_point_from_proto(p, &path))
                            .collect::<Result<_, _>>()?,
                    },
                    Some(Data::ExponentialHistogram(h)) => {
                        skipped += h.data_points.len();
                        continue;
                    }
                    Some(Data::Summary(s)) => {
                        skipped += s.data_points.len();
                        continue;
                    }
                    None => return Err(invalid(path, "metric has no data")),
                };
                metrics.push(Metric {
                    name: m.name.clone().into(),
                    description: m.description.clone().into(),
                    unit: m.unit.clone().into(),
                    data,
                });
            }
            out.resource_metrics.push(ResourceMetrics {
                resource: resource.clone(),
                scope: sm
                    .scope
                    .as_ref()
                    .map(|s| Str::from(s.name.clone()))
                    .unwrap_or_default(),
                metrics,
            });
        }
    }
    Ok((out, skipped))
}

fn fixed<const N: usize>(b: &[u8], path: &str, what: &str) -> Result<[u8; N], FromProtoError> {
    if b.is_empty() {
        return Ok([0; N]);
    }
    b.try_into()
        .map_err(|_| invalid(path, format!("{what} has {} bytes, want {N}", b.len())))
}

pub fn traces_from_proto(req: &ExportTraceServiceRequest) -> Result<Traces, FromProtoError> {
    let mut out = Traces::default();
    for (ri, rs) in req.resource_spans.iter().enumerate() {
        let resource = resource_from_proto(rs.resource.as_ref());
        for (si, ss) in rs.scope_spans.iter().enumerate() {
            let mut spans = Vec::with_capacity(ss.spans.len());
            for (pi, s) in ss.spans.iter().enumerate() {
                let path = format!("resource_spans[{ri}].scope_spans[{si}].spans[{pi}]");
                use pt::span::SpanKind as K;
                let kind = match K::try_from(s.kind).unwrap_or(K::Unspecified) {
                    K::Server => SpanKind::Server,
                    K::Client => SpanKind::Client,
                    K::Producer => SpanKind::Producer,
                    K::Consumer => SpanKind::Consumer,
                    K::Internal | K::Unspecified => SpanKind::Internal,
                };
                let (status, status_message) = match &s.status {
                    Some(st) => (
                        match pt::status::StatusCode::try_from(st.code) {
                            Ok(pt::status::StatusCode::Ok) => StatusCode::Ok,
                            Ok(pt::status::StatusCode::Error) => StatusCode::Error,
                            _ => StatusCode::Unset,
                        },
                        Str::from(st.message.clone()),
                    ),
                    None => (StatusCode::Unset, Str::default()),
                };
                spans.push(Span {
                    trace_id: fixed(&s.trace_id, &path, "trace_id")?,
                    span_id: fixed(&s.span_id, &path, "span_id")?,
                    parent_span_id: fixed(&s.parent_span_id, &path, "parent_span_id")?,
                    name: s.name.clone().into(),
                    kind,
                    start_time_ns: s.start_time_unix_nano,
                    end_time_ns: s.end_time_unix_nano,
                    attributes: attributes_from_proto(&s.attributes),
                    status,
                    status_message,
                });
            }
            out.resource_spans.push(ResourceSpans {
                resource: resource.clone(),
                scope: ss
                    .scope
                    .as_ref()
                    .map(|s| Str::from(s.name.clone()))
                    .unwrap_or_default(),
                spans,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_metrics() -> Metrics {
        let mut attrs = Attributes::new();
        attrs.push("src.address", "10.0.0.1");
        attrs.push("src.port", 80u16);
        let mut h = HistogramPoint::new(attrs.clone(), vec![0.1, 1.0].into(), 1, 2);
        h.record(0.05);
        h.record(5.0);
        Metrics {
            resource_metrics: vec![ResourceMetrics {
                resource: Resource::new([("service.name", "svc")].into_iter().collect()),
                scope: "tapline".into(),
                metrics: vec![
                    Metric {
                        name: "a.b".into(),
                        description: "d".into(),
                        unit: "By".into(),
                        data: MetricData::Sum {
                            temporality: Temporality::Delta,
                            monotonic: true,
                            points: vec![NumberPoint {
                                attributes: attrs,
                                start_time_ns: 1,
                                time_ns: 2,
                                value: Number::Int(42),
                            }],
                        },
                    },
                    Metric {
                        name: "h".into(),
                        description: "".into(),
                        unit: "s".into(),
                        data: MetricData::Histogram {
                            temporality: Temporality::Cumulative,
                            points: vec![h],
                        },
                    },
                ],
            }],
        }
    }

    #[test]
    fn metrics_round_trip() {
        let m = sample_metrics();
        let (back, skipped) = metrics_from_proto(&metrics_to_proto(&m)).unwrap();
        assert_eq!(skipped, 0);
        assert_eq!(back, m);
    }

    #[test]
    fn traces_round_trip() {
        let t = Traces {
            resource_spans: vec![ResourceSpans {
                resource: Resource::new(Attributes::new()),
                scope: "s".into(),
                spans: vec![Span {
                    trace_id: [1; 16],
                    span_id: [2; 8],
                    parent_span_id: [0; 8],
                    name: "GET /".into(),
                    kind: SpanKind::Server,
                    start_time_ns: 5,
                    end_time_ns: 9,
                    attributes: [("http.request.method", "GET")].into_iter().collect(),
                    status: StatusCode::Error,
                    status_message: "boom".into(),
                }],
            }],
        };
        assert_eq!(traces_from_proto(&traces_to_proto(&t)).unwrap(), t);
    }

    #[test]
    fn direct_trace_encoding_matches_prost() {
        use prost::Message;
        let mut attrs = Attributes::new();
        attrs.push("s", "text");
        attrs.push("empty", "");
        attrs.push("i", -5i64);
        attrs.push("zero", 0i64);
        attrs.push("d", 0.25f64);
        attrs.push("b", false);
        let span = |parent: [u8; 8], status: StatusCode, msg: &'static str, kind: SpanKind| Span {
            trace_id: [9; 16],
            span_id: [3; 8],
            parent_span_id: parent,
            name: "GET /x".into(),
            kind,
            start_time_ns: 1_700_000_000_000_000_000,
            end_time_ns: 0,
            attributes: attrs.clone(),
            status,
            status_message: msg.into(),
        };
        let t = Traces {
            resource_spans: vec![
                ResourceSpans {
                    resource: Resource::new([("service.name", "svc")].into_iter().collect()),
                    scope: "scope".into(),
                    spans: vec![
                        span([0; 8], StatusCode::Unset, "", SpanKind::Internal),
                        span([1; 8], StatusCode::Error, "boom", SpanKind::Client),
                    ],
                },
                ResourceSpans {
                    resource: Resource::new(Attributes::new()),
                    scope: "".into(),
                    spans: vec![],
                },
            ],
        };
        assert_eq!(
            encode_traces_request(&t),
            traces_to_proto(&t).encode_to_vec()
        );
    }

    #[test]
    fn bad_trace_id_names_the_span() {
        let mut req = traces_to_proto(&Traces {
            resource_spans: vec![ResourceSpans {
                resource: Resource::new(Attributes::new()),
                scope: "s".into(),
                spans: vec![],
            }],
        });
        req.resource_spans[0].scope_spans[0].spans.push(pt::Span {
            trace_id: vec![1, 2, 3],
            ..Default::default()
        });
        let err = traces_from_proto(&req).unwrap_err().to_string();
        assert!(
            err.contains("resource_spans[0].scope_spans[0].spans[0]"),
            "{err}"
        );
        assert!(err.contains("trace_id has 3 bytes"), "{err}");
    }
}
