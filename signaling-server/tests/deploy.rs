//! The self-hosting files, checked without a Docker engine or a running systemd:
//! docker-compose.yml parsed (every file it names exists, every HEARTH_* variable is an option
//! of hearth-server, its ports agree with the Dockerfile and the server's settings, coturn
//! shares hearth's TURN secret, Caddy proxies to the hearth service), the Dockerfile's
//! variables, ports and health check, deploy/env.example and deploy/hearth.toml, the systemd
//! unit (`systemd-analyze verify`, and `security` at or under exposure 2.0) and hadolint.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::CommandFactory;
use hearth_server::cli::Cli;
use yaml_rust2::{Yaml, YamlLoader};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root").to_path_buf()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

fn compose() -> Yaml {
    let mut docs =
        YamlLoader::load_from_str(&read("docker-compose.yml")).expect("docker-compose.yml is YAML");
    assert_eq!(docs.len(), 1, "one document");
    docs.remove(0)
}

/// The environment variable of every option hearth-server has.
fn server_variables() -> BTreeSet<String> {
    Cli::command()
        .get_arguments()
        .filter_map(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .collect()
}

fn str_list(y: &Yaml) -> Vec<String> {
    y.as_vec().map(|v| v.iter().filter_map(|i| i.as_str().map(str::to_string)).collect()).unwrap_or_default()
}

/// `KEY: value` pairs of a compose `environment:` mapping.
fn environment(service: &Yaml) -> BTreeMap<String, String> {
    let env = service["environment"].as_hash().expect("environment is a mapping");
    env.iter()
        .map(|(k, v)| {
            let value = match v {
                Yaml::String(s) => s.clone(),
                Yaml::Integer(i) => i.to_string(),
                other => panic!("environment value {other:?}"),
            };
            (k.as_str().expect("string key").to_string(), value)
        })
        .collect()
}

/// Replaces `${NAME:-default}` / `${NAME:?message}` / `${NAME}` as compose does with an empty
/// environment: the default, or nothing.
fn with_defaults(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("closing brace") + start;
        let inner = &rest[start + 2..end];
        if let Some((_, default)) = inner.split_once(":-") {
            out.push_str(default);
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Every `${NAME…}` the text refers to.
fn referenced(text: &str) -> BTreeSet<String> {
    text.match_indices("${")
        .map(|(i, _)| {
            let inner = &text[i + 2..];
            inner[..inner.find([':', '}', '-', '?']).expect("a variable")].to_string()
        })
        .collect()
}

/// `(host side, container port, protocol)` of a compose `ports:` entry, after defaults.
fn port(entry: &str) -> (String, String, String) {
    let entry = with_defaults(entry);
    let (mapping, proto) = entry.split_once('/').unwrap_or((&entry, "tcp"));
    let (host, container) = mapping.rsplit_once(':').expect("HOST:CONTAINER");
    (host.to_string(), container.to_string(), proto.to_string())
}

/// The Dockerfile's `ENV` assignments of the final stage, and its `EXPOSE`d ports.
fn dockerfile() -> (BTreeMap<String, String>, Vec<String>, String) {
    let text = read("deploy/Dockerfile").replace("\\\n", " ");
    let last_stage = text.rsplit("\nFROM ").next().expect("stages").to_string();
    let mut env = BTreeMap::new();
    let mut expose = Vec::new();
    for line in last_stage.lines() {
        if let Some(rest) = line.strip_prefix("ENV ") {
            for pair in rest.split_whitespace() {
                let (k, v) = pair.split_once('=').expect("ENV KEY=value");
                env.insert(k.to_string(), v.to_string());
            }
        } else if let Some(rest) = line.strip_prefix("EXPOSE ") {
            expose.extend(rest.split_whitespace().map(str::to_string));
        }
    }
    (env, expose, last_stage)
}

#[test]
fn compose_names_only_files_that_exist_and_options_the_server_has() {
    let doc = compose();
    let hearth = &doc["services"]["hearth"];
    let context = hearth["build"]["context"].as_str().expect("build context");
    let dockerfile_path = hearth["build"]["dockerfile"].as_str().expect("dockerfile");
    assert!(root().join(context).join(dockerfile_path).is_file(), "{dockerfile_path} missing");
    assert!(root().join(".dockerignore").is_file());
    for (name, service) in doc["services"].as_hash().expect("services") {
        for volume in str_list(&service["volumes"]) {
            let source = volume.split(':').next().unwrap();
            if source.starts_with("./") || source.starts_with('/') {
                assert!(root().join(source).exists(), "{name:?} mounts {source}, which does not exist");
            } else {
                assert!(
                    !doc["volumes"][source].is_badvalue(),
                    "{name:?} uses the undeclared volume {source}"
                );
            }
        }
    }
    let known = server_variables();
    for key in environment(hearth).keys() {
        assert!(known.contains(key), "docker-compose.yml sets {key}, which hearth-server does not read");
    }
    let (docker_env, _, _) = dockerfile();
    for key in docker_env.keys() {
        assert!(known.contains(key), "the Dockerfile sets {key}, which hearth-server does not read");
    }
    // The variables compose reads from .env are those deploy/env.example documents.
    let used = referenced(&read("docker-compose.yml"));
    let documented: BTreeSet<String> = read("deploy/env.example")
        .lines()
        .map(|l| l.trim_start_matches('#'))
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.to_string()))
        .filter(|k| k.chars().all(|c| c.is_ascii_uppercase() || c == '_') && !k.is_empty())
        .collect();
    assert_eq!(used, documented, "variables used by docker-compose.yml vs documented in deploy/env.example");
}

#[test]
fn compose_and_dockerfile_ports_agree_with_the_server() {
    let doc = compose();
    let hearth = &doc["services"]["hearth"];
    let (docker_env, expose, last_stage) = dockerfile();
    let env = environment(hearth);
    let listen_port = docker_env["HEARTH_LISTEN"].rsplit_once(':').unwrap().1.to_string();
    let turn_port = docker_env["HEARTH_TURN_LISTEN"].rsplit_once(':').unwrap().1.to_string();
    let relays =
        format!("{}-{}", docker_env["HEARTH_TURN_RELAY_PORT_MIN"], docker_env["HEARTH_TURN_RELAY_PORT_MAX"]);
    assert_eq!(env["HEARTH_TURN_RELAY_PORT_MIN"], docker_env["HEARTH_TURN_RELAY_PORT_MIN"]);
    assert_eq!(env["HEARTH_TURN_RELAY_PORT_MAX"], docker_env["HEARTH_TURN_RELAY_PORT_MAX"]);

    let published: BTreeSet<(String, String)> =
        str_list(&hearth["ports"]).iter().map(|p| port(p)).map(|(_, c, proto)| (c, proto)).collect();
    let wanted: BTreeSet<(String, String)> = [
        (listen_port.clone(), "tcp".to_string()),
        (turn_port.clone(), "udp".to_string()),
        (relays.clone(), "udp".to_string()),
    ]
    .into();
    assert_eq!(published, wanted, "compose publishes the ports the server listens on");
    let exposed: BTreeSet<(String, String)> = expose
        .iter()
        .map(|e| {
            let (p, proto) = e.split_once('/').unwrap_or((e, "tcp"));
            (p.to_string(), proto.to_string())
        })
        .collect();
    assert_eq!(exposed, wanted, "the Dockerfile exposes the ports the server listens on");
    // The same ports on both sides of each mapping (TURN announces the port it listens on).
    for entry in str_list(&hearth["ports"]) {
        let (host, container, _) = port(&entry);
        assert_eq!(host.rsplit(':').next().unwrap(), container, "{entry}");
    }

    // The health check is a real subcommand, in the image and in compose.
    assert!(Cli::command().find_subcommand("health").is_some());
    assert!(
        last_stage.contains(r#"HEALTHCHECK"#) && last_stage.contains(r#"CMD ["hearth-server", "health"]"#)
    );
    assert_eq!(str_list(&hearth["healthcheck"]["test"]), ["CMD", "hearth-server", "health"]);
    // What the build stage produces is what the image copies.
    assert!(last_stage.contains("/src/target/release-ship/hearth-server /usr/local/bin/hearth-server"));
    assert!(read("deploy/Dockerfile").contains(
        "cargo chef cook --profile release-ship --locked --recipe-path recipe.json -p hearth-server"
    ));
}

#[test]
fn coturn_shares_the_turn_secret_and_caddy_proxies_to_hearth() {
    let doc = compose();
    let hearth_env = environment(&doc["services"]["hearth"]);
    assert_eq!(
        referenced(&hearth_env["HEARTH_TURN_SECRET"]),
        BTreeSet::from(["HEARTH_TURN_SECRET".to_string()])
    );
    let coturn = &doc["services"]["coturn"];
    assert_eq!(str_list(&coturn["profiles"]), ["turn"]);
    let command = str_list(&coturn["command"]);
    assert!(command.iter().any(|c| c == "--use-auth-secret"));
    let secret = command.iter().find(|c| c.starts_with("--static-auth-secret=")).expect("a static secret");
    assert_eq!(referenced(secret), BTreeSet::from(["HEARTH_TURN_SECRET".to_string()]), "{secret}");
    assert!(secret.contains(":?"), "the turn profile refuses to start without the shared secret");
    // coturn's ports stay clear of the embedded server's.
    let flag = |name: &str| -> u16 {
        command.iter().find_map(|c| c.strip_prefix(&format!("--{name}="))).expect(name).parse().unwrap()
    };
    let (min, max) = (
        hearth_env["HEARTH_TURN_RELAY_PORT_MIN"].parse::<u16>().unwrap(),
        hearth_env["HEARTH_TURN_RELAY_PORT_MAX"].parse::<u16>().unwrap(),
    );
    assert_ne!(flag("listening-port"), 3478);
    assert!(flag("min-port") > max || flag("max-port") < min, "coturn's relays overlap hearth's");
    // The example .env names the coturn port in the URLs hearth hands out.
    let example = read("deploy/env.example");
    assert!(example.contains(&format!(":{}?transport=udp", flag("listening-port"))));

    let caddy = &doc["services"]["caddy"];
    assert_eq!(str_list(&caddy["profiles"]), ["https"]);
    let caddyfile = read("deploy/Caddyfile");
    let target = format!("reverse_proxy hearth:{}", {
        let listen = &dockerfile().0["HEARTH_LISTEN"];
        listen.rsplit_once(':').unwrap().1.to_string()
    });
    assert!(caddyfile.contains(&target), "Caddy proxies to the hearth service: {target}");
    assert!(caddyfile.contains("{$HEARTH_DOMAIN}"));
    assert!(environment(caddy).contains_key("HEARTH_DOMAIN"));
    let ports: BTreeSet<String> = str_list(&caddy["ports"]).iter().map(|p| port(p).1).collect();
    assert_eq!(ports, BTreeSet::from(["80".to_string(), "443".to_string()]));
}

/// The hearth service's environment, with compose's defaults, is accepted by the real binary.
#[test]
fn the_compose_environment_is_a_valid_configuration() {
    let hearth = &compose()["services"]["hearth"];
    let (docker_env, _, _) = dockerfile();
    let dir = std::env::temp_dir().join(format!("hearth-deploy-{}", std::process::id()));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hearth-server"));
    for (k, v) in docker_env.iter().chain(environment(hearth).iter()) {
        cmd.env(k, with_defaults(v));
    }
    // `health` resolves the whole configuration, then finds no server: exit 1, not a usage error.
    let out = cmd.env("HEARTH_DATA_DIR", &dir).arg("health").output().expect("running hearth-server");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("is not answering"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_example_configuration_file_holds_only_real_options() {
    let options: hearth_server::config::Options =
        toml::from_str(&read("deploy/hearth.toml")).expect("deploy/hearth.toml is a valid configuration");
    hearth_server::config::Config::resolve(options).expect("and it resolves");
}

/// Finds a tool that scripts/test.sh installs; under CI its absence is a failure.
fn tool(env: &str, name: &str) -> Option<PathBuf> {
    let found = std::env::var_os(env).map(PathBuf::from).or_else(|| {
        std::env::var_os("PATH")
            .and_then(|paths| std::env::split_paths(&paths).map(|p| p.join(name)).find(|p| p.is_file()))
    });
    if found.is_none() {
        assert!(std::env::var_os("CI").is_none(), "{name} is missing; scripts/test.sh installs it");
        eprintln!("{name} not found: skipping its check (scripts/test.sh installs it)");
    }
    found
}

#[test]
fn the_systemd_unit_verifies_and_is_hardened() {
    let unit = read("deploy/hearth-server.service");
    for line in [
        "User=hearth",
        "StateDirectory=hearth",
        "Environment=HEARTH_DATA_DIR=/var/lib/hearth",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "ExecStart=/usr/local/bin/hearth-server --config /etc/hearth/hearth.toml",
    ] {
        assert!(unit.lines().any(|l| l == line), "the unit lacks {line}");
    }
    let Some(analyze) = tool("HEARTH_SYSTEMD_ANALYZE", "systemd-analyze") else { return };
    // verify checks that ExecStart's program exists: point it at the binary under test.
    let dir = std::env::temp_dir().join(format!("hearth-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("hearth-server.service");
    std::fs::write(&copy, unit.replace("/usr/local/bin/hearth-server", env!("CARGO_BIN_EXE_hearth-server")))
        .unwrap();
    let verify = Command::new(&analyze).arg("verify").arg(&copy).output().expect("systemd-analyze verify");
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let security = Command::new(&analyze)
        // The threshold is in tenths: 20 is an overall exposure of 2.0 ("OK"; 10 is the best).
        .args(["security", "--offline=true", "--threshold=20", "--no-pager"])
        .arg(&copy)
        .output()
        .expect("systemd-analyze security");
    let text = String::from_utf8_lossy(&security.stdout);
    let score = text.lines().find(|l| l.contains("Overall exposure level")).unwrap_or("no score").to_string();
    println!("{score}");
    assert!(security.status.success(), "exposure above 2.0: {score}\n{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_dockerfile_passes_hadolint() {
    let Some(hadolint) = tool("HEARTH_HADOLINT", "hadolint") else { return };
    let out = Command::new(hadolint)
        .arg("--no-color")
        .arg(root().join("deploy/Dockerfile"))
        .output()
        .expect("running hadolint");
    assert!(
        out.status.success(),
        "hadolint: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
