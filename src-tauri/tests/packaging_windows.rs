//! The Windows build and its installer, checked on Linux.
//!
//! The app cannot run under wine (there is no WebView2 for it), so the exe is checked by its
//! headers instead: a PE32+ for x86-64 with the GUI subsystem (no console window), a version
//! resource and the icon, and imports that Windows has (plus WebView2Loader.dll, shipped beside
//! it) — no MinGW runtime DLL that a user's machine would lack.
//!
//! The installer (packaging/windows/hearth.nsi, built here with Debian's makensis from the
//! staged exe) runs under wine64 in a private prefix: a silent install puts the files,
//! shortcuts, the Apps & features entry and the `hearth://` scheme in place, for the current
//! user only; an upgrade over an older version keeps the user's data; a silent uninstall
//! removes everything it added and still keeps the user's data.
//!
//! Needs `HEARTH_WINDOWS_APP_DIR`: the directory scripts/package.sh stages (hearth.exe and
//! WebView2Loader.dll), plus makensis and wine64. `scripts/test.sh` builds and runs it; a
//! plain `cargo test` skips it (ignored).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use object::LittleEndian as LE;
use object::pe;
use object::read::pe::{PeFile64, ResourceDirectoryEntryData, ResourceNameOrId};
use common::TempDir;

fn app_dir() -> PathBuf {
    let dir = PathBuf::from(
        std::env::var_os("HEARTH_WINDOWS_APP_DIR")
            .expect("HEARTH_WINDOWS_APP_DIR must name the staged Windows app (scripts/package.sh)"),
    );
    assert!(dir.join("hearth.exe").is_file(), "{} has no hearth.exe", dir.display());
    dir
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

// --- the exe ------------------------------------------------------------------------------

/// The UTF-16LE bytes of `s`, as strings are stored in a version resource.
fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The raw data of the first resource of `kind` (RT_*), any name and language.
fn resource(file: &PeFile64<'_>, data: &[u8], kind: u16) -> Option<Vec<u8>> {
    let resources = file.data_directories().resource_directory(data, &file.section_table()).ok()??;
    let root = resources.root().ok()?;
    let of_kind = root.entries.iter().find(|e| matches!(e.name_or_id(), ResourceNameOrId::Id(id) if id == kind))?;
    let ResourceDirectoryEntryData::Table(names) = of_kind.data(resources).ok()? else { return None };
    let ResourceDirectoryEntryData::Table(langs) = names.entries.first()?.data(resources).ok()? else { return None };
    let ResourceDirectoryEntryData::Data(entry) = langs.entries.first()?.data(resources).ok()? else { return None };
    let rva = entry.offset_to_data.get(LE);
    let size = entry.size.get(LE) as usize;
    let (section_data, section_rva) = file.section_table().pe_data_containing(data, rva)?;
    let start = (rva - section_rva) as usize;
    section_data.get(start..start + size).map(<[u8]>::to_vec)
}

fn imported_dlls(file: &PeFile64<'_>) -> Vec<String> {
    let table = file.import_table().expect("import table").expect("the exe imports DLLs");
    let mut dlls = Vec::new();
    let mut descriptors = table.descriptors().expect("import descriptors");
    while let Some(descriptor) = descriptors.next().expect("import descriptor") {
        let name = table.name(descriptor.name.get(LE)).expect("DLL name");
        dlls.push(String::from_utf8_lossy(name).to_ascii_lowercase());
    }
    dlls
}

#[test]
#[ignore = "needs the cross-built Windows app: scripts/test.sh builds it and runs this"]
fn the_exe_is_a_gui_pe32_plus_with_version_icon_and_windows_imports() {
    let dir = app_dir();
    let data = std::fs::read(dir.join("hearth.exe")).expect("hearth.exe");
    // PeFile64 parses only PE32+ (optional header magic 0x20b).
    let file = PeFile64::parse(&*data).expect("hearth.exe is a PE32+ image");
    let header = file.nt_headers();
    assert_eq!(header.file_header.machine.get(LE), pe::IMAGE_FILE_MACHINE_AMD64);
    assert_eq!(header.optional_header.magic.get(LE), pe::IMAGE_NT_OPTIONAL_HDR64_MAGIC);
    assert_eq!(
        header.optional_header.subsystem.get(LE),
        pe::IMAGE_SUBSYSTEM_WINDOWS_GUI,
        "a console subsystem would open a terminal window beside the app"
    );

    let version = resource(&file, &data, pe::RT_VERSION).expect("a version resource");
    let product_version = env!("CARGO_PKG_VERSION");
    for (key, value) in [("ProductName", "Hearth"), ("ProductVersion", product_version), ("FileVersion", product_version)] {
        assert!(contains(&version, &utf16(key)), "version resource lacks {key}");
        assert!(contains(&version, &utf16(value)), "version resource lacks {key} = {value}");
    }
    let icon = resource(&file, &data, pe::RT_GROUP_ICON).expect("an icon group");
    assert!(icon.len() >= 6 + 14, "an icon group with at least one image");
    assert!(resource(&file, &data, pe::RT_ICON).is_some(), "icon images");

    let dlls = imported_dlls(&file);
    assert!(dlls.contains(&"webview2loader.dll".to_string()), "{dlls:?}");
    assert!(dlls.contains(&"kernel32.dll".to_string()), "{dlls:?}");
    // Everything else must come with Windows: system DLLs and the API sets. MinGW's runtime
    // (libgcc_s_seh-1, libwinpthread-1, libstdc++-6) is linked statically or not at all.
    for dll in &dlls {
        assert!(
            !(dll.starts_with("lib")
                || dll.contains("mingw")
                || dll.starts_with("vcruntime")
                || (dll.starts_with("msvcr") && dll != "msvcrt.dll")),
            "hearth.exe imports {dll}, which Windows does not ship"
        );
    }
    let loader = std::fs::read(dir.join("WebView2Loader.dll")).expect("WebView2Loader.dll beside the exe");
    let loader = PeFile64::parse(&*loader).expect("WebView2Loader.dll is a 64-bit PE");
    assert!(loader.nt_headers().file_header.characteristics.get(LE) & pe::IMAGE_FILE_DLL != 0);
}

// --- the installer under wine -------------------------------------------------------------

/// A wine64 prefix of its own, with HOME inside it (wine links the Desktop to $HOME) and the
/// desktop integration that would write to the real user's menus switched off.
struct Wine {
    dir: TempDir,
    wine: PathBuf,
    wineserver: PathBuf,
}

fn find_program(env: &str, candidates: &[&str]) -> PathBuf {
    if let Some(path) = std::env::var_os(env) {
        return PathBuf::from(path);
    }
    for candidate in candidates {
        let path = Path::new(candidate);
        if path.is_absolute() && path.is_file() {
            return path.to_path_buf();
        }
        if let Ok(out) = Command::new("sh").arg("-c").arg(format!("command -v {candidate}")).output()
            && out.status.success()
        {
            return PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        }
    }
    panic!("none of {candidates:?} found (set {env})");
}

impl Wine {
    fn new() -> Wine {
        Wine {
            dir: TempDir::new("wine"),
            wine: find_program("HEARTH_WINE", &["/usr/lib/wine/wine64", "wine64", "wine"]),
            wineserver: find_program("HEARTH_WINESERVER", &["/usr/lib/wine/wineserver", "wineserver"]),
        }
    }

    fn prefix(&self) -> PathBuf {
        self.dir.0.join("prefix")
    }

    fn command(&self, program: &Path) -> Command {
        let mut command = Command::new(program);
        command
            .env("WINEPREFIX", self.prefix())
            .env("HOME", &self.dir.0)
            .env("WINEDEBUG", "-all")
            // No Mono/Gecko install prompts, no .desktop files in the real user's menus.
            .env("WINEDLLOVERRIDES", "mscoree,mshtml=;winemenubuilder.exe=d")
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY");
        command
    }

    /// Runs a Windows program to completion, then waits for every process of the prefix (the
    /// uninstaller re-launches itself from a temporary copy) and for the registry to be saved.
    fn run(&self, exe: &Path, args: &[&str]) {
        let status = self.command(&self.wine).arg(exe).args(args).status().expect("start wine64");
        assert!(status.success(), "{} {args:?} under wine: {status}", exe.display());
        self.settle();
    }

    fn settle(&self) {
        let status = self.command(&self.wineserver).arg("-w").status().expect("wineserver -w");
        assert!(status.success());
    }

    fn user_dir(&self) -> PathBuf {
        let users = self.prefix().join("drive_c/users");
        std::fs::read_dir(&users)
            .expect("drive_c/users")
            .flatten()
            .map(|e| e.path())
            .find(|p| p.file_name().is_some_and(|n| n != "Public"))
            .expect("the wine user's profile")
    }

    fn local_app_data(&self) -> PathBuf {
        self.user_dir().join("AppData/Local")
    }

    fn roaming_app_data(&self) -> PathBuf {
        self.user_dir().join("AppData/Roaming")
    }

    fn install_dir(&self) -> PathBuf {
        self.local_app_data().join("Hearth")
    }

    fn start_menu_link(&self) -> PathBuf {
        self.roaming_app_data().join("Microsoft/Windows/Start Menu/Programs/Hearth.lnk")
    }

    fn desktop_link(&self) -> PathBuf {
        // The prefix's Desktop is a link to $HOME, which is this prefix's own directory.
        self.user_dir().join("Desktop/Hearth.lnk")
    }

    /// HKEY_CURRENT_USER as wine saved it: key path -> its lines.
    fn user_registry(&self) -> Registry {
        Registry::parse(&std::fs::read_to_string(self.prefix().join("user.reg")).expect("user.reg"))
    }

    /// HKEY_LOCAL_MACHINE: the installer must not write there (no admin rights).
    fn machine_registry(&self) -> Registry {
        Registry::parse(&std::fs::read_to_string(self.prefix().join("system.reg")).expect("system.reg"))
    }
}

/// A wine registry file (`[Key\\Path] stamp` sections of `"name"="value"` lines).
struct Registry(Vec<(String, Vec<String>)>);

impl Registry {
    fn parse(text: &str) -> Registry {
        let mut keys: Vec<(String, Vec<String>)> = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix('[') {
                let key = rest.split(']').next().unwrap_or_default().replace("\\\\", "\\").to_ascii_lowercase();
                keys.push((key, Vec::new()));
            } else if let Some((_, lines)) = keys.last_mut()
                && !line.is_empty()
                && !line.starts_with('#')
            {
                lines.push(line.to_string());
            }
        }
        Registry(keys)
    }

    fn key(&self, path: &str) -> Option<&[String]> {
        let path = path.to_ascii_lowercase();
        self.0.iter().find(|(k, _)| *k == path).map(|(_, lines)| lines.as_slice())
    }

    fn any_key_under(&self, prefix: &str) -> bool {
        let prefix = prefix.to_ascii_lowercase();
        self.0.iter().any(|(k, _)| *k == prefix || k.starts_with(&format!("{prefix}\\")))
    }

    /// The value `name` (`@` for the default value) of `path`, unescaped.
    fn value(&self, path: &str, name: &str) -> Option<String> {
        let prefix = if name == "@" { "@=".to_string() } else { format!("\"{name}\"=") };
        let line = self.key(path)?.iter().find(|l| l.starts_with(&prefix))?;
        let raw = &line[prefix.len()..];
        let quoted = raw.strip_prefix('"')?.strip_suffix('"')?;
        // Wine escapes `"` and `\` with a backslash.
        let mut value = String::new();
        let mut chars = quoted.chars();
        while let Some(c) = chars.next() {
            value.push(if c == '\\' { chars.next()? } else { c });
        }
        Some(value)
    }
}

const UNINSTALL_KEY: &str = "Software\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\Hearth";
const SCHEME_KEY: &str = "Software\\Classes\\hearth";

/// Builds an installer of `version` from the staged app with the repository's NSIS script.
fn build_installer(out_dir: &Path, version: &str) -> PathBuf {
    let out = out_dir.join(format!("Hearth_{version}_x64-setup.exe"));
    let makensis = find_program("HEARTH_MAKENSIS", &["makensis"]);
    let status = Command::new(makensis)
        .arg("-V2")
        .arg(format!("-DVERSION={version}"))
        .arg(format!("-DAPPDIR={}", app_dir().display()))
        .arg(format!("-DICON={}", root().join("src-tauri/icons/icon.ico").display()))
        .arg(format!("-DOUTFILE={}", out.display()))
        .arg(root().join("packaging/windows/hearth.nsi"))
        .status()
        .expect("run makensis");
    assert!(status.success(), "makensis failed: {status}");
    out
}

#[test]
#[ignore = "needs the cross-built Windows app, makensis and wine64: scripts/test.sh runs it"]
fn the_installer_is_a_64_bit_windows_program() {
    let work = TempDir::new("nsis");
    let setup = build_installer(&work.0, env!("CARGO_PKG_VERSION"));
    let data = std::fs::read(&setup).expect("installer");
    let file = PeFile64::parse(&*data).expect("the installer is PE32+ (NSIS amd64-unicode)");
    assert_eq!(file.nt_headers().optional_header.subsystem.get(LE), pe::IMAGE_SUBSYSTEM_WINDOWS_GUI);
    let version = resource(&file, &data, pe::RT_VERSION).expect("the installer's version resource");
    assert!(contains(&version, &utf16(env!("CARGO_PKG_VERSION"))));
}

#[test]
#[ignore = "needs the cross-built Windows app, makensis and wine64: scripts/test.sh runs it"]
fn silent_install_upgrade_and_uninstall_under_wine() {
    let work = TempDir::new("nsis");
    let current = env!("CARGO_PKG_VERSION");
    let old = build_installer(&work.0, "0.0.1");
    let new = build_installer(&work.0, current);
    let wine = Wine::new();

    // 1. The older version, silently.
    wine.run(&old, &["/S"]);
    let dir = wine.install_dir();
    for file in ["hearth.exe", "WebView2Loader.dll", "uninstall.exe"] {
        assert!(dir.join(file).is_file(), "{file} installed in {}", dir.display());
    }
    assert!(wine.start_menu_link().is_file(), "Start menu shortcut");
    assert!(wine.desktop_link().is_file(), "desktop shortcut");
    let reg = wine.user_registry();
    assert_eq!(reg.value(UNINSTALL_KEY, "DisplayVersion").as_deref(), Some("0.0.1"));

    // The user's data, as the app leaves it (accounts and cache in the roaming app data).
    let data_dir = wine.roaming_app_data().join("org.hearth.desktop");
    std::fs::create_dir_all(&data_dir).expect("app data dir");
    std::fs::write(data_dir.join("accounts.json"), b"{\"accounts\":[\"alice\"]}").expect("user data");

    // 2. The current version over it.
    wine.run(&new, &["/S"]);
    assert_eq!(
        std::fs::read(dir.join("hearth.exe")).expect("installed exe"),
        std::fs::read(app_dir().join("hearth.exe")).expect("built exe")
    );
    assert_eq!(
        std::fs::read(data_dir.join("accounts.json")).expect("the user's data survives the upgrade"),
        b"{\"accounts\":[\"alice\"]}"
    );

    let reg = wine.user_registry();
    let exe = reg.value(UNINSTALL_KEY, "InstallLocation").expect("InstallLocation") + "\\hearth.exe";
    assert!(exe.to_ascii_lowercase().ends_with("\\appdata\\local\\hearth\\hearth.exe"), "per-user location: {exe}");
    assert_eq!(reg.value(UNINSTALL_KEY, "DisplayName").as_deref(), Some("Hearth"));
    assert_eq!(reg.value(UNINSTALL_KEY, "DisplayVersion").as_deref(), Some(current));
    let uninstall = reg.value(UNINSTALL_KEY, "UninstallString").expect("UninstallString");
    assert!(uninstall.ends_with("uninstall.exe\""), "{uninstall}");
    assert_eq!(reg.value(UNINSTALL_KEY, "QuietUninstallString"), Some(format!("{uninstall} /S")));
    assert!(reg.value(UNINSTALL_KEY, "DisplayIcon").is_some_and(|i| i.contains("hearth.exe")));
    // hearth:// links start the installed exe with the link.
    assert!(reg.key(SCHEME_KEY).is_some_and(|lines| lines.iter().any(|l| l == "\"URL Protocol\"=\"\"")));
    assert_eq!(reg.value(&format!("{SCHEME_KEY}\\shell\\open\\command"), "@"), Some(format!("\"{exe}\" \"%1\"")));
    // Nothing machine-wide: no admin rights were needed.
    let machine = wine.machine_registry();
    assert!(!machine.any_key_under(UNINSTALL_KEY));
    assert!(!machine.any_key_under(SCHEME_KEY));

    // 3. Silent uninstall: everything the installer added is gone; the user's data stays.
    wine.run(&dir.join("uninstall.exe"), &["/S"]);
    assert!(!dir.exists(), "{} removed", dir.display());
    assert!(!wine.start_menu_link().exists(), "Start menu shortcut removed");
    assert!(!wine.desktop_link().exists(), "desktop shortcut removed");
    let reg = wine.user_registry();
    assert!(!reg.any_key_under(UNINSTALL_KEY), "Apps & features entry removed");
    assert!(!reg.any_key_under(SCHEME_KEY), "hearth:// scheme removed");
    assert!(data_dir.join("accounts.json").is_file(), "the user's data is kept");
}
