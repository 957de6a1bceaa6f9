//! `imgforge outdated`: newer upstream releases — patch releases of the configured Spark line
//! and newer tags of the base images — reported, never applied.

use std::sync::Arc;

use serde_json::json;

use crate::config::Config;
use crate::error::Error;
use crate::outdated;
use crate::output;
use crate::progress::Reporter;
use crate::publish;

/// Run `imgforge outdated`.
pub async fn run(config: &Config, reporter: Arc<dyn Reporter>) -> Result<(), Error> {
    let updates = outdated::spark_updates(config).await?;
    let bases = publish::base_updates(config, reporter).await;
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
    for base in &bases {
        if let Some(digest) = &base.moved {
            human.push_str(&format!(
                "base {}: the registry serves a new build of this tag ({digest}); the next build --if-changed pulls it and rebuilds the images on it\n",
                base.image
            ));
        }
        match (&base.error, base.newer.is_empty()) {
            (Some(error), _) => {
                human.push_str(&format!("base {}: cannot check: {error}\n", base.image))
            }
            (None, true) => human.push_str(&format!(
                "base {}: no newer tag of the same form\n",
                base.image
            )),
            (None, false) => human.push_str(&format!(
                "base {}: newer tags {}\n",
                base.image,
                base.newer.join(", ")
            )),
        }
    }
    let json = json!({
        "command": "outdated",
        "spark": {
            "current": updates.current,
            "newer_patches": patches,
            "newest": newest,
            "listing": updates.listing_url,
        },
        "base_images": bases.iter().map(|base| json!({
            "image": base.image,
            "newer_tags": base.newer,
            "moved_digest": base.moved,
            "error": base.error,
        })).collect::<Vec<_>>(),
    });
    output::result(&config.output, &human, &json);
    Ok(())
}
