//! `search`: latency of full-text search through the HTTP API on a group with a million
//! messages in twenty channels, beside the same full-text queries run straight against the
//! database's index (the floor), on SQLite and on PostgreSQL.
//!
//! The group: 8 members, 18 open channels and 2 private ones (the searcher is in one of them).
//! Messages are spread over two years; 85 % are made of words drawn from a 20,000-word
//! vocabulary with Zipf frequencies (like natural language: the commonest word is in most
//! messages, rank 100 in about 1 %), 15 % are Chinese, words from a 3,000-word vocabulary of
//! two-character words without spaces. They are stored through the server's own storage code
//! (`Db::store_messages`, the writer's batch insert), so their index entries are exactly what
//! the server writes.
//!
//! The 200 queries are what a family searches for: one word of any but the 20 commonest ranks
//! (40 %), two words (15 %), one of the 20 commonest words (5 %, the hard case: a word in a
//! large share of all messages), a Chinese word of one, two or three characters (15 %), a word
//! with `from:` (10 %), with `in:` (10 %), with `after:` (5 %). Each runs once to warm up,
//! then once measured; Hearth and the floor alternate query by query so that they share the
//! machine's noise, and which of the two runs a query first alternates too (the second finds
//! the first's pages in the database's cache).
//!
//! Hearth: `GET /search?q=…&limit=25` as a member (authentication, the readable-channel and
//! blocked-author filters, ranking, the page's messages with reactions, highlights, JSON).
//! Floor: the same match expression, date bounds included, straight against the index: the
//! newest 1000 matches by id, the top 25 of them by bm25 (FTS5) or ts_rank (PostgreSQL), with
//! their content (what the highlights are made from). Like the server, it sends the query as
//! a one-off statement, so that the planner sees the expression it plans for.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures_util::{StreamExt, TryStreamExt, stream};
use hearth_protocol::ids::compose;
use hearth_protocol::{ChannelId, UserId};
use hearth_server::db::messages::NewMessage;
use hearth_server::db::search::Match;
use hearth_server::db::{Backend, Db};
use hearth_server::search::query::parse;
use hearth_server::search::text::{author_tag, channel_tag};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::report::{Metric, fmt_opt, ratio};
use crate::server::{Group, HearthServer, Paths};
use crate::stats::Latencies;

const BENCH: &str = "search";

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Messages stored before searching.
    #[arg(long, env = "SEARCH_MESSAGES", default_value_t = 1_000_000)]
    pub messages: usize,
    /// Text channels (two of them private).
    #[arg(long, env = "SEARCH_CHANNELS", default_value_t = 20)]
    pub channels: usize,
    /// Queries measured (each also run once to warm up).
    #[arg(long, env = "SEARCH_QUERIES", default_value_t = 200)]
    pub queries: usize,
    /// Which databases: sqlite, postgres or both.
    #[arg(long, env = "SEARCH_BACKENDS", default_value = "both")]
    pub backends: String,
    /// An admin URL of a PostgreSQL cluster to make the bench's database in (bench/run.sh
    /// starts a private one); without it the PostgreSQL run is skipped.
    #[arg(long, env = "SEARCH_PG_URL")]
    pub pg_url: Option<String>,
    /// Seed of the generated messages and queries.
    #[arg(long, env = "SEARCH_SEED", default_value_t = 11)]
    pub seed: u64,
}

const MEMBERS: usize = 8;
const WORDS: usize = 20_000;
const CHINESE_WORDS: usize = 3_000;
const SYLLABLES: [&str; 24] = [
    "ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "bu", "da", "fe", "gi", "ho", "ju", "pa", "qui",
    "re", "so", "tu", "wa", "xe", "yo", "chi",
];
const BATCH: usize = 512;
const DAY_MS: i64 = 86_400_000;

/// Draws ranks 0.. with probability proportional to 1 / (rank + 1)^s.
struct Zipf {
    cumulative: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, s: f64) -> Self {
        let mut total = 0.0;
        let cumulative = (1..=n)
            .map(|r| {
                total += 1.0 / (r as f64).powf(s);
                total
            })
            .collect();
        Zipf { cumulative }
    }

    fn sample(&self, rng: &mut StdRng) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(1.0);
        let x = rng.random::<f64>() * total;
        self.cumulative.partition_point(|c| *c < x).min(self.cumulative.len() - 1)
    }
}

/// Word `i` of the vocabulary: `i` in bijective base 24 over syllables (unique, pronounceable).
fn word(mut i: usize) -> String {
    let mut out = String::new();
    loop {
        out.insert_str(0, SYLLABLES[i % SYLLABLES.len()]);
        i /= SYLLABLES.len();
        if i == 0 {
            return out;
        }
        i -= 1;
    }
}

/// The Chinese vocabulary: two-character words over 2,500 ideographs.
fn chinese_words(rng: &mut StdRng) -> Vec<String> {
    let chars: Vec<char> =
        (0..2_500u32).filter_map(|i| char::from_u32(0x4E00 + (i * 7919) % 20_000)).collect();
    let pick = Zipf::new(chars.len(), 0.9);
    let mut words: Vec<String> = Vec::with_capacity(CHINESE_WORDS);
    while words.len() < CHINESE_WORDS {
        let w: String = [chars[pick.sample(rng)], chars[pick.sample(rng)]].iter().collect();
        if !words.contains(&w) {
            words.push(w);
        }
    }
    words
}

struct Corpus {
    words: Zipf,
    chinese: Vec<String>,
    chinese_pick: Zipf,
}

impl Corpus {
    fn new(rng: &mut StdRng) -> Self {
        Corpus {
            words: Zipf::new(WORDS, 1.07),
            chinese: chinese_words(rng),
            chinese_pick: Zipf::new(CHINESE_WORDS, 1.0),
        }
    }

    fn message(&self, rng: &mut StdRng) -> String {
        if rng.random_bool(0.15) {
            let n = rng.random_range(3..12);
            let mut text: String =
                (0..n).map(|_| self.chinese[self.chinese_pick.sample(rng)].as_str()).collect();
            text.push('。');
            text
        } else {
            let n = rng.random_range(3..21);
            let words: Vec<String> = (0..n).map(|_| word(self.words.sample(rng))).collect();
            words.join(" ")
        }
    }
}

/// The group and where everything is.
struct Layout {
    group: Group,
    /// (id, name, private) of every channel.
    channels: Vec<(ChannelId, String)>,
    /// The member who searches: in the second private channel, not the first.
    searcher: usize,
}

async fn make_group(server: &HearthServer, channels: usize) -> Result<Layout> {
    let group = server.bootstrap(MEMBERS - 1, "channel-00").await?;
    let admin = &group.admin.access_token;
    let mut list = vec![(group.channel, "channel-00".to_string())];
    for i in 1..channels.saturating_sub(2) {
        let name = format!("channel-{i:02}");
        let c = server.api.create_channel(admin, &name).await?;
        list.push((c.id, name));
    }
    // One private channel the searcher cannot read, one they can.
    let others: Vec<UserId> = group.members.iter().skip(1).map(|m| m.id).collect();
    let hidden = server.api.create_private_channel(admin, "parents", &others).await?;
    let theirs = server.api.create_private_channel(admin, "kids", &[group.members[0].id]).await?;
    list.push((hidden.id, "parents".into()));
    list.push((theirs.id, "kids".into()));
    Ok(Layout { group, channels: list, searcher: 1 })
}

/// Stores `n` messages over the last two years through the server's storage code.
async fn seed(db: &Db, layout: &Layout, corpus: &Corpus, n: usize, seed_value: u64) -> Result<Duration> {
    let authors: Vec<UserId> = layout.group.accounts().iter().map(|a| a.id).collect();
    let channel_pick = Zipf::new(layout.channels.len(), 0.6);
    let now = hearth_server::db::now_ms() - DAY_MS;
    let start = now - 730 * DAY_MS;
    let step = ((now - start) as f64 / n as f64).max(1.0);
    let started = Instant::now();
    let batches: Vec<usize> = (0..n.div_ceil(BATCH)).collect();
    stream::iter(batches)
        .map(|b| {
            let authors = authors.clone();
            let channel_pick = &channel_pick;
            async move {
                let mut rng = StdRng::seed_from_u64(seed_value ^ (b as u64 + 1).wrapping_mul(0x9E37_79B9));
                let first = b * BATCH;
                let count = BATCH.min(n - first);
                let batch: Vec<NewMessage> = (0..count)
                    .map(|i| NewMessage {
                        channel_id: layout.channels[channel_pick.sample(&mut rng)].0,
                        author_id: authors[rng.random_range(0..authors.len())],
                        nonce: format!("seed-{}", first + i),
                        content: corpus.message(&mut rng),
                        reply_to: None,
                        mentions: Vec::new(),
                        attachments: Vec::new(),
                    })
                    .collect();
                // Ids in time order across batches: message k was sent at start + k × step.
                let mut k = first;
                db.store_messages(&batch, || {
                    let id = compose(start + (k as f64 * step) as i64, (k % 1024) as i64);
                    k += 1;
                    id
                })
                .await
                .context("storing a batch of messages")?;
                Ok::<_, anyhow::Error>(())
            }
        })
        .buffer_unordered(if db.backend == Backend::Postgres { 4 } else { 1 })
        .try_collect::<Vec<()>>()
        .await?;
    Ok(started.elapsed())
}

/// The 200 typical queries, as typed in the search box.
fn queries(layout: &Layout, corpus: &Corpus, count: usize, rng: &mut StdRng) -> Vec<String> {
    let members: Vec<&str> = layout.group.accounts().iter().map(|a| a.username.as_str()).collect();
    let visible: Vec<&str> =
        layout.channels.iter().map(|(_, n)| n.as_str()).filter(|n| *n != "parents").collect();
    let some_word = |rng: &mut StdRng| word(rng.random_range(20..5_000));
    let chinese = |rng: &mut StdRng| corpus.chinese[rng.random_range(0..CHINESE_WORDS)].clone();
    (0..count)
        .map(|i| match i % 20 {
            0..=7 => some_word(rng),
            8..=10 => format!("{} {}", word(rng.random_range(20..2_000)), word(rng.random_range(20..2_000))),
            11 => word(rng.random_range(0..20)),
            12 | 13 => chinese(rng),
            14 => {
                if i % 40 < 20 {
                    chinese(rng).chars().take(1).collect()
                } else {
                    format!("{}{}", chinese(rng), chinese(rng).chars().next().unwrap_or('的'))
                }
            }
            15 | 16 => format!("{} from:{}", some_word(rng), members[rng.random_range(0..members.len())]),
            17 | 18 => format!("{} in:{}", some_word(rng), visible[rng.random_range(0..visible.len())]),
            _ => format!("{} after:{}", some_word(rng), date(rng.random_range(30..700))),
        })
        .collect()
}

/// The UTC date `days_ago` days ago, as YYYY-MM-DD.
fn date(days_ago: i64) -> String {
    hearth_server::search::query::utc_date(hearth_server::db::now_ms() - days_ago * DAY_MS)
}

/// The floor's form of a query: the match expression and the id bounds, made the way the
/// server makes them.
fn floor_query(backend: Backend, q: &str, layout: &Layout) -> Result<(String, i64, i64)> {
    let parsed = parse(q).map_err(anyhow::Error::msg)?;
    let mut any_of = Vec::new();
    if !parsed.from.is_empty() {
        let ids: Vec<String> = layout
            .group
            .accounts()
            .iter()
            .filter(|a| parsed.from.iter().any(|f| f.eq_ignore_ascii_case(&a.username)))
            .map(|a| author_tag(a.id.0))
            .collect();
        any_of.push(ids);
    }
    if !parsed.within.is_empty() {
        let ids: Vec<String> = layout
            .channels
            .iter()
            .filter(|(_, n)| parsed.within.iter().any(|w| w.eq_ignore_ascii_case(n)))
            .map(|(id, _)| channel_tag(id.0))
            .collect();
        any_of.push(ids);
    }
    let expression = backend.match_expression(&Match { terms: &parsed.terms, any_of: &any_of });
    let after = parsed.after.map(|t| compose(t, 0) - 1).unwrap_or(0);
    let before = parsed.before.map(|t| compose(t, 0)).unwrap_or(i64::MAX);
    Ok((expression, after, before))
}

async fn floor(db: &Db, expression: &str, after: i64, before: i64) -> Result<usize> {
    // Bounds only when the query has them, and a one-off statement so that the planner sees
    // the expression (a generic plan guesses its selectivity): what the server does too.
    let mut bounds = String::new();
    if after > 0 {
        bounds.push_str(&format!(" AND {{id}} > {after}"));
    }
    if before < i64::MAX {
        bounds.push_str(&format!(" AND {{id}} < {before}"));
    }
    // The page: the top 25 of the newest 1000 matches, with the text the highlights are made
    // from (the content of those 25 messages, looked up one by one: a join let PostgreSQL
    // hash the whole messages table).
    let sql = match db.backend {
        Backend::Sqlite => format!(
            "SELECT page.id, (SELECT content FROM messages m WHERE m.id = page.id) AS content FROM \
             (SELECT id FROM (SELECT rowid AS id, bm25(message_search) AS s FROM message_search \
             WHERE message_search MATCH $1{} ORDER BY rowid DESC LIMIT 1000) AS newest \
             ORDER BY s LIMIT 25) AS page",
            bounds.replace("{id}", "rowid")
        ),
        Backend::Postgres => format!(
            "SELECT page.id, (SELECT content FROM messages m WHERE m.id = page.id) AS content FROM \
             (SELECT id FROM (SELECT id, ts_rank(tsv, CAST($1 AS tsquery)) AS r FROM message_search \
             WHERE tsv @@ CAST($1 AS tsquery){} ORDER BY id DESC LIMIT 1000) AS newest \
             ORDER BY r DESC LIMIT 25) AS page",
            bounds.replace("{id}", "id")
        ),
    };
    let rows: Vec<(i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .persistent(false)
        .bind(expression.to_string())
        .fetch_all(&db.pool)
        .await
        .context("floor query")?;
    Ok(rows.len())
}

struct Run {
    label: &'static str,
    hearth: Latencies,
    floor: Latencies,
    seeded_in: Duration,
    with_hits: usize,
    queries: usize,
}

async fn run_backend(paths: &Paths, args: &Args, backend: Backend) -> Result<Option<Run>> {
    let (label, extra): (&'static str, Vec<String>) = match backend {
        Backend::Sqlite => ("sqlite", Vec::new()),
        Backend::Postgres => {
            let Some(admin) = &args.pg_url else {
                eprintln!("search: no SEARCH_PG_URL; skipping PostgreSQL");
                return Ok(None);
            };
            let url = make_pg_database(admin, "search").await?;
            ("postgres", vec!["--database-url".into(), url])
        }
    };
    let server = HearthServer::start(paths, &format!("search-{label}"), &extra).await?;
    let layout = make_group(&server, args.channels).await?;
    let db_url = match backend {
        Backend::Sqlite => {
            let dir = server_data_dir(&server)?;
            format!("sqlite://{}", dir.join("hearth.db").display())
        }
        Backend::Postgres => extra[1].clone(),
    };
    let db = Db::connect(&db_url).await.context("opening the server's database")?;
    let mut rng = StdRng::seed_from_u64(args.seed);
    let corpus = Corpus::new(&mut rng);
    eprintln!("search[{label}]: storing {} messages through the server's storage code…", args.messages);
    let seeded_in = seed(&db, &layout, &corpus, args.messages, args.seed).await?;
    eprintln!(
        "search[{label}]: stored in {:.1} s ({:.0} messages/s, index included)",
        seeded_in.as_secs_f64(),
        args.messages as f64 / seeded_in.as_secs_f64()
    );
    // What autovacuum (PostgreSQL) or `PRAGMA optimize` (SQLite) does on its own after a bulk
    // load: fresh planner statistics.
    sqlx::query("ANALYZE").execute(&db.pool).await.context("ANALYZE")?;

    let list = queries(&layout, &corpus, args.queries, &mut rng);
    let token = &layout.group.accounts()[layout.searcher].access_token;
    let floors: Vec<(String, i64, i64)> =
        list.iter().map(|q| floor_query(backend, q, &layout)).collect::<Result<_>>()?;
    // Warm-up pass: caches and prepared statements, both sides.
    for (q, (e, a, b)) in list.iter().zip(&floors) {
        server.api.search(token, q, 25).await.with_context(|| format!("searching {q:?}"))?;
        floor(&db, e, *a, *b).await?;
    }
    let mut hearth = Latencies::default();
    let mut floor_lat = Latencies::default();
    let mut with_hits = 0;
    // Who goes first alternates: the second to run a query finds the pages the first read
    // in PostgreSQL's buffers (at a million messages they are not all kept from the warm-up).
    for (i, (q, (e, a, b))) in list.iter().zip(&floors).enumerate() {
        if i % 2 == 1 {
            let t = Instant::now();
            floor(&db, e, *a, *b).await?;
            floor_lat.record(t.elapsed());
        }
        let t = Instant::now();
        let results = server.api.search(token, q, 25).await?;
        hearth.record(t.elapsed());
        if results.total > 0 {
            with_hits += 1;
        }
        if i % 2 == 0 {
            let t = Instant::now();
            floor(&db, e, *a, *b).await?;
            floor_lat.record(t.elapsed());
        }
    }
    db.close().await;
    server.stop().await?;
    Ok(Some(Run { label, hearth, floor: floor_lat, seeded_in, with_hits, queries: list.len() }))
}

fn server_data_dir(server: &HearthServer) -> Result<std::path::PathBuf> {
    server.data_dir().map(|p| p.to_owned()).context("the server's data directory")
}

/// A fresh database in the cluster of `admin` (an admin URL), for one run of bench `label`.
pub async fn make_pg_database(admin: &str, label: &str) -> Result<String> {
    sqlx::any::install_default_drivers();
    let name = format!("hearth_bench_{label}_{:08x}", rand::random::<u32>());
    let pool = sqlx::AnyPool::connect(admin).await.context("connecting to PostgreSQL")?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&pool)
        .await
        .context("creating the bench database")?;
    pool.close().await;
    let base = admin.rsplit_once('/').map(|(b, _)| b).context("the admin URL names a database")?;
    Ok(format!("{base}/{name}"))
}

pub async fn run(paths: &Paths, args: &Args) -> Result<Vec<Metric>> {
    let backends: Vec<Backend> = match args.backends.as_str() {
        "both" => vec![Backend::Sqlite, Backend::Postgres],
        "sqlite" => vec![Backend::Sqlite],
        "postgres" => vec![Backend::Postgres],
        other => bail!("--backends is sqlite, postgres or both, not {other:?}"),
    };
    let mut metrics = Vec::new();
    println!(
        "search: {} messages in {} channels, {} queries through GET /search vs the index alone",
        args.messages, args.channels, args.queries
    );
    for backend in backends {
        let Some(mut run) = run_backend(paths, args, backend).await? else { continue };
        let (p50, p95) = (run.hearth.percentile_ms(50.0), run.hearth.percentile_ms(95.0));
        let (f50, f95) = (run.floor.percentile_ms(50.0), run.floor.percentile_ms(95.0));
        let peer = match backend {
            Backend::Sqlite => "sqlite fts5 index alone (floor)",
            Backend::Postgres => "postgresql tsvector gin index alone (floor)",
        };
        println!(
            "  {:<8} Hearth p50 {} ms p95 {} ms | floor p50 {} ms p95 {} ms | p95 ratio {} | {} of {} queries found something | seeded in {:.0} s",
            run.label,
            fmt_opt(p50, 2),
            fmt_opt(p95, 2),
            fmt_opt(f50, 2),
            fmt_opt(f95, 2),
            fmt_opt(ratio(p95, f95), 2),
            run.with_hits,
            run.queries,
            run.seeded_in.as_secs_f64(),
        );
        metrics.push(
            Metric::new(BENCH, "search_p95_ms", p95, "ms").peer(peer, f95).target("<=50 and <=2x floor"),
        );
        metrics.push(Metric::new(BENCH, "search_p50_ms", p50, "ms").peer(peer, f50));
        metrics.push(
            Metric::new(BENCH, "search_p95_vs_floor", ratio(p95, f95), "x")
                .peer(peer, Some(1.0))
                .target("<=2"),
        );
    }
    Ok(metrics)
}
