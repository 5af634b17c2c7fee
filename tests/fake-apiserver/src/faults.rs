//! Switches for the fault-tolerance tests. All methods take `&self`; the
//! server consults them on every request.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// What to do to a log response.
#[derive(Clone, Debug, PartialEq)]
pub enum LogFault {
    /// Send this many body bytes, then cut the connection (no terminating chunk).
    DropAfter { bytes: u64 },
    /// Wait before sending the first byte (after the 200 headers).
    StallBefore { duration: Duration },
    /// Send this many bytes, then wait, then go on normally.
    StallAfter { bytes: u64, duration: Duration },
    /// Answer with this HTTP status (a 5xx) and a `Status` body instead of the log.
    Status { code: u16 },
}

#[derive(Clone, Debug)]
struct LogFaultEntry {
    namespace: String,
    pod: String,
    container: Option<String>,
    fault: LogFault,
    /// `None`: every time.
    remaining: Option<u32>,
}

#[derive(Default)]
struct Inner {
    list_statuses: VecDeque<u16>,
    retry_after_secs: u64,
    log_faults: Vec<LogFaultEntry>,
    delete_on_log: HashSet<(String, String)>,
}

#[derive(Default)]
pub struct Faults {
    inner: Mutex<Inner>,
    token_epoch: AtomicU64,
    expire_on_use: AtomicU64,
}

impl Faults {
    /// The next list requests (namespaces or pods) answer these statuses, in
    /// order, then lists work again. 429 and 503 carry `Retry-After: secs`.
    pub fn fail_lists(&self, codes: &[u16], retry_after_secs: u64) {
        let mut i = self.inner.lock().unwrap();
        i.list_statuses.extend(codes.iter().copied());
        i.retry_after_secs = retry_after_secs;
    }

    /// Arms a fault on the log requests of one pod (one container of it, or
    /// all when `container` is None), `times` times (`None`: every time).
    pub fn log_fault(
        &self,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
        fault: LogFault,
        times: Option<u32>,
    ) {
        self.inner.lock().unwrap().log_faults.push(LogFaultEntry {
            namespace: namespace.to_string(),
            pod: pod.to_string(),
            container: container.map(str::to_string),
            fault,
            remaining: times,
        });
    }

    /// Deletes the pod when its log is first requested (so that request and
    /// every later one answers 404), like a pod deleted between list and log.
    pub fn delete_pod_on_first_log(&self, namespace: &str, pod: &str) {
        self.inner
            .lock()
            .unwrap()
            .delete_on_log
            .insert((namespace.to_string(), pod.to_string()));
    }

    /// Every continue token issued so far answers 410 Expired from now on.
    pub fn expire_continue_tokens(&self) {
        self.token_epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// Disarms everything (expired tokens stay expired).
    pub fn clear(&self) {
        let mut i = self.inner.lock().unwrap();
        *i = Inner::default();
    }

    /// The next `times` list requests that carry a continue token find it
    /// expired (410), as when etcd compacted the revision mid-list.
    pub fn expire_continue_tokens_on_use(&self, times: u64) {
        self.expire_on_use.store(times, Ordering::SeqCst);
    }

    /// A list request with a continue token arrived: expire it if armed.
    pub(crate) fn continue_token_used(&self) {
        let armed = self
            .expire_on_use
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if armed.is_ok() {
            self.expire_continue_tokens();
        }
    }

    pub(crate) fn token_epoch(&self) -> u64 {
        self.token_epoch.load(Ordering::SeqCst)
    }

    /// The status the next list request must answer, if any, and Retry-After.
    pub(crate) fn next_list_status(&self) -> Option<(u16, u64)> {
        let mut i = self.inner.lock().unwrap();
        let code = i.list_statuses.pop_front()?;
        Some((code, i.retry_after_secs))
    }

    pub(crate) fn take_delete_on_log(&self, namespace: &str, pod: &str) -> bool {
        self.inner
            .lock()
            .unwrap()
            .delete_on_log
            .remove(&(namespace.to_string(), pod.to_string()))
    }

    /// The faults that apply to this log request (consuming one use of each).
    pub(crate) fn take_log_faults(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
    ) -> Vec<LogFault> {
        let mut i = self.inner.lock().unwrap();
        let mut out = Vec::new();
        for e in i.log_faults.iter_mut() {
            let applies = e.namespace == namespace
                && e.pod == pod
                && e.container.as_deref().is_none_or(|c| c == container)
                && e.remaining != Some(0);
            if applies {
                if let Some(r) = e.remaining.as_mut() {
                    *r -= 1;
                }
                out.push(e.fault.clone());
            }
        }
        i.log_faults.retain(|e| e.remaining != Some(0));
        out
    }
}
