//! Pagination and list queries.

use serde::{Deserialize, Serialize};

/// Largest page a list endpoint returns.
pub const MAX_PAGE_SIZE: u32 = 200;
/// Page size when the client names none.
pub const DEFAULT_PAGE_SIZE: u32 = 50;

/// One page of a list, with the total number of matches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: i64,
    pub limit: u32,
    pub offset: u64,
}

/// An offset as the database takes it: refused (naming `offset`) beyond what an SQL integer holds.
pub fn offset<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Option<u64>, D::Error> {
    match Option::<u64>::deserialize(de)? {
        Some(n) if n > i64::MAX as u64 => {
            Err(serde::de::Error::custom(format!("offset must be between 0 and {}", i64::MAX)))
        }
        n => Ok(n),
    }
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Order {
    #[default]
    Asc,
    Desc,
}

/// Which column the models list is sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ModelSort {
    #[default]
    Name,
    UpdatedAt,
    CreatedAt,
    Versions,
}

/// Filter, sort and page of the models list.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::IntoParams))]
pub struct ModelQuery {
    /// Free text matched against name, description, owner team and tags.
    pub q: Option<String>,
    /// Only models owned by this team.
    pub owner_team: Option<String>,
    /// Only models with a live version of this health in its environment (a version not yet
    /// evaluated there counts as `unknown`).
    pub health: Option<super::Health>,
    pub sort: Option<ModelSort>,
    pub order: Option<Order>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
    /// Entries to skip, 0 to 2^63 − 1.
    #[serde(default, deserialize_with = "offset")]
    pub offset: Option<u64>,
}

/// Page of the versions list, newest first unless `order=asc`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::IntoParams))]
pub struct VersionQuery {
    pub order: Option<Order>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
    /// Entries to skip, 0 to 2^63 − 1.
    #[serde(default, deserialize_with = "offset")]
    pub offset: Option<u64>,
}

/// Page of a deployment history, newest first.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::IntoParams))]
pub struct HistoryQuery {
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
    /// Entries to skip, 0 to 2^63 − 1.
    #[serde(default, deserialize_with = "offset")]
    pub offset: Option<u64>,
}
