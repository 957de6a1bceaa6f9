//! `imgforge init`: write a commented starter `imgforge.toml` (see [`crate::starter`]).

use serde_json::json;

use crate::cli::GlobalArgs;
use crate::config::{Config, OutputOptions};
use crate::error::Error;
use crate::output;
use crate::starter;

/// Run `imgforge init`. It runs before (and without) the configuration: the file it writes
/// is the configuration, and `--config` names a file that does not exist yet.
pub fn run(args: &GlobalArgs) -> Result<(), Error> {
    let path = Config::file_path(args);
    starter::write(&path)?;
    let options = OutputOptions {
        quiet: args.quiet,
        verbose: args.verbose,
        no_progress: args.no_progress,
        json: args.json,
    };
    let human = format!(
        "wrote {}: fill in [images] registry, then check it with `imgforge config show`\n",
        path.display()
    );
    output::result(
        &options,
        &human,
        &json!({ "command": "init", "path": path }),
    );
    Ok(())
}
