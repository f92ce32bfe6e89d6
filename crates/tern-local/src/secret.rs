//! The engine's signing secret: 32 random bytes, generated on first start and kept in `<data_dir>/secret`
//! (readable by its owner only), so that tokens signed before a restart still verify after it.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use rand::RngCore;

use crate::error::LocalError;

const SECRET_BYTES: usize = 32;

/// Reads the secret at `path`, creating it first when absent.
pub fn load_or_create(path: &Path) -> Result<Vec<u8>, LocalError> {
    match fs::read_to_string(path) {
        Ok(text) => parse(path, &text),
        Err(error) if error.kind() == io::ErrorKind::NotFound => create(path),
        Err(source) => Err(LocalError::Secret {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn parse(path: &Path, text: &str) -> Result<Vec<u8>, LocalError> {
    let malformed = |reason: String| LocalError::SecretMalformed {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = hex::decode(text.trim()).map_err(|e| malformed(format!("not hex: {e}")))?;
    if bytes.len() != SECRET_BYTES {
        return Err(malformed(format!(
            "{} bytes instead of {SECRET_BYTES}",
            bytes.len()
        )));
    }
    Ok(bytes)
}

/// Writes a fresh secret to a private temporary file and links it into place: the link fails if another
/// process created the secret meanwhile, and then that one is used, so two starts never disagree and no
/// reader ever sees a half-written secret.
fn create(path: &Path) -> Result<Vec<u8>, LocalError> {
    let failed = |source| LocalError::Secret {
        path: path.to_path_buf(),
        source,
    };
    let mut secret = vec![0u8; SECRET_BYTES];
    rand::rng().fill_bytes(&mut secret);

    let temp = temp_path(path);
    write_private(&temp, hex::encode(&secret).as_bytes()).map_err(failed)?;
    let linked = fs::hard_link(&temp, path);
    fs::remove_file(&temp).map_err(failed)?;
    match linked {
        Ok(()) => Ok(secret),
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
            let text = fs::read_to_string(path).map_err(failed)?;
            parse(path, &text)
        }
        Err(source) => Err(failed(source)),
    }
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}", std::process::id()));
    path.with_file_name(name)
}

fn write_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_is_created_once_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        let first = load_or_create(&path).unwrap();
        assert_eq!(first.len(), SECRET_BYTES);
        assert_eq!(load_or_create(&path).unwrap(), first);
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("secret")]);
    }

    #[cfg(unix)]
    #[test]
    fn the_secret_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        load_or_create(&path).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn a_malformed_secret_is_reported_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        fs::write(&path, "not hex").unwrap();
        let error = load_or_create(&path).unwrap_err();
        assert!(
            matches!(error, LocalError::SecretMalformed { .. }),
            "{error}"
        );
        fs::write(&path, "abcd").unwrap();
        let error = load_or_create(&path).unwrap_err();
        assert!(
            error.to_string().contains("2 bytes instead of 32"),
            "{error}"
        );
        assert_eq!(fs::read_to_string(&path).unwrap(), "abcd");
    }
}
