//! A certificate, its private key and the intermediates to present, as PEM, on disk and off.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::{PeerIdentity, PkiError};

/// Mode of private key files: owner read/write only.
const KEY_FILE_MODE: u32 = 0o600;
/// Mode of certificate files: public material.
const CERT_FILE_MODE: u32 = 0o644;

/// A certificate with its key and the intermediates to present with it (never the root).
///
/// On disk, `write_to(dir, "coord-1")` makes `coord-1.crt`, `coord-1.key` (mode 0600) and
/// `coord-1.chain.crt` (the intermediates, concatenated; empty for a CA).
#[derive(Clone, PartialEq, Eq)]
pub struct CertBundle {
    pub cert_pem: String,
    pub key_pem: String,
    /// Intermediate certificates in PEM, nearest issuer first.
    pub chain: Vec<String>,
}

impl std::fmt::Debug for CertBundle {
    // Hand-written so the private key never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertBundle")
            .field("chain_len", &self.chain.len())
            .finish_non_exhaustive()
    }
}

impl CertBundle {
    /// Writes the three files into `dir` (which must exist) as one set: a crash leaves either
    /// the old set or the new one, never a new certificate beside an old key.
    ///
    /// The new set is first written whole under staging names (`<name>.next.*`, each file
    /// atomically and fsynced), then marked complete (`<name>.next.ready`), then renamed into
    /// place. [`CertBundle::read_from`] finishes a marked set a crash interrupted and discards an
    /// unmarked one.
    pub fn write_to(&self, dir: &Path, name: &str) -> Result<(), PkiError> {
        let paths = BundlePaths::new(dir, name)?;
        let staged = BundlePaths::new(dir, &format!("{name}{STAGED_SUFFIX}"))?;
        write_atomic(&staged.cert, self.cert_pem.as_bytes(), CERT_FILE_MODE)?;
        write_atomic(&staged.chain, self.chain.concat().as_bytes(), CERT_FILE_MODE)?;
        write_atomic(&staged.key, self.key_pem.as_bytes(), KEY_FILE_MODE)?;
        sync_dir(dir)?;
        write_atomic(&staged.ready_marker(), b"", CERT_FILE_MODE)?;
        sync_dir(dir)?;
        install_staged(dir, &staged, &paths)
    }

    /// Reads a bundle written by [`CertBundle::write_to`] and checks that every part parses.
    pub fn read_from(dir: &Path, name: &str) -> Result<CertBundle, PkiError> {
        let paths = BundlePaths::new(dir, name)?;
        recover_staged(dir, name, &paths)?;
        let read = |path: &Path| fs::read_to_string(path).map_err(|e| io_error(path, e));
        let chain_text = match fs::read_to_string(&paths.chain) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(io_error(&paths.chain, e)),
        };
        let chain = split_pem_certs(&chain_text)?;
        let bundle = CertBundle {
            cert_pem: read(&paths.cert)?,
            key_pem: read(&paths.key)?,
            chain,
        };
        bundle.cert_der()?;
        bundle.private_key_der()?;
        Ok(bundle)
    }

    /// The certificate in DER.
    pub fn cert_der(&self) -> Result<CertificateDer<'static>, PkiError> {
        CertificateDer::from_pem_slice(self.cert_pem.as_bytes()).map_err(|e| PkiError::Pem {
            what: "certificate",
            reason: e.to_string(),
        })
    }

    /// The intermediates in DER, nearest issuer first.
    pub fn chain_der(&self) -> Result<Vec<CertificateDer<'static>>, PkiError> {
        self.chain
            .iter()
            .map(|pem| {
                CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| PkiError::Pem {
                    what: "chain",
                    reason: e.to_string(),
                })
            })
            .collect()
    }

    /// The certificate followed by the intermediates: what a TLS endpoint presents.
    pub fn presented_chain_der(&self) -> Result<Vec<CertificateDer<'static>>, PkiError> {
        let mut all = vec![self.cert_der()?];
        all.extend(self.chain_der()?);
        Ok(all)
    }

    /// The private key in DER (PKCS#8).
    pub fn private_key_der(&self) -> Result<PrivateKeyDer<'static>, PkiError> {
        PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).map_err(|e| PkiError::Pem {
            what: "private key",
            reason: e.to_string(),
        })
    }

    /// The identity in the certificate's extensions (for leaves).
    pub fn identity(&self) -> Result<PeerIdentity, PkiError> {
        PeerIdentity::from_der(&self.cert_der()?)
    }
}

/// Suffix of the staging names a new set is written under before it replaces the old one.
const STAGED_SUFFIX: &str = ".next";

/// Renames a complete staged set over `paths`, then drops its marker.
fn install_staged(dir: &Path, staged: &BundlePaths, paths: &BundlePaths) -> Result<(), PkiError> {
    for (from, to) in [
        (&staged.cert, &paths.cert),
        (&staged.chain, &paths.chain),
        (&staged.key, &paths.key),
    ] {
        // After a crash some of them may be in place already.
        if from.exists() {
            fs::rename(from, to).map_err(|e| io_error(to, e))?;
        }
    }
    sync_dir(dir)?;
    let marker = staged.ready_marker();
    fs::remove_file(&marker).map_err(|e| io_error(&marker, e))?;
    sync_dir(dir)
}

/// What a crash in [`CertBundle::write_to`] left: a marked staged set is installed, an
/// unmarked one (interrupted before it was whole) removed.
fn recover_staged(dir: &Path, name: &str, paths: &BundlePaths) -> Result<(), PkiError> {
    let staged = BundlePaths::new(dir, &format!("{name}{STAGED_SUFFIX}"))?;
    if staged.ready_marker().exists() {
        return install_staged(dir, &staged, paths);
    }
    for partial in [&staged.cert, &staged.chain, &staged.key] {
        match fs::remove_file(partial) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(partial, e)),
        }
    }
    Ok(())
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), PkiError> {
    File::open(dir)
        .and_then(|dir_file| dir_file.sync_all())
        .map_err(|e| io_error(dir, e))
}

struct BundlePaths {
    cert: PathBuf,
    key: PathBuf,
    chain: PathBuf,
}

impl BundlePaths {
    fn new(dir: &Path, name: &str) -> Result<BundlePaths, PkiError> {
        let valid = !name.is_empty()
            && !name.starts_with('.')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid {
            return Err(PkiError::Io {
                path: dir.join(name),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "bundle name must be letters, digits, '-', '_' or '.', not starting with '.'",
                ),
            });
        }
        Ok(BundlePaths {
            cert: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
            chain: dir.join(format!("{name}.chain.crt")),
        })
    }

    /// The file whose presence says a staged set is whole.
    fn ready_marker(&self) -> PathBuf {
        self.cert.with_extension("ready")
    }
}

fn io_error(path: &Path, source: std::io::Error) -> PkiError {
    PkiError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Writes `bytes` to a temporary file created with `mode`, syncs it and renames it over `path`.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), PkiError> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| io_error(&tmp, e))?;
    // The umask may have narrowed or the mode; set it exactly.
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(|e| io_error(&tmp, e))?;
    file.write_all(bytes).map_err(|e| io_error(&tmp, e))?;
    file.sync_all().map_err(|e| io_error(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| io_error(path, e))
}

/// Splits concatenated PEM certificates into one PEM string each, checking every one parses.
fn split_pem_certs(text: &str) -> Result<Vec<String>, PkiError> {
    const END: &str = "-----END CERTIFICATE-----";
    let mut certs = Vec::new();
    let mut rest = text;
    while let Some(end) = rest.find(END) {
        let (block, tail) = rest.split_at(end + END.len());
        let block = format!("{}\n", block.trim());
        CertificateDer::from_pem_slice(block.as_bytes()).map_err(|e| PkiError::Pem {
            what: "chain",
            reason: e.to_string(),
        })?;
        certs.push(block);
        rest = tail;
    }
    if !rest.trim().is_empty() {
        return Err(PkiError::Pem {
            what: "chain",
            reason: "trailing text after last certificate".into(),
        });
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{Component, FederationCa};
    use std::time::Duration;

    fn two_leaves() -> (CertBundle, CertBundle) {
        let root = FederationCa::init("home.collective").expect("root");
        let member = root.sign_member("alice.home.collective").expect("member");
        let leaf = |name: &str| {
            member
                .issue_leaf(
                    &format!("{name}@alice.home.collective"),
                    Component::Node,
                    Duration::from_secs(3600),
                )
                .expect("leaf")
        };
        (leaf("old"), leaf("new"))
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_write_replaces_the_set_and_leaves_no_staging_files() {
        let dir = tempfile::tempdir().expect("dir");
        let (old, new) = two_leaves();
        old.write_to(dir.path(), "node").expect("write");
        new.write_to(dir.path(), "node").expect("rewrite");
        assert_eq!(CertBundle::read_from(dir.path(), "node").expect("read"), new);
        assert_eq!(files(dir.path()), ["node.chain.crt", "node.crt", "node.key"]);
    }

    #[test]
    fn a_crash_after_the_marker_finishes_the_new_set() {
        let dir = tempfile::tempdir().expect("dir");
        let (old, new) = two_leaves();
        old.write_to(dir.path(), "node").expect("write");
        // The new set staged and marked, then a crash after only the certificate was renamed:
        // on disk, the new certificate beside the old key.
        new.write_to(dir.path(), "node.next").expect("stage");
        fs::write(dir.path().join("node.next.ready"), b"").expect("mark");
        fs::rename(dir.path().join("node.next.crt"), dir.path().join("node.crt")).expect("rename");
        assert_eq!(CertBundle::read_from(dir.path(), "node").expect("read"), new);
        assert_eq!(files(dir.path()), ["node.chain.crt", "node.crt", "node.key"]);
    }

    #[test]
    fn a_crash_before_the_marker_keeps_the_old_set() {
        let dir = tempfile::tempdir().expect("dir");
        let (old, new) = two_leaves();
        old.write_to(dir.path(), "node").expect("write");
        // Staging interrupted: the certificate written, not the key, no marker.
        fs::write(dir.path().join("node.next.crt"), &new.cert_pem).expect("partial");
        assert_eq!(CertBundle::read_from(dir.path(), "node").expect("read"), old);
        assert_eq!(files(dir.path()), ["node.chain.crt", "node.crt", "node.key"]);
    }
}
