//! Bytes -> gzip -> a temporary file -> fsync -> rename. A file only ever
//! appears under its final name complete; a run that dies leaves at most a
//! hidden `.*.tmp` file, never a truncated `.log.gz`. Files are 0600 and
//! folders 0700: logs hold secrets.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

/// What a committed file holds.
#[derive(Debug, Clone)]
pub struct Written {
    pub bytes_compressed: u64,
    pub sha256: String,
}

/// A gzip file being written.
pub struct GzipFile {
    final_path: PathBuf,
    tmp_path: PathBuf,
    encoder: Option<GzEncoder<BufWriter<HashingWriter<File>>>>,
}

/// The compressed bytes reach the file (and sha256) in blocks this big: the
/// encoder alone would write a few KiB per input frame (measured: one write
/// syscall per ~6 KiB of gzip output).
const WRITE_BUFFER: usize = 128 * 1024;

impl GzipFile {
    pub fn create(final_path: PathBuf, level: u32) -> io::Result<GzipFile> {
        let tmp_path = temp_path_for(&final_path);
        let file = create_private_file(&tmp_path)?;
        let encoder = GzEncoder::new(
            BufWriter::with_capacity(WRITE_BUFFER, HashingWriter::new(file)),
            Compression::new(level),
        );
        Ok(GzipFile {
            final_path,
            tmp_path,
            encoder: Some(encoder),
        })
    }

    pub fn path(&self) -> &Path {
        &self.final_path
    }

    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        match &mut self.encoder {
            Some(encoder) => encoder.write_all(bytes),
            None => Err(io::Error::other("file already committed")),
        }
    }

    /// Finish the gzip stream, fsync and move the file to its final name.
    /// Blocking (fsync): call from a blocking thread.
    pub fn commit(mut self) -> io::Result<Written> {
        let encoder = self
            .encoder
            .take()
            .ok_or_else(|| io::Error::other("file already committed"))?;
        let hashing = encoder.finish()?.into_inner().map_err(|e| e.into_error())?;
        let (file, written) = hashing.into_parts();
        file.sync_all()?;
        drop(file);
        std::fs::rename(&self.tmp_path, &self.final_path)?;
        Ok(written)
    }
}

impl Drop for GzipFile {
    /// An uncommitted file is removed: nothing half-written survives.
    fn drop(&mut self) {
        if self.encoder.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp_path);
        }
    }
}

fn temp_path_for(final_path: &Path) -> PathBuf {
    let name = final_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    final_path.with_file_name(format!(".{name}.tmp"))
}

fn create_private_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

/// Create a folder (and its parents) readable by the owner only.
pub fn create_private_dir(path: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(path)
}

/// Make renames inside `dir` durable.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Write a small file (manifest, state) atomically: temp name, fsync, rename, fsync folder.
pub fn write_file_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = temp_path_for(path);
    let result = (|| {
        let mut file = create_private_file(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            fsync_dir(dir)?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// An exclusive lock on the output folder for the duration of a run: two
/// runs writing one `state.json` would undo each other's checkpoints.
pub struct OutputLock {
    _file: File,
}

impl OutputLock {
    /// Ok(None) when another process holds the lock.
    pub fn try_acquire(path: &Path) -> io::Result<Option<OutputLock>> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(OutputLock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }
}

/// Counts and hashes what goes to the file (the compressed bytes).
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> HashingWriter<W> {
    fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    fn into_parts(self) -> (W, Written) {
        let sha256 = hex::encode(self.hasher.finalize());
        (
            self.inner,
            Written {
                bytes_compressed: self.bytes,
                sha256,
            },
        )
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn committed_file_is_gzip_private_and_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log.gz");
        let mut file = GzipFile::create(path.clone(), 1).unwrap();
        file.write(b"hello\n").unwrap();
        assert!(!path.exists(), "final name appears only on commit");
        let written = file.commit().unwrap();
        let raw = std::fs::read(&path).unwrap();
        assert_eq!(raw.len() as u64, written.bytes_compressed);
        assert_eq!(hex::encode(Sha256::digest(&raw)), written.sha256);
        let mut text = String::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "hello\n");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }

    #[test]
    fn dropped_file_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = GzipFile::create(dir.path().join("c.log.gz"), 1).unwrap();
        file.write(b"half").unwrap();
        drop(file);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
