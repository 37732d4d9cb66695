//! Kafka wire protocol.
//!
//! Every message is `[i32 size][...]`. A request header carries api_key, api_version,
//! correlation_id and client_id (header v2, for flexible versions, adds tagged fields); the
//! response header carries the correlation id (plus tagged fields when flexible, except for
//! ApiVersions), which is how responses are matched.
//!
//! Bodies are read for:
//! - Produce (`send`), v0-v13: topic of the first topic entry; first partition's error code;
//!   `acks = 0` requests get no response and end when written;
//! - Fetch (`receive`), v0-v17: top-level and first partition error codes, topic (by name up to
//!   v12, by topic id from v13 on, resolved through Metadata responses seen earlier);
//! - Metadata, v0-v12: requested topic; topic ids learned from the response.
//!
//! Fetch sessions (KIP-227, Fetch v7+, what brokers since 1.1 and clients use by default):
//! after the first full fetch of a session, a fetch names only the partitions whose position
//! changed and its response only those with news, so an idle long poll names no topic at all.
//! Such a fetch is reported with the topic the session's full fetch named (its first one),
//! remembered per session id on the connection.
//!
//! Flexible versions (Produce v9+, Fetch v12+, Metadata v9+) use compact strings and arrays
//! (unsigned varint length + 1) and tagged fields. Everything is read from the captured prefix
//! only; what is not captured is simply not reported.

use std::collections::{HashMap, VecDeque};

use super::frame::{FeedError, Frame, Framer, Msg};
use crate::*;

pub const SPEC: ProtocolSpec = ProtocolSpec {
    protocol: Protocol::Kafka,
    name: "kafka",
    detect: Some(|client, _| detect_score(client)),
    ports: &[9092, 9093, 9094, 29092],
    new_parser: Some(|_| Box::new(KafkaParser::new())),
    conventions: conventions::MESSAGING,
};

const KEEP: usize = 1024;
const MAX_MESSAGE: u64 = 256 << 20;
const MAX_TOPIC_IDS: usize = 4096;
const MAX_TOPIC: usize = 249; // Kafka's own limit on topic names
const MAX_FETCH_SESSIONS: usize = 64;

pub const PRODUCE: i16 = 0;
pub const FETCH: i16 = 1;
pub const METADATA: i16 = 3;
pub const API_VERSIONS: i16 = 18;

#[derive(Debug)]
struct Pending {
    correlation_id: i32,
    api_key: i16,
    version: i16,
    topic: Option<Str>,
    topic_id: Option<[u8; 16]>,
    start_ns: u64,
    size: u64,
    /// Fetch v7+: the session the request belongs to (0: none yet).
    fetch_session: Option<i32>,
}

pub struct KafkaParser {
    framers: [Framer; 2],
    pending: VecDeque<Pending>,
    topic_ids: HashMap<[u8; 16], Str>,
    /// Fetch session id -> the topic its full fetch named.
    fetch_sessions: HashMap<i32, Str>,
    stats: ParserStats,
}

impl Default for KafkaParser {
    fn default() -> Self {
        Self::new()
    }
}

/// A reader over a captured prefix: every read is checked, running out is `None`.
struct Cur<'a> {
    b: &'a [u8],
    i: usize,
    flexible: bool,
}

impl<'a> Cur<'a> {
    fn new(b: &'a [u8], flexible: bool) -> Self {
        Cur { b, i: 0, flexible }
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.b.get(self.i..self.i.checked_add(n)?)?;
        self.i += n;
        Some(s)
    }
    fn i8(&mut self) -> Option<i8> {
        Some(self.take(1)?[0] as i8)
    }
    fn i16(&mut self) -> Option<i16> {
        let s = self.take(2)?;
        Some(i16::from_be_bytes([s[0], s[1]]))
    }
    fn i32(&mut self) -> Option<i32> {
        let s = self.take(4)?;
        Some(i32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn uvarint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..35).step_by(7) {
            let b = self.take(1)?[0];
            v |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    /// A (nullable) string: `Some(None)` is null.
    fn string(&mut self) -> Option<Option<&'a [u8]>> {
        let len: i64 = if self.flexible {
            self.uvarint()? as i64 - 1
        } else {
            self.i16()? as i64
        };
        if len < 0 {
            return Some(None);
        }
        Some(Some(self.take(len as usize)?))
    }
    /// Always the classic int16-length form (client_id in header v2 is not compact).
    fn legacy_string(&mut self) -> Option<Option<&'a [u8]>> {
        let len = self.i16()?;
        if len < 0 {
            return Some(None);
        }
        Some(Some(self.take(len as usize)?))
    }
    /// Array length; -1 (null) becomes 0.
    fn array(&mut self) -> Option<u64> {
        let n: i64 = if self.flexible {
            self.uvarint()? as i64 - 1
        } else {
            self.i32()? as i64
        };
        Some(n.max(0) as u64)
    }
    fn uuid(&mut self) -> Option<[u8; 16]> {
        self.take(16)?.try_into().ok()
    }
    fn tags(&mut self) -> Option<()> {
        if !self.flexible {
            return Some(());
        }
        let n = self.uvarint()?;
        for _ in 0..n.min(64) {
            self.uvarint()?;
            let len = self.uvarint()?;
            self.take(usize::try_from(len).ok()?)?;
        }
        Some(())
    }
}

fn topic_name(b: &[u8]) -> Option<Str> {
    if b.is_empty()
        || b.len() > MAX_TOPIC
        || !b
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
    {
        return None;
    }
    Some(Str::Owned(String::from_utf8_lossy(b).into_owned()))
}

/// Whether `version` of `api_key` uses flexible (compact) encoding.
fn flexible(api_key: i16, version: i16) -> bool {
    match api_key {
        PRODUCE => version >= 9,
        FETCH => version >= 12,
        METADATA => version >= 9,
        API_VERSIONS => version >= 3,
        _ => false,
    }
}

/// What a request body says: (topic, topic id, acks).
type RequestFacts = (Option<Str>, Option<[u8; 16]>, Option<i16>);

fn read_request(api_key: i16, v: i16, body: &[u8]) -> RequestFacts {
    let mut c = Cur::new(body, flexible(api_key, v));
    let r = (|| -> Option<RequestFacts> {
        match api_key {
            PRODUCE => {
                if v >= 3 {
                    c.string()?; // transactional_id
                }
                let acks = c.i16()?;
                c.i32()?; // timeout
                let acks_only = (None, None, Some(acks));
                let Some(n) = c.array() else {
                    return Some(acks_only);
                };
                if n == 0 {
                    return Some(acks_only);
                }
                if v >= 13 {
                    return Some((None, c.uuid(), Some(acks)));
                }
                let name = c.string().flatten().and_then(topic_name);
                Some((name, None, Some(acks)))
            }
            FETCH => {
                if v <= 14 {
                    c.i32()?; // replica_id
                }
                c.i32()?; // max_wait_ms
                c.i32()?; // min_bytes
                if v >= 3 {
                    c.i32()?; // max_bytes
                }
                if v >= 4 {
                    c.i8()?; // isolation_level
                }
                if v >= 7 {
                    c.i32()?; // session_id
                    c.i32()?; // session_epoch
                }
                if c.array()? == 0 {
                    return Some((None, None, None)); // incremental fetch: topics in the response
                }
                if v >= 13 {
                    return Some((None, Some(c.uuid()?), None));
                }
                Some((c.string()?.and_then(topic_name), None, None))
            }
            METADATA => {
                if c.array()? == 0 {
                    return Some((None, None, None));
                }
                if v >= 10 {
                    let id = c.uuid()?;
                    let name = c.string()?.and_then(topic_name);
                    return Some((name, (id != [0; 16]).then_some(id), None));
                }
                Some((c.string()?.and_then(topic_name), None, None))
            }
            _ => Some((None, None, None)),
        }
    })();
    r.unwrap_or((None, None, None))
}

/// The session id of a Fetch v7+ request body (after the fixed fields before it).
fn fetch_request_session(v: i16, body: &[u8]) -> Option<i32> {
    if v < 7 {
        return None;
    }
    let mut c = Cur::new(body, false);
    if v <= 14 {
        c.i32()?; // replica_id
    }
    c.take(4 + 4 + 4 + 1)?; // max_wait_ms, min_bytes, max_bytes, isolation_level
    c.i32()
}

/// The session id of a Fetch v7+ response body: throttle_time_ms, error_code, session_id.
fn fetch_response_session(v: i16, body: &[u8]) -> Option<i32> {
    if v < 7 {
        return None;
    }
    let s = body.get(6..10)?;
    Some(i32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// What the response body says: (error code, topic, topic id).
fn read_response(
    p: &Pending,
    body: &[u8],
    learn: &mut dyn FnMut([u8; 16], Str),
) -> (i16, Option<Str>, Option<[u8; 16]>) {
    let v = p.version;
    let mut c = Cur::new(body, flexible(p.api_key, v));
    let r = (|| -> Option<(i16, Option<Str>, Option<[u8; 16]>)> {
        match p.api_key {
            PRODUCE => {
                if c.array()? == 0 {
                    return Some((0, None, None));
                }
                let (name, id) = if v >= 13 {
                    (None, Some(c.uuid()?))
                } else {
                    (c.string()?.and_then(topic_name), None)
                };
                if c.array()? == 0 {
                    return Some((0, name, id));
                }
                c.i32()?; // partition index
                Some((c.i16()?, name, id))
            }
            FETCH => {
                if v >= 1 {
                    c.i32()?; // throttle_time_ms
                }
                let mut top_error = 0;
                if v >= 7 {
                    top_error = c.i16()?;
                    c.i32()?; // session_id
                }
                if top_error != 0 {
                    return Some((top_error, None, None));
                }
                if c.array()? == 0 {
                    return Some((0, None, None));
                }
                let (name, id) = if v >= 13 {
                    (None, Some(c.uuid()?))
                } else {
                    (c.string()?.and_then(topic_name), None)
                };
                if c.array()? == 0 {
                    return Some((0, name, id));
                }
                c.i32()?; // partition index
                Some((c.i16()?, name, id))
            }
            METADATA => {
                if v >= 3 {
                    c.i32()?; // throttle_time_ms
                }
                for _ in 0..c.array()?.min(1024) {
                    c.i32()?; // node_id
                    c.string()?; // host
                    c.i32()?; // port
                    if v >= 1 {
                        c.string()?; // rack
                    }
                    c.tags()?;
                }
                if v >= 2 {
                    c.string()?; // cluster_id
                }
                if v >= 1 {
                    c.i32()?; // controller_id
                }
                let mut first: Option<(i16, Option<Str>)> = None;
                for _ in 0..c.array()?.min(4096) {
                    let err = c.i16()?;
                    let name = c.string()?.and_then(topic_name);
                    if v >= 10 {
                        let id = c.uuid()?;
                        if let Some(n) = &name {
                            if id != [0; 16] {
                                learn(id, n.clone());
                            }
                        }
                    }
                    if first.is_none() {
                        first = Some((err, name.clone()));
                    }
                    if v >= 1 {
                        c.i8()?; // is_internal
                    }
                    for _ in 0..c.array()?.min(1 << 16) {
                        c.i16()?;
                        c.i32()?;
                        c.i32()?;
                        if v >= 7 {
                            c.i32()?;
                        }
                        let arrays = if v >= 5 { 3 } else { 2 };
                        for _ in 0..arrays {
                            let n = c.array()?;
                            c.take(usize::try_from(n).ok()?.checked_mul(4)?)?;
                        }
                        c.tags()?;
                    }
                    if v >= 8 {
                        c.i32()?;
                    }
                    c.tags()?;
                }
                let (err, name) = first.unwrap_or((0, None));
                Some((err, name, None))
            }
            _ => None,
        }
    })();
    r.unwrap_or((0, None, None))
}

fn api_name(api_key: i16) -> Str {
    const NAMES: [&str; 70] = [
        "send",
        "receive",
        "ListOffsets",
        "Metadata",
        "LeaderAndIsr",
        "StopReplica",
        "UpdateMetadata",
        "ControlledShutdown",
        "OffsetCommit",
        "OffsetFetch",
        "FindCoordinator",
        "JoinGroup",
        "Heartbeat",
        "LeaveGroup",
        "SyncGroup",
        "DescribeGroups",
        "ListGroups",
        "SaslHandshake",
        "ApiVersions",
        "CreateTopics",
        "DeleteTopics",
        "DeleteRecords",
        "InitProducerId",
        "OffsetForLeaderEpoch",
        "AddPartitionsToTxn",
        "AddOffsetsToTxn",
        "EndTxn",
        "WriteTxnMarkers",
        "TxnOffsetCommit",
        "DescribeAcls",
        "CreateAcls",
        "DeleteAcls",
        "DescribeConfigs",
        "AlterConfigs",
        "AlterReplicaLogDirs",
        "DescribeLogDirs",
        "SaslAuthenticate",
        "CreatePartitions",
        "CreateDelegationToken",
        "RenewDelegationToken",
        "ExpireDelegationToken",
        "DescribeDelegationToken",
        "DeleteGroups",
        "ElectLeaders",
        "IncrementalAlterConfigs",
        "AlterPartitionReassignments",
        "ListPartitionReassignments",
        "OffsetDelete",
        "DescribeClientQuotas",
        "AlterClientQuotas",
        "DescribeUserScramCredentials",
        "AlterUserScramCredentials",
        "Vote",
        "BeginQuorumEpoch",
        "EndQuorumEpoch",
        "DescribeQuorum",
        "AlterPartition",
        "UpdateFeatures",
        "Envelope",
        "FetchSnapshot",
        "DescribeCluster",
        "DescribeProducers",
        "BrokerRegistration",
        "BrokerHeartbeat",
        "UnregisterBroker",
        "DescribeTransactions",
        "ListTransactions",
        "AllocateProducerIds",
        "ConsumerGroupHeartbeat",
        "ConsumerGroupDescribe",
    ];
    match usize::try_from(api_key).ok().and_then(|i| NAMES.get(i)) {
        Some(n) => Str::Borrowed(n),
        None => Str::Owned(format!("api_{api_key}")),
    }
}

fn error_name(code: i16) -> Str {
    let n = match code {
        -1 => "UNKNOWN_SERVER_ERROR",
        1 => "OFFSET_OUT_OF_RANGE",
        2 => "CORRUPT_MESSAGE",
        3 => "UNKNOWN_TOPIC_OR_PARTITION",
        5 => "LEADER_NOT_AVAILABLE",
        6 => "NOT_LEADER_OR_FOLLOWER",
        7 => "REQUEST_TIMED_OUT",
        10 => "MESSAGE_TOO_LARGE",
        15 => "COORDINATOR_NOT_AVAILABLE",
        16 => "NOT_COORDINATOR",
        19 => "NOT_ENOUGH_REPLICAS",
        25 => "UNKNOWN_MEMBER_ID",
        27 => "REBALANCE_IN_PROGRESS",
        29 => "TOPIC_AUTHORIZATION_FAILED",
        35 => "UNSUPPORTED_VERSION",
        36 => "TOPIC_ALREADY_EXISTS",
        58 => "SASL_AUTHENTICATION_FAILED",
        74 => "FENCED_LEADER_EPOCH",
        100 => "UNKNOWN_TOPIC_ID",
        _ => return Str::Owned(code.to_string()),
    };
    Str::Borrowed(n)
}

fn frame_len(h: &[u8]) -> Frame {
    if h.len() < 4 {
        return Frame::Need(4);
    }
    let n = i32::from_be_bytes([h[0], h[1], h[2], h[3]]);
    if n < 4 || n as u64 > MAX_MESSAGE {
        return Frame::Bad;
    }
    Frame::Len(4 + n as u64)
}

impl KafkaParser {
    pub fn new() -> Self {
        KafkaParser {
            framers: [Framer::new(KEEP), Framer::new(KEEP)],
            pending: VecDeque::new(),
            topic_ids: HashMap::new(),
            fetch_sessions: HashMap::new(),
            stats: ParserStats::default(),
        }
    }

    fn err(reason: &'static str) -> ParseError {
        ParseError::new(Protocol::Kafka, reason)
    }

    fn topic(&self, name: Option<Str>, id: Option<[u8; 16]>) -> Option<Str> {
        name.or_else(|| id.and_then(|id| self.topic_ids.get(&id).cloned()))
    }

    fn request(&mut self, m: Msg<'_>, out: &mut Vec<Operation>) -> Result<(), ParseError> {
        let mut c = Cur::new(&m.data[4..], false);
        let (Some(api_key), Some(version), Some(correlation_id)) = (c.i16(), c.i16(), c.i32())
        else {
            return Err(Self::err("short request header"));
        };
        if !(0..=200).contains(&api_key) || !(0..=40).contains(&version) {
            return Err(Self::err("bad api key or version"));
        }
        // client_id: present in header v1 and v2 (everything but ControlledShutdown v0)
        let header_ok = c.legacy_string().is_some();
        if header_ok && flexible(api_key, version) {
            c.flexible = true;
            c.tags();
        }
        let body = if header_ok {
            &c.b[c.i.min(c.b.len())..]
        } else {
            &[][..]
        };
        let (topic, topic_id, acks) = read_request(api_key, version, body);
        let fetch_session = (api_key == FETCH)
            .then(|| fetch_request_session(version, body))
            .flatten();
        if api_key == PRODUCE && acks == Some(0) {
            // no response will come
            let mut op = Operation::new(Protocol::Kafka, api_name(api_key), m.start_ns);
            op.end_ns = m.end_ns;
            op.target = self.topic(topic, topic_id);
            op.request_size = m.len;
            op.status = Status::Ok;
            out.push(op);
            return Ok(());
        }
        if self.pending.len() >= MAX_PENDING {
            self.pending.pop_front();
            self.stats.pending_dropped += 1;
        }
        self.pending.push_back(Pending {
            correlation_id,
            api_key,
            version,
            topic,
            topic_id,
            start_ns: m.start_ns,
            size: m.len,
            fetch_session,
        });
        Ok(())
    }

    /// Names an incremental fetch that names no topic after its session, and remembers the
    /// topic of a session's full fetch.
    fn fetch_session(&mut self, p: &Pending, body: &[u8], target: &mut Option<Str>) {
        let Some(requested) = p.fetch_session else {
            return;
        };
        if target.is_none() {
            *target = self.fetch_sessions.get(&requested).cloned();
            return;
        }
        // a full fetch (re)opens the session the response names; an incremental one keeps it
        let Some(id) = fetch_response_session(p.version, body).filter(|&id| id != 0) else {
            return;
        };
        let named = p.topic.is_some() || p.topic_id.is_some();
        if named && (requested == 0 || !self.fetch_sessions.contains_key(&id)) {
            if self.fetch_sessions.len() >= MAX_FETCH_SESSIONS {
                self.fetch_sessions.clear();
            }
            if let Some(t) = target.clone() {
                self.fetch_sessions.insert(id, t);
            }
        }
    }

    fn response(&mut self, m: Msg<'_>, out: &mut Vec<Operation>) -> Result<(), ParseError> {
        let mut c = Cur::new(&m.data[4..], false);
        let Some(correlation_id) = c.i32() else {
            return Err(Self::err("short response header"));
        };
        let Some(i) = self
            .pending
            .iter()
            .position(|p| p.correlation_id == correlation_id)
        else {
            if self.pending.is_empty() {
                return Ok(()); // joined mid-connection
            }
            return Err(Self::err("response to no request"));
        };
        // requests before it were answered out of order (or never): they are lost
        for _ in 0..i {
            self.pending.pop_front();
            self.stats.pending_dropped += 1;
        }
        let Some(p) = self.pending.pop_front() else {
            return Ok(());
        };
        if flexible(p.api_key, p.version) && p.api_key != API_VERSIONS {
            c.flexible = true;
            c.tags();
        }
        let body = &c.b[c.i.min(c.b.len())..];
        let mut learned = Vec::new();
        let (code, topic, topic_id) =
            read_response(&p, body, &mut |id, name| learned.push((id, name)));
        for (id, name) in learned {
            if self.topic_ids.len() >= MAX_TOPIC_IDS {
                self.topic_ids.clear();
            }
            self.topic_ids.insert(id, name);
        }
        let mut op = Operation::new(Protocol::Kafka, api_name(p.api_key), p.start_ns);
        op.end_ns = m.end_ns.max(p.start_ns);
        op.target = self
            .topic(p.topic.clone(), p.topic_id)
            .or_else(|| self.topic(topic, topic_id));
        if p.api_key == FETCH {
            self.fetch_session(&p, body, &mut op.target);
        }
        op.request_size = p.size;
        op.response_size = m.len;
        if code == 0 {
            op.status = Status::Ok;
        } else {
            op.status = Status::Error;
            op.error = Some(error_name(code));
        }
        out.push(op);
        Ok(())
    }
}

/// 3: a request header with a known api key/version, a printable client id, and a size that
/// matches the bytes.
fn detect_score(c: &[u8]) -> u8 {
    if c.len() < 14 {
        return 0;
    }
    let size = i32::from_be_bytes([c[0], c[1], c[2], c[3]]);
    let api_key = i16::from_be_bytes([c[4], c[5]]);
    let version = i16::from_be_bytes([c[6], c[7]]);
    let id_len = i16::from_be_bytes([c[12], c[13]]);
    if size < 10 || !(0..=74).contains(&api_key) || !(0..=20).contains(&version) || id_len < -1 {
        return 0;
    }
    let fits = size as usize + 4 == c.len() || (c.len() >= 256 && size as usize + 4 > c.len());
    if !fits {
        return 0;
    }
    let id = &c[14..c.len().min(14 + id_len.max(0) as usize)];
    if id_len > 0 && id.len() == id_len as usize && id.iter().all(|b| b.is_ascii_graphic()) {
        3
    } else {
        2
    }
}

impl ProtocolParser for KafkaParser {
    fn protocol(&self) -> Protocol {
        Protocol::Kafka
    }

    fn feed(&mut self, seg: &Segment<'_>, out: &mut Vec<Operation>) -> Result<(), ParseError> {
        if seg.total_len == 0 {
            return Ok(());
        }
        let i = seg.dir.index();
        let mut framer = std::mem::replace(&mut self.framers[i], Framer::new(0));
        let r = match seg.dir {
            Dir::ClientToServer => framer.feed(seg, 0, frame_len, |m| self.request(m, out)),
            Dir::ServerToClient => framer.feed(seg, 0, frame_len, |m| self.response(m, out)),
        };
        self.framers[i] = framer;
        self.stats.resyncs = self.framers[0].resyncs + self.framers[1].resyncs;
        match r {
            Ok(()) => Ok(()),
            Err(FeedError::Bad) => Err(Self::err("bad message size")),
            Err(FeedError::Callback(e)) => Err(e),
        }
    }

    fn close(&mut self, end_ns: u64, out: &mut Vec<Operation>) {
        for p in std::mem::take(&mut self.pending) {
            let mut op = Operation::new(Protocol::Kafka, api_name(p.api_key), p.start_ns);
            op.end_ns = end_ns.max(p.start_ns);
            op.target = self.topic(p.topic.clone(), p.topic_id).or_else(|| {
                p.fetch_session
                    .and_then(|id| self.fetch_sessions.get(&id).cloned())
            });
            op.request_size = p.size;
            op.error = Some(ERROR_NO_RESPONSE.into());
            out.push(op);
        }
    }

    fn stats(&self) -> ParserStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut f = (body.len() as i32).to_be_bytes().to_vec();
        f.extend_from_slice(body);
        f
    }

    /// Fetch v11 request (classic encoding): session id/epoch and at most one topic.
    fn fetch_request(correlation: i32, session: i32, epoch: i32, topic: Option<&str>) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&FETCH.to_be_bytes());
        b.extend_from_slice(&11i16.to_be_bytes());
        b.extend_from_slice(&correlation.to_be_bytes());
        b.extend_from_slice(&2i16.to_be_bytes());
        b.extend_from_slice(b"kp");
        for v in [-1i32, 500, 1, 50 << 20] {
            b.extend_from_slice(&v.to_be_bytes()); // replica, max wait, min/max bytes
        }
        b.push(0); // isolation level
        b.extend_from_slice(&session.to_be_bytes());
        b.extend_from_slice(&epoch.to_be_bytes());
        match topic {
            Some(t) => {
                b.extend_from_slice(&1i32.to_be_bytes());
                b.extend_from_slice(&(t.len() as i16).to_be_bytes());
                b.extend_from_slice(t.as_bytes());
                b.extend_from_slice(&1i32.to_be_bytes());
                for v in [0i32, -1] {
                    b.extend_from_slice(&v.to_be_bytes()); // partition, leader epoch
                }
                b.extend_from_slice(&0i64.to_be_bytes()); // fetch offset
                b.extend_from_slice(&(-1i64).to_be_bytes()); // log start offset
                b.extend_from_slice(&(1i32 << 20).to_be_bytes());
            }
            None => b.extend_from_slice(&0i32.to_be_bytes()),
        }
        b.extend_from_slice(&0i32.to_be_bytes()); // forgotten topics
        b.extend_from_slice(&(-1i16).to_be_bytes()); // rack id
        frame(&b)
    }

    /// Fetch v11 response with no topic in it (nothing new in the session).
    fn fetch_response(correlation: i32, session: i32) -> Vec<u8> {
        let mut b = correlation.to_be_bytes().to_vec();
        b.extend_from_slice(&0i32.to_be_bytes()); // throttle
        b.extend_from_slice(&0i16.to_be_bytes());
        b.extend_from_slice(&session.to_be_bytes());
        b.extend_from_slice(&0i32.to_be_bytes()); // responses
        frame(&b)
    }

    fn feed(p: &mut KafkaParser, dir: Dir, data: &[u8], t: u64, out: &mut Vec<Operation>) {
        let seg = Segment {
            dir,
            data,
            total_len: data.len() as u64,
            start_ns: t,
            end_ns: t + 1,
        };
        p.feed(&seg, out).unwrap();
    }

    /// kafka-python against a broker with fetch sessions: after the full fetch that opens
    /// session 7, an idle incremental fetch names no topic in the request nor the response.
    #[test]
    fn incremental_fetch_without_topics_is_named_after_its_session() {
        let mut p = KafkaParser::new();
        let mut out = Vec::new();
        let (c2s, s2c) = (Dir::ClientToServer, Dir::ServerToClient);
        let steps = [
            (c2s, fetch_request(1, 0, 0, Some("orders"))),
            (s2c, fetch_response(1, 7)),
            (c2s, fetch_request(2, 7, 1, None)),
            (s2c, fetch_response(2, 7)),
            // a session the parser never saw opened stays unnamed
            (c2s, fetch_request(3, 9, 4, None)),
            (s2c, fetch_response(3, 9)),
            // unanswered when the connection closes: still named after its session
            (c2s, fetch_request(4, 7, 2, None)),
        ];
        for (i, (dir, data)) in steps.iter().enumerate() {
            feed(&mut p, *dir, data, 10 * i as u64 + 10, &mut out);
        }
        let got: Vec<_> = out
            .iter()
            .map(|o| (o.name.as_ref(), o.target.as_deref(), o.status))
            .collect();
        assert_eq!(
            got,
            [
                ("receive", Some("orders"), Status::Ok),
                ("receive", Some("orders"), Status::Ok),
                ("receive", None, Status::Ok),
            ]
        );
        p.close(100, &mut out);
        assert_eq!(out[3].target.as_deref(), Some("orders"));
        assert_eq!(out[3].error.as_deref(), Some(ERROR_NO_RESPONSE));
    }
}
