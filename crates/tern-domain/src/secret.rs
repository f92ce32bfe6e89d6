//! Random identifiers and secrets, and the one-way hash under which secrets are stored.

use rand::Rng;
use rand::distr::{Alphanumeric, Distribution, Uniform};
use sha2::{Digest, Sha256};

/// `len` characters from `[A-Za-z0-9]`, about 5.95 bits each, from the thread-local CSPRNG.
pub fn random_alphanumeric(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// `len` characters from `[a-z0-9]`, about 5.17 bits each: for identifiers that end up in URLs, S3 keys and
/// lake partitions, where mixed case would invite mistakes.
pub fn random_lowercase(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let index = Uniform::new(0, ALPHABET.len()).expect("the alphabet is not empty");
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(ALPHABET[index.sample(&mut rng)]))
        .collect()
}

/// The SHA-256 of `secret`, as lowercase hex.
pub fn sha256_hex(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_strings_have_the_asked_length_and_alphabet() {
        let mixed = random_alphanumeric(40);
        assert_eq!(mixed.len(), 40);
        assert!(mixed.chars().all(|c| c.is_ascii_alphanumeric()));
        let lower = random_lowercase(40);
        assert_eq!(lower.len(), 40);
        assert!(
            lower
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        );
        assert_ne!(random_alphanumeric(40), mixed, "two draws should differ");
    }

    #[test]
    fn sha256_hex_matches_the_known_digest() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
