//! What a checkpoint says about itself: [`CheckpointMeta`], stored as JSON under the key
//! [`METADATA_KEY`] of a safetensors header, and [`CheckpointOrigin`], the copy of it that an
//! analysis keeps in `spectrum.json` (or what the flags said about a foreign checkpoint).
//!
//! The recipe inside the metadata (architecture, long-tailed data, training settings) is
//! made of types that live above this crate, in `nn`, `data` and `train`. So
//! [`CheckpointMeta`] is generic over those three parts: `saddlescope_train::CheckpointMeta`
//! fills them with its typed recipe (and is what writes and loads checkpoints), while the
//! default parameters keep them as recorded (the architecture's text form and JSON values),
//! which is all a reader of results needs next to the typed test metrics.

use std::collections::HashMap;
use std::path::Path;

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Error, EvalMetrics};

/// Header key under which [`CheckpointMeta`] is stored.
pub const METADATA_KEY: &str = "saddlescope";

/// Version of the checkpoint layout; bumped when a field changes meaning.
pub const FORMAT_VERSION: u32 = 1;

/// What a checkpoint says about itself. Field names are the JSON keys, in file order.
///
/// `Model`, `Data` and `Recipe` are the architecture, the long-tailed training set and the
/// training recipe: typed by `saddlescope_train::CheckpointMeta`, as recorded (text and JSON
/// values) by default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta<Model = String, Data = serde_json::Value, Recipe = serde_json::Value> {
    /// Layout version ([`FORMAT_VERSION`]).
    pub format: u32,
    /// saddlescope version that wrote the file.
    pub version: String,
    /// Architecture and its options.
    pub model: Model,
    /// Number of classes.
    pub classes: usize,
    /// Input shape `[C, H, W]`.
    pub input_shape: [usize; 3],
    /// Element type of the stored weights (`"f32"` or `"f64"`).
    pub dtype: String,
    /// The long-tailed training set: data-set spec, imbalance, ratio, n_max, seed, per-class
    /// counts and groups (enough to rebuild the exact subset).
    pub data: Data,
    /// The full training recipe (loss, DRW, SAM, optimizer, schedule).
    pub config: Recipe,
    /// Epochs completed when the file was written.
    pub epoch: usize,
    /// Test metrics after that epoch.
    pub test: Option<EvalMetrics>,
}

impl<Model: Serialize, Data: Serialize, Recipe: Serialize> CheckpointMeta<Model, Data, Recipe> {
    /// The metadata map stored in a safetensors header.
    ///
    /// # Errors
    /// serde_json's, if a part cannot be encoded (a bug).
    pub fn to_header(&self) -> serde_json::Result<HashMap<String, String>> {
        let json = serde_json::to_string(self)?;
        Ok(HashMap::from([(METADATA_KEY.to_string(), json)]))
    }

    /// The same metadata with its recipe as recorded, as a reader of results sees it.
    ///
    /// # Errors
    /// serde_json's, if a part cannot be encoded or the architecture's form is not text (a
    /// bug).
    pub fn recorded(&self) -> serde_json::Result<CheckpointMeta> {
        serde_json::from_value(serde_json::to_value(self)?)
    }
}

impl<Model: DeserializeOwned, Data: DeserializeOwned, Recipe: DeserializeOwned>
    CheckpointMeta<Model, Data, Recipe>
{
    /// Parses the metadata of the safetensors header of `path`; `None` when it has no
    /// saddlescope key (e.g. a file written by PyTorch).
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming `path` when the metadata is not what saddlescope writes.
    pub fn from_header(
        path: &Path,
        header: &HashMap<String, String>,
    ) -> Result<Option<Self>, Error> {
        let Some(json) = header.get(METADATA_KEY) else {
            return Ok(None);
        };
        serde_json::from_str(json)
            .map(Some)
            .map_err(|e| Error::corrupt(path, format!("bad saddlescope metadata ({e})")))
    }
}

/// Where the weights of an analysis came from, as `spectrum.json` records it (its
/// `checkpoint.metadata`).
///
/// In the file the keys are sorted at every level (as `spectrum.json` has always stored
/// them); a foreign checkpoint is told apart by `"format": "foreign"`.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckpointOrigin {
    /// A saddlescope checkpoint: its own metadata.
    Saddlescope(Box<CheckpointMeta>),
    /// A checkpoint without saddlescope metadata (PyTorch, plain safetensors): what the
    /// command line said about it.
    Foreign(ForeignCheckpoint),
}

/// What the command line said about a foreign checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForeignCheckpoint {
    /// The architecture given with `--arch`.
    pub arch: Option<String>,
    /// The number of classes (from `--classes` or the classifier's shape).
    pub classes: usize,
}

/// The `format` value of a foreign checkpoint's record.
const FOREIGN: &str = "foreign";

/// [`ForeignCheckpoint`] as stored: with `"format": "foreign"`.
#[derive(Serialize, Deserialize)]
struct ForeignRecord {
    #[serde(flatten)]
    checkpoint: ForeignCheckpoint,
    format: String,
}

impl CheckpointOrigin {
    /// The test metrics the checkpoint recorded (ours, when it was evaluated).
    pub fn test(&self) -> Option<&EvalMetrics> {
        match self {
            CheckpointOrigin::Saddlescope(meta) => meta.test.as_ref(),
            CheckpointOrigin::Foreign(_) => None,
        }
    }
}

impl Serialize for CheckpointOrigin {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Through a JSON value, whose maps are sorted: the form spectrum.json has.
        let value = match self {
            CheckpointOrigin::Saddlescope(meta) => serde_json::to_value(meta),
            CheckpointOrigin::Foreign(checkpoint) => serde_json::to_value(ForeignRecord {
                checkpoint: checkpoint.clone(),
                format: FOREIGN.into(),
            }),
        };
        value
            .map_err(serde::ser::Error::custom)?
            .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for CheckpointOrigin {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        if value.get("format").and_then(serde_json::Value::as_str) == Some(FOREIGN) {
            let record: ForeignRecord = serde_json::from_value(value).map_err(D::Error::custom)?;
            Ok(CheckpointOrigin::Foreign(record.checkpoint))
        } else {
            serde_json::from_value(value)
                .map(|meta| CheckpointOrigin::Saddlescope(Box::new(meta)))
                .map_err(D::Error::custom)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `saddlescope` header entry of a checkpoint written by `saddlescope train`
    /// (`last.safetensors` of the tiny synthetic run of the CLI tests, with SAM and DRW),
    /// byte for byte.
    const HEADER_JSON: &str = include_str!("../tests/fixtures/checkpoint_meta.json");

    fn header() -> HashMap<String, String> {
        HashMap::from([(METADATA_KEY.to_string(), HEADER_JSON.trim_end().to_string())])
    }

    #[test]
    fn recorded_metadata_reads_with_nothing_lost() {
        let path = Path::new("run/last.safetensors");
        let meta: CheckpointMeta = CheckpointMeta::from_header(path, &header())
            .unwrap()
            .unwrap();
        assert_eq!(
            (meta.format, meta.epoch, meta.classes),
            (FORMAT_VERSION, 4, 3)
        );
        assert_eq!(meta.model, "mlp:8");
        assert_eq!(meta.input_shape, [1, 1, 6]);
        let test = meta.test.as_ref().unwrap();
        assert_eq!(test.class_accuracy, [0.9, 1.0, 0.0]);
        assert_eq!(meta.config["sam"]["rho"], 0.05);
        assert_eq!(meta.data["train_counts"], serde_json::json!([40, 12, 4]));
        // Every key and value of the file is kept (the recipe as JSON values).
        let original: serde_json::Value = serde_json::from_str(HEADER_JSON).unwrap();
        assert_eq!(serde_json::to_value(&meta).unwrap(), original);
        // The top-level fields are written back in file order (train's typed recipe writes
        // the whole header back byte for byte: `saddlescope_train`'s checkpoint tests).
        let json = serde_json::to_string(&meta).unwrap();
        let head = r#"{"format":1,"version":"0.1.0","model":"mlp:8","classes":3,"input_shape":[1,1,6],"dtype":"f32","data":{"#;
        assert!(json.starts_with(head), "{json}");
        assert_eq!(meta.recorded().unwrap(), meta);
    }

    #[test]
    fn a_header_without_our_key_is_foreign_and_bad_json_is_named() {
        let path = Path::new("weights.safetensors");
        let none = CheckpointMeta::<String>::from_header(path, &HashMap::new()).unwrap();
        assert!(none.is_none());
        let bad = HashMap::from([(METADATA_KEY.to_string(), "{\"format\": 1}".to_string())]);
        let err = CheckpointMeta::<String>::from_header(path, &bad).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("weights.safetensors: bad saddlescope metadata (missing field"),
            "{err}"
        );
    }

    #[test]
    fn origins_are_stored_with_sorted_keys_and_read_back() {
        let meta: CheckpointMeta = serde_json::from_str(HEADER_JSON).unwrap();
        let ours = CheckpointOrigin::Saddlescope(Box::new(meta));
        let json = serde_json::to_string(&ours).unwrap();
        assert!(
            json.starts_with("{\"classes\":3,\"config\":{\"batch_size\":16,"),
            "{json}"
        );
        let back: CheckpointOrigin = serde_json::from_str(&json).unwrap();
        assert_eq!(back, ours);
        assert_eq!(back.test().unwrap().accuracy, ours.test().unwrap().accuracy);

        let foreign = CheckpointOrigin::Foreign(ForeignCheckpoint {
            arch: Some("resnet32".into()),
            classes: 10,
        });
        let json = serde_json::to_string(&foreign).unwrap();
        assert_eq!(
            json,
            r#"{"arch":"resnet32","classes":10,"format":"foreign"}"#
        );
        let back: CheckpointOrigin = serde_json::from_str(&json).unwrap();
        assert_eq!(back, foreign);
        assert!(back.test().is_none());
        assert!(serde_json::from_str::<CheckpointOrigin>("{\"format\": 1}").is_err());
    }
}
