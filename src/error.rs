//! The crate's one error type. Every variant a user can cause carries one
//! sentence that names the cause and the fix; `exit_code` maps it to the
//! exit codes of PRODUCT.md (2 = usage/configuration, 1 = nothing could be done).

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Usage(String),

    #[error(
        "no kubeconfig found ({tried}); pass --kubeconfig, set KUBECONFIG, or run inside a pod with a ServiceAccount"
    )]
    NoKubeconfig { tried: String },

    #[error(
        "context \"{context}\" not found in the kubeconfig (it has: {available}); pass one of those with --context"
    )]
    ContextNotFound { context: String, available: String },

    #[error("cannot use the kubeconfig {path}: {message}")]
    Kubeconfig { path: String, message: String },

    #[error(
        "cannot read the ServiceAccount file {path}: {message}; mount the ServiceAccount token (automountServiceAccountToken: true) or point --service-account-dir at the folder"
    )]
    ServiceAccount { path: PathBuf, message: String },

    #[error(
        "cannot reach the API server at {server}: {message}; check the server address and that the cluster is up"
    )]
    Unreachable { server: String, message: String },

    #[error(
        "TLS failure talking to {server}: the server's certificate is not signed by the configured CA ({detail}); check certificate-authority in the kubeconfig or ca.crt of the ServiceAccount"
    )]
    TlsUnknownCa { server: String, detail: String },

    #[error(
        "TLS failure talking to {server}: the server's certificate is not valid for that host name ({detail}); use the address the certificate was issued for (or tls-server-name in the kubeconfig)"
    )]
    TlsHostMismatch { server: String, detail: String },

    #[error("TLS failure talking to {server}: {detail}")]
    Tls { server: String, detail: String },

    #[error(
        "the API server at {server} rejected the credentials (401 Unauthorized): the token is expired or invalid; refresh the kubeconfig credentials (or the mounted ServiceAccount token) and try again"
    )]
    Unauthorized { server: String },

    #[error(
        "permission denied: {message}; grant {verb} on {resource}{scope} or run `kube-log-exporter doctor` for the RBAC to apply"
    )]
    Forbidden {
        verb: String,
        resource: String,
        scope: String,
        message: String,
    },

    #[error("the API server answered {code} to {what}: {message}")]
    Api {
        what: String,
        code: u16,
        message: String,
    },

    #[error(
        "the output folder {path} is not writable: {message}; choose another --output or fix its permissions"
    )]
    OutputNotWritable { path: PathBuf, message: String },

    #[error(
        "the disk holding {path} is full; free space or point --output at a larger volume (files already complete are kept)"
    )]
    DiskFull { path: PathBuf },

    #[error("cannot write {path}: {message}")]
    Write { path: PathBuf, message: String },

    #[error(
        "another export is running into {path} (its .lock is held); wait for it to finish or use another --output"
    )]
    Busy { path: PathBuf },

    #[error("internal error: {0}; please report it")]
    Internal(String),

    #[error(
        "{path} is not a folder; pass a run folder, OUTPUT/runs/<RUN_ID>, to `kube-log-exporter verify`"
    )]
    NoRunFolder { path: PathBuf },

    #[error(
        "{path} does not exist, so this is not a finished run (a run writes manifest.json last); pass the folder of a completed run, OUTPUT/runs/<RUN_ID>"
    )]
    NoManifest { path: PathBuf },

    #[error(
        "cannot read {path}: {message}; it is damaged or not written by kube-log-exporter, so the run cannot be checked (restore it from a copy)"
    )]
    BadManifest { path: PathBuf, message: String },
}

impl Error {
    /// Exit code for this failure (PRODUCT.md: 2 = bad usage or configuration,
    /// 1 = nothing could be done).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_)
            | Error::NoKubeconfig { .. }
            | Error::ContextNotFound { .. }
            | Error::Kubeconfig { .. }
            | Error::ServiceAccount { .. } => 2,
            _ => 1,
        }
    }

    /// Classify a write failure: a full disk gets its own sentence.
    pub fn from_write(path: impl Into<PathBuf>, err: &std::io::Error) -> Error {
        let path = path.into();
        if err.raw_os_error() == Some(libc::ENOSPC) || err.raw_os_error() == Some(libc::EDQUOT) {
            Error::DiskFull { path }
        } else if err.kind() == std::io::ErrorKind::PermissionDenied
            || matches!(err.raw_os_error(), Some(libc::EROFS) | Some(libc::ENOTDIR))
        {
            Error::OutputNotWritable {
                path,
                message: err.to_string(),
            }
        } else {
            Error::Write {
                path,
                message: err.to_string(),
            }
        }
    }
}
