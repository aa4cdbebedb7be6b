//! JSON Schema pieces for the values a scenario writes as text (durations, shares, targets),
//! shared by the files that describe their own part of a scenario: the scenario's sections,
//! each family's `workload.<family>` and each fault kind's settings.
//!
//! The readers in `yaml.rs` and the files that call them decide what a scenario means; the
//! schema (`faultline schema scenario`, committed under `schemas/`) describes the same keys for
//! editors, and tests hold the two to the same key sets. Where the schema cannot say
//! everything (a node name must be one of the topology's), `faultline validate` says the rest.

use std::borrow::Cow;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};

/// The schema dialect every faultline schema is written in: draft-07, which editors' YAML and
/// JSON language servers read in full.
pub fn generator() -> SchemaGenerator {
    schemars::generate::SchemaSettings::draft07().into_generator()
}

/// The scenario schema's dialect: [`generator`], and an optional key may be left out but
/// not written as null (the scenario's readers refuse `key: ~`, so the schema does too).
pub fn scenario_generator() -> SchemaGenerator {
    schemars::generate::SchemaSettings::draft07()
        .with_transform(NoNull)
        .into_generator()
}

/// Takes `null` out of every `type` list and `anyOf` (where `Option<T>` put it), and the
/// `default: null` a `#[serde(default)]` field gets.
#[derive(Clone, Debug)]
struct NoNull;

impl schemars::transform::Transform for NoNull {
    fn transform(&mut self, schema: &mut Schema) {
        if let Some(serde_json::Value::Array(types)) = schema.get_mut("type") {
            types.retain(|t| t != "null");
            if types.len() == 1 {
                let only = types.remove(0);
                schema.insert("type".into(), only);
            }
        }
        if schema
            .get("default")
            .is_some_and(serde_json::Value::is_null)
        {
            schema.remove("default");
        }
        let null = serde_json::json!({"type": "null"});
        if let Some(serde_json::Value::Array(any)) = schema.get_mut("anyOf") {
            any.retain(|s| *s != null);
            if any.len() == 1 {
                let only = any.remove(0);
                schema.remove("anyOf");
                match only {
                    serde_json::Value::Object(m) if !m.contains_key("$ref") => {
                        for (k, v) in m {
                            schema.insert(k, v);
                        }
                    }
                    other => {
                        schema.insert("allOf".into(), serde_json::Value::Array(vec![other]));
                    }
                }
            }
        }
        schemars::transform::transform_subschemas(self, schema);
    }
}

/// The property names an object schema declares (for tests that hold a schema to the keys its
/// reader accepts).
pub fn property_names(schema: &Schema) -> Vec<String> {
    let mut names: Vec<String> = schema
        .get("properties")
        .and_then(|p| p.as_object())
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    names.sort();
    names
}

/// Sorted copies of a reader's key list, to compare with [`property_names`].
pub fn sorted(keys: &[&str]) -> Vec<String> {
    let mut keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    keys.sort();
    keys
}

/// The root schema of `T` in faultline's dialect.
pub fn schema_of<T: JsonSchema>() -> Schema {
    generator().into_root_schema_for::<T>()
}

macro_rules! text_type {
    ($name:ident, $id:literal, $schema:expr) => {
        pub struct $name;
        impl JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                Cow::Borrowed($id)
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                $schema
            }
        }
    };
}

/// The grammar `yaml::parse_duration` reads: one or more number-and-unit parts.
pub const DURATION_PATTERN: &str = r"^\s*([0-9]+(\.[0-9]+)?(ms|s|m|h))+\s*$";

text_type!(
    DurationText,
    "Duration",
    json_schema!({
        "type": "string",
        "pattern": DURATION_PATTERN,
        "description": "A duration such as \"30s\", \"250ms\", \"2m\" or \"1m30s\"; a bare number is refused (its unit would be a guess).",
        "examples": ["30s", "250ms", "1m30s"]
    })
);

text_type!(
    SignedDurationText,
    "SignedDuration",
    json_schema!({
        "type": "string",
        "pattern": r"^[+-]?([0-9]+(\.[0-9]+)?(ms|s|m|h))+$",
        "description": "A signed duration such as \"+30s\" or \"-2m\".",
        "examples": ["+30s", "-2m"]
    })
);

text_type!(
    DriftText,
    "Drift",
    json_schema!({
        "type": "string",
        "pattern": r"^[+-]?([0-9]+(\.[0-9]+)?(ms|s|m|h))+/s$",
        "description": "A signed duration per second such as \"+200ms/s\" or \"-1s/s\".",
        "examples": ["+200ms/s", "-1s/s"]
    })
);

text_type!(
    PositiveNumber,
    "PositiveNumber",
    json_schema!({
        "type": "number",
        "exclusiveMinimum": 0
    })
);

text_type!(
    Share,
    "Share",
    json_schema!({
        "type": "string",
        "pattern": r"^\s*[0-9]+(\.[0-9]+)?\s*%\s*$",
        "description": "A share such as \"20%\" (0 % to 1000 %).",
        "examples": ["20%"]
    })
);

text_type!(
    Target,
    "Target",
    json_schema!({
        "description": "Who the fault hits: a node name, a list of node names, random, minority, majority, all (choices made with the run's seed), or a role the family resolves when the fault starts (such as stream-leader).",
        "anyOf": [
            {"type": "string", "minLength": 1, "examples": ["random", "minority", "majority", "all", "stream-leader"]},
            {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1}
        ]
    })
);

text_type!(
    NodeNames,
    "NodeNames",
    json_schema!({
        "type": "array",
        "items": {"type": "string", "minLength": 1},
        "minItems": 1,
        "description": "Node names of the topology."
    })
);

/// A string from a fixed list (the list the reader checks against).
pub fn one_of(options: &[&str], description: &str) -> Schema {
    json_schema!({
        "type": "string",
        "enum": options,
        "description": description,
    })
}

/// A word a YAML file may also write as a number or a boolean (`acks: 1`, `version: 5`,
/// `idempotence: true`): the reader takes the scalar's text, so both spellings are allowed.
pub fn scalar_of(options: &[&str], description: &str) -> Schema {
    let mut values: Vec<serde_json::Value> = Vec::new();
    for o in options {
        values.push(serde_json::Value::String(o.to_string()));
        if let Ok(n) = o.parse::<u64>() {
            values.push(n.into());
        } else if let Ok(b) = o.parse::<bool>() {
            values.push(b.into());
        }
    }
    json_schema!({
        "enum": values,
        "description": description,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_duration_pattern_is_what_parse_duration_reads() {
        // Kept in step by hand with yaml::parse_duration; these are the cases it accepts
        // and refuses (its own tests hold the values).
        let re = |s: &str| {
            let v = serde_json::json!(s);
            let schema = DurationText::json_schema(&mut generator());
            jsonschema::is_valid(schema.as_value(), &v)
        };
        for ok in ["30s", "250ms", "1m30s", "1.5s", "2h", " 5s"] {
            assert!(re(ok), "{ok}");
        }
        for bad in ["30", "s", "", "5 s", "1d", "-1s"] {
            assert!(!re(bad), "{bad}");
        }
    }

    #[test]
    fn words_written_as_numbers_or_booleans_are_both_allowed() {
        let s = scalar_of(&["all", "1", "0"], "acks");
        for v in [
            serde_json::json!("all"),
            serde_json::json!(1),
            serde_json::json!("1"),
        ] {
            assert!(jsonschema::is_valid(s.as_value(), &v), "{v}");
        }
        assert!(!jsonschema::is_valid(s.as_value(), &serde_json::json!(2)));
        let b = scalar_of(&["true", "false"], "idempotence");
        assert!(jsonschema::is_valid(b.as_value(), &serde_json::json!(true)));
    }
}
