//! The RocksDB transaction overlay reads exactly like the in-memory tables: same gets, same
//! scans (prefix, paging, limit), whether a row is committed, pending, or deleted while pending.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on any error")]

mod common;

use collective_projections::{MemTables, Table, TableRead, Tables};

/// A small deterministic generator (xorshift), so a failure reproduces from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn key(&mut self) -> Vec<u8> {
        // Short keys over a tiny alphabet collide and share prefixes often.
        let len = 1 + self.below(4) as usize;
        (0..len).map(|_| b'a' + self.below(3) as u8).collect()
    }
}

#[test]
fn txn_overlay_scans_like_mem_tables() {
    for seed in 1..=8u64 {
        let (_dir, store) = common::open_store();
        let mut mem = MemTables::new();
        let mut rng = Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D));
        // Rounds of committed transactions, then one left pending.
        let mut txn = store.begin();
        for round in 0..4 {
            for _ in 0..60 {
                let table = if rng.below(2) == 0 {
                    Table::Dirents
                } else {
                    Table::Grants
                };
                let key = rng.key();
                if rng.below(3) == 0 {
                    txn.delete(table, &key);
                    mem.delete(table, &key);
                } else {
                    let value = rng.next().to_be_bytes().to_vec();
                    txn.put(table, key.clone(), value.clone());
                    mem.put(table, key, value);
                }
            }
            if round < 3 {
                txn.commit().expect("commit");
                txn = store.begin();
            }
        }
        for _ in 0..300 {
            let table = if rng.below(2) == 0 {
                Table::Dirents
            } else {
                Table::Grants
            };
            let prefix = if rng.below(4) == 0 { Vec::new() } else { rng.key() };
            let after = if rng.below(2) == 0 { Some(rng.key()) } else { None };
            let limit = rng.below(12) as usize;
            let expected = mem.scan_prefix(table, &prefix, after.as_deref(), limit).unwrap();
            let actual = txn.scan_prefix(table, &prefix, after.as_deref(), limit).unwrap();
            assert_eq!(actual, expected, "seed {seed} prefix {prefix:?} after {after:?}");
            let key = rng.key();
            assert_eq!(txn.get(table, &key).unwrap(), mem.get(table, &key).unwrap());
        }
        txn.commit().expect("commit");
        for table in [Table::Dirents, Table::Grants] {
            assert_eq!(store.rows(table).unwrap(), mem.rows(table), "seed {seed}");
        }
    }
}
