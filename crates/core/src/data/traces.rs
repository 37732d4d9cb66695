//! Traces: resource → spans.

use std::sync::Arc;

use super::{Attributes, Resource, Str};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SpanKind {
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StatusCode {
    Unset,
    Ok,
    Error,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Span {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// All zeroes for a root span.
    pub parent_span_id: [u8; 8],
    pub name: Str,
    pub kind: SpanKind,
    pub start_time_ns: u64,
    pub end_time_ns: u64,
    pub attributes: Attributes,
    pub status: StatusCode,
    pub status_message: Str,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ResourceSpans {
    pub resource: Arc<Resource>,
    pub scope: Str,
    pub spans: Vec<Span>,
}

/// The unit that travels through a traces pipeline.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Traces {
    pub resource_spans: Vec<ResourceSpans>,
}

impl Traces {
    pub fn item_count(&self) -> usize {
        self.resource_spans.iter().map(|rs| rs.spans.len()).sum()
    }
    pub fn spans_mut(&mut self) -> impl Iterator<Item = &mut Span> {
        self.resource_spans
            .iter_mut()
            .flat_map(|rs| rs.spans.iter_mut())
    }
}
