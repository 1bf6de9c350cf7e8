//! The operator's commands on a real data directory: `hearth-server admin …` against a running
//! server (the change applies at once) and a stopped one, `backup` while clients write and
//! `restore`, upgrades (a newer database refused, a backup before migrating, a failing
//! migration leaving the old schema whole), the start-up announcement and the log's format.

mod common;

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use common::{Backend, Gateway, PASSWORD, TestServer, UNLIMITED, WAIT, say};
use hearth_protocol::MessageId;
use hearth_protocol::gateway::{Event, ServerMsg};
use hearth_protocol::model::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// Runs `hearth-server ARGS` on the test server's data directory and database.
async fn cli(server: &TestServer, args: &[&str]) -> Output {
    cli_on(&server.data_dir, &server.backend, args, None).await
}

async fn cli_on(data_dir: &Path, backend: &Backend, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hearth-server"));
    cmd.args(args).arg("--data-dir").arg(data_dir);
    if let Backend::Postgres(url) = backend {
        cmd.arg("--database-url").arg(url);
    }
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("running hearth-server");
    if let (Some(text), Some(mut input)) = (stdin, child.stdin.take()) {
        use tokio::io::AsyncWriteExt;
        input.write_all(text.as_bytes()).await.expect("writing stdin");
    }
    tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the command finished")
        .expect("its output")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs an `admin … --json` command that must succeed; its JSON answer.
async fn admin_json(server: &TestServer, args: &[&str]) -> Value {
    let mut all = vec!["admin"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = cli(server, &all).await;
    assert!(out.status.success(), "admin {args:?} failed: {}{}", stdout(&out), stderr(&out));
    serde_json::from_str(stdout(&out).trim()).expect("JSON on stdout")
}

/// Waits until the connection ends; returns what ended it.
async fn ends(gw: &mut Gateway) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, gw.next()).await.expect("the session ends in time") {
            Err(_closed) => return,
            Ok(ServerMsg::InvalidSession) => return,
            Ok(_) => continue,
        }
    }
}

async fn admin_commands_apply_at_once_on_a_running_server(backend: Backend) {
    let server = TestServer::start(backend).await;
    let owner = server.admin().await;
    let mut watcher = server.gateway(&owner).await;

    // An invite made on the command line works in the app, and its link names this server.
    let made = admin_json(&server, &["invite", "create", "--max-uses", "2", "--expires-in", "1d"]).await;
    let code = made["invite"]["code"].as_str().expect("code").to_string();
    assert_eq!(made["invite"]["max_uses"], 2);
    assert!(made["link"].as_str().unwrap().starts_with("hearth://join?server=http%3A%2F%2F127.0.0.1"));
    let mut member = server.client();
    member.register(&code, "gran").await;
    let listed = admin_json(&server, &["invite", "list"]).await;
    assert!(
        listed["invites"].as_array().unwrap().iter().any(|i| i["code"] == code.as_str() && i["uses"] == 1)
    );

    let users = admin_json(&server, &["users"]).await;
    let names: Vec<&str> =
        users["users"].as_array().unwrap().iter().map(|u| u["username"].as_str().unwrap()).collect();
    assert_eq!(names, ["admin", "gran"]);

    // A new role is what the next request is checked against, and everyone hears of it.
    let (status, _) = member.post("/invites", json!({"max_uses": 1})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a member makes no invites");
    admin_json(&server, &["set-role", "gran", "admin"]).await;
    let updated = watcher
        .event(|e| match e {
            Event::MemberUpdate { user } if user.username == "gran" => Some(user.clone()),
            _ => None,
        })
        .await;
    assert_eq!(updated.role, Role::Admin);
    let (status, _) = member.post("/invites", json!({"max_uses": 1})).await;
    assert_eq!(status, StatusCode::CREATED, "an admin makes invites, at once");

    // The group keeps an owner.
    let out = cli(&server, &["admin", "set-role", "admin", "member"]).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("only owner"), "{}", stderr(&out));
    let out = cli(&server, &["admin", "remove", "admin"]).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("only owner"), "{}", stderr(&out));

    // A reset password ends every login at once; the new one works, the old one not.
    let mut gran_gw = server.gateway(&member).await;
    let reset = cli_on(
        &server.data_dir,
        &server.backend,
        &["admin", "reset-password", "GRAN", "--password-stdin"],
        Some("a new long passphrase\n"),
    )
    .await;
    assert!(reset.status.success(), "{}", stderr(&reset));
    ends(&mut gran_gw).await;
    let (status, _) = member.get("/users/@me").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the old access token is dead");
    let (status, _) = member.login("gran", PASSWORD).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = member.login("gran", "a new long passphrase").await;
    assert_eq!(status, StatusCode::OK);
    // A generated password is printed once and works.
    let generated = admin_json(&server, &["reset-password", "gran"]).await;
    let password = generated["password"].as_str().expect("the generated password").to_string();
    let (status, _) = member.login("gran", &password).await;
    assert_eq!(status, StatusCode::OK);

    // Removal ends the member's sessions and everyone hears of it; they cannot log in again.
    let mut gran_gw = server.gateway(&member).await;
    admin_json(&server, &["remove", "gran"]).await;
    ends(&mut gran_gw).await;
    let gone = watcher
        .event(|e| match e {
            Event::MemberRemove { user_id } => Some(*user_id),
            _ => None,
        })
        .await;
    assert_eq!(Some(gone), member.session.as_ref().map(|s| s.user.id));
    let (status, _) = member.login("gran", &password).await;
    assert_ne!(status, StatusCode::OK);

    // Revoked invites no longer register anyone; unknown names and codes are plain errors.
    admin_json(&server, &["invite", "revoke", &code]).await;
    let (status, _) = server
        .client()
        .post("/auth/register", json!({"invite": code, "username": "late", "password": PASSWORD}))
        .await;
    assert!(status.is_client_error());
    let out = cli(&server, &["admin", "remove", "nobody"]).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no member is called \"nobody\""), "{}", stderr(&out));
}

async fn admin_commands_work_while_the_server_is_stopped(backend: Backend) {
    let mut server = TestServer::start(backend).await;
    let owner = server.admin().await;
    assert!(server.terminate().await);
    let made = admin_json(&server, &["invite", "create"]).await;
    let code = made["invite"]["code"].as_str().unwrap().to_string();
    admin_json(&server, &["set-role", "admin", "owner"]).await;
    server.restart().await;
    let mut cousin = server.client();
    cousin.register(&code, "cousin").await;
    let (status, _) = owner.at(&server).get("/users/@me").await;
    assert_eq!(status, StatusCode::OK, "logins from before the stop still work");
}

/// A backup taken while a client keeps sending holds every message acknowledged before it
/// began; restored, the group is back with those messages, its secrets (old logins still
/// work) and its avatars.
async fn backup_while_clients_write_then_restore(backend: Backend) {
    let mut server = TestServer::start_with(backend, &UNLIMITED).await;
    let owner = server.admin().await;
    let me = owner.session().user.id;
    let channel = owner.text_channel("general").await.id;
    let avatar = {
        let img = image::RgbImage::from_fn(64, 64, |x, y| image::Rgb([x as u8 * 3, y as u8 * 3, 90]));
        let mut png = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
        let response = owner
            .http
            .put(format!("{}/api/v1/users/@me/avatar", server.base))
            .bearer_auth(owner.token())
            .body(png)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
        response.json::<Value>().await.unwrap()["avatar"].as_str().unwrap().to_string()
    };
    let icon = {
        let img = image::RgbImage::from_fn(48, 48, |x, y| image::Rgb([90, x as u8 * 4, y as u8 * 4]));
        let mut png = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
        let (status, body) = owner.send_bytes(reqwest::Method::PUT, "/server/icon", png).await;
        assert!(status.is_success(), "{body}");
        body["icon"].as_str().expect("the icon's hash").to_string()
    };

    // The writer: sends without pause, records each acknowledgement (its own MessageCreate).
    let (acked_tx, mut acked_rx) = tokio::sync::mpsc::unbounded_channel::<MessageId>();
    let stop = tokio_util::sync::CancellationToken::new();
    let mut gw = server.gateway(&owner).await;
    let writer = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut n = 0;
            let mut in_flight = 0;
            while !stop.is_cancelled() || in_flight > 0 {
                while in_flight < 8 && !stop.is_cancelled() {
                    gw.send(&say(channel, &format!("line {n}"))).await;
                    n += 1;
                    in_flight += 1;
                }
                if let Ok(ServerMsg::Dispatch { event: Event::MessageCreate { message, .. }, .. }) =
                    gw.next().await
                    && message.author_id == me
                {
                    in_flight -= 1;
                    let _ = acked_tx.send(message.id);
                }
            }
        })
    };
    let mut acked = Vec::new();
    while acked.len() < 50 {
        acked.push(acked_rx.recv().await.expect("acknowledgements"));
    }
    // Everything acknowledged before the backup starts must be in it.
    while let Ok(id) = acked_rx.try_recv() {
        acked.push(id);
    }
    let before_backup = acked.clone();
    let dest = server.data_dir.with_extension("backup");
    let out = cli(&server, &["backup", dest.to_str().unwrap()]).await;
    assert!(out.status.success(), "backup failed: {}", stderr(&out));
    assert!(stdout(&out).contains("backup written to"), "{}", stdout(&out));
    let mut after = 0;
    while after < 20 {
        acked_rx.recv().await.expect("the writer goes on during and after the backup");
        after += 1;
    }
    stop.cancel();
    writer.await.unwrap();
    assert!(dest.join("manifest.json").exists() && dest.join("secrets.json").exists());
    assert!(dest.join("avatars").join(format!("{avatar}.png")).exists());
    assert!(dest.join("icons").join(format!("{icon}.png")).exists(), "the server icon is in the backup");

    // Restore refuses to run under a live server.
    let out = cli(&server, &["restore", dest.to_str().unwrap()]).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("stop it first"), "{}", stderr(&out));

    assert!(server.terminate().await);
    // The group's files are lost (a dead disk); the backup brings them back.
    for entry in std::fs::read_dir(&server.data_dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            std::fs::remove_dir_all(&path).unwrap()
        } else {
            std::fs::remove_file(&path).unwrap()
        }
    }
    if let Backend::Postgres(url) = &server.backend {
        let pool = sqlx::AnyPool::connect(url).await.unwrap();
        sqlx::raw_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public;").execute(&pool).await.unwrap();
        pool.close().await;
    }
    let out = cli(&server, &["restore", dest.to_str().unwrap()]).await;
    assert!(out.status.success(), "restore failed: {}{}", stdout(&out), stderr(&out));
    server.restart().await;

    let owner = owner.at(&server);
    let (status, _) = owner.get("/users/@me").await;
    assert_eq!(status, StatusCode::OK, "the signing key came back: the old login still works");
    let mut stored = Vec::new();
    let mut query = "?limit=100".to_string();
    loop {
        let page = owner.history(channel, &query).await;
        if page.is_empty() {
            break;
        }
        query = format!("?limit=100&before={}", page.iter().map(|m| m.id).min().unwrap());
        stored.extend(page.into_iter().map(|m| m.id));
    }
    let missing: Vec<_> = before_backup.iter().filter(|id| !stored.contains(id)).collect();
    assert!(missing.is_empty(), "acknowledged before the backup, missing after restore: {missing:?}");
    let (status, _) = owner.get(&format!("/avatars/{avatar}.png")).await;
    assert_eq!(status, StatusCode::OK, "the avatar came back");
    let (status, _, _) = owner.get_bytes(&format!("/server/icon/{icon}.png")).await;
    assert_eq!(status, StatusCode::OK, "the server icon came back");
    let _ = std::fs::remove_dir_all(&dest);
}

both_backends!(
    admin_commands_apply_at_once_on_a_running_server,
    admin_commands_work_while_the_server_is_stopped,
    backup_while_clients_write_then_restore,
);

/// A SQLite database at schema version 1, with one owner, as an older release left it.
async fn version_one_database(data_dir: &Path) -> sqlx::AnyPool {
    std::fs::create_dir_all(data_dir).unwrap();
    sqlx::any::install_default_drivers();
    let url = format!("sqlite://{}?mode=rwc", data_dir.join("hearth.db").display());
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    sqlx::raw_sql(include_str!("../migrations/sqlite/0001_init.sql")).execute(&pool).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL);
         INSERT INTO schema_migrations VALUES (1, 0);
         INSERT INTO users (id, username, username_key, display_name, password_hash, avatar, is_admin, created_at)
         VALUES (4194304, 'mum', 'mum', 'Mum', 'x', NULL, 1, 0);",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool
}

async fn start_and_wait_for_exit(data_dir: &Path) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_hearth-server"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::timeout(WAIT, child.wait_with_output()).await.expect("the server gave up at once").unwrap()
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("hearth-{name}-{}-{}", std::process::id(), rand::random::<u32>()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[tokio::test]
async fn an_upgrade_takes_a_backup_first_and_migrates() {
    let dir = temp_dir("upgrade");
    version_one_database(&dir).await.close().await;
    let mut server = TestServer::start_on(Backend::Sqlite, dir.clone(), &[]).await;
    let backups: Vec<_> = std::fs::read_dir(dir.join("backups")).expect("a backups directory").collect();
    assert_eq!(backups.len(), 1, "one backup before migrating");
    let backup = backups.into_iter().next().unwrap().unwrap().path();
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(backup.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["schema_version"], 1, "the backup holds the database before the upgrade");
    let (status, body) = server.client().get("/server").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["needs_setup"], false);
    // The upgraded database knows roles: the old admin is the owner.
    assert!(server.terminate().await);
    let users = admin_json(&server, &["users"]).await;
    assert_eq!(users["users"][0]["role"], "owner");
    // A second start migrates nothing and takes no second backup.
    server.restart().await;
    assert_eq!(std::fs::read_dir(dir.join("backups")).unwrap().count(), 1);
}

#[tokio::test]
async fn a_failing_migration_leaves_the_old_schema_whole() {
    let dir = temp_dir("failing-migration");
    let pool = version_one_database(&dir).await;
    // Migration 2 creates `bans`; a table of that name already there makes it fail halfway,
    // after it has altered `users`.
    sqlx::raw_sql("CREATE TABLE bans (x BIGINT)").execute(&pool).await.unwrap();
    pool.close().await;
    let out = start_and_wait_for_exit(&dir).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("migration 2"), "{}", stderr(&out));
    let pool =
        sqlx::AnyPool::connect(&format!("sqlite://{}", dir.join("hearth.db").display())).await.unwrap();
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM schema_migrations").fetch_all(&pool).await.unwrap();
    assert_eq!(versions, [1]);
    let is_admin: i64 = sqlx::query_scalar("SELECT is_admin FROM users")
        .fetch_one(&pool)
        .await
        .expect("users as version 1 had it");
    assert_eq!(is_admin, 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_database_newer_than_the_server_is_refused_in_plain_words() {
    let dir = temp_dir("newer");
    let pool = version_one_database(&dir).await;
    sqlx::raw_sql("INSERT INTO schema_migrations VALUES (2, 0), (999, 0)").execute(&pool).await.unwrap();
    pool.close().await;
    let out = start_and_wait_for_exit(&dir).await;
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("last used by a newer hearth-server") && err.contains("version 999"), "{err}");
    assert!(!dir.join("backups").exists(), "nothing was touched");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_second_server_on_the_same_data_directory_is_refused() {
    let server = TestServer::start(Backend::Sqlite).await;
    let out = start_and_wait_for_exit(&server.data_dir).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("another hearth-server is running"), "{}", stderr(&out));
}

/// The log, redirected as journald or `docker logs` get it: no colour codes; the share URL and
/// the setup link (whose token is the one in DATA_DIR/setup-token); JSON lines when asked.
#[tokio::test]
async fn the_start_announces_the_url_and_setup_link_in_a_plain_log() {
    for format in ["text", "json"] {
        let dir = temp_dir("log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_hearth-server"))
            .args([
                "--listen",
                "127.0.0.1:0",
                "--public-url",
                "https://hearth.example.org",
                "--log-format",
                format,
            ])
            .arg("--data-dir")
            .arg(&dir)
            .env_remove("HEARTH_LOG")
            .env_remove("NO_COLOR")
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut log = Vec::new();
        let link = loop {
            let line = tokio::time::timeout(WAIT, lines.next_line())
                .await
                .expect("log in time")
                .unwrap()
                .expect("a line");
            assert!(!line.contains('\x1b'), "escape codes in a redirected log: {line:?}");
            if format == "json" {
                serde_json::from_str::<Value>(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            }
            log.push(line.clone());
            if let Some(at) = line.find("hearth://setup?") {
                let rest = &line[at..];
                break rest.split(['"', ' ']).next().unwrap().to_string();
            }
        };
        let token = std::fs::read_to_string(dir.join("setup-token")).unwrap();
        assert_eq!(
            link,
            format!("hearth://setup?server=https%3A%2F%2Fhearth.example.org&token={}", token.trim())
        );
        assert!(
            log.iter().any(|l| l.contains("share this address with your group: https://hearth.example.org")),
            "{log:#?}"
        );
        child.kill().await.unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
