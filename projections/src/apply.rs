//! `apply`: folds one event into the projections. No business logic lives here: `decide` has
//! already validated the event against the same state, so `apply` only records it. It is
//! deterministic: it reads nothing but the tables and the envelope (times come from
//! `proposed_at_unix_ms`), so replaying the log rebuilds byte-identical tables.

use collective_events::{ROOT_INODE, pb};
use prost::Message;

use crate::error::StoreError;
use crate::keys::{
    decode_u64, dirent_key, length_prefixed, node_chunk_key, placement_key, u64_key, version_key,
};
use crate::records::{
    CertificateRecord, ChunkRecord, CoordinatorRecord, DatastoreRecord, EntryRecord, GrantRecord,
    InviteRecord, NodeRecord, PlacementRecord, get_record,
};
use crate::tables::{META_EVENT_COUNT, META_MEMBER, META_NEXT_INODE, SCAN_PAGE_ROWS, Table, Tables};

/// Applies one event to the projections. An event kind this binary does not know (a newer
/// writer's oneof arm) changes nothing but the event count, as the schema rules require.
pub fn apply(tables: &mut impl Tables, envelope: &pb::EventEnvelope) -> Result<(), StoreError> {
    use pb::event_envelope::Event;
    let at = envelope.proposed_at_unix_ms;
    let count = read_u64(tables, META_EVENT_COUNT)?.unwrap_or(0);
    tables.put(Table::SmMeta, META_EVENT_COUNT.to_vec(), u64_key(count + 1));
    let Some(event) = &envelope.event else {
        return Ok(());
    };
    match event {
        Event::MemberInitialized(e) => member_initialized(tables, e, at)?,
        Event::CoordinatorAdded(e) => {
            let record = CoordinatorRecord {
                added: Some(e.clone()),
                added_at_unix_ms: at,
            };
            put(tables, Table::Coordinators, u64_key(e.raft_id), &record);
        }
        Event::CoordinatorRemoved(e) => tables.delete(Table::Coordinators, &u64_key(e.raft_id)),
        Event::NodeJoined(e) => {
            let record = NodeRecord {
                joined: Some(e.clone()),
                status: pb::NodeStatus::Up as i32,
                free_bytes: e.capacity_bytes,
                joined_at_unix_ms: at,
                status_changed_at_unix_ms: at,
            };
            put(tables, Table::Nodes, e.address.as_bytes().to_vec(), &record);
        }
        Event::NodeStatusChanged(e) => {
            let key = e.address.as_bytes();
            if let Some(mut record) = get_record::<NodeRecord>(tables, Table::Nodes, key)? {
                record.status = e.status;
                record.free_bytes = e.free_bytes;
                record.status_changed_at_unix_ms = at;
                put(tables, Table::Nodes, key.to_vec(), &record);
            }
        }
        // Replicas on the node are left alone: `decide` emits `ReplicaRemoved` for them when
        // it wants them gone.
        Event::NodeLeft(e) => tables.delete(Table::Nodes, e.address.as_bytes()),
        Event::DirectoryCreated(e) => {
            let record = EntryRecord {
                inode: e.inode,
                parent: e.parent,
                name: e.name.clone(),
                kind: pb::EntryKind::Directory as i32,
                version: 0,
                size: 0,
                chunks: Vec::new(),
                created_at_unix_ms: at,
                modified_at_unix_ms: at,
            };
            put(tables, Table::Entries, u64_key(e.inode), &record);
            tables.put(Table::Dirents, dirent_key(e.parent, &e.name), u64_key(e.inode));
            allocate_inode(tables, e.inode)?;
        }
        Event::FileVersionCommitted(e) => file_version_committed(tables, e, at)?,
        Event::FileVersionPruned(e) => drop_version(tables, &version_key(e.inode, e.version), at)?,
        Event::EntryRemoved(e) => {
            tables.delete(Table::Dirents, &dirent_key(e.parent, &e.name));
            remove_subtree(tables, e.inode, at)?;
        }
        Event::EntryMoved(e) => {
            let key = u64_key(e.inode);
            if let Some(mut record) = get_record::<EntryRecord>(tables, Table::Entries, &key)? {
                tables.delete(Table::Dirents, &dirent_key(e.from_parent, &e.from_name));
                record.parent = e.to_parent;
                record.name = e.to_name.clone();
                put(tables, Table::Entries, key, &record);
                tables.put(
                    Table::Dirents,
                    dirent_key(e.to_parent, &e.to_name),
                    u64_key(e.inode),
                );
            }
        }
        Event::ChunkPlaced(e) => {
            let record = PlacementRecord { size: e.size };
            put(tables, Table::Placement, placement_key(&e.hash, &e.node), &record);
            tables.put(Table::NodeChunks, node_chunk_key(&e.node, &e.hash), Vec::new());
            // A replica nobody references (placed ahead of its commit, or by hand) is tracked
            // too, so garbage collection finds it.
            if get_record::<ChunkRecord>(tables, Table::Chunks, &e.hash)?.is_none() {
                let record = ChunkRecord {
                    refs: 0,
                    replicas_wanted: 0,
                    size: e.size,
                    unreferenced_at_unix_ms: at,
                };
                put(tables, Table::Chunks, e.hash.clone(), &record);
            }
        }
        Event::ReplicaRemoved(e) => {
            tables.delete(Table::Placement, &placement_key(&e.hash, &e.node));
            tables.delete(Table::NodeChunks, &node_chunk_key(&e.node, &e.hash));
            // The last replica of an unreferenced chunk is gone: nothing is left to track.
            let unreferenced =
                get_record::<ChunkRecord>(tables, Table::Chunks, &e.hash)?.is_some_and(|c| c.refs == 0);
            if unreferenced
                && tables
                    .scan_prefix(Table::Placement, &length_prefixed(&e.hash), None, 1)?
                    .is_empty()
            {
                tables.delete(Table::Chunks, &e.hash);
            }
        }
        Event::DatastoreCreated(e) => {
            let record = DatastoreRecord {
                created: Some(e.clone()),
                created_by: envelope.actor.clone(),
                created_at_unix_ms: at,
            };
            put(tables, Table::Datastores, e.path.as_bytes().to_vec(), &record);
        }
        Event::GrantIssued(e) => {
            let record = GrantRecord {
                issued: Some(e.clone()),
                issued_by: envelope.actor.clone(),
                issued_at_unix_ms: at,
            };
            put(tables, Table::Grants, e.grant_id.clone(), &record);
        }
        Event::GrantRevoked(e) => tables.delete(Table::Grants, &e.grant_id),
        Event::InviteIssued(e) => {
            let record = InviteRecord {
                issued: Some(e.clone()),
                uses: 0,
                revoked: false,
                issued_by: envelope.actor.clone(),
                issued_at_unix_ms: at,
            };
            put(tables, Table::Invites, e.invite_id.clone(), &record);
            tables.put(Table::InviteCodes, e.code_hash.clone(), e.invite_id.clone());
        }
        Event::InviteRedeemed(e) => update_invite(tables, &e.invite_id, |r| r.uses = e.uses)?,
        Event::InviteRevoked(e) => update_invite(tables, &e.invite_id, |r| r.revoked = true)?,
        Event::CertificateIssued(e) => {
            let record = CertificateRecord {
                issued: Some(e.clone()),
                revoked: false,
                revoke_reason: String::new(),
                issued_at_unix_ms: at,
                revoked_at_unix_ms: 0,
            };
            put(tables, Table::Certificates, e.serial.clone(), &record);
        }
        Event::CertificateRevoked(e) => {
            let key = &e.serial;
            if let Some(mut r) = get_record::<CertificateRecord>(tables, Table::Certificates, key)? {
                r.revoked = true;
                r.revoke_reason = e.reason.clone();
                r.revoked_at_unix_ms = at;
                put(tables, Table::Certificates, key.clone(), &r);
            }
        }
    }
    Ok(())
}

fn put(tables: &mut impl Tables, table: Table, key: Vec<u8>, record: &impl Message) {
    tables.put(table, key, record.encode_to_vec());
}

fn read_u64(tables: &impl Tables, key: &[u8]) -> Result<Option<u64>, StoreError> {
    match tables.get(Table::SmMeta, key)? {
        Some(bytes) => decode_u64(Table::SmMeta, key, &bytes).map(Some),
        None => Ok(None),
    }
}

/// The first inode `decide` may allocate once the member exists (the root is taken).
pub const FIRST_FREE_INODE: u64 = ROOT_INODE + 1;

/// Keeps `next_inode` past every inode the log has used, so ids are never reused.
fn allocate_inode(tables: &mut impl Tables, inode: u64) -> Result<(), StoreError> {
    let next = read_u64(tables, META_NEXT_INODE)?.unwrap_or(FIRST_FREE_INODE);
    if inode >= next {
        tables.put(
            Table::SmMeta,
            META_NEXT_INODE.to_vec(),
            u64_key(inode.saturating_add(1)),
        );
    }
    Ok(())
}

fn member_initialized(
    tables: &mut impl Tables,
    e: &pb::MemberInitialized,
    at: i64,
) -> Result<(), StoreError> {
    tables.put(Table::SmMeta, META_MEMBER.to_vec(), e.encode_to_vec());
    let root_key = u64_key(ROOT_INODE);
    if tables.get(Table::Entries, &root_key)?.is_none() {
        let root = EntryRecord {
            inode: ROOT_INODE,
            parent: ROOT_INODE,
            name: String::new(),
            kind: pb::EntryKind::Directory as i32,
            version: 0,
            size: 0,
            chunks: Vec::new(),
            created_at_unix_ms: at,
            modified_at_unix_ms: at,
        };
        put(tables, Table::Entries, root_key, &root);
    }
    allocate_inode(tables, ROOT_INODE)
}

fn file_version_committed(
    tables: &mut impl Tables,
    e: &pb::FileVersionCommitted,
    at: i64,
) -> Result<(), StoreError> {
    let key = u64_key(e.inode);
    let existing = get_record::<EntryRecord>(tables, Table::Entries, &key)?;
    let created_at = match &existing {
        Some(old) => {
            if old.parent != e.parent || old.name != e.name {
                tables.delete(Table::Dirents, &dirent_key(old.parent, &old.name));
            }
            old.created_at_unix_ms
        }
        None => at,
    };
    let record = EntryRecord {
        inode: e.inode,
        parent: e.parent,
        name: e.name.clone(),
        kind: pb::EntryKind::File as i32,
        version: e.version,
        size: e.size,
        chunks: e.chunks.clone(),
        created_at_unix_ms: created_at,
        modified_at_unix_ms: at,
    };
    put(tables, Table::Entries, key, &record);
    tables.put(Table::Dirents, dirent_key(e.parent, &e.name), u64_key(e.inode));
    put(tables, Table::Versions, version_key(e.inode, e.version), e);
    for (hash, size) in distinct_chunks(&e.chunks) {
        let mut record = get_record::<ChunkRecord>(tables, Table::Chunks, hash)?.unwrap_or_default();
        record.refs += 1;
        record.replicas_wanted = record.replicas_wanted.max(e.replicas.max(1));
        record.size = size;
        record.unreferenced_at_unix_ms = 0;
        put(tables, Table::Chunks, hash.to_vec(), &record);
    }
    allocate_inode(tables, e.inode)
}

/// Deletes a kept version and releases its references to chunks.
fn drop_version(tables: &mut impl Tables, key: &[u8], at: i64) -> Result<(), StoreError> {
    let Some(version) = get_record::<pb::FileVersionCommitted>(tables, Table::Versions, key)? else {
        return Ok(());
    };
    tables.delete(Table::Versions, key);
    for (hash, _) in distinct_chunks(&version.chunks) {
        if let Some(mut record) = get_record::<ChunkRecord>(tables, Table::Chunks, hash)? {
            record.refs = record.refs.saturating_sub(1);
            if record.refs == 0 {
                record.replicas_wanted = 0;
                record.unreferenced_at_unix_ms = at;
            }
            put(tables, Table::Chunks, hash.to_vec(), &record);
        }
    }
    Ok(())
}

/// Each chunk of a version once, in order of first appearance.
fn distinct_chunks(chunks: &[pb::ChunkRef]) -> Vec<(&[u8], u64)> {
    let mut seen = std::collections::HashSet::new();
    chunks
        .iter()
        .filter(|c| seen.insert(c.hash.as_slice()))
        .map(|c| (c.hash.as_slice(), c.size))
        .collect()
}

/// Deletes an entry and everything below it: entries, dirents and kept versions. The walk keeps
/// an explicit stack (no recursion) and reads children a page at a time.
fn remove_subtree(tables: &mut impl Tables, inode: u64, at: i64) -> Result<(), StoreError> {
    let mut stack = vec![inode];
    while let Some(current) = stack.pop() {
        let prefix = u64_key(current);
        for table in [Table::Dirents, Table::Versions] {
            loop {
                let page = tables.scan_prefix(table, &prefix, None, SCAN_PAGE_ROWS)?;
                for (k, v) in &page {
                    if table == Table::Dirents {
                        stack.push(decode_u64(table, k, v)?);
                        tables.delete(table, k);
                    } else {
                        drop_version(tables, k, at)?;
                    }
                }
                // Rows just deleted are invisible to the next scan, so it restarts at the prefix.
                if page.len() < SCAN_PAGE_ROWS {
                    break;
                }
            }
        }
        tables.delete(Table::Entries, &prefix);
    }
    Ok(())
}

fn update_invite(
    tables: &mut impl Tables,
    invite_id: &[u8],
    change: impl FnOnce(&mut InviteRecord),
) -> Result<(), StoreError> {
    if let Some(mut record) = get_record::<InviteRecord>(tables, Table::Invites, invite_id)? {
        change(&mut record);
        put(tables, Table::Invites, invite_id.to_vec(), &record);
    }
    Ok(())
}
