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
