//! Uniform, statically typed access to every kind: the [`Resource`] trait.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::error::{ModelError, ValidationError};
use crate::kind::Kind;
use crate::object::Object;

/// What the store and the API need from every object type, whatever its kind.
pub trait Resource: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    const KIND: Kind;

    fn id(&self) -> &str;
    fn set_id(&mut self, id: String);
    fn revision_number(&self) -> u64;
    fn set_revision_number(&mut self, revision: u64);
    /// `None` for kinds without a unique key (see [`Kind::has_unique_key`]); 0 means unallocated.
    fn unique_key(&self) -> Option<u32>;
    /// No-op for kinds without a unique key.
    fn set_unique_key(&mut self, key: u32);
    /// Checks the object on its own (no other objects needed). An empty `id` is accepted for kinds
    /// whose id the store generates or derives; it is refused for [`Chassis`](crate::Chassis).
    fn validate(&self) -> Result<(), ValidationError>;
    /// The id this object must have when its id is derived from its content (port bindings:
    /// `<port_id>@<host>`, migrations: the port id); `None` means "generate a UUID".
    fn default_id(&self) -> Option<String> {
        None
    }
    fn into_object(self) -> Object;
    /// The inner value if `obj` is of this kind.
    fn from_object(obj: Object) -> Option<Self>;
    /// The inner value if `obj` is of this kind, borrowed.
    fn from_object_ref(obj: &Object) -> Option<&Self>;

    /// Parses (does not validate) this kind's JSON form, which must be a JSON object. Errors are
    /// [`ModelError::Json`] with serde's message (naming the field or value, line and column).
    fn from_json(json: &str) -> Result<Self, ModelError> {
        Self::from_json_slice(json.as_bytes())
    }

    /// [`from_json`](Resource::from_json) for bytes.
    fn from_json_slice(json: &[u8]) -> Result<Self, ModelError> {
        let err = |e: serde_json::Error| ModelError::Json { kind: Self::KIND, message: e.to_string() };
        // serde's derived structs also accept a JSON array (fields by position): refuse it.
        let first = json.iter().find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
        if first != Some(&b'{') {
            return Err(match serde_json::from_slice::<serde_json::Map<String, Value>>(json) {
                Err(e) => err(e),
                Ok(_) => ModelError::Json { kind: Self::KIND, message: "expected a JSON object".to_string() },
            });
        }
        serde_json::from_slice(json).map_err(err)
    }

    /// [`from_json`](Resource::from_json) for a parsed JSON value (messages have no line/column).
    fn from_json_value(json: Value) -> Result<Self, ModelError> {
        if !json.is_object() {
            return Err(ModelError::Json {
                kind: Self::KIND,
                message: format!("invalid type: expected a JSON object, found {json}"),
            });
        }
        serde_json::from_value(json)
            .map_err(|e| ModelError::Json { kind: Self::KIND, message: e.to_string() })
    }

    /// This object's store key.
    fn key(&self) -> String {
        crate::key::key(Self::KIND, self.id())
    }
}

/// Implements [`Resource`] for a struct with `id` and `revision_number` fields (and `unique_key` when
/// `unique_key` is given), given its validation function and, optionally, its id-derivation function.
macro_rules! impl_resource {
    ($ty:ident, $kind:ident, $validate:path $(, default_id = $default_id:path)?) => {
        $crate::resource::impl_resource!(@impl $ty, $kind, $validate, {
            fn unique_key(&self) -> Option<u32> {
                None
            }
            fn set_unique_key(&mut self, _key: u32) {}
        } $(, $default_id)?);
    };
    ($ty:ident, $kind:ident, unique_key, $validate:path) => {
        $crate::resource::impl_resource!(@impl $ty, $kind, $validate, {
            fn unique_key(&self) -> Option<u32> {
                Some(self.unique_key)
            }
            fn set_unique_key(&mut self, key: u32) {
                self.unique_key = key;
            }
        });
    };
    (@impl $ty:ident, $kind:ident, $validate:path, { $($uk:tt)* } $(, $default_id:path)?) => {
        impl $crate::resource::Resource for $ty {
            const KIND: $crate::kind::Kind = $crate::kind::Kind::$kind;

            fn id(&self) -> &str {
                &self.id
            }
            fn set_id(&mut self, id: String) {
                self.id = id;
            }
            fn revision_number(&self) -> u64 {
                self.revision_number
            }
            fn set_revision_number(&mut self, revision: u64) {
                self.revision_number = revision;
            }
            $($uk)*
            fn validate(&self) -> Result<(), $crate::error::ValidationError> {
                $validate(self)
            }
            $(
            fn default_id(&self) -> Option<String> {
                Some($default_id(self))
            }
            )?
            fn into_object(self) -> $crate::object::Object {
                $crate::object::Object::$kind(self)
            }
            fn from_object(obj: $crate::object::Object) -> Option<Self> {
                match obj {
                    $crate::object::Object::$kind(v) => Some(v),
                    _ => None,
                }
            }
            fn from_object_ref(obj: &$crate::object::Object) -> Option<&Self> {
                match obj {
                    $crate::object::Object::$kind(v) => Some(v),
                    _ => None,
                }
            }
        }

        impl From<$ty> for $crate::object::Object {
            fn from(v: $ty) -> Self {
                $crate::object::Object::$kind(v)
            }
        }
    };
}
pub(crate) use impl_resource;
