//! A small ext4 file system of a test's own, on a loop device, for damage a real disk does: an
//! inode the file system can no longer read, or the whole disk gone. Needs root (mount),
//! e2fsprogs (mkfs.ext4, debugfs) and xfsprogs (xfs_io). Unmounted when dropped.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail, ensure};

/// The file system's block size, fixed at creation so inode offsets are known.
const BLOCK_BYTES: u64 = 4096;
/// Where an ext4 inode keeps its extent tree (`i_block`).
const INODE_BLOCK_MAP_OFFSET: u64 = 0x28;

pub struct Ext4Disk {
    image: PathBuf,
    mount: PathBuf,
    device: String,
}

fn run(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program} (is it installed? scripts/setup.sh installs it)"))?;
    ensure!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

impl Ext4Disk {
    /// A fresh file system of `bytes` (a sparse image in `dir`), mounted at `dir/<name>`.
    /// Metadata checksums on; errors leave it mounted read-write, as a disk in service would be.
    pub fn new(dir: &Path, name: &str, bytes: u64) -> anyhow::Result<Ext4Disk> {
        let image = dir.join(format!("{name}.img"));
        std::fs::File::create(&image)?.set_len(bytes)?;
        let image_arg = super::path(&image);
        run(
            "mkfs.ext4",
            &[
                "-q",
                "-F",
                "-b",
                &BLOCK_BYTES.to_string(),
                "-O",
                "metadata_csum",
                image_arg,
            ],
        )?;
        let mount = dir.join(name);
        std::fs::create_dir_all(&mount)?;
        let mut disk = Ext4Disk {
            image,
            mount,
            device: String::new(),
        };
        disk.mount()?;
        Ok(disk)
    }

    /// Mounts the image (again) on its mount point, on a loop device. `noatime`: a read must
    /// not dirty an inode, or the kernel would write it back over the damage `damage_inode`
    /// did under it.
    pub fn mount(&mut self) -> anyhow::Result<()> {
        run(
            "mount",
            &[
                "-o",
                "loop,errors=continue,noatime",
                super::path(&self.image),
                super::path(&self.mount),
            ],
        )?;
        let device = run("findmnt", &["-n", "-o", "SOURCE", super::path(&self.mount)])?
            .trim()
            .to_owned();
        ensure!(
            device.starts_with("/dev/loop"),
            "mounted from {device:?}, not a loop device"
        );
        self.device = device;
        Ok(())
    }

    /// Unmounts the file system, leaving the empty mount point, as a disk that was not mounted
    /// at boot leaves it.
    pub fn unmount(&self) -> anyhow::Result<()> {
        run("umount", &[super::path(&self.mount)])?;
        Ok(())
    }

    pub fn mount_point(&self) -> &Path {
        &self.mount
    }

    /// Overwrites the extent tree in `file`'s on-disk inode, under the mounted file system, and
    /// drops the kernel's caches: from then on the file system refuses the inode (its checksum
    /// fails), and `stat`, `open` and `rename` of `file` fail with `EBADMSG`. A process that
    /// has the file open at that moment (a node's scrubber) keeps its inode in the cache, so
    /// the caches are dropped again until the inode is gone from them (at most 5 s).
    pub fn damage_inode(&self, file: &Path) -> anyhow::Result<()> {
        let inode = std::fs::metadata(file)?.ino();
        run("sync", &[])?;
        let found = run("debugfs", &["-R", &format!("imap <{inode}>"), &self.device])?;
        // "Inode 13 is part of block group 0\n\tlocated at block 73, offset 0x0c00"
        let located = found
            .split("located at block ")
            .nth(1)
            .with_context(|| format!("debugfs imap said {found:?}"))?;
        let (block, offset) = located
            .trim()
            .split_once(", offset 0x")
            .with_context(|| format!("debugfs imap said {found:?}"))?;
        let block: u64 = block.parse()?;
        let offset = u64::from_str_radix(offset.trim(), 16)?;
        let at = block * BLOCK_BYTES + offset + INODE_BLOCK_MAP_OFFSET;
        {
            use std::io::{Seek, SeekFrom, Write};
            let mut device = std::fs::OpenOptions::new().write(true).open(&self.device)?;
            device.seek(SeekFrom::Start(at))?;
            device.write_all(&[0xff; 4])?;
            device.sync_all()?;
        }
        let started = std::time::Instant::now();
        loop {
            run("blockdev", &["--flushbufs", &self.device])?;
            std::fs::write("/proc/sys/vm/drop_caches", "3")?;
            match std::fs::metadata(file) {
                Err(e) if e.raw_os_error() == Some(nix::libc::EBADMSG) => return Ok(()),
                other if started.elapsed() > std::time::Duration::from_secs(5) => bail!(
                    "{} should now be unreadable, but stat gave {other:?}",
                    file.display()
                ),
                _ => std::thread::sleep(std::time::Duration::from_millis(200)),
            }
        }
    }
}

impl Ext4Disk {
    /// Shuts the file system down under whoever uses it, as a disk that died leaves it: from
    /// then on every read and write on it fails with `EIO` (ext4's shutdown ioctl, which
    /// `xfs_io` issues on ext4 too, without flushing the journal).
    pub fn fail(&self) -> anyhow::Result<()> {
        run("xfs_io", &["-x", "-c", "shutdown", super::path(&self.mount)])?;
        match std::fs::write(self.mount.join("probe-after-shutdown"), b"x") {
            Err(e) if e.raw_os_error() == Some(nix::libc::EIO) => Ok(()),
            other => bail!("the file system should now fail every write, but one gave {other:?}"),
        }
    }
}

impl Ext4Disk {
    /// Freezes the file system (`fsfreeze`) as a disk that stops answering leaves it: reads of
    /// what is cached go on, but every write, create and sync waits until it is thawed, which
    /// dropping the guard does.
    pub fn freeze(&self) -> anyhow::Result<Frozen> {
        run("fsfreeze", &["--freeze", super::path(&self.mount)])?;
        Ok(Frozen {
            mount: self.mount.clone(),
        })
    }
}

/// A frozen file system, thawed when dropped.
pub struct Frozen {
    mount: PathBuf,
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = Command::new("fsfreeze")
            .args(["--unfreeze", super::path(&self.mount)])
            .status();
    }
}

impl Drop for Ext4Disk {
    fn drop(&mut self) {
        // Lazily: a process of the test may still hold a file open while it is killed.
        let _ = Command::new("umount")
            .args(["-l", super::path(&self.mount)])
            .status();
    }
}
