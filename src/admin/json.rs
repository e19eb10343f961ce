//! JSON for the HTTP admin server: a small ordered value type and the writer that prints it
//! as ZooKeeper's `JsonOutputter` does (Jackson with `INDENT_OUTPUT`: two-space indent,
//! `"key" : value`, `[ ]` and `{ }` when empty), and `CommandResponse`'s shape: every reply
//! is an object with the command's own keys in order, then `command` and `error`.
//!
//! Hand-written rather than serde_json: the keys must keep their order (ZooKeeper's
//! `LinkedHashMap`), which serde_json's `Map` only does with a feature that would change it
//! for the whole workspace, and the printer is Jackson's, not serde_json's.

use std::fmt::Write as _;

/// A JSON value whose objects keep their keys in insertion order.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    /// Printed as Java prints a double (`0.0`, `6.6`).
    Float(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl From<bool> for Json {
    fn from(v: bool) -> Json {
        Json::Bool(v)
    }
}
impl From<i64> for Json {
    fn from(v: i64) -> Json {
        Json::Int(v)
    }
}
impl From<i32> for Json {
    fn from(v: i32) -> Json {
        Json::Int(v.into())
    }
}
impl From<u32> for Json {
    fn from(v: u32) -> Json {
        Json::UInt(v.into())
    }
}
impl From<u64> for Json {
    fn from(v: u64) -> Json {
        Json::UInt(v)
    }
}
impl From<f64> for Json {
    fn from(v: f64) -> Json {
        Json::Float(v)
    }
}
impl From<&str> for Json {
    fn from(v: &str) -> Json {
        Json::Str(v.to_string())
    }
}
impl From<String> for Json {
    fn from(v: String) -> Json {
        Json::Str(v)
    }
}
impl<T: Into<Json>> From<Vec<T>> for Json {
    fn from(v: Vec<T>) -> Json {
        Json::Arr(v.into_iter().map(Into::into).collect())
    }
}

/// An object being built, keys in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Obj(pub Vec<(String, Json)>);

impl Obj {
    pub fn new() -> Obj {
        Obj(Vec::new())
    }

    /// Sets `key`: replaces its value in place if present (a `LinkedHashMap.put`), else
    /// appends it.
    pub fn put(&mut self, key: &str, value: impl Into<Json>) -> &mut Obj {
        let value = value.into();
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value,
            None => self.0.push((key.to_string(), value)),
        }
        self
    }

    pub fn get(&self, key: &str) -> Option<&Json> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

impl From<Obj> for Json {
    fn from(o: Obj) -> Json {
        Json::Obj(o.0)
    }
}

/// A command's answer: ZooKeeper's `CommandResponse` (command name, error, data, status).
#[derive(Debug, Clone, PartialEq)]
pub struct CommandResponse {
    pub command: String,
    pub error: Option<String>,
    pub data: Obj,
    pub status: u16,
}

impl CommandResponse {
    /// A successful answer with no data yet (`CommandBase.initializeResponse`).
    pub fn new(command: &str) -> CommandResponse {
        CommandResponse {
            command: command.to_string(),
            error: None,
            data: Obj::new(),
            status: 200,
        }
    }

    /// A failed answer (`new CommandResponse(cmd, error, status)`).
    pub fn error(command: &str, error: impl Into<String>, status: u16) -> CommandResponse {
        CommandResponse {
            command: command.to_string(),
            error: Some(error.into()),
            data: Obj::new(),
            status,
        }
    }

    /// `CommandResponse.toMap()`: the data's keys in order, then `command` and `error`
    /// unless the data has them already (a command may put its own `error`, which then keeps
    /// its place, as `leader` does on a standalone server).
    pub fn to_json(&self) -> Json {
        let mut m = self.data.clone();
        if m.get("command").is_none() {
            m.put("command", self.command.as_str());
        }
        if m.get("error").is_none() {
            m.put(
                "error",
                match &self.error {
                    Some(e) => Json::Str(e.clone()),
                    None => Json::Null,
                },
            );
        }
        m.into()
    }

    /// The body as ZooKeeper's `JsonOutputter` prints it.
    pub fn body(&self) -> String {
        to_string_pretty(&self.to_json())
    }
}

/// Jackson's default pretty printer: objects one key per line, `"key" : value`; arrays of
/// scalars or objects on the opening line (`[ 1, 2 ]`, `[ {`); empty containers `{ }`, `[ ]`.
pub fn to_string_pretty(v: &Json) -> String {
    let mut out = String::new();
    write_value(&mut out, v, 0);
    out
}

fn indent(out: &mut String, level: usize) {
    for _ in 0..level {
        out.push_str("  ");
    }
}

fn write_value(out: &mut String, v: &Json, level: usize) {
    match v {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Int(n) => {
            let _ = write!(out, "{n}");
        }
        Json::UInt(n) => {
            let _ = write!(out, "{n}");
        }
        Json::Float(f) => out.push_str(&java_double_json(*f)),
        Json::Str(s) => write_string(out, s),
        Json::Arr(items) => {
            if items.is_empty() {
                out.push_str("[ ]");
                return;
            }
            // Jackson's DefaultPrettyPrinter indents arrays with a space, not a new line.
            out.push_str("[ ");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(out, item, level);
            }
            out.push_str(" ]");
        }
        Json::Obj(fields) => {
            if fields.is_empty() {
                out.push_str("{ }");
                return;
            }
            out.push_str("{\n");
            for (i, (k, val)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push_str(",\n");
                }
                indent(out, level + 1);
                write_string(out, k);
                out.push_str(" : ");
                write_value(out, val, level + 1);
            }
            out.push('\n');
            indent(out, level);
            out.push('}');
        }
    }
}

/// A double as Java's `Double.toString` for the values figures take (finite); JSON has no
/// NaN or infinity, so those print as `null`.
fn java_double_json(f: f64) -> String {
    if !f.is_finite() {
        return "null".to_string();
    }
    super::java::java_double(f)
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jackson_pretty_shapes() {
        let mut inner = Obj::new();
        inner.put("a", 1i64).put("b", -1i64);
        let mut o = Obj::new();
        o.put("version", "3.9.2")
            .put("avg", 0.0)
            .put("avg2", 6.6)
            .put("list", Json::Arr(vec![]))
            .put("map", Json::Obj(vec![]))
            .put("ids", vec![72057692108488704u64])
            .put("conns", Json::Arr(vec![inner.clone().into()]))
            .put("inner", inner);
        let r = CommandResponse {
            command: "x".into(),
            error: None,
            data: o,
            status: 200,
        };
        // What ZooKeeper 3.8's admin server prints for these shapes (captured from it).
        assert_eq!(
            r.body(),
            "{\n  \"version\" : \"3.9.2\",\n  \"avg\" : 0.0,\n  \"avg2\" : 6.6,\n  \
             \"list\" : [ ],\n  \"map\" : { },\n  \"ids\" : [ 72057692108488704 ],\n  \
             \"conns\" : [ {\n    \"a\" : 1,\n    \"b\" : -1\n  } ],\n  \"inner\" : {\n    \
             \"a\" : 1,\n    \"b\" : -1\n  },\n  \"command\" : \"x\",\n  \"error\" : null\n}"
        );
    }

    #[test]
    fn command_and_error_come_last_unless_the_data_has_them() {
        assert_eq!(
            CommandResponse::new("ruok").body(),
            "{\n  \"command\" : \"ruok\",\n  \"error\" : null\n}"
        );
        let mut r = CommandResponse::new("leader");
        r.data.put("error", "server is not initialized");
        assert_eq!(
            r.body(),
            "{\n  \"error\" : \"server is not initialized\",\n  \"command\" : \"leader\"\n}"
        );
        let e = CommandResponse::error("nosuch", "Unknown command: nosuch", 200);
        assert_eq!(
            e.body(),
            "{\n  \"command\" : \"nosuch\",\n  \"error\" : \"Unknown command: nosuch\"\n}"
        );
    }

    #[test]
    fn strings_are_escaped() {
        let s = to_string_pretty(&Json::Str("a\"b\\c\nd\u{1}é".into()));
        assert_eq!(s, "\"a\\\"b\\\\c\\nd\\u0001é\"");
        assert_eq!(to_string_pretty(&Json::Float(f64::NAN)), "null");
    }
}
