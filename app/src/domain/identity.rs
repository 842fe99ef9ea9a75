//! Users and API tokens as clients see them, and what clients send to manage them.

use serde::{Deserialize, Serialize};

use super::Role;

/// A person who can sign in. Passwords never leave the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct User {
    pub username: String,
    pub display_name: String,
    pub roles: Vec<Role>,
    pub disabled: bool,
    pub created_at: String,
}

/// Body of `POST /api/v1/users`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub username: String,
    #[serde(default)]
    pub display_name: String,
    /// At least 12 characters.
    pub password: String,
    pub roles: Vec<Role>,
}

/// Body of `PATCH /api/v1/users/{username}`: absent fields stay as they are.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    pub display_name: Option<String>,
    pub roles: Option<Vec<Role>>,
    /// Disabling ends the user's sessions; their tokens stop working while disabled.
    pub disabled: Option<bool>,
    /// A new password (a reset); ends the user's sessions.
    pub password: Option<String>,
}

/// An API token's metadata; the secret itself is shown once, at creation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ApiToken {
    pub id: i64,
    pub name: String,
    pub owner: String,
    /// The first characters of the secret, to recognise it.
    pub prefix: String,
    pub roles: Vec<Role>,
    /// The environments an `agent` token serves.
    #[serde(default)]
    pub environments: Vec<String>,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    pub last_used_at: Option<String>,
}

/// Body of `POST /api/v1/tokens`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    pub name: String,
    /// Whose token it is; defaults to the caller. Only admins may name someone else.
    #[serde(default)]
    pub owner: Option<String>,
    /// Must be a subset of the owner's roles.
    pub roles: Vec<Role>,
    /// For a token of the `agent` role (which it then holds alone): the environments it serves.
    #[serde(default)]
    pub environments: Vec<String>,
    /// Days until it expires (1 to 3650); never when absent.
    #[serde(default)]
    pub expires_in_days: Option<u32>,
}

/// The answer to a token creation: the secret, shown this once, and its metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct CreatedToken {
    /// Send as `Authorization: Bearer <token>`. It cannot be shown again.
    pub token: String,
    pub info: ApiToken,
}

/// Who is signed in, for the console's header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Me {
    pub username: String,
    pub display_name: String,
    pub roles: Vec<Role>,
}
