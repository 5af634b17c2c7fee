//! Authentication: who is calling (bearer token, client certificate, nobody),
//! and the users table that maps credentials to names, groups and rules.

use std::collections::BTreeMap;

use crate::rbac::Rule;

/// The credential a request carried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identity {
    Token(String),
    ClientCert { user: String, groups: Vec<String> },
    Anonymous,
}

/// An authenticated user, as in `status.userInfo` of a SelfSubjectReview.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserInfo {
    pub username: String,
    pub groups: Vec<String>,
}

#[derive(Clone, Debug, Default)]
pub struct UserEntry {
    pub token: Option<String>,
    /// (cert pem, key pem) of the last certificate issued to this user.
    pub cert: Option<(String, String)>,
    pub groups: Vec<String>,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Default)]
pub struct Users {
    pub by_name: BTreeMap<String, UserEntry>,
}

impl Users {
    /// Resolves a credential; `None` means 401 Unauthorized.
    pub fn authenticate(&self, id: &Identity, anonymous_auth: bool) -> Option<UserInfo> {
        match id {
            Identity::Token(t) => {
                let (name, entry) = self
                    .by_name
                    .iter()
                    .find(|(_, e)| e.token.as_deref() == Some(t.as_str()))?;
                Some(UserInfo {
                    username: name.clone(),
                    groups: groups_for(name, &entry.groups),
                })
            }
            Identity::ClientCert { user, groups } => {
                let mut all = groups.clone();
                if let Some(e) = self.by_name.get(user) {
                    for g in &e.groups {
                        if !all.contains(g) {
                            all.push(g.clone());
                        }
                    }
                }
                Some(UserInfo {
                    username: user.clone(),
                    groups: groups_for(user, &all),
                })
            }
            Identity::Anonymous if anonymous_auth => Some(UserInfo {
                username: "system:anonymous".to_string(),
                groups: vec!["system:unauthenticated".to_string()],
            }),
            Identity::Anonymous => None,
        }
    }

    pub fn rules(&self, user: &str) -> &[Rule] {
        self.by_name.get(user).map(|e| &e.rules[..]).unwrap_or(&[])
    }
}

/// Groups as the apiserver reports them: a ServiceAccount token user gets
/// `system:serviceaccounts` and `system:serviceaccounts:<ns>`; every
/// authenticated user gets `system:authenticated`.
fn groups_for(user: &str, extra: &[String]) -> Vec<String> {
    let mut g = extra.to_vec();
    if let Some(rest) = user.strip_prefix("system:serviceaccount:")
        && let Some((ns, _)) = rest.split_once(':')
    {
        g.push("system:serviceaccounts".to_string());
        g.push(format!("system:serviceaccounts:{ns}"));
    }
    g.push("system:authenticated".to_string());
    g
}

/// The bearer token of an `Authorization` header value.
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}
