//! Property tests: the checkpoint reader never panics on arbitrary bytes, whatever format
//! they pretend to be (plain garbage, a zip local-file header as PyTorch files start, or a
//! safetensors length prefix followed by junk); it returns an error naming the file.

use proptest::prelude::*;
use saddlescope_analysis::read_checkpoint;

fn check(bytes: &[u8]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fuzz.pth");
    std::fs::write(&path, bytes).unwrap();
    if let Err(e) = read_checkpoint(&path) {
        prop_assert!(e.to_string().contains("fuzz.pth"), "{e}");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        check(&bytes)?;
    }

    #[test]
    fn zip_prefixed_junk(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut file = b"PK\x03\x04".to_vec();
        file.extend(bytes);
        check(&file)?;
    }

    #[test]
    fn safetensors_prefixed_junk(header in "[ -~]{0,200}", len in 0u64..400) {
        let mut file = len.to_le_bytes().to_vec();
        file.extend(header.as_bytes());
        check(&file)?;
    }
}
