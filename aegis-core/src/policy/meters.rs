//! Usage meters: one primitive, (tenant, meter, window, limit), for spend quotas now and
//! rate limits later.
//!
//! A call reserves an estimate before it runs and settles the real amount after. Each is
//! one SQL statement: the reservation's `UPDATE … WHERE used + reserved + amount <= limit`
//! takes the meter row's lock, and PostgreSQL re-checks the condition on the latest row
//! after waiting for it, so concurrent reservations can never together pass the limit.
//! A call that ends without usage settles as `unpriced`: it stays charged at its
//! reservation. Reservations never settled (a crash) are freed by [`Meters::sweep_expired`].

use std::time::Duration;

use chrono::{DateTime, Datelike, TimeZone, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::{
    clock::SharedClock,
    db::{Database, DbError},
};

/// The meter of premium model spend, in micro-USD.
pub const PREMIUM_SPEND: &str = "premium_spend_micro_usd";

/// A meter's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// The UTC calendar month.
    CalendarMonth,
    /// Fixed windows of this length, aligned to the Unix epoch.
    Fixed(Duration),
}

impl Window {
    /// The window containing `now`: [start, end).
    pub fn bounds(self, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        match self {
            Window::CalendarMonth => {
                let start = Utc.with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0).single().unwrap_or(now);
                let (y, m) = if now.month() == 12 { (now.year() + 1, 1) } else { (now.year(), now.month() + 1) };
                let end = Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0).single().unwrap_or(now);
                (start, end)
            }
            Window::Fixed(length) => {
                let secs = i64::try_from(length.as_secs().max(1)).unwrap_or(i64::MAX);
                let start_ts = now.timestamp().div_euclid(secs) * secs;
                let start = Utc.timestamp_opt(start_ts, 0).single().unwrap_or(now);
                (start, start + chrono::Duration::seconds(secs))
            }
        }
    }
}

/// A meter's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct MeterUsage {
    /// Settled usage.
    pub used: i64,
    /// Held by reservations not yet settled.
    pub reserved: i64,
    /// The limit.
    pub limit_value: i64,
    /// Calls settled without usage.
    pub unpriced_calls: i64,
}

/// A held reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Reservation {
    /// Its id.
    pub id: Uuid,
    /// The amount held.
    pub amount: i64,
}

/// A meter failure.
#[derive(Debug, thiserror::Error)]
pub enum MeterError {
    /// The reservation would pass the limit.
    #[error("quota `{meter}` exceeded: {used} used + {reserved} reserved + {requested} requested > limit {limit}")]
    Exceeded {
        /// The meter.
        meter: String,
        /// Settled usage.
        used: i64,
        /// Reserved by calls in flight.
        reserved: i64,
        /// This request's estimate.
        requested: i64,
        /// The limit.
        limit: i64,
    },
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for MeterError {
    fn from(err: sqlx::Error) -> Self {
        MeterError::Db(DbError::Sql(err))
    }
}

/// Holds an amount against the limit (the tenant's override read in the same statement),
/// or returns no row when the limit would be passed.
const RESERVE: &str = "WITH lim AS (SELECT COALESCE( \
                         (SELECT limit_value FROM public.usage_limits WHERE tenant_id = $1 AND meter = $2), $4) AS v), \
                       held AS ( \
                         UPDATE public.usage_meters SET reserved = reserved + $5, limit_value = lim.v FROM lim \
                         WHERE tenant_id = $1 AND meter = $2 AND window_start = $3 AND used + reserved + $5 <= lim.v \
                         RETURNING tenant_id) \
                       INSERT INTO public.usage_reservations (id, tenant_id, meter, window_start, amount, status, created_at, expires_at) \
                       SELECT $6, $1, $2, $3, $5, 'held', $7, $8 FROM held RETURNING id";

/// Frees every reservation held past its expiry; returns how many.
const SWEEP: &str = "WITH r AS ( \
                       UPDATE public.usage_reservations SET status = 'expired', settled_at = $1 \
                       WHERE status = 'held' AND expires_at < $1 RETURNING tenant_id, meter, window_start, amount), \
                     agg AS (SELECT tenant_id, meter, window_start, sum(amount) AS amount, count(*) AS n FROM r GROUP BY 1, 2, 3), \
                     upd AS (UPDATE public.usage_meters m SET reserved = m.reserved - agg.amount FROM agg \
                       WHERE m.tenant_id = agg.tenant_id AND m.meter = agg.meter AND m.window_start = agg.window_start RETURNING agg.n) \
                     SELECT COALESCE(sum(n), 0)::bigint FROM upd";

/// Deletes finished (settled, released, expired) reservations whose ids — UUIDv7, so their
/// time — are below `$1`, oldest first, at most `$2` of them. Held ones are never deleted.
const PRUNE: &str = "DELETE FROM public.usage_reservations WHERE id IN ( \
                       SELECT id FROM public.usage_reservations WHERE id < $1 AND status <> 'held' ORDER BY id LIMIT $2)";

/// Reservations deleted per pruning statement, and statements per sweep.
const PRUNE_BATCH: i64 = 10_000;
const PRUNE_BATCHES: usize = 10;

/// (tenant, meter, window start).
type MeterKey = (String, String, DateTime<Utc>);

/// The meters. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Meters {
    db: Database,
    clock: SharedClock,
    /// Meter rows known to exist, so the insert that creates one runs once per window.
    known: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<MeterKey>>>,
}

impl Meters {
    /// Meters on `db`, timed by `clock`.
    pub fn new(db: Database, clock: SharedClock) -> Self {
        Self { db, clock, known: std::sync::Arc::default() }
    }

    /// Runs `statement`, again while the connection it was given turns out lost. The meters'
    /// pool hands out connections without a test round trip first ([`Database::async_commit`]),
    /// so one that died idle (PostgreSQL restarted) fails its statement instead and is
    /// closed; a pool holds at most its size of them. Every statement here may run twice: a
    /// reservation's id is chosen before the first try, so a reserve that did commit fails
    /// on that id the second time rather than holding twice (the reservation is then freed
    /// by the sweeper), and settling or releasing changes only a reservation still held.
    async fn on_a_live_connection<T, F>(&self, statement: impl Fn() -> F) -> Result<T, sqlx::Error>
    where
        F: std::future::Future<Output = Result<T, sqlx::Error>>,
    {
        let mut lost = 0;
        loop {
            match statement().await {
                Err(err)
                    if crate::db::connection_lost(&err) && lost < self.db.pool().options().get_max_connections() =>
                {
                    lost += 1;
                    tracing::debug!(error = %err, "a meter statement lost its connection; running it on another");
                }
                done => return done,
            }
        }
    }

    /// The tenant's override of `meter`'s limit, if one is set.
    pub async fn limit_override(&self, tenant: &str, meter: &str) -> Result<Option<i64>, MeterError> {
        Ok(self
            .on_a_live_connection(|| {
                sqlx::query_scalar("SELECT limit_value FROM public.usage_limits WHERE tenant_id = $1 AND meter = $2")
                    .bind(tenant)
                    .bind(meter)
                    .fetch_optional(self.db.pool())
            })
            .await?)
    }

    /// Sets (or with `None` removes) a tenant's override of `meter`'s limit.
    pub async fn set_limit_override(&self, tenant: &str, meter: &str, limit: Option<i64>) -> Result<(), MeterError> {
        match limit {
            Some(limit) => {
                self.on_a_live_connection(|| {
                    sqlx::query(
                        "INSERT INTO public.usage_limits (tenant_id, meter, limit_value) VALUES ($1, $2, $3) \
                         ON CONFLICT (tenant_id, meter) DO UPDATE SET limit_value = EXCLUDED.limit_value",
                    )
                    .bind(tenant)
                    .bind(meter)
                    .bind(limit)
                    .execute(self.db.pool())
                })
                .await?;
            }
            None => {
                self.on_a_live_connection(|| {
                    sqlx::query("DELETE FROM public.usage_limits WHERE tenant_id = $1 AND meter = $2")
                        .bind(tenant)
                        .bind(meter)
                        .execute(self.db.pool())
                })
                .await?;
            }
        }
        Ok(())
    }

    /// Holds `amount` against the limit — the tenant's override of `meter` if one is set
    /// (read in the same statement), else `default_limit` — or fails with
    /// [`MeterError::Exceeded`].
    #[tracing::instrument(skip_all, fields(tenant, meter))]
    pub async fn reserve(
        &self,
        tenant: &str,
        meter: &str,
        window: Window,
        default_limit: i64,
        amount: i64,
        ttl: Duration,
    ) -> Result<Reservation, MeterError> {
        let now = self.clock.now();
        let (start, end) = window.bounds(now);
        let key = (tenant.to_owned(), meter.to_owned(), start);
        if !self.known.lock().is_ok_and(|known| known.contains(&key)) {
            self.on_a_live_connection(|| {
                sqlx::query(
                    "INSERT INTO public.usage_meters (tenant_id, meter, window_start, window_end, limit_value) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, meter, window_start) DO NOTHING",
                )
                .bind(tenant)
                .bind(meter)
                .bind(start)
                .bind(end)
                .bind(default_limit)
                .execute(self.db.pool())
            })
            .await?;
            if let Ok(mut known) = self.known.lock() {
                if known.len() > 100_000 {
                    known.clear();
                }
                known.insert(key.clone());
            }
        }
        // Time-ordered by the meters' clock, so finished reservations are pruned by id.
        let id = Uuid::new_v7(uuid::Timestamp::from_unix(
            uuid::NoContext,
            u64::try_from(now.timestamp()).unwrap_or(0),
            now.timestamp_subsec_nanos(),
        ));
        let expires = now + chrono::Duration::from_std(ttl).unwrap_or_else(|_| chrono::Duration::minutes(15));
        let reserved: Option<Uuid> = self
            .on_a_live_connection(|| {
                sqlx::query_scalar(RESERVE)
                    .bind(tenant)
                    .bind(meter)
                    .bind(start)
                    .bind(default_limit)
                    .bind(amount)
                    .bind(id)
                    .bind(now)
                    .bind(expires)
                    .fetch_optional(self.db.pool())
            })
            .await?;
        if reserved.is_some() {
            return Ok(Reservation { id, amount });
        }
        let usage = self.usage(tenant, meter, window).await?;
        let limit = self.limit_override(tenant, meter).await?.unwrap_or(default_limit);
        if usage.limit_value == 0 && usage.used == 0 && usage.reserved == 0 && limit > 0 {
            // The row this process believed in is gone (the tenant was deleted and made
            // again): forget it and try once more.
            let forgotten = self.known.lock().is_ok_and(|mut known| known.remove(&key));
            if forgotten {
                return Box::pin(self.reserve(tenant, meter, window, default_limit, amount, ttl)).await;
            }
        }
        Err(MeterError::Exceeded {
            meter: meter.to_owned(),
            used: usage.used,
            reserved: usage.reserved,
            requested: amount,
            limit,
        })
    }

    /// Settles a reservation with the real amount, or with `None` (no usage reported): then
    /// it stays charged at its reservation and is counted as unpriced. Returns false if the
    /// reservation was no longer held (already settled, or freed by the sweeper).
    pub async fn settle(&self, reservation: &Reservation, actual: Option<i64>) -> Result<bool, MeterError> {
        let settled = self
            .on_a_live_connection(|| {
                sqlx::query(
                    "WITH r AS ( \
                       UPDATE public.usage_reservations SET status = 'settled', actual = COALESCE($2, amount), \
                         unpriced = ($2 IS NULL), settled_at = $3 \
                       WHERE id = $1 AND status = 'held' \
                       RETURNING tenant_id, meter, window_start, amount, actual, unpriced) \
                     UPDATE public.usage_meters m SET reserved = m.reserved - r.amount, used = m.used + r.actual, \
                       unpriced_calls = m.unpriced_calls + CASE WHEN r.unpriced THEN 1 ELSE 0 END \
                     FROM r WHERE m.tenant_id = r.tenant_id AND m.meter = r.meter AND m.window_start = r.window_start",
                )
                .bind(reservation.id)
                .bind(actual)
                .bind(self.clock.now())
                .execute(self.db.pool())
            })
            .await?;
        Ok(settled.rows_affected() == 1)
    }

    /// Frees a reservation whose call spent nothing (it failed before reaching a model).
    pub async fn release(&self, reservation: &Reservation) -> Result<bool, MeterError> {
        let released = self
            .on_a_live_connection(|| {
                sqlx::query(
                    "WITH r AS ( \
                       UPDATE public.usage_reservations SET status = 'released', actual = 0, settled_at = $2 \
                       WHERE id = $1 AND status = 'held' RETURNING tenant_id, meter, window_start, amount) \
                     UPDATE public.usage_meters m SET reserved = m.reserved - r.amount \
                     FROM r WHERE m.tenant_id = r.tenant_id AND m.meter = r.meter AND m.window_start = r.window_start",
                )
                .bind(reservation.id)
                .bind(self.clock.now())
                .execute(self.db.pool())
            })
            .await?;
        Ok(released.rows_affected() == 1)
    }

    /// Frees every reservation held past its expiry (its process died before settling).
    /// Returns how many were freed.
    pub async fn sweep_expired(&self) -> Result<u64, MeterError> {
        let freed: Option<i64> = self
            .on_a_live_connection(|| sqlx::query_scalar(SWEEP).bind(self.clock.now()).fetch_one(self.db.pool()))
            .await?;
        let freed = u64::try_from(freed.unwrap_or(0)).unwrap_or(0);
        if freed > 0 {
            tracing::warn!(freed, "freed reservations that were never settled");
        }
        Ok(freed)
    }

    /// Deletes the finished reservations (settled, released, expired) made more than `kept`
    /// ago by the meters' clock; returns how many. Held reservations stay until settled or
    /// freed. Each statement deletes at most 10,000, oldest first, and a call at most ten of
    /// them, so a long backlog goes over several sweeps without one long lock.
    pub async fn prune_finished(&self, kept: Duration) -> Result<u64, MeterError> {
        let Some(cutoff) =
            chrono::Duration::from_std(kept).ok().and_then(|kept| self.clock.now().checked_sub_signed(kept))
        else {
            return Ok(0);
        };
        let millis = u64::try_from(cutoff.timestamp_millis()).unwrap_or(0);
        let below = uuid::Builder::from_unix_timestamp_millis(millis, &[0; 10]).into_uuid();
        let mut pruned = 0;
        for _ in 0..PRUNE_BATCHES {
            let done = self
                .on_a_live_connection(|| sqlx::query(PRUNE).bind(below).bind(PRUNE_BATCH).execute(self.db.pool()))
                .await?
                .rows_affected();
            pruned += done;
            if done < PRUNE_BATCH.unsigned_abs() {
                break;
            }
        }
        Ok(pruned)
    }

    /// The meter's current window.
    pub async fn usage(&self, tenant: &str, meter: &str, window: Window) -> Result<MeterUsage, MeterError> {
        let (start, _) = window.bounds(self.clock.now());
        let usage: Option<MeterUsage> = self
            .on_a_live_connection(|| {
                sqlx::query_as(
                    "SELECT used, reserved, limit_value, unpriced_calls FROM public.usage_meters \
                     WHERE tenant_id = $1 AND meter = $2 AND window_start = $3",
                )
                .bind(tenant)
                .bind(meter)
                .bind(start)
                .fetch_optional(self.db.pool())
            })
            .await?;
        Ok(usage.unwrap_or(MeterUsage { used: 0, reserved: 0, limit_value: 0, unpriced_calls: 0 }))
    }
}

/// Frees expired reservations and deletes finished ones kept long enough; run periodically
/// by the server's worker.
#[derive(Debug, Clone)]
pub struct ReservationSweeper {
    /// The meters.
    pub meters: Meters,
    /// How long finished reservations are kept ([`Meters::prune_finished`]); `None` keeps
    /// them for ever.
    pub keep_finished: Option<Duration>,
}

#[async_trait::async_trait]
impl crate::jobs::PeriodicTask for ReservationSweeper {
    fn name(&self) -> &str {
        "reservation-sweeper"
    }

    async fn run(&self) {
        if let Err(err) = self.meters.sweep_expired().await {
            tracing::error!(error = %err, "sweeping reservations failed");
        }
        if let Some(kept) = self.keep_finished {
            match self.meters.prune_finished(kept).await {
                Ok(0) => {}
                Ok(pruned) => tracing::debug!(pruned, "deleted finished reservations"),
                Err(err) => tracing::error!(error = %err, "pruning finished reservations failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_align() {
        let t = Utc.with_ymd_and_hms(2026, 12, 31, 23, 59, 59).unwrap();
        let (s, e) = Window::CalendarMonth.bounds(t);
        assert_eq!(s, Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap());
        assert_eq!(e, Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap());
        let (s, e) =
            Window::Fixed(Duration::from_secs(600)).bounds(Utc.with_ymd_and_hms(2026, 1, 1, 10, 17, 3).unwrap());
        assert_eq!(s, Utc.with_ymd_and_hms(2026, 1, 1, 10, 10, 0).unwrap());
        assert_eq!(e, Utc.with_ymd_and_hms(2026, 1, 1, 10, 20, 0).unwrap());
    }
}
