//! Reads: queries (merged across shards in pages), events by id, entity state, tenant counts.

use futures_channel::oneshot;
use uuid::Uuid;

use super::Store;
use crate::error::Error;
use crate::event::{validate_tenant, StoredEvent};
use crate::query::{
    merge_sorted, sort_key, EntityState, Page, PageFrom, PageMerge, Query, QueryError, QueryResult, TenantStats, TypeFilter, QUERY_PAGE_EVENTS,
};
use crate::shard::ShardMsg;

impl Store {
    /// Counts of one tenant's acknowledged events, over all shards.
    pub async fn tenant_stats(&self, tenant_id: &str) -> Result<TenantStats, Error> {
        validate_tenant(tenant_id).map_err(|e| QueryError::Tenant(e.reason))?;
        // One snapshot for every shard: a cross-shard batch counts wholly or not at all.
        let at = self.inner.clock.snapshot();
        let answers = self.ask_every_shard(|reply| ShardMsg::TenantStats { tenant_id: tenant_id.to_string(), at: at.seq, reply }).await?;
        let mut total = TenantStats::default();
        answers.into_iter().for_each(|stats| total.merge(stats));
        Ok(total)
    }

    /// An event by id, if it exists in `tenant_id`.
    pub fn get(&self, tenant_id: &str, id: &Uuid) -> Option<StoredEvent> {
        let (shard, event) = self.inner.shards[0].shared.id_event(id)?;
        let shared = &self.inner.shards.get(shard as usize)?.shared;
        (shared.visible_at(event.position(), self.inner.clock.now()) && event.tenant_id() == tenant_id).then_some(event)
    }

    /// Runs a query. Entity queries read the owning shard's maps directly; the others run on every shard
    /// and are merged by (timestamp, position).
    pub async fn query(&self, query: &Query) -> Result<QueryResult, Error> {
        validate_tenant(&query.tenant_id).map_err(|e| QueryError::Tenant(e.reason))?;
        let limit = query.limit.unwrap_or(self.inner.config.default_query_limit);
        if limit == 0 {
            return Err(QueryError::ZeroLimit.into());
        }
        let max = self.inner.config.max_query_limit;
        if limit > max {
            return Err(QueryError::LimitTooLarge { limit, max }.into());
        }
        match &query.entity_id {
            Some(entity_id) => {
                let want = query.offset.saturating_add(limit).saturating_add(1);
                let shard = &self.inner.shards[self.shard_of(&query.tenant_id, entity_id)];
                let lists = vec![shard.shared.entity_query(query, entity_id, want)];
                let (events, has_more) = merge_sorted(lists, query.order, query.offset, limit, sort_key);
                Ok(QueryResult { events, has_more })
            }
            None => self.query_pages(query, limit).await,
        }
    }

    /// A query over every shard, merged by (timestamp, position) and read in pages (`PageMerge`): a deep
    /// offset costs many bounded reads, never one long read on a shard's core. A query by one event type
    /// reads the shards' shared in-order keys on the calling thread; otherwise (or where an event of that
    /// type came out of time order) each shard answers its pages on its own executor.
    async fn query_pages(&self, query: &Query, limit: usize) -> Result<QueryResult, Error> {
        // One snapshot for every shard and page: a cross-shard batch is in the answer wholly or not at all.
        let at = self.inner.clock.snapshot();
        let mut merge = PageMerge::new(self.shard_count(), query.order, query.offset, limit);
        let first = merge.first_page_events();
        let mut asked = Vec::with_capacity(self.shard_count());
        for shard in 0..self.shard_count() {
            asked.push(self.ask_page(shard, query, first, at.seq, PageFrom::default()).await?);
        }
        for (shard, page) in asked.into_iter().enumerate() {
            merge.add(shard, page.get().await?, first);
        }
        while let Some((shard, from)) = merge.run() {
            // Between pages: let the executor run other tasks (appends) when this runs on a shard's.
            futures_lite::future::yield_now().await;
            let page = self.ask_page(shard, query, QUERY_PAGE_EVENTS, at.seq, from).await?.get().await?;
            merge.add(shard, page, QUERY_PAGE_EVENTS);
        }
        let (events, has_more) = merge.finish();
        Ok(QueryResult { events, has_more })
    }

    /// Starts reading one page of `query` from a shard: on the calling thread when its type index allows,
    /// else as a message to the shard.
    async fn ask_page(&self, shard: usize, query: &Query, want: usize, at: u64, from: PageFrom) -> Result<AskedPage, Error> {
        if let Some(TypeFilter::Exact(event_type)) = &query.event_type {
            if let Some(page) = self.inner.shards[shard].shared.type_query(query, event_type, want, at, from) {
                return Ok(AskedPage::Ready(page));
            }
        }
        let (reply, rx) = oneshot::channel();
        self.send(shard, ShardMsg::Query { query: query.clone(), want, at, from, reply }).await?;
        Ok(AskedPage::Asked(rx))
    }

    /// An entity's state (payloads folded in version order), now or as of an instant.
    pub fn entity_state(&self, tenant_id: &str, entity_id: &str, as_of_us: Option<i64>) -> Option<EntityState> {
        self.inner.shards[self.shard_of(tenant_id, entity_id)].shared.entity_state(tenant_id, entity_id, as_of_us)
    }
}

/// A page of a query, read already or asked of its shard.
enum AskedPage {
    Ready(Page),
    Asked(oneshot::Receiver<Page>),
}

impl AskedPage {
    async fn get(self) -> Result<Page, Error> {
        match self {
            AskedPage::Ready(page) => Ok(page),
            AskedPage::Asked(rx) => rx.await.map_err(|_| Error::Closed),
        }
    }
}

