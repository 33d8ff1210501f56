//! State snapshots: every state-machine table (the event log included, raft's tables excluded)
//! as one framed, versioned, checksummed stream, and its atomic installation.
//!
//! Format version 1, all integers big-endian:
//!
//! ```text
//! magic "CLSTATE\0" | format version u32
//! { tag 0x01 | table stream id u8 | key length u32 | key | value length u32 | value }*
//! tag 0x00 | record count u64 | blake3 of every preceding byte (32 bytes)
//! ```
//!
//! Import verifies the whole stream before touching the database, then replaces every
//! state-machine table in ONE `WriteBatch` (range deletes, then puts): after a crash the store
//! holds either the old state or the new one. Rejected alternative: a RocksDB checkpoint
//! directory, which would also carry raft's own column families and tie the format to RocksDB.

use std::io::{BufReader, BufWriter, ErrorKind, Read, Write};

use rocksdb::{DB, ReadOptions, WriteBatch, WriteOptions};

use crate::dbread::cf;
use crate::error::{SnapshotError, StoreError};
use crate::store::Store;
use crate::tables::Table;

/// First bytes of every state stream.
pub const STATE_MAGIC: &[u8; 8] = b"CLSTATE\0";
/// The format this binary writes. Older versions stay readable; this is the first.
pub const STATE_FORMAT_VERSION: u32 = 1;
/// Longest key accepted in a stream (keys are ids, paths and names).
pub const KEY_BYTES_MAX: u32 = 64 * 1024;
/// Longest value accepted in a stream (a large file's chunk map is a few MiB at most).
pub const VALUE_BYTES_MAX: u32 = 64 * 1024 * 1024;

const TAG_END: u8 = 0;
const TAG_RECORD: u8 = 1;

/// What an export wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportSummary {
    /// Rows written, over all tables.
    pub records: u64,
    /// Stream length in bytes, checksum included.
    pub bytes: u64,
    /// The trailing blake3 checksum.
    pub checksum: [u8; 32],
}

/// The state machine at one instant (a RocksDB snapshot): what a Raft snapshot exports, read
/// while applies go on. Every apply commits in one write batch, `last_applied` included, so a
/// frozen state never shows half of one.
pub struct FrozenState<'a> {
    db: &'a DB,
    snapshot: rocksdb::Snapshot<'a>,
}

impl FrozenState<'_> {
    /// A value of the state machine's own meta table (`last_applied`, membership) as frozen.
    pub fn get_meta(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let mut ro = ReadOptions::default();
        ro.set_snapshot(&self.snapshot);
        Ok(self.db.get_cf_opt(cf(self.db, Table::SmMeta)?, key, &ro)?)
    }

    /// Writes every state-machine table, as frozen, to `out`.
    pub fn export(&self, out: &mut impl Write) -> Result<ExportSummary, StoreError> {
        let db = self.db;
        let mut w = Hashing {
            inner: BufWriter::new(out),
            hasher: blake3::Hasher::new(),
            bytes: 0,
        };
        w.write_all(STATE_MAGIC)?;
        w.write_all(&STATE_FORMAT_VERSION.to_be_bytes())?;
        let mut records: u64 = 0;
        for table in Table::ALL {
            let mut ro = ReadOptions::default();
            ro.set_snapshot(&self.snapshot);
            let mut it = db.raw_iterator_cf_opt(cf(db, table)?, ro);
            it.seek_to_first();
            while let (Some(key), Some(value)) = (it.key(), it.value()) {
                w.write_all(&[TAG_RECORD, table.stream_id()])?;
                write_field(&mut w, "key", key, KEY_BYTES_MAX)?;
                write_field(&mut w, "value", value, VALUE_BYTES_MAX)?;
                records += 1;
                it.next();
            }
            it.status()?;
        }
        w.write_all(&[TAG_END])?;
        w.write_all(&records.to_be_bytes())?;
        let checksum = *w.hasher.finalize().as_bytes();
        w.inner.write_all(&checksum)?;
        w.inner.flush()?;
        Ok(ExportSummary {
            records,
            bytes: w.bytes + checksum.len() as u64,
            checksum,
        })
    }
}

impl Store {
    /// The state machine as it is now, for reading while it moves on.
    pub fn freeze(&self) -> FrozenState<'_> {
        let db = self.db();
        FrozenState {
            db,
            snapshot: db.snapshot(),
        }
    }

    /// Writes every state-machine table, read from one RocksDB snapshot, to `out`.
    pub fn export_state(&self, out: &mut impl Write) -> Result<ExportSummary, StoreError> {
        self.freeze().export(out)
    }

    /// Replaces every state-machine table with the content of a stream from `export_state`.
    /// The stream is verified completely first; if it is refused, nothing is changed.
    pub fn import_state(&self, input: &mut impl Read) -> Result<(), StoreError> {
        let staged = read_stream(input)?;
        let db = self.db();
        let mut batch = WriteBatch::default();
        for table in Table::ALL {
            let handle = cf(db, table)?;
            let mut it = db.raw_iterator_cf(handle);
            it.seek_to_first();
            let first = it.key().map(<[u8]>::to_vec);
            it.seek_to_last();
            let last = it.key().map(<[u8]>::to_vec);
            it.status()?;
            if let (Some(first), Some(last)) = (first, last) {
                // delete_range excludes its end, so the last key goes separately.
                batch.delete_range_cf(handle, &first, &last);
                batch.delete_cf(handle, &last);
            }
        }
        // Later writes in a batch win over earlier range deletes of the same keys.
        for (table, key, value) in &staged {
            batch.put_cf(cf(db, *table)?, key, value);
        }
        // Installing a snapshot is rare and replaces everything: sync it.
        let mut opts = WriteOptions::default();
        opts.set_sync(true);
        db.write_opt(batch, &opts)?;
        Ok(())
    }
}

/// Rows staged from a verified stream: table, key, value.
type Staged = Vec<(Table, Vec<u8>, Vec<u8>)>;

/// Parses and verifies a whole stream into memory.
fn read_stream(input: &mut impl Read) -> Result<Staged, StoreError> {
    let mut r = Hashing {
        inner: BufReader::new(input),
        hasher: blake3::Hasher::new(),
        bytes: 0,
    };
    let mut magic = [0u8; 8];
    read_exact(&mut r, &mut magic)?;
    if &magic != STATE_MAGIC {
        return Err(SnapshotError::BadMagic.into());
    }
    let version = u32::from_be_bytes(read_array(&mut r)?);
    if version != STATE_FORMAT_VERSION {
        return Err(SnapshotError::UnsupportedVersion(version).into());
    }
    let mut staged = Vec::new();
    loop {
        let [tag] = read_array::<1>(&mut r)?;
        match tag {
            TAG_RECORD => {
                let [id] = read_array::<1>(&mut r)?;
                let table = Table::from_stream_id(id).ok_or(SnapshotError::UnknownTable(id))?;
                let key = read_field(&mut r, "key", KEY_BYTES_MAX)?;
                let value = read_field(&mut r, "value", VALUE_BYTES_MAX)?;
                staged.push((table, key, value));
            }
            TAG_END => break,
            other => return Err(SnapshotError::UnknownTag(other).into()),
        }
    }
    let expected = u64::from_be_bytes(read_array(&mut r)?);
    if expected != staged.len() as u64 {
        return Err(SnapshotError::CountMismatch {
            expected,
            actual: staged.len() as u64,
        }
        .into());
    }
    let computed = *r.hasher.finalize().as_bytes();
    let mut stored = [0u8; 32];
    r.inner.read_exact(&mut stored).map_err(truncated)?;
    if computed != stored {
        return Err(SnapshotError::ChecksumMismatch.into());
    }
    let mut extra = [0u8; 1];
    if r.inner.read(&mut extra)? != 0 {
        return Err(SnapshotError::TrailingBytes.into());
    }
    Ok(staged)
}

/// A reader or writer that hashes and counts every byte passing through it.
struct Hashing<T> {
    inner: T,
    hasher: blake3::Hasher,
    bytes: u64,
}

impl<W: Write> Hashing<W> {
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.hasher.update(buf);
        self.bytes += buf.len() as u64;
        self.inner.write_all(buf)
    }
}

fn write_field<W: Write>(
    w: &mut Hashing<W>,
    what: &'static str,
    bytes: &[u8],
    max: u32,
) -> Result<(), StoreError> {
    let len = u32::try_from(bytes.len())
        .ok()
        .filter(|len| *len <= max)
        .ok_or(SnapshotError::TooLong {
            what,
            len: bytes.len() as u64,
            max: u64::from(max),
        })?;
    w.write_all(&len.to_be_bytes())?;
    w.write_all(bytes)?;
    Ok(())
}

fn truncated(e: std::io::Error) -> StoreError {
    if e.kind() == ErrorKind::UnexpectedEof {
        SnapshotError::Truncated.into()
    } else {
        e.into()
    }
}

fn read_exact<R: Read>(r: &mut Hashing<R>, buf: &mut [u8]) -> Result<(), StoreError> {
    r.inner.read_exact(buf).map_err(truncated)?;
    r.hasher.update(buf);
    Ok(())
}

fn read_array<const N: usize>(r: &mut Hashing<impl Read>) -> Result<[u8; N], StoreError> {
    let mut buf = [0u8; N];
    read_exact(r, &mut buf)?;
    Ok(buf)
}

fn read_field(r: &mut Hashing<impl Read>, what: &'static str, max: u32) -> Result<Vec<u8>, StoreError> {
    let len = u32::from_be_bytes(read_array(r)?);
    if len > max {
        return Err(SnapshotError::TooLong {
            what,
            len: u64::from(len),
            max: u64::from(max),
        }
        .into());
    }
    let mut buf = vec![0u8; len as usize];
    read_exact(r, &mut buf)?;
    Ok(buf)
}
