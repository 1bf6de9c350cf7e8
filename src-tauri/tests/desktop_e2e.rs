//! The desktop app end to end: the real `hearth` binary (built with the embedded UI) in a real
//! window under Xvfb, driven through tauri-driver + WebKitWebDriver, against the real server on
//! loopback, with a second participant ("bob") played by the engine.
//!
//! Steps: the main flow's first half: the owner ("alice") registers in the app with the new
//! server's setup link, and the first-run guide takes her to create an invite (its link copied
//! from the app) and the first channel; bob joins with the copied link. Then: send a message
//! and see it arrive at bob; receive bob's message; no notification while the window has
//! focus, a recorded one for a mention and a DM once another window has taken the focus; move
//! and resize the window (with xdotool, as a window manager would), quit, let bob write
//! meanwhile, start the app again and find the whole history (the session is remembered) and
//! the window where it was left; a link to a message: "Copy link" on bob's message, pasted (Ctrl+V) into the
//! composer and sent, bob passes it on in their DM, alice clicks it and lands on the message,
//! and again when a second start of the app hands the link over;
//! a 20 MiB file dropped on the composer reaches bob byte for byte; voice: bob (engine, synthetic mouth and ear) waits in a voice
//! channel, alice clicks it (the app runs with `HEARTH_AUDIO=synthetic`: a synthetic voice
//! for a microphone), the panel shows the call connected and bob's link, bob's speaking ring
//! lights up in the app, bob hears alice speak; push-to-talk (an unparsable key refused with
//! `invalid_shortcut`; Control+Shift+V registered with the X server and pressed with XTEST)
//! gates her voice; alice hangs up. Last, the main flow's second half: alice creates another
//! invite in the server settings and copies its link; a second start of the app with that link
//! (the way the system hands `hearth://` links over) opens the join form in the running window,
//! where "carol" registers; carol sees the group's history and members, and her message
//! reaches bob. Then "start with the system" writes the login item, a start through it stays in
//! the tray until Hearth is started again, and turning it off removes it.
//! A screenshot of the main window is kept in `target/e2e-artifacts/` (or
//! `$HEARTH_E2E_ARTIFACTS`).
//!
//! Needs: `HEARTH_E2E_APP` (the app built with `--features custom-protocol` after
//! `npm run build -w ui`), `tauri-driver` (`$HEARTH_TAURI_DRIVER` or on PATH), Debian's
//! `webkit2gtk-driver`, `xvfb`, `x11-apps` (xclock) and `xdotool`. `scripts/test.sh` provides all
//! of them and runs this test; a plain `cargo test` skips it (ignored).

mod common;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::TempDir;
use hearth_client::call::CallConfig;
use hearth_client::{Engine, SessionEvent, VoiceEvent, VoiceSettings};
use hearth_protocol::gateway::Event;
use hearth_protocol::model::{ChannelKind, Message};
use hearth_protocol::{ChannelId, UserId};
use hearth_server::config::{Config, Options};
use hearth_voice::{PcmSink, PcmSource, synth};
use serde_json::{Value, json};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

const PASSWORD: &str = "correct horse battery";
/// How long a step may take; the first start of a debug WebKit build is slow on 2 cores.
const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the app built with the embedded UI, Xvfb and tauri-driver: scripts/test.sh runs it"]
async fn desktop_app_end_to_end() {
    let app = PathBuf::from(std::env::var_os("HEARTH_E2E_APP").expect(
        "HEARTH_E2E_APP must name the app built with `--features custom-protocol` (scripts/test.sh sets it)",
    ));
    assert!(app.is_file(), "HEARTH_E2E_APP={} is not a file", app.display());
    let root = TempDir::new("e2e");
    let artifacts = artifacts_dir();

    // A new server, with no account yet. (The engine's HTTP client also sets up the process's
    // TLS provider, which the WebDriver client below needs.)
    let server = Server::start(&root.0.join("server")).await;
    let info = hearth_client::api::Api::new(&server.url()).expect("an HTTP client").server_info().await;
    assert!(info.expect("server info").needs_setup, "the server waits for its first account");

    // The app, in its own X display with its own home directory.
    let display = Xvfb::start();
    let bus = SessionBus::start();
    let home = root.0.join("home");
    let notes = root.0.join("notifications.jsonl");
    let env = AppEnv { display: display.name.clone(), bus: bus.address.clone(), home, notes: notes.clone() };
    let driver = TauriDriver::start(&env);

    // --- First run: the owner registers with the server's setup link (as the server prints it).
    let ui = driver.open(&app).await;
    let setup_link = format!(
        "hearth://setup?server={}&token={}",
        url::form_urlencoded::byte_serialize(server.url().as_bytes()).collect::<String>(),
        server.setup_token()
    );
    ui.fill("input[name=server]", &setup_link).await;
    ui.click("form button[type=submit]").await;
    ui.wait_js("return document.querySelector('.setup-note') !== null", "the owner's register form").await;
    let prefilled = ui.js("return document.querySelector('input[name=invite]').value").await;
    assert_eq!(prefilled, json!(server.setup_token()), "the setup token is taken from the link");
    ui.fill("input[name=username]", "alice").await;
    ui.fill("input[name=display-name]", "Alice").await;
    ui.fill("input[name=password]", PASSWORD).await;
    ui.click("form button[type=submit]").await;
    ui.wait_js(
        "return document.querySelector('[data-testid=me-name]')?.textContent === 'Alice'",
        "the main view",
    )
    .await;
    let snapshot = ui.invoke("session_snapshot", json!({})).await.expect("the app's snapshot");
    let alice: UserId = serde_json::from_value(snapshot["user"]["id"].clone()).expect("alice's id");
    assert_eq!(snapshot["user"]["role"], json!("owner"), "the setup link made alice the owner");

    // The first-run guide: invite people (the link copied from the app), then a first channel.
    ui.click("[data-testid=guide-invite]").await;
    let invite = create_and_copy_invite(&ui).await;
    let link = hearth_client::invite::parse(&invite).expect("the copied invite link parses");
    close_server_settings(&ui).await;

    // Bob joins with the copied link.
    let bob_engine = Engine::open(root.0.join("bob")).expect("bob's engine");
    let bob_account = bob_engine
        .register(link.server(), link.code().expect("an invite code"), "bob", PASSWORD)
        .await
        .expect("bob registers with the invite alice copied");
    let bob = bob_engine.activate(&bob_account.id).await.expect("bob online");
    let mut bob_events = bob.subscribe();
    tokio::time::timeout(WAIT, bob.connected()).await.expect("bob connects in time").expect("bob connected");
    let bob_id = bob_engine.session().expect("bob's session").user().expect("bob's user").id;
    ui.wait_js(
        &format!("return document.querySelector('.member[data-user-id=\"{bob_id}\"]') !== null"),
        "bob in alice's member list",
    )
    .await;
    // Bob runs the voice channel later: the owner makes him an admin.
    ui.invoke("member_set_role", json!({ "userId": bob_id, "role": "admin" })).await.expect("bob made admin");

    ui.click("[data-testid=guide-create-channel]").await;
    ui.fill("input[name=channel-name]", "general").await;
    ui.click(".channel-dialog button[type=submit]").await;
    let general: ChannelId = wait_event(&mut bob_events, |e| match e {
        SessionEvent::Event(Event::ChannelCreate { channel }) if channel.name == "general" => {
            Some(channel.id)
        }
        _ => None,
    })
    .await;
    ui.wait_js("return document.querySelector('[data-testid=first-run]') === null", "the guide to give way")
        .await;

    // --- Send: what alice types reaches bob.
    open_channel(&ui, general, "#general").await;
    ui.type_into("[data-testid=composer]", "Hello from the desktop app\u{E007}").await;
    let sent = wait_message(&mut bob_events, "Hello from the desktop app").await;
    assert_eq!(sent.author_id, alice, "the message arrives as alice's");
    assert_eq!(sent.channel_id, general);

    // --- Receive: bob's message shows up; no notification while the window has the focus.
    ui.wait_js(
        "return document.querySelector('[data-testid=pending-message]') === null",
        "the sent message to be acknowledged",
    )
    .await;
    bob.send_message(general, "Hi Alice, this is the engine speaking", None).await.expect("bob sends");
    wait_text(&ui, "Hi Alice, this is the engine speaking").await;
    ui.screenshot(&artifacts.join("desktop-main.png")).await;

    // --- Notifications while another window has the focus: a mention and a DM.
    let _other_window = display.steal_focus();
    tokio::time::sleep(Duration::from_millis(500)).await;
    bob.send_message(general, &format!("<@{}> dinner is ready", alice.0), None).await.expect("mention");
    let dm = bob_engine.open_dm(vec![alice]).await.expect("bob opens a DM with alice");
    bob.send_message(dm.id, "psst, bring the cake", None).await.expect("dm");
    let recorded = wait_notifications(&notes, 2).await;
    assert!(
        recorded.iter().any(|n| n["channel_id"] == json!(general.to_string())
            && n["body"].as_str().is_some_and(|b| b.contains("dinner is ready"))),
        "a notification for the mention in #general: {recorded:?}"
    );
    assert!(
        recorded.iter().any(|n| n["channel_id"] == json!(dm.id.to_string())
            && n["body"].as_str().is_some_and(|b| b.contains("bring the cake"))),
        "a notification for the DM: {recorded:?}"
    );
    assert!(
        recorded.iter().all(|n| !n["body"].as_str().unwrap_or_default().contains("engine speaking")),
        "no notification for the message received while the window had the focus: {recorded:?}"
    );
    drop(_other_window);

    // --- Restart: the window is moved and resized (as a window manager does), the app quits,
    // bob writes meanwhile, and the app comes back logged in with history, where it was left.
    let moved = Geometry { x: 96, y: 64, width: 1010, height: 640 };
    let window = display.app_window().await;
    let first = display.geometry(&window);
    display.set_geometry(&window, moved);
    display.wait_geometry(&window, moved, "the moved and resized window").await;
    // The app writes it once the window has settled, whether or not it later exits cleanly
    // (tauri-driver ends it with a kill).
    wait_saved_geometry(&env.home.join(".config/org.hearth.desktop/.window-state.json"), moved).await;
    ui.close().await;
    wait_app_gone(&env).await;
    bob.send_message(general, "Written while you were away", None).await.expect("bob sends");
    wait_message(&mut bob_events, "Written while you were away").await;
    let ui = driver.open(&app).await;
    ui.wait_js(
        "return document.querySelector('[data-testid=me-name]')?.textContent === 'Alice'",
        "the saved session after a restart",
    )
    .await;
    let window = display.app_window().await;
    display.wait_geometry(&window, moved, "the window where it was left before the restart").await;
    // Back to the first geometry: the steps below run in the window they were written for.
    display.set_geometry(&window, first);
    display.wait_geometry(&window, first, "the window back at its first geometry").await;
    open_channel(&ui, general, "#general").await;
    for text in [
        "Hello from the desktop app",
        "Hi Alice, this is the engine speaking",
        "dinner is ready",
        "Written while you were away",
    ] {
        wait_text(&ui, text).await;
    }
    ui.screenshot(&artifacts.join("desktop-after-restart.png")).await;

    // --- A link to a message: copied from bob's message, pasted into the composer and sent;
    // bob passes it on in their DM; clicked there, it opens #general at the message.
    let target = ui
        .js("return [...document.querySelectorAll('[data-testid=message]')]\
             .find(m => m.textContent.includes('this is the engine speaking'))?.dataset.messageId ?? null")
        .await;
    let target = target.as_str().expect("bob's message in the pane").to_string();
    // The message's actions show while the pointer is over it.
    ui.hover(&format!("[data-message-id=\"{target}\"]")).await;
    ui.click(&format!("[data-message-id=\"{target}\"] [data-testid=copy-message-link]")).await;
    ui.wait_js(
        "return document.querySelector('[role=status]')?.textContent === 'Link to the message copied.'",
        "the link to be copied",
    )
    .await;
    ui.type_into("[data-testid=composer]", "that one: ").await;
    // Ctrl+V (WebDriver's Control key, v, then all keys up) pastes what Copy link put on the
    // clipboard.
    ui.type_into("[data-testid=composer]", "\u{E009}v\u{E000}\u{E007}").await;
    let pasted = wait_event(&mut bob_events, |e| match e {
        SessionEvent::Event(Event::MessageCreate { message, .. })
            if message.content.starts_with("that one: ") =>
        {
            Some(message.content.clone())
        }
        _ => None,
    })
    .await;
    let message_link = pasted.trim_start_matches("that one: ").to_string();
    let parsed = url::Url::parse(&message_link).expect("the pasted link is a URL");
    let params: std::collections::HashMap<_, _> = parsed.query_pairs().into_owned().collect();
    assert_eq!((parsed.scheme(), parsed.host_str()), ("hearth", Some("message")), "{message_link}");
    assert_eq!(params.get("server"), Some(&server.url()), "{message_link}");
    assert_eq!(params.get("channel"), Some(&general.to_string()), "{message_link}");
    assert_eq!(params.get("message"), Some(&target), "{message_link}");
    bob.send_message(dm.id, &format!("the message you meant: {message_link}"), None)
        .await
        .expect("bob sends");
    open_channel(&ui, dm.id, "bob").await;
    ui.click("[data-testid=message] a.app-link").await;
    ui.wait_js(
        &format!(
            "return document.querySelector('[data-testid=channel-title]')?.textContent.includes('#general') \
             && document.querySelector('[data-message-id=\"{target}\"]')?.classList.contains('highlight') === true"
        ),
        "the jump to the linked message",
    )
    .await;
    ui.screenshot(&artifacts.join("desktop-message-link.png")).await;
    // The same link opened from outside the app (a second start hands it over).
    open_channel(&ui, dm.id, "bob").await;
    hand_over_link(&app, &env, &message_link).await;
    ui.wait_js(
        &format!(
            "return document.querySelector('[data-testid=channel-title]')?.textContent.includes('#general') \
             && document.querySelector('[data-message-id=\"{target}\"]')?.classList.contains('highlight') === true"
        ),
        "the jump to the message linked from outside",
    )
    .await;

    drop_step(&ui, &bob_engine, &mut bob_events, general, &env.home).await;

    voice_step(&ui, &bob_engine, alice).await;

    // --- The main flow's second half: another invite from the app, its link copied, handed to
    // the running app by a second start (as the system does with a clicked link), and a new
    // member registers in the same window.
    ui.click("[data-testid=server-settings]").await;
    ui.click("button[data-tab=invites]").await;
    let second_invite = create_and_copy_invite(&ui).await;
    close_server_settings(&ui).await;
    hand_over_link(&app, &env, &second_invite).await;
    ui.wait_js(
        "return document.querySelector('input[name=invite]')?.value?.length > 0",
        "the running app to open the join link",
    )
    .await;
    let code = ui.js("return document.querySelector('input[name=invite]').value").await;
    assert!(
        code.as_str().is_some_and(|c| second_invite.ends_with(&format!("code={c}"))),
        "the link's invite code is filled in: {code}"
    );
    ui.fill("input[name=username]", "carol").await;
    ui.fill("input[name=display-name]", "Carol").await;
    ui.fill("input[name=password]", PASSWORD).await;
    ui.click("form button[type=submit]").await;
    ui.wait_js(
        "return document.querySelector('[data-testid=me-name]')?.textContent === 'Carol'",
        "carol's main view",
    )
    .await;
    let carol = wait_event(&mut bob_events, |e| match e {
        SessionEvent::Event(Event::MemberAdd { user }) if user.username == "carol" => Some(user.id),
        _ => None,
    })
    .await;
    open_channel(&ui, general, "#general").await;
    wait_text(&ui, "Hello from the desktop app").await;
    for who in [alice, bob_id] {
        ui.wait_js(
            &format!("return document.querySelector('.member[data-user-id=\"{who}\"]') !== null"),
            "alice and bob in carol's member list",
        )
        .await;
    }
    ui.type_into("[data-testid=composer]", "Carol here, thanks for the invite\u{E007}").await;
    let hello = wait_message(&mut bob_events, "Carol here, thanks for the invite").await;
    assert_eq!(hello.author_id, carol, "the message arrives as carol's");
    ui.screenshot(&artifacts.join("desktop-joined.png")).await;

    autostart_step(&driver, &app, ui, &env, &display, "Carol").await;
    bob.shutdown();
    server.stop().await;
}

/// "Start with the system": turning it on writes the login item, an XDG autostart entry that
/// starts Hearth with `--minimised`; started that way the app opens no window (it waits in the
/// tray, its page loaded and its session online) until Hearth is started again, which shows it;
/// turning it off removes the entry. `me`: the display name of the account in use. Quits the app
/// at the end.
async fn autostart_step(
    driver: &TauriDriver,
    app: &Path,
    ui: WebDriverSession,
    env: &AppEnv,
    display: &Xvfb,
    me: &str,
) {
    let autostart_dir = env.home.join(".config/autostart");
    assert_eq!(ui.invoke("autostart_get", json!({})).await, Ok(json!(false)), "off until turned on");
    ui.invoke("autostart_set", json!({ "enabled": true })).await.expect("turning autostart on");
    assert_eq!(ui.invoke("autostart_get", json!({})).await, Ok(json!(true)));
    let entries: Vec<PathBuf> = std::fs::read_dir(&autostart_dir)
        .expect("the XDG autostart directory")
        .map(|e| e.expect("dir entry").path())
        .collect();
    let [entry_path] = entries.as_slice() else { panic!("one autostart entry, found {entries:?}") };
    let entry = std::fs::read_to_string(entry_path).expect("the autostart entry");
    let exec = entry.lines().find_map(|l| l.strip_prefix("Exec=")).expect("an Exec line");
    let exec: Vec<&str> = exec.split_whitespace().collect();
    assert_eq!(
        exec.first().map(|program| Path::new(program).canonicalize().expect("the entry's program")),
        Some(app.canonicalize().expect("the app")),
        "the entry starts this app: {entry}"
    );
    assert_eq!(exec[1..], ["--minimised"], "{entry}");
    ui.close().await;
    wait_app_gone(env).await;

    // The start the login item makes: no window, but the app runs and goes online.
    let ui = driver.open_with_args(app, &exec[1..]).await;
    ui.wait_js(
        &format!("return document.querySelector('[data-testid=me-name]')?.textContent === {}", json!(me)),
        "the saved session in the minimised app",
    )
    .await;
    assert_eq!(display.visible_app_windows(), Vec::<String>::new(), "started minimised: no window");
    // Starting Hearth again (from the menu, or the tray's "Show Hearth") brings the window up.
    start_again(app, env, &[]).await;
    display.app_window().await;

    ui.invoke("autostart_set", json!({ "enabled": false })).await.expect("turning autostart off");
    assert!(!entry_path.exists(), "the autostart entry is removed");
    assert_eq!(ui.invoke("autostart_get", json!({})).await, Ok(json!(false)));
    ui.close().await;
}

/// Waits until the app that was quit has let go of its single-instance name on the test's
/// session bus: a start before that would hand over to it and exit instead of starting.
async fn wait_app_gone(env: &AppEnv) {
    let deadline = Instant::now() + WAIT;
    loop {
        let out = Command::new("dbus-send")
            .args(["--session", "--print-reply", "--dest=org.freedesktop.DBus", "/org/freedesktop/DBus"])
            .arg("org.freedesktop.DBus.ListNames")
            .env("DBUS_SESSION_BUS_ADDRESS", &env.bus)
            .output()
            .expect("dbus-send (Debian package dbus)");
        let names = String::from_utf8_lossy(&out.stdout);
        if out.status.success() && !names.contains(".SingleInstance") {
            return;
        }
        assert!(Instant::now() < deadline, "the app still runs after quitting: {names}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the window-state file (tauri-plugin-window-state's) holds `want` for the main
/// window.
async fn wait_saved_geometry(path: &Path, want: Geometry) {
    let deadline = Instant::now() + WAIT;
    loop {
        let saved = std::fs::read(path).ok().and_then(|b| serde_json::from_slice::<Value>(&b).ok());
        let main = saved.as_ref().map(|s| &s["main"]);
        let geometry = main.and_then(|m| {
            Some(Geometry {
                x: i32::try_from(m["x"].as_i64()?).ok()?,
                y: i32::try_from(m["y"].as_i64()?).ok()?,
                width: u32::try_from(m["width"].as_u64()?).ok()?,
                height: u32::try_from(m["height"].as_u64()?).ok()?,
            })
        });
        if geometry == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the window's geometry {want:?} was not written to {}: {saved:?}",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// In the server settings' Invites tab (open): creates an invite, presses its Copy button and
/// returns the app link the dialog shows.
async fn create_and_copy_invite(ui: &WebDriverSession) -> String {
    // A click that lands while the tab is still loading does nothing (seen once in five runs on
    // a loaded machine): pressed again until the new invite's link shows.
    let deadline = Instant::now() + WAIT;
    loop {
        ui.click("form.invite-form button[type=submit]").await;
        let shown = Instant::now() + Duration::from_secs(3);
        while Instant::now() < shown
            && ui.js("return document.querySelector('[data-testid=copy-invite-app-link]') !== null").await != json!(true)
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if ui.js("return document.querySelector('[data-testid=copy-invite-app-link]') !== null").await == json!(true) {
            break;
        }
        assert!(Instant::now() < deadline, "creating an invite in the app never showed its link");
    }
    ui.click("[data-testid=copy-invite-app-link]").await;
    ui.wait_js(
        "return document.querySelector('[data-testid=copy-invite-app-link]')?.textContent.trim() === 'Copied'",
        "the invite link to be copied",
    )
    .await;
    let link = ui.js("return document.querySelector('[data-testid=invite-app-link]').value").await;
    let link = link.as_str().expect("the invite link").to_string();
    assert!(link.starts_with("hearth://join?"), "an app link: {link}");
    link
}

/// Starts the app a second time with `link`, as the system does when a `hearth://` link is
/// opened: it hands the link to the running app and exits.
async fn hand_over_link(app: &Path, env: &AppEnv, link: &str) {
    start_again(app, env, &[link]).await;
}

/// A second start of the app with `args`: it hands over to the running app (single instance)
/// and exits cleanly.
async fn start_again(app: &Path, env: &AppEnv, args: &[&str]) {
    let mut second = Command::new(app);
    env.apply(&mut second);
    let status = tokio::time::timeout(WAIT, tokio::process::Command::from(second).args(args).status())
        .await
        .expect("the second start exits promptly")
        .expect("the second start runs");
    assert!(status.success(), "the second start handed over and exited cleanly: {status}");
}

async fn close_server_settings(ui: &WebDriverSession) {
    ui.click(".server-settings .dialog-header button.icon-button").await;
    ui.wait_js("return document.querySelector('.server-settings') === null", "the server settings to close")
        .await;
}

/// A 20 MiB file dropped onto the composer goes to the shell in raw pieces (not a JSON array),
/// is uploaded and sent; bob receives it byte for byte, and nothing staged is left behind.
async fn drop_step(
    ui: &WebDriverSession,
    bob_engine: &Engine,
    bob_events: &mut broadcast::Receiver<SessionEvent>,
    general: ChannelId,
    home: &Path,
) {
    const SIZE: usize = (20 << 20) + 3;
    let expected: Vec<u8> = (0..SIZE).map(|i| ((i * 7 + (i >> 13)) & 255) as u8).collect();
    let accepted = ui.js(&format!(
        "const size = {SIZE}; const bytes = new Uint8Array(size); \
         for (let i = 0; i < size; i++) bytes[i] = (i * 7 + (i >> 13)) & 255; \
         const file = new File([bytes], 'clip.bin', {{ type: 'application/octet-stream' }}); \
         const drop = new Event('drop', {{ bubbles: true, cancelable: true }}); \
         Object.defineProperty(drop, 'dataTransfer', {{ value: {{ types: ['Files'], items: [], files: [file] }} }}); \
         document.querySelector('[data-testid=composer-area]').dispatchEvent(drop); \
         return drop.defaultPrevented;"
    ))
    .await;
    // (A synthetic drop: WebKitGTK's DataTransfer cannot be filled from a script; the page's
    // handler reads `types` and `files` as it does from a real one.)
    assert_eq!(accepted, json!(true), "the composer takes the dropped file");
    ui.wait_js(
        "return document.querySelector('[data-testid=upload][data-done=true]') !== null",
        "the dropped file to be uploaded",
    )
    .await;
    ui.type_into("[data-testid=composer]", "the clip\u{E007}").await;
    let message = wait_message(bob_events, "the clip").await;
    assert_eq!(message.channel_id, general);
    let [attachment] = message.attachments.as_slice() else {
        panic!("one attachment with the message: {message:?}")
    };
    assert_eq!((attachment.name.as_str(), attachment.size), ("clip.bin", SIZE as u64));
    let got = bob_engine.attachment_bytes(attachment.id, SIZE as u64).await.expect("bob downloads the clip");
    assert!(got == expected, "the clip arrives byte for byte ({} bytes)", got.len());
    fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() { files_under(&path, out) } else { out.push(path) }
        }
    }
    let mut files = Vec::new();
    files_under(home, &mut files);
    let staged: Vec<_> =
        files.iter().filter(|p| p.components().any(|c| c.as_os_str() == "upload-tmp")).collect();
    assert!(staged.is_empty(), "nothing staged is left: {staged:?}");
}

/// Bob waits in a voice channel, speaking; alice joins from the UI, sees the call connected
/// with bob's link and bob's speaking ring, is heard by bob, and hangs up.
async fn voice_step(ui: &WebDriverSession, bob_engine: &Engine, alice: UserId) {
    let lounge =
        bob_engine.create_channel("lounge", ChannelKind::Voice).await.expect("create a voice channel").id;
    // Wildcard binding (the app's own), so that bob and the app find each other on any
    // interface. Bob says a minute of synthetic speech.
    let mouth = PcmSource::new(synth::utterance(&synth::Voice::speaker(1), 60.0));
    let bob_voice = bob_engine
        .join_voice(
            lounge,
            CallConfig::new(Vec::new()),
            VoiceSettings::default(),
            Box::new(mouth),
            Box::new(PcmSink::new()),
        )
        .await
        .expect("bob joins the voice channel");
    let bob_id = bob_engine.session().expect("bob's session").user().expect("bob's user").id;
    let mut bob_hears = bob_voice.subscribe();

    let button = format!("button[data-voice-channel-id=\"{lounge}\"]");
    ui.click(&button).await;
    ui.wait_js(
        "return document.querySelector('[data-testid=voice-state]')?.classList.contains('connected') === true",
        "the voice panel to show the call connected",
    )
    .await;
    ui.wait_js(
        &format!(
            "const b = document.querySelector('.voice-links li[data-user-id=\"{bob_id}\"] .quality-bars'); \
             return !!b && b.dataset.grade !== 'pending'"
        ),
        "bob's link quality in the voice panel",
    )
    .await;
    ui.wait_js(
        &format!(
            "return document.querySelector('[data-testid=voice-members-{lounge}] li[data-user-id=\"{bob_id}\"]')\
             ?.dataset.speaking === 'true'"
        ),
        "bob's speaking ring",
    )
    .await;
    ui.screenshot(&artifacts_dir().join("desktop-voice.png")).await;
    // The app's synthetic voice reaches bob and is heard as alice speaking.
    wait_voice(
        &mut bob_hears,
        |e| matches!(e, VoiceEvent::PeerSpeaking { user_id, speaking: true } if *user_id == alice),
    )
    .await;

    // Push-to-talk through the X server: with the key registered and up, alice goes quiet at
    // bob; held down (XTEST, as a keyboard would), she is heard again; released, quiet.
    let refused = ui.invoke("voice_settings_set", json!({ "settings": ptt_settings("Control+Nope") })).await;
    assert_eq!(refused.err().map(|e| e["code"].clone()), Some(json!("invalid_shortcut")));
    ui.invoke("voice_settings_set", json!({ "settings": ptt_settings("Control+Shift+KeyV") }))
        .await
        .expect("push-to-talk on Control+Shift+KeyV");
    // Events from before the switch are still queued (alice pausing and starting again in
    // her synthetic speech); audio in flight when the gate shut plays out within the jitter
    // buffer's delay plus the VAD's hangover. Wait past both, then go by the latest state.
    tokio::time::sleep(Duration::from_secs(1)).await;
    if alice_speaking_after_queued(&mut bob_hears, alice) {
        wait_alice_speaking(&mut bob_hears, alice, false).await;
    }
    // Longer than the synthetic voice's cycle (3 s of speech, 1 s of silence): the gate is shut.
    assert_silent(&mut bob_hears, alice, Duration::from_secs(5)).await;
    ui.display_key("keydown", "ctrl+shift+v");
    wait_alice_speaking(&mut bob_hears, alice, true).await;
    ui.display_key("keyup", "ctrl+shift+v");
    wait_alice_speaking(&mut bob_hears, alice, false).await;

    ui.click(".voice-leave").await;
    ui.wait_js(
        "return document.querySelector('[data-testid=voice-panel]') === null",
        "the voice panel to close",
    )
    .await;
    wait_voice(&mut bob_hears, |e| matches!(e, VoiceEvent::PeerLeft { user_id } if *user_id == alice)).await;
    bob_voice.leave().await;
}

fn ptt_settings(key: &str) -> Value {
    json!({
        "input_device": null, "output_device": null, "input_mode": "push_to_talk", "ptt_key": key,
        "input_threshold_dbfs": -50, "noise_suppression": true, "echo_cancellation": true,
        "sounds": true, "user_volumes": {}
    })
}

async fn wait_alice_speaking(events: &mut broadcast::Receiver<VoiceEvent>, alice: UserId, speaking: bool) {
    wait_voice(events, |e| {
        matches!(e, VoiceEvent::PeerSpeaking { user_id, speaking: s } if *user_id == alice && *s == speaking)
    })
    .await;
}

/// Empties the queue of `events`; whether alice was last reported speaking (`true` if the
/// queue says nothing about her: the wait before it ended on her speaking).
fn alice_speaking_after_queued(events: &mut broadcast::Receiver<VoiceEvent>, alice: UserId) -> bool {
    let mut speaking = None;
    loop {
        match events.try_recv() {
            Ok(VoiceEvent::PeerSpeaking { user_id, speaking: s }) if user_id == alice => speaking = Some(s),
            Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) => {}
            Err(broadcast::error::TryRecvError::Empty) => return speaking.unwrap_or(true),
            Err(broadcast::error::TryRecvError::Closed) => panic!("bob's call ended"),
        }
    }
}

/// Bob does not hear alice start speaking for `period` (a check that something does not
/// happen has to take some time).
async fn assert_silent(events: &mut broadcast::Receiver<VoiceEvent>, alice: UserId, period: Duration) {
    let until = tokio::time::Instant::now() + period;
    loop {
        match tokio::time::timeout_at(until, events.recv()).await {
            Err(_) => return,
            Ok(Ok(VoiceEvent::PeerSpeaking { user_id, speaking: true })) if user_id == alice => {
                panic!("bob hears alice although her push-to-talk key is up")
            }
            Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(broadcast::error::RecvError::Closed)) => panic!("bob's call ended"),
        }
    }
}

async fn wait_voice(events: &mut broadcast::Receiver<VoiceEvent>, mut pred: impl FnMut(&VoiceEvent) -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Err(_) => panic!("timed out waiting for a voice event at bob"),
            Ok(Ok(event)) if pred(&event) => return,
            Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(broadcast::error::RecvError::Closed)) => panic!("bob's call ended"),
        }
    }
}

async fn open_channel(ui: &WebDriverSession, channel: ChannelId, title: &str) {
    let button = format!("button[data-channel-id=\"{channel}\"]");
    ui.wait_js(&format!("return document.querySelector('{button}') !== null"), "the channel in the list")
        .await;
    ui.click(&button).await;
    ui.wait_js(
        &format!(
            "return document.querySelector('[data-testid=channel-title]')?.textContent.includes({})",
            json!(title)
        ),
        title,
    )
    .await;
}

async fn wait_text(ui: &WebDriverSession, text: &str) {
    ui.wait_js(
        &format!(
            "return [...document.querySelectorAll('[data-testid=message]')].some(m => m.textContent.includes({}))",
            json!(text)
        ),
        text,
    )
    .await;
}

async fn wait_message(events: &mut broadcast::Receiver<SessionEvent>, content: &str) -> Message {
    wait_event(events, |e| match e {
        SessionEvent::Event(Event::MessageCreate { message, .. }) if message.content == content => {
            Some(message.clone())
        }
        _ => None,
    })
    .await
}

async fn wait_event<T>(
    events: &mut broadcast::Receiver<SessionEvent>,
    mut pred: impl FnMut(&SessionEvent) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Err(_) => panic!("timed out waiting for an event at bob"),
            Ok(Ok(event)) => {
                if let Some(t) = pred(&event) {
                    return t;
                }
            }
            Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(broadcast::error::RecvError::Closed)) => panic!("bob's session ended"),
        }
    }
}

/// Waits until the notification log has at least `count` entries and returns them.
async fn wait_notifications(path: &Path, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let lines: Vec<Value> = std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a notification record is JSON"))
            .collect();
        if lines.len() >= count {
            return lines;
        }
        assert!(Instant::now() < deadline, "expected {count} notifications, got {lines:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn artifacts_dir() -> PathBuf {
    let dir = std::env::var_os("HEARTH_E2E_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/e2e-artifacts"));
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

/// A directory removed when dropped.
/// A child process in a process group of its own; the whole group is killed when dropped
/// (tauri-driver's WebKitWebDriver and the app with it).
struct Process(Child);

impl Process {
    fn spawn(command: &mut Command) -> std::io::Result<Process> {
        use std::os::unix::process::CommandExt;
        command.process_group(0).spawn().map(Process)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _best_effort = Command::new("kill").args(["-KILL", "--", &group]).stderr(Stdio::null()).status();
        let _already_gone = self.0.kill();
        let _reaped = self.0.wait();
    }
}

/// The real server, in-process on loopback.
struct Server {
    data_dir: PathBuf,
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Server {
    async fn start(data_dir: &Path) -> Server {
        let options = Options {
            data_dir: Some(data_dir.to_path_buf()),
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            argon2_concurrency: Some(2),
            ..Options::default()
        };
        let config = Config::resolve(options).expect("server config");
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(hearth_server::serve(config, shutdown.clone()));
        let deadline = Instant::now() + WAIT;
        let addr = loop {
            if let Ok(text) = std::fs::read_to_string(data_dir.join("server.addr"))
                && let Ok(addr) = text.trim().parse()
            {
                break addr;
            }
            assert!(!task.is_finished(), "the server ended during start");
            assert!(Instant::now() < deadline, "the server did not start");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        Server { data_dir: data_dir.to_path_buf(), addr, shutdown, task }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn setup_token(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("setup-token")).expect("setup token").trim().to_string()
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.expect("server task").expect("server ran");
    }
}

/// A virtual X display of its own (Xvfb picks a free display number).
struct Xvfb {
    name: String,
    _process: Process,
}

impl Xvfb {
    fn start() -> Xvfb {
        let mut process = Process::spawn(
            Command::new("Xvfb")
                .args(["-displayfd", "1", "-screen", "0", "1280x800x24", "-nolisten", "tcp"])
                .stdout(Stdio::piped())
                .stderr(Stdio::null()),
        )
        .expect("Xvfb (Debian package xvfb)");
        let mut line = String::new();
        BufReader::new(process.0.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("display number");
        let number: u32 = line.trim().parse().unwrap_or_else(|_| panic!("Xvfb printed {line:?}"));
        Xvfb { name: format!(":{number}"), _process: process }
    }

    /// Opens another window and gives it the keyboard focus, as when the user switches to
    /// another program. The window closes when the returned process is dropped.
    fn steal_focus(&self) -> Process {
        let clock = Process::spawn(
            Command::new("xclock")
                .args(["-name", "hearth-e2e-other"])
                .env("DISPLAY", &self.name)
                .stderr(Stdio::null()),
        )
        .expect("xclock (Debian package x11-apps)");
        let status = Command::new("xdotool")
            .args(["search", "--sync", "--classname", "hearth-e2e-other", "windowfocus", "--sync"])
            .env("DISPLAY", &self.name)
            .status()
            .expect("xdotool (Debian package xdotool)");
        assert!(status.success(), "xdotool could not focus the other window");
        clock
    }
}

/// A window's outer position and size on the X display, in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Geometry {
    x: i32,
    y: i32,
    width: u32,
    height: u32,
}

impl Xvfb {
    /// The X window ids of the app's visible windows (titled "Hearth").
    fn visible_app_windows(&self) -> Vec<String> {
        let found = Command::new("xdotool")
            .args(["search", "--onlyvisible", "--name", "^Hearth$"])
            .env("DISPLAY", &self.name)
            .output()
            .expect("xdotool (Debian package xdotool)");
        String::from_utf8_lossy(&found.stdout).split_whitespace().map(str::to_string).collect()
    }

    /// The X window id of the app's visible main window, waiting for it.
    async fn app_window(&self) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let ids = self.visible_app_windows();
            match ids.as_slice() {
                [id] => return id.clone(),
                [] if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
                _ => panic!("expected one visible window titled Hearth, found {ids:?}"),
            }
        }
    }

    /// Moves and resizes a window from outside, as a window manager does for the user's drag.
    fn set_geometry(&self, window: &str, to: Geometry) {
        let status = Command::new("xdotool")
            .args(["windowmove", "--sync", window, &to.x.to_string(), &to.y.to_string()])
            .args(["windowsize", "--sync", window, &to.width.to_string(), &to.height.to_string()])
            .env("DISPLAY", &self.name)
            .status()
            .expect("xdotool (Debian package xdotool)");
        assert!(status.success(), "xdotool could not move and resize window {window}");
    }

    fn geometry(&self, window: &str) -> Geometry {
        let out = Command::new("xdotool")
            .args(["getwindowgeometry", "--shell", window])
            .env("DISPLAY", &self.name)
            .output()
            .expect("xdotool (Debian package xdotool)");
        let text = String::from_utf8_lossy(&out.stdout);
        let value = |key: &str| -> i64 {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
                .unwrap_or_else(|| panic!("no {key} in xdotool's answer: {text}"))
        };
        Geometry {
            x: value("X") as i32,
            y: value("Y") as i32,
            width: value("WIDTH") as u32,
            height: value("HEIGHT") as u32,
        }
    }

    /// Waits until the window has the geometry `want` (the app applies it asynchronously).
    async fn wait_geometry(&self, window: &str, want: Geometry, what: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let now = self.geometry(window);
            if now == want {
                return;
            }
            assert!(Instant::now() < deadline, "{what}: expected {want:?}, the window is at {now:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A D-Bus session bus of our own: the app finds its running instance on it (single instance).
struct SessionBus {
    address: String,
    _process: Process,
}

impl SessionBus {
    fn start() -> SessionBus {
        let mut process = Process::spawn(
            Command::new("dbus-daemon")
                .args(["--session", "--nofork", "--print-address=1"])
                .stdout(Stdio::piped())
                .stderr(Stdio::null()),
        )
        .expect("dbus-daemon (Debian package dbus)");
        let mut address = String::new();
        BufReader::new(process.0.stdout.take().expect("stdout"))
            .read_line(&mut address)
            .expect("bus address");
        assert!(address.starts_with("unix:"), "dbus-daemon printed {address:?}");
        SessionBus { address: address.trim().to_string(), _process: process }
    }
}

/// What every start of the app gets: the display, the session bus, a home directory of its
/// own and the notification log.
struct AppEnv {
    display: String,
    bus: String,
    home: PathBuf,
    notes: PathBuf,
}

impl AppEnv {
    fn apply(&self, command: &mut Command) {
        command
            .env("DISPLAY", &self.display)
            .env("DBUS_SESSION_BUS_ADDRESS", &self.bus)
            .env("HOME", &self.home)
            .env("XDG_DATA_HOME", self.home.join(".local/share"))
            .env("XDG_CONFIG_HOME", self.home.join(".config"))
            .env("XDG_CACHE_HOME", self.home.join(".cache"))
            .env("HEARTH_NOTIFY_RECORD", &self.notes)
            // No sound card here: calls use a synthetic voice and a speaker that discards.
            .env("HEARTH_AUDIO", "synthetic")
            .env_remove("WAYLAND_DISPLAY");
    }
}

/// tauri-driver (which runs WebKitWebDriver, which runs the app) with the app's environment:
/// the display, a home directory of its own and the notification log.
struct TauriDriver {
    url: String,
    http: reqwest::Client,
    display: String,
    _process: Process,
}

impl TauriDriver {
    fn start(env: &AppEnv) -> TauriDriver {
        let program = std::env::var_os("HEARTH_TAURI_DRIVER").unwrap_or_else(|| "tauri-driver".into());
        let port = free_port();
        // The app's log is kept beside the screenshots.
        let log = artifacts_dir().join("desktop-app.log");
        let _fresh = std::fs::remove_file(&log);
        let mut command = Command::new(&program);
        command
            .args(["--port", &port.to_string(), "--native-port", &free_port().to_string()])
            .env("HEARTH_LOG", std::env::var("HEARTH_LOG").unwrap_or_else(|_| "info".into()))
            .env("HEARTH_LOG_FILE", &log)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        env.apply(&mut command);
        let process = Process::spawn(&mut command).unwrap_or_else(|e| {
            panic!("cannot start {} (cargo install tauri-driver): {e}", program.display())
        });
        TauriDriver {
            url: format!("http://127.0.0.1:{port}"),
            // A WebDriver command that never answers (WebKit has hung taking a screenshot)
            // fails the test instead of stalling CI.
            http: reqwest::Client::builder().timeout(2 * WAIT).build().expect("an HTTP client"),
            display: env.display.clone(),
            _process: process,
        }
    }

    /// Starts the app and returns its WebDriver session once the UI has loaded.
    async fn open(&self, app: &Path) -> WebDriverSession {
        self.open_with_args(app, &[]).await
    }

    /// Starts the app with command-line arguments.
    async fn open_with_args(&self, app: &Path, args: &[&str]) -> WebDriverSession {
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "tauri:options": { "application": app, "args": args }
        }}});
        let deadline = Instant::now() + WAIT;
        let value = loop {
            match self.http.post(format!("{}/session", self.url)).json(&capabilities).send().await {
                Ok(response) => match response_value(response).await {
                    Ok(value) => break value,
                    // WebKitWebDriver not ready yet (or its port taken a moment by another
                    // process on a busy machine): the session is asked for again.
                    Err(e) if Instant::now() < deadline => {
                        eprintln!("a new WebDriver session was refused, trying again: {e}");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    Err(e) => panic!("a new WebDriver session: {e}"),
                },
                // tauri-driver is still starting.
                Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
                Err(e) => panic!("tauri-driver: {e}"),
            }
        };
        let id = value["sessionId"].as_str().expect("sessionId").to_string();
        let session = WebDriverSession {
            base: format!("{}/session/{id}", self.url),
            http: self.http.clone(),
            display: self.display.clone(),
        };
        session
            .wait_js(
                "return document.readyState === 'complete' && !!document.querySelector('#app, body > *')",
                "the UI to load",
            )
            .await;
        session
    }
}

async fn response_value(response: reqwest::Response) -> Result<Value, String> {
    let status = response.status();
    let body: Value = response.json().await.map_err(|e| format!("WebDriver reply: {e}"))?;
    if status.is_success() { Ok(body["value"].clone()) } else { Err(format!("WebDriver {status}: {body}")) }
}

/// The key under which W3C WebDriver names an element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One W3C WebDriver session: just the commands this test needs.
struct WebDriverSession {
    base: String,
    http: reqwest::Client,
    /// The X display the app runs on.
    display: String,
}

impl WebDriverSession {
    async fn post(&self, path: &str, body: Value) -> Result<Value, String> {
        let response = self.http.post(format!("{}{path}", self.base)).json(&body).send().await;
        response_value(response.map_err(|e| e.to_string())?).await
    }

    async fn js(&self, script: &str) -> Value {
        self.post("/execute/sync", json!({ "script": script, "args": [] })).await.expect("script runs")
    }

    /// Polls `script` until it returns true.
    async fn wait_js(&self, script: &str, what: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(Value::Bool(true)) =
                self.post("/execute/sync", json!({ "script": script, "args": [] })).await
            {
                return;
            }
            if Instant::now() > deadline {
                let path = artifacts_dir().join("desktop-failure.png");
                self.screenshot(&path).await;
                let text = self.js("return document.body.innerText").await;
                panic!("timed out waiting for {what}; screen in {}; text:\n{text}", path.display());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The element `css` selects, waiting for it to appear.
    async fn element(&self, css: &str) -> String {
        self.wait_js(&format!("return document.querySelector({}) !== null", json!(css)), css).await;
        let found = self
            .post("/element", json!({ "using": "css selector", "value": css }))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"));
        let (_, id) = found.as_object().and_then(|o| o.iter().next()).expect("an element reference");
        id.as_str().expect("element id").to_string()
    }

    async fn click(&self, css: &str) {
        let id = self.element(css).await;
        self.post(&format!("/element/{id}/click"), json!({}))
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Moves the pointer over the element (`:hover` applies).
    async fn hover(&self, css: &str) {
        let id = self.element(css).await;
        let pointer = json!({
            "type": "pointer", "id": "mouse", "parameters": { "pointerType": "mouse" },
            "actions": [{ "type": "pointerMove", "duration": 0, "x": 0, "y": 0,
                          "origin": { (ELEMENT_KEY): id } }],
        });
        self.post("/actions", json!({ "actions": [pointer] }))
            .await
            .unwrap_or_else(|e| panic!("hover {css}: {e}"));
    }

    /// Types `text` (WebDriver key codes such as U+E007 Enter allowed) into the element.
    async fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css).await;
        self.post(&format!("/element/{id}/value"), json!({ "text": text }))
            .await
            .unwrap_or_else(|e| panic!("typing into {css}: {e}"));
    }

    async fn fill(&self, css: &str, text: &str) {
        let id = self.element(css).await;
        self.post(&format!("/element/{id}/clear"), json!({}))
            .await
            .unwrap_or_else(|e| panic!("clear {css}: {e}"));
        self.type_into(css, text).await;
    }

    /// Calls a Tauri command from the page as the UI does; `Err` holds the rejection.
    async fn invoke(&self, command: &str, args: Value) -> Result<Value, Value> {
        let script = "const done = arguments[arguments.length - 1]; \
            window.__TAURI_INTERNALS__.invoke(arguments[0], arguments[1]) \
              .then(v => done({ ok: v ?? null }), e => done({ err: e }));";
        let reply = self
            .post("/execute/async", json!({ "script": script, "args": [command, args] }))
            .await
            .unwrap_or_else(|e| panic!("invoke {command}: {e}"));
        match reply.get("err") {
            Some(err) => Err(err.clone()),
            None => Ok(reply["ok"].clone()),
        }
    }

    /// Presses or releases keys on the app's X display (`xdotool keydown|keyup`).
    fn display_key(&self, action: &str, keys: &str) {
        let status = Command::new("xdotool")
            .args([action, keys])
            .env("DISPLAY", &self.display)
            .status()
            .expect("xdotool (Debian package xdotool)");
        assert!(status.success(), "xdotool {action} {keys}");
    }

    async fn screenshot(&self, path: &Path) {
        let response = self.http.get(format!("{}/screenshot", self.base)).send().await.expect("screenshot");
        let value = response_value(response).await.expect("screenshot");
        let png = base64::engine::general_purpose::STANDARD
            .decode(value.as_str().expect("base64 PNG"))
            .expect("screenshot is base64");
        assert!(png.starts_with(b"\x89PNG"), "the screenshot is a PNG");
        std::fs::write(path, png).expect("writing the screenshot");
    }

    /// Ends the session, which quits the app.
    async fn close(self) {
        let response = self.http.delete(&self.base).send().await.expect("delete session");
        response_value(response).await.expect("the session ends");
    }
}
