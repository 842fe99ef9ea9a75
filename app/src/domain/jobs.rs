//! Long operations run in the background: what they are, how far they got and how they ended.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a background job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum JobKind {
    /// Walks the whole audit chain against every checkpoint (*verify now*).
    #[serde(rename = "audit.verify")]
    AuditVerify,
    /// Writes an audit export into storage, to download once done (one per user at a time).
    #[serde(rename = "audit.export")]
    AuditExport,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::AuditVerify => "audit.verify",
            JobKind::AuditExport => "audit.export",
        }
    }

    pub fn parse(s: &str) -> Option<JobKind> {
        [JobKind::AuditVerify, JobKind::AuditExport].into_iter().find(|kind| kind.as_str() == s)
    }
}

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Running,
    Done,
    /// It failed (`error` says why), or the server running it stopped reporting.
    Failed,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<JobState> {
        [JobState::Running, JobState::Done, JobState::Failed].into_iter().find(|state| state.as_str() == s)
    }
}

/// A background job, as `GET /api/v1/jobs/{id}` reports it. At most one of each kind runs at a
/// time: asking for another while one runs answers the running one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Job {
    pub id: i64,
    pub kind: JobKind,
    pub state: JobState,
    /// Units of work done so far out of `total`: entries walked, for a verification; for an
    /// export, the position in the chain it has reached.
    pub done: i64,
    pub total: i64,
    pub requested_by: String,
    pub started_at: String,
    /// When it last reported progress.
    pub updated_at: String,
    pub finished_at: Option<String>,
    pub error: Option<String>,
    /// What it produced once done: a verification's [`super::Verification`]; an export's
    /// [`ExportFile`].
    pub result: Option<Value>,
}

impl Job {
    /// How far it got, 0 to 100.
    pub fn percent(&self) -> u8 {
        if self.total <= 0 { 0 } else { (self.done.clamp(0, self.total) * 100 / self.total) as u8 }
    }
}

/// What an export job wrote: download it from `GET /api/v1/audit/jobs/{id}/file`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ExportFile {
    /// The file name it downloads as.
    pub name: String,
    pub content_type: String,
    pub size: i64,
    pub sha256: String,
    /// Entries it holds.
    pub entries: i64,
}
