//! The built-in offline embedder: deterministic, 768 dimensions, no network.
//!
//! Each text becomes a bag of features — lowercased words, adjacent word pairs, and the
//! character trigrams of each word (with boundary marks, which also catches the words of
//! scripts written without spaces) — each hashed with FNV-1a 64 (a named, stable hash:
//! the same text gives the same vector on every machine and release) into one of 768
//! buckets with a hash-chosen sign, weighted by `1 + ln(tf)` and per feature kind, and the
//! vector is L2-normalised. The model id carries a version: changing any of this must bump
//! it, since vectors of different models are never compared.

use async_trait::async_trait;

use super::{Embedder, Embeddings, ErrorClass, LlmError};

/// The offline model's id (recorded beside every vector it makes).
pub const OFFLINE_MODEL_ID: &str = "aegis-offline-hash-768-v1";
/// Its dimensions.
pub const OFFLINE_DIMENSIONS: usize = 768;

/// Texts of at most this many bytes in all are embedded on the calling task (a query);
/// more go to the blocking pool.
const INLINE_BYTES: usize = 4096;

const WORD_WEIGHT: f32 = 1.0;
const PAIR_WEIGHT: f32 = 0.7;
const TRIGRAM_WEIGHT: f32 = 0.35;

/// FNV-1a, 64 bits.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// The offline embedder.
#[derive(Debug, Clone, Copy, Default)]
pub struct OfflineEmbedder;

impl OfflineEmbedder {
    /// Embeds one text.
    pub fn embed_one(text: &str) -> Vec<f32> {
        let words = words(text);
        let mut features: std::collections::HashMap<(u8, String), u32> = std::collections::HashMap::new();
        for word in &words {
            *features.entry((0, word.clone())).or_default() += 1;
            let marked: Vec<char> =
                std::iter::once('\u{2}').chain(word.chars()).chain(std::iter::once('\u{3}')).collect();
            for gram in marked.windows(3) {
                *features.entry((2, gram.iter().collect())).or_default() += 1;
            }
        }
        for pair in words.windows(2) {
            *features.entry((1, format!("{} {}", pair[0], pair[1]))).or_default() += 1;
        }
        let mut vector = vec![0f32; OFFLINE_DIMENSIONS];
        for ((kind, feature), tf) in &features {
            let mut key = Vec::with_capacity(feature.len() + 1);
            key.push(*kind);
            key.extend_from_slice(feature.as_bytes());
            let hash = fnv1a64(&key);
            let bucket = (hash % OFFLINE_DIMENSIONS as u64) as usize;
            let sign = if (hash >> 63) == 1 { -1.0 } else { 1.0 };
            let weight = match kind {
                0 => WORD_WEIGHT,
                1 => PAIR_WEIGHT,
                _ => TRIGRAM_WEIGHT,
            };
            vector[bucket] += sign * weight * (1.0 + (*tf as f32).ln());
        }
        let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
        if norm > 0.0 {
            vector.iter_mut().for_each(|v| *v /= norm);
        }
        vector
    }
}

/// Lowercased runs of letters and digits.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

#[async_trait]
impl Embedder for OfflineEmbedder {
    fn model_id(&self) -> &str {
        OFFLINE_MODEL_ID
    }

    fn dimensions(&self) -> usize {
        OFFLINE_DIMENSIONS
    }

    async fn embed(&self, texts: &[String]) -> Result<Embeddings, LlmError> {
        let embed_all = |texts: &[String]| texts.iter().map(|t| Self::embed_one(t)).collect::<Vec<_>>();
        // A query is embedded in place; a batch of chunks (milliseconds of CPU) on the
        // blocking pool, so that it never holds up the runtime's few threads.
        let vectors = if texts.iter().map(String::len).sum::<usize>() <= INLINE_BYTES {
            embed_all(texts)
        } else {
            let texts = texts.to_vec();
            tokio::task::spawn_blocking(move || embed_all(&texts)).await.map_err(|e| {
                LlmError::new(
                    ErrorClass::ServerError,
                    "offline",
                    OFFLINE_MODEL_ID,
                    format!("the embedding task failed: {e}"),
                )
            })?
        };
        Ok(Embeddings { vectors, model: OFFLINE_MODEL_ID.into(), usage: None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn the_same_text_gives_a_pinned_vector() {
        let v = OfflineEmbedder::embed_one("Refunds are issued within 14 days.");
        assert_eq!(v.len(), 768);
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
        let nonzero: Vec<(usize, f32)> = v.iter().copied().enumerate().filter(|(_, x)| *x != 0.0).take(6).collect();
        let pinned = PINNED.iter().map(|(i, x)| (*i, *x)).collect::<Vec<_>>();
        assert_eq!(nonzero.len(), pinned.len());
        for ((i, x), (pi, px)) in nonzero.iter().zip(&pinned) {
            assert_eq!(i, pi, "bucket moved: the hashing changed, bump OFFLINE_MODEL_ID");
            assert!((x - px).abs() < 1e-6, "bucket {i}: {x} != {px}: the weighting changed, bump OFFLINE_MODEL_ID");
        }
        // FNV-1a 64's published test vectors.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    // The first six non-zero buckets of the vector above.
    const PINNED: [(usize, f32); 6] = [
        (22, -0.098_679_67),
        (26, -0.098_679_67),
        (34, 0.098_679_67),
        (59, -0.098_679_67),
        (71, 0.281_941_92),
        (88, -0.098_679_67),
    ];

    #[test]
    fn related_texts_are_closer_than_unrelated_ones() {
        let a = OfflineEmbedder::embed_one("How do I get a refund for my order?");
        let b = OfflineEmbedder::embed_one("Refund policy: orders can be refunded within 14 days");
        let c = OfflineEmbedder::embed_one("The quarterly marketing plan targets new regions");
        assert!(cosine(&a, &b) > cosine(&a, &c) + 0.05, "{} vs {}", cosine(&a, &b), cosine(&a, &c));
        let cjk = OfflineEmbedder::embed_one("退款政策");
        assert!(cjk.iter().any(|x| *x != 0.0));
        assert!(OfflineEmbedder::embed_one("").iter().all(|x| *x == 0.0));
    }
}
