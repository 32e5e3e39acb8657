//! Writes the TOML twin of a legacy INI file: the same sections and keys in the same order,
//! under their current names, values in TOML spelling taken from the *effective* config (so
//! `yes` becomes `true`, `0.5` becomes `"500ms"`), and every INI comment carried over above the
//! key or section it described. Keys the INI left out stay out: their defaults apply in both.

use std::fmt::Write as _;

use toml::{Table, Value};

use crate::agent::AgentConfig;
use crate::ini::{IniDoc, Mapped};

/// The commented TOML text for `config`, laid out like `doc`.
pub(crate) fn write_toml(
    doc: &IniDoc,
    mapped: &[Mapped],
    config: &AgentConfig,
    source_name: &str,
) -> Result<String, toml::ser::Error> {
    let mut values = Table::try_from(config)?;
    // `[telemetry]` is left out of the serialized config while at its defaults (see
    // `crate::canonical`); an INI that spells out default telemetry values still gets them.
    if !values.contains_key("telemetry") {
        values.insert(
            "telemetry".into(),
            Value::Table(Table::try_from(&config.telemetry)?),
        );
    }
    // `readiness.partial_packet` is left out too while at its default.
    if let Some(Value::Table(readiness)) = values.get_mut("readiness") {
        if !readiness.contains_key("partial_packet") {
            readiness.insert(
                "partial_packet".into(),
                Value::try_from(config.readiness.partial_packet)?,
            );
        }
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Migrated from the legacy INI file {source_name} by `fleetctl config migrate`.\n\
         # Both files mean the same: their canonical effective configs have one SHA256 (see the\n\
         # .sha256.json manifest beside this file; `fleetctl config migrate --check` re-proves it).\n\
         # Keys the INI left out keep their defaults; every key is described in the example\n\
         # agent.toml. Comments below come from the INI file."
    );
    for m in mapped {
        let section = &doc.sections[m.section];
        out.push('\n');
        comments(&mut out, &section.comments);
        let plain = if m.header == "[[watch]]" {
            "[watch]"
        } else {
            m.header.as_str()
        };
        if section.header.replace(' ', "").to_lowercase() != plain {
            let _ = writeln!(out, "# (was {} in the INI file)", section.header);
        }
        let _ = writeln!(out, "{}", m.header);
        let table = lookup(&values, &m.path);
        for (index, key) in &m.keys {
            let entry = &section.entries[*index];
            comments(&mut out, &entry.comments);
            if entry.key != *key {
                let _ = writeln!(out, "# (was `{}` in the INI file)", entry.raw_key);
            }
            match table.and_then(|t| t.get(*key)) {
                Some(value) => {
                    let _ = writeln!(out, "{key} = {}", inline(value));
                }
                None => {
                    let _ = writeln!(out, "# {key}: not set (empty in the INI file)");
                }
            }
        }
    }
    if !doc.trailing.is_empty() {
        out.push('\n');
        comments(&mut out, &doc.trailing);
    }
    Ok(out)
}

/// The table at a key path like `agent`, `watch[1]` or `alerts.email`.
fn lookup<'a>(values: &'a Table, path: &str) -> Option<&'a Table> {
    if let Some(index) = path
        .strip_prefix("watch[")
        .and_then(|rest| rest.strip_suffix(']'))
    {
        let i: usize = index.parse().ok()?;
        return values.get("watch")?.as_array()?.get(i)?.as_table();
    }
    let mut table = values;
    for part in path.split('.') {
        table = table.get(part)?.as_table()?;
    }
    Some(table)
}

/// A value on one line, TOML-escaped.
fn inline(value: &Value) -> String {
    value.to_string()
}

fn comments(out: &mut String, lines: &[String]) {
    for line in lines {
        if line.is_empty() {
            out.push_str("#\n");
        } else {
            let _ = writeln!(out, "# {line}");
        }
    }
}
