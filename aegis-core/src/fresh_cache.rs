//! A cache of database rows that stays fresh for the keys in use.
//!
//! An entry is fresh for `ttl` from the moment its load began, so that a change in the
//! database (a revoked key, a new tier) reaches every process within `ttl`. A miss loads
//! once per key at a time ([`Loads`]). Keys used within `keep_for` are reloaded in the
//! background, in batches, once half their `ttl` has passed: a key in steady use never
//! misses, and its requests never wait on the database. Before, the gateway's first request
//! after an idle spell past the TTL waited on two round trips to cold backends, and every
//! request behind it waited on the runtime's one thread: a 34–100 ms stall at the start of
//! each bench phase (benches/README, gateway).

use std::{
    collections::HashMap,
    future::Future,
    hash::Hash,
    pin::Pin,
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use crate::single_flight::Loads;

/// Reloads many keys at once (see [`FreshCache::new`]).
type Reload<K, V> = Arc<dyn Fn(Vec<K>) -> Pin<Box<dyn Future<Output = Option<Vec<(K, V)>>> + Send>> + Send + Sync>;

/// Entries past this many are dropped, oldest use first, before a new one goes in.
const MAX_ENTRIES: usize = 100_000;
/// Keys per reload statement.
const BATCH: usize = 500;

/// The cache. Cheap to clone.
pub struct FreshCache<K, V> {
    shared: Arc<Shared<K, V>>,
}

impl<K, V> Clone for FreshCache<K, V> {
    fn clone(&self) -> Self {
        Self { shared: self.shared.clone() }
    }
}

impl<K, V> std::fmt::Debug for FreshCache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FreshCache").field("ttl", &self.shared.ttl).finish_non_exhaustive()
    }
}

struct Shared<K, V> {
    entries: Mutex<HashMap<K, Entry<V>>>,
    loads: Loads<K>,
    ttl: Duration,
    keep_for: Duration,
    reload: Reload<K, V>,
    /// Whether the reloading task runs.
    reloading: AtomicBool,
}

struct Entry<V> {
    value: V,
    loaded_at: Instant,
    used_at: Instant,
}

impl<K, V> FreshCache<K, V>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// A cache whose entries are fresh for `ttl`, reloaded in the background through `reload`
    /// while used within `keep_for`. `reload` reads many keys at once and returns the
    /// entries found (a key left out no longer exists), or `None` when it failed (the
    /// entries then age out and load on the request path).
    pub fn new<F, Fut>(ttl: Duration, keep_for: Duration, reload: F) -> Self
    where
        F: Fn(Vec<K>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Option<Vec<(K, V)>>> + Send + 'static,
    {
        let reload: Reload<K, V> = Arc::new(move |keys| Box::pin(reload(keys)));
        Self {
            shared: Arc::new(Shared {
                entries: Mutex::new(HashMap::new()),
                loads: Loads::default(),
                ttl,
                keep_for,
                reload,
                reloading: AtomicBool::new(false),
            }),
        }
    }

    /// `key`'s value when fresh (the use is noted).
    pub fn fresh(&self, key: &K) -> Option<V> {
        let mut entries = self.shared.entries.lock().ok()?;
        let entry = entries.get_mut(key).filter(|e| e.loaded_at.elapsed() < self.shared.ttl)?;
        entry.used_at = Instant::now();
        Some(entry.value.clone())
    }

    /// `key`'s value: fresh from the cache, or loaded by `load` (`None`: there is none, and
    /// nothing is cached). Callers missing at once take turns, and all but the first find
    /// what it loaded.
    pub async fn get<E, F, Fut>(&self, key: &K, load: F) -> Result<Option<V>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<V>, E>>,
    {
        if let Some(value) = self.fresh(key) {
            return Ok(Some(value));
        }
        self.start_reloading();
        let _turn = self.shared.loads.turn(key).await;
        if let Some(value) = self.fresh(key) {
            return Ok(Some(value));
        }
        let started = Instant::now();
        let loaded = load().await?;
        match &loaded {
            Some(value) => self.insert(key.clone(), value.clone(), started),
            None => self.remove(key),
        }
        Ok(loaded)
    }

    /// Forgets `key` (a reload in flight does not bring it back).
    pub fn remove(&self, key: &K) {
        if let Ok(mut entries) = self.shared.entries.lock() {
            entries.remove(key);
        }
    }

    fn insert(&self, key: K, value: V, loaded_at: Instant) {
        let Ok(mut entries) = self.shared.entries.lock() else { return };
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(&key) {
            let keep_for = self.shared.keep_for;
            entries.retain(|_, e| e.used_at.elapsed() < keep_for);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key, Entry { value, loaded_at, used_at: Instant::now() });
    }

    /// Starts the reloading task on the current runtime, once; it ends with the cache, and
    /// starts again from the next miss if its runtime shuts down.
    fn start_reloading(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        if self.shared.reloading.swap(true, Ordering::AcqRel) {
            return;
        }
        let running = Running(Arc::downgrade(&self.shared));
        let period = self.shared.ttl / 4;
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(shared) = running.0.upgrade() else { return };
                shared.reload_due().await;
            }
        });
    }
}

/// Held by the reloading task: marks it stopped when the task ends or is dropped.
struct Running<K, V>(Weak<Shared<K, V>>);

impl<K, V> Drop for Running<K, V> {
    fn drop(&mut self) {
        if let Some(shared) = self.0.upgrade() {
            shared.reloading.store(false, Ordering::Release);
        }
    }
}

impl<K: Eq + Hash + Clone, V> Shared<K, V> {
    /// Reloads the entries past half their TTL that were used within `keep_for`, and drops
    /// the stale ones nobody uses.
    async fn reload_due(&self) {
        let due: Vec<K> = {
            let Ok(mut entries) = self.entries.lock() else { return };
            entries.retain(|_, e| e.used_at.elapsed() < self.keep_for || e.loaded_at.elapsed() < self.ttl);
            entries
                .iter()
                .filter(|(_, e)| e.loaded_at.elapsed() >= self.ttl / 2 && e.used_at.elapsed() < self.keep_for)
                .map(|(k, _)| k.clone())
                .collect()
        };
        for batch in due.chunks(BATCH) {
            let started = Instant::now();
            let Some(found) = (self.reload)(batch.to_vec()).await else { continue };
            let mut found: HashMap<K, V> = found.into_iter().collect();
            let Ok(mut entries) = self.entries.lock() else { return };
            for key in batch {
                // Only entries loaded before this reload began: one loaded since (after a
                // revocation, say) is newer than what the reload read.
                if entries.get(key).is_none_or(|e| e.loaded_at > started) {
                    continue;
                }
                match found.remove(key) {
                    Some(value) => {
                        if let Some(entry) = entries.get_mut(key) {
                            entry.value = value;
                            entry.loaded_at = started;
                        }
                    }
                    None => {
                        entries.remove(key);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    type Table = Arc<Mutex<HashMap<u32, u32>>>;

    /// A cache over a map standing in for the table (a reload reads it when it starts, as a
    /// statement reads its snapshot), waiting on `gate` when one is given.
    fn cache(table: &Table, ttl: u64, keep_for: u64, gate: Option<Arc<tokio::sync::Notify>>) -> FreshCache<u32, u32> {
        let table = table.clone();
        let reload = move |keys: Vec<u32>| {
            let read: Option<Vec<(u32, u32)>> = table
                .lock()
                .ok()
                .map(|table| keys.into_iter().filter_map(|k| table.get(&k).map(|v| (k, *v))).collect());
            let gate = gate.clone();
            async move {
                if let Some(gate) = gate {
                    gate.notified().await;
                }
                read
            }
        };
        FreshCache::new(Duration::from_millis(ttl), Duration::from_millis(keep_for), reload)
    }

    async fn load(table: &Table, key: u32) -> Result<Option<u32>, ()> {
        Ok(table.lock().map_err(|_| ())?.get(&key).copied())
    }

    fn table(rows: &[(u32, u32)]) -> Table {
        Arc::new(Mutex::new(rows.iter().copied().collect()))
    }

    #[tokio::test]
    async fn a_key_in_use_is_reloaded_before_it_goes_stale_and_sees_changes() {
        let table = table(&[(1, 10), (2, 20)]);
        let cache = cache(&table, 1000, 3000, None);
        assert_eq!(cache.get(&1, || load(&table, 1)).await, Ok(Some(10)));
        table.lock().unwrap().insert(1, 11);
        // Used every 50 ms for three TTLs: never stale, so never a miss.
        for _ in 0..60 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert!(cache.fresh(&1).is_some(), "a key in use stays fresh");
        }
        assert_eq!(cache.fresh(&1), Some(11), "the change is read by a reload");
    }

    #[tokio::test]
    async fn a_key_gone_from_the_table_or_idle_is_dropped() {
        let table = table(&[(1, 10), (2, 20)]);
        let cache = cache(&table, 1000, 2000, None);
        assert_eq!(cache.get(&1, || load(&table, 1)).await, Ok(Some(10)));
        assert_eq!(cache.get(&2, || load(&table, 2)).await, Ok(Some(20)));
        table.lock().unwrap().remove(&1);
        tokio::time::sleep(Duration::from_millis(900)).await;
        assert_eq!(cache.fresh(&1), None, "deleted: forgotten at the next reload, before its TTL");
        assert_eq!(cache.fresh(&2), Some(20));
        assert_eq!(cache.get(&1, || load(&table, 1)).await, Ok(None));
        // Key 2 is not used again: reloaded until `keep_for` has passed, then left to go stale.
        tokio::time::sleep(Duration::from_millis(4000)).await;
        assert_eq!(cache.fresh(&2), None, "idle past keep_for: no longer reloaded");
        assert_eq!(cache.shared.entries.lock().unwrap().len(), 0, "and dropped");
    }

    #[tokio::test]
    async fn a_removed_key_is_not_brought_back_by_a_reload_in_flight() {
        let table = table(&[(1, 10)]);
        let gate = Arc::new(tokio::sync::Notify::new());
        let cache = cache(&table, 400, 5000, Some(gate.clone()));
        assert_eq!(cache.get(&1, || load(&table, 1)).await, Ok(Some(10)));
        // A reload reads the table at 200–300 ms and waits; meanwhile the key is revoked:
        // removed, and loaded afresh with its new value.
        tokio::time::sleep(Duration::from_millis(350)).await;
        table.lock().unwrap().insert(1, 99);
        cache.remove(&1);
        assert_eq!(cache.get(&1, || load(&table, 1)).await, Ok(Some(99)));
        gate.notify_waiters();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(cache.fresh(&1), Some(99), "the older reload does not overwrite the newer load");
    }

    #[tokio::test]
    async fn misses_at_once_load_once() {
        let table = table(&[(1, 10)]);
        let cache = cache(&table, 1000, 1000, None);
        let loads = Arc::new(AtomicUsize::new(0));
        let calls = (0..16).map(|_| {
            let (cache, table, loads) = (cache.clone(), table.clone(), loads.clone());
            tokio::spawn(async move {
                cache
                    .get(&1, || async move {
                        loads.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        load(&table, 1).await
                    })
                    .await
            })
        });
        for call in calls.collect::<Vec<_>>() {
            assert_eq!(call.await.unwrap(), Ok(Some(10)));
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1);
    }
}
