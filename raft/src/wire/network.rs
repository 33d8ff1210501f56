//! Protobuf encodings of the Raft RPCs, so the gRPC transport can ship them as opaque bytes.
//!
//! One `encode_*`/`decode_*` pair per message; decoding is checked (see [`WireError`]).

use openraft::raft::AppendEntriesRequest as RaftAppendReq;
use openraft::raft::AppendEntriesResponse as RaftAppendResp;
use openraft::raft::SnapshotResponse as RaftSnapshotResp;
use openraft::raft::StreamAppendError;
use openraft::raft::StreamAppendResult;
use openraft::raft::TransferLeaderError;
use openraft::raft::TransferLeaderRequest as RaftTransferReq;
use openraft::raft::TransferLeaderResponse as RaftTransferResp;
use openraft::raft::VoteRequest as RaftVoteReq;
use openraft::raft::VoteResponse as RaftVoteResp;
use prost::Message;

use super::Entry;
use super::LogId;
use super::SnapshotMeta;
use super::Vote;
use super::WireError;
use crate::types;
use crate::types::TypeConfig;

/// A leader's AppendEntries (also the heartbeat, with no entries).
#[derive(Clone, PartialEq, Message)]
pub struct AppendEntriesRequest {
    #[prost(message, optional, tag = "1")]
    pub vote: Option<Vote>,
    #[prost(message, optional, tag = "2")]
    pub prev_log_id: Option<LogId>,
    #[prost(message, repeated, tag = "3")]
    pub entries: Vec<Entry>,
    #[prost(message, optional, tag = "4")]
    pub leader_commit: Option<LogId>,
}

/// An optional log id, for a oneof arm whose value may be absent.
#[derive(Clone, PartialEq, Message)]
pub struct OptionalLogId {
    #[prost(message, optional, tag = "1")]
    pub log_id: Option<LogId>,
}

/// No value, for a oneof arm that is only a tag.
#[derive(Clone, PartialEq, Message)]
pub struct Empty {}

/// A follower's answer to AppendEntries.
#[derive(Clone, PartialEq, Message)]
pub struct AppendEntriesResponse {
    #[prost(oneof = "append_entries_response::Result", tags = "1, 2, 3, 4")]
    pub result: Option<append_entries_response::Result>,
}

/// Nested types of [`AppendEntriesResponse`].
pub mod append_entries_response {
    /// The outcome.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Result {
        #[prost(message, tag = "1")]
        Success(super::Empty),
        /// Only a prefix was accepted, up to this log id.
        #[prost(message, tag = "2")]
        PartialSuccess(super::OptionalLogId),
        #[prost(message, tag = "3")]
        Conflict(super::Empty),
        #[prost(message, tag = "4")]
        HigherVote(super::Vote),
    }
}

/// One answer of a pipelined `stream_append`.
#[derive(Clone, PartialEq, Message)]
pub struct StreamAppendResponse {
    #[prost(oneof = "stream_append_response::Result", tags = "1, 2, 3")]
    pub result: Option<stream_append_response::Result>,
}

/// Nested types of [`StreamAppendResponse`].
pub mod stream_append_response {
    /// The outcome.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Result {
        /// Accepted up to this log id (absent when the request carried no entries and no prev).
        #[prost(message, tag = "1")]
        Success(super::OptionalLogId),
        /// The follower's log conflicts at this log id.
        #[prost(message, tag = "2")]
        Conflict(super::LogId),
        #[prost(message, tag = "3")]
        HigherVote(super::Vote),
    }
}

/// A candidate's vote request (also used for pre-vote).
#[derive(Clone, PartialEq, Message)]
pub struct VoteRequest {
    #[prost(message, optional, tag = "1")]
    pub vote: Option<Vote>,
    #[prost(message, optional, tag = "2")]
    pub last_log_id: Option<LogId>,
    #[prost(bool, tag = "3")]
    pub leadership_transfer: bool,
}

/// A voter's answer.
#[derive(Clone, PartialEq, Message)]
pub struct VoteResponse {
    #[prost(message, optional, tag = "1")]
    pub vote: Option<Vote>,
    #[prost(bool, tag = "2")]
    pub vote_granted: bool,
    #[prost(message, optional, tag = "3")]
    pub last_log_id: Option<LogId>,
}

/// The first message of a full-snapshot transfer; the snapshot file's bytes follow it.
#[derive(Clone, PartialEq, Message)]
pub struct SnapshotRequestMeta {
    #[prost(message, optional, tag = "1")]
    pub vote: Option<Vote>,
    #[prost(message, optional, tag = "2")]
    pub meta: Option<SnapshotMeta>,
}

/// The receiver's answer to a full snapshot.
#[derive(Clone, PartialEq, Message)]
pub struct SnapshotResponse {
    #[prost(message, optional, tag = "1")]
    pub vote: Option<Vote>,
}

/// A leader asking `to_node_id` to take over.
#[derive(Clone, PartialEq, Message)]
pub struct TransferLeaderRequest {
    #[prost(message, optional, tag = "1")]
    pub from_leader: Option<Vote>,
    #[prost(uint64, tag = "2")]
    pub to_node_id: u64,
    #[prost(message, optional, tag = "3")]
    pub last_log_id: Option<LogId>,
}

/// The target's answer to a transfer-leader request.
#[derive(Clone, PartialEq, Message)]
pub struct TransferLeaderResponse {
    #[prost(oneof = "transfer_leader_response::Result", tags = "1, 2, 3")]
    pub result: Option<transfer_leader_response::Result>,
}

/// Nested types of [`TransferLeaderResponse`].
pub mod transfer_leader_response {
    /// The outcome.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Result {
        #[prost(message, tag = "1")]
        Accepted(super::Empty),
        #[prost(message, tag = "2")]
        VoteChanged(super::VoteChanged),
        #[prost(message, tag = "3")]
        LogNotFlushed(super::LogNotFlushed),
    }
}

/// Transfer rejected: the target saw another vote.
#[derive(Clone, PartialEq, Message)]
pub struct VoteChanged {
    #[prost(message, optional, tag = "1")]
    pub expected: Option<Vote>,
    #[prost(message, optional, tag = "2")]
    pub actual: Option<Vote>,
}

/// Transfer rejected: the target has not flushed the leader's log yet.
#[derive(Clone, PartialEq, Message)]
pub struct LogNotFlushed {
    #[prost(message, optional, tag = "1")]
    pub expected: Option<LogId>,
    #[prost(message, optional, tag = "2")]
    pub actual: Option<LogId>,
}

fn log_id(l: &Option<types::LogId>) -> Option<LogId> {
    l.as_ref().map(LogId::from)
}

fn required<T>(v: Option<T>, field: &'static str) -> Result<T, WireError> {
    v.ok_or(WireError::Missing(field))
}

/// Encodes an AppendEntries request.
pub fn encode_append_entries_request(r: &RaftAppendReq<TypeConfig>) -> Vec<u8> {
    AppendEntriesRequest {
        vote: Some(Vote::from(&r.vote)),
        prev_log_id: log_id(&r.prev_log_id),
        entries: r.entries.iter().map(Entry::from).collect(),
        leader_commit: log_id(&r.leader_commit),
    }
    .encode_to_vec()
}

/// Decodes an AppendEntries request.
pub fn decode_append_entries_request(bytes: &[u8]) -> Result<RaftAppendReq<TypeConfig>, WireError> {
    let r = AppendEntriesRequest::decode(bytes)?;
    Ok(RaftAppendReq {
        vote: required(r.vote, "append_entries_request.vote")?.into(),
        prev_log_id: r.prev_log_id.map(Into::into),
        entries: r
            .entries
            .into_iter()
            .map(Entry::into_raft)
            .collect::<Result<_, _>>()?,
        leader_commit: r.leader_commit.map(Into::into),
    })
}

/// Encodes an AppendEntries response.
pub fn encode_append_entries_response(r: &RaftAppendResp<TypeConfig>) -> Vec<u8> {
    use append_entries_response::Result as R;
    let result = match r {
        RaftAppendResp::Success => R::Success(Empty {}),
        RaftAppendResp::PartialSuccess(l) => R::PartialSuccess(OptionalLogId { log_id: log_id(l) }),
        RaftAppendResp::Conflict => R::Conflict(Empty {}),
        RaftAppendResp::HigherVote(v) => R::HigherVote(v.into()),
    };
    AppendEntriesResponse { result: Some(result) }.encode_to_vec()
}

/// Decodes an AppendEntries response.
pub fn decode_append_entries_response(bytes: &[u8]) -> Result<RaftAppendResp<TypeConfig>, WireError> {
    use append_entries_response::Result as R;
    let r = AppendEntriesResponse::decode(bytes)?;
    Ok(match required(r.result, "append_entries_response.result")? {
        R::Success(_) => RaftAppendResp::Success,
        R::PartialSuccess(l) => RaftAppendResp::PartialSuccess(l.log_id.map(Into::into)),
        R::Conflict(_) => RaftAppendResp::Conflict,
        R::HigherVote(v) => RaftAppendResp::HigherVote(v.into()),
    })
}

/// Encodes one result of `Raft::stream_append`.
pub fn encode_stream_append_result(r: &StreamAppendResult<TypeConfig>) -> Vec<u8> {
    use stream_append_response::Result as R;
    let result = match r {
        Ok(l) => R::Success(OptionalLogId { log_id: log_id(l) }),
        Err(StreamAppendError::Conflict(l)) => R::Conflict(l.into()),
        Err(StreamAppendError::HigherVote(v)) => R::HigherVote(v.into()),
    };
    StreamAppendResponse { result: Some(result) }.encode_to_vec()
}

/// Decodes one result of a pipelined append stream.
pub fn decode_stream_append_result(bytes: &[u8]) -> Result<StreamAppendResult<TypeConfig>, WireError> {
    use stream_append_response::Result as R;
    let r = StreamAppendResponse::decode(bytes)?;
    Ok(match required(r.result, "stream_append_response.result")? {
        R::Success(l) => Ok(l.log_id.map(Into::into)),
        R::Conflict(l) => Err(StreamAppendError::Conflict(l.into())),
        R::HigherVote(v) => Err(StreamAppendError::HigherVote(v.into())),
    })
}

/// Encodes a vote (or pre-vote) request.
pub fn encode_vote_request(r: &RaftVoteReq<TypeConfig>) -> Vec<u8> {
    VoteRequest {
        vote: Some(Vote::from(&r.vote)),
        last_log_id: log_id(&r.last_log_id),
        leadership_transfer: r.leadership_transfer,
    }
    .encode_to_vec()
}

/// Decodes a vote (or pre-vote) request.
pub fn decode_vote_request(bytes: &[u8]) -> Result<RaftVoteReq<TypeConfig>, WireError> {
    let r = VoteRequest::decode(bytes)?;
    let mut req = RaftVoteReq::new(
        required(r.vote, "vote_request.vote")?.into(),
        r.last_log_id.map(Into::into),
    );
    req.leadership_transfer = r.leadership_transfer;
    Ok(req)
}

/// Encodes a vote (or pre-vote) response.
pub fn encode_vote_response(r: &RaftVoteResp<TypeConfig>) -> Vec<u8> {
    VoteResponse {
        vote: Some(Vote::from(&r.vote)),
        vote_granted: r.vote_granted,
        last_log_id: log_id(&r.last_log_id),
    }
    .encode_to_vec()
}

/// Decodes a vote (or pre-vote) response.
pub fn decode_vote_response(bytes: &[u8]) -> Result<RaftVoteResp<TypeConfig>, WireError> {
    let r = VoteResponse::decode(bytes)?;
    let vote: types::Vote = required(r.vote, "vote_response.vote")?.into();
    Ok(RaftVoteResp::new(
        vote,
        r.last_log_id.map(Into::into),
        r.vote_granted,
    ))
}

/// Encodes the header of a full-snapshot transfer: the leader's vote and the snapshot's meta.
pub fn encode_snapshot_request_meta(vote: &types::Vote, meta: &types::SnapshotMeta) -> Vec<u8> {
    SnapshotRequestMeta {
        vote: Some(vote.into()),
        meta: Some(meta.into()),
    }
    .encode_to_vec()
}

/// Decodes the header of a full-snapshot transfer.
pub fn decode_snapshot_request_meta(bytes: &[u8]) -> Result<(types::Vote, types::SnapshotMeta), WireError> {
    let r = SnapshotRequestMeta::decode(bytes)?;
    let vote = required(r.vote, "snapshot_request_meta.vote")?.into();
    let meta = required(r.meta, "snapshot_request_meta.meta")?.try_into()?;
    Ok((vote, meta))
}

/// Encodes the answer to a full snapshot.
pub fn encode_snapshot_response(r: &RaftSnapshotResp<TypeConfig>) -> Vec<u8> {
    SnapshotResponse {
        vote: Some(Vote::from(&r.vote)),
    }
    .encode_to_vec()
}

/// Decodes the answer to a full snapshot.
pub fn decode_snapshot_response(bytes: &[u8]) -> Result<RaftSnapshotResp<TypeConfig>, WireError> {
    let r = SnapshotResponse::decode(bytes)?;
    Ok(RaftSnapshotResp::new(
        required(r.vote, "snapshot_response.vote")?.into(),
    ))
}

/// Encodes a transfer-leader request.
pub fn encode_transfer_leader_request(r: &RaftTransferReq<TypeConfig>) -> Vec<u8> {
    TransferLeaderRequest {
        from_leader: Some(r.from_leader().into()),
        to_node_id: *r.to_node_id(),
        last_log_id: r.last_log_id().map(LogId::from),
    }
    .encode_to_vec()
}

/// Decodes a transfer-leader request.
pub fn decode_transfer_leader_request(bytes: &[u8]) -> Result<RaftTransferReq<TypeConfig>, WireError> {
    let r = TransferLeaderRequest::decode(bytes)?;
    Ok(RaftTransferReq::new(
        required(r.from_leader, "transfer_leader_request.from_leader")?.into(),
        r.to_node_id,
        r.last_log_id.map(Into::into),
    ))
}

/// Encodes the answer to a transfer-leader request.
pub fn encode_transfer_leader_response(r: &RaftTransferResp<TypeConfig>) -> Vec<u8> {
    use transfer_leader_response::Result as R;
    let result = match r {
        Ok(()) => R::Accepted(Empty {}),
        Err(TransferLeaderError::VoteChanged { expected, actual }) => R::VoteChanged(VoteChanged {
            expected: Some(expected.into()),
            actual: Some(actual.into()),
        }),
        Err(TransferLeaderError::LogNotFlushed { expected, actual }) => R::LogNotFlushed(LogNotFlushed {
            expected: log_id(expected),
            actual: log_id(actual),
        }),
    };
    TransferLeaderResponse { result: Some(result) }.encode_to_vec()
}

/// Decodes the answer to a transfer-leader request.
pub fn decode_transfer_leader_response(bytes: &[u8]) -> Result<RaftTransferResp<TypeConfig>, WireError> {
    use transfer_leader_response::Result as R;
    let r = TransferLeaderResponse::decode(bytes)?;
    Ok(match required(r.result, "transfer_leader_response.result")? {
        R::Accepted(_) => Ok(()),
        R::VoteChanged(v) => Err(TransferLeaderError::VoteChanged {
            expected: required(v.expected, "vote_changed.expected")?.into(),
            actual: required(v.actual, "vote_changed.actual")?.into(),
        }),
        R::LogNotFlushed(l) => Err(TransferLeaderError::LogNotFlushed {
            expected: l.expected.map(Into::into),
            actual: l.actual.map(Into::into),
        }),
    })
}
