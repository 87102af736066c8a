//! A JSON-schema subset converted to GBNF (issue 15), in the shape of llama.cpp's
//! `json-schema-to-grammar`: the output is JSON with optional white space between tokens.
//!
//! Supported: `type` (`object`, `array`, `string`, `number`, `integer`, `boolean`, `null`, or a
//! list of them), `properties` with `required` (required properties first, in the schema's order,
//! then the optional ones, each optional; no other properties), `items`, `minItems`, `maxItems`,
//! `minLength`, `maxLength`, `enum`, `const`, `anyOf` / `oneOf`, and the boolean schema `true`.
//! An object schema without `properties` is any JSON object; a schema without a type is any JSON
//! value. Annotations (`title`, `description`, `format`, `default`, `examples`, `$schema`, ...)
//! are ignored. Keywords that restrict values in ways not supported here (`$ref`, `pattern`,
//! `minimum`, `allOf`, ...) are refused with an error naming them and their location, never
//! silently ignored.

use serde_json::Value;

use crate::error::{Error, Result};

/// Keywords that would change which values are valid but are not supported.
const UNSUPPORTED: &[&str] = &[
    "$ref",
    "$defs",
    "definitions",
    "allOf",
    "not",
    "if",
    "then",
    "else",
    "pattern",
    "patternProperties",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minProperties",
    "maxProperties",
    "uniqueItems",
    "contains",
    "minContains",
    "maxContains",
    "prefixItems",
    "dependentRequired",
    "dependentSchemas",
    "propertyNames",
    "unevaluatedProperties",
    "unevaluatedItems",
];

const PRIMITIVES: &str = r#"space ::= | " " | "\n" [ \t]{0,20}
boolean ::= ("true" | "false") space
null ::= "null" space
integral-part ::= [0] | [1-9] [0-9]{0,15}
decimal-part ::= [0-9]{1,16}
integer ::= ("-"? integral-part) space
number ::= ("-"? integral-part) ("." decimal-part)? ([eE] [-+]? integral-part)? space
char ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\/bfnrt] | "u" [0-9a-fA-F]{4})
string ::= "\"" char* "\"" space
value ::= object | array | string | number | boolean | null
object ::= "{" space ( string ":" space value ("," space string ":" space value)* )? "}" space
array ::= "[" space ( value ("," space value)* )? "]" space
"#;

/// The most nested schemas followed.
const MAX_DEPTH: usize = 64;

struct Conv {
    rules: Vec<(String, String)>,
}

/// A GBNF string literal matching exactly `s`.
fn literal(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7F => {
                o.push_str(&format!("\\x{:02X}", c as u32))
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn err<T>(at: &str, msg: String) -> Result<T> {
    Err(Error::InvalidArg(format!("json schema at #{at}: {msg}")))
}

impl Conv {
    fn add(&mut self, hint: &str, body: String) -> String {
        let mut base: String = hint
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        if base.is_empty() {
            base = "item".into();
        }
        let mut name = base.clone();
        let mut k = 1;
        while self.rules.iter().any(|(n, _)| *n == name)
            || PRIMITIVES
                .lines()
                .any(|l| l.starts_with(&format!("{name} ::=")))
            || name == "root"
        {
            name = format!("{base}-{k}");
            k += 1;
        }
        self.rules.push((name.clone(), body));
        name
    }

    /// The GBNF expression for `s` (a rule name or a parenthesised expression).
    fn visit(&mut self, s: &Value, at: &str, hint: &str, depth: usize) -> Result<String> {
        if depth > MAX_DEPTH {
            return err(at, format!("nested deeper than {MAX_DEPTH}"));
        }
        let o = match s {
            Value::Bool(true) => return Ok("value".into()),
            Value::Bool(false) => return err(at, "the schema false matches nothing".into()),
            Value::Object(o) => o,
            _ => return err(at, "a schema must be an object or a boolean".into()),
        };
        for k in UNSUPPORTED {
            if o.contains_key(*k) {
                return err(at, format!("keyword {k} is not supported"));
            }
        }
        if let Some(c) = o.get("const") {
            return Ok(format!("({} space)", literal(&c.to_string())));
        }
        if let Some(e) = o.get("enum") {
            let Value::Array(vals) = e else {
                return err(at, "enum must be an array".into());
            };
            if vals.is_empty() {
                return err(at, "enum is empty".into());
            }
            let alts: Vec<String> = vals.iter().map(|v| literal(&v.to_string())).collect();
            let body = format!("({}) space", alts.join(" | "));
            return Ok(self.add(hint, body));
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(list) = o.get(key) {
                let Value::Array(subs) = list else {
                    return err(at, format!("{key} must be an array"));
                };
                if subs.is_empty() {
                    return err(at, format!("{key} is empty"));
                }
                let mut alts = Vec::new();
                for (i, sub) in subs.iter().enumerate() {
                    alts.push(self.visit(
                        sub,
                        &format!("{at}/{key}/{i}"),
                        &format!("{hint}-{i}"),
                        depth + 1,
                    )?);
                }
                return Ok(self.add(hint, alts.join(" | ")));
            }
        }
        let types: Vec<&str> = match o.get("type") {
            None => {
                if o.contains_key("properties") {
                    vec!["object"]
                } else if o.contains_key("items") {
                    vec!["array"]
                } else {
                    return Ok("value".into());
                }
            }
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => {
                let mut v = Vec::new();
                for t in ts {
                    match t {
                        Value::String(t) => v.push(t.as_str()),
                        _ => return err(at, "type entries must be strings".into()),
                    }
                }
                if v.is_empty() {
                    return err(at, "type is an empty list".into());
                }
                v
            }
            Some(_) => return err(at, "type must be a string or a list".into()),
        };
        let mut alts = Vec::new();
        for t in types {
            alts.push(self.visit_type(o, t, at, hint, depth)?);
        }
        if alts.len() == 1 {
            return Ok(alts.remove(0));
        }
        Ok(self.add(hint, alts.join(" | ")))
    }

    fn count(o: &serde_json::Map<String, Value>, k: &str, at: &str) -> Result<Option<u32>> {
        match o.get(k) {
            None => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) if n <= 1000 => Ok(Some(n as u32)),
                _ => err(at, format!("{k} must be an integer from 0 to 1000")),
            },
        }
    }

    fn visit_type(
        &mut self,
        o: &serde_json::Map<String, Value>,
        t: &str,
        at: &str,
        hint: &str,
        depth: usize,
    ) -> Result<String> {
        match t {
            "string" => {
                let min = Self::count(o, "minLength", at)?;
                let max = Self::count(o, "maxLength", at)?;
                if min.is_none() && max.is_none() {
                    return Ok("string".into());
                }
                let lo = min.unwrap_or(0);
                if max.is_some_and(|m| m < lo) {
                    return err(at, "maxLength below minLength".into());
                }
                let rep = match max {
                    Some(m) => format!("{{{lo},{m}}}"),
                    None => format!("{{{lo},}}"),
                };
                Ok(self.add(hint, format!("\"\\\"\" char{rep} \"\\\"\" space")))
            }
            "number" => Ok("number".into()),
            "integer" => Ok("integer".into()),
            "boolean" => Ok("boolean".into()),
            "null" => Ok("null".into()),
            "array" => {
                let item = match o.get("items") {
                    None => "value".to_string(),
                    Some(s) => self.visit(
                        s,
                        &format!("{at}/items"),
                        &format!("{hint}-item"),
                        depth + 1,
                    )?,
                };
                let min = Self::count(o, "minItems", at)?.unwrap_or(0);
                let max = Self::count(o, "maxItems", at)?;
                if max.is_some_and(|m| m < min) {
                    return err(at, "maxItems below minItems".into());
                }
                let body = match (min, max) {
                    (_, Some(0)) => "\"[\" space \"]\" space".to_string(),
                    (0, None) => {
                        format!("\"[\" space ( {item} (\",\" space {item})* )? \"]\" space")
                    }
                    (0, Some(m)) => format!(
                        "\"[\" space ( {item} (\",\" space {item}){{0,{}}} )? \"]\" space",
                        m - 1
                    ),
                    (n, m) => format!(
                        "\"[\" space {item} (\",\" space {item}){{{},{}}} \"]\" space",
                        n - 1,
                        m.map(|m| (m - 1).to_string()).unwrap_or_default()
                    ),
                };
                Ok(self.add(hint, body))
            }
            "object" => {
                let Some(props) = o.get("properties") else {
                    return Ok("object".into());
                };
                let Value::Object(props) = props else {
                    return err(at, "properties must be an object".into());
                };
                let required: Vec<&str> = match o.get("required") {
                    None => vec![],
                    Some(Value::Array(r)) => {
                        let mut v = Vec::new();
                        for x in r {
                            match x.as_str() {
                                Some(s) if props.contains_key(s) => v.push(s),
                                Some(s) => {
                                    return err(
                                        at,
                                        format!("required property {s} is not in properties"),
                                    )
                                }
                                None => return err(at, "required entries must be strings".into()),
                            }
                        }
                        v
                    }
                    Some(_) => return err(at, "required must be an array".into()),
                };
                let mut req = Vec::new();
                let mut opt = Vec::new();
                for (k, sub) in props {
                    let val = self.visit(
                        sub,
                        &format!("{at}/properties/{k}"),
                        &format!("{hint}-{k}"),
                        depth + 1,
                    )?;
                    let kv = format!(
                        "{} space \":\" space {val}",
                        literal(&Value::String(k.clone()).to_string())
                    );
                    let name = self.add(&format!("{hint}-{k}-kv"), kv);
                    if required.contains(&k.as_str()) {
                        req.push(name);
                    } else {
                        opt.push(name);
                    }
                }
                let mut body = String::from("\"{\" space ");
                body.push_str(&req.join(" \",\" space "));
                // Optional properties in order, each optional; commas where needed.
                let tails: Vec<String> =
                    opt.iter().map(|n| format!("(\",\" space {n})?")).collect();
                if !opt.is_empty() {
                    if req.is_empty() {
                        let mut alts = Vec::new();
                        for i in 0..opt.len() {
                            let mut a = opt[i].clone();
                            for t in &tails[i + 1..] {
                                a.push(' ');
                                a.push_str(t);
                            }
                            alts.push(a);
                        }
                        body.push_str(&format!("({})?", alts.join(" | ")));
                    } else {
                        body.push(' ');
                        body.push_str(&tails.join(" "));
                    }
                }
                body.push_str(" \"}\" space");
                Ok(self.add(hint, body))
            }
            other => err(at, format!("type {other} is not supported")),
        }
    }
}

/// Converts a JSON schema (text) to GBNF whose `root` matches the JSON values it describes.
pub fn schema_to_gbnf(schema: &str) -> Result<String> {
    let v: Value = serde_json::from_str(schema).map_err(|e| {
        Error::InvalidArg(format!(
            "json schema: line {}, column {}: {e}",
            e.line(),
            e.column()
        ))
    })?;
    let mut c = Conv { rules: Vec::new() };
    let top = c.visit(&v, "", "root-value", 0)?;
    let mut out = format!("root ::= {top}\n");
    for (n, b) in &c.rules {
        out.push_str(&format!("{n} ::= {b}\n"));
    }
    out.push_str(PRIMITIVES);
    Ok(out)
}
