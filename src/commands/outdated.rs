//! `imgforge outdated`: newer upstream releases, reported, never applied.

use serde_json::json;

use crate::config::Config;
use crate::error::Error;
use crate::outdated;
use crate::output;

/// Run `imgforge outdated`.
pub async fn run(config: &Config) -> Result<(), Error> {
    let updates = outdated::spark_updates(config).await?;
    let patches: Vec<String> = updates
        .newer_patches
        .iter()
        .map(ToString::to_string)
        .collect();
    let newest = updates.newest.as_ref().map(ToString::to_string);
    let mut human = if patches.is_empty() {
        format!(
            "spark {}: no newer patch release of its line\n",
            updates.current
        )
    } else {
        format!(
            "spark {}: newer patch releases {}\n",
            updates.current,
            patches.join(", ")
        )
    };
    if let Some(newest) = &newest {
        human.push_str(&format!("  newest Spark release: {newest}\n"));
    }
    human.push_str(&format!(
        "  (from {}; set [spark] version to move)\n",
        updates.listing_url
    ));
    let json = json!({
        "command": "outdated",
        "spark": {
            "current": updates.current,
            "newer_patches": patches,
            "newest": newest,
            "listing": updates.listing_url,
        },
    });
    output::result(&config.output, &human, &json);
    Ok(())
}
