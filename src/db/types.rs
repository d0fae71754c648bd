//! How domain types are stored, decoded at the storage edge: ids and sort keys as BIGINT,
//! enums as TEXT, JSON documents as TEXT, flags as BIGINT 0/1 (the portable schema of
//! STACK.md). A stored value that does not decode is an error — a logged 500 — never a
//! silent default.

use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::any::{Any, AnyTypeInfo, AnyTypeInfoKind, AnyValueRef};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::{Database, Decode, Encode, Type};

use crate::domain::{
    AnnotationId, AssigneeId, DatasetId, ImportId, ImportState, Metadata, ModeId, OpenCodes,
    RowError, SortKey, ToolCall, TracePk, UserId, Verdict,
};

type ArgumentBuffer<'q> = <Any as Database>::ArgumentBuffer<'q>;

/// Newtypes over a BIGINT column.
macro_rules! bigint_newtype {
    ($($t:ty),* $(,)?) => {$(
        impl Type<Any> for $t {
            fn type_info() -> AnyTypeInfo {
                <i64 as Type<Any>>::type_info()
            }
            fn compatible(ty: &AnyTypeInfo) -> bool {
                <i64 as Type<Any>>::compatible(ty)
            }
        }
        impl<'r> Decode<'r, Any> for $t {
            fn decode(value: AnyValueRef<'r>) -> Result<Self, BoxDynError> {
                Ok(Self(<i64 as Decode<'r, Any>>::decode(value)?))
            }
        }
        impl<'q> Encode<'q, Any> for $t {
            fn encode_by_ref(&self, buf: &mut ArgumentBuffer<'q>) -> Result<IsNull, BoxDynError> {
                <i64 as Encode<'q, Any>>::encode_by_ref(&self.0, buf)
            }
        }
    )*};
}

bigint_newtype!(
    TracePk,
    DatasetId,
    UserId,
    AnnotationId,
    ImportId,
    AssigneeId,
    ModeId,
    SortKey
);

/// Enums stored as their `as_str()` text and read back with `from_stored`.
macro_rules! text_enum {
    ($t:ty, $what:literal) => {
        impl Type<Any> for $t {
            fn type_info() -> AnyTypeInfo {
                <str as Type<Any>>::type_info()
            }
            fn compatible(ty: &AnyTypeInfo) -> bool {
                <str as Type<Any>>::compatible(ty)
            }
        }
        impl<'r> Decode<'r, Any> for $t {
            fn decode(value: AnyValueRef<'r>) -> Result<Self, BoxDynError> {
                let raw = <String as Decode<'r, Any>>::decode(value)?;
                <$t>::from_stored(&raw)
                    .ok_or_else(|| format!("{raw:?} is not a stored {}", $what).into())
            }
        }
        impl<'q> Encode<'q, Any> for $t {
            fn encode_by_ref(&self, buf: &mut ArgumentBuffer<'q>) -> Result<IsNull, BoxDynError> {
                <&str as Encode<'q, Any>>::encode(self.as_str(), buf)
            }
        }
    };
}

text_enum!(Verdict, "verdict");
text_enum!(ImportState, "import state");
text_enum!(super::decisions::DecisionKind, "decision kind");

/// A JSON document in a TEXT column (tool calls, metadata, column lists, row errors).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Json<T>(pub T);

impl<T> Type<Any> for Json<T> {
    fn type_info() -> AnyTypeInfo {
        <str as Type<Any>>::type_info()
    }
    fn compatible(ty: &AnyTypeInfo) -> bool {
        <str as Type<Any>>::compatible(ty)
    }
}

impl<'r, T: DeserializeOwned> Decode<'r, Any> for Json<T> {
    fn decode(value: AnyValueRef<'r>) -> Result<Self, BoxDynError> {
        let raw = <String as Decode<'r, Any>>::decode(value)?;
        Ok(Json(serde_json::from_str(&raw)?))
    }
}

impl<'q, T: Serialize> Encode<'q, Any> for Json<T> {
    fn encode_by_ref(&self, buf: &mut ArgumentBuffer<'q>) -> Result<IsNull, BoxDynError> {
        <String as Encode<'q, Any>>::encode(serde_json::to_string(&self.0)?, buf)
    }
}

/// Row fields read through [`Json`] (`#[sqlx(try_from = "Json<…>")]`) hold the document
/// itself.
macro_rules! json_column {
    ($($t:ty),* $(,)?) => {$(
        impl From<Json<$t>> for $t {
            fn from(json: Json<$t>) -> $t {
                json.0
            }
        }
    )*};
}

json_column!(Vec<ToolCall>, Metadata, Vec<String>, Vec<RowError>);

impl From<Flag> for bool {
    fn from(flag: Flag) -> bool {
        flag.0
    }
}

/// A BIGINT 0/1 flag (SQLite has no boolean `sqlx::Any` can read; a Postgres BOOLEAN
/// from an expression decodes too).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flag(pub bool);

impl Type<Any> for Flag {
    fn type_info() -> AnyTypeInfo {
        <i64 as Type<Any>>::type_info()
    }
    fn compatible(ty: &AnyTypeInfo) -> bool {
        ty.kind().is_integer() || ty.kind() == AnyTypeInfoKind::Bool
    }
}

impl<'r> Decode<'r, Any> for Flag {
    fn decode(value: AnyValueRef<'r>) -> Result<Self, BoxDynError> {
        if let Ok(b) = <bool as Decode<'r, Any>>::decode(value.clone()) {
            return Ok(Flag(b));
        }
        Ok(Flag(<i64 as Decode<'r, Any>>::decode(value)? != 0))
    }
}

impl<'q> Encode<'q, Any> for Flag {
    fn encode_by_ref(&self, buf: &mut ArgumentBuffer<'q>) -> Result<IsNull, BoxDynError> {
        <i64 as Encode<'q, Any>>::encode(i64::from(self.0), buf)
    }
}

/// An annotation's open codes as one aggregated TEXT (`codes_of` in [`super::codes`]):
/// comma-joined in typed order — a code never holds a comma — or empty.
impl Type<Any> for OpenCodes {
    fn type_info() -> AnyTypeInfo {
        <str as Type<Any>>::type_info()
    }
    fn compatible(ty: &AnyTypeInfo) -> bool {
        <str as Type<Any>>::compatible(ty)
    }
}

impl<'r> Decode<'r, Any> for OpenCodes {
    fn decode(value: AnyValueRef<'r>) -> Result<Self, BoxDynError> {
        // NULL is the aggregate over no rows: an annotation without codes.
        let codes = match <Option<String> as Decode<'r, Any>>::decode(value)? {
            Some(joined) => joined
                .split(super::codes::SEPARATOR)
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect(),
            None => Vec::new(),
        };
        Ok(OpenCodes::from_stored(codes))
    }
}
