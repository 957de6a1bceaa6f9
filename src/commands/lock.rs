//! `imgforge lock`: resolve everything a build uses — versions, every artifact's URL and
//! SHA-512, the base images' digests, the digests of the patch set and the image
//! definitions — into `imgforge.lock` (`build --locked` refuses a build that would differ).

use std::sync::Arc;

use serde_json::json;

use crate::config::Config;
use crate::error::Error;
use crate::output;
use crate::progress::Reporter;

/// Run `imgforge lock`: resolve and write the lock.
pub async fn run(config: &Config, reporter: Arc<dyn Reporter>) -> Result<(), Error> {
    let (path, lock) = crate::fingerprint::write_lock(config, reporter).await?;
    let human = format!(
        "wrote {}: Spark {} (Hadoop {}, hadoop-aws {}, SDK {}), {} artifacts, {} base images\n",
        path.display(),
        lock.versions.spark,
        lock.versions.hadoop,
        lock.versions.hadoop_aws,
        lock.versions.aws_sdk,
        lock.artifacts.len(),
        lock.base_images.len()
    );
    output::result(
        &config.output,
        &human,
        &json!({ "command": "lock", "path": path, "lock": lock }),
    );
    Ok(())
}
