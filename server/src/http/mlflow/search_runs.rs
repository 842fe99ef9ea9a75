//! `runs/search` (what `mlflow.search_runs` and `mlflow runs list` call): the runs of some
//! experiments filtered on their latest metrics, params, tags and attributes, ordered by any of
//! those (runs without the key last), a page at a time.

use app::domain::Permission;
use axum::Json;
use axum::extract::State;

use super::checks::parse_experiment_id;
use super::experiments::view_condition;
use super::filter::{Comparison, Literal, comparisons, next_page, order_key, page};
use super::tracking::load_runs;
use super::wire::{Run, SearchRuns};
use super::{Body, MlflowCaller, MlflowError, MlflowResult};
use crate::http::state::AppState;

/// MLflow's page sizes for runs: 1,000 by default, 50,000 at most.
const DEFAULT_RESULTS: i64 = 1000;
const MAX_RESULTS: i64 = 50_000;

/// What a filter or `order_by` names: a run's latest metric, param, tag, or one of its attributes.
enum Field {
    Metric(String),
    Param(String),
    Tag(String),
    /// A column of `mlflow_runs r`, numeric or not.
    Attribute {
        column: &'static str,
        numeric: bool,
    },
}

impl Field {
    fn parse(field: &str, name: &str) -> Result<Self, MlflowError> {
        let (kind, key) = field.split_once('.').unwrap_or(("attributes", field));
        let named = || -> Result<String, MlflowError> {
            if key.is_empty() {
                return Err(MlflowError::invalid(format!("{name}: '{field}' names no key")));
            }
            Ok(key.to_string())
        };
        Ok(match kind {
            "metric" | "metrics" => Field::Metric(named()?),
            "param" | "params" | "parameter" | "parameters" => Field::Param(named()?),
            "tag" | "tags" => Field::Tag(named()?),
            "attribute" | "attributes" | "attr" | "run" => {
                let (column, numeric) = match key {
                    "run_id" | "run_uuid" | "id" => ("r.id", false),
                    "run_name" => ("r.name", false),
                    "status" => ("r.status", false),
                    "user_id" => ("r.user_id", false),
                    "start_time" | "created" | "Created" => ("r.start_time", true),
                    "end_time" => ("r.end_time", true),
                    other => {
                        return Err(MlflowError::invalid(format!(
                            "{name}: unknown run attribute '{other}' (run_id, run_name, status, user_id, \
                             start_time, end_time)"
                        )));
                    }
                };
                Field::Attribute { column, numeric }
            }
            other => {
                return Err(MlflowError::invalid(format!(
                    "{name}: '{other}.' is not searchable here (metrics., params., tags., attributes.)"
                )));
            }
        })
    }

    /// The field's value for the run `r` as an SQL expression — a column of `r`, or of the row of
    /// its key joined in `sql`, an inner join when the run must have the key (a filter names it) —
    /// and whether it can be NULL.
    fn value(&self, sql: &mut Sql, required: bool) -> (String, bool) {
        let (table, key) = match self {
            Field::Metric(key) => ("mlflow_latest_metrics", key),
            Field::Param(key) => ("mlflow_run_params", key),
            Field::Tag(key) => ("mlflow_run_tags", key),
            Field::Attribute { column, .. } => return (column.to_string(), *column == "r.end_time"),
        };
        let (alias, inner) = sql.join(table, key, required);
        // A metric whose latest value is NaN is stored as NULL; a filter on it never holds.
        (format!("{alias}.value"), !inner)
    }

    fn numeric(&self) -> bool {
        matches!(self, Field::Metric(_) | Field::Attribute { numeric: true, .. })
    }
}

enum Bind {
    Text(String),
    Number(f64),
}

/// One key's row joined to each run: its table, key, alias and whether every run must have it.
struct Join {
    table: &'static str,
    key: String,
    alias: String,
    required: bool,
}

/// A statement being written: the keys it joins and its bind values.
#[derive(Default)]
struct Sql {
    joins: Vec<Join>,
    binds: Vec<Bind>,
}

impl Sql {
    fn bind(&mut self, value: Bind) -> String {
        self.binds.push(value);
        format!("${}", self.binds.len())
    }

    /// The alias of `key`'s row of `table`, joined once however often it is named. A filter on a
    /// key needs it (inner join: with an index on key and value the database can start from the
    /// key's rows); an order alone keeps runs without it, last (left join).
    /// Also whether it is an inner join (so far).
    fn join(&mut self, table: &'static str, key: &str, required: bool) -> (String, bool) {
        if let Some(join) = self.joins.iter_mut().find(|j| j.table == table && j.key == key) {
            join.required |= required;
            return (join.alias.clone(), join.required);
        }
        let alias = format!("k{}", self.joins.len());
        self.joins.push(Join { table, key: key.to_string(), alias: alias.clone(), required });
        (alias, required)
    }

    /// The `JOIN` clauses of the keys named, their keys bound.
    fn join_clauses(&mut self) -> String {
        let joins = std::mem::take(&mut self.joins);
        let clauses: Vec<String> = joins
            .iter()
            .map(|j| {
                let key = self.bind(Bind::Text(j.key.clone()));
                let kind = if j.required { "JOIN" } else { "LEFT JOIN" };
                format!("{kind} {} {a} ON {a}.run_id = r.id AND {a}.key = {key}", j.table, a = j.alias)
            })
            .collect();
        clauses.join(" ")
    }

    /// The condition one comparison puts on the run `r`.
    fn condition(&mut self, c: &Comparison) -> Result<String, MlflowError> {
        let field = Field::parse(&c.attribute, "filter")?;
        let wrong =
            |wanted: &str| MlflowError::invalid(format!("filter: `{} {} …` needs {wanted}", c.attribute, c.operator));
        let (value, _) = field.value(self, true);
        match (&c.value, c.operator) {
            (Literal::Number(n), "=" | "!=" | "<" | "<=" | ">" | ">=") if field.numeric() => {
                Ok(format!("{value} {} {}", c.operator, self.bind(Bind::Number(*n))))
            }
            _ if field.numeric() => Err(wrong("a number compared with =, !=, <, <=, > or >=")),
            (Literal::Text(t), "=" | "!=" | "LIKE") => {
                Ok(format!("{value} {} {}", c.operator, self.bind(Bind::Text(t.clone()))))
            }
            (Literal::Text(t), "ILIKE") => {
                Ok(format!("LOWER({value}) LIKE {}", self.bind(Bind::Text(t.to_lowercase()))))
            }
            (Literal::List(items), op @ ("IN" | "NOT IN"))
                if matches!(field, Field::Attribute { column: "r.id", .. }) =>
            {
                if items.is_empty() {
                    return Ok(if op == "IN" { "1 = 0" } else { "1 = 1" }.into());
                }
                let marks: Vec<String> = items.iter().map(|i| self.bind(Bind::Text(i.clone()))).collect();
                Ok(format!("{value} {op} ({})", marks.join(", ")))
            }
            (Literal::List(_), _) => Err(wrong("IN only on run_id")),
            _ => Err(wrong("a quoted value compared with =, !=, LIKE or ILIKE")),
        }
    }
}

/// `POST runs/search`.
pub async fn search(
    State(s): State<AppState>,
    MlflowCaller(caller): MlflowCaller,
    Body(req): Body<SearchRuns>,
) -> MlflowResult<Found> {
    caller.require(Permission::Read)?;
    let (limit, offset) = page(req.max_results.or(Some(DEFAULT_RESULTS)), req.page_token.as_deref(), MAX_RESULTS)?;
    let experiments = req.experiment_ids.iter().map(|e| parse_experiment_id(e)).collect::<Result<Vec<i64>, _>>()?;
    if experiments.is_empty() {
        return Ok(Json(Found { runs: Vec::new(), next_page_token: None }));
    }
    let mut sql = Sql::default();
    let listed = experiments.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
    let mut conditions = vec![format!("r.experiment_id IN ({listed})")];
    conditions.push(view_condition("run_view_type", req.run_view_type.as_deref())?.to_string());
    for comparison in comparisons(req.filter.as_deref())? {
        conditions.push(sql.condition(&comparison)?);
    }
    let mut order = Vec::new();
    for clause in &req.order_by {
        let (field, ascending) = order_key(clause)?;
        let (value, nullable) = Field::parse(&field, "order_by")?.value(&mut sql, false);
        let way = if ascending { "ASC" } else { "DESC" };
        // Runs without the key come last, whichever way the rest are ordered; when every run has
        // it (a filter needs it), the order is the index's own and the database stops at the page.
        order.push(if nullable { format!("{value} IS NULL, {value} {way}") } else { format!("{value} {way}") });
    }
    order.extend(["r.start_time DESC".to_string(), "r.id".to_string()]);
    let joins = sql.join_clauses();
    let statement = format!(
        "SELECT r.id FROM mlflow_runs r {joins} WHERE {} ORDER BY {} LIMIT {} OFFSET {offset}",
        conditions.join(" AND "),
        order.join(", "),
        limit + 1
    );
    let mut query = sqlx::query_scalar::<_, String>(&statement);
    for bind in sql.binds {
        query = match bind {
            Bind::Text(t) => query.bind(t),
            Bind::Number(n) => query.bind(n),
        };
    }
    let mut conn = s.store.conn().await?;
    let ids = query.fetch_all(&mut *conn).await?;
    let (ids, next) = next_page(ids, limit, offset);
    // Serialized straight from the runs (a JSON value tree of a thousand runs cost as much again).
    Ok(Json(Found { runs: load_runs(&mut conn, &ids).await?, next_page_token: next }))
}

/// A page of runs.
#[derive(serde::Serialize)]
pub struct Found {
    runs: Vec<Run>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_page_token: Option<String>,
}
