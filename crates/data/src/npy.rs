//! A strict reader of NumPy `.npy` files holding `f4`/`f8` arrays.
//!
//! Format (numpy `lib/format.py`): the magic `\x93NUMPY`, a version byte pair (1.0, 2.0 or
//! 3.0), a little-endian header length (u16 for 1.0, u32 for 2.0 and 3.0), then a Python
//! dict literal `{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }` padded with
//! spaces and a newline, then the raw data. Unlike lenient readers this one rejects
//! unknown header keys, other dtypes, and data that is shorter *or longer* than the shape
//! says, and it compares the declared size with the file length before allocating, so a
//! lying header cannot make it allocate terabytes. Every error names the file
//! ([`Error::BadNpy`], or [`Error::Io`] when the file cannot be read).

use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// What is wrong with a file, before the path is attached: a message, or an I/O failure.
enum Fault {
    Bad(String),
    Io(std::io::Error),
}

impl From<std::io::Error> for Fault {
    fn from(e: std::io::Error) -> Self {
        Fault::Io(e)
    }
}

/// Returns `Err(Fault::Bad(format!(...)))` unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(Fault::Bad(format!($($fmt)+)));
        }
    };
}

/// Returns `Err(Fault::Bad(format!(...)))`.
macro_rules! bail {
    ($($fmt:tt)+) => {
        return Err(Fault::Bad(format!($($fmt)+)))
    };
}

/// An array read from a `.npy` file, widened to f64, in C (row-major) order whatever the
/// file's order.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    /// The shape, as in numpy.
    pub shape: Vec<usize>,
    /// The values in C order.
    pub data: Vec<f64>,
}

/// Formats a shape as Python prints a tuple: `()`, `(5,)`, `(3, 4)`.
pub fn shape_string(shape: &[usize]) -> String {
    match shape {
        [one] => format!("({one},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Reads a `.npy` file of dtype `<f8`, `>f8`, `<f4` or `>f4` (any version, C or Fortran
/// order).
///
/// # Errors
/// [`Error::BadNpy`] (`FILE: what is wrong`) for anything but such a file, [`Error::Io`] when
/// it cannot be read.
pub fn read_npy(path: &Path) -> Result<NpyArray> {
    read_inner(path).map_err(|fault| match fault {
        Fault::Bad(detail) => Error::BadNpy {
            path: path.to_path_buf(),
            detail,
        },
        Fault::Io(source) => Error::Io {
            path: path.to_path_buf(),
            source,
        },
    })
}

/// The element types accepted.
#[derive(Debug, Clone, Copy)]
struct Dtype {
    size: usize,
    big_endian: bool,
}

fn read_inner(path: &Path) -> Result<NpyArray, Fault> {
    let mut file = File::open(path)?;
    let file_len = file.metadata()?.len();
    ensure!(
        file_len >= 8,
        "not a .npy file: shorter than the 8-byte preamble"
    );
    let mut preamble = [0u8; 8];
    file.read_exact(&mut preamble)?;
    ensure!(
        &preamble[..6] == b"\x93NUMPY",
        "not a .npy file: bad magic \"{}\" (expected \"\\x93NUMPY\")",
        preamble[..6].escape_ascii()
    );
    let (len_bytes, utf8) = match (preamble[6], preamble[7]) {
        (1, 0) => (2, false),
        (2, 0) => (4, false),
        (3, 0) => (4, true),
        (major, minor) => {
            bail!("unsupported .npy version {major}.{minor} (expected 1.0, 2.0 or 3.0)")
        }
    };
    ensure!(file_len >= 8 + len_bytes as u64, "truncated header length");
    let mut len_buf = [0u8; 4];
    file.read_exact(&mut len_buf[..len_bytes])?;
    let header_len = u32::from_le_bytes(len_buf) as u64;
    let data_start = 8 + len_bytes as u64 + header_len;
    ensure!(
        data_start <= file_len,
        "truncated header: {header_len} bytes declared, file has {file_len} in all"
    );
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header)?;
    ensure!(
        utf8 || header.is_ascii(),
        "header of a version 1/2 file is not ASCII"
    );
    let Ok(header) = std::str::from_utf8(&header) else {
        bail!("header is not UTF-8")
    };
    let (descr, fortran_order, shape) = parse_header(header)?;
    let dtype = match descr.as_str() {
        "<f8" => Dtype {
            size: 8,
            big_endian: false,
        },
        ">f8" => Dtype {
            size: 8,
            big_endian: true,
        },
        "<f4" => Dtype {
            size: 4,
            big_endian: false,
        },
        ">f4" => Dtype {
            size: 4,
            big_endian: true,
        },
        other => bail!("unsupported dtype '{other}' (expected '<f8', '<f4', '>f8' or '>f4')"),
    };
    let Some(count) = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)) else {
        bail!("shape {} overflows", shape_string(&shape))
    };
    let Some(needed) = (count as u64).checked_mul(dtype.size as u64) else {
        bail!("data size overflows")
    };
    let present = file_len - data_start;
    ensure!(
        present >= needed,
        "truncated: shape {} of '{descr}' needs {needed} data bytes, file has {present}",
        shape_string(&shape)
    );
    ensure!(
        present == needed,
        "trailing data: shape {} of '{descr}' needs {needed} data bytes, file has {present}",
        shape_string(&shape)
    );
    let mut raw = vec![0u8; needed as usize];
    file.read_exact(&mut raw)?;
    let data = decode(&raw, dtype);
    let data = if fortran_order {
        fortran_to_c(&data, &shape)
    } else {
        data
    };
    Ok(NpyArray { shape, data })
}

/// Widens raw little- or big-endian floats to f64.
fn decode(raw: &[u8], dtype: Dtype) -> Vec<f64> {
    match (dtype.size, dtype.big_endian) {
        (8, false) => raw
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().unwrap_or_default()))
            .collect(),
        (8, true) => raw
            .chunks_exact(8)
            .map(|b| f64::from_be_bytes(b.try_into().unwrap_or_default()))
            .collect(),
        (_, false) => raw
            .chunks_exact(4)
            .map(|b| f64::from(f32::from_le_bytes(b.try_into().unwrap_or_default())))
            .collect(),
        (_, true) => raw
            .chunks_exact(4)
            .map(|b| f64::from(f32::from_be_bytes(b.try_into().unwrap_or_default())))
            .collect(),
    }
}

/// Reorders a Fortran-order (first index fastest) array into C order (last index fastest).
fn fortran_to_c(data: &[f64], shape: &[usize]) -> Vec<f64> {
    let mut strides = vec![1usize; shape.len()];
    for k in 1..shape.len() {
        strides[k] = strides[k - 1] * shape[k - 1];
    }
    let mut index = vec![0usize; shape.len()];
    let mut out = Vec::with_capacity(data.len());
    for _ in 0..data.len() {
        out.push(
            data[index
                .iter()
                .zip(&strides)
                .map(|(i, s)| i * s)
                .sum::<usize>()],
        );
        // Advance the C-order multi-index: the last axis fastest.
        for k in (0..shape.len()).rev() {
            index[k] += 1;
            if index[k] < shape[k] {
                break;
            }
            index[k] = 0;
        }
    }
    out
}

/// Parses the header dict into (descr, fortran_order, shape); exactly these three keys.
fn parse_header(header: &str) -> Result<(String, bool, Vec<usize>), Fault> {
    let mut p = Parser {
        s: header.trim_end().as_bytes(),
        i: 0,
    };
    p.expect(b'{')?;
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    loop {
        p.skip_ws();
        if p.eat(b'}') {
            break;
        }
        let key = p.string()?;
        p.skip_ws();
        p.expect(b':')?;
        p.skip_ws();
        let duplicate = match key.as_str() {
            "descr" => descr.replace(p.string()?).is_some(),
            "fortran_order" => fortran.replace(p.boolean()?).is_some(),
            "shape" => shape.replace(p.tuple()?).is_some(),
            other => bail!("bad header: unexpected key '{other}'"),
        };
        ensure!(!duplicate, "bad header: key '{key}' repeated");
        p.skip_ws();
        if !p.eat(b',') {
            p.skip_ws();
            p.expect(b'}')?;
            break;
        }
    }
    ensure!(p.i == p.s.len(), "bad header: text after the dict");
    match (descr, fortran, shape) {
        (Some(d), Some(f), Some(s)) => Ok((d, f, s)),
        _ => bail!("bad header: it needs the keys 'descr', 'fortran_order' and 'shape'"),
    }
}

/// A cursor over the header's bytes.
struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        let hit = self.s.get(self.i) == Some(&c);
        self.i += usize::from(hit);
        hit
    }

    fn expect(&mut self, c: u8) -> Result<(), Fault> {
        ensure!(
            self.eat(c),
            "bad header: expected '{}' at byte {}",
            c as char,
            self.i
        );
        Ok(())
    }

    /// A Python string literal in single or double quotes (no escapes).
    fn string(&mut self) -> Result<String, Fault> {
        let Some(&quote) = self.s.get(self.i) else {
            bail!("bad header: unexpected end")
        };
        ensure!(
            quote == b'\'' || quote == b'"',
            "bad header: expected a string at byte {}",
            self.i
        );
        let start = self.i + 1;
        let Some(len) = self.s[start..].iter().position(|&c| c == quote) else {
            bail!("bad header: unterminated string")
        };
        self.i = start + len + 1;
        Ok(String::from_utf8_lossy(&self.s[start..start + len]).into_owned())
    }

    fn boolean(&mut self) -> Result<bool, Fault> {
        for (word, value) in [(&b"True"[..], true), (&b"False"[..], false)] {
            if self.s[self.i..].starts_with(word) {
                self.i += word.len();
                return Ok(value);
            }
        }
        bail!("bad header: expected True or False at byte {}", self.i)
    }

    /// A tuple of non-negative integers: `()`, `(5,)`, `(3, 4)`.
    fn tuple(&mut self) -> Result<Vec<usize>, Fault> {
        self.expect(b'(')?;
        let mut dims = Vec::new();
        loop {
            self.skip_ws();
            if self.eat(b')') {
                return Ok(dims);
            }
            let start = self.i;
            while self.i < self.s.len() && self.s[self.i].is_ascii_digit() {
                self.i += 1;
            }
            let digits = std::str::from_utf8(&self.s[start..self.i]).unwrap_or_default();
            let Ok(dim) = digits.parse() else {
                bail!("bad header: expected a dimension at byte {start}")
            };
            dims.push(dim);
            self.skip_ws();
            if !self.eat(b',') {
                self.skip_ws();
                self.expect(b')')?;
                return Ok(dims);
            }
        }
    }
}

/// Writes a `.npy` file for tests (version 1.0 unless `version` says otherwise).
#[cfg(test)]
fn write_test_npy(
    path: &Path,
    version: u8,
    descr: &str,
    fortran: bool,
    shape: &str,
    payload: &[u8],
) {
    let dict = format!(
        "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}",
        if fortran { "True" } else { "False" }
    );
    let len_bytes = if version == 1 { 2 } else { 4 };
    let unpadded = 8 + len_bytes + dict.len() + 1;
    let header = format!(
        "{dict}{}\n",
        " ".repeat(unpadded.next_multiple_of(64) - unpadded)
    );
    let mut bytes = b"\x93NUMPY".to_vec();
    bytes.extend([version, 0]);
    if version == 1 {
        bytes.extend((header.len() as u16).to_le_bytes());
    } else {
        bytes.extend((header.len() as u32).to_le_bytes());
    }
    bytes.extend(header.as_bytes());
    bytes.extend(payload);
    std::fs::write(path, bytes).expect("write test npy");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f64_le(values: &[f64]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    /// The message as a front end prints it: the error and its sources.
    fn error(path: &Path) -> String {
        let err = read_npy(path).unwrap_err();
        match std::error::Error::source(&err) {
            Some(source) => format!("{err}: {source}"),
            None => err.to_string(),
        }
    }

    #[test]
    fn reads_c_and_fortran_order_f64_and_f32_all_versions() {
        let dir = tempfile::tempdir().unwrap();
        // The 2 x 3 matrix [[1, 2, 3], [4, 5, 6]].
        let c = dir.path().join("c.npy");
        write_test_npy(
            &c,
            1,
            "<f8",
            false,
            "(2, 3)",
            &f64_le(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
        );
        let expected = NpyArray {
            shape: vec![2, 3],
            data: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        };
        assert_eq!(read_npy(&c).unwrap(), expected);
        let f = dir.path().join("f.npy");
        let column_major: Vec<u8> = [1.0f32, 4.0, 2.0, 5.0, 3.0, 6.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        write_test_npy(&f, 2, "<f4", true, "(2, 3)", &column_major);
        assert_eq!(read_npy(&f).unwrap(), expected);
        let be = dir.path().join("be.npy");
        let big: Vec<u8> = [1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        write_test_npy(&be, 3, ">f8", false, "(2, 3)", &big);
        assert_eq!(read_npy(&be).unwrap(), expected);
        // 3-D Fortran order: element (i, j, k) at i + 2j + 4k.
        let f3 = dir.path().join("f3.npy");
        let values: Vec<f64> = (0..8).map(f64::from).collect();
        write_test_npy(&f3, 1, "<f8", true, "(2, 2, 2)", &f64_le(&values));
        assert_eq!(
            read_npy(&f3).unwrap().data,
            vec![0.0, 4.0, 2.0, 6.0, 1.0, 5.0, 3.0, 7.0]
        );
        // 1-D and 0-D shapes.
        let v = dir.path().join("v.npy");
        write_test_npy(&v, 1, "<f8", false, "(2,)", &f64_le(&[7.0, 8.0]));
        assert_eq!(read_npy(&v).unwrap().shape, vec![2]);
        let s = dir.path().join("s.npy");
        write_test_npy(&s, 1, "<f8", false, "()", &f64_le(&[9.0]));
        assert_eq!(
            read_npy(&s).unwrap(),
            NpyArray {
                shape: vec![],
                data: vec![9.0]
            }
        );
    }

    #[test]
    fn rejects_bad_files_naming_them() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.npy");
        let name = p.display().to_string();

        std::fs::write(&p, b"PK\x03\x04 not numpy at all").unwrap();
        let e = error(&p);
        assert!(
            e.starts_with(&format!("{name}: not a .npy file: bad magic")),
            "{e}"
        );

        write_test_npy(&p, 1, "<f8", false, "(3, 3)", &f64_le(&[1.0; 8]));
        let e = error(&p);
        assert!(
            e.starts_with(&format!(
                "{name}: truncated: shape (3, 3) of '<f8' needs 72 data bytes, file has 64"
            )),
            "{e}"
        );

        write_test_npy(&p, 1, "<f8", false, "(2, 2)", &f64_le(&[1.0; 5]));
        assert!(error(&p).contains("trailing data"), "{}", error(&p));

        write_test_npy(&p, 1, "<i8", false, "(2, 2)", &f64_le(&[1.0; 4]));
        assert!(
            error(&p).contains("unsupported dtype '<i8'"),
            "{}",
            error(&p)
        );

        // A lying shape is rejected from the file length, before any allocation.
        write_test_npy(&p, 1, "<f8", false, "(100000000, 100000000)", &[]);
        assert!(
            error(&p).contains("truncated: shape (100000000, 100000000)"),
            "{}",
            error(&p)
        );
        write_test_npy(&p, 1, "<f8", false, "(18446744073709551615, 2)", &[]);
        assert!(error(&p).contains("overflows"), "{}", error(&p));

        write_test_npy(
            &p,
            1,
            "<f8",
            false,
            "(2, 2), 'extra': 1",
            &f64_le(&[1.0; 4]),
        );
        assert!(
            error(&p).contains("unexpected key 'extra'"),
            "{}",
            error(&p)
        );

        let mut bytes = b"\x93NUMPY\x04\x00".to_vec();
        bytes.extend([0u8; 8]);
        std::fs::write(&p, bytes).unwrap();
        assert!(
            error(&p).contains("unsupported .npy version 4.0"),
            "{}",
            error(&p)
        );

        std::fs::write(&p, b"\x93NU").unwrap();
        assert!(
            error(&p).contains("shorter than the 8-byte preamble"),
            "{}",
            error(&p)
        );

        let missing = dir.path().join("missing.npy");
        assert!(error(&missing).starts_with(&missing.display().to_string()));
    }

    #[test]
    fn shapes_print_like_python_tuples() {
        assert_eq!(shape_string(&[]), "()");
        assert_eq!(shape_string(&[5]), "(5,)");
        assert_eq!(shape_string(&[3, 4]), "(3, 4)");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]

        /// Arbitrary bytes behind the npy magic and a header length never panic the reader.
        #[test]
        fn arbitrary_bytes_never_panic(
            header_len in 0u16..300,
            header in "[ -~]{0,300}",
            tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("fuzz.npy");
            let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
            bytes.extend(header_len.to_le_bytes());
            bytes.extend(header.as_bytes());
            bytes.extend(tail);
            std::fs::write(&path, bytes).unwrap();
            if let Err(e) = read_npy(&path) {
                let message = e.to_string();
                proptest::prop_assert!(message.contains("fuzz.npy"), "{}", message);
            }
        }
    }
}
