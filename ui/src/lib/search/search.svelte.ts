//! Message search: the query in the header's search box, the pages of results the server has
//! answered so far, and paging ("More results"). Only the newest request's answer is kept, so a
//! slow answer to an older query never replaces a newer one.

import { type Backend, BackendError } from '../backend/backend';
import type { Event, SearchHit } from '../protocol/generated';

export class SearchState {
  /** What is typed in the box. */
  query = $state('');
  /** The query the results are for (null: nothing searched yet). */
  searched = $state<string | null>(null);
  hits = $state<SearchHit[]>([]);
  total = $state(0);
  nextOffset = $state<number | null>(null);
  loading = $state(false);
  error = $state<BackendError | null>(null);
  /** Bumped to ask the box to take the keyboard focus (Ctrl+F). */
  focusRequests = $state(0);

  private backend: Backend;
  private generation = 0;

  constructor(backend: Backend) {
    this.backend = backend;
  }

  /** Searches for the box's query from the first page. */
  async run() {
    const query = this.query.trim();
    if (!query) return this.clear();
    const generation = ++this.generation;
    this.loading = true;
    this.error = null;
    try {
      const page = await this.backend.search(query, null);
      if (generation !== this.generation) return;
      this.searched = query;
      this.hits = page.hits;
      this.total = page.total;
      this.nextOffset = page.next_offset;
    } catch (err) {
      if (generation !== this.generation) return;
      this.searched = query;
      this.hits = [];
      this.total = 0;
      this.nextOffset = null;
      this.error = BackendError.from(err);
    } finally {
      if (generation === this.generation) this.loading = false;
    }
  }

  /** Loads the next page of the current results. */
  async more() {
    const query = this.searched;
    const offset = this.nextOffset;
    if (query === null || offset === null || this.loading) return;
    const generation = ++this.generation;
    this.loading = true;
    try {
      const page = await this.backend.search(query, offset);
      if (generation !== this.generation) return;
      const seen = new Set(this.hits.map((h) => h.message.id));
      this.hits = [...this.hits, ...page.hits.filter((h) => !seen.has(h.message.id))];
      this.total = page.total;
      this.nextOffset = page.next_offset;
    } catch (err) {
      if (generation === this.generation) this.error = BackendError.from(err);
    } finally {
      if (generation === this.generation) this.loading = false;
    }
  }

  /** Adds a filter (`from:`, `in:`, …) to the end of the query. */
  addFilter(filter: string) {
    const q = this.query.trimEnd();
    this.query = q ? `${q} ${filter}` : filter;
    this.focusRequests++;
  }

  clear() {
    this.generation++;
    this.query = '';
    this.searched = null;
    this.hits = [];
    this.total = 0;
    this.nextOffset = null;
    this.loading = false;
    this.error = null;
  }

  /** A message was deleted or edited: the results show what is true now (an edited hit keeps
   *  its place, without marks: the server's ranges were for the old text). */
  apply(event: Event) {
    if (event.t === 'MessageDelete' && this.hits.some((h) => h.message.id === event.message_id)) {
      this.hits = this.hits.filter((h) => h.message.id !== event.message_id);
      this.total = Math.max(0, this.total - 1);
    } else if (event.t === 'MessageUpdate' && this.hits.some((h) => h.message.id === event.message.id)) {
      this.hits = this.hits.map((h) => (h.message.id === event.message.id ? { message: event.message, highlights: [] } : h));
    }
  }
}
