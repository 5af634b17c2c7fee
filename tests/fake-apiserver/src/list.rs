//! `limit` / `continue` paging over lists sorted by their etcd key.
//!
//! Tokens look like the real ones: base64url (no padding) of
//! `{"v":"meta.k8s.io/v1","rv":N,"start":"<last key>\u0000"}` plus an `epoch`
//! this server uses to expire tokens on demand.

use serde_json::{Value, json};

/// A page of a list.
#[derive(Debug, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub continue_token: Option<String>,
    pub remaining: Option<u64>,
}

/// Why a page could not be served.
#[derive(Debug, PartialEq)]
pub enum PageError {
    /// 400 BadRequest with this message.
    BadToken(String),
    /// 410 Expired; carries the token that continues inconsistently.
    Expired { inconsistent_continue: String },
}

/// Message of a 410 on an expired continue token when a token to continue
/// inconsistently is returned (apiserver storage/etcd3/errors.go).
pub const INCONSISTENT_CONTINUE: &str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.";

#[derive(Debug, PartialEq)]
pub struct Token {
    pub rv: u64,
    pub start: String,
    pub epoch: u64,
}

pub fn encode_token(t: &Token) -> String {
    let v = json!({"v": "meta.k8s.io/v1", "rv": t.rv, "start": format!("{}\u{0}", t.start), "epoch": t.epoch});
    b64_encode(v.to_string().as_bytes())
}

pub fn decode_token(s: &str) -> Result<Token, String> {
    let raw = b64_decode(s)
        .ok_or_else(|| "continue key is not valid: illegal base64 data".to_string())?;
    let v: Value =
        serde_json::from_slice(&raw).map_err(|e| format!("continue key is not valid: {e}"))?;
    if v["v"] != "meta.k8s.io/v1" {
        return Err("continue key is not valid: server does not recognize this encoded key".into());
    }
    let start = v["start"]
        .as_str()
        .ok_or("continue key is not valid: no start key")?;
    Ok(Token {
        rv: v["rv"].as_u64().unwrap_or(0),
        start: start.trim_end_matches('\u{0}').to_string(),
        epoch: v["epoch"].as_u64().unwrap_or(0),
    })
}

/// Serves one page of `items` (already sorted by key, already filtered).
/// `unfiltered`: no selector was given, so `remainingItemCount` is reported
/// (the real server omits it for selector lists).
pub fn paginate<T>(
    items: Vec<(String, T)>,
    limit: Option<usize>,
    cont: Option<&str>,
    rv: u64,
    epoch: u64,
    unfiltered: bool,
) -> Result<Page<T>, PageError> {
    let mut start_after: Option<String> = None;
    if let Some(c) = cont.filter(|c| !c.is_empty()) {
        let t = decode_token(c).map_err(PageError::BadToken)?;
        if t.epoch < epoch {
            return Err(PageError::Expired {
                inconsistent_continue: encode_token(&Token {
                    rv,
                    start: t.start,
                    epoch,
                }),
            });
        }
        start_after = Some(t.start);
    }
    let rest: Vec<(String, T)> = items
        .into_iter()
        .filter(|(k, _)| start_after.as_ref().is_none_or(|s| k > s))
        .collect();
    let limit = limit.filter(|l| *l > 0);
    match limit {
        Some(l) if rest.len() > l => {
            let remaining = (rest.len() - l) as u64;
            let mut items: Vec<(String, T)> = rest;
            items.truncate(l);
            let last = items.last().map(|(k, _)| k.clone()).unwrap_or_default();
            Ok(Page {
                items: items.into_iter().map(|(_, v)| v).collect(),
                continue_token: Some(encode_token(&Token {
                    rv,
                    start: last,
                    epoch,
                })),
                remaining: unfiltered.then_some(remaining),
            })
        }
        _ => Ok(Page {
            items: rest.into_iter().map(|(_, v)| v).collect(),
            continue_token: None,
            remaining: None,
        }),
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// base64url without padding.
pub fn b64_encode(data: &[u8]) -> String {
    b64_encode_with(data, B64, false)
}

/// Standard base64 with padding (kubeconfig `*-data` fields).
pub fn b64_std(data: &[u8]) -> String {
    b64_encode_with(
        data,
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
        true,
    )
}

fn b64_encode_with(data: &[u8], alphabet: &[u8; 64], pad: bool) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        let chars = chunk.len() + 1;
        for i in 0..4 {
            if i < chars {
                out.push(alphabet[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

pub fn b64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.trim_end_matches('=').bytes() {
        let v = B64.iter().position(|x| *x == c)? as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(n: usize) -> Vec<(String, usize)> {
        (0..n).map(|i| (format!("ns/p{i:02}"), i)).collect()
    }

    #[test]
    fn base64_round_trip() {
        for s in ["", "a", "ab", "abc", "abcd", "{\"rv\":1}\u{0}"] {
            assert_eq!(b64_decode(&b64_encode(s.as_bytes())).unwrap(), s.as_bytes());
        }
        assert_eq!(b64_std(b"ab"), "YWI=");
    }

    #[test]
    fn pages_through_everything_once() {
        let mut seen = Vec::new();
        let mut cont: Option<String> = None;
        let mut pages = 0;
        loop {
            let p = paginate(items(7), Some(3), cont.as_deref(), 5, 0, true).unwrap();
            pages += 1;
            seen.extend(p.items);
            match p.continue_token {
                Some(c) => {
                    assert!(p.remaining.is_some());
                    cont = Some(c)
                }
                None => break,
            }
        }
        assert_eq!(seen, (0..7).collect::<Vec<_>>());
        assert_eq!(pages, 3);
        let first = paginate(items(7), Some(3), None, 5, 0, true).unwrap();
        assert_eq!(first.remaining, Some(4));
        let filtered = paginate(items(7), Some(3), None, 5, 0, false).unwrap();
        assert_eq!(filtered.remaining, None);
        let exact = paginate(items(3), Some(3), None, 5, 0, true).unwrap();
        assert_eq!(exact.continue_token, None);
    }

    #[test]
    fn expired_and_bad_tokens() {
        let p = paginate(items(7), Some(3), None, 5, 0, true).unwrap();
        let c = p.continue_token.unwrap();
        let t = decode_token(&c).unwrap();
        assert_eq!(t.start, "ns/p02");
        match paginate(items(7), Some(3), Some(&c), 9, 1, true) {
            Err(PageError::Expired {
                inconsistent_continue,
            }) => {
                let p =
                    paginate(items(7), Some(10), Some(&inconsistent_continue), 9, 1, true).unwrap();
                assert_eq!(p.items, vec![3, 4, 5, 6]);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            paginate(items(7), Some(3), Some("!!"), 5, 0, true),
            Err(PageError::BadToken(_))
        ));
    }
}
