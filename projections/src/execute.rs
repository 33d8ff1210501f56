//! `execute`: one Raft entry's command, applied exactly once. A request seen before is answered
//! from its dedupe record; otherwise `decide` runs over the current view, each event is wrapped
//! in an envelope, stored in the event log and applied, and the outcome is recorded.

use collective_events::{Rejection, RejectionCode, decide};
use collective_events::{SCHEMA_VERSION, pb};
use prost::Message;

use crate::apply::apply;
use crate::error::StoreError;
use crate::keys::event_key;
use crate::records::{OutcomeRecord, RejectionRecord, decode, get_record};
use crate::tables::{Table, Tables};
use crate::view::TablesView;

/// What became of a command: the events it produced, or why it was refused.
///
/// A retried request yields the outcome of its first execution unchanged, including its
/// `log_index`; a caller that compares it with the index it executed can tell a duplicate.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// Raft index of the entry whose command produced this outcome.
    pub log_index: u64,
    pub result: Result<Vec<pb::EventEnvelope>, Rejected>,
}

/// A domain rejection as stored: the code by its stable name and the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    pub code: String,
    pub message: String,
}

impl Rejected {
    /// Whether this rejection has the given code.
    pub fn is(&self, code: RejectionCode) -> bool {
        self.code == code.as_str()
    }
}

impl From<Rejection> for Rejected {
    fn from(r: Rejection) -> Self {
        Rejected {
            code: r.code.as_str().to_string(),
            message: r.message,
        }
    }
}

impl Outcome {
    /// The events, empty when the command was rejected.
    pub fn events(&self) -> &[pb::EventEnvelope] {
        match &self.result {
            Ok(events) => events,
            Err(_) => &[],
        }
    }

    pub fn rejection(&self) -> Option<&Rejected> {
        self.result.as_ref().err()
    }

    /// The durable form stored in the `dedupe` table.
    pub fn to_record(&self) -> OutcomeRecord {
        match &self.result {
            Ok(events) => OutcomeRecord {
                log_index: self.log_index,
                // Checked when the events were sequenced: at most u32::MAX of them.
                event_count: u32::try_from(events.len()).unwrap_or(u32::MAX),
                rejection: None,
            },
            Err(r) => OutcomeRecord {
                log_index: self.log_index,
                event_count: 0,
                rejection: Some(RejectionRecord {
                    code: r.code.clone(),
                    message: r.message.clone(),
                }),
            },
        }
    }

    /// Rebuilds an outcome from its record, reading its events back from the event log.
    pub fn from_record(
        tables: &(impl crate::tables::TableRead + ?Sized),
        record: &OutcomeRecord,
    ) -> Result<Outcome, StoreError> {
        if let Some(r) = &record.rejection {
            return Ok(Outcome {
                log_index: record.log_index,
                result: Err(Rejected {
                    code: r.code.clone(),
                    message: r.message.clone(),
                }),
            });
        }
        let mut events = Vec::with_capacity(record.event_count as usize);
        for sequence in 0..record.event_count {
            let key = event_key(record.log_index, sequence);
            let bytes = tables
                .get(Table::Events, &key)?
                .ok_or_else(|| StoreError::Corrupt {
                    table: Table::Events.name(),
                    key: key.clone(),
                    reason: "event named by a dedupe record is missing".to_string(),
                })?;
            events.push(decode(Table::Events, &key, &bytes)?);
        }
        Ok(Outcome {
            log_index: record.log_index,
            result: Ok(events),
        })
    }
}

/// Executes the command of the Raft entry at `log_index` against `tables`. `Err` means storage
/// failed and this replica must stop; a domain refusal is an `Ok` outcome with a rejection.
pub fn execute(
    tables: &mut impl Tables,
    log_index: u64,
    cmd: &pb::CommandEnvelope,
) -> Result<Outcome, StoreError> {
    // An empty request id cannot be told apart from another one; such requests are not
    // deduplicated (decide may refuse them).
    let dedupe = !cmd.request_id.is_empty();
    if dedupe && let Some(record) = get_record::<OutcomeRecord>(tables, Table::Dedupe, &cmd.request_id)? {
        return Outcome::from_record(tables, &record);
    }
    let decided = {
        let view = TablesView::new(&*tables);
        let decided = decide(&view, cmd);
        view.finish()?;
        decided
    };
    let outcome = match decided {
        Ok(events) => {
            let mut envelopes = Vec::with_capacity(events.len());
            for (position, event) in events.into_iter().enumerate() {
                let sequence =
                    u32::try_from(position).map_err(|_| StoreError::TooManyEvents { log_index })?;
                let envelope = pb::EventEnvelope {
                    schema_version: SCHEMA_VERSION,
                    actor: cmd.actor.clone(),
                    request_id: cmd.request_id.clone(),
                    proposed_at_unix_ms: cmd.proposed_at_unix_ms,
                    log_index,
                    sequence,
                    event: Some(event),
                };
                tables.put(
                    Table::Events,
                    event_key(log_index, sequence),
                    envelope.encode_to_vec(),
                );
                apply(tables, &envelope)?;
                envelopes.push(envelope);
            }
            Outcome {
                log_index,
                result: Ok(envelopes),
            }
        }
        Err(rejection) => Outcome {
            log_index,
            result: Err(Rejected::from(rejection)),
        },
    };
    if dedupe {
        tables.put(
            Table::Dedupe,
            cmd.request_id.clone(),
            outcome.to_record().encode_to_vec(),
        );
    }
    Ok(outcome)
}
