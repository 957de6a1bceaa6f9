//! `imgforge config show` and configuration errors, through the real binary: every value with
//! its source, precedence flag > environment > file > default, and bad files, keys, values
//! and URLs rejected with their location before anything touches the network.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::helpers::{json_of, write_config};
use crate::support::env::{DEFAULT_RUN_TIMEOUT, run_command};
use crate::support::{
    TestEnv, assert_exit_code, assert_stderr_contains, assert_success, stdout_text,
};

/// `imgforge` with no `IMGFORGE_*` variable, no `--cache-dir`, run in the test's `work/`.
fn bare(env: &TestEnv) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_imgforge"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("IMGFORGE_") {
            command.env_remove(&name);
        }
    }
    command
        .env("XDG_CACHE_HOME", env.root().join("xdg/cache"))
        .env("XDG_CONFIG_HOME", env.root().join("xdg/config"))
        .env("HOME", env.root())
        .current_dir(env.work_dir());
    command
}

fn run(mut command: Command, args: &[&str]) -> Output {
    command.args(args);
    run_command(command, DEFAULT_RUN_TIMEOUT)
}

/// The `(value, source)` of `key` in a `config show --json` report.
fn shown(report: &Value, key: &str) -> (Value, String) {
    let entry = report["values"]
        .as_array()
        .expect("values array")
        .iter()
        .find(|entry| entry["key"] == key)
        .unwrap_or_else(|| panic!("{key} not shown in {report:#}"));
    (
        entry["value"].clone(),
        entry["source"]
            .as_str()
            .expect("source is text")
            .to_string(),
    )
}

fn show(command: Command, extra: &[&str]) -> Value {
    let mut args = vec!["--json", "config", "show"];
    args.extend_from_slice(extra);
    let output = run(command, &args);
    assert_success(&output);
    json_of(&output)
}

#[test]
fn config_show_lists_every_default_with_its_source() {
    let env = TestEnv::new();
    let report = show(bare(&env), &[]);
    assert_eq!(report["command"], "config show");
    let expect = |key: &str, value: Value| {
        assert_eq!(shown(&report, key), (value, "default".to_string()), "{key}");
    };
    expect("spark.version", "3.1.1".into());
    expect("spark.package", "hadoop3.2".into());
    expect("hive.metastore_version", "3.0.0".into());
    expect("hive.postgresql_jdbc_version", "42.2.19".into());
    expect(
        "mirrors.apache",
        serde_json::json!([
            "https://dlcdn.apache.org",
            "https://archive.apache.org/dist"
        ]),
    );
    expect(
        "mirrors.maven",
        serde_json::json!(["https://repo1.maven.org/maven2"]),
    );
    expect("network.timeout_secs", 30.into());
    expect("network.retries", 3.into());
    expect(
        "cache_dir",
        env.root()
            .join("xdg/cache/imgforge")
            .display()
            .to_string()
            .into(),
    );

    // The human form: one `key = value  # source` line per value.
    let output = run(bare(&env), &["config", "show"]);
    assert_success(&output);
    let stdout = stdout_text(&output);
    let line = stdout
        .lines()
        .find(|line| line.starts_with("spark.version = "))
        .unwrap_or_else(|| panic!("no spark.version line in\n{stdout}"));
    assert!(
        line.contains("\"3.1.1\"") && line.ends_with("# default"),
        "{line}"
    );
}

#[test]
fn flags_beat_environment_beat_file_beat_defaults() {
    let env = TestEnv::new();
    let file = write_config(
        &env,
        "layered.toml",
        "[spark]\nversion = \"3.2.1\"\n[mirrors]\napache = [\"http://file.invalid/a\", \"http://file.invalid/b\"]\n\
         maven = [\"http://file.invalid/m\"]\n[network]\nretries = 7\n",
    );
    let file_source = format!("file {}", file.display());
    let config_flag = file.to_str().expect("UTF-8 path");

    // File over defaults.
    let report = show(bare(&env), &["--config", config_flag]);
    assert_eq!(
        shown(&report, "spark.version"),
        ("3.2.1".into(), file_source.clone())
    );
    assert_eq!(
        shown(&report, "mirrors.apache"),
        (
            serde_json::json!(["http://file.invalid/a", "http://file.invalid/b"]),
            file_source.clone()
        )
    );
    assert_eq!(
        shown(&report, "network.retries"),
        (7.into(), file_source.clone())
    );
    assert_eq!(
        shown(&report, "spark.package"),
        ("hadoop3.2".into(), "default".to_string())
    );
    assert_eq!(
        shown(&report, "config_file"),
        (config_flag.into(), "flag --config".to_string())
    );

    // Environment over file.
    let mut command = bare(&env);
    command
        .env("IMGFORGE_APACHE_MIRROR", "http://env.invalid/dist")
        .env("IMGFORGE_CACHE_DIR", env.root().join("env-cache"));
    let report = show(command, &["--config", config_flag]);
    assert_eq!(
        shown(&report, "mirrors.apache"),
        (
            serde_json::json!(["http://env.invalid/dist"]),
            "env IMGFORGE_APACHE_MIRROR".to_string()
        )
    );
    assert_eq!(
        shown(&report, "mirrors.maven"),
        (
            serde_json::json!(["http://file.invalid/m"]),
            file_source.clone()
        )
    );
    assert_eq!(
        shown(&report, "cache_dir"),
        (
            env.root().join("env-cache").display().to_string().into(),
            "env IMGFORGE_CACHE_DIR".to_string()
        )
    );

    // Flags over environment.
    let mut command = bare(&env);
    command
        .env("IMGFORGE_APACHE_MIRROR", "http://env.invalid/dist")
        .env("IMGFORGE_MAVEN_MIRROR", "http://env.invalid/maven")
        .env("IMGFORGE_CACHE_DIR", env.root().join("env-cache"));
    let flag_cache = env.root().join("flag-cache");
    let report = show(
        command,
        &[
            "--config",
            config_flag,
            "--apache-mirror",
            "http://flag.invalid/dist",
            "--cache-dir",
            flag_cache.to_str().expect("UTF-8 path"),
        ],
    );
    assert_eq!(
        shown(&report, "mirrors.apache"),
        (
            serde_json::json!(["http://flag.invalid/dist"]),
            "flag --apache-mirror".to_string()
        )
    );
    assert_eq!(
        shown(&report, "mirrors.maven"),
        (
            serde_json::json!(["http://env.invalid/maven"]),
            "env IMGFORGE_MAVEN_MIRROR".to_string()
        )
    );
    assert_eq!(
        shown(&report, "cache_dir"),
        (
            flag_cache.display().to_string().into(),
            "flag --cache-dir".to_string()
        )
    );
    assert_eq!(
        shown(&report, "spark.version"),
        ("3.2.1".into(), file_source)
    );
}

#[test]
fn the_config_file_comes_from_the_flag_the_environment_or_the_working_directory() {
    let env = TestEnv::new();
    // ./imgforge.toml is read when present.
    std::fs::write(
        env.work_dir().join("imgforge.toml"),
        "[hive]\nmetastore_version = \"3.1.3\"\n",
    )
    .expect("write ./imgforge.toml");
    let report = show(bare(&env), &[]);
    assert_eq!(
        shown(&report, "hive.metastore_version"),
        ("3.1.3".into(), "file imgforge.toml".to_string())
    );

    // IMGFORGE_CONFIG names another file, which replaces ./imgforge.toml.
    let from_env = write_config(&env, "from-env.toml", "[spark]\npackage = \"hadoop2.7\"\n");
    let mut command = bare(&env);
    command.env("IMGFORGE_CONFIG", &from_env);
    let report = show(command, &[]);
    assert_eq!(
        shown(&report, "spark.package"),
        ("hadoop2.7".into(), format!("file {}", from_env.display()))
    );
    assert_eq!(shown(&report, "hive.metastore_version").1, "default");
    assert_eq!(
        shown(&report, "config_file"),
        (
            from_env.display().to_string().into(),
            "env IMGFORGE_CONFIG".to_string()
        )
    );

    // --config beats IMGFORGE_CONFIG.
    let from_flag = write_config(&env, "from-flag.toml", "[spark]\npackage = \"hadoop3\"\n");
    let mut command = bare(&env);
    command.env("IMGFORGE_CONFIG", &from_env);
    let report = show(command, &["--config", from_flag.to_str().expect("UTF-8")]);
    assert_eq!(shown(&report, "spark.package").0, "hadoop3");
}

/// Runs `fetch` with `text` as the configuration and checks it is rejected with exit 2, naming
/// the file, `line` and (when given) `column`, before any request.
fn assert_rejected(text: &str, line: usize, column: Option<usize>, mentions: &str) {
    let env = TestEnv::new();
    let file = write_config(&env, "bad.toml", text);
    let output = env.run(&["--config", file.to_str().expect("UTF-8"), "fetch"]);
    assert_exit_code(&output, 2);
    let location = match column {
        Some(column) => format!("line {line}, column {column}"),
        None => format!("line {line}, column "),
    };
    assert_stderr_contains(&output, &format!("{} at {location}", file.display()));
    assert_stderr_contains(&output, mentions);
    assert_eq!(env.server.requests(), Vec::new(), "{text}");
    assert!(
        !Path::new(&env.cache_dir()).join("index-v1").exists(),
        "the cache was opened despite a bad configuration"
    );
}

#[test]
fn malformed_toml_is_rejected_with_its_location() {
    assert_rejected(
        "[spark]\nversion = \"3.1.1\n",
        2,
        None,
        "invalid configuration",
    );
    assert_rejected("[spark\n", 1, None, "invalid configuration");
}

#[test]
fn an_unknown_key_is_rejected_with_its_location() {
    assert_rejected(
        "[spark]\nversion = \"3.1.1\"\nflavour = \"vanilla\"\n",
        3,
        Some(1),
        "flavour",
    );
    assert_rejected("[sparks]\nversion = \"3.1.1\"\n", 1, Some(2), "sparks");
}

#[test]
fn bad_values_are_rejected_with_their_location() {
    assert_rejected(
        "[mirrors]\napache = [\"https://dlcdn.apache.org\", \"ftp://mirror.example/dist\"]\n",
        2,
        None,
        "ftp://mirror.example/dist",
    );
    assert_rejected("[mirrors]\nmaven = [\"not a url\"]\n", 2, None, "not a url");
    assert_rejected(
        "[network]\ntimeout_secs = 0\n",
        2,
        Some(16),
        "\"0\" is not a whole number from 1 to 3600",
    );
    assert_rejected(
        "[spark]\nchecksum = \"sha512:xyz\"\n",
        2,
        None,
        "invalid configuration",
    );
    assert_rejected(
        "[spark]\nversion = \"3.1.1; rm -rf /\"\n",
        2,
        None,
        "not a version",
    );
    // Issue 10: only the two variables the JVM reads options from.
    assert_rejected(
        "[spark]\njava_options_env = \"JDK_JAVA_OPTIONS\"\n",
        2,
        None,
        "use \"_JAVA_OPTIONS\"",
    );
    // Aliases become file names and shell words.
    assert_rejected(
        "[certs]\naliases = { \"ca2.crt\" = \"ca2 $(id)\" }\n",
        2,
        None,
        "not a truststore alias",
    );
}

#[test]
fn an_unreadable_config_file_is_a_configuration_error() {
    let env = TestEnv::new();
    let missing = env.root().join("does-not-exist.toml");
    let output = env.run(&["--config", missing.to_str().expect("UTF-8"), "fetch"]);
    assert_exit_code(&output, 2);
    assert_stderr_contains(&output, &missing.display().to_string());
    assert_stderr_contains(&output, "caused by:");
    assert_eq!(env.server.requests(), Vec::new());

    // A directory is not a readable file either.
    let output = env.run(&["--config", env.root().to_str().expect("UTF-8"), "fetch"]);
    assert_exit_code(&output, 2);
    assert_stderr_contains(&output, &env.root().display().to_string());
}

#[test]
fn a_bad_mirror_url_in_the_environment_or_a_flag_names_it() {
    let env = TestEnv::new();
    let mut command = env.imgforge();
    command.env("IMGFORGE_APACHE_MIRROR", "mirror.example/dist");
    let output = run(command, &["fetch"]);
    assert_exit_code(&output, 2);
    assert_stderr_contains(&output, "IMGFORGE_APACHE_MIRROR");
    assert_stderr_contains(&output, "mirror.example/dist");

    let mut command = env.imgforge();
    command.env("IMGFORGE_MAVEN_MIRROR", "file:///srv/maven");
    let output = run(command, &["fetch"]);
    assert_exit_code(&output, 2);
    assert_stderr_contains(&output, "IMGFORGE_MAVEN_MIRROR");

    let output = env.run(&["--maven-mirror", "http://", "fetch"]);
    assert_exit_code(&output, 2);
    assert_stderr_contains(&output, "--maven-mirror");
    assert_eq!(env.server.requests(), Vec::new());
}

/// `build --push --registry` is accepted (it was refused as an unexpected argument), and a
/// registry written as a URL — on the flag or in `IMGFORGE_REGISTRY` — is refused before
/// anything is fetched or contacted, saying to drop the scheme.
#[test]
fn a_registry_with_a_scheme_is_told_to_drop_it_on_the_flag_and_in_the_environment() {
    let env = TestEnv::new();
    for args in [
        &["build", "--push", "--registry", "http://127.0.0.1:5000/ns"][..],
        &[
            "build",
            "--registry",
            "http://127.0.0.1:5000/ns",
            "hive-metastore",
        ][..],
        &["push", "--registry", "http://127.0.0.1:5000/ns"][..],
    ] {
        let output = run(bare(&env), args);
        assert_exit_code(&output, 2);
        assert_stderr_contains(&output, "--registry");
        assert_stderr_contains(&output, r#"drop "http://" and write "127.0.0.1:5000/ns""#);
        let stderr = crate::support::stderr_text(&output);
        assert!(
            !stderr.contains("is not a port") && !stderr.contains("unexpected argument"),
            "{args:?}: {stderr}"
        );
    }
    let mut command = bare(&env);
    command.env("IMGFORGE_REGISTRY", "https://ghcr.io/me/");
    let output = run(command, &["config", "show"]);
    assert_exit_code(&output, 2);
    assert_stderr_contains(&output, "IMGFORGE_REGISTRY");
    assert_stderr_contains(&output, r#"drop "https://" and write "ghcr.io/me""#);
}

/// `IMGFORGE_REGISTRY` replaces `[images] registry` from the file, and `config show` says so.
#[test]
fn imgforge_registry_beats_the_file() {
    let env = TestEnv::new();
    let file = write_config(
        &env,
        "registry.toml",
        "[images]\nregistry = \"file.invalid/ns\"\n",
    );
    let config_flag = file.to_str().expect("UTF-8 path");
    let report = show(bare(&env), &["--config", config_flag]);
    assert_eq!(
        shown(&report, "images.registry"),
        ("file.invalid/ns".into(), format!("file {}", file.display()))
    );
    let mut command = bare(&env);
    command.env("IMGFORGE_REGISTRY", "127.0.0.1:5000/names-registry");
    let report = show(command, &["--config", config_flag]);
    assert_eq!(
        shown(&report, "images.registry"),
        (
            "127.0.0.1:5000/names-registry".into(),
            "env IMGFORGE_REGISTRY".to_string()
        )
    );
}

/// Each image's default tags, as `config show` reports them, and a file's `[images] tags`
/// standing in for the hive-metastore default.
#[test]
fn config_show_reports_each_image_s_tags() {
    let env = TestEnv::new();
    let report = show(bare(&env), &[]);
    assert_eq!(
        shown(&report, "images.hive-metastore.tags"),
        (
            serde_json::json!([
                "{hive_version}",
                "{hive_version}-hadoop{hadoop_version}",
                "latest"
            ]),
            "default".to_string()
        )
    );
    let file = write_config(&env, "tags.toml", "[images]\ntags = [\"nightly\"]\n");
    let report = show(
        bare(&env),
        &["--config", file.to_str().expect("UTF-8 path")],
    );
    assert_eq!(
        shown(&report, "images.hive-metastore.tags"),
        (
            serde_json::json!(["nightly"]),
            format!("file {}", file.display())
        )
    );
}

/// A tag template that names an unknown placeholder, or one an image has no value for, is a
/// configuration error: at its line and column in a file, naming `--tag` on the command line.
#[test]
fn tag_placeholders_are_checked_per_image_in_files_and_flags() {
    let env = TestEnv::new();
    let file = write_config(
        &env,
        "bad-tags.toml",
        "[images.spark]\ntags = [\"latest\", \"{hive_version}\"]\n",
    );
    let output = run(
        bare(&env),
        &[
            "config",
            "show",
            "--config",
            file.to_str().expect("UTF-8 path"),
        ],
    );
    assert_exit_code(&output, 2);
    assert_stderr_contains(&output, "line 2, column 19");
    assert_stderr_contains(
        &output,
        "{hive_version} has no value for the spark image (it holds no Hive metastore)",
    );
    let file = write_config(
        &env,
        "unknown.toml",
        "[images.hive-metastore]\ntags = [\"{hive}\"]\n",
    );
    let output = run(
        bare(&env),
        &[
            "config",
            "show",
            "--config",
            file.to_str().expect("UTF-8 path"),
        ],
    );
    assert_exit_code(&output, 2);
    assert_stderr_contains(&output, "line 2, column 9");
    assert_stderr_contains(&output, "{hive} is not a placeholder");

    for (args, expected) in [
        (
            &["build", "--tag", "{spark}"][..],
            "{spark} is not a placeholder",
        ),
        (
            &["build", "--push", "--tag", "{spark_version}"][..],
            "{spark_version} has no value for the hive-metastore image",
        ),
        (
            &["push", "--tag", "{hive_version}", "spark-hs"][..],
            "{hive_version} has no value for the spark-hs image",
        ),
    ] {
        let output = run(bare(&env), args);
        assert_exit_code(&output, 2);
        assert_stderr_contains(&output, "--tag");
        assert_stderr_contains(&output, expected);
    }
}

/// The `[section]` headers of the README's configuration reference (its first TOML block).
fn reference_sections() -> Vec<String> {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("read README.md");
    let start = readme
        .find("## Configuration reference")
        .expect("the README has a configuration reference");
    let block = &readme[start..];
    let block = &block[block.find("```toml").expect("a TOML block") + 7..];
    let block = &block[..block.find("```").expect("the block ends")];
    let mut sections: Vec<String> = block
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            let header = line.strip_prefix('[')?;
            Some(header[..header.find(']')?].to_string())
        })
        .collect();
    sections.sort();
    sections.dedup();
    sections
}

/// The `key = value` of every commented `# key = value` line of `text`, by `section.key`.
fn commented_values(text: &str) -> Vec<(String, toml::Value)> {
    let mut section = String::new();
    let mut values = Vec::new();
    for line in text.lines() {
        if let Some(header) = line.strip_prefix('[') {
            section = header.trim_end_matches(']').to_string();
        } else if let Some(assignment) = line.strip_prefix("# ") {
            // A commented assignment is itself a TOML line (trailing comment included).
            if let Ok(table) = toml::from_str::<toml::Table>(assignment) {
                for (key, value) in table {
                    values.push((format!("{section}.{key}"), value));
                }
            }
        }
    }
    values
}

#[test]
fn init_writes_a_starter_that_loads_as_written_with_every_section_and_default() {
    let env = TestEnv::new();
    let output = run(bare(&env), &["init"]);
    assert_success(&output);
    let path = env.work_dir().join("imgforge.toml");
    let text = std::fs::read_to_string(&path).expect("init wrote ./imgforge.toml");
    assert!(
        stdout_text(&output).contains("imgforge.toml"),
        "{}",
        stdout_text(&output)
    );

    // Every section of the configuration reference is present, as a live header.
    let table: toml::Table = toml::from_str(&text).expect("the starter is TOML");
    for section in reference_sections() {
        let mut node = &table;
        for part in section.split('.') {
            node = node
                .get(part)
                .and_then(toml::Value::as_table)
                .unwrap_or_else(|| panic!("[{section}] missing from the starter:\n{text}"));
        }
    }
    // The registry is left for the user: commented, so the starter loads as written.
    assert!(
        text.contains("# registry = "),
        "no registry line to fill in:\n{text}"
    );
    assert!(
        !table["images"]
            .as_table()
            .expect("[images]")
            .contains_key("registry")
    );

    // The real loader accepts it as written (found as ./imgforge.toml), and every commented
    // line shows the value that applies while it stays commented.
    let report = show(bare(&env), &[]);
    assert_eq!(shown(&report, "config_file").0, "imgforge.toml");
    let defaults: Vec<Value> = report["values"].as_array().expect("values").clone();
    let mut checked = 0;
    for entry in &defaults {
        let key = entry["key"].as_str().expect("key");
        if entry["source"] != "default"
            || ["cache_dir", "config_file", "images.registry"].contains(&key)
        {
            continue;
        }
        let (_, commented) = commented_values(&text)
            .into_iter()
            .find(|(name, _)| name == key)
            .unwrap_or_else(|| panic!("{key} has no commented default in the starter:\n{text}"));
        let commented = serde_json::to_value(&commented).expect("TOML value as JSON");
        assert_eq!(
            commented, entry["value"],
            "{key}: the starter shows a different default"
        );
        checked += 1;
    }
    assert!(checked > 20, "only {checked} defaults compared");
}

#[test]
fn init_refuses_to_overwrite_an_existing_configuration() {
    let env = TestEnv::new();
    let path = env.work_dir().join("imgforge.toml");
    std::fs::write(&path, "[spark]\nversion = \"3.1.1\"\n").expect("write a configuration");

    let output = run(bare(&env), &["init"]);
    assert_exit_code(&output, 2);
    assert_stderr_contains(&output, "imgforge.toml already exists");
    assert_eq!(
        std::fs::read_to_string(&path).expect("read"),
        "[spark]\nversion = \"3.1.1\"\n",
        "the existing file was changed"
    );
    let output = run(bare(&env), &["--json", "init"]);
    assert_exit_code(&output, 2);
    let report = json_of(&output);
    assert_eq!(report["command"], "init");
    assert_eq!(report["error"]["kind"], "config.exists");
    assert_eq!(report["error"]["exit_code"], 2);

    // --config names the file, which need not exist yet; a second init refuses it too.
    let other = env.root().join("team/imgforge.toml");
    std::fs::create_dir_all(other.parent().expect("parent")).expect("create the directory");
    let other_arg = other.to_str().expect("UTF-8 path");
    let output = run(bare(&env), &["--json", "--config", other_arg, "init"]);
    assert_success(&output);
    assert_eq!(json_of(&output)["path"], other_arg);
    assert_success(&run(bare(&env), &["--config", other_arg, "config", "show"]));
    let output = run(bare(&env), &["--config", other_arg, "init"]);
    assert_exit_code(&output, 2);
    assert_stderr_contains(&output, &format!("{} already exists", other.display()));

    // IMGFORGE_CONFIG names it as well, as for every other command.
    let from_env = env.root().join("from-env.toml");
    let mut command = bare(&env);
    command.env("IMGFORGE_CONFIG", &from_env);
    assert_success(&run(command, &["init"]));
    assert!(from_env.is_file(), "init did not write $IMGFORGE_CONFIG");
}

/// The `error` object of a failed `--json` run, checked for its fields.
fn error_of(output: &Output, command: &str, exit_code: i32, kind: &str) -> Value {
    assert_exit_code(output, exit_code);
    let report = json_of(output);
    assert_eq!(report["command"], command, "{report:#}");
    let error = &report["error"];
    assert_eq!(error["exit_code"], exit_code, "{report:#}");
    assert_eq!(error["kind"], kind, "{report:#}");
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{report:#}"
    );
    assert!(error["causes"].is_array(), "{report:#}");
    assert!(error.get("hint").is_some(), "{report:#}");
    report
}

#[test]
fn a_configuration_error_with_json_prints_one_error_document() {
    let env = TestEnv::new();
    let config = write_config(&env, "bad.toml", "[spark]\nflavour = \"vanilla\"\n");
    let config_arg = config.to_str().expect("UTF-8 path");
    for (args, command) in [
        (vec!["--json", "--config", config_arg, "fetch"], "fetch"),
        (
            vec!["--config", config_arg, "cache", "ls", "--json"],
            "cache ls",
        ),
        (
            vec!["--json", "--config", config_arg, "build", "spark"],
            "build",
        ),
    ] {
        let output = env.run(&args);
        let report = error_of(&output, command, 2, "config");
        let message = report["error"]["message"].as_str().expect("message");
        assert!(message.contains("flavour"), "{message}");
        // The same report stays on stderr for people.
        assert_stderr_contains(&output, "flavour");
    }
    let output = env.run(&["--json", "--config", "/nonexistent/imgforge.toml", "lock"]);
    let report = error_of(&output, "lock", 2, "config");
    assert_eq!(
        report["error"]["causes"].as_array().map(Vec::len),
        Some(1),
        "{report:#}"
    );

    // A command line clap refuses, too.
    let output = env.run(&["--json", "build", "--exit-code"]);
    let report = error_of(&output, "build", 2, "config.usage");
    let message = report["error"]["message"].as_str().expect("message");
    assert!(message.contains("--if-changed"), "{message}");
    assert_eq!(env.server.requests(), Vec::new());

    // Success output is unchanged: no error field.
    let output = env.run(&["--json", "config", "show"]);
    assert_success(&output);
    assert!(json_of(&output).get("error").is_none());
}
