//! `imgforge config show`: the effective configuration and where each value came from.

use serde_json::json;

use crate::cli::ConfigAction;
use crate::config::Config;
use crate::error::Error;
use crate::output;

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
        let assignment = format!("{} = {}", shown.key, shown.value);
        human.push_str(&format!("{assignment:<width$}  # {}\n", shown.source));
    }
    let values: Vec<_> = config
        .shown
        .iter()
        .map(|shown| {
            let value: toml::Value = toml::from_str::<toml::Table>(&format!("v = {}", shown.value))
                .ok()
                .and_then(|mut table| table.remove("v"))
                .unwrap_or_else(|| toml::Value::String(shown.value.clone()));
            json!({ "key": shown.key, "value": value, "source": shown.source.to_string() })
        })
        .collect();
    output::result(
        &config.output,
        &human,
        &json!({ "command": "config show", "values": values }),
    );
}
