//! Human-friendly Freight aliases in Kargo's adjective-animal style (e.g. `wonky-wombat`).

/// A random `adjective-noun` alias; the caller checks uniqueness in the project and retries.
pub fn generate_alias() -> String {
    // petname's two-word form is adjective-name, the same shape as Kargo's moniker aliases.
    petname::petname(2, "-").unwrap_or_else(|| format!("freight-{:08x}", fastrand::u32(..)))
}

/// Whether `alias` can be a label value (aliases are mirrored into `kargo.akuity.io/alias`).
pub fn is_valid_alias(alias: &str) -> bool {
    !alias.is_empty()
        && alias.len() <= 63
        && alias
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && alias.starts_with(|c: char| c.is_ascii_alphanumeric())
        && alias.ends_with(|c: char| c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_are_two_words_and_valid_labels() {
        for _ in 0..50 {
            let a = generate_alias();
            assert!(is_valid_alias(&a), "{a}");
            assert_eq!(a.split('-').count(), 2, "{a}");
        }
        assert!(!is_valid_alias("-bad"));
        assert!(!is_valid_alias(""));
    }
}
