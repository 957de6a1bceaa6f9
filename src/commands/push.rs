//! `imgforge push [--registry R] [--tag T]… [spark|spark-hs|hive-metastore|all]`: push the images
//! `imgforge build` made (see [`crate::publish::push`]).

use std::sync::Arc;

use serde_json::json;

use crate::cli::PushArgs;
use crate::config::Config;
use crate::error::Error;
use crate::images::ImageKind;
use crate::output;
use crate::progress::Reporter;
use crate::publish;

use super::pushed_report;

/// Run `imgforge push`.
pub async fn run(
    config: &Config,
    args: &PushArgs,
    reporter: Arc<dyn Reporter>,
) -> Result<(), Error> {
    let kinds = ImageKind::wanted(&args.targets);
    // Checked before anything is read or contacted.
    let target = config.with_names(args.registry.as_deref(), &args.tags, &kinds)?;
    let options = publish::options(config, &args.access)?;
    let pushed = publish::push(config, &target, &kinds, &options, reporter).await?;
    if let Some(path) = &args.digests_file {
        crate::build::write_digests(path, &pushed).await?;
    }
    let (human, images) = pushed_report(&pushed);
    let json = json!({ "command": "push", "images": images });
    output::result(&config.output, &human, &json);
    Ok(())
}
