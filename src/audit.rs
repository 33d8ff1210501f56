//! The audit view of the event log: each event as one JSON object in the canonical protobuf JSON
//! mapping (bytes as base64, enums by name, 64-bit integers as strings), so any language with a
//! protobuf library can read an export against `proto/collective/events.proto`.

use collective_events::pb;

pub fn event_json(event: &pb::EventEnvelope) -> serde_json::Value {
    // pbjson's Serialize cannot fail for these types: every field maps to a JSON value.
    serde_json::to_value(event)
        .unwrap_or_else(|error| serde_json::json!({ "unrenderable": error.to_string() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_render_as_protobuf_json() {
        let event = pb::EventEnvelope {
            schema_version: 1,
            actor: "admin@alice.home.collective".into(),
            request_id: vec![1; 16],
            proposed_at_unix_ms: 1_795_305_600_000,
            log_index: 7,
            sequence: 0,
            event: Some(pb::event_envelope::Event::DirectoryCreated(
                pb::DirectoryCreated {
                    inode: 2,
                    parent: 1,
                    name: "media".into(),
                    path: "/media".into(),
                },
            )),
        };
        let json = event_json(&event);
        assert_eq!(json["actor"], "admin@alice.home.collective");
        assert_eq!(json["logIndex"], "7");
        assert_eq!(json["directoryCreated"]["path"], "/media");
        assert_eq!(json["requestId"], "AQEBAQEBAQEBAQEBAQEBAQ==");
    }
}
