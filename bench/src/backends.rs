//! The measurement that chose the gzip backend and the default level: the
//! same logs through each deflate implementation at levels 1, 6 and 9, one
//! stream per log (1 MiB each), timed by this thread's CPU clock.
//!
//! One flate2 build has one backend, so the others are called directly:
//! zlib-rs through flate2 (the exporter's build), miniz_oxide (flate2's
//! default backend) through its own API, and the system's C zlib (and
//! zlib-ng, when installed) loaded with dlopen, so no C toolchain or cmake is
//! needed to build the benchmark.

use std::ffi::{CStr, c_char, c_int, c_uint, c_ulong, c_void};
use std::fmt::Write as _;
use std::io::Write as _;

use serde_json::{Value, json};

use crate::measure::thread_cpu;

const LEVELS: [u32; 3] = [1, 6, 9];

/// Compresses one log, returns the compressed size.
type Compressor<'a> = Box<dyn FnMut(&[u8], u32) -> usize + 'a>;

pub fn compare(corpus: &[Vec<u8>], report: &mut String) -> Value {
    // 32 MiB is enough for stable numbers and keeps level 9 short.
    let logs = &corpus[..corpus.len().min(32)];
    let total: usize = logs.iter().map(Vec::len).sum();

    let mut backends: Vec<(String, Compressor)> = vec![
        (
            "zlib-rs 0.6 (flate2, runtime_detection) [gzip]".into(),
            Box::new(|data: &[u8], level: u32| {
                let mut enc = flate2::write::GzEncoder::new(
                    Vec::with_capacity(data.len() / 2),
                    flate2::Compression::new(level),
                );
                enc.write_all(data).expect("gzip");
                enc.finish().expect("gzip").len()
            }),
        ),
        (
            "miniz_oxide 0.8 (flate2's default) [raw deflate, no CRC]".into(),
            Box::new(|data: &[u8], level: u32| {
                miniz_oxide::deflate::compress_to_vec(data, level as u8).len()
            }),
        ),
    ];
    let mut notes = Vec::new();
    for (name, lib, ng) in [
        ("C zlib (system libz.so.1) [gzip]", "libz.so.1", false),
        ("C zlib-ng (libz-ng.so.2) [gzip]", "libz-ng.so.2", true),
    ] {
        match CZlib::open(lib, ng) {
            Ok(z) => backends.push((
                format!("{name} {}", z.version),
                Box::new(move |data: &[u8], level: u32| z.gzip(data, level)),
            )),
            Err(e) => notes.push(format!("{name}: not measured here ({e})")),
        }
    }

    let mut rows = Vec::new();
    for (name, compress) in backends.iter_mut() {
        for level in LEVELS {
            // Warm up (page faults, CPU feature detection), then time.
            compress(&logs[0], level);
            let mut out = 0usize;
            let t = thread_cpu();
            for log in logs {
                out += compress(log, level);
            }
            let cpu = thread_cpu() - t;
            rows.push(json!({
                "backend": name,
                "level": level,
                "mb_per_s": total as f64 / 1e6 / cpu,
                "cpu_s_per_gib": cpu / (total as f64 / crate::GIB),
                "ratio": total as f64 / out as f64,
            }));
        }
    }

    let _ = writeln!(
        report,
        "\n## gzip backends on the same bytes ({:.0} MiB: {} scenario-A logs of 1 MiB with timestamps, one stream each; MB/s of input per CPU second)\n",
        total as f64 / crate::MIB,
        logs.len()
    );
    let _ = writeln!(report, "| backend | level | MB/s | CPU s/GiB | ratio |");
    let _ = writeln!(report, "|---|---:|---:|---:|---:|");
    for r in &rows {
        let _ = writeln!(
            report,
            "| {} | {} | {:.0} | {:.2} | {:.2}x |",
            r["backend"].as_str().unwrap_or(""),
            r["level"],
            r["mb_per_s"].as_f64().unwrap_or(0.0),
            r["cpu_s_per_gib"].as_f64().unwrap_or(0.0),
            r["ratio"].as_f64().unwrap_or(0.0),
        );
    }
    for n in &notes {
        let _ = writeln!(report, "\n- {n}");
    }
    json!({ "input_bytes": total, "rows": rows, "notes": notes })
}

/// zlib's z_stream (zlib-ng's zng_stream has the same layout on 64-bit Linux
/// up to `adler`, which is 32 bits there; the struct below is large enough for both).
#[repr(C)]
struct ZStream {
    next_in: *const u8,
    avail_in: c_uint,
    total_in: c_ulong,
    next_out: *mut u8,
    avail_out: c_uint,
    total_out: c_ulong,
    msg: *const c_char,
    state: *mut c_void,
    zalloc: *const c_void,
    zfree: *const c_void,
    opaque: *mut c_void,
    data_type: c_int,
    adler: c_ulong,
    reserved: c_ulong,
}

type InitZ = unsafe extern "C" fn(
    *mut ZStream,
    c_int,
    c_int,
    c_int,
    c_int,
    c_int,
    *const c_char,
    c_int,
) -> c_int;
type InitNg = unsafe extern "C" fn(*mut ZStream, c_int, c_int, c_int, c_int, c_int) -> c_int;
type DeflateFn = unsafe extern "C" fn(*mut ZStream, c_int) -> c_int;
type EndFn = unsafe extern "C" fn(*mut ZStream) -> c_int;
type BoundFn = unsafe extern "C" fn(*mut ZStream, c_ulong) -> c_ulong;
type VersionFn = unsafe extern "C" fn() -> *const c_char;

struct CZlib {
    init_z: Option<InitZ>,
    init_ng: Option<InitNg>,
    deflate: DeflateFn,
    end: EndFn,
    bound: BoundFn,
    version: String,
    lib_version: *const c_char,
}

const Z_FINISH: c_int = 4;
const Z_STREAM_END: c_int = 1;
const Z_DEFLATED: c_int = 8;

impl CZlib {
    fn open(lib: &str, ng: bool) -> Result<CZlib, String> {
        let name = std::ffi::CString::new(lib).expect("no NUL");
        // SAFETY: dlopen of a shared library by name; RTLD_LOCAL keeps its
        // symbols out of the global namespace.
        let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if handle.is_null() {
            return Err(format!("{lib} is not installed"));
        }
        let sym = |s: &str| -> Result<*mut c_void, String> {
            let c = std::ffi::CString::new(s).expect("no NUL");
            // SAFETY: looks up a symbol in the handle we opened.
            let p = unsafe { libc::dlsym(handle, c.as_ptr()) };
            if p.is_null() {
                Err(format!("{lib} has no {s}"))
            } else {
                Ok(p)
            }
        };
        let p = |s: &str| {
            if ng {
                format!("zng_{s}")
            } else {
                s.to_string()
            }
        };
        // SAFETY: the symbols have these C signatures (zlib.h / zlib-ng.h).
        unsafe {
            let version_fn: VersionFn = std::mem::transmute(sym(&if ng {
                "zlibng_version".to_string()
            } else {
                "zlibVersion".to_string()
            })?);
            let lib_version = version_fn();
            Ok(CZlib {
                init_z: if ng {
                    None
                } else {
                    Some(std::mem::transmute::<*mut c_void, InitZ>(sym(
                        "deflateInit2_",
                    )?))
                },
                init_ng: if ng {
                    Some(std::mem::transmute::<*mut c_void, InitNg>(sym(
                        "zng_deflateInit2",
                    )?))
                } else {
                    None
                },
                deflate: std::mem::transmute::<*mut c_void, DeflateFn>(sym(&p("deflate"))?),
                end: std::mem::transmute::<*mut c_void, EndFn>(sym(&p("deflateEnd"))?),
                bound: std::mem::transmute::<*mut c_void, BoundFn>(sym(&p("deflateBound"))?),
                version: CStr::from_ptr(lib_version).to_string_lossy().into_owned(),
                lib_version,
            })
        }
    }

    /// One gzip stream (windowBits 31, memLevel 8, default strategy), one deflate call.
    fn gzip(&self, data: &[u8], level: u32) -> usize {
        // SAFETY: a zeroed z_stream (null allocators = the library's defaults)
        // is what zlib expects before init; the buffers outlive the calls.
        unsafe {
            let mut s: ZStream = std::mem::zeroed();
            let rc = match (self.init_z, self.init_ng) {
                (Some(init), _) => init(
                    &mut s,
                    level as c_int,
                    Z_DEFLATED,
                    31,
                    8,
                    0,
                    self.lib_version,
                    std::mem::size_of::<ZStream>() as c_int,
                ),
                (None, Some(init)) => init(&mut s, level as c_int, Z_DEFLATED, 31, 8, 0),
                (None, None) => unreachable!("one init is set"),
            };
            assert_eq!(rc, 0, "deflateInit2 failed: {rc}");
            let mut out = vec![0u8; (self.bound)(&mut s, data.len() as c_ulong) as usize];
            s.next_in = data.as_ptr();
            s.avail_in = data.len() as c_uint;
            s.next_out = out.as_mut_ptr();
            s.avail_out = out.len() as c_uint;
            let rc = (self.deflate)(&mut s, Z_FINISH);
            assert_eq!(rc, Z_STREAM_END, "deflate did not finish: {rc}");
            let n = s.total_out as usize;
            (self.end)(&mut s);
            n
        }
    }
}
