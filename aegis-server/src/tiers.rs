//! A short-lived cache of tenant tiers, so the gateway's request path usually needs no
//! database round trip. A tier change reaches a running server within the TTL.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use aegis_core::{
    Aegis,
    tenancy::{TenancyError, TenantId, Tier},
};

const TTL: Duration = Duration::from_secs(5);

/// Tenant → tier, cached.
#[derive(Debug, Clone, Default)]
pub struct TierCache {
    entries: Arc<Mutex<HashMap<TenantId, (Tier, Instant)>>>,
    loads: aegis_core::single_flight::Loads<TenantId>,
}

impl TierCache {
    /// The tenant's tier (from the cache when fresh; one load per tenant at a time).
    pub async fn tier(&self, aegis: &Aegis, tenant: &TenantId) -> Result<Tier, TenancyError> {
        let cached =
            || self.entries.lock().ok().and_then(|e| e.get(tenant).copied()).filter(|(_, at)| at.elapsed() < TTL);
        if let Some((tier, _)) = cached() {
            return Ok(tier);
        }
        let _turn = self.loads.turn(tenant).await;
        if let Some((tier, _)) = cached() {
            return Ok(tier);
        }
        let tier = aegis.tenants().get(tenant).await?.tier.0;
        if let Ok(mut entries) = self.entries.lock() {
            entries.insert(tenant.clone(), (tier, Instant::now()));
        }
        Ok(tier)
    }
}
