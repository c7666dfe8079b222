//! msock's config file: `config.toml` in the config directory (`$MSOCK_CONFIG_DIR`, else
//! `$XDG_CONFIG_HOME/msock`, else `~/.config/msock`). It may name the default relay for
//! `--code`:
//!
//! ```toml
//! relay = "relay.example.net:7480"
//! ```

use std::path::PathBuf;

/// The config file's path (None without a config directory).
pub fn path() -> Option<PathBuf> {
    crate::runtime::keys::config_dir()
        .ok()
        .map(|d| d.join("config.toml"))
}

/// What the config file says.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The default relay, HOST[:PORT].
    pub relay: Option<String>,
}

/// Reads the config file (a missing one is an empty config); Err says what is wrong with it.
pub fn load() -> Result<Config, String> {
    let Some(p) = path() else {
        return Ok(Config::default());
    };
    let text = match std::fs::read_to_string(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
        Err(e) => return Err(format!("cannot read {}: {e}", p.display())),
    };
    toml::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))
}

/// The relay to use for `--code`: `given` if any, else the config file's; Err explains how
/// to run and name one.
pub fn relay(given: Option<&str>) -> Result<String, String> {
    if let Some(r) = given {
        return Ok(r.to_owned());
    }
    if let Some(r) = load()?.relay {
        return Ok(r);
    }
    let file = path().map_or("config.toml in the config directory".into(), |p| {
        p.display().to_string()
    });
    Err(format!(
        "--code needs a relay: give one (HOST[:PORT]), or name a default in {file}: a line \
         relay = \"HOST:PORT\". A relay is any reachable machine running `msock proxy` \
         (port 7480 by default: `msock proxy --listen 7480`)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_line_parses_and_unknown_keys_are_refused() {
        let c: Config = toml::from_str("relay = \"r.example:7480\"\n").unwrap();
        assert_eq!(c.relay.as_deref(), Some("r.example:7480"));
        assert!(toml::from_str::<Config>("rely = \"x\"").is_err());
        assert!(toml::from_str::<Config>("relay = 7").is_err());
        assert_eq!(relay(Some("given:1")).unwrap(), "given:1");
    }
}
