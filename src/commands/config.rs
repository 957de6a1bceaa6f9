//! `imgforge config show`: the effective configuration and where each value came from.

use serde_json::json;

use crate::cli::ConfigAction;
use crate::config::Config;
use crate::error::Error;
use crate::output;
use crate::redact::redact_text;

/// Run `imgforge config <action>`.
pub fn run(config: &Config, action: ConfigAction) -> Result<(), Error> {
    match action {
        ConfigAction::Show => show(config),
    }
    Ok(())
}

fn show(config: &Config) {
    let width = config
        .shown
        .iter()
        .map(|shown| shown.key.len() + shown.value.len() + 3)
        .max()
        .unwrap_or(0);
    let mut human = String::new();
    for shown in &config.shown {
        // A mirror URL may carry credentials; `config show` is for sharing, so they are masked.
        let assignment = format!("{} = {}", shown.key, redact_text(&shown.value));
        human.push_str(&format!("{assignment:<width$}  # {}\n", shown.source));
    }
    let values: Vec<_> = config
        .shown
        .iter()
        .map(|shown| {
            let text = redact_text(&shown.value);
            let value: toml::Value = toml::from_str::<toml::Table>(&format!("v = {text}"))
                .ok()
                .and_then(|mut table| table.remove("v"))
                .unwrap_or_else(|| toml::Value::String(text.into_owned()));
            json!({ "key": shown.key, "value": value, "source": shown.source.to_string() })
        })
        .collect();
    output::result(
        &config.output,
        &human,
        &json!({ "command": "config show", "values": values }),
    );
}
