//! One function per subcommand; `main` dispatches here. Each turns its arguments into one
//! library call and reports the result through [`crate::output`]; no command calls another.

pub(crate) mod build;
pub(crate) mod cache;
pub(crate) mod certs;
pub(crate) mod config;
pub(crate) mod fetch;
pub mod init;
pub(crate) mod lock;
pub(crate) mod manifest;
pub(crate) mod outdated;
pub(crate) mod prepare;
pub(crate) mod push;

use std::sync::Arc;

use serde_json::json;

use crate::certs::CaSet;
use crate::cli::Command;
use crate::config::Config;
use crate::error::Error;
use crate::progress::Reporter;
use crate::push::PushedImage;

/// How a command that succeeded ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// It did its work.
    Done,
    /// `build --if-changed --exit-code` found every image up to date: nothing built or pushed.
    NothingToDo,
}

/// A command that failed, and the results it had before it failed.
#[derive(Debug)]
pub struct Failure {
    /// Why it failed.
    pub error: Error,
    /// Fields of the command's JSON report known before the failure (the images built
    /// before a build failed, say); empty when nothing is.
    pub partial: serde_json::Map<String, serde_json::Value>,
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure {
            error,
            partial: serde_json::Map::new(),
        }
    }
}

/// The `command` field of `command`'s JSON report, successful or not.
pub fn name(command: &Command) -> &'static str {
    use crate::cli::{CacheAction, CertsAction, ConfigAction};
    match command {
        Command::Init => "init",
        Command::Fetch { .. } => "fetch",
        Command::Prepare(_) => "prepare",
        Command::Build(_) => "build",
        Command::Push(_) => "push",
        Command::Manifest { .. } => "manifest",
        Command::Resolve => "resolve",
        Command::Certs { action } => match action {
            CertsAction::Check { .. } => "certs check",
            CertsAction::Init { .. } => "certs init",
        },
        Command::Lock => "lock",
        Command::Outdated => "outdated",
        Command::Cache { action } => match action {
            CacheAction::Path => "cache path",
            CacheAction::Ls => "cache ls",
            CacheAction::Verify => "cache verify",
            CacheAction::Clean => "cache clean",
        },
        Command::Config { action } => match action {
            ConfigAction::Show => "config show",
        },
    }
}

/// Run `command` with the resolved configuration.
pub async fn run(
    command: Command,
    config: &Config,
    reporter: Arc<dyn Reporter>,
) -> Result<Completion, Failure> {
    let done = Completion::Done;
    Ok(match command {
        Command::Build(args) => {
            let outcome = build::run(config, &args, reporter).await?;
            // A run with nothing to do succeeded; exit 8 only for scripts that ask for it.
            match args.if_changed && args.exit_code && outcome.built.is_empty() {
                true => Completion::NothingToDo,
                false => done,
            }
        }
        // `main` runs `init::run` itself, before any configuration is loaded.
        Command::Init => Err(Error::Runtime("init runs without a configuration".into()))?,
        Command::Fetch { target } => fetch::run(config, target, reporter).await.map(|()| done)?,
        Command::Push(args) => push::run(config, &args, reporter).await.map(|()| done)?,
        Command::Prepare(args) => prepare::run(config, &args, reporter).await.map(|()| done)?,
        Command::Manifest { kind } => manifest::run(config, &kind, reporter)
            .await
            .map(|()| done)?,
        Command::Resolve => prepare::resolve(config, reporter).await.map(|()| done)?,
        Command::Certs { action } => {
            certs::run(config, action, reporter.as_ref()).map(|()| done)?
        }
        Command::Outdated => outdated::run(config, reporter).await.map(|()| done)?,
        Command::Lock => lock::run(config, reporter).await.map(|()| done)?,
        Command::Cache { action } => cache::run(config, action, reporter).await.map(|()| done)?,
        Command::Config { action } => config::run(config, action).map(|()| done)?,
    })
}

/// The certificates as JSON values (`certs check`, `prepare`).
fn certificates_json(set: &CaSet) -> Vec<serde_json::Value> {
    set.certs
        .iter()
        .map(|cert| {
            json!({
                "alias": cert.alias,
                "file": cert.path,
                "subject": cert.subject,
                "sha256_fingerprint": cert.sha256_fingerprint,
            })
        })
        .collect()
}

/// The human lines and JSON entries of pushed images (`push`, `build --push`); an image
/// whose push failed before any tag was verified is left out.
fn pushed_report(pushed: &[PushedImage]) -> (String, serde_json::Value) {
    let pushed: Vec<&PushedImage> = pushed
        .iter()
        .filter(|image| !image.tags.is_empty())
        .collect();
    let mut human = String::new();
    for image in &pushed {
        for tag in &image.tags {
            human.push_str(&format!("{:<15} {tag}\n", image.image));
        }
    }
    (human, json!(pushed))
}
