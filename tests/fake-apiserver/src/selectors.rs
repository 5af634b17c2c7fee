//! `labelSelector` and `fieldSelector` parsing and matching, after
//! `k8s.io/apimachinery/pkg/labels/selector.go` and `.../fields/selector.go`.

use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LabelReq {
    Exists(String),
    NotExists(String),
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Gt(String, i64),
    Lt(String, i64),
}

impl LabelReq {
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            LabelReq::Exists(k) => labels.contains_key(k),
            LabelReq::NotExists(k) => !labels.contains_key(k),
            LabelReq::Eq(k, v) => labels.get(k) == Some(v),
            LabelReq::NotEq(k, v) => labels.get(k) != Some(v),
            LabelReq::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            LabelReq::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
            LabelReq::Gt(k, n) => labels
                .get(k)
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v > *n),
            LabelReq::Lt(k, n) => labels
                .get(k)
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v < *n),
        }
    }
}

/// Splits on commas that are not inside parentheses.
fn split_top(s: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err(format!(
                        "unable to parse requirement: unexpected ')' in {s:?}"
                    ));
                }
            }
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(format!(
            "unable to parse requirement: found '(', expected: ')' in {s:?}"
        ));
    }
    parts.push(&s[start..]);
    Ok(parts)
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 316
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

fn valid_value(v: &str) -> bool {
    v.len() <= 63
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn key(k: &str) -> Result<String, String> {
    let k = k.trim();
    if valid_key(k) {
        Ok(k.to_string())
    } else {
        Err(format!(
            "unable to parse requirement: invalid label key {k:?}"
        ))
    }
}

fn value(v: &str) -> Result<String, String> {
    let v = v.trim();
    if valid_value(v) {
        Ok(v.to_string())
    } else {
        Err(format!(
            "unable to parse requirement: invalid label value: {v:?}"
        ))
    }
}

fn set_values(rest: &str) -> Result<Vec<String>, String> {
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| format!("unable to parse requirement: found {rest:?}, expected: '('"))?;
    inner.split(',').map(value).collect()
}

/// Parses a label selector; the empty string selects everything.
pub fn parse_label_selector(s: &str) -> Result<Vec<LabelReq>, String> {
    let mut reqs = Vec::new();
    if s.trim().is_empty() {
        return Ok(reqs);
    }
    for part in split_top(s)? {
        let p = part.trim();
        if p.is_empty() {
            return Err("unable to parse requirement: found '', expected: identifier".into());
        }
        let req = if let Some(k) = p.strip_prefix('!') {
            LabelReq::NotExists(key(k)?)
        } else if let Some((k, v)) = p.split_once("!=") {
            LabelReq::NotEq(key(k)?, value(v)?)
        } else if let Some((k, v)) = p.split_once("==") {
            LabelReq::Eq(key(k)?, value(v)?)
        } else if let Some((k, v)) = p.split_once('=') {
            LabelReq::Eq(key(k)?, value(v)?)
        } else if let Some((k, rest)) = split_word(p, "notin") {
            LabelReq::NotIn(key(k)?, set_values(rest)?)
        } else if let Some((k, rest)) = split_word(p, "in") {
            LabelReq::In(key(k)?, set_values(rest)?)
        } else if let Some((k, v)) = p.split_once('>') {
            LabelReq::Gt(key(k)?, int(v)?)
        } else if let Some((k, v)) = p.split_once('<') {
            LabelReq::Lt(key(k)?, int(v)?)
        } else {
            LabelReq::Exists(key(p)?)
        };
        reqs.push(req);
    }
    Ok(reqs)
}

fn int(v: &str) -> Result<i64, String> {
    v.trim()
        .parse()
        .map_err(|_| format!("unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer: {v:?}"))
}

/// `key in (a,b)` => ("key", "(a,b)"), for whitespace-separated operator words.
fn split_word<'a>(p: &'a str, word: &str) -> Option<(&'a str, &'a str)> {
    let mut it = p.splitn(2, char::is_whitespace);
    let k = it.next()?;
    let rest = it.next()?.trim_start();
    let after = rest.strip_prefix(word)?;
    if after.starts_with(|c: char| c.is_whitespace() || c == '(') {
        Some((k, after))
    } else {
        None
    }
}

pub fn labels_match(reqs: &[LabelReq], labels: &BTreeMap<String, String>) -> bool {
    reqs.iter().all(|r| r.matches(labels))
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldReq {
    pub field: String,
    pub value: String,
    pub negate: bool,
}

/// Parses a field selector (`a=b,c==d,e!=f`) and checks every field name
/// against `known`, like the pod / namespace field label conversion funcs
/// (error text "field label not supported: X").
pub fn parse_field_selector(s: &str, known: &[&str]) -> Result<Vec<FieldReq>, String> {
    let mut reqs = Vec::new();
    if s.trim().is_empty() {
        return Ok(reqs);
    }
    for part in s.split(',') {
        let (field, value, negate) = if let Some((f, v)) = part.split_once("!=") {
            (f, v, true)
        } else if let Some((f, v)) = part.split_once("==") {
            (f, v, false)
        } else if let Some((f, v)) = part.split_once('=') {
            (f, v, false)
        } else {
            return Err(format!(
                "invalid selector: '{s}'; can't understand '{part}'"
            ));
        };
        let field = field.trim();
        if !known.contains(&field) {
            return Err(format!("field label not supported: {field}"));
        }
        reqs.push(FieldReq {
            field: field.to_string(),
            value: value.to_string(),
            negate,
        });
    }
    Ok(reqs)
}

pub fn fields_match(reqs: &[FieldReq], get: impl Fn(&str) -> String) -> bool {
    reqs.iter().all(|r| (get(&r.field) == r.value) != r.negate)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_all_operators() {
        let r = parse_label_selector(
            "app=web, tier==front,env!=prod,zone in (a, b),team notin (x),release,!legacy,n>3,m<2",
        )
        .unwrap();
        assert_eq!(
            r,
            vec![
                LabelReq::Eq("app".into(), "web".into()),
                LabelReq::Eq("tier".into(), "front".into()),
                LabelReq::NotEq("env".into(), "prod".into()),
                LabelReq::In("zone".into(), vec!["a".into(), "b".into()]),
                LabelReq::NotIn("team".into(), vec!["x".into()]),
                LabelReq::Exists("release".into()),
                LabelReq::NotExists("legacy".into()),
                LabelReq::Gt("n".into(), 3),
                LabelReq::Lt("m".into(), 2),
            ]
        );
        assert!(parse_label_selector("").unwrap().is_empty());
        assert!(parse_label_selector("a in (b").is_err());
        assert!(parse_label_selector("a=b c").is_err());
        assert!(parse_label_selector("app.kubernetes.io/name=x").is_ok());
    }

    #[test]
    fn matching_follows_kubernetes_semantics() {
        let l = labels(&[("app", "web"), ("zone", "a")]);
        let m = |s: &str| labels_match(&parse_label_selector(s).unwrap(), &l);
        assert!(m("app=web"));
        assert!(!m("app=db"));
        assert!(m("env!=prod")); // absent key matches !=
        assert!(m("team notin (x)")); // absent key matches notin
        assert!(!m("team in (x)"));
        assert!(m("zone in (a,b),app"));
        assert!(!m("!app"));
        assert!(m("!env"));
    }

    #[test]
    fn field_selectors() {
        let known = ["metadata.name", "status.phase", "spec.nodeName"];
        let r = parse_field_selector("status.phase=Running,spec.nodeName!=n1", &known).unwrap();
        let get = |f: &str| match f {
            "status.phase" => "Running".to_string(),
            "spec.nodeName" => "n2".to_string(),
            _ => String::new(),
        };
        assert!(fields_match(&r, get));
        let r = parse_field_selector("spec.nodeName==", &known).unwrap();
        assert!(!fields_match(&r, get));
        assert_eq!(
            parse_field_selector("spec.foo=x", &known).unwrap_err(),
            "field label not supported: spec.foo"
        );
    }
}
