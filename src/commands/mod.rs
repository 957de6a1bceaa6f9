//! One function per subcommand; `main` dispatches here.

pub mod build;
pub mod cache;
pub mod certs;
pub mod config;
pub mod fetch;
pub mod lock;
pub mod manifest;
pub mod outdated;
pub mod prepare;
pub mod push;

use std::sync::Arc;

use crate::cache::Cache;
use crate::cli::Command;
use crate::config::Config;
use crate::error::Error;
use crate::fetch::Fetcher;
use crate::progress::Reporter;

/// How a command that succeeded ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// It did its work.
    Done,
    /// `build --if-changed` found every image up to date: nothing built or pushed.
    NothingToDo,
}

/// Run `command` with the resolved configuration.
pub async fn run(
    command: Command,
    config: &Config,
    reporter: Arc<dyn Reporter>,
) -> Result<Completion, Error> {
    if let Command::Build(args) = &command {
        let outcome = build::run(config, args, reporter).await?;
        let nothing = args.if_changed && outcome.built.is_empty();
        return Ok(if nothing {
            Completion::NothingToDo
        } else {
            Completion::Done
        });
    }
    run_other(command, config, reporter)
        .await
        .map(|()| Completion::Done)
}

async fn run_other(
    command: Command,
    config: &Config,
    reporter: Arc<dyn Reporter>,
) -> Result<(), Error> {
    match command {
        Command::Fetch { target } => fetch::run(config, target, reporter).await,
        Command::Build(_) => unreachable!("build is dispatched by `run`"),
        Command::Push(args) => push::run(config, &args, reporter).await.map(|_| ()),
        Command::Prepare(args) => prepare::run(config, &args, reporter).await.map(|_| ()),
        Command::Manifest { kind } => manifest::run(config, &kind, reporter).await,
        Command::Resolve => prepare::resolve(config, reporter).await,
        Command::Certs { action } => certs::run(config, action, reporter.as_ref()),
        Command::Outdated => outdated::run(config, reporter).await,
        Command::Lock => lock::run(config, reporter).await,
        Command::Cache { action } => cache::run(config, action, reporter).await,
        Command::Config { action } => config::run(config, action),
    }
}

/// Open the cache (waiting while `cache clean` runs) and a fetcher storing into it.
pub async fn open_fetcher(config: &Config, reporter: Arc<dyn Reporter>) -> Result<Fetcher, Error> {
    let cache = open_cache(config).await?;
    Ok(Fetcher::new(config, Arc::new(cache), reporter)?)
}

/// Open the cache off the async threads: taking its shared lock may block.
pub async fn open_cache(config: &Config) -> Result<Cache, Error> {
    let root = config.cache_dir.clone();
    blocking(move || Cache::open(&root).map_err(Error::from)).await
}

/// The Spark tarball (fetched through the cache), the member paths facts are read from
/// (remembered in the cache), and those facts.
pub async fn spark_listing(
    config: &Config,
    fetcher: &Fetcher,
) -> Result<
    (
        crate::fetch::Fetched,
        Vec<String>,
        crate::inspect::DistributionFacts,
    ),
    Error,
> {
    let spark = fetcher.fetch(&crate::plan::spark(config)).await?;
    let cache = Arc::clone(fetcher.cache());
    let artifact = spark.artifact.clone();
    let limits = config.extract;
    let members =
        blocking(move || Ok(crate::inspect::spark_members(&cache, &artifact, limits)?)).await?;
    let facts = crate::inspect::distribution_facts(&members, &spark.spec.file_name)?;
    Ok((spark, members, facts))
}

/// Run blocking work (archive reads, locks, hashing whole files) on the blocking pool.
pub async fn blocking<T, F>(work: F) -> Result<T, Error>
where
    F: FnOnce() -> Result<T, Error> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|join| Error::Runtime(format!("a background task failed: {join}")))?
}
