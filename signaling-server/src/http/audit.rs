//! The audit log (`ManageServer`), newest first, paged by id.

use axum::extract::State;
use hearth_protocol::api::AuditLogQuery;
use hearth_protocol::model::{AuditEntry, Permission};

use super::extract::{Json, Query};
use crate::auth::AuthUser;
use crate::error::{AppError, AppResult};
use crate::state::AppState;

pub async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    Query(q): Query<AuditLogQuery>,
) -> AppResult<Json<Vec<AuditEntry>>> {
    user.require(&state, Permission::ManageServer)?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(AppError::invalid("limit must be between 1 and 100"));
    }
    Ok(Json(state.db.audit_log(q.before, limit).await?))
}
