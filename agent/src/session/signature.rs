//! The `signature` stage: with `[controller] trusted_keys`, a revision is applied only when an
//! operator signed it with one of those keys. The signature covers the generation and the
//! canonical SHA256 ([`h264_trust::signing::statement`]), so neither the controller nor anyone
//! on the network can change the bytes, or send signed bytes under another generation. A
//! rollback reassigns an earlier revision with its original signature, which verifies the same
//! way. Without trusted keys, signatures are not looked at (SHA256 alone is integrity, not
//! authenticity).
//!
//! The same check guards the last-known-good revision at start-up ([`super::startup`]), so a
//! revision stored before keys were pinned is not run on their watch.

use h264_trust::PublicKey;

/// Why a signature is not accepted; the message of the NACK.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// The trusted key that signed revision (`generation`, `sha256`), or why it is refused.
/// `None` when `trusted` is empty: signatures are not checked.
pub fn check(
    trusted: &[String],
    generation: u64,
    sha256: &str,
    signature: &str,
    signer_key: &str,
) -> Result<Option<PublicKey>, Refused> {
    // The keys were checked when the config was loaded; one that does not parse trusts nothing.
    let trusted: Vec<PublicKey> = trusted
        .iter()
        .filter_map(|k| PublicKey::parse(k).ok())
        .collect();
    if trusted.is_empty() {
        return Ok(None);
    }
    let how_to = "sign revisions with `fleetctl apply --sign-key FILE` using a key listed in \
                  [controller] trusted_keys";
    if signature.trim().is_empty() && signer_key.trim().is_empty() {
        return Err(Refused(format!(
            "the revision is unsigned, and this agent applies only revisions signed by one of its \
             {} trusted key(s); {how_to}",
            trusted.len()
        )));
    }
    let signer = PublicKey::parse(signer_key).map_err(|_| {
        let shown: String = signer_key.chars().take(80).collect();
        Refused(format!(
            "the revision names `{shown}` as its signer, which is not a public key \
             (ed25519:BASE64); {how_to}"
        ))
    })?;
    if !trusted.contains(&signer) {
        return Err(Refused(format!(
            "the revision is signed by {signer}, which is not one of this agent's trusted keys; \
             {how_to}"
        )));
    }
    if signature.trim().is_empty() {
        return Err(Refused(format!(
            "the revision names {signer} as its signer but carries no signature; {how_to}"
        )));
    }
    signer.verify(generation, sha256, signature).map_err(|e| {
        Refused(format!(
            "the signature by {signer} is invalid for generation {generation} with sha256 \
             {sha256} ({e}): the revision or its generation changed after it was signed"
        ))
    })?;
    Ok(Some(signer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use h264_trust::SecretKey;

    #[test]
    fn only_a_trusted_signature_over_this_generation_and_hash_passes() {
        let (good, other) = (SecretKey::generate(), SecretKey::generate());
        let trusted = vec![good.public().to_string()];
        let sig = good.sign(3, "abc");
        let key = good.public().to_string();
        assert_eq!(
            check(&trusted, 3, "abc", &sig, &key),
            Ok(Some(good.public()))
        );
        assert_eq!(
            check(&[], 3, "abc", "", ""),
            Ok(None),
            "not checked without keys"
        );
        let refused = |generation, sha: &str, sig: &str, key: &str| {
            check(&trusted, generation, sha, sig, key).unwrap_err().0
        };
        assert!(refused(3, "abc", "", "").contains("unsigned"));
        let theirs = other.public().to_string();
        let msg = refused(3, "abc", &other.sign(3, "abc"), &theirs);
        assert!(msg.contains(&theirs) && msg.contains("not one of"), "{msg}");
        assert!(refused(4, "abc", &sig, &key).contains("invalid for generation 4"));
        assert!(refused(3, "abd", &sig, &key).contains("invalid"));
        assert!(refused(3, "abc", "bm9wZQ==", &key).contains("invalid"));
        assert!(refused(3, "abc", &sig, "ed25519:???").contains("not a public key"));
        assert!(refused(3, "abc", "", &key).contains("no signature"));
    }
}
