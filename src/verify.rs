//! `kube-log-exporter verify RUN_DIR`: check a run folder against its
//! manifest.json. Every listed file must exist, gunzip completely, hash to
//! the recorded sha256 and give back the recorded bytes and lines; every
//! other file under the folder is reported as extra. Files are streamed,
//! never held in memory whole.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Component, Path, PathBuf};

use flate2::read::MultiGzDecoder;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::manifest::{MANIFEST_FILE, Manifest};

/// What is wrong with one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Listed in the manifest, not on disk.
    Missing,
    /// On disk, not in the manifest.
    Extra,
    /// On disk, but not what the manifest recorded (the details say how).
    Corrupt(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Relative to the run folder.
    pub path: String,
    pub problem: Problem,
}

/// The result of checking one run folder.
#[derive(Debug, Default)]
pub struct Verification {
    /// Files the manifest lists.
    pub listed: u64,
    pub bytes: u64,
    pub lines: u64,
    pub findings: Vec<Finding>,
}

impl Verification {
    pub fn ok(&self) -> bool {
        self.findings.is_empty()
    }

    fn count(&self, want: fn(&Problem) -> bool) -> usize {
        self.findings.iter().filter(|f| want(&f.problem)).count()
    }

    pub fn render(&self, run_dir: &Path) -> String {
        let mut out = String::new();
        for f in &self.findings {
            let line = match &f.problem {
                Problem::Missing => {
                    format!("MISSING  {}: listed in the manifest, not on disk", f.path)
                }
                Problem::Extra => format!("EXTRA    {}: on disk, not in the manifest", f.path),
                Problem::Corrupt(details) => format!("CORRUPT  {}: {}", f.path, details.join("; ")),
            };
            out.push_str(&line);
            out.push('\n');
        }
        if self.ok() {
            out.push_str(&format!(
                "OK: all {} files of {} match manifest.json ({} bytes, {} lines uncompressed).\n",
                self.listed,
                run_dir.display(),
                self.bytes,
                self.lines
            ));
        } else {
            let missing = self.count(|p| matches!(p, Problem::Missing));
            let corrupt = self.count(|p| matches!(p, Problem::Corrupt(_)));
            let extra = self.count(|p| matches!(p, Problem::Extra));
            out.push_str(&format!(
                "FAIL: {} does not match its manifest.json ({missing} missing, {corrupt} corrupt, {extra} extra, of {} listed files); restore the files named above from a copy, or export those containers again while their logs are still on the nodes, and remove files that do not belong to the run.\n",
                run_dir.display(),
                self.listed
            ));
        }
        out
    }
}

/// Check `run_dir` against its manifest and print the findings; exit code
/// 0 when everything matches, 1 otherwise.
pub fn run(run_dir: &Path) -> Result<u8> {
    let verification = verify(run_dir)?;
    print!("{}", verification.render(run_dir));
    Ok(if verification.ok() { 0 } else { 1 })
}

pub fn verify(run_dir: &Path) -> Result<Verification> {
    let manifest_path = run_dir.join(MANIFEST_FILE);
    if !run_dir.is_dir() {
        return Err(Error::NoRunFolder {
            path: run_dir.to_path_buf(),
        });
    }
    let (manifest, missing_shards) = load_run_records(run_dir, &manifest_path)?;
    let mut verification = Verification::default();
    for shard in missing_shards {
        verification.findings.push(Finding {
            path: shard,
            problem: Problem::Missing,
        });
    }
    let mut listed: BTreeSet<PathBuf> = BTreeSet::new();
    for record in &manifest.files {
        let Some(rel) = record.path.as_deref() else {
            continue; // skipped or failed before a file was written
        };
        verification.listed += 1;
        let Some(rel_path) = safe_relative(rel) else {
            verification.findings.push(Finding {
                path: rel.to_string(),
                problem: Problem::Corrupt(vec![
                    "the manifest's path leaves the run folder; the manifest was altered".into(),
                ]),
            });
            continue;
        };
        listed.insert(rel_path.clone());
        let path = run_dir.join(&rel_path);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                verification.findings.push(Finding {
                    path: rel.to_string(),
                    problem: Problem::Missing,
                });
                continue;
            }
            Err(e) => {
                verification.findings.push(Finding {
                    path: rel.to_string(),
                    problem: Problem::Corrupt(vec![format!("cannot be read ({e})")]),
                });
                continue;
            }
        };
        let expected = Expected {
            sha256: record.sha256.as_deref(),
            bytes: record.bytes,
            bytes_compressed: record.bytes_compressed,
            lines: record.lines,
        };
        let details = check_file(file, &expected);
        verification.bytes += record.bytes;
        verification.lines += record.lines;
        if !details.is_empty() {
            verification.findings.push(Finding {
                path: rel.to_string(),
                problem: Problem::Corrupt(details),
            });
        }
    }

    let mut on_disk = Vec::new();
    walk(run_dir, Path::new(""), &mut on_disk).map_err(|e| Error::BadManifest {
        path: run_dir.to_path_buf(),
        message: format!("cannot list the run folder ({e})"),
    })?;
    for rel in on_disk {
        if listed.contains(&rel) || is_run_record(&rel) {
            continue;
        }
        verification.findings.push(Finding {
            path: rel.display().to_string(),
            problem: Problem::Extra,
        });
    }
    Ok(verification)
}

/// What the manifest says one file holds.
struct Expected<'a> {
    sha256: Option<&'a str>,
    bytes: u64,
    bytes_compressed: u64,
    lines: u64,
}

/// One streaming pass: hash the compressed bytes while gunzip counts what
/// they decode to. Returns what does not match (empty when all does).
fn check_file(file: File, expected: &Expected) -> Vec<String> {
    let mut details = Vec::new();
    let hashing = HashingReader::new(file);
    let mut decoder = MultiGzDecoder::new(BufReader::with_capacity(64 * 1024, hashing));
    let mut counter = Counter::default();
    let mut buf = vec![0u8; 64 * 1024];
    let decode_error = loop {
        match decoder.read(&mut buf) {
            Ok(0) => break None,
            Ok(n) => counter.feed(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => break Some(e),
        }
    };
    // Hash what the decoder did not read (all of it, when it stopped early).
    let mut rest = decoder.into_inner();
    let drain = io::copy(&mut rest, &mut io::sink());
    let hashing = rest.into_inner();
    if let Err(e) = drain {
        details.push(format!("cannot be read ({e})"));
        return details;
    }
    if let Some(e) = decode_error {
        details.push(format!("is not a whole gzip file ({e})"));
    }
    let (read, sha256) = hashing.finish();
    match expected.sha256 {
        Some(want) if !want.eq_ignore_ascii_case(&sha256) => {
            details.push(format!("sha256 is {sha256}, the manifest says {want}"));
        }
        Some(_) => {}
        None => details.push("the manifest records no sha256 for it".into()),
    }
    if read != expected.bytes_compressed {
        details.push(format!(
            "{read} bytes on disk, the manifest says {}",
            expected.bytes_compressed
        ));
    }
    // Counts of a stream that did not decode are meaningless.
    if details.iter().any(|d| d.starts_with("is not a whole gzip")) {
        return details;
    }
    if counter.bytes != expected.bytes {
        details.push(format!(
            "gunzips to {} bytes, the manifest says {}",
            counter.bytes, expected.bytes
        ));
    }
    let lines = counter.lines();
    if lines != expected.lines {
        details.push(format!(
            "holds {lines} lines, the manifest says {}",
            expected.lines
        ));
    }
    details
}

/// Counts lines as the exporter does: a last line without a newline is
/// still a line.
#[derive(Default)]
struct Counter {
    bytes: u64,
    newlines: u64,
    ends_with_newline: bool,
}

impl Counter {
    fn feed(&mut self, chunk: &[u8]) {
        if chunk.is_empty() {
            return;
        }
        self.bytes += chunk.len() as u64;
        self.newlines += memchr::memchr_iter(b'\n', chunk).count() as u64;
        self.ends_with_newline = chunk.last() == Some(&b'\n');
    }

    fn lines(&self) -> u64 {
        if self.bytes > 0 && !self.ends_with_newline {
            self.newlines + 1
        } else {
            self.newlines
        }
    }
}

struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    read: u64,
}

impl<R: Read> HashingReader<R> {
    fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            read: 0,
        }
    }

    fn finish(self) -> (u64, String) {
        (self.read, hex::encode(self.hasher.finalize()))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

/// A manifest path, if it stays inside the run folder.
fn safe_relative(path: &str) -> Option<PathBuf> {
    let path = Path::new(path);
    let mut clean = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => clean.push(part),
            Component::CurDir => {}
            _ => return None,
        }
    }
    (!clean.as_os_str().is_empty()).then_some(clean)
}

/// The run's record: `manifest.json`, or for a run written by N shards the
/// union of their `manifest-<i>-of-<n>.json`, plus the names of the shard
/// manifests that are missing (shards that have not finished).
fn load_run_records(run_dir: &Path, manifest_path: &Path) -> Result<(Manifest, Vec<String>)> {
    let bad = |path: &Path, e: io::Error| Error::BadManifest {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    match Manifest::read(run_dir) {
        Ok(manifest) => return Ok((manifest, Vec::new())),
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(bad(manifest_path, e)),
        Err(_) => {}
    }
    let mut shards: Vec<(u32, u32, PathBuf)> = std::fs::read_dir(run_dir)
        .map_err(|e| bad(run_dir, e))?
        .flatten()
        .filter_map(|entry| {
            let shard = Manifest::shard_of(entry.file_name().to_str()?)?;
            Some((shard.index, shard.count, entry.path()))
        })
        .collect();
    shards.sort();
    let Some(((_, count, first), rest)) = shards.split_first() else {
        return Err(Error::NoManifest {
            path: manifest_path.to_path_buf(),
        });
    };
    let count = *count;
    if rest.iter().any(|s| s.1 != count) {
        return Err(Error::BadManifest {
            path: run_dir.to_path_buf(),
            message: "its shard manifests disagree on the number of shards".into(),
        });
    }
    let mut combined = Manifest::read_file(first).map_err(|e| bad(first, e))?;
    for (_, _, path) in rest {
        let part = Manifest::read_file(path).map_err(|e| bad(path, e))?;
        combined.files.extend(part.files);
    }
    let missing = (0..count)
        .filter(|i| !shards.iter().any(|s| s.0 == *i))
        .map(|i| format!("manifest-{i}-of-{count}.json (shard {i} has not finished)"))
        .collect();
    Ok((combined, missing))
}

/// The run's own records at the top of the folder: manifest.json, and the
/// per-shard `manifest-<i>-of-<n>.json` of a sharded run.
fn is_run_record(rel: &Path) -> bool {
    rel.components().count() == 1 && rel.to_str().is_some_and(Manifest::is_record_name)
}

/// Every entry under `dir` that is not a folder (files, symlinks, sockets),
/// relative to the run folder. Symlinked folders are not followed.
fn walk(root: &Path, rel: &Path, found: &mut Vec<PathBuf>) -> io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(root.join(rel))?.collect::<io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let child = rel.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            walk(root, &child, found)?;
        } else {
            found.push(child);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_count_an_unterminated_last_line() {
        let mut c = Counter::default();
        c.feed(b"a\nb");
        assert_eq!(c.lines(), 2);
        c.feed(b"\n");
        assert_eq!(c.lines(), 2);
        assert_eq!(Counter::default().lines(), 0);
    }

    #[test]
    fn manifest_paths_stay_inside() {
        assert_eq!(
            safe_relative("a/b/c.log.gz"),
            Some(PathBuf::from("a/b/c.log.gz"))
        );
        assert_eq!(safe_relative("./a"), Some(PathBuf::from("a")));
        assert_eq!(safe_relative("../a"), None);
        assert_eq!(safe_relative("/etc/passwd"), None);
        assert_eq!(safe_relative("a/../../b"), None);
    }

    #[test]
    fn run_records_are_not_extra() {
        assert!(is_run_record(Path::new("manifest.json")));
        assert!(is_run_record(Path::new("manifest-2-of-8.json")));
        assert!(!is_run_record(Path::new("manifest-x-of-8.json")));
        assert!(!is_run_record(Path::new("ns/manifest.json")));
        assert!(!is_run_record(Path::new("notes.txt")));
    }
}
