//! Guards applied before any parser sees a file: a size limit, UTF-8, and (for YAML, whose parser
//! slows down badly on deep flow nesting) a nesting limit. Each failure is a [`Problem`] that says
//! what was refused and why, so hostile or mistaken input ends in a clear error, quickly.

use std::io::Read;
use std::path::Path;

use crate::problem::Problem;

/// The largest config file read: far above any real config (a few KiB), far below what could
/// hurt the agent.
pub const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;

/// The deepest nesting of lists and tables accepted in a YAML manifest (real ones nest 5 deep).
pub const MAX_NESTING: usize = 32;

/// Why a file could not be turned into text.
#[derive(Debug)]
pub(crate) enum ReadFailure {
    /// The OS refused (missing, unreadable).
    Io(std::io::Error),
    /// The content is refused: too large, not UTF-8.
    Refused(Problem),
}

/// Reads `path` as UTF-8 text of at most [`MAX_CONFIG_BYTES`], without a leading byte-order mark.
pub(crate) fn read_text(path: &Path) -> Result<String, ReadFailure> {
    let file = std::fs::File::open(path).map_err(ReadFailure::Io)?;
    let declared = file.metadata().map_err(ReadFailure::Io)?.len();
    if declared > MAX_CONFIG_BYTES {
        return Err(ReadFailure::Refused(too_large(declared)));
    }
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadFailure::Io)?;
    text_of(bytes).map_err(ReadFailure::Refused)
}

/// Reads the config file at `path` as text, with the same guards as the loaders (size limit
/// checked before reading, UTF-8, byte-order mark removed).
pub fn read_config_text(path: &Path) -> Result<String, crate::ConfigError> {
    read_text(path).map_err(|e| match e {
        ReadFailure::Io(source) => crate::ConfigError::Read {
            path: path.to_path_buf(),
            source,
        },
        ReadFailure::Refused(problem) => crate::ConfigError::Invalid {
            problems: vec![problem.in_file(Some(path))],
        },
    })
}

/// `bytes` as text: size-checked, UTF-8-checked, byte-order mark removed.
pub(crate) fn text_of(bytes: Vec<u8>) -> Result<String, Problem> {
    check_size(bytes.len())?;
    match String::from_utf8(bytes) {
        Ok(mut text) => {
            if text.starts_with('\u{feff}') {
                text.drain(..'\u{feff}'.len_utf8());
            }
            Ok(text)
        }
        Err(e) => {
            let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
            let column = valid.iter().rev().take_while(|b| **b != b'\n').count() + 1;
            Err(Problem::error(
                "",
                format!("is not valid UTF-8 text (first bad byte at line {line}, column {column})"),
            )
            .with_hint("save the file as UTF-8; is it a config file at all?")
            .at_line(Some(line)))
        }
    }
}

/// Refuses texts larger than [`MAX_CONFIG_BYTES`].
pub(crate) fn check_size(len: usize) -> Result<(), Problem> {
    match u64::try_from(len) {
        Ok(n) if n <= MAX_CONFIG_BYTES => Ok(()),
        _ => Err(too_large(u64::try_from(len).unwrap_or(u64::MAX))),
    }
}

fn too_large(len: u64) -> Problem {
    Problem::error(
        "",
        format!(
            "is {len} bytes; config files larger than {} MiB are refused unread",
            MAX_CONFIG_BYTES >> 20
        ),
    )
    .with_hint("a config file is a few KiB: check that this is the right file")
}

/// The deepest nesting of flow brackets (`[`, `{`) outside quotes and comments, and the line
/// where it is first exceeded past `limit`.
pub(crate) fn flow_nesting(text: &str, limit: usize) -> Result<(), Problem> {
    let mut depth = 0usize;
    for (n, line) in text.lines().enumerate() {
        let mut quote: Option<char> = None;
        let mut prev = ' ';
        for c in line.chars() {
            match quote {
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None => {
                    match c {
                        '#' if prev.is_whitespace() => break,
                        '"' | '\'' if prev.is_whitespace() || "[{,:".contains(prev) => {
                            quote = Some(c);
                        }
                        '[' | '{' => {
                            depth += 1;
                            if depth > limit {
                                return Err(Problem::error(
                                "",
                                format!("nests lists or maps more than {limit} deep"),
                            )
                            .with_hint("a manifest nests a few levels; this looks generated or hostile")
                            .at_line(Some(n + 1)));
                            }
                        }
                        ']' | '}' => depth = depth.saturating_sub(1),
                        _ => {}
                    }
                }
            }
            prev = c;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_errors_point_at_the_line() {
        let p = text_of(b"a = 1\nb = \"\xff\"\n".to_vec()).unwrap_err();
        assert_eq!(p.line, Some(2));
        assert!(p.message.contains("line 2, column 6"), "{p}");
        assert_eq!(text_of(b"\xef\xbb\xbfa = 1".to_vec()).unwrap(), "a = 1");
    }

    #[test]
    fn sizes_over_the_limit_are_refused() {
        assert!(check_size(4 << 20).is_ok());
        let p = check_size((4 << 20) + 1).unwrap_err();
        assert!(p.message.contains("larger than 4 MiB"), "{p}");
    }

    #[test]
    fn flow_nesting_ignores_quotes_and_comments() {
        assert!(flow_nesting("a: [[1]]\nb: \"[[[[\" # [[[[", 2).is_ok());
        let p = flow_nesting("a:\n  b: [[[1]]]\n", 2).unwrap_err();
        assert_eq!(p.line, Some(2));
    }
}
