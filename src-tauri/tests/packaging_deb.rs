//! The Linux package: the .deb the Tauri bundler makes (scripts/package.sh deb). Its control
//! data names the package and the libraries it needs, and apt can resolve them on this system;
//! unpacked, it holds the binary, a desktop entry that registers `hearth://` links
//! (`x-scheme-handler/hearth`, so a clicked invite opens the installed app) and the icon in
//! every size; the packaged binary starts and shows its window (under Xvfb).
//!
//! Needs `HEARTH_DEB` (the .deb) and xvfb-run. `scripts/test.sh` builds and runs it; a plain
//! `cargo test` skips it (ignored).

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::os::unix::process::CommandExt as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use common::TempDir;

fn deb() -> PathBuf {
    let deb = PathBuf::from(std::env::var_os("HEARTH_DEB").expect("HEARTH_DEB must name the .deb (scripts/package.sh)"));
    assert!(deb.is_file(), "{} is not a file", deb.display());
    deb
}

fn output(command: &mut Command) -> String {
    let out = command.output().unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(out.status.success(), "{command:?}: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

fn field(deb: &Path, name: &str) -> String {
    output(Command::new("dpkg-deb").arg("--field").arg(deb).arg(name)).trim().to_string()
}

fn unpack(deb: &Path) -> TempDir {
    let dir = TempDir::new("deb");
    output(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&dir.0));
    dir
}

#[test]
#[ignore = "needs the .deb: scripts/test.sh builds it and runs this"]
fn control_data_names_the_package_and_its_libraries() {
    let deb = deb();
    assert_eq!(field(&deb, "Package"), "hearth");
    assert_eq!(field(&deb, "Version"), env!("CARGO_PKG_VERSION"));
    assert_eq!(field(&deb, "Architecture"), "amd64");
    let depends = field(&deb, "Depends");
    for library in ["libwebkit2gtk-4.1-0", "libgtk-3-0"] {
        assert!(depends.contains(library), "Depends: {depends}");
    }
    // Every dependency resolves on this (Debian) system: what `apt install ./Hearth.deb` does,
    // simulated.
    let simulated = output(Command::new("apt-get").args(["--simulate", "--no-install-recommends", "install"]).arg(&deb));
    assert!(simulated.contains("hearth"), "{simulated}");
}

#[test]
#[ignore = "needs the .deb: scripts/test.sh builds it and runs this"]
fn it_holds_the_binary_a_desktop_entry_for_hearth_links_and_the_icons() {
    let files = unpack(&deb());
    let root = &files.0;
    let binary = root.join("usr/bin/hearth");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&binary).expect("usr/bin/hearth").permissions());
    assert!(mode & 0o111 != 0, "usr/bin/hearth is executable");

    let entries: Vec<PathBuf> = std::fs::read_dir(root.join("usr/share/applications"))
        .expect("usr/share/applications")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "desktop"))
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let entry = std::fs::read_to_string(&entries[0]).expect("desktop entry");
    let line = |key: &str| {
        entry
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("{key}= in {entry}"))
            .to_string()
    };
    assert_eq!(line("Name"), "Hearth");
    assert_eq!(line("Type"), "Application");
    let exec = line("Exec");
    assert!(exec.starts_with("hearth"), "Exec={exec}");
    // The link reaches the app as its argument.
    assert!(exec.contains("%u") || exec.contains("%U"), "Exec={exec} passes no URL");
    assert!(line("MimeType").split(';').any(|m| m == "x-scheme-handler/hearth"), "{entry}");
    let icon = line("Icon");

    for size in ["32x32", "128x128", "256x256@2"] {
        let png = root.join(format!("usr/share/icons/hicolor/{size}/apps/{icon}.png"));
        let mut magic = [0u8; 8];
        std::fs::File::open(&png)
            .and_then(|mut f| f.read_exact(&mut magic))
            .unwrap_or_else(|e| panic!("{}: {e}", png.display()));
        assert_eq!(&magic, b"\x89PNG\r\n\x1a\n", "{} is a PNG", png.display());
    }
}

#[test]
#[ignore = "needs the .deb and xvfb-run: scripts/test.sh builds it and runs this"]
fn the_packaged_binary_starts_and_shows_its_window() {
    let files = unpack(&deb());
    let home = TempDir::new("deb-home");
    let log = home.0.join("hearth.log");
    let mut app = Command::new("xvfb-run")
        .args(["-a", "-s", "-screen 0 1280x800x24"])
        .arg(files.0.join("usr/bin/hearth"))
        .env("HOME", &home.0)
        .env("XDG_CONFIG_HOME", home.0.join("config"))
        .env("XDG_DATA_HOME", home.0.join("data"))
        .env("XDG_CACHE_HOME", home.0.join("cache"))
        .env("HEARTH_LOG_FILE", &log)
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("xvfb-run");
    let deadline = Instant::now() + Duration::from_secs(90);
    let shown = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("main window shown") {
            break Ok(());
        }
        if let Some(status) = app.try_wait().expect("wait") {
            break Err(format!("the app exited with {status} before showing its window:\n{text}"));
        }
        if Instant::now() > deadline {
            break Err(format!("no window after 90 s:\n{text}"));
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    // xvfb-run and everything under it (the app, Xvfb) are one process group.
    let _ = Command::new("kill").arg("--").arg(format!("-{}", app.id())).status();
    let _ = app.wait();
    shown.unwrap_or_else(|e| panic!("{e}"));
}

