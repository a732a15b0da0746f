//! One load per key at a time, for caches that load on a miss.
//!
//! Without it every request that misses at once does its own load: after an idle spell
//! past the 5 s API key and tier caches, the gateway's first burst of requests with one key
//! opened nine database connections at once and stalled for 100–250 ms (benches/README,
//! gateway). With [`Loads`], the callers for a key take turns, and each checks the cache again when
//! its turn comes, so all but the first find what the first loaded.

use std::{
    collections::HashMap,
    hash::Hash,
    sync::{Arc, Mutex},
};

use tokio::sync::OwnedMutexGuard;

type Gate = Arc<tokio::sync::Mutex<()>>;

/// Turns to load, per key. Cheap to clone.
#[derive(Debug)]
pub struct Loads<K> {
    gates: Arc<Mutex<HashMap<K, Gate>>>,
}

impl<K> Clone for Loads<K> {
    fn clone(&self) -> Self {
        Self { gates: self.gates.clone() }
    }
}

impl<K> Default for Loads<K> {
    fn default() -> Self {
        Self { gates: Arc::default() }
    }
}

impl<K: Eq + Hash + Clone> Loads<K> {
    /// Waits for `key`'s turn; the turn ends when the returned value is dropped.
    pub async fn turn(&self, key: &K) -> Turn<K> {
        let gate = match self.gates.lock() {
            Ok(mut gates) => gates.entry(key.clone()).or_default().clone(),
            Err(_) => Gate::default(),
        };
        let guard = gate.clone().lock_owned().await;
        Turn { gates: self.gates.clone(), key: key.clone(), gate, _guard: guard }
    }
}

/// A key's turn to load (see [`Loads::turn`]).
#[derive(Debug)]
pub struct Turn<K: Eq + Hash> {
    gates: Arc<Mutex<HashMap<K, Gate>>>,
    key: K,
    gate: Gate,
    _guard: OwnedMutexGuard<()>,
}

impl<K: Eq + Hash> Drop for Turn<K> {
    fn drop(&mut self) {
        if let Ok(mut gates) = self.gates.lock() {
            // Held by the map, this turn and its guard only: nobody waits, forget the key.
            // Callers take the gate under the same lock, so none can slip in between.
            if Arc::strong_count(&self.gate) <= 3 {
                gates.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::atomic::{AtomicUsize, Ordering},
        time::Duration,
    };

    use super::*;

    #[tokio::test]
    async fn concurrent_misses_load_once_and_the_gates_are_forgotten() {
        let loads = Loads::<&'static str>::default();
        let cache: Arc<Mutex<HashMap<&str, u32>>> = Arc::default();
        let loaded = Arc::new(AtomicUsize::new(0));
        let callers = (0..32).map(|_| {
            let (loads, cache, loaded) = (loads.clone(), cache.clone(), loaded.clone());
            tokio::spawn(async move {
                let _turn = loads.turn(&"key").await;
                if let Some(v) = cache.lock().ok().and_then(|c| c.get("key").copied()) {
                    return v;
                }
                loaded.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                cache.lock().map(|mut c| *c.entry("key").or_insert(7)).unwrap_or(0)
            })
        });
        for caller in callers.collect::<Vec<_>>() {
            assert_eq!(caller.await.unwrap_or(0), 7);
        }
        assert_eq!(loaded.load(Ordering::SeqCst), 1, "one load for 32 concurrent misses");
        assert!(loads.gates.lock().map(|g| g.is_empty()).unwrap_or(false), "no gate left behind");
        let _held = loads.turn(&"key").await;
        let other = tokio::time::timeout(Duration::from_millis(200), loads.turn(&"other")).await;
        assert!(other.is_ok(), "another key does not wait for this one");
    }
}
