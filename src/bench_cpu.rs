//! `collective bench cpu`: what the work every byte of the data path must have done costs on one
//! core of this machine, with the implementations the data path uses.
//!
//! - **blake3**, as a node verifies a chunk and a client names or checks one: 4 MiB at a time.
//! - **AES-128-GCM**, the record cipher TLS 1.3 settles on between our peers (ring, as rustls
//!   uses it): each 16 KiB record (TLS's largest) sealed and then opened again, the work of one
//!   hop of one byte: the sender seals, the receiver opens.
//! - **A ticket check**, what a node does for every chunk call: the first ticket of a
//!   coordinator (its certificate chain verified to the root, then the ticket's signature) and
//!   a later one (the chain kept, only the signature; see `ticket/verify.rs`).
//!
//! Times are the measuring thread's own CPU time, not wall time, so a busy machine slows the
//! run but barely moves the figures. `bench/io.sh` adds these to the kernel's cost of a disk
//! and a loopback TCP transfer to get the CPU that reading or writing a GiB cannot go below,
//! whatever the code around them does.

use std::time::Duration;

use anyhow::Context;
use ring::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use serde::Serialize;

use crate::chunk_hash::ChunkHash;
use crate::pki::{Component, FederationCa};
use crate::ticket::{TICKET_LIFETIME_DEFAULT, TicketGrant, TicketOp, TicketVerifier};

/// The buffer hashed at a time: one chunk of the default size.
const HASH_PIECE_BYTES: usize = crate::datapath::CHUNK_BYTES_DEFAULT;
/// The largest TLS record's plaintext.
const RECORD_BYTES: usize = 16 * 1024;
const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
/// Ticket checks timed for each of the three ticket figures.
const TICKET_CHECKS: u32 = 200;
/// Chunks a timed ticket names: a plan page's worth, as a read's tickets do.
const TICKET_HASHES: usize = 256;

#[derive(Debug, Clone, Serialize)]
pub struct CpuReport {
    /// Bytes pushed through each measurement.
    pub bytes: u64,
    pub blake3_cpu_secs_per_gib: f64,
    /// Sealing plus opening every byte once (one hop of TLS).
    pub aes128gcm_hop_cpu_secs_per_gib: f64,
    /// A node's check of the first ticket a coordinator signed: chain and signature.
    pub ticket_first_check_cpu_us: f64,
    /// A node's check of a later ticket of the same coordinator: the signature.
    pub ticket_check_cpu_us: f64,
    /// A node's check of a ticket it verified before (the next chunk of a plan page).
    pub ticket_kept_check_cpu_us: f64,
}

/// Measures over `bytes` (rounded up to whole buffers) per figure. Blocks for about a second
/// per GiB: call it from a blocking thread.
pub fn run(bytes: u64) -> anyhow::Result<CpuReport> {
    let mut buffer = vec![0u8; HASH_PIECE_BYTES];
    for (i, byte) in buffer.iter_mut().enumerate() {
        *byte = (i * 131 % 251) as u8;
    }
    let rounds = bytes.div_ceil(HASH_PIECE_BYTES as u64).max(1);
    let moved = rounds * HASH_PIECE_BYTES as u64;

    let mut fold = 0u8;
    let hashing = thread_cpu(|| {
        for _ in 0..rounds {
            fold ^= ChunkHash::of(&buffer).as_bytes()[0];
        }
    })?;
    // Keeps the hashing from being optimized away.
    std::hint::black_box(fold);

    let key = LessSafeKey::new(
        UnboundKey::new(&AES_128_GCM, &[7u8; 16]).map_err(|_| anyhow::anyhow!("AES-128-GCM key refused"))?,
    );
    let mut failed = false;
    let sealing = thread_cpu(|| {
        let mut sequence = 0u64;
        for _ in 0..rounds {
            for record in buffer.chunks_mut(RECORD_BYTES) {
                sequence += 1;
                let tag = key.seal_in_place_separate_tag(nonce(sequence), Aad::empty(), record);
                let opened = tag.and_then(|tag| {
                    key.open_in_place_separate_tag(nonce(sequence), Aad::empty(), tag, record, 0..)
                        .map(|_| ())
                });
                failed |= opened.is_err();
            }
        }
    })?;
    anyhow::ensure!(!failed, "AES-128-GCM failed to open what it sealed");

    let (first_check, check, kept_check) = ticket_checks()?;
    let per_gib = |spent: Duration| spent.as_secs_f64() / (moved as f64 / GIB);
    let per_check = |spent: Duration| spent.as_secs_f64() * 1e6 / f64::from(TICKET_CHECKS);
    Ok(CpuReport {
        bytes: moved,
        blake3_cpu_secs_per_gib: per_gib(hashing),
        aes128gcm_hop_cpu_secs_per_gib: per_gib(sealing),
        ticket_first_check_cpu_us: per_check(first_check),
        ticket_check_cpu_us: per_check(check),
        ticket_kept_check_cpu_us: per_check(kept_check),
    })
}

/// CPU time of [`TICKET_CHECKS`] checks of GET tickets as a coordinator issues them for a plan
/// page: first checks (each by a verifier that has seen no ticket), checks of new tickets under
/// a kept signer chain, and checks of one ticket seen before.
fn ticket_checks() -> anyhow::Result<(Duration, Duration, Duration)> {
    let root = FederationCa::init("bench.collective")?;
    let member = root.sign_member("m.bench.collective")?;
    let coordinator = member.issue_leaf(
        "coord-1@m.bench.collective",
        Component::Coordinator,
        Duration::from_secs(3600),
    )?;
    let (node, holder) = ("node-1@m.bench.collective", "client@m.bench.collective");
    let hashes: Vec<ChunkHash> = (0..TICKET_HASHES)
        .map(|i| ChunkHash::of(&i.to_le_bytes()))
        .collect();
    let asked = &hashes[TICKET_HASHES - 1..];
    let now = crate::node::unix_ms_now();
    let grant = TicketGrant {
        op: TicketOp::Get,
        hashes: &hashes,
        holder,
        node,
        issued_at_unix_ms: now,
        lifetime: TICKET_LIFETIME_DEFAULT,
    };
    let tickets = (0..=TICKET_CHECKS)
        .map(|_| crate::ticket::issue(&coordinator, &grant))
        .collect::<Result<Vec<_>, _>>()?;
    let verifiers = (0..=TICKET_CHECKS)
        .map(|_| TicketVerifier::new(root.cert_der(), node))
        .collect::<Result<Vec<_>, _>>()?;
    let mut failed = None;
    let mut check = |verifier: &TicketVerifier, ticket: &crate::ticket::Ticket| {
        if let Err(e) = verifier.verify(ticket, TicketOp::Get, holder, asked, now) {
            failed = Some(e);
        }
    };
    let first = thread_cpu(|| verifiers[1..].iter().for_each(|v| check(v, &tickets[0])))?;
    // verifiers[0] keeps the chain from tickets[0]; each later ticket is new to it.
    check(&verifiers[0], &tickets[0]);
    let later = thread_cpu(|| tickets[1..].iter().for_each(|t| check(&verifiers[0], t)))?;
    let kept = thread_cpu(|| (0..TICKET_CHECKS).for_each(|_| check(&verifiers[0], &tickets[1])))?;
    if let Some(e) = failed {
        anyhow::bail!("a ticket check failed: {e}");
    }
    Ok((first, later, kept))
}

fn nonce(sequence: u64) -> Nonce {
    let mut bytes = [0u8; 12];
    bytes[4..].copy_from_slice(&sequence.to_be_bytes());
    Nonce::assume_unique_for_key(bytes)
}

/// The CPU time this thread spent in `work`.
fn thread_cpu(work: impl FnOnce()) -> anyhow::Result<Duration> {
    let now = || -> anyhow::Result<Duration> {
        let spec = nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
            .context("reading the thread's CPU time")?;
        Ok(Duration::from(spec))
    };
    let start = now()?;
    work();
    Ok(now()?.saturating_sub(start))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a test fails loudly on any unexpected error")]
mod tests {
    #[test]
    fn a_small_run_reports_positive_costs() {
        let report = super::run(8 << 20).unwrap();
        assert_eq!(report.bytes, 8 << 20);
        assert!(report.blake3_cpu_secs_per_gib > 0.0);
        assert!(report.aes128gcm_hop_cpu_secs_per_gib > 0.0);
        assert!(report.ticket_check_cpu_us > 0.0);
        assert!(
            report.ticket_first_check_cpu_us > report.ticket_check_cpu_us,
            "a kept chain saves its two certificate signatures: {report:?}"
        );
        assert!(
            report.ticket_check_cpu_us > report.ticket_kept_check_cpu_us,
            "a kept ticket saves its signature: {report:?}"
        );
    }
}
