//! The legacy INI format (layout in `docs/legacy-ini.md`): parsed strictly with line numbers
//! ([`syntax`]), checked against the layout ([`schema`]: unknown sections and keys with a "did
//! you mean", old names with a deprecation warning), its value spellings converted
//! ([`values`]), and then handed to the same pipeline as TOML, so an INI file and a TOML file
//! with the same meaning load to the same config and hash the same.

pub(crate) mod schema;
pub(crate) mod syntax;
mod values;

use std::collections::HashMap;
use std::path::Path;

use toml::{Table, Value};

use crate::load::{finish, ConfigError, Format, Input, Loaded};
use crate::problem::Problem;
use crate::suggest::did_you_mean;
use crate::validate::Checks;

pub(crate) use syntax::{IniDoc, Section};

/// Parses and validates an agent config in the legacy INI format; `origin` names the file.
pub fn parse_ini_config(
    text: &str,
    origin: Option<&Path>,
    checks: Checks,
) -> Result<Loaded, ConfigError> {
    parse_ini_mapped(text, origin, checks).map(|parsed| parsed.loaded)
}

/// An INI file parsed for migration: the config, the document and where each section went.
#[derive(Debug)]
pub(crate) struct ParsedIni {
    pub loaded: Loaded,
    pub doc: IniDoc,
    pub mapped: Vec<Mapped>,
}

/// [`parse_ini_config`], keeping what migration needs to write the same file as TOML.
pub(crate) fn parse_ini_mapped(
    text: &str,
    origin: Option<&Path>,
    checks: Checks,
) -> Result<ParsedIni, ConfigError> {
    if let Err(problem) = crate::limits::check_size(text.len()) {
        return Err(ConfigError::Invalid {
            problems: vec![problem.in_file(origin)],
        });
    }
    let doc = syntax::parse(text);
    let (mut input, mapped) = to_input_mapped(&doc);
    let name = origin
        .and_then(Path::file_name)
        .map_or("agent.ini".into(), |n| n.to_string_lossy().into_owned());
    let toml_name = Path::new(&name).with_extension("toml");
    input.problems.push(
        Problem::warning("", "is in the legacy INI format, which is deprecated").with_hint(
            format!(
                "convert it with `fleetctl config migrate {name} -o {}`",
                toml_name.display()
            ),
        ),
    );
    match finish(input, origin, checks) {
        Ok(loaded) => Ok(ParsedIni {
            loaded,
            doc,
            mapped,
        }),
        Err(ConfigError::Invalid { problems }) => Err(ConfigError::Invalid {
            problems: problems.into_iter().map(ini_words).collect(),
        }),
        Err(other) => Err(other),
    }
}

/// Hints written for TOML, said the INI way.
fn ini_words(mut p: Problem) -> Problem {
    if p.key == "watch" && p.message.contains("[[watch]]") {
        p.message = "no [watch] section is configured".into();
        p.hint = Some("add one like: [watch] source = /srv/recordings/incoming, output = /srv/recordings/h264 (one key per line)".into());
    }
    p
}

/// Where one INI section went in the TOML shape: for migration, which writes the same sections
/// and keys, in the same order, under their current names.
#[derive(Debug, Clone)]
pub(crate) struct Mapped {
    /// The TOML header: `[agent]`, `[[watch]]`, `[alerts.email]`.
    pub header: String,
    /// The table's key path (`agent`, `watch[1]`, `alerts.email`).
    pub path: String,
    /// The INI section (index into [`IniDoc::sections`]).
    pub section: usize,
    /// Each accepted entry: its index in the section and its current key.
    pub keys: Vec<(usize, &'static str)>,
}

/// The INI document as the TOML-shaped table `agent.toml` would give (with lines and problems),
/// and where each section went.
pub(crate) fn to_input_mapped(doc: &IniDoc) -> (Input, Vec<Mapped>) {
    let mut mapped = Vec::new();
    let mut input = Input {
        format: Format::Ini,
        problems: doc.problems.clone(),
        ..Input::default()
    };
    let mut roots: Vec<Value> = Vec::new();
    let mut seen_sections: HashMap<String, usize> = HashMap::new();
    let mut labels: HashMap<String, usize> = HashMap::new();
    let mut email: Option<(Table, usize)> = None;
    for (index, section) in doc.sections.iter().enumerate() {
        let sub = section
            .label
            .as_deref()
            .map(|label| format!("{}.{}", section.name, label.to_lowercase()))
            .filter(|full| schema::keys(full).is_some());
        if let Some(full) = sub {
            // [alerts.email]: a table inside [alerts].
            if let Some((_, first)) = &email {
                input.problems.push(
                    Problem::error(
                        &full,
                        format!("[{full}] appears twice (first at line {first})"),
                    )
                    .with_hint("merge the two sections into one")
                    .at_line(Some(section.line)),
                );
                continue;
            }
            input.lines.insert(full.clone(), section.line);
            let (table, keys) = entries(section, &full, &full, &mut input);
            email = Some((table, section.line));
            mapped.push(Mapped {
                header: format!("[{full}]"),
                path: full,
                section: index,
                keys,
            });
            continue;
        }
        let Some((name, old)) = schema::section(&section.name) else {
            let names = schema::SECTIONS.iter().map(|(n, _)| *n);
            let hint = did_you_mean(&section.name, names).unwrap_or_else(|| {
                "known sections: agent, watch, readiness, transcode, captions, disk, alerts, logging, controller".into()
            });
            input.problems.push(
                Problem::error(
                    &section.name,
                    format!("unknown section `{}`", section.header),
                )
                .with_hint(hint)
                .at_line(Some(section.line)),
            );
            continue;
        };
        if old {
            input.problems.push(deprecated(
                name,
                &format!("section `{}` is an old name of [{name}]", section.header),
                &format!("rename it [{name}]"),
                section.line,
            ));
        }
        let key = if name == "watch" {
            if let Some(label) = &section.label {
                if let Some(first) = labels.insert(label.clone(), section.line) {
                    input.problems.push(
                        Problem::error(
                            format!("watch[{}]", roots.len()),
                            format!(
                                "`{}` is defined twice (first at line {first})",
                                section.header
                            ),
                        )
                        .with_hint("give each root its own name")
                        .at_line(Some(section.line)),
                    );
                }
            }
            roots.push(Value::Table(Table::new()));
            format!("watch[{}]", roots.len() - 1)
        } else {
            if section.label.is_some() {
                input.problems.push(
                    Problem::error(
                        name,
                        format!("`{}`: only [watch] sections take a name", section.header),
                    )
                    .with_hint(format!("write [{name}]"))
                    .at_line(Some(section.line)),
                );
            }
            if let Some(first) = seen_sections.insert(name.to_owned(), section.line) {
                input.problems.push(
                    Problem::error(
                        name,
                        format!("[{name}] appears twice (first at line {first})"),
                    )
                    .with_hint("merge the two sections into one")
                    .at_line(Some(section.line)),
                );
                continue;
            }
            name.to_owned()
        };
        input.lines.insert(name.to_owned(), section.line);
        input.lines.insert(key.clone(), section.line);
        let (table, keys) = entries(section, name, &key, &mut input);
        mapped.push(Mapped {
            header: if name == "watch" {
                "[[watch]]".into()
            } else {
                format!("[{name}]")
            },
            path: key.clone(),
            section: index,
            keys,
        });
        if name == "watch" {
            if let Some(last) = roots.last_mut() {
                *last = Value::Table(table);
            }
        } else {
            input.table.insert(name.to_owned(), Value::Table(table));
        }
    }
    if !roots.is_empty() {
        input.table.insert("watch".into(), Value::Array(roots));
    }
    if let Some((table, _)) = email {
        let alerts = input
            .table
            .entry("alerts")
            .or_insert_with(|| Value::Table(Table::new()));
        if let Value::Table(alerts) = alerts {
            alerts.insert("email".into(), Value::Table(table));
        }
    }
    (input, mapped)
}

/// The entries of one section as a table, and which entry became which key; problems for
/// unknown, doubled and bad keys.
fn entries(
    section: &Section,
    name: &str,
    key: &str,
    input: &mut Input,
) -> (Table, Vec<(usize, &'static str)>) {
    let mut accepted = Vec::new();
    let Input {
        lines,
        problems,
        failed,
        ..
    } = input;
    let mut table = Table::new();
    let mut first_line: HashMap<&str, usize> = HashMap::new();
    for (index, entry) in section.entries.iter().enumerate() {
        let at = |k: &str| format!("{key}.{k}");
        let Some((known, kind, old)) = schema::key(name, &entry.key) else {
            let keys = schema::keys(name).unwrap_or_default();
            let hint =
                did_you_mean(&entry.key, keys.iter().map(|(k, _)| *k)).unwrap_or_else(|| {
                    let all: Vec<_> = keys.iter().map(|(k, _)| *k).collect();
                    format!("known keys in [{name}]: {}", all.join(", "))
                });
            problems.push(
                Problem::error(at(&entry.key), format!("unknown key `{}`", entry.raw_key))
                    .with_hint(hint)
                    .at_line(Some(entry.line)),
            );
            continue;
        };
        if old {
            problems.push(deprecated(
                &at(known),
                &format!("`{}` is an old name of `{known}`", entry.raw_key),
                &format!("rename it `{known}` (fleetctl config migrate does)"),
                entry.line,
            ));
        }
        if kind == schema::Kind::Subsection {
            problems.push(
                Problem::error(at(known), format!("`{known}` is a section of its own"))
                    .with_hint(format!("write its keys under [{name}.{known}]"))
                    .at_line(Some(entry.line)),
            );
            continue;
        }
        if let Some(first) = first_line.insert(known, entry.line) {
            problems.push(
                Problem::error(at(known), format!("is set twice (first at line {first})"))
                    .with_hint("keep one of them")
                    .at_line(Some(entry.line)),
            );
            continue;
        }
        lines.insert(at(known), entry.line);
        accepted.push((index, known));
        match values::convert(&entry.value, kind) {
            Ok(Some(value)) => {
                table.insert(known.to_owned(), value);
            }
            Ok(None) => {}
            Err(message) => {
                problems.push(Problem::error(at(known), message).at_line(Some(entry.line)));
                failed.push(at(known));
            }
        }
    }
    (table, accepted)
}

fn deprecated(key: &str, message: &str, hint: &str, line: usize) -> Problem {
    Problem::warning(key, format!("{message}, which is deprecated"))
        .with_hint(hint)
        .at_line(Some(line))
}
