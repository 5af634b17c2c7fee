//! Writing client configuration: a kubeconfig file, or the files a pod sees
//! under /var/run/secrets/kubernetes.io/serviceaccount.

use std::fs;
use std::io;
use std::path::Path;

use crate::list::b64_std;

/// What a user authenticates with.
pub enum Credential<'a> {
    Token(&'a str),
    ClientCert { cert_pem: &'a str, key_pem: &'a str },
    None,
}

fn yaml_str(s: &str) -> String {
    // JSON strings are valid YAML double-quoted scalars.
    serde_json::to_string(s).expect("string serializes")
}

/// A kubeconfig with cluster "fake", user `user`, context "fake" (current).
pub fn kubeconfig_yaml(
    server: &str,
    ca_pem: Option<&str>,
    user: &str,
    cred: Credential<'_>,
) -> String {
    let mut s = String::from("apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n");
    s.push_str(&format!("    server: {}\n", yaml_str(server)));
    if let Some(ca) = ca_pem {
        s.push_str(&format!(
            "    certificate-authority-data: {}\n",
            b64_std(ca.as_bytes())
        ));
    }
    s.push_str(&format!("users:\n- name: {}\n  user:", yaml_str(user)));
    match cred {
        Credential::Token(t) => s.push_str(&format!("\n    token: {}\n", yaml_str(t))),
        Credential::ClientCert { cert_pem, key_pem } => s.push_str(&format!(
            "\n    client-certificate-data: {}\n    client-key-data: {}\n",
            b64_std(cert_pem.as_bytes()),
            b64_std(key_pem.as_bytes())
        )),
        Credential::None => s.push_str(" {}\n"),
    }
    s.push_str(&format!(
        "contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: {}\ncurrent-context: fake\npreferences: {{}}\n",
        yaml_str(user)
    ));
    s
}

/// Writes a file readable by its owner only.
pub fn write_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        fs::create_dir_all(dir)?;
    }
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    io::Write::write_all(&mut f, contents)
}

/// `token`, `ca.crt` and `namespace` in `dir`.
pub fn write_service_account_dir(
    dir: &Path,
    token: &str,
    ca_pem: &str,
    namespace: &str,
) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    write_private(&dir.join("token"), token.as_bytes())?;
    write_private(&dir.join("ca.crt"), ca_pem.as_bytes())?;
    write_private(&dir.join("namespace"), namespace.as_bytes())
}
