//! Hook argument templates: `${name}` references into the data pool,
//! found when a spec is checked and resolved when a hook runs.

use serde_json::{Map, Value};

/// The `${name}` references in a hook argument.
pub(super) fn template_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => {
            for piece in pieces(s) {
                if let Piece::Ref(r) = piece {
                    out.push(r.to_owned());
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| template_refs(v, out)),
        Value::Object(m) => m.values().for_each(|v| template_refs(v, out)),
        _ => {}
    }
}

enum Piece<'a> {
    Text(&'a str),
    Ref(&'a str),
}

/// Splits a string into text and `${name}` references; `$${` is a literal `${`.
fn pieces(s: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        if rest[..i].ends_with('$') {
            out.push(Piece::Text(&rest[..i - 1]));
            out.push(Piece::Text("${"));
            rest = &rest[i + 2..];
            continue;
        }
        let Some(end) = rest[i + 2..].find('}') else { break };
        if i > 0 {
            out.push(Piece::Text(&rest[..i]));
        }
        out.push(Piece::Ref(rest[i + 2..i + 2 + end].trim()));
        rest = &rest[i + 3 + end..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest));
    }
    out
}

/// The value `path` names: `metadata.…` in the request's metadata, any
/// other in the data pool.
fn lookup<'v>(pool: &'v Map<String, Value>, metadata: &'v Value, path: &str) -> Option<&'v Value> {
    let mut parts = path.split('.');
    let head = parts.next()?;
    let mut v = if head == "metadata" { metadata } else { pool.get(head)? };
    for p in parts {
        v = match v {
            Value::Object(m) => m.get(p)?,
            Value::Array(a) => a.get(p.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(v)
}

/// Resolves the `${name}` references of hook arguments against the data
/// pool: a string that is one reference takes the referenced value as it
/// is (an int stays an int); references within text are rendered into it.
/// `${metadata.NAME}` reads the request's metadata.
pub(super) fn resolve(
    args: &Map<String, Value>,
    pool: &Map<String, Value>,
    metadata: &Value,
) -> Result<Map<String, Value>, String> {
    let pool = (pool, metadata);
    fn one(v: &Value, pool: (&Map<String, Value>, &Value)) -> Result<Value, String> {
        match v {
            Value::String(s) if s.contains("${") => {
                let pieces = pieces(s);
                if let [Piece::Ref(r)] = pieces.as_slice() {
                    return lookup(pool.0, pool.1, r)
                        .cloned()
                        .ok_or_else(|| format!("`${{{r}}}` is not in the data pool"));
                }
                let mut out = String::new();
                for p in pieces {
                    match p {
                        Piece::Text(t) => out.push_str(t),
                        Piece::Ref(r) => match lookup(pool.0, pool.1, r) {
                            Some(Value::String(s)) => out.push_str(s),
                            Some(v) => out.push_str(&v.to_string()),
                            None => return Err(format!("`${{{r}}}` is not in the data pool")),
                        },
                    }
                }
                Ok(Value::String(out))
            }
            Value::Array(a) => a
                .iter()
                .map(|v| one(v, pool))
                .collect::<Result<_, _>>()
                .map(Value::Array),
            Value::Object(m) => m
                .iter()
                .map(|(k, v)| one(v, pool).map(|v| (k.clone(), v)))
                .collect::<Result<_, _>>()
                .map(Value::Object),
            other => Ok(other.clone()),
        }
    }
    args.iter()
        .map(|(k, v)| {
            one(v, pool)
                .map(|v| (k.clone(), v))
                .map_err(|e| format!("argument `{k}`: {e}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn templates_keep_types_alone_and_render_within_text() {
        let pool = json!({"n": 5, "who": "ann", "d": {"x": [1, 2]}});
        let pool = pool.as_object().unwrap();
        let args = json!({"a": "${n}", "b": "to ${who}: ${n}", "c": ["${d.x.1}"], "e": "$${who}"});
        let got = resolve(args.as_object().unwrap(), pool, &Value::Null).unwrap();
        assert_eq!(
            Value::Object(got),
            json!({"a": 5, "b": "to ann: 5", "c": [2], "e": "${who}"})
        );
        let meta = json!({"user": "bo", "tags": ["x"]});
        let with_meta = json!({"u": "${metadata.user}", "t": "by ${metadata.user} ${metadata.tags.0}"});
        let got = resolve(with_meta.as_object().unwrap(), pool, &meta).unwrap();
        assert_eq!(Value::Object(got), json!({"u": "bo", "t": "by bo x"}));
        let absent = json!({"u": "${metadata.user}"});
        assert!(resolve(absent.as_object().unwrap(), pool, &Value::Null)
            .unwrap_err()
            .contains("metadata.user"));
        let missing = json!({"a": "${nope}"});
        assert!(resolve(missing.as_object().unwrap(), pool, &Value::Null)
            .unwrap_err()
            .contains("nope"));
    }
}
