//! `--out` only ever replaces what imgforge made: one table of output paths, each run through
//! the real binary against the loopback mirror, with a fake `$HOME` set through the
//! environment. Refused paths must be left exactly as they were, with nothing fetched and
//! nothing staged; imgforge trees and empty directories are replaced; `--force` only opens
//! non-empty foreign directories, never `$HOME`, the current directory or the cache.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::env::{DEFAULT_RUN_TIMEOUT, run_command};
use crate::support::prepared::{TREE_MARKER, TREE_MARKER_TEXT, fingerprint};
use crate::support::{TestEnv, assert_exit_code, assert_stderr_contains, assert_success};

/// What a case expects.
enum Expect {
    /// Exit 2 before anything is fetched, the path untouched; stderr names the path (as
    /// resolved) and contains every needle.
    Refused(&'static [&'static str]),
    /// The tree is prepared into the path.
    Prepared,
}

/// One `--out` case: how to make the path, which argument names it, extra flags.
struct Case {
    name: &'static str,
    /// Creates what the case needs under the test directory; returns the `--out` argument
    /// and the absolute path it resolves to.
    setup: fn(&Layout) -> (String, PathBuf),
    force: bool,
    expect: Expect,
}

/// The paths every case stands on.
struct Layout {
    /// The test directory (canonical).
    root: PathBuf,
    /// The fake `$HOME`, holding a file standing for `.ssh`.
    home: PathBuf,
    /// The current directory of the run, holding a project file.
    work: PathBuf,
    /// The cache (`--cache-dir`), holding one downloaded artifact after the warm-up.
    cache: PathBuf,
}

impl Layout {
    fn of(env: &TestEnv) -> Layout {
        let root = fs::canonicalize(env.root()).expect("canonical test directory");
        let home = root.join("users/me");
        fs::create_dir_all(home.join(".ssh")).expect("fake home");
        fs::write(home.join(".ssh/id_ed25519"), "not a real key\n").expect("fake key");
        let work = root.join("work");
        fs::write(work.join("project.txt"), "the user's project\n").expect("project file");
        Layout {
            root,
            home,
            work,
            cache: fs::canonicalize(env.cache_dir()).expect("canonical cache"),
        }
    }
}

fn arg(path: &Path) -> String {
    path.to_str().expect("UTF-8 path").to_string()
}

/// A non-empty directory of the user's, without imgforge's marker.
fn user_dir(layout: &Layout) -> (String, PathBuf) {
    let dir = layout.root.join("mine");
    fs::create_dir_all(dir.join("notes")).expect("user dir");
    fs::write(dir.join("notes/todo.txt"), "keep me\n").expect("user file");
    (arg(&dir), dir)
}

const CASES: &[Case] = &[
    Case {
        name: "a user directory",
        setup: user_dir,
        force: false,
        expect: Expect::Refused(&["non-empty directory imgforge did not make", "--force"]),
    },
    Case {
        name: "a regular file",
        setup: |layout| {
            let file = layout.root.join("notes.txt");
            fs::write(&file, "keep me\n").expect("user file");
            (arg(&file), file)
        },
        force: false,
        expect: Expect::Refused(&["it is a file", "--out"]),
    },
    Case {
        name: "a symbolic link to a directory",
        setup: |layout| {
            let target = layout.root.join("linked");
            fs::create_dir_all(&target).expect("link target");
            fs::write(target.join("data.txt"), "keep me\n").expect("target file");
            let link = layout.root.join("link");
            std::os::unix::fs::symlink(&target, &link).expect("symlink");
            (arg(&link), link)
        },
        force: false,
        expect: Expect::Refused(&["symbolic link", "--out"]),
    },
    Case {
        name: "$HOME",
        setup: |layout| (arg(&layout.home), layout.home.clone()),
        force: false,
        expect: Expect::Refused(&["your home directory ($HOME)", "--out"]),
    },
    Case {
        name: "$HOME with --force",
        setup: |layout| (arg(&layout.home), layout.home.clone()),
        force: true,
        expect: Expect::Refused(&["your home directory ($HOME)", "--force never applies"]),
    },
    Case {
        name: "a directory containing $HOME, by a path through ..",
        setup: |layout| (arg(&layout.home.join("..")), layout.root.join("users")),
        force: true,
        expect: Expect::Refused(&["containing your home directory"]),
    },
    Case {
        name: "the current directory as .",
        setup: |layout| (".".into(), layout.work.clone()),
        force: false,
        expect: Expect::Refused(&["the current directory"]),
    },
    Case {
        name: "the current directory by absolute path, with --force",
        setup: |layout| (arg(&layout.work), layout.work.clone()),
        force: true,
        expect: Expect::Refused(&["the current directory", "--force never applies"]),
    },
    Case {
        name: "the current directory as ../work",
        setup: |layout| ("../work".into(), layout.work.clone()),
        force: false,
        expect: Expect::Refused(&["the current directory"]),
    },
    Case {
        name: "the current directory through a directory that does not exist",
        setup: |layout| ("new/../../work/.".into(), layout.work.clone()),
        force: true,
        expect: Expect::Refused(&["the current directory"]),
    },
    Case {
        name: "the parent of the current directory",
        setup: |layout| ("..".into(), layout.root.clone()),
        force: true,
        expect: Expect::Refused(&["a directory containing"]),
    },
    Case {
        name: "the root of the file system",
        setup: |_| ("/".into(), PathBuf::from("/")),
        force: true,
        expect: Expect::Refused(&["the root of the file system"]),
    },
    Case {
        name: "the cache",
        setup: |layout| (arg(&layout.cache), layout.cache.clone()),
        force: true,
        expect: Expect::Refused(&["the imgforge cache"]),
    },
    Case {
        name: "a new directory inside the cache",
        setup: |layout| {
            let inside = layout.cache.join("artifacts-v1/spark");
            (arg(&inside), inside)
        },
        force: true,
        expect: Expect::Refused(&["inside the imgforge cache"]),
    },
    Case {
        name: "an earlier imgforge tree",
        setup: |layout| {
            let tree = layout.root.join("earlier");
            fs::create_dir_all(tree.join("jars")).expect("earlier tree");
            fs::write(tree.join(TREE_MARKER), TREE_MARKER_TEXT).expect("marker");
            fs::write(tree.join("jars/stale.jar"), "old").expect("stale jar");
            (arg(&tree), tree)
        },
        force: false,
        expect: Expect::Prepared,
    },
    Case {
        name: "an empty directory",
        setup: |layout| {
            let empty = layout.root.join("empty");
            fs::create_dir_all(&empty).expect("empty dir");
            (arg(&empty), empty)
        },
        force: false,
        expect: Expect::Prepared,
    },
    Case {
        name: "a user directory with --force",
        setup: |layout| {
            let (_, dir) = user_dir(layout);
            let forced = layout.root.join("forced");
            fs::rename(&dir, &forced).expect("rename the user dir");
            (arg(&forced), forced)
        },
        force: true,
        expect: Expect::Prepared,
    },
];

/// `imgforge prepare --out <out>` in `work/` with the fake `$HOME`.
fn prepare(env: &TestEnv, layout: &Layout, out: &str, force: bool) -> Output {
    let mut command = env.imgforge();
    command
        .env("HOME", &layout.home)
        .args(["prepare", "--out", out]);
    if force {
        command.arg("--force");
    }
    run_command(command, DEFAULT_RUN_TIMEOUT)
}

/// What a path is, deep: its tree fingerprint, a file's bytes, or a link's target.
fn snapshot(path: &Path) -> String {
    let Ok(metadata) = fs::symlink_metadata(path) else {
        return "absent".into();
    };
    if metadata.file_type().is_symlink() {
        let target = fs::read_link(path).expect("read the link");
        format!("link -> {} {:?}", target.display(), fingerprint(&target))
    } else if metadata.is_dir() {
        format!("{:?}", fingerprint(path))
    } else {
        format!("file {:?}", fs::read(path).expect("read the file"))
    }
}

#[test]
fn out_replaces_only_what_imgforge_made() {
    let env = TestEnv::new();
    let layout = Layout::of(&env);
    // Warm the cache, so the cache cases have something to lose.
    assert_success(&env.run(&["fetch", "spark"]));
    let mut failures = Vec::new();
    for case in CASES {
        let (out, resolved) = (case.setup)(&layout);
        let before = match case.expect {
            // The root of the file system is far too large to fingerprint; it is refused
            // before anything is read, like every other protected path.
            Expect::Refused(_) if resolved == Path::new("/") => None,
            Expect::Refused(_) => Some(snapshot(&resolved)),
            Expect::Prepared => None,
        };
        let home_before = snapshot(&layout.home);
        env.server.clear_log();
        let output = prepare(&env, &layout, &out, case.force);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match case.expect {
                Expect::Refused(needles) => {
                    assert_exit_code(&output, 2);
                    assert_stderr_contains(&output, &resolved.display().to_string());
                    for needle in needles {
                        assert_stderr_contains(&output, needle);
                    }
                    assert!(
                        env.server.requests().is_empty(),
                        "a refused run fetched {:?}",
                        env.server.requests()
                    );
                    if let Some(before) = &before {
                        assert_eq!(&snapshot(&resolved), before, "the path changed");
                    }
                }
                Expect::Prepared => {
                    assert_success(&output);
                    assert_eq!(
                        fs::read_to_string(resolved.join(TREE_MARKER))
                            .expect("the tree carries imgforge's marker")
                            .lines()
                            .next(),
                        Some("imgforge-tree 1")
                    );
                    assert!(resolved.join("bin/spark-submit").is_file());
                    for gone in ["jars/stale.jar", "notes/todo.txt"] {
                        assert!(!resolved.join(gone).exists(), "{gone} survived");
                    }
                }
            }));
        if outcome.is_err() {
            failures.push(format!("{}: --out {out}\n{stderr}", case.name));
        }
        assert_eq!(
            snapshot(&layout.home),
            home_before,
            "{}: $HOME changed",
            case.name
        );
        assert!(
            layout.work.join("project.txt").is_file(),
            "{}: the project vanished",
            case.name
        );
    }
    assert!(
        failures.is_empty(),
        "failed cases:\n{}",
        failures.join("\n")
    );
}

#[test]
fn a_prepared_tree_is_marked_and_replaced_by_the_next_prepare() {
    let env = TestEnv::new();
    let layout = Layout::of(&env);
    let out = layout.root.join("build/spark");
    assert_success(&prepare(&env, &layout, &arg(&out), false));
    let marker = fs::read_to_string(out.join(TREE_MARKER)).expect("marker");
    let lines: Vec<&str> = marker.lines().collect();
    assert_eq!(lines.len(), 2, "{marker}");
    assert_eq!(lines[0], "imgforge-tree 1");
    let fingerprint = lines[1]
        .strip_prefix("fingerprint ")
        .expect("fingerprint line");
    assert!(
        fingerprint.len() == 64 && fingerprint.bytes().all(|byte| byte.is_ascii_hexdigit()),
        "{marker}"
    );
    // Same inputs, same marker; and the marked tree may be replaced.
    assert_success(&prepare(&env, &layout, &arg(&out), false));
    assert_eq!(
        fs::read_to_string(out.join(TREE_MARKER)).expect("marker"),
        marker
    );
}

#[test]
fn build_refuses_a_foreign_directory_under_build_before_anything() {
    let env = TestEnv::new();
    let layout = Layout::of(&env);
    let foreign = layout.work.join("build/spark-3.1.1-bin-hadoop3.2");
    fs::create_dir_all(&foreign).expect("foreign dir");
    fs::write(foreign.join("notes.txt"), "keep me\n").expect("user file");
    // `--force` asks for a rebuild; it never lets build delete a directory it did not make.
    for extra in [&[][..], &["--force"][..]] {
        let mut command = env.imgforge();
        command
            .env("HOME", &layout.home)
            .args(["build", "spark"])
            .args(extra);
        let output = run_command(command, DEFAULT_RUN_TIMEOUT);
        assert_exit_code(&output, 2);
        assert_stderr_contains(&output, &foreign.display().to_string());
        assert_stderr_contains(&output, "--force");
        assert_stderr_contains(&output, "--force-replace (imgforge build)");
        assert!(
            env.server.requests().is_empty(),
            "build {extra:?} fetched before refusing"
        );
        assert_eq!(
            fs::read_to_string(foreign.join("notes.txt")).expect("user file"),
            "keep me\n"
        );
    }
}
