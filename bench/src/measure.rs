//! CPU, RSS and wall time from the OS: wait4 for the child, getrusage and
//! the thread CPU clock for this process.

use std::os::unix::process::CommandExt as _;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What the OS says about a finished child.
#[derive(Clone, Debug)]
pub struct ChildUsage {
    pub wall: Duration,
    pub user: f64,
    pub sys: f64,
    /// ru_maxrss: peak resident set, KiB on Linux.
    pub max_rss_kib: u64,
    pub nvcsw: i64,
    pub nivcsw: i64,
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    /// This process's resident set when it spawned the child. Linux can
    /// carry the spawner's RSS into the child's ru_maxrss (fork copies the
    /// address space; exec records the old one's high-water mark): it is
    /// kept small (malloc_trim) and reported.
    pub spawner_rss_kib: u64,
    /// The exporter's own VmHWM (its address space after exec), sampled
    /// every 10 ms while it ran: a cross-check of ru_maxrss.
    pub sampled_hwm_kib: u64,
}

impl ChildUsage {
    pub fn cpu(&self) -> f64 {
        self.user + self.sys
    }
}

fn secs(t: libc::timeval) -> f64 {
    t.tv_sec as f64 + t.tv_usec as f64 / 1e6
}

/// Run `cmd` to its end (killed after `timeout`), measured with wait4.
pub fn run_child(mut cmd: Command, timeout: Duration) -> Result<ChildUsage, String> {
    // The child dies with us (a benchmark killed by its time bound leaves nothing running).
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    // SAFETY: plain libc call; returns freed heap to the OS.
    unsafe { libc::malloc_trim(0) };
    let spawner_rss_kib = self_rss_kib();
    let started = Instant::now();
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot start the exporter: {e}"))?;
    let pid = child.id() as libc::pid_t;

    // Watchdog: kills the child if it runs too long. The child is waited for
    // without being reaped first (WNOWAIT), so its pid cannot be reused
    // while the watchdog may still signal it.
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        let deadline = Instant::now() + timeout;
        let mut hwm = 0u64;
        loop {
            if let Some(kib) = vm_hwm_kib(pid) {
                hwm = hwm.max(kib);
            }
            match done_rx.recv_timeout(Duration::from_millis(10)) {
                Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() >= deadline => {
                    // SAFETY: plain syscall; pid is our unreaped child.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    return (true, hwm);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                _ => return (false, hwm),
            }
        }
    });
    loop {
        // SAFETY: an all-zero siginfo_t is a valid value to be filled in.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid fills `info`; WNOWAIT leaves the child waitable.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if r == 0 {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(format!("waitid: {err}"));
        }
    }
    let wall = started.elapsed();
    let _ = done_tx.send(());
    let (timed_out, sampled_hwm_kib) = watchdog.join().unwrap_or((false, 0));

    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it in.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: reaps our own exited child.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    if r != pid {
        return Err(format!("wait4: {}", std::io::Error::last_os_error()));
    }
    drop(child);
    let exit_code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    Ok(ChildUsage {
        wall,
        user: secs(ru.ru_utime),
        sys: secs(ru.ru_stime),
        max_rss_kib: ru.ru_maxrss as u64,
        nvcsw: ru.ru_nvcsw,
        nivcsw: ru.ru_nivcsw,
        exit_code,
        timed_out,
        spawner_rss_kib,
        sampled_hwm_kib,
    })
}

/// user+sys CPU seconds of this whole process so far (all threads).
pub fn process_cpu() -> f64 {
    // SAFETY: an all-zero rusage is valid; getrusage fills it in.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: plain syscall on our own process.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    secs(ru.ru_utime) + secs(ru.ru_stime)
}

/// CPU seconds of the calling thread so far.
pub fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: plain syscall filling `ts`.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

fn status_field_kib(path: &str, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Peak resident set of a running process (absent once it exited).
fn vm_hwm_kib(pid: libc::pid_t) -> Option<u64> {
    status_field_kib(&format!("/proc/{pid}/status"), "VmHWM:")
}

fn self_rss_kib() -> u64 {
    status_field_kib("/proc/self/status", "VmRSS:").unwrap_or(0)
}
