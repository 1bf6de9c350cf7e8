//! `.github/workflows/release.yml` parses and does what a release needs: on a version tag, one
//! job per platform (Windows with NSIS and MSI, Linux with the .deb, macOS) through
//! tauri-action, signed updater artifacts with the key from the repository's secrets, the
//! updater manifest, and the shared `release-ship` profile. GitHub Actions itself cannot run
//! here; this is what can be checked without it.

use std::path::{Path, PathBuf};

use yaml_rust2::{Yaml, YamlLoader};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn workflow() -> Yaml {
    let mut docs = YamlLoader::load_from_str(&read(".github/workflows/release.yml")).expect("release.yml is YAML");
    assert_eq!(docs.len(), 1, "one YAML document");
    docs.remove(0)
}

fn job(workflow: &Yaml) -> &Yaml {
    let jobs = workflow["jobs"].as_hash().expect("jobs");
    assert_eq!(jobs.len(), 1, "one matrix job builds every platform");
    jobs.values().next().expect("a job")
}

/// The tauri-action step of the job.
fn tauri_action(job: &Yaml) -> &Yaml {
    job["steps"]
        .as_vec()
        .expect("steps")
        .iter()
        .find(|step| step["uses"].as_str().is_some_and(|u| u.starts_with("tauri-apps/tauri-action@")))
        .expect("a tauri-apps/tauri-action step")
}

#[test]
fn runs_on_version_tags_only() {
    let workflow = workflow();
    // A YAML 1.2 parser (like GitHub's) reads the bare key `on` as a string.
    let on = &workflow["on"];
    let tags = on["push"]["tags"].as_vec().expect("on.push.tags");
    assert_eq!(tags, &vec![Yaml::String("v*".into())]);
    assert!(on["pull_request"].is_badvalue() && on["push"]["branches"].is_badvalue(), "releases only from tags");
    assert_eq!(workflow["permissions"]["contents"].as_str(), Some("write"), "it creates the release");
}

#[test]
fn builds_windows_nsis_and_msi_linux_deb_and_macos() {
    let workflow = workflow();
    let include = job(&workflow)["strategy"]["matrix"]["include"].as_vec().expect("matrix.include");
    let entry = |runner_prefix: &str| {
        include
            .iter()
            .find(|e| e["runner"].as_str().is_some_and(|r| r.starts_with(runner_prefix)))
            .unwrap_or_else(|| panic!("a {runner_prefix} runner"))
    };
    let args = |runner_prefix: &str| entry(runner_prefix)["args"].as_str().expect("args").to_string();
    assert!(args("windows").contains("--bundles nsis,msi"), "{}", args("windows"));
    assert!(args("ubuntu").contains("--bundles deb"), "{}", args("ubuntu"));
    assert!(!args("ubuntu").contains("appimage"));
    assert!(args("macos").contains("--bundles app,dmg"), "{}", args("macos"));
    assert!(job(&workflow)["runs-on"].as_str().is_some_and(|r| r.contains("matrix.runner")));
}

#[test]
fn signs_updates_with_the_secret_key_and_publishes_the_manifest() {
    let workflow = workflow();
    let step = tauri_action(job(&workflow));
    let env = &step["env"];
    for key in ["TAURI_SIGNING_PRIVATE_KEY", "TAURI_SIGNING_PRIVATE_KEY_PASSWORD"] {
        let value = env[key].as_str().unwrap_or_else(|| panic!("env.{key}"));
        assert_eq!(value, format!("${{{{ secrets.{key} }}}}"), "the key comes from the secrets only");
    }
    assert_eq!(step["with"]["includeUpdaterJson"].as_bool(), Some(true));
    assert_eq!(step["with"]["releaseDraft"].as_bool(), Some(true), "a human publishes the draft");

    // The updater artifacts are switched on by the release config the step passes.
    let args = step["with"]["args"].as_str().expect("with.args");
    let config_path = args
        .split_whitespace()
        .skip_while(|a| *a != "--config")
        .nth(1)
        .expect("--config <file>");
    let config: serde_json::Value = serde_json::from_str(&read(config_path)).expect("release config is JSON");
    assert_eq!(config["bundle"]["createUpdaterArtifacts"], serde_json::json!(true));
    // The tree's own config does not: local builds have no signing key.
    let base: serde_json::Value = serde_json::from_str(&read("src-tauri/tauri.conf.json")).expect("tauri.conf.json");
    assert_eq!(base["bundle"]["createUpdaterArtifacts"], serde_json::json!(false));
}

#[test]
fn uses_the_shared_release_ship_profile() {
    let workflow = workflow();
    let args = tauri_action(job(&workflow))["with"]["args"].as_str().expect("with.args").to_string();
    assert!(args.ends_with("-- --profile release-ship"), "{args}");
    let cargo: toml::Table = read("Cargo.toml").parse().expect("Cargo.toml");
    let profile = &cargo["profile"]["release-ship"];
    assert_eq!(profile["inherits"].as_str(), Some("release"));
    assert_eq!(profile["strip"].as_bool(), Some(true));
    // scripts/package.sh builds the .deb and the Windows exe with the same profile.
    let script = read("scripts/package.sh");
    assert!(script.contains("profile=release-ship"));
}

#[test]
fn no_private_key_is_in_the_tree() {
    // minisign secret keys start with this comment, which the Tauri CLI wraps in base64. Both
    // needles are assembled here so that this file does not match itself.
    let needles = [
        ["rsign encrypted", " secret key"].concat(),
        ["dW50cnVzdGVkIGNvbW1lbnQ6IHJzaWdu", "IGVuY3J5cHRlZCBzZWNyZXQga2V5"].concat(),
    ];
    let mut stack = vec![root()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir").flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') && name != ".github" || ["target", "node_modules", "dist", "dist-mock"].contains(&&*name)
            {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(text) = std::fs::read_to_string(&path) {
                for needle in &needles {
                    assert!(!text.contains(needle.as_str()), "{} holds a private signing key", path.display());
                }
            }
        }
    }
}
