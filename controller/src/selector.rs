//! Label selectors: `k=v[,k2=v2...]`; an agent matches when it has every pair.

use std::collections::BTreeMap;

/// A parsed selector; empty matches every agent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    pairs: Vec<(String, String)>,
}

/// A selector that is not `k=v[,k=v...]`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("selector `{text}`: `{part}` is not k=v (write e.g. site=paris,tier=canary)")]
pub struct SelectorError {
    /// The whole selector.
    pub text: String,
    /// The part at fault.
    pub part: String,
}

impl Selector {
    /// Parses `k=v[,k=v...]`; blank text is the empty selector.
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let mut pairs = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.split_once('=') {
                Some((k, v)) if !k.trim().is_empty() => {
                    pairs.push((k.trim().to_owned(), v.trim().to_owned()))
                }
                _ => {
                    return Err(SelectorError {
                        text: text.to_owned(),
                        part: part.to_owned(),
                    })
                }
            }
        }
        Ok(Self { pairs })
    }

    /// Whether `labels` holds every pair.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.pairs
            .iter()
            .all(|(k, v)| labels.get(k).is_some_and(|l| l == v))
    }

    /// Whether it selects everything.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_matches() {
        let labels: BTreeMap<_, _> = [("site", "paris"), ("tier", "canary")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let cases = [
            ("", true),
            ("site=paris", true),
            ("site=paris, tier=canary", true),
            ("site=lyon", false),
            ("site=paris,rack=2", false),
        ];
        for (text, want) in cases {
            assert_eq!(
                Selector::parse(text).unwrap().matches(&labels),
                want,
                "{text}"
            );
        }
        for bad in ["site", "=paris", "site=paris,oops"] {
            assert!(Selector::parse(bad).is_err(), "{bad}");
        }
    }
}
