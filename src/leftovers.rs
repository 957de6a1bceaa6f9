//! What an interrupted run leaves behind, and how the next run recognises and removes it.
//!
//! A run that is stopped by a signal removes its own temp files and staging trees (see
//! [`crate::interrupt`]). A run that is killed outright (SIGKILL, OOM killer, power cut) cannot,
//! so everything that could outlive it names its owner:
//!
//! - every run has a tag, `<pid>x<start time in hex>`, unique among the runs of one machine;
//! - while a run uses a cache it holds an exclusive lock on `<cache>/locks/run-<tag>.lock`;
//!   the kernel drops that lock when the process dies, however it dies;
//! - temp files in `<cache>/tmp/` are named `<tag>.…`, staging trees beside an output
//!   `.<out name>.<kind>.<tag>.…` (kind: `unpack`, `stage` or `old`).
//!
//! A later run removes such a leftover only when its owner is provably gone: the owner's lock
//! file can be locked, or (when the lock file is gone) no process has the owner's pid. Anything
//! else, including files without a tag, is left alone.

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

/// The kinds of staging trees kept beside an output (see [`staging_prefix`]).
pub(crate) const STAGING_KINDS: [&str; 4] = ["unpack", "stage", "old", "jars"];

/// Run locks this process holds, by locks directory; held until the process exits.
static HELD: Mutex<Vec<(PathBuf, File)>> = Mutex::new(Vec::new());

/// This run's tag: `<pid>x<start time in nanoseconds, hex>`.
pub(crate) fn tag() -> &'static str {
    static TAG: OnceLock<String> = OnceLock::new();
    TAG.get_or_init(|| {
        let started = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos());
        format!("{}x{started:x}", std::process::id())
    })
}

/// The lock file of the run tagged `tag` in `locks_dir`.
pub(crate) fn lock_path(locks_dir: &Path, tag: &str) -> PathBuf {
    locks_dir.join(format!("run-{tag}.lock"))
}

/// Take this run's lock in `locks_dir` (once per directory; later calls do nothing).
///
/// The lock file is created and locked under a temporary name and only then renamed to its
/// final name, so no other run ever sees it unlocked and takes this run for dead.
pub(crate) fn hold(locks_dir: &Path) -> io::Result<()> {
    let mut held = HELD.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if held.iter().any(|(dir, _)| dir == locks_dir) {
        return Ok(());
    }
    let temp = tempfile::Builder::new()
        .prefix(&format!(".{}.", tag()))
        .tempfile_in(locks_dir)?;
    temp.as_file().lock()?;
    let file = temp
        .persist(lock_path(locks_dir, tag()))
        .map_err(|error| error.error)?;
    held.push((locks_dir.to_path_buf(), file));
    Ok(())
}

/// Remove this run's lock files (at the end of a run that cleaned up after itself).
pub fn release() {
    let mut held = HELD.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    for (dir, file) in held.drain(..) {
        let _ = fs::remove_file(lock_path(&dir, tag()));
        drop(file);
    }
}

/// Whether the run that owns a leftover is still running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    /// It holds its lock, or a process with its pid exists: leave its files alone.
    Alive,
    /// Its lock could be taken, or no process has its pid: what it left is debris.
    Dead,
}

/// Whether the run tagged `tag` is alive, judged by its lock in `locks_dir`, else by its pid.
pub(crate) fn owner(locks_dir: &Path, tag: &str) -> Owner {
    if tag == self::tag() {
        return Owner::Alive;
    }
    let path = lock_path(locks_dir, tag);
    match OpenOptions::new().write(true).open(&path) {
        Ok(file) => match file.try_lock() {
            // The kernel released it: the owner is gone. (Dropping `file` unlocks again.)
            Ok(()) => Owner::Dead,
            Err(_) => Owner::Alive,
        },
        Err(error) if error.kind() == io::ErrorKind::NotFound => pid_owner(tag),
        Err(_) => Owner::Alive,
    }
}

/// With no lock file to ask: dead only when no process has the owner's pid.
fn pid_owner(tag: &str) -> Owner {
    let Some(pid) = tag
        .split_once('x')
        .and_then(|(pid, _)| pid.parse::<libc::pid_t>().ok())
        .filter(|pid| *pid > 0)
    else {
        return Owner::Alive;
    };
    // SAFETY: kill(2) with signal 0 sends nothing; it only asks whether the pid exists.
    let result = unsafe { libc::kill(pid, 0) };
    let missing = result == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
    if missing { Owner::Dead } else { Owner::Alive }
}

/// The run tag in a leftover's name: `<tag>.…` or `.<tag>.…`; `None` when there is none.
pub(crate) fn tag_of(name: &str) -> Option<&str> {
    let name = name.strip_prefix('.').unwrap_or(name);
    let (tag, _) = name.split_once('.')?;
    is_tag(tag).then_some(tag)
}

fn is_tag(text: &str) -> bool {
    match text.split_once('x') {
        Some((pid, time)) => {
            !pid.is_empty()
                && !time.is_empty()
                && pid.bytes().all(|byte| byte.is_ascii_digit())
                && time.bytes().all(|byte| byte.is_ascii_hexdigit())
        }
        None => false,
    }
}

/// The name prefix of this run's staging trees of `kind` beside the output named `out_name`.
pub(crate) fn staging_prefix(out_name: &OsStr, kind: &str) -> String {
    format!(".{}.{kind}.{}.", out_name.to_string_lossy(), tag())
}

/// The name prefix of this run's temp files (in the cache's `tmp/`, or beside a file).
pub(crate) fn temp_prefix(purpose: &str) -> String {
    format!("{}.{purpose}-", tag())
}

/// Remove the temp files in `tmp_dir` whose owner is dead, then the dead runs' lock files in
/// `locks_dir`. Returns what was removed. Untagged files are left alone.
pub(crate) fn sweep_cache(tmp_dir: &Path, locks_dir: &Path) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    for (path, name) in listing(tmp_dir) {
        let Some(tag) = tag_of(&name) else { continue };
        if owner(locks_dir, tag) == Owner::Dead && remove_entry(&path).is_ok() {
            removed.push(path);
        }
    }
    for (path, name) in listing(locks_dir) {
        let Some(tag) = name
            .strip_prefix("run-")
            .and_then(|rest| rest.strip_suffix(".lock"))
        else {
            continue;
        };
        if is_tag(tag) && owner(locks_dir, tag) == Owner::Dead && fs::remove_file(&path).is_ok() {
            removed.push(path);
        }
    }
    removed
}

/// Remove the staging trees dead runs left beside `out` (same parent, named after `out`).
///
/// A tree set aside by an interrupted replacement (`old`) is moved back when `out` itself is
/// missing: it is then the only copy of the previous output. Returns what was removed.
pub(crate) fn sweep_beside(out: &Path, locks_dir: &Path) -> Vec<PathBuf> {
    let (Some(parent), Some(out_name)) = (out.parent(), out.file_name()) else {
        return Vec::new();
    };
    let stem = format!(".{}.", out_name.to_string_lossy());
    let mut removed = Vec::new();
    for (path, name) in listing(parent) {
        let Some(rest) = name.strip_prefix(&stem) else {
            continue;
        };
        let Some((kind, rest)) = rest.split_once('.') else {
            continue;
        };
        if !STAGING_KINDS.contains(&kind) {
            continue;
        }
        let Some(tag) = tag_of(rest) else { continue };
        if owner(locks_dir, tag) != Owner::Dead {
            continue;
        }
        if kind == "old" && fs::symlink_metadata(out).is_err() {
            let previous = path.join("tree");
            if fs::rename(&previous, out).is_ok() {
                tracing::warn!(
                    out = %out.display(),
                    "an interrupted run had set the previous tree aside; it was moved back"
                );
            }
        }
        match remove_entry(&path) {
            Ok(()) => removed.push(path),
            Err(error) => tracing::warn!(
                path = %path.display(),
                %error,
                "cannot remove what an interrupted run left behind"
            ),
        }
    }
    removed
}

/// The entries of `dir` with their names (empty when it cannot be read).
fn listing(dir: &Path) -> Vec<(PathBuf, String)> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            Some((entry.path(), name))
        })
        .collect()
}

/// Remove a file, or a directory tree (never following a symbolic link).
fn remove_entry(path: &Path) -> io::Result<()> {
    let metadata = fs::symlink_metadata(path)?;
    if metadata.is_dir() {
        make_removable(path);
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    }
}

/// Give every directory of an unpacked tree owner `rwx`, so a tree whose archive made some
/// directory read-only can still be removed.
fn make_removable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(metadata) = fs::symlink_metadata(dir)
        && metadata.is_dir()
    {
        let mode = metadata.permissions().mode();
        if mode & 0o700 != 0o700 {
            let _ = fs::set_permissions(dir, fs::Permissions::from_mode(mode | 0o700));
        }
        for (path, _) in listing(dir) {
            if fs::symlink_metadata(&path).is_ok_and(|metadata| metadata.is_dir()) {
                make_removable(&path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_found_only_in_tagged_names() {
        assert_eq!(tag_of("123x1f.download-abc.partial"), Some("123x1f"));
        assert_eq!(tag_of(".123x1f.write-abc"), Some("123x1f"));
        assert_eq!(tag_of("download-abc.partial"), None);
        assert_eq!(tag_of(".tmpAbc123"), None);
        assert_eq!(tag_of("x1f.a"), None);
        assert_eq!(tag_of("12x.a"), None);
        assert!(tag_of(&format!("{}.a", tag())).is_some());
    }

    #[test]
    fn a_held_lock_is_alive_and_a_released_one_dead() {
        let dir = tempfile::tempdir().expect("temp dir");
        let other = "1x1";
        let file = File::create(lock_path(dir.path(), other)).expect("lock file");
        file.lock().expect("lock");
        // flock locks conflict between open files even within one process.
        assert_eq!(owner(dir.path(), other), Owner::Alive);
        drop(file);
        assert_eq!(owner(dir.path(), other), Owner::Dead);
        assert_eq!(owner(dir.path(), tag()), Owner::Alive);
    }

    #[test]
    fn without_a_lock_file_the_pid_decides() {
        let dir = tempfile::tempdir().expect("temp dir");
        let own_pid = format!("{}x1", std::process::id());
        assert_eq!(owner(dir.path(), &own_pid), Owner::Alive);
        // Above the kernel's pid_max (at most 2^22): no process can have it.
        assert_eq!(owner(dir.path(), "99999999x1"), Owner::Dead);
    }

    #[test]
    fn sweeping_removes_only_dead_tagged_leftovers() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (tmp, locks) = (dir.path().join("tmp"), dir.path().join("locks"));
        fs::create_dir_all(&tmp).expect("tmp");
        fs::create_dir_all(&locks).expect("locks");
        let live = File::create(lock_path(&locks, "2x2")).expect("live lock");
        live.lock().expect("lock");
        File::create(lock_path(&locks, "3x3")).expect("dead lock");
        for name in [
            "2x2.download-a.partial",
            "3x3.download-b.partial",
            "legacy.partial",
        ] {
            fs::write(tmp.join(name), b"x").expect("temp file");
        }
        let removed = sweep_cache(&tmp, &locks);
        assert_eq!(
            removed,
            [tmp.join("3x3.download-b.partial"), lock_path(&locks, "3x3")]
        );
        assert!(tmp.join("2x2.download-a.partial").exists());
        assert!(tmp.join("legacy.partial").exists());
        assert!(lock_path(&locks, "2x2").exists());
    }

    #[test]
    fn sweeping_beside_restores_a_tree_set_aside_when_out_is_missing() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let locks = dir.path().join("locks");
        fs::create_dir_all(&locks).expect("locks");
        let parent = dir.path().join("build");
        let out = parent.join("spark");
        let aside = parent.join(".spark.old.99999999x1.abc");
        fs::create_dir_all(aside.join("tree")).expect("aside");
        fs::write(aside.join("tree/previous"), b"x").expect("previous");
        let staged = parent.join(".spark.unpack.99999999x1.def");
        fs::create_dir_all(staged.join("locked")).expect("staged");
        fs::set_permissions(staged.join("locked"), fs::Permissions::from_mode(0o500))
            .expect("read-only directory");
        let foreign = parent.join(".spark.notes");
        fs::write(&foreign, b"mine").expect("foreign");
        let live = parent.join(format!(".spark.unpack.{}.ghi", tag()));
        fs::create_dir_all(&live).expect("live");
        let mut removed = sweep_beside(&out, &locks);
        removed.sort();
        assert_eq!(removed, [aside, staged]);
        assert!(out.join("previous").is_file());
        assert!(foreign.exists() && live.exists());
    }
}
