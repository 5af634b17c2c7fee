//! Bytes -> gzip -> a temporary file -> fsync -> rename. A file only ever
//! appears under its final name complete; a run that dies leaves at most a
//! hidden `.*.tmp` file, never a truncated `.log.gz`. Files are 0600 and
//! folders 0700: logs hold secrets.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use std::sync::Mutex;

use flate2::{Compress, Compression, Crc, FlushCompress, Status};
use sha2::{Digest, Sha256};

/// What a committed file holds, and where it ended up.
#[derive(Debug, Clone)]
pub struct Written {
    pub bytes_compressed: u64,
    pub sha256: String,
    pub path: PathBuf,
}

/// A gzip file being written.
pub struct GzipFile {
    final_path: PathBuf,
    tmp_path: PathBuf,
    encoder: Option<PooledGzEncoder<HashingWriter<File>>>,
}

/// The compressed bytes reach the file (and sha256) in blocks of up to this
/// many: deflate alone would write a few KiB per input frame (measured: one
/// write syscall per ~6 KiB of gzip output). Held per open stream, so small.
const WRITE_BUFFER: usize = 64 * 1024;

impl GzipFile {
    pub fn create(final_path: PathBuf, level: u32) -> io::Result<GzipFile> {
        let tmp_path = temp_path_for(&final_path);
        let file = create_private_file(&tmp_path)?;
        let encoder = PooledGzEncoder::new(HashingWriter::new(file), level);
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
            Some(encoder) => encoder.write(bytes),
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
        let hashing = encoder.finish()?;
        let (file, mut written) = hashing.into_parts();
        file.sync_all()?;
        drop(file);
        written.path = free_name(&self.final_path);
        std::fs::rename(&self.tmp_path, &written.path)?;
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

/// `path` if nothing is there, else `<stem>.2.log.gz`, `<stem>.3.log.gz`...:
/// a file is never replaced. (A retried shard writes into its run's folder
/// again; what the first attempt wrote is already in the checkpoints.)
fn free_name(path: &Path) -> PathBuf {
    if !path.exists() {
        return path.to_path_buf();
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (stem, ext) = match name.strip_suffix(".log.gz") {
        Some(stem) => (stem.to_string(), ".log.gz"),
        None => (name.clone(), ""),
    };
    (2..)
        .map(|n| path.with_file_name(format!("{stem}.{n}{ext}")))
        .find(|candidate| !candidate.exists())
        .unwrap_or_else(|| path.to_path_buf())
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

/// Deflate states of finished files, reused by the next ones. zlib-rs keeps
/// a stream's whole state in one allocation of ~330 KiB: allocating it per
/// file either fragments the heap (RSS grows with the number of pods) or,
/// above the mmap threshold, costs an mmap, page faults and a munmap per
/// file. At most this many are kept (more than a run's usual concurrency).
static DEFLATE_POOL: Mutex<Vec<(u32, Compress)>> = Mutex::new(Vec::new());
const DEFLATE_POOL_MAX: usize = 64;

fn take_deflate(level: u32) -> Compress {
    let reused = {
        let mut pool = DEFLATE_POOL.lock().unwrap_or_else(|e| e.into_inner());
        pool.iter()
            .rposition(|(l, _)| *l == level)
            .map(|i| pool.swap_remove(i).1)
    };
    match reused {
        Some(mut c) => {
            c.reset();
            c
        }
        // Raw deflate: the gzip header and trailer are written here.
        None => Compress::new(Compression::new(level), false),
    }
}

fn give_back_deflate(level: u32, c: Compress) {
    let mut pool = DEFLATE_POOL.lock().unwrap_or_else(|e| e.into_inner());
    if pool.len() < DEFLATE_POOL_MAX {
        pool.push((level, c));
    }
}

/// gzip (RFC 1952) around a pooled raw deflate stream: what flate2's
/// GzEncoder writes (no name, no mtime), with a state that is reused.
/// Deflate writes straight into `buf`, which goes to `inner` when nearly
/// full: one buffer and one copy between zlib and the file.
struct PooledGzEncoder<W: Write> {
    inner: W,
    deflate: Option<Compress>,
    level: u32,
    crc: Crc,
    buf: Vec<u8>,
}

/// Deflate is only called with at least this much room in `buf`.
const MIN_ROOM: usize = 4 * 1024;

impl<W: Write> PooledGzEncoder<W> {
    fn new(inner: W, level: u32) -> Self {
        let mut buf = Vec::with_capacity(WRITE_BUFFER);
        // ID1 ID2 CM=deflate FLG=0 MTIME=0 XFL OS=unknown
        let xfl = match level {
            0 | 1 => 4,
            9 => 2,
            _ => 0,
        };
        buf.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 255]);
        PooledGzEncoder {
            inner,
            deflate: Some(take_deflate(level)),
            level,
            crc: Crc::new(),
            buf,
        }
    }

    fn write(&mut self, mut input: &[u8]) -> io::Result<()> {
        self.crc.update(input);
        while !input.is_empty() {
            let consumed = self.step(input, FlushCompress::None)?.0;
            input = &input[consumed..];
        }
        Ok(())
    }

    /// One deflate call, appending to `buf` (emptied into `inner` first if
    /// it has too little room left).
    fn step(&mut self, input: &[u8], flush: FlushCompress) -> io::Result<(usize, Status)> {
        if self.buf.capacity() - self.buf.len() < MIN_ROOM {
            self.drain()?;
        }
        let deflate = self
            .deflate
            .as_mut()
            .ok_or_else(|| io::Error::other("gzip stream already finished"))?;
        let (in_before, out_before) = (deflate.total_in(), self.buf.len());
        let status = deflate
            .compress_vec(input, &mut self.buf, flush)
            .map_err(io::Error::other)?;
        let consumed = (deflate.total_in() - in_before) as usize;
        if consumed == 0 && self.buf.len() == out_before && status == Status::BufError {
            return Err(io::Error::other("deflate made no progress"));
        }
        Ok((consumed, status))
    }

    fn drain(&mut self) -> io::Result<()> {
        self.inner.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }

    fn finish(mut self) -> io::Result<W> {
        while self.step(&[], FlushCompress::Finish)?.1 != Status::StreamEnd {}
        if self.buf.capacity() - self.buf.len() < 8 {
            self.drain()?;
        }
        self.buf.extend_from_slice(&self.crc.sum().to_le_bytes());
        self.buf.extend_from_slice(&self.crc.amount().to_le_bytes());
        self.drain()?;
        if let Some(deflate) = self.deflate.take() {
            give_back_deflate(self.level, deflate);
        }
        Ok(self.inner)
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
                path: PathBuf::new(),
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

    /// Deflate states are reused: every file is still a complete gzip of
    /// exactly its own bytes, at any level and size.
    #[test]
    fn reused_deflate_states_write_exact_gzip() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = fastrand::Rng::with_seed(9);
        for (i, (level, len)) in [
            (1, 3_000_000),
            (1, 0),
            (1, 70_000),
            (6, 500_000),
            (9, 10),
            (1, 1),
            // Stored blocks: the output outgrows the write buffer many times.
            (0, 1_000_000),
        ]
        .into_iter()
        .enumerate()
        {
            let data: Vec<u8> = (0..len)
                .map(|j| {
                    if rng.u8(0..4) == 0 {
                        rng.u8(..)
                    } else {
                        b"log line\n"[j % 9]
                    }
                })
                .collect();
            let path = dir.path().join(format!("{i}.log.gz"));
            let mut file = GzipFile::create(path.clone(), level).unwrap();
            for chunk in data.chunks(16 * 1024 + 7) {
                file.write(chunk).unwrap();
            }
            let written = file.commit().unwrap();
            let raw = std::fs::read(&path).unwrap();
            assert_eq!(raw.len() as u64, written.bytes_compressed);
            assert_eq!(hex::encode(Sha256::digest(&raw)), written.sha256);
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(&raw[..])
                .read_to_end(&mut back)
                .unwrap();
            assert!(back == data, "file {i}");
        }
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
