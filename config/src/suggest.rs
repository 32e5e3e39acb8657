//! "Did you mean …?": the closest of a few known words to a misspelt one.

/// How similar (Jaro-Winkler, 0-1) a candidate must be to be suggested.
const THRESHOLD: f64 = 0.8;

/// The candidate most similar to `word`, when it is similar enough to be a likely typo.
pub(crate) fn closest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let word = word.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(&word, &c.to_lowercase()), c))
        .filter(|(score, _)| *score >= THRESHOLD)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// `did you mean `x`?` for the closest candidate, if any.
pub(crate) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    closest(word, candidates).map(|c| format!("did you mean `{c}`?"))
}

#[cfg(test)]
mod tests {
    use super::closest;

    #[test]
    fn suggests_only_close_words() {
        let keys = ["source", "output", "extensions", "recursive"];
        let cases = [
            ("extensionz", Some("extensions")),
            ("Extension", Some("extensions")),
            ("sourse", Some("source")),
            ("outptu", Some("output")),
            ("colour", None),
            ("x", None),
        ];
        for (word, want) in cases {
            assert_eq!(closest(word, keys), want, "{word}");
        }
    }
}
