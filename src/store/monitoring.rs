//! Monitoring: the queue status from the running totals, and stuck chats.

use super::queries::*;
use super::spi::*;
use crate::error::{ChatError, ChatResult};
use pgrx::datum::{AnyNumeric, TimestampWithTimeZone};
use pgrx::pg_sys;
use pgrx::spi::SpiClient;
use pgrx::Uuid;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

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

/// What service metrics gather for one scope while the window is read.
#[derive(Default)]
struct Tally {
    started: i64,
    abandoned: i64,
    transfers: i64,
    idle_releases: i64,
    /// Start to first operator reply, in microseconds, of each chat answered.
    response: Vec<i64>,
    /// Start to first assignment, in microseconds, of each chat assigned.
    wait: Vec<i64>,
}

impl Tally {
    /// Counts a chat of the window; returns the bytes of durations it kept.
    fn add(&mut self, row: &FoldRow<'_>) -> usize {
        self.started += 1;
        self.abandoned += i64::from(row.flag(3));
        self.idle_releases += i64::from(row.int(4).unwrap_or_default());
        let started = row.micros(0).unwrap_or_default();
        let mut kept = 0;
        if let Some(assigned) = row.micros(1) {
            self.wait.push(assigned - started);
            kept += std::mem::size_of::<i64>();
        }
        if let Some(answered) = row.micros(2) {
            self.response.push(answered - started);
            kept += std::mem::size_of::<i64>();
        }
        kept
    }

    fn into_row(
        mut self,
        scope: &str,
        team_id: Option<Uuid>,
        team_name: Option<String>,
    ) -> ServiceMetrics {
        ServiceMetrics {
            scope: scope.into(),
            team_id,
            team_name,
            chats_started: self.started,
            first_response_p50: percentile_seconds(&mut self.response, 0.5),
            first_response_p90: percentile_seconds(&mut self.response, 0.9),
            wait_to_assignment_p50: percentile_seconds(&mut self.wait, 0.5),
            wait_to_assignment_p90: percentile_seconds(&mut self.wait, 0.9),
            transfers: self.transfers,
            idle_releases: self.idle_releases,
            abandoned: self.abandoned,
        }
    }
}

/// Hashes the team ids service metrics look up once per chat of the window: uuids are
/// random enough that folding their bytes will do, and the default (SipHash, which resists
/// chosen keys the teams table does not take) was a tenth of the fold.
#[derive(Default)]
struct UuidHasher(u64);

impl Hasher for UuidHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word))
                .wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
}

/// The `fraction` percentile of durations in microseconds, in seconds, as SQL's
/// `percentile_cont` computes it (interpolating between the two nearest values; NULL for no
/// values), found by selection rather than by sorting.
fn percentile_seconds(values: &mut [i64], fraction: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let position = fraction * (values.len() - 1) as f64;
    let below = position.floor() as usize;
    let (_, low, above) = values.select_nth_unstable(below);
    let low = *low as f64 / 1_000_000.0;
    if position == below as f64 {
        return Some(low);
    }
    let high = *above.iter().min()? as f64 / 1_000_000.0;
    Some(low + (high - low) * (position - below as f64))
}

/// Service metrics of the chats started since `since`, per scope (all, without a team, each
/// team; only `team` when given: an unknown team is `P0002`). The window's chats are read
/// once, a row at a time, and folded here: each scope keeps its durations and takes its
/// percentiles by selection. Those durations are 8 bytes each, up to four per chat; a
/// window whose durations would pass 8 × `work_mem` (1M chats at the default 4 MB) is
/// computed in SQL instead, whose sorts spill to disk: slower, the same answer, and a
/// backend that never holds more than that budget for it.
pub fn service_metrics(
    since: TimestampWithTimeZone,
    team: Option<Uuid>,
) -> ChatResult<Vec<ServiceMetrics>> {
    // SAFETY: a read of the session's work_mem setting, in kilobytes.
    let work_mem_kb = unsafe { pg_sys::work_mem };
    service_metrics_within(
        since,
        team,
        usize::try_from(work_mem_kb).unwrap_or(0) * 1024 * 8,
    )
}

/// [`service_metrics`] with the fold's memory budget given, in bytes (tests: 0 takes the SQL
/// path for any non-empty window).
pub fn service_metrics_within(
    since: TimestampWithTimeZone,
    team: Option<Uuid>,
    budget: usize,
) -> ChatResult<Vec<ServiceMetrics>> {
    connect(|client| {
        if let Some(team) = team {
            if !super::teams::team_exists(client, team)? {
                return Err(ChatError::TeamNotFound(team));
            }
        }
        match fold_service_metrics(client, since, team, budget)? {
            Some(rows) => Ok(rows),
            None => sql_service_metrics(client, since, team),
        }
    })
}

/// The fold of [`service_metrics`]; `None` when the window's durations pass `budget` bytes.
fn fold_service_metrics(
    client: &mut SpiClient<'_>,
    since: TimestampWithTimeZone,
    team: Option<Uuid>,
    budget: usize,
) -> ChatResult<Option<Vec<ServiceMetrics>>> {
    // Scope 0 is all chats, 1 those without a team, then the teams in name order.
    let mut teams = Vec::new();
    for row in exec(client, &SERVICE_TEAMS, &[team.into()])? {
        teams.push((row.get::<Uuid>(1)?, row.get::<String>(2)?));
    }
    let index: HashMap<Uuid, usize, BuildHasherDefault<UuidHasher>> = teams
        .iter()
        .enumerate()
        .filter_map(|(i, (id, _))| id.map(|id| (id, i + 2)))
        .collect();
    let scope_of = |team_id: Option<Uuid>| match team_id {
        None => Some(1),
        Some(id) => index.get(&id).copied(),
    };
    let mut tallies: Vec<Tally> = std::iter::repeat_with(Tally::default)
        .take(teams.len() + 2)
        .collect();
    let mut held = 0usize;
    let complete = fold_rows(
        client,
        &SERVICE_WINDOW,
        &[since.into(), team.into()],
        SERVICE_WINDOW_COLUMNS,
        |row| {
            if let Some(scope) = scope_of(row.uuid(5)) {
                held += tallies[scope].add(row);
            }
            if team.is_none() {
                held += tallies[0].add(row);
            }
            held <= budget
        },
    )?;
    if !complete {
        return Ok(None);
    }
    for row in exec(client, &SERVICE_TRANSFERS, &[since.into(), team.into()])? {
        let n = row.get::<i64>(2)?.unwrap_or(0);
        for scope in [Some(0), scope_of(row.get::<Uuid>(1)?)]
            .into_iter()
            .flatten()
        {
            tallies[scope].transfers += n;
        }
    }
    let mut tallies = tallies.into_iter();
    let (all, no_team) = (tallies.next(), tallies.next());
    let mut out = Vec::new();
    if team.is_none() {
        out.extend(all.map(|t| t.into_row("all", None, None)));
        out.extend(no_team.map(|t| t.into_row("no_team", None, None)));
    }
    for ((id, name), tally) in teams.into_iter().zip(tallies) {
        out.push(tally.into_row("team", id, name));
    }
    Ok(Some(out))
}

/// [`service_metrics`] in SQL ([`SERVICE_METRICS`]), for a window too large for the fold.
fn sql_service_metrics(
    client: &mut SpiClient<'_>,
    since: TimestampWithTimeZone,
    team: Option<Uuid>,
) -> ChatResult<Vec<ServiceMetrics>> {
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
}
