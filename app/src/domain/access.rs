//! Who may do what: the six roles, the permissions they grant, and the signed-in caller.
//!
//! This matrix is the single source of truth: every REST handler and server function asks it,
//! and the UI uses it only to hide what the server would refuse anyway.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// A role a user (or an API token) can hold; a user may hold several.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Operator,
    Reviewer,
    Compliance,
    Admin,
    /// A serving agent: reads the assignments of its token's environments and reports, nothing else.
    Agent,
}

impl Role {
    pub const ALL: [Role; 6] =
        [Role::Viewer, Role::Operator, Role::Reviewer, Role::Compliance, Role::Admin, Role::Agent];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Reviewer => "reviewer",
            Role::Compliance => "compliance",
            Role::Admin => "admin",
            Role::Agent => "agent",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The permissions this role grants.
    pub fn grants(self, permission: Permission) -> bool {
        use Permission::*;
        match self {
            Role::Viewer => matches!(permission, Read),
            Role::Reviewer => matches!(permission, Read | ReviewRollbacks),
            Role::Compliance => matches!(permission, Read | Audit),
            Role::Agent => matches!(permission, Serve),
            Role::Operator => {
                matches!(
                    permission,
                    Read | RegisterModels
                        | RegisterVersions
                        | EditVersions
                        | Quarantine
                        | Deploy
                        | RequestRollbacks
                        | PushMetrics
                        | ManageGuardrails
                )
            }
            Role::Admin => {
                matches!(
                    permission,
                    Read | Audit
                        | ManageEnvironments
                        | ManageUsers
                        | ManageTokens
                        | ManageGuardrails
                        | EnforceGuardrails
                        | ManageWebhooks
                )
            }
        }
    }
}

/// Something a caller may be allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Browse models, versions, deployments.
    Read,
    RegisterModels,
    RegisterVersions,
    /// Edit a version's description and tags.
    EditVersions,
    /// Quarantine a version or release it.
    Quarantine,
    /// Make a version live in an environment.
    Deploy,
    /// File a rollback request, and cancel one's own.
    RequestRollbacks,
    /// Approve or reject others' rollback requests; acknowledge break-glass rollbacks.
    ReviewRollbacks,
    /// Store metric points of a version.
    PushMetrics,
    /// Create, edit and delete guardrail rules.
    ManageGuardrails,
    /// Put an observed guardrail in force (or back to observing).
    EnforceGuardrails,
    /// Create environments and edit their rollback policies.
    ManageEnvironments,
    /// Register webhooks and read their delivery logs.
    ManageWebhooks,
    ManageUsers,
    /// Create and revoke API tokens of any user.
    ManageTokens,
    /// Search, export and verify the audit log.
    Audit,
    /// Read the assignments of the token's environments and report what is served there.
    Serve,
}

impl Permission {
    /// The action in words, for error messages.
    pub fn describe(self) -> &'static str {
        match self {
            Permission::Read => "reading the registry",
            Permission::RegisterModels => "registering models",
            Permission::RegisterVersions => "registering versions",
            Permission::EditVersions => "editing versions",
            Permission::Quarantine => "quarantining versions",
            Permission::Deploy => "deploying",
            Permission::RequestRollbacks => "requesting rollbacks",
            Permission::ReviewRollbacks => "reviewing rollbacks",
            Permission::PushMetrics => "pushing metrics",
            Permission::ManageGuardrails => "managing guardrails",
            Permission::EnforceGuardrails => "enforcing guardrails",
            Permission::ManageEnvironments => "managing environments and their policies",
            Permission::ManageWebhooks => "managing webhooks",
            Permission::ManageUsers => "managing users",
            Permission::ManageTokens => "managing other users' API tokens",
            Permission::Audit => "reading the audit log",
            Permission::Serve => "reading assignments and reporting as an agent",
        }
    }
}

/// A set of roles.
pub type Roles = BTreeSet<Role>;

/// Whether any of `roles` grants `permission`.
pub fn allows(roles: &Roles, permission: Permission) -> bool {
    roles.iter().any(|r| r.grants(permission))
}

/// The authenticated caller of a request: a signed-in user, or an API token acting for its owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    pub user_id: i64,
    pub username: String,
    /// The roles in force for this request (a token's roles, which are a subset of its owner's).
    pub roles: Roles,
    /// The API token used, if the request was not made through a session.
    pub token: Option<String>,
    /// The request this caller made, as the audit log records it.
    #[serde(default)]
    pub origin: Origin,
    /// The environments an agent token serves (its `agent` role reaches no others).
    #[serde(default)]
    pub environments: Vec<String>,
}

/// Where a request came from: its id (also sent back in `x-request-id`) and the client address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    pub request_id: Option<String>,
    pub client_addr: Option<String>,
}

impl Caller {
    pub fn can(&self, permission: Permission) -> bool {
        allows(&self.roles, permission)
    }

    /// 403 unless the caller's roles grant `permission`.
    pub fn require(&self, permission: Permission) -> Result<(), crate::error::ApiError> {
        if self.can(permission) {
            Ok(())
        } else {
            Err(crate::error::ApiError::forbidden(format!(
                "your roles ({}) do not allow {}",
                self.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", "),
                permission.describe()
            )))
        }
    }

    /// 403 unless the caller may read assignments and report in `environment`.
    pub fn require_serving(&self, environment: &str) -> Result<(), crate::error::ApiError> {
        self.require(Permission::Serve)?;
        if self.environments.iter().any(|e| e == environment) {
            Ok(())
        } else {
            Err(crate::error::ApiError::forbidden(format!(
                "this agent token serves {}, not {environment}",
                self.environments.join(", ")
            )))
        }
    }

    /// How this caller is named in history: the user, and the token when one was used.
    pub fn actor(&self) -> super::Actor {
        let name = match &self.token {
            Some(token) => format!("{} (token {token})", self.username),
            None => self.username.clone(),
        };
        super::Actor { name }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compliance_reads_everything_and_changes_nothing() {
        let roles = Roles::from([Role::Compliance]);
        assert!(allows(&roles, Permission::Read));
        assert!(allows(&roles, Permission::Audit));
        for p in [Permission::RegisterModels, Permission::Deploy, Permission::Quarantine, Permission::ManageUsers] {
            assert!(!allows(&roles, p), "{p:?}");
        }
    }

    #[test]
    fn roles_combine() {
        let roles = Roles::from([Role::Viewer, Role::Admin]);
        assert!(allows(&roles, Permission::ManageUsers));
        assert!(!allows(&roles, Permission::Deploy));
        assert!(!allows(&Roles::new(), Permission::Read), "no role, no access");
    }

    #[test]
    fn role_names_round_trip() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
    }
}
