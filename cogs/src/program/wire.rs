//! The wire protocol of programs: a request is one JSON line (ryuso's
//! body: `{"program": NAME, "data_pool": {...}, "metadata": {...}}`, with an
//! optional `id`), a response is one JSON line with a status, the outputs,
//! the error and the trace.

use serde_json::{json, Value};

/// The statuses of a response.
pub mod status {
    /// Every step succeeded.
    pub const OK: &str = "ok";
    /// A step failed and no rectifier had anything to undo.
    pub const FAILED: &str = "failed";
    /// A step failed and the rectifiers of the steps done before it ran.
    pub const COMPENSATED: &str = "compensated";
    /// A step failed and a rectifier failed too: effects may remain.
    pub const COMPENSATION_FAILED: &str = "compensation_failed";
    /// The request was not run: malformed, too large, unknown program, invalid input.
    pub const REJECTED: &str = "rejected";
}

/// A request to run a program: `{"id": ANY, "program": NAME, "data_pool":
/// {...}, "metadata": {...}}`; `id` and `metadata` may be left out, and
/// `data` is another name for `data_pool`.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// Echoed in the response (`null` when absent).
    pub id: Value,
    /// The program to run.
    pub program: String,
    /// The data pool the run starts from, checked against the program's `args`.
    pub data: Value,
    /// The request's metadata (a dict, or `null`): the hooks read it as
    /// `${metadata.NAME}` in their `params`, and through `Call::metadata`.
    pub metadata: Value,
}

impl Request {
    /// Decodes one request line. On error, the id (if one could be read)
    /// and what is wrong.
    pub fn decode(bytes: &[u8]) -> Result<Request, (Value, String)> {
        let v: Value =
            serde_json::from_slice(bytes).map_err(|e| (Value::Null, format!("request is not valid JSON: {e}")))?;
        Request::from_value(v)
    }

    /// Reads a request from JSON already parsed.
    pub fn from_value(v: Value) -> Result<Request, (Value, String)> {
        let Value::Object(mut m) = v else {
            return Err((Value::Null, "request must be a JSON object".into()));
        };
        let id = m.remove("id").unwrap_or(Value::Null);
        if let Some(k) = m
            .keys()
            .find(|k| !matches!(k.as_str(), "program" | "data_pool" | "data" | "metadata"))
        {
            return Err((
                id,
                format!("unknown request field `{k}` (fields: id, program, data_pool, metadata; data for data_pool)"),
            ));
        }
        let program = match m.remove("program") {
            Some(Value::String(p)) => p,
            Some(_) => return Err((id, "`program` must be a string".into())),
            None => return Err((id, "`program` is required".into())),
        };
        let data = match (m.remove("data_pool"), m.remove("data")) {
            (Some(_), Some(_)) => {
                return Err((id, "give `data_pool` or `data` (its other name), not both".into()));
            }
            (Some(d), None) | (None, Some(d)) => d,
            (None, None) => Value::Null,
        };
        let metadata = m.remove("metadata").unwrap_or(Value::Null);
        if !matches!(metadata, Value::Object(_) | Value::Null) {
            let what = super::spec::type_of(&metadata);
            return Err((id, format!("`metadata` must be a dict, not {what}")));
        }
        Ok(Request {
            id,
            program,
            data,
            metadata,
        })
    }
}

/// A response without a run: `rejected`, with why.
pub fn rejection(id: Value, message: impl Into<String>) -> Value {
    json!({
        "id": id,
        "status": status::REJECTED,
        "outputs": {},
        "error": { "step": null, "message": message.into() },
        "trace": [],
    })
}

/// Writes a response as one line of JSON with its fields in the documented
/// order: `id`, `status`, `outputs`, `error`, `trace`.
pub fn write_response(out: &mut Vec<u8>, response: &Value) {
    #[derive(serde::Serialize)]
    struct Ordered<'a> {
        id: &'a Value,
        status: &'a Value,
        outputs: &'a Value,
        error: &'a Value,
        trace: &'a Value,
    }
    let ordered = Ordered {
        id: &response["id"],
        status: &response["status"],
        outputs: &response["outputs"],
        error: &response["error"],
        trace: &response["trace"],
    };
    // Serializing borrowed Values into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, &ordered);
    out.push(b'\n');
}
