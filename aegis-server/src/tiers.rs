//! Tenant tiers, cached for the gateway and kept fresh in the background while a tenant
//! is in use, so the request path needs no database round trip. A tier change reaches a
//! running server within the TTL.

use std::time::Duration;

use aegis_core::{
    Aegis,
    fresh_cache::FreshCache,
    tenancy::{TenancyError, TenantId, Tier},
};

const TTL: Duration = Duration::from_secs(5);
/// A tenant seen within this time is reloaded before its entry goes stale.
const KEEP_FRESH_FOR: Duration = Duration::from_secs(600);

/// Tenant → tier, cached. Cheap to clone.
#[derive(Debug, Clone)]
pub struct TierCache {
    aegis: Aegis,
    entries: FreshCache<TenantId, Tier>,
}

impl TierCache {
    /// The cache over `aegis`'s tenants.
    pub fn new(aegis: Aegis) -> Self {
        let reload = {
            let aegis = aegis.clone();
            move |ids: Vec<TenantId>| {
                let aegis = aegis.clone();
                async move {
                    let found = aegis.tenants().get_many(&ids).await.ok()?;
                    Some(found.into_iter().filter_map(|t| Some((TenantId::parse(&t.id).ok()?, t.tier.0))).collect())
                }
            }
        };
        Self { aegis, entries: FreshCache::new(TTL, KEEP_FRESH_FOR, reload) }
    }

    /// The tenant's tier (from the cache when fresh; one load per tenant at a time).
    pub async fn tier(&self, tenant: &TenantId) -> Result<Tier, TenancyError> {
        // The reload's query, for one tenant.
        let load = || async {
            let found = self.aegis.tenants().get_many(std::slice::from_ref(tenant)).await?;
            Ok::<_, TenancyError>(found.first().map(|t| t.tier.0))
        };
        self.entries.get(tenant, load).await?.ok_or_else(|| TenancyError::NotFound(tenant.to_string()))
    }
}
