//! Image discovery in any OCI distribution registry: the strategies over the tag list and
//! manifests, with the tag → digest memo and the previous selection per subscription.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::jiff::Timestamp;
use sha2::{Digest as _, Sha256};

use super::image_plan::ImagePlan;
use super::oci::{FetchedManifest, HeadOutcome, ImageMeta, IndexMeta, ManifestMeta, OciRepo};
use super::registry::ImageRegistry;
use super::registry_context::RegistryContext;
use super::registry_limits::{BoundedCache, RegistryBudgets, lock};
use super::tag_selection::{Strategy, sort_newest_build_by};
use super::types::{ImageDiscoveryError, ImageRepository, Platform, merge_annotations, to_time};
use crate::api::warehouse::DiscoveredImageReference;

/// Repositories whose tag memo is kept.
const TAG_MEMO_REPOSITORIES: usize = 4096;
/// Subscriptions whose previous selection is kept.
const SELECTION_MEMO_ENTRIES: usize = 16384;

/// A tag's memoised digest and when it was last confirmed by the registry.
#[derive(Debug, Clone)]
struct TagMemoEntry {
    digest: String,
    confirmed: Instant,
}

type TagMemo = Mutex<HashMap<String, TagMemoEntry>>;

/// The previous selection of a subscription.
#[derive(Debug)]
struct SelectionMemo {
    tags: [u8; 32],
    refs: Vec<DiscoveredImageReference>,
    at: Instant,
}

/// What OCI discovery remembers between runs.
pub(crate) struct OciMemos {
    tag_memos: BoundedCache<String, TagMemo>,
    selections: BoundedCache<[u8; 32], SelectionMemo>,
}

impl Default for OciMemos {
    fn default() -> Self {
        Self {
            tag_memos: BoundedCache::new(TAG_MEMO_REPOSITORIES),
            selections: BoundedCache::new(SELECTION_MEMO_ENTRIES),
        }
    }
}

impl OciMemos {
    fn tag_memo(&self, registry: &str, path: &str) -> Arc<TagMemo> {
        let key = format!("{registry}/{path}");
        if let Some(m) = self.tag_memos.get(&key) {
            return m;
        }
        let m = Arc::new(Mutex::new(HashMap::new()));
        self.tag_memos.insert(key, Arc::clone(&m));
        m
    }
}

/// One repository of an OCI registry, through an authenticated session.
pub(crate) struct OciRegistry<'a> {
    pub ctx: &'a RegistryContext,
    pub memos: &'a OciMemos,
    pub repo: &'a ImageRepository,
    pub session: OciRepo<'a>,
}

impl ImageRegistry for OciRegistry<'_> {
    async fn discover(
        &self,
        plan: &ImagePlan,
    ) -> Result<Vec<DiscoveredImageReference>, ImageDiscoveryError> {
        let session = &self.session;
        let d = OciDiscovery {
            inner: self.ctx,
            s: session,
            plan,
            memo: self.memos.tag_memo(&self.repo.registry, &self.repo.path),
        };
        if plan.strategy == Strategy::Digest {
            return d.digest_strategy().await;
        }
        let tags = session.list_tags().await?;
        let tags_fp = tag_list_fingerprint(&tags);
        if let Some(prev) = self.memos.selections.get(&plan.fingerprint)
            && prev.tags == tags_fp
            && (plan.cache_by_tag || prev.at.elapsed() < self.ctx.config.tag_memo_ttl)
        {
            RegistryBudgets::count(&self.ctx.budgets.selections_reused);
            tracing::debug!(
                tags = tags.len(),
                "tag list unchanged; reusing the previous selection"
            );
            return Ok(prev.refs.clone());
        }
        let candidates = plan.candidates(tags);
        let refs = match plan.strategy {
            Strategy::NewestBuild => d.newest_build(candidates).await?,
            _ => d.first_matching(candidates).await?,
        };
        self.memos.selections.insert(
            plan.fingerprint,
            Arc::new(SelectionMemo {
                tags: tags_fp,
                refs: refs.clone(),
                at: Instant::now(),
            }),
        );
        Ok(refs)
    }

    async fn list_tags(&self) -> Result<Vec<String>, ImageDiscoveryError> {
        self.session.list_tags().await
    }
}

/// Order-independent fingerprint of a tag list.
fn tag_list_fingerprint(tags: &[String]) -> [u8; 32] {
    let mut sorted: Vec<&String> = tags.iter().collect();
    sorted.sort_unstable();
    let mut h = Sha256::new();
    for t in sorted {
        h.update(t.as_bytes());
        h.update(b"\n");
    }
    h.finalize().into()
}

// ----------------------------------------------------------------------------------- OCI strategy

/// One OCI discovery run.
struct OciDiscovery<'a> {
    inner: &'a RegistryContext,
    s: &'a OciRepo<'a>,
    plan: &'a ImagePlan,
    memo: Arc<TagMemo>,
}

impl OciDiscovery<'_> {
    /// Digest: one HEAD of the tag; a 404 gives an empty result. The metadata of a digest seen
    /// before comes from the cache.
    async fn digest_strategy(&self) -> Result<Vec<DiscoveredImageReference>, ImageDiscoveryError> {
        let Some(tag) = self.plan.digest_tag.as_deref() else {
            return Ok(Vec::new());
        };
        let (digest, meta) = match self.s.head_manifest(tag).await? {
            HeadOutcome::NotFound => return Ok(Vec::new()),
            HeadOutcome::Digest(d) => match self.cached(&d) {
                Some(meta) => (d, meta),
                None => match self.fetch_by_digest(&d).await? {
                    Some(meta) => (d, meta),
                    None => return Ok(Vec::new()),
                },
            },
            HeadOutcome::NoDigest => match self.fetch_by_tag(tag).await? {
                Some(f) => f,
                None => return Ok(Vec::new()),
            },
        };
        Ok(self
            .resolve(tag, &digest, meta)
            .await?
            .into_iter()
            .collect())
    }

    /// SemVer and Lexical: candidates in order, fetched in windows of the number still needed,
    /// so without a platform filter at most `limit` tags are fetched.
    async fn first_matching(
        &self,
        candidates: Vec<String>,
    ) -> Result<Vec<DiscoveredImageReference>, ImageDiscoveryError> {
        let mut found = Vec::with_capacity(self.plan.limit);
        let mut rest = candidates.as_slice();
        while found.len() < self.plan.limit && !rest.is_empty() {
            let (window, tail) = rest.split_at((self.plan.limit - found.len()).min(rest.len()));
            rest = tail;
            // Owned items: a closure over `&String` makes the future not `Send` for every
            // lifetime (rust-lang/rust#102211), which spawned reconcilers need.
            let fetched: Vec<Option<DiscoveredImageReference>> = stream::iter(window.to_vec())
                .map(|tag| async move { self.image_for_tag(&tag).await })
                .buffered(self.inner.config.fetch_concurrency.max(1))
                .try_collect()
                .await?;
            found.extend(fetched.into_iter().flatten());
        }
        found.truncate(self.plan.limit);
        Ok(found)
    }

    /// NewestBuild: metadata of every candidate (bounded concurrency), newest first.
    async fn newest_build(
        &self,
        candidates: Vec<String>,
    ) -> Result<Vec<DiscoveredImageReference>, ImageDiscoveryError> {
        let mut found: Vec<DiscoveredImageReference> = stream::iter(candidates)
            .map(|tag| async move { self.image_for_tag(&tag).await })
            .buffer_unordered(self.inner.config.fetch_concurrency.max(1))
            .try_filter_map(|r| async move { Ok(r) })
            .try_collect()
            .await?;
        sort_newest_build_by(
            &mut found,
            |r| r.created_at.as_ref().map(|t| t.0),
            |r| &r.tag,
        );
        found.truncate(self.plan.limit);
        Ok(found)
    }

    fn cached(&self, digest: &str) -> Option<Arc<ManifestMeta>> {
        let hit = self.inner.metadata.get(digest);
        RegistryBudgets::count(if hit.is_some() {
            &self.inner.budgets.metadata_hits
        } else {
            &self.inner.budgets.metadata_misses
        });
        hit
    }

    fn remember_tag(&self, tag: &str, digest: &str, confirmed: Instant) {
        lock(&self.memo).insert(
            tag.to_owned(),
            TagMemoEntry {
                digest: digest.to_owned(),
                confirmed,
            },
        );
    }

    async fn fetch_by_tag(
        &self,
        tag: &str,
    ) -> Result<Option<(String, Arc<ManifestMeta>)>, ImageDiscoveryError> {
        let Some(FetchedManifest { digest, meta }) = self.s.get_manifest(tag).await? else {
            lock(&self.memo).remove(tag);
            return Ok(None);
        };
        // The body may already be known under this digest (with its config).
        let meta = match self.inner.metadata.get(&digest) {
            Some(known) => known,
            None => {
                let meta = Arc::new(meta);
                self.inner
                    .metadata
                    .insert(digest.clone(), Arc::clone(&meta));
                meta
            }
        };
        self.remember_tag(tag, &digest, Instant::now());
        Ok(Some((digest, meta)))
    }

    async fn fetch_by_digest(
        &self,
        digest: &str,
    ) -> Result<Option<Arc<ManifestMeta>>, ImageDiscoveryError> {
        let Some(FetchedManifest { meta, .. }) = self.s.get_manifest(digest).await? else {
            return Ok(None);
        };
        let meta = Arc::new(meta);
        self.inner
            .metadata
            .insert(digest.to_owned(), Arc::clone(&meta));
        Ok(Some(meta))
    }

    /// The image behind `tag`, or `None` when the tag vanished or its platform does not match.
    async fn image_for_tag(
        &self,
        tag: &str,
    ) -> Result<Option<DiscoveredImageReference>, ImageDiscoveryError> {
        let memo = lock(&self.memo).get(tag).cloned();
        let known = match memo {
            Some(m)
                if self.plan.cache_by_tag
                    || m.confirmed.elapsed() < self.inner.config.tag_memo_ttl =>
            {
                Some(m.digest)
            }
            Some(_) => match self.s.head_manifest(tag).await? {
                HeadOutcome::Digest(d) => {
                    self.remember_tag(tag, &d, Instant::now());
                    Some(d)
                }
                HeadOutcome::NotFound => {
                    lock(&self.memo).remove(tag);
                    return Ok(None);
                }
                HeadOutcome::NoDigest => None,
            },
            None => None,
        };
        let found = match known {
            Some(d) => match self.cached(&d) {
                Some(meta) => Some((d, meta)),
                None => self.fetch_by_digest(&d).await?.map(|m| (d, m)),
            },
            None => {
                RegistryBudgets::count(&self.inner.budgets.metadata_misses);
                self.fetch_by_tag(tag).await?
            }
        };
        match found {
            Some((digest, meta)) => self.resolve(tag, &digest, meta).await,
            None => Ok(None),
        }
    }

    /// A single-platform image's metadata with its config loaded if `need_config`.
    async fn image_meta(
        &self,
        digest: &str,
        meta: &ImageMeta,
        need_config: bool,
    ) -> Result<ImageMeta, ImageDiscoveryError> {
        if !need_config || meta.config.is_some() {
            return Ok(meta.clone());
        }
        let config = self.s.get_config(&meta.config_digest).await?;
        let full = ImageMeta {
            config: Some(config),
            ..meta.clone()
        };
        self.inner.metadata.insert(
            digest.to_owned(),
            Arc::new(ManifestMeta::Image(full.clone())),
        );
        Ok(full)
    }

    /// The child image of an index, by digest (cached).
    async fn child_image(
        &self,
        digest: &str,
        need_config: bool,
    ) -> Result<Option<ImageMeta>, ImageDiscoveryError> {
        let meta = match self.cached(digest) {
            Some(m) => m,
            None => match self.fetch_by_digest(digest).await? {
                Some(m) => m,
                None => return Ok(None),
            },
        };
        match &*meta {
            ManifestMeta::Image(img) => Ok(Some(self.image_meta(digest, img, need_config).await?)),
            // Nested indices are not images.
            ManifestMeta::Index(_) => Ok(None),
        }
    }

    /// Turns a manifest into a reference, applying the platform filter.
    async fn resolve(
        &self,
        tag: &str,
        digest: &str,
        meta: Arc<ManifestMeta>,
    ) -> Result<Option<DiscoveredImageReference>, ImageDiscoveryError> {
        let platform = self.plan.platform.as_ref();
        let reference = |annotations, created: Option<Timestamp>| DiscoveredImageReference {
            tag: tag.to_owned(),
            digest: digest.to_owned(),
            annotations,
            created_at: created.map(to_time),
        };
        match &*meta {
            ManifestMeta::Image(img) => {
                let need_config = platform.is_some() || img.annotated_created().is_none();
                let img = self.image_meta(digest, img, need_config).await?;
                if let Some(p) = platform
                    && img.config.as_ref().and_then(|c| c.platform.as_ref()) != Some(p)
                {
                    return Ok(None);
                }
                Ok(Some(reference(img.annotations.clone(), img.created())))
            }
            ManifestMeta::Index(ix) => self.resolve_index(ix, platform, reference).await,
        }
    }

    /// An index: with a platform, the matching entry (its child's creation time unless the
    /// index is annotated; annotations of the index then of the entry); without one, the index
    /// annotation or the newest of its image entries (attestations skipped).
    async fn resolve_index(
        &self,
        ix: &IndexMeta,
        platform: Option<&Platform>,
        reference: impl Fn(BTreeMap<String, String>, Option<Timestamp>) -> DiscoveredImageReference,
    ) -> Result<Option<DiscoveredImageReference>, ImageDiscoveryError> {
        let index_created = super::oci::created_from(&ix.annotations);
        if let Some(p) = platform {
            let Some(entry) = ix.entry_for(p) else {
                return Ok(None);
            };
            let created = match index_created {
                Some(t) => Some(t),
                None => self
                    .child_image(&entry.digest, true)
                    .await?
                    .and_then(|c| c.created()),
            };
            let annotations = merge_annotations([&ix.annotations, &entry.annotations]);
            return Ok(Some(reference(annotations, created)));
        }
        let created = match index_created {
            Some(t) => Some(t),
            None => {
                let digests: Vec<String> = ix
                    .manifests
                    .iter()
                    .filter(|e| e.is_image())
                    .map(|e| e.digest.clone())
                    .collect();
                let children: Vec<Option<ImageMeta>> = stream::iter(digests)
                    .map(|d| async move { self.child_image(&d, true).await })
                    .buffered(self.inner.config.fetch_concurrency.max(1))
                    .try_collect()
                    .await?;
                children
                    .iter()
                    .flatten()
                    .filter_map(ImageMeta::created)
                    .max()
            }
        };
        Ok(Some(reference(ix.annotations.clone(), created)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn tag_fingerprint_ignores_order() {
        let a = tag_list_fingerprint(&["b".into(), "a".into()]);
        assert_eq!(a, tag_list_fingerprint(&["a".into(), "b".into()]));
        assert_ne!(
            a,
            tag_list_fingerprint(&["a".into(), "b".into(), "c".into()])
        );
        // No ambiguity from concatenation.
        assert_ne!(
            tag_list_fingerprint(&["ab".into()]),
            tag_list_fingerprint(&["a".into(), "b".into()])
        );
    }
}
