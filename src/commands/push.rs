//! `imgforge push [--registry R] [--tag T]… [spark|spark-hs|hive-metastore|all]`: push the images
//! `imgforge build` made (see [`crate::publish::push`]).

use std::sync::Arc;

use serde_json::json;

use crate::cli::PushArgs;
use crate::config::Config;
use crate::images::ImageKind;
use crate::output;
use crate::progress::Reporter;
use crate::publish;

use super::{Failure, pushed_report};

/// Run `imgforge push`; a failure carries the tags pushed (and verified) before it.
pub async fn run(
    config: &Config,
    args: &PushArgs,
    reporter: Arc<dyn Reporter>,
) -> Result<(), Failure> {
    let kinds = ImageKind::wanted(&args.targets);
    // Checked before anything is read or contacted.
    let target = config
        .with_names(args.registry.as_deref(), &args.tags, &kinds)
        .map_err(crate::error::Error::from)?;
    let options = publish::options(config, &args.access)?;
    let mut pushed = Vec::new();
    let mut result = publish::push(config, &target, &kinds, &options, reporter, &mut pushed).await;
    if result.is_ok()
        && let Some(path) = &args.digests_file
    {
        result = crate::build::write_digests(path, &pushed).await;
    }
    let (human, images) = pushed_report(&pushed);
    match result {
        Ok(()) => {
            let json = json!({ "command": "push", "images": images });
            output::result(&config.output, &human, &json);
            Ok(())
        }
        Err(error) => Err(Failure {
            error,
            partial: serde_json::Map::from_iter([("images".to_string(), images)]),
        }),
    }
}
