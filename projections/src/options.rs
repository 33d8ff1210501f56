//! RocksDB options: one set for the database, one per column family by access pattern.

use rocksdb::{BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBCompressionType, DBRecoveryMode, Options};

use crate::tables::{CF_RAFT_LOG, CF_RAFT_META, Table};

/// Block cache shared by all column families.
pub const BLOCK_CACHE_BYTES: usize = 64 * 1024 * 1024;
/// Bloom filter density: ~1% false positives, the usual RocksDB recommendation.
pub const BLOOM_BITS_PER_KEY: f64 = 10.0;
/// Share of a lookup column family's memtable given to its bloom filter.
pub const MEMTABLE_BLOOM_RATIO: f64 = 0.02;
/// Background flush and compaction threads; coordinators share small machines with nodes.
pub const BACKGROUND_JOBS_MAX: i32 = 2;

/// Options for the database as a whole.
pub fn db_options() -> Options {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    opts.set_max_background_jobs(BACKGROUND_JOBS_MAX);
    // PointInTime (RocksDB's default, set explicitly because correctness depends on it): after a
    // crash, recovery replays the WAL up to the first damaged record and stops, so what survives
    // is always a prefix of the write history. All column families share one WAL, so a synced
    // raft append also makes durable every earlier unsynced state-machine batch, and a recovered
    // state machine can never be ahead of, or have a hole behind, what Raft saw persisted.
    // AbsoluteConsistency would refuse to open after a torn final write (a normal crash), and
    // SkipAnyCorruptedRecord could keep a later batch while dropping an earlier one.
    opts.set_wal_recovery_mode(DBRecoveryMode::PointInTime);
    opts
}

/// How a column family is read, which decides its options.
#[derive(Clone, Copy)]
enum Access {
    /// Mostly point lookups, often of absent keys (dedupe, invite codes): whole-key bloom filter.
    Lookup,
    /// Mostly prefix scans in key order (versions, node_chunks): no bloom filter.
    Scan,
    /// Append-only and read back in order, rarely (events, raft log): dense compression.
    Log,
}

fn access(table: Table) -> Access {
    match table {
        Table::Events => Access::Log,
        Table::Versions | Table::NodeChunks => Access::Scan,
        // dirents and placement are also scanned by prefix, but their hot path is the point
        // lookup (path resolution, replica_exists), which the whole-key filter speeds up.
        _ => Access::Lookup,
    }
}

fn cf_options(access: Access, cache: &Cache) -> Options {
    let mut block = BlockBasedOptions::default();
    block.set_block_cache(cache);
    block.set_cache_index_and_filter_blocks(true);
    let mut opts = Options::default();
    match access {
        Access::Lookup => {
            block.set_bloom_filter(BLOOM_BITS_PER_KEY, false);
            block.set_whole_key_filtering(true);
            // The same for the memtable, where recent keys live: a lookup of an absent key
            // skips the skiplist search (which profiles of commit load showed as the largest
            // single cost in a coordinator's own code).
            opts.set_memtable_prefix_bloom_ratio(MEMTABLE_BLOOM_RATIO);
            opts.set_memtable_whole_key_filtering(true);
            opts.set_compression_type(DBCompressionType::Lz4);
            opts.set_bottommost_compression_type(DBCompressionType::Zstd);
        }
        Access::Scan => {
            opts.set_compression_type(DBCompressionType::Lz4);
            opts.set_bottommost_compression_type(DBCompressionType::Zstd);
        }
        Access::Log => {
            opts.set_compression_type(DBCompressionType::Zstd);
            opts.set_bottommost_compression_type(DBCompressionType::Zstd);
        }
    }
    opts.set_block_based_table_factory(&block);
    opts
}

/// Descriptors of every column family: raft's two, then the state-machine tables.
pub fn cf_descriptors() -> Vec<ColumnFamilyDescriptor> {
    let cache = Cache::new_lru_cache(BLOCK_CACHE_BYTES);
    let mut descriptors = vec![
        // The raft log is appended, read by index range and purged by range: like the event log,
        // but hot, so the cheaper lz4.
        ColumnFamilyDescriptor::new(CF_RAFT_LOG, {
            let mut o = cf_options(Access::Log, &cache);
            o.set_compression_type(DBCompressionType::Lz4);
            o
        }),
        ColumnFamilyDescriptor::new(CF_RAFT_META, cf_options(Access::Lookup, &cache)),
    ];
    for table in Table::ALL {
        descriptors.push(ColumnFamilyDescriptor::new(
            table.name(),
            cf_options(access(table), &cache),
        ));
    }
    descriptors
}
