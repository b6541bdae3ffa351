//! File access shared by the readers: existence checks that name the missing directory or
//! file, and whole-file reads that transparently decompress gzip (detected by its magic
//! bytes `1f 8b`, not by the file name, so a renamed file still reads).

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Fails with [`Error::MissingDir`] unless `dir` is a directory.
pub(crate) fn require_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        Ok(())
    } else {
        Err(Error::MissingDir {
            path: dir.to_path_buf(),
        })
    }
}

/// `dir/name.gz` if it exists, else `dir/name` if it exists, else [`Error::MissingFile`].
pub(crate) fn find_maybe_gz(dir: &Path, name: &str) -> Result<PathBuf> {
    let plain = dir.join(name);
    let gz = dir.join(format!("{name}.gz"));
    if gz.is_file() {
        Ok(gz)
    } else if plain.is_file() {
        Ok(plain)
    } else {
        Err(Error::MissingFile {
            path: plain,
            gz_too: true,
        })
    }
}

/// `dir/name` if it exists, else [`Error::MissingFile`].
pub(crate) fn find(dir: &Path, name: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::MissingFile {
            path,
            gz_too: false,
        })
    }
}

/// Reads a whole file, decompressing it when it is gzip.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    maybe_gunzip(path, bytes)
}

/// Decompresses `bytes` when they start with the gzip magic; `path` is only for messages.
pub(crate) fn maybe_gunzip(path: &Path, bytes: Vec<u8>) -> Result<Vec<u8>> {
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return Ok(bytes);
    }
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes.as_slice())
        .read_to_end(&mut out)
        .map_err(|source| Error::Gzip {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn reads_plain_and_gzip_alike() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("a");
        let packed = dir.path().join("b");
        std::fs::write(&plain, b"hello").unwrap();
        std::fs::write(&packed, gzip(b"hello")).unwrap();
        assert_eq!(read(&plain).unwrap(), b"hello");
        assert_eq!(read(&packed).unwrap(), b"hello");
    }

    #[test]
    fn corrupt_gzip_names_the_file() {
        let mut bytes = gzip(&[7; 1000]);
        bytes.truncate(bytes.len() / 2);
        let err = maybe_gunzip(Path::new("d/x.gz"), bytes).unwrap_err();
        assert!(matches!(err, Error::Gzip { .. }));
        assert_eq!(err.to_string(), "d/x.gz: bad gzip data");
    }

    #[test]
    fn prefers_gz_and_reports_missing_files_and_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let err = find_maybe_gz(dir.path(), "f").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{}/f[.gz]: no such file", dir.path().display())
        );
        std::fs::write(dir.path().join("f"), b"").unwrap();
        assert_eq!(
            find_maybe_gz(dir.path(), "f").unwrap(),
            dir.path().join("f")
        );
        std::fs::write(dir.path().join("f.gz"), b"").unwrap();
        assert_eq!(
            find_maybe_gz(dir.path(), "f").unwrap(),
            dir.path().join("f.gz")
        );
        let err = find(dir.path(), "g").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{}/g: no such file", dir.path().display())
        );
        let missing = dir.path().join("nope");
        let err = require_dir(&missing).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{}: no such directory", missing.display())
        );
    }

    #[test]
    fn unreadable_path_is_an_io_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        // Reading a directory as a file fails with an I/O error on every platform.
        let err = read(dir.path()).unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!("{}: cannot read", dir.path().display())
        );
    }
}
