//! Users, passwords (Argon2id), sign-in sessions with idle and absolute timeouts, API tokens,
//! and sign-in throttling held in the database so every replica counts together.

use app::backend::{Identity, SessionGrant};
use app::domain::*;
use app::error::{ApiError, ErrorCode};
use argon2::Argon2;
use argon2::password_hash::rand_core::RngCore;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng};
use async_trait::async_trait;
use sha2::{Digest, Sha256};
use sqlx::AnyConnection;

use crate::audit::{AuditActor, Change, Target};
use crate::clock::rfc3339;
use crate::db::{DbResultExt, Statement};
use crate::store::{Store, from_json, to_json};
use crate::versions::environment_id;

/// Session lifetimes and sign-in throttling limits.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// A session unused this long is over.
    pub idle_timeout_ms: i64,
    /// A session is over this long after sign-in, however busy.
    pub absolute_timeout_ms: i64,
    /// Failed sign-ins per account per hour before the account refuses attempts (the window slides).
    pub max_failures_per_account_hour: i64,
    /// Failed sign-ins per client address per hour, across accounts (password spraying).
    pub max_failures_per_address_hour: i64,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            idle_timeout_ms: 30 * 60 * 1000,
            absolute_timeout_ms: 12 * 3600 * 1000,
            max_failures_per_account_hour: 100,
            max_failures_per_address_hour: 300,
        }
    }
}

const HOUR_MS: i64 = 3_600_000;
/// How long a resolved API token is trusted without asking the database again. Revoking a token
/// or changing its owner clears this replica's cache at once; other replicas follow within this.
const TOKEN_CACHE_MS: i64 = 5_000;

/// API tokens recently resolved to their caller, so the hottest reads (deploy systems polling the
/// live version) cost no extra queries.
#[derive(Debug, Default)]
pub struct TokenCache {
    entries: std::sync::Mutex<std::collections::HashMap<String, CachedToken>>,
    /// Held while basic credentials missing from the cache are checked, so a client's burst of
    /// parallel first requests is one sign-in attempt, not many (the throttle counts each).
    password_checks: tokio::sync::Mutex<()>,
}

#[derive(Debug, Clone)]
struct CachedToken {
    caller: Caller,
    token_expires_at: Option<i64>,
    trusted_until: i64,
}

impl TokenCache {
    fn get(&self, hash: &str, now: i64) -> Option<Caller> {
        let entries = self.entries.lock().ok()?;
        let hit = entries.get(hash)?;
        let valid = now < hit.trusted_until && hit.token_expires_at.is_none_or(|e| now < e);
        valid.then(|| hit.caller.clone())
    }

    fn put(&self, hash: String, entry: CachedToken) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() > 10_000 {
                entries.clear();
            }
            entries.insert(hash, entry);
        }
    }

    /// Forgets every entry: after a revocation or a change to a user.
    fn clear(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.clear();
        }
    }
}
/// An address the user signed in from within this long is theirs: the hard per-account limit
/// does not apply to it.
const KNOWN_ADDRESS_MS: i64 = 90 * 24 * HOUR_MS;
/// Failures from one address on one account tolerated before backoff starts.
const FREE_FAILURES: i64 = 5;
/// Longest wait between attempts from one address on one account.
const MAX_BACKOFF_MS: i64 = 60_000;
const TOKEN_PREFIX: &str = "mg_";

/// Hashes a password with Argon2id (m = 19 MiB, t = 2, p = 1), off the async runtime.
pub async fn hash_password(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string())
    })
    .await
    .map_err(|_| ApiError::internal())?
    .map_err(|e| {
        tracing::error!(error = %e, "password hashing failed");
        ApiError::internal()
    })
}

/// Checks a password against a stored hash, off the async runtime.
async fn verify_password(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
    })
    .await
    .unwrap_or(false)
}

/// A hash to verify against when the account does not exist, so both cases take as long.
async fn decoy_hash() -> &'static str {
    static DECOY: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    DECOY.get_or_init(|| async { hash_password("decoy password, never valid".into()).await.unwrap_or_default() }).await
}

/// 256 random bits from the OS, hex-encoded.
pub(crate) fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// What is stored instead of a session or API token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[derive(sqlx::FromRow)]
struct UserRow {
    id: i64,
    username: String,
    display_name: String,
    password_hash: String,
    roles: String,
    disabled_at: Option<i64>,
    created_at: i64,
}

impl UserRow {
    fn roles(&self) -> Roles {
        from_json::<Vec<Role>>(&self.roles).into_iter().collect()
    }

    fn into_user(self) -> User {
        let roles = self.roles().into_iter().collect();
        User {
            username: self.username,
            display_name: self.display_name,
            roles,
            disabled: self.disabled_at.is_some(),
            created_at: rfc3339(self.created_at),
        }
    }

    fn caller(&self, roles: Roles, token: Option<String>) -> Caller {
        Caller {
            user_id: self.id,
            username: self.username.clone(),
            roles,
            token,
            origin: Origin::default(),
            environments: Vec::new(),
        }
    }
}

const USER_COLUMNS: &str = "id, username, display_name, password_hash, roles, disabled_at, created_at";

async fn user_by_name(conn: &mut AnyConnection, username: &str) -> Result<Option<UserRow>, ApiError> {
    sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users WHERE username = $1"))
        .bind(username)
        .fetch_optional(conn)
        .await
        .map_err(ApiError::from)
}

async fn user_by_id(conn: &mut AnyConnection, id: i64) -> Result<Option<UserRow>, ApiError> {
    sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await
        .map_err(ApiError::from)
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: i64,
    name: String,
    owner: String,
    prefix: String,
    roles: String,
    environments: String,
    created_at: i64,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    last_used_at: Option<i64>,
}

impl TokenRow {
    fn into_token(self) -> ApiToken {
        ApiToken {
            id: self.id,
            name: self.name,
            owner: self.owner,
            prefix: self.prefix,
            roles: from_json(&self.roles),
            environments: from_json(&self.environments),
            created_at: rfc3339(self.created_at),
            expires_at: self.expires_at.map(rfc3339),
            revoked_at: self.revoked_at.map(rfc3339),
            last_used_at: self.last_used_at.map(rfc3339),
        }
    }
}

const TOKEN_COLUMNS: &str = "t.id, t.name, u.username AS owner, t.prefix, t.roles, t.environments, t.created_at, t.expires_at, \
     t.revoked_at, t.last_used_at";

async fn token_by_id(conn: &mut AnyConnection, id: i64) -> Result<TokenRow, ApiError> {
    sqlx::query_as(&format!(
        "SELECT {TOKEN_COLUMNS} FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| ApiError::not_found(format!("API token {id} not found")))
}

/// The client address sign-in throttling counts by ("" when unknown).
fn client_addr(origin: &Origin) -> &str {
    origin.client_addr.as_deref().unwrap_or_default()
}

impl Store {
    /// The store with identity's parts: the sign-in rules and a cache of resolved credentials.
    pub fn with_identity(self, settings: AuthSettings) -> Self {
        self.with_part(settings).with_part(TokenCache::default())
    }

    fn auth(&self) -> AuthSettings {
        self.part::<AuthSettings>().cloned().unwrap_or_default()
    }

    /// Credentials recently resolved; none kept by a store built without [`Store::with_identity`].
    fn tokens(&self) -> Option<&TokenCache> {
        self.part()
    }

    /// Runs a statement of sign-in bookkeeping (a session touched or ended, a token's last use)
    /// as a write of its own: queued with the other writers, never waiting on SQLite's write lock
    /// from a reader's connection. Not audited, as it changes no state anyone decides on.
    async fn bookkeeping(&self, statement: Statement) -> Result<(), ApiError> {
        let mut tx = self.begin_data_write().await?;
        statement.execute(&mut *tx).await?;
        tx.commit().await
    }

    /// Counts a sign-in attempt as a failure before its password is checked, then refuses it
    /// (and forgets it) while its account or address is over a limit or backing off. Counting
    /// first and committing before the count makes the limits hold under parallel attempts: the
    /// n-th attempt to commit sees at least n. Returns the attempt, for [`Store::forget_attempt`]
    /// once the password proves right. See the policy in the README (sign-in throttling).
    async fn claim_attempt(&self, username: &str, client: &str, now: i64) -> Result<i64, ApiError> {
        let mut tx = self.begin_data_write().await?;
        let attempt: i64 = sqlx::query_scalar(
            "INSERT INTO sign_in_failures (username, client_addr, at) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(username)
        .bind(client)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        let (per_account, per_address, per_pair, last, known): (i64, i64, i64, Option<i64>, i64) = sqlx::query_as(
            "SELECT COUNT(*) FILTER (WHERE username = $1), COUNT(*) FILTER (WHERE client_addr = $2), \
             COUNT(*) FILTER (WHERE username = $1 AND client_addr = $2), \
             MAX(at) FILTER (WHERE username = $1 AND client_addr = $2 AND id <> $4), \
             (SELECT COUNT(*) FROM sign_in_addresses WHERE username = $1 AND client_addr = $2 AND $2 <> '' \
              AND last_at > $5) \
             FROM sign_in_failures WHERE at > $3 AND (username = $1 OR client_addr = $2)",
        )
        .bind(username)
        .bind(client)
        .bind(now - HOUR_MS)
        .bind(attempt)
        .bind(now - KNOWN_ADDRESS_MS)
        .fetch_one(&mut *self.conn().await?)
        .await?;
        // The hard limit per account spares the user's known addresses, so nobody elsewhere can
        // lock the right password out; backoff per (account, address) keeps those slow too.
        let over_limit = (per_account > self.auth().max_failures_per_account_hour && known == 0)
            || per_address > self.auth().max_failures_per_address_hour;
        let earlier = per_pair - 1;
        let backing_off = earlier >= FREE_FAILURES && {
            let wait = (1000_i64 << (earlier - FREE_FAILURES).min(16)).min(MAX_BACKOFF_MS);
            last.is_some_and(|last| now < last + wait)
        };
        if over_limit || backing_off {
            self.forget_attempt(attempt).await?;
            return Err(ApiError::new(ErrorCode::TooManyRequests, "too many failed sign-ins; try again later"));
        }
        Ok(attempt)
    }

    /// Takes back an attempt that was refused unchecked or whose password was right.
    async fn forget_attempt(&self, attempt: i64) -> Result<(), ApiError> {
        self.bookkeeping(sqlx::query("DELETE FROM sign_in_failures WHERE id = $1").bind(attempt)).await
    }

    /// Records a failed sign-in (its attempt already counts) in the audit log.
    async fn record_failure(&self, username: &str, origin: &Origin, why: &str) -> Result<(), ApiError> {
        let change = Change::new(AuditAction::SignInFailed, Target::user(username)).reason(why);
        self.begin_write().await?.commit(AuditActor::anonymous(origin), change).await?;
        Ok(())
    }

    /// Creates a user on behalf of `by`: an admin, the command line or the demo data set.
    pub async fn bootstrap_user(&self, by: AuditActor, input: NewUser) -> Result<User, ApiError> {
        input.validate()?;
        let hash = hash_password(input.password.clone()).await?;
        let now = self.clock.now_ms();
        let roles: Roles = input.roles.iter().copied().collect();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO users (username, display_name, password_hash, roles, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(&input.username)
        .bind(&input.display_name)
        .bind(&hash)
        .bind(to_json(&roles))
        .bind(now)
        .execute(&mut *tx)
        .await
        .on_unique_violation(|| {
            ApiError::conflict(format!("user '{}' already exists", input.username)).with_field("username")
        })?;
        let user = user_by_name(&mut tx, &input.username).await?.ok_or_else(ApiError::internal)?.into_user();
        tx.commit(by, Change::new(AuditAction::UserCreate, Target::user(&user.username)).after(&user)).await?;
        Ok(user)
    }

    /// Creates an API token for `owner` from the command line.
    pub async fn bootstrap_token(&self, owner: &str, input: NewToken) -> Result<CreatedToken, ApiError> {
        input.validate()?;
        let mut conn = self.conn().await?;
        let user = user_by_name(&mut conn, owner)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("user '{owner}' not found")))?;
        drop(conn);
        self.insert_token(AuditActor::system("cli"), &user, input).await
    }

    async fn insert_token(&self, by: AuditActor, owner: &UserRow, input: NewToken) -> Result<CreatedToken, ApiError> {
        let owner_roles = owner.roles();
        if let Some(extra) = input.roles.iter().find(|r| !owner_roles.contains(r)) {
            return Err(ApiError::invalid(
                "roles",
                format!("{} does not hold the role {}", owner.username, extra.as_str()),
            ));
        }
        let roles: Roles = input.roles.iter().copied().collect();
        let mut conn = self.conn().await?;
        for environment in &input.environments {
            environment_id(&mut conn, environment)
                .await
                .map_err(|_| ApiError::invalid("environments", format!("no environment is named '{environment}'")))?;
        }
        drop(conn);
        let secret = format!("{TOKEN_PREFIX}{}", random_secret());
        let prefix = secret[..TOKEN_PREFIX.len() + 8].to_string();
        let now = self.clock.now_ms();
        let expires_at = input.expires_in_days.map(|d| now + i64::from(d) * 24 * HOUR_MS);
        let mut tx = self.begin_write().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO api_tokens (user_id, name, token_hash, prefix, roles, environments, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(owner.id)
        .bind(&input.name)
        .bind(token_hash(&secret))
        .bind(&prefix)
        .bind(to_json(&roles))
        .bind(to_json(&input.environments))
        .bind(now)
        .bind(expires_at)
        .fetch_one(&mut *tx)
        .await?;
        let info = token_by_id(&mut tx, id).await?.into_token();
        tx.commit(by, Change::new(AuditAction::TokenCreate, Target::token(id)).after(&info)).await?;
        Ok(CreatedToken { token: secret, info })
    }

    /// Ends every session of a user (after a password reset or when disabled).
    async fn end_sessions(conn: &mut AnyConnection, user_id: i64) -> Result<(), ApiError> {
        sqlx::query("DELETE FROM sessions WHERE user_id = $1").bind(user_id).execute(conn).await?;
        Ok(())
    }

    /// The user whose password this is, within the sign-in throttle; a failure is recorded
    /// (audited) and answered 401 without saying which part was wrong.
    async fn check_password(&self, username: &str, password: &str, origin: &Origin) -> Result<UserRow, ApiError> {
        let now = self.clock.now_ms();
        let attempt = self.claim_attempt(username, client_addr(origin), now).await?;
        let user = user_by_name(&mut *self.conn().await?, username).await?;
        let hash = match &user {
            Some(u) => u.password_hash.clone(),
            None => decoy_hash().await.to_string(),
        };
        let valid = verify_password(password.to_string(), hash).await;
        let why = match &user {
            None => Some("no such user"),
            Some(_) if !valid => Some("wrong password"),
            Some(u) if u.disabled_at.is_some() => Some("account disabled"),
            Some(_) => None,
        };
        match (user, why) {
            (Some(user), None) => {
                self.forget_attempt(attempt).await?;
                Ok(user)
            }
            _ => {
                self.record_failure(username, origin, why.unwrap_or_default()).await?;
                Err(ApiError::new(ErrorCode::Unauthorized, "wrong username or password"))
            }
        }
    }

    /// The caller of a request with HTTP basic credentials (what MLflow clients send for
    /// `MLFLOW_TRACKING_USERNAME`/`PASSWORD`); checked like a sign-in, then trusted as briefly as
    /// a resolved API token, so a busy client does not pay for Argon2 on every request.
    pub async fn password_caller(&self, username: &str, password: &str, origin: &Origin) -> Result<Caller, ApiError> {
        let now = self.clock.now_ms();
        let key = format!("basic:{}", token_hash(&format!("{username}\0{password}")));
        if let Some(caller) = self.tokens().and_then(|t| t.get(&key, now)) {
            return Ok(caller);
        }
        let _one_at_a_time = match self.tokens() {
            Some(t) => Some(t.password_checks.lock().await),
            None => None,
        };
        if let Some(caller) = self.tokens().and_then(|t| t.get(&key, now)) {
            return Ok(caller);
        }
        let user = self.check_password(username, password, origin).await?;
        let caller = user.caller(user.roles(), None);
        let entry = CachedToken { caller: caller.clone(), token_expires_at: None, trusted_until: now + TOKEN_CACHE_MS };
        if let Some(t) = self.tokens() {
            t.put(key, entry);
        }
        Ok(caller)
    }
}

#[async_trait]
impl Identity for Store {
    async fn sign_in(&self, username: &str, password: &str, origin: &Origin) -> Result<SessionGrant, ApiError> {
        let now = self.clock.now_ms();
        let client = client_addr(origin);
        let user = self.check_password(username, password, origin).await?;
        let token = random_secret();
        let mut tx = self.begin_write().await?;
        sqlx::query("INSERT INTO sessions (token_hash, user_id, created_at, last_seen_at, client_addr) VALUES ($1, $2, $3, $3, $4)")
            .bind(token_hash(&token))
            .bind(user.id)
            .bind(now)
            .bind(client)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO sign_in_addresses (username, client_addr, last_at) VALUES ($1, $2, $3) \
             ON CONFLICT (username, client_addr) DO UPDATE SET last_at = excluded.last_at",
        )
        .bind(&user.username)
        .bind(client)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let change = Change::new(AuditAction::SignIn, Target::user(&user.username));
        tx.commit(AuditActor::user(&user.username, origin), change).await?;
        let caller = user.caller(user.roles(), None);
        Ok(SessionGrant { token, caller })
    }

    async fn sign_out(&self, session_token: &str, origin: &Origin) -> Result<(), ApiError> {
        let mut tx = self.begin_write().await?;
        let ended: Option<i64> = sqlx::query_scalar("DELETE FROM sessions WHERE token_hash = $1 RETURNING user_id")
            .bind(token_hash(session_token))
            .fetch_optional(&mut *tx)
            .await?;
        // An unknown or already ended session changes nothing, so there is nothing to record.
        let Some(user) = ended else { return Ok(()) };
        let user = user_by_id(&mut tx, user).await?.ok_or_else(ApiError::internal)?;
        let change = Change::new(AuditAction::SignOut, Target::user(&user.username));
        tx.commit(AuditActor::user(&user.username, origin), change).await?;
        Ok(())
    }

    async fn session_caller(&self, session_token: &str) -> Result<Option<Caller>, ApiError> {
        let now = self.clock.now_ms();
        let hash = token_hash(session_token);
        let mut conn = self.conn().await?;
        let session: Option<(i64, i64, i64)> =
            sqlx::query_as("SELECT user_id, created_at, last_seen_at FROM sessions WHERE token_hash = $1")
                .bind(&hash)
                .fetch_optional(&mut *conn)
                .await?;
        let Some((user_id, created_at, last_seen_at)) = session else {
            return Ok(None);
        };
        if now - last_seen_at > self.auth().idle_timeout_ms || now - created_at > self.auth().absolute_timeout_ms {
            drop(conn);
            self.bookkeeping(sqlx::query("DELETE FROM sessions WHERE token_hash = $1").bind(hash)).await?;
            return Ok(None);
        }
        let Some(user) = user_by_id(&mut conn, user_id).await?.filter(|u| u.disabled_at.is_none()) else {
            return Ok(None);
        };
        drop(conn);
        // Touch at most once a minute: the idle timeout needs no finer grain, and reads stay reads.
        if now - last_seen_at > 60_000 {
            self.bookkeeping(
                sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE token_hash = $2").bind(now).bind(hash),
            )
            .await?;
        }
        Ok(Some(user.caller(user.roles(), None)))
    }

    async fn token_caller(&self, api_token: &str) -> Result<Option<Caller>, ApiError> {
        if !api_token.starts_with(TOKEN_PREFIX) {
            return Ok(None);
        }
        let now = self.clock.now_ms();
        let hash = token_hash(api_token);
        if let Some(caller) = self.tokens().and_then(|t| t.get(&hash, now)) {
            return Ok(Some(caller));
        }
        let mut conn = self.conn().await?;
        let row: Option<(i64, i64, String, String, String, Option<i64>, Option<i64>, Option<i64>)> = sqlx::query_as(
            "SELECT id, user_id, name, roles, environments, expires_at, revoked_at, last_used_at \
             FROM api_tokens WHERE token_hash = $1",
        )
        .bind(&hash)
        .fetch_optional(&mut *conn)
        .await?;
        let Some((id, user_id, name, roles, environments, expires_at, revoked_at, last_used_at)) = row else {
            return Ok(None);
        };
        if revoked_at.is_some() || expires_at.is_some_and(|e| now >= e) {
            return Ok(None);
        }
        let Some(user) = user_by_id(&mut conn, user_id).await?.filter(|u| u.disabled_at.is_none()) else {
            return Ok(None);
        };
        drop(conn);
        if last_used_at.is_none_or(|t| now - t > 60_000) {
            self.bookkeeping(sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2").bind(now).bind(id))
                .await?;
        }
        // A token never grants more than its owner holds now.
        let owner_roles = user.roles();
        let roles = from_json::<Vec<Role>>(&roles).into_iter().filter(|r| owner_roles.contains(r)).collect();
        let caller = Caller { environments: from_json(&environments), ..user.caller(roles, Some(name)) };
        let entry =
            CachedToken { caller: caller.clone(), token_expires_at: expires_at, trusted_until: now + TOKEN_CACHE_MS };
        if let Some(t) = self.tokens() {
            t.put(hash, entry);
        }
        Ok(Some(caller))
    }

    async fn me(&self, caller: &Caller) -> Result<Me, ApiError> {
        let mut conn = self.conn().await?;
        let user = user_by_id(&mut conn, caller.user_id).await?.ok_or_else(ApiError::unauthorized)?;
        Ok(Me {
            username: user.username,
            display_name: user.display_name,
            roles: caller.roles.iter().copied().collect(),
        })
    }

    async fn create_user(&self, caller: &Caller, input: NewUser) -> Result<User, ApiError> {
        caller.require(Permission::ManageUsers)?;
        self.bootstrap_user(caller.into(), input).await
    }

    async fn list_users(&self, caller: &Caller) -> Result<Vec<User>, ApiError> {
        caller.require(Permission::ManageUsers)?;
        let rows: Vec<UserRow> = sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY username"))
            .fetch_all(&mut *self.conn().await?)
            .await?;
        Ok(rows.into_iter().map(UserRow::into_user).collect())
    }

    async fn update_user(&self, caller: &Caller, username: &str, patch: UserPatch) -> Result<User, ApiError> {
        caller.require(Permission::ManageUsers)?;
        patch.validate()?;
        let new_hash = match &patch.password {
            Some(p) => Some(hash_password(p.clone()).await?),
            None => None,
        };
        let now = self.clock.now_ms();
        let mut tx = self.begin_write().await?;
        let user = user_by_name(&mut tx, username)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("user '{username}' not found")))?;
        if user.id == caller.user_id && patch.disabled == Some(true) {
            return Err(ApiError::invalid("disabled", "you cannot disable yourself"));
        }
        let roles: Roles = match &patch.roles {
            Some(r) => r.iter().copied().collect(),
            None => user.roles(),
        };
        if user.id == caller.user_id && !roles.contains(&Role::Admin) {
            return Err(ApiError::invalid("roles", "you cannot remove your own admin role"));
        }
        let disabled_at = match patch.disabled {
            Some(true) => user.disabled_at.or(Some(now)),
            Some(false) => None,
            None => user.disabled_at,
        };
        sqlx::query(
            "UPDATE users SET display_name = $1, roles = $2, disabled_at = $3, password_hash = $4, updated_at = $5 WHERE id = $6",
        )
        .bind(patch.display_name.as_deref().unwrap_or(&user.display_name))
        .bind(to_json(&roles))
        .bind(disabled_at)
        .bind(new_hash.as_deref().unwrap_or(&user.password_hash))
        .bind(now)
        .bind(user.id)
        .execute(&mut *tx)
        .await?;
        if new_hash.is_some() || disabled_at.is_some() {
            Self::end_sessions(&mut tx, user.id).await?;
        }
        let updated = user_by_id(&mut tx, user.id).await?.ok_or_else(ApiError::internal)?.into_user();
        let mut change = Change::new(AuditAction::UserUpdate, Target::user(username)).before(&user.into_user());
        if new_hash.is_some() {
            change = change.reason("password changed");
        }
        tx.commit(caller, change.after(&updated)).await?;
        if let Some(t) = self.tokens() {
            t.clear();
        }
        Ok(updated)
    }

    async fn create_token(&self, caller: &Caller, input: NewToken) -> Result<CreatedToken, ApiError> {
        input.validate()?;
        // A token acts for the person who made it, so four eyes stay two people: nobody, an
        // admin included, mints one for someone else (only `modelgate token create` on the
        // server's own machine does, recorded as the command line's).
        let owner_name = input.owner.clone().unwrap_or_else(|| caller.username.clone());
        if owner_name != caller.username {
            return Err(ApiError::forbidden(format!(
                "a token acts for the user who creates it: {owner_name} signs in to create their own"
            )));
        } else if caller.token.is_some() {
            return Err(ApiError::forbidden("an API token cannot create API tokens; sign in to create one"));
        }
        let mut conn = self.conn().await?;
        let owner = user_by_name(&mut conn, &owner_name)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("user '{owner_name}' not found")))?;
        drop(conn);
        self.insert_token(caller.into(), &owner, input).await
    }

    async fn list_tokens(&self, caller: &Caller) -> Result<Vec<ApiToken>, ApiError> {
        let all = caller.can(Permission::ManageTokens);
        let rows: Vec<TokenRow> = sqlx::query_as(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens t JOIN users u ON u.id = t.user_id \
             WHERE $1 = 1 OR t.user_id = $2 ORDER BY t.id DESC"
        ))
        .bind(i64::from(all))
        .bind(caller.user_id)
        .fetch_all(&mut *self.conn().await?)
        .await?;
        Ok(rows.into_iter().map(TokenRow::into_token).collect())
    }

    async fn revoke_token(&self, caller: &Caller, id: i64) -> Result<ApiToken, ApiError> {
        let mut tx = self.begin_write().await?;
        let token = token_by_id(&mut tx, id).await?;
        if token.owner != caller.username {
            caller.require(Permission::ManageTokens)?;
        }
        if token.revoked_at.is_some() {
            return Err(ApiError::conflict(format!("API token {id} is already revoked")));
        }
        sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2")
            .bind(self.clock.now_ms())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let revoked = token_by_id(&mut tx, id).await?.into_token();
        let change = Change::new(AuditAction::TokenRevoke, Target::token(id)).before(&token.into_token());
        tx.commit(caller, change.after(&revoked)).await?;
        if let Some(t) = self.tokens() {
            t.clear();
        }
        Ok(revoked)
    }
}
