//! Monitoring: the queue status from the running totals, and stuck chats.

use super::queries::*;
use super::spi::*;
use crate::error::{ChatError, ChatResult};
use pgrx::datum::{AnyNumeric, TimestampWithTimeZone};
use pgrx::Uuid;

/// The row of `get_assignment_queue_status()`.
pub struct QueueStatus {
    pub waiting: i64,
    pub assigned: i64,
    pub waiting_reply: i64,
    pub oldest_waiting_seconds: Option<f64>,
    pub avg_waiting_seconds: Option<f64>,
    pub active_operators: i64,
    pub busy_operators: i64,
    pub available_operators: i64,
}

/// The row of `get_assignment_queue_status()`, from the running totals.
pub fn queue_status() -> ChatResult<QueueStatus> {
    connect(|client| {
        let row = exec(client, &QUEUE_STATUS, &[])?.first();
        let count = |n: usize| -> ChatResult<i64> { Ok(row.get::<i64>(n)?.unwrap_or(0)) };
        Ok(QueueStatus {
            waiting: count(1)?,
            assigned: count(2)?,
            waiting_reply: count(3)?,
            oldest_waiting_seconds: row.get::<f64>(4)?,
            avg_waiting_seconds: row.get::<f64>(5)?,
            active_operators: count(6)?,
            busy_operators: count(7)?,
            available_operators: count(8)?,
        })
    })
}

/// A row of `detect_stuck_chats()`.
pub struct StuckChat {
    pub chat_id: Uuid,
    pub chat_state: String,
    pub real_user_id: Uuid,
    pub state_changed_at: TimestampWithTimeZone,
    pub hours_in_state: AnyNumeric,
    pub assigned_operator_id: Option<Uuid>,
    pub last_operator_id: Option<Uuid>,
    pub operator_name: Option<String>,
}

/// Active chats stuck in the queue or with an operator for more than `hours`.
pub fn stuck_chats(hours: f64) -> ChatResult<Vec<StuckChat>> {
    connect(|client| {
        let mut out = Vec::new();
        for row in exec(client, &STUCK_CHATS, &[hours.into()])? {
            let (Some(chat_id), Some(chat_state), Some(real_user_id), Some(changed), Some(hours)) = (
                row.get::<Uuid>(1)?,
                row.get::<String>(2)?,
                row.get::<Uuid>(3)?,
                row.get::<TimestampWithTimeZone>(4)?,
                row.get::<AnyNumeric>(5)?,
            ) else {
                continue;
            };
            out.push(StuckChat {
                chat_id,
                chat_state,
                real_user_id,
                state_changed_at: changed,
                hours_in_state: hours,
                assigned_operator_id: row.get::<Uuid>(6)?,
                last_operator_id: row.get::<Uuid>(7)?,
                operator_name: row.get::<String>(8)?,
            });
        }
        Ok(out)
    })
}

/// A row of `get_service_metrics()`.
pub struct ServiceMetrics {
    pub scope: String,
    pub team_id: Option<Uuid>,
    pub team_name: Option<String>,
    pub chats_started: i64,
    pub first_response_p50: Option<f64>,
    pub first_response_p90: Option<f64>,
    pub wait_to_assignment_p50: Option<f64>,
    pub wait_to_assignment_p90: Option<f64>,
    pub transfers: i64,
    pub idle_releases: i64,
    pub abandoned: i64,
}

/// Service metrics of the chats started since `since`, per scope (all, without a team, each
/// team; only `team` when given: an unknown team is `P0002`).
pub fn service_metrics(
    since: TimestampWithTimeZone,
    team: Option<Uuid>,
) -> ChatResult<Vec<ServiceMetrics>> {
    connect(|client| {
        if let Some(team) = team {
            if !super::teams::team_exists(client, team)? {
                return Err(ChatError::TeamNotFound(team));
            }
        }
        let mut out = Vec::new();
        for row in exec(client, &SERVICE_METRICS, &[since.into(), team.into()])? {
            out.push(ServiceMetrics {
                scope: row.get::<String>(1)?.unwrap_or_default(),
                team_id: row.get::<Uuid>(2)?,
                team_name: row.get::<String>(3)?,
                chats_started: row.get::<i64>(4)?.unwrap_or(0),
                first_response_p50: row.get::<f64>(5)?,
                first_response_p90: row.get::<f64>(6)?,
                wait_to_assignment_p50: row.get::<f64>(7)?,
                wait_to_assignment_p90: row.get::<f64>(8)?,
                transfers: row.get::<i64>(9)?.unwrap_or(0),
                idle_releases: row.get::<i64>(10)?.unwrap_or(0),
                abandoned: row.get::<i64>(11)?.unwrap_or(0),
            });
        }
        Ok(out)
    })
}
