//! Deterministic container logs, served the way the kubelet serves them.
//!
//! A log is a pure function of its [`LogSpec`] and the line index, so tests can
//! compute the expected bytes with [`render_log`] without asking the server.
//!
//! Semantics follow `pkg/kubelet/kuberuntime/logs/logs.go` (`ReadLogs`,
//! `logWriter.write`, `NewLogOptions`):
//! - The log file is a sequence of CRI records. containerd splits a line longer
//!   than its `max_container_log_line_size` (16 KiB by default) into partial
//!   records; here every record of a line carries the line's timestamp.
//! - `timestamps=true` prefixes every *record* with the timestamp formatted as
//!   `RFC3339NanoFixed` (`2006-01-02T15:04:05.000000000Z07:00`: always nine
//!   fraction digits, zeros kept) and a space. So a 100 KiB line with timestamps
//!   has a timestamp before each of its 16 KiB pieces (no newline between them).
//! - `tailLines=N` starts N records before the end (0 => nothing); `sinceTime` /
//!   `sinceSeconds` then drop the records older than `since` (kept: ts >= since).
//!   Both given: the later of the two bounds wins. `sinceTime` reaches the
//!   kubelet in whole seconds (the apiserver re-formats it as RFC3339), so a
//!   fraction is floored.
//! - `limitBytes` caps the bytes written, cutting mid-line.

use std::io;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::cluster::LogSpec;

/// containerd's default `max_container_log_line_size`.
pub const CRI_MAX_LINE: usize = 16 * 1024;

/// Query parameters of the log endpoint that change the bytes served.
/// `Default` is the plain full log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogQuery {
    pub timestamps: bool,
    pub since_time: Option<DateTime<Utc>>,
    pub since_seconds: Option<i64>,
    pub tail_lines: Option<u64>,
    pub limit_bytes: Option<u64>,
}

/// Exactly the bytes the server sends for this query (sinceSeconds is
/// measured from now).
pub fn render_log(spec: &LogSpec, query: &LogQuery) -> Vec<u8> {
    let mut out = Vec::new();
    render_log_to(spec, query, &mut out).expect("writing to a Vec cannot fail");
    out
}

/// Streaming variant of [`render_log`] for big logs.
pub fn render_log_to(spec: &LogSpec, query: &LogQuery, out: &mut impl io::Write) -> io::Result<()> {
    let mut cursor = LogCursor::new(spec, query, Utc::now());
    let mut buf = Vec::with_capacity(CHUNK + CRI_MAX_LINE + 64);
    loop {
        buf.clear();
        let done = cursor.fill(&mut buf, CHUNK);
        out.write_all(&buf)?;
        if done {
            return Ok(());
        }
    }
}

/// Chunk size of the HTTP body.
pub const CHUNK: usize = 64 * 1024;

/// Timestamp of line `i` (lines of one timestamp group share it exactly).
pub fn line_time(spec: &LogSpec, i: u64) -> DateTime<Utc> {
    let n = line_nanos(spec, i);
    DateTime::from_timestamp(
        n.div_euclid(1_000_000_000) as i64,
        n.rem_euclid(1_000_000_000) as u32,
    )
    .expect("timestamp in range")
}

fn start_nanos(spec: &LogSpec) -> i128 {
    spec.start.timestamp() as i128 * 1_000_000_000 + spec.start.timestamp_subsec_nanos() as i128
}

fn line_nanos(spec: &LogSpec, i: u64) -> i128 {
    let group = i / spec.lines_per_timestamp.max(1);
    start_nanos(spec) + group as i128 * spec.step_nanos as i128
}

/// Formats like Go's `t.UTC().Format("2006-01-02T15:04:05.000000000Z07:00")`.
pub fn format_timestamp(t: DateTime<Utc>) -> String {
    let mut f = TsFormatter::default();
    let n = t.timestamp() as i128 * 1_000_000_000 + t.timestamp_subsec_nanos() as i128;
    let mut out = Vec::new();
    f.write(n, &mut out);
    String::from_utf8(out).unwrap()
}

/// splitmix64 finalizer: a cheap, good 64-bit hash.
pub(crate) fn mix64(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Caches the `YYYY-MM-DDTHH:MM:SS.` part per second.
#[derive(Default)]
struct TsFormatter {
    sec: Option<i64>,
    head: Vec<u8>,
}

impl TsFormatter {
    fn write(&mut self, nanos: i128, out: &mut Vec<u8>) {
        let sec = nanos.div_euclid(1_000_000_000) as i64;
        let frac = nanos.rem_euclid(1_000_000_000) as u32;
        if self.sec != Some(sec) {
            let t = DateTime::from_timestamp(sec, 0).expect("timestamp in range");
            self.head = t.format("%Y-%m-%dT%H:%M:%S.").to_string().into_bytes();
            self.sec = Some(sec);
        }
        out.extend_from_slice(&self.head);
        let mut digits = [b'0'; 9];
        let mut f = frac;
        for d in digits.iter_mut().rev() {
            *d = b'0' + (f % 10) as u8;
            f /= 10;
        }
        out.extend_from_slice(&digits);
        out.push(b'Z');
    }
}

const WORDS: &[&str] = &[
    "level=info",
    "level=debug",
    "level=warn",
    "msg=\"request served\"",
    "method=GET",
    "method=POST",
    "path=/api/v1/items",
    "path=/healthz",
    "status=200",
    "status=404",
    "status=503",
    "latency_ms=12",
    "latency_ms=250",
    "user=alice",
    "user=bob",
    "trace_id=4bf92f3577b34da6",
    "component=worker",
    "retry=3",
    "bytes=5120",
    "cache=hit",
    "cache=miss",
    "db=orders",
    "rows=42",
    "héllo",
    "ünïcode=✓",
    "\tindent",
    "key=\"value with spaces\"",
    "{\"json\":true}",
    "err=\"connection reset by peer\"",
];

/// Precomputed content for one spec: a pool of line bodies and, for long
/// lines, a pattern to cut from.
struct Pool {
    lines: Vec<Vec<u8>>,
    long: Vec<u8>,
}

const POOL_LINES: usize = 64;

impl Pool {
    fn new(spec: &LogSpec) -> Pool {
        let mut lines = Vec::with_capacity(POOL_LINES);
        // Keep every normal line (index prefix included) within one CRI record.
        let max_len = CRI_MAX_LINE - 24;
        for k in 0..POOL_LINES {
            let h = mix64(spec.seed ^ (k as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let base = spec.line_len;
            // Lengths spread over [base/2, base*3/2], average ~base.
            let len = if base == 0 {
                0
            } else {
                (base / 2 + (h % (base as u64 + 1)) as usize).clamp(1, max_len)
            };
            let mut body = words(h, len);
            if spec.invalid_utf8 && k % 3 == 0 && len >= 3 {
                body[len / 3] = 0xff;
                body[len / 2] = 0xfe;
                body[(2 * len) / 3] = 0x00;
            }
            lines.push(body);
        }
        let long = match spec.long_line_every {
            Some((n, l)) if n > 0 && l > 0 => {
                let mut p = words(mix64(spec.seed ^ 0x10ff), 64 * 1024);
                if spec.invalid_utf8 {
                    p[1000] = 0xff;
                    p[20_000] = 0x00;
                }
                p
            }
            _ => Vec::new(),
        };
        Pool { lines, long }
    }
}

/// `len` bytes of words separated by spaces, never containing '\n'.
fn words(mut h: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 40);
    while out.len() < len {
        h = mix64(h.wrapping_add(1));
        out.extend_from_slice(WORDS[(h % WORDS.len() as u64) as usize].as_bytes());
        out.push(b' ');
    }
    out.truncate(len);
    out
}

fn is_long(spec: &LogSpec, i: u64) -> Option<usize> {
    match spec.long_line_every {
        Some((n, l)) if n > 0 && i % n == n - 1 => Some(l),
        _ => None,
    }
}

/// Records a long line of `l` bytes occupies.
fn long_records(l: usize) -> u64 {
    (l.div_ceil(CRI_MAX_LINE) as u64).max(1)
}

/// Records before line `k`.
fn records_before(spec: &LogSpec, k: u64) -> u64 {
    match spec.long_line_every {
        Some((n, l)) if n > 0 => k + (k / n) * (long_records(l) - 1),
        _ => k,
    }
}

/// Writes the content of line `i` (no newline) into `out`.
fn line_content(spec: &LogSpec, pool: &Pool, i: u64, out: &mut Vec<u8>) {
    let start = out.len();
    write_u64(out, i);
    out.push(b' ');
    if let Some(l) = is_long(spec, i) {
        let mut off = (mix64(spec.seed ^ i) % 4096) as usize;
        while out.len() - start < l {
            let need = l - (out.len() - start);
            let take = need.min(pool.long.len() - off);
            out.extend_from_slice(&pool.long[off..off + take]);
            off = 0;
        }
        out.truncate(start + l);
    } else {
        let h = mix64(
            spec.seed
                .wrapping_add(i.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
        );
        out.extend_from_slice(&pool.lines[(h % POOL_LINES as u64) as usize]);
    }
}

fn write_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// A lazy reader over one log response: produces the body in chunks.
pub struct LogCursor {
    spec: LogSpec,
    pool: Arc<Pool>,
    line: u64,
    /// Record of `line` to start from (non-zero only when tailLines lands inside a long line).
    first_record: u64,
    end: u64,
    timestamps: bool,
    remaining: u64,
    ts: TsFormatter,
    scratch: Vec<u8>,
}

impl LogCursor {
    pub fn new(spec: &LogSpec, q: &LogQuery, now: DateTime<Utc>) -> LogCursor {
        let end = spec.lines;
        // tailLines: the first record to send.
        let (mut line, mut first_record) = (0u64, 0u64);
        if let Some(t) = q.tail_lines {
            let total = records_before(spec, end);
            let s = total - t.min(total);
            // Largest k with records_before(k) <= s.
            let (mut lo, mut hi) = (0u64, end);
            while lo < hi {
                let mid = lo + (hi - lo).div_ceil(2);
                if records_before(spec, mid) <= s {
                    lo = mid;
                } else {
                    hi = mid - 1;
                }
            }
            line = lo;
            first_record = s - records_before(spec, lo);
            if line >= end {
                first_record = 0;
            }
        }
        // sinceSeconds / sinceTime: the later bound wins (NewLogOptions).
        let mut since: Option<i128> = None;
        if let Some(s) = q.since_seconds {
            let n = now.timestamp() as i128 * 1_000_000_000 + now.timestamp_subsec_nanos() as i128;
            since = Some(n - s as i128 * 1_000_000_000);
        }
        if let Some(t) = q.since_time {
            // The apiserver forwards sinceTime to the kubelet formatted with
            // time.RFC3339 (LogLocation), which drops any fraction: floor it.
            let n = t.timestamp() as i128 * 1_000_000_000;
            if since.is_none_or(|s| n > s) {
                since = Some(n);
            }
        }
        if let Some(since) = since {
            let first = first_line_at_or_after(spec, since);
            if first > line {
                line = first;
                first_record = 0;
            }
        }
        LogCursor {
            spec: spec.clone(),
            pool: Arc::new(Pool::new(spec)),
            line,
            first_record,
            end,
            timestamps: q.timestamps,
            remaining: q.limit_bytes.unwrap_or(u64::MAX),
            ts: TsFormatter::default(),
            scratch: Vec::new(),
        }
    }

    /// Appends up to about `target` bytes to `out`; returns true when the
    /// response is complete (then `out` holds the last bytes, possibly none).
    pub fn fill(&mut self, out: &mut Vec<u8>, target: usize) -> bool {
        let begin = out.len();
        while self.line < self.end && self.remaining > 0 && out.len() - begin < target {
            let before = out.len();
            let i = self.line;
            if is_long(&self.spec, i).is_some() {
                self.scratch.clear();
                line_content(&self.spec, &self.pool, i, &mut self.scratch);
                let n_rec = self.scratch.len().div_ceil(CRI_MAX_LINE).max(1);
                for r in self.first_record as usize..n_rec {
                    if self.timestamps {
                        self.ts.write(line_nanos(&self.spec, i), out);
                        out.push(b' ');
                    }
                    let a = r * CRI_MAX_LINE;
                    let b = ((r + 1) * CRI_MAX_LINE).min(self.scratch.len());
                    out.extend_from_slice(&self.scratch[a..b]);
                }
            } else {
                if self.timestamps {
                    self.ts.write(line_nanos(&self.spec, i), out);
                    out.push(b' ');
                }
                line_content(&self.spec, &self.pool, i, out);
            }
            out.push(b'\n');
            self.first_record = 0;
            self.line += 1;
            let written = (out.len() - before) as u64;
            if written >= self.remaining {
                out.truncate(before + self.remaining as usize);
                self.remaining = 0;
            } else {
                self.remaining -= written;
            }
        }
        self.line >= self.end || self.remaining == 0
    }
}

/// First line whose timestamp is >= `since` (nanos since the epoch).
fn first_line_at_or_after(spec: &LogSpec, since: i128) -> u64 {
    let start = start_nanos(spec);
    if since <= start {
        return 0;
    }
    if spec.step_nanos == 0 {
        return spec.lines;
    }
    let d = since - start;
    let groups = (d + spec.step_nanos as i128 - 1) / spec.step_nanos as i128;
    let line = groups.saturating_mul(spec.lines_per_timestamp.max(1) as i128);
    line.min(spec.lines as i128) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn spec(lines: u64) -> LogSpec {
        LogSpec {
            seed: 7,
            lines,
            line_len: 40,
            start: Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap(),
            step_nanos: 250_000_000,
            lines_per_timestamp: 1,
            invalid_utf8: false,
            long_line_every: None,
        }
    }

    fn lines_of(b: &[u8]) -> Vec<&[u8]> {
        b.split(|c| *c == b'\n').filter(|l| !l.is_empty()).collect()
    }

    #[test]
    fn timestamps_are_fixed_width_nine_digits() {
        let t = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(format_timestamp(t), "2026-01-02T03:04:05.000000000Z");
        let t2 = t + chrono::Duration::nanoseconds(120_000_000);
        assert_eq!(format_timestamp(t2), "2026-01-02T03:04:05.120000000Z");
        let t3 = t + chrono::Duration::nanoseconds(1);
        assert_eq!(format_timestamp(t3), "2026-01-02T03:04:05.000000001Z");
    }

    #[test]
    fn plain_log_has_lines_and_no_timestamps() {
        let out = render_log(&spec(10), &LogQuery::default());
        let lines = lines_of(&out);
        assert_eq!(lines.len(), 10);
        assert!(lines[3].starts_with(b"3 "));
        assert!(out.ends_with(b"\n"));
        // Deterministic.
        assert_eq!(out, render_log(&spec(10), &LogQuery::default()));
    }

    #[test]
    fn timestamps_prefix_each_line() {
        let q = LogQuery {
            timestamps: true,
            ..Default::default()
        };
        let out = render_log(&spec(3), &q);
        let lines = lines_of(&out);
        assert!(lines[0].starts_with(b"2026-01-02T03:04:05.000000000Z 0 "));
        assert!(lines[1].starts_with(b"2026-01-02T03:04:05.250000000Z 1 "));
        let plain = render_log(&spec(3), &LogQuery::default());
        assert_eq!(out.len(), plain.len() + 3 * 31);
    }

    #[test]
    fn since_time_keeps_lines_at_or_after() {
        let s = spec(20);
        // Line 8 is at 05 + 2.0s = 03:04:07 exactly.
        let q = LogQuery {
            since_time: Some(Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 7).unwrap()),
            ..Default::default()
        };
        let out = render_log(&s, &q);
        let lines = lines_of(&out);
        assert_eq!(lines.len(), 12);
        assert!(lines[0].starts_with(b"8 "));
        // Groups: several lines share one timestamp; all of the group is kept.
        let mut g = spec(20);
        g.lines_per_timestamp = 4;
        g.step_nanos = 1_000_000_000;
        let out = render_log(
            &g,
            &LogQuery {
                since_time: Some(Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 7).unwrap()),
                ..Default::default()
            },
        );
        assert!(lines_of(&out)[0].starts_with(b"8 "));
        assert_eq!(lines_of(&out).len(), 12);
        // Before the start: everything; after the end: nothing.
        let all = render_log(
            &s,
            &LogQuery {
                since_time: Some(Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap()),
                ..Default::default()
            },
        );
        assert_eq!(all, render_log(&s, &LogQuery::default()));
        let none = render_log(
            &s,
            &LogQuery {
                since_time: Some(Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap()),
                ..Default::default()
            },
        );
        assert!(none.is_empty());
    }

    #[test]
    fn since_time_fraction_is_floored() {
        let s = spec(20);
        // 03:04:07.9 floors to 03:04:07 => from line 8, like the real server.
        let t = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 7).unwrap()
            + chrono::Duration::milliseconds(900);
        let out = render_log(
            &s,
            &LogQuery {
                since_time: Some(t),
                ..Default::default()
            },
        );
        assert!(lines_of(&out)[0].starts_with(b"8 "));
    }

    #[test]
    fn with_bytes_is_close_to_the_size_asked() {
        for n in [10_000u64, 1 << 20, 50 << 20] {
            let mut c = Counter(0);
            render_log_to(&LogSpec::with_bytes(5, n), &LogQuery::default(), &mut c).unwrap();
            let ratio = c.0 as f64 / n as f64;
            assert!((0.95..1.05).contains(&ratio), "{n}: {}", c.0);
        }
    }

    #[test]
    fn tail_lines_then_since() {
        let s = spec(20);
        let out = render_log(
            &s,
            &LogQuery {
                tail_lines: Some(5),
                ..Default::default()
            },
        );
        let lines = lines_of(&out);
        assert_eq!(lines.len(), 5);
        assert!(lines[0].starts_with(b"15 "));
        assert!(
            render_log(
                &s,
                &LogQuery {
                    tail_lines: Some(0),
                    ..Default::default()
                }
            )
            .is_empty()
        );
        assert_eq!(
            render_log(
                &s,
                &LogQuery {
                    tail_lines: Some(1000),
                    ..Default::default()
                }
            ),
            render_log(&s, &LogQuery::default())
        );
        // tail 10 = lines 10..20, since line 12 => 12..20.
        let t = s.start + chrono::Duration::milliseconds(12 * 250);
        let out = render_log(
            &s,
            &LogQuery {
                tail_lines: Some(10),
                since_time: Some(t),
                ..Default::default()
            },
        );
        assert!(lines_of(&out)[0].starts_with(b"12 "));
        assert_eq!(lines_of(&out).len(), 8);
    }

    #[test]
    fn limit_bytes_cuts_mid_line() {
        let s = spec(20);
        let full = render_log(
            &s,
            &LogQuery {
                timestamps: true,
                ..Default::default()
            },
        );
        for n in [1u64, 30, 31, 77, full.len() as u64, full.len() as u64 + 10] {
            let out = render_log(
                &s,
                &LogQuery {
                    timestamps: true,
                    limit_bytes: Some(n),
                    ..Default::default()
                },
            );
            assert_eq!(&out[..], &full[..(n as usize).min(full.len())]);
        }
    }

    #[test]
    fn long_lines_are_cri_records_of_16k() {
        let mut s = spec(10);
        s.long_line_every = Some((5, 40_000));
        let plain = render_log(&s, &LogQuery::default());
        let lines = lines_of(&plain);
        assert_eq!(lines.len(), 10);
        assert_eq!(lines[4].len(), 40_000);
        assert_eq!(lines[9].len(), 40_000);
        // With timestamps, each 16 KiB record gets its own prefix.
        let ts = render_log(
            &s,
            &LogQuery {
                timestamps: true,
                ..Default::default()
            },
        );
        let l4 = lines_of(&ts)[4];
        assert_eq!(l4.len(), 40_000 + 3 * 31);
        assert_eq!(&l4[31 + CRI_MAX_LINE..31 + CRI_MAX_LINE + 30], &l4[..30]);
        // tailLines counts records: the last 2 records are the end of line 9.
        let t = render_log(
            &s,
            &LogQuery {
                tail_lines: Some(2),
                ..Default::default()
            },
        );
        assert_eq!(t.len(), 40_000 - CRI_MAX_LINE + 1);
        assert_eq!(
            &t[..],
            &lines[9][CRI_MAX_LINE..]
                .iter()
                .chain(b"\n")
                .copied()
                .collect::<Vec<u8>>()[..]
        );
        let t = render_log(
            &s,
            &LogQuery {
                tail_lines: Some(3),
                ..Default::default()
            },
        );
        assert_eq!(t.len(), 40_001);
        let t = render_log(
            &s,
            &LogQuery {
                tail_lines: Some(4),
                ..Default::default()
            },
        );
        assert_eq!(t.len(), 40_001 + lines[8].len() + 1);
    }

    #[test]
    fn invalid_utf8_is_sprinkled_without_newlines() {
        let mut s = spec(200);
        s.invalid_utf8 = true;
        let out = render_log(&s, &LogQuery::default());
        assert!(std::str::from_utf8(&out).is_err());
        assert!(out.contains(&0xff) && out.contains(&0x00));
        assert_eq!(lines_of(&out).len(), 200);
    }

    #[test]
    fn streaming_matches_and_is_fast_enough() {
        let s = LogSpec::with_bytes(3, 64 << 20);
        let q = LogQuery {
            timestamps: true,
            ..Default::default()
        };
        let mut counter = Counter(0);
        let t0 = std::time::Instant::now();
        render_log_to(&s, &q, &mut counter).unwrap();
        let secs = t0.elapsed().as_secs_f64();
        eprintln!("generator: {:.0} MB/s", counter.0 as f64 / secs / 1e6);
        assert!(counter.0 > 64 << 20);
        let small = LogSpec::with_bytes(3, 100_000);
        let mut v = Vec::new();
        render_log_to(&small, &q, &mut v).unwrap();
        assert_eq!(v, render_log(&small, &q));
    }

    struct Counter(usize);
    impl io::Write for Counter {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
}
