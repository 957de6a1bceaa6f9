//! Secrets never leave: the one place that decides how a URL or a line of text is shown.
//!
//! A mirror URL may carry credentials (`https://user:pass@host/…`). Every URL imgforge shows
//! goes through [`redact_url`]; every URL it records (the cache index, `imgforge.lock`) goes
//! through [`strip_url`]; and everything written to the terminal (progress, errors, `--json`,
//! tracing) passes [`redact_text`] on the way out, a safety net for a URL that reached a
//! message some other way (inside a library's error, say). A credential helper's output is
//! shown only through [`redact_line`].

use std::borrow::Cow;

use url::Url;

/// What replaces a secret.
pub(crate) const MASK: &str = "***";

/// At most this many characters of a redacted line are shown.
const MAX_LINE_CHARS: usize = 200;

/// `url` for display: any user name and password replaced by [`MASK`]
/// (`https://***@host/path`).
pub(crate) fn redact_url(url: &Url) -> String {
    if url.username().is_empty() && url.password().is_none() {
        return url.to_string();
    }
    let mut shown = url.clone();
    // Setting credentials fails only for URLs that cannot have them (no host), which
    // cannot have credentials in the first place.
    let _ = shown.set_password(None);
    let _ = shown.set_username(MASK);
    shown.to_string()
}

/// `url` without its user name and password, for what imgforge records.
pub(crate) fn strip_url(url: &Url) -> Url {
    let mut stripped = url.clone();
    let _ = stripped.set_password(None);
    let _ = stripped.set_username("");
    stripped
}

/// [`strip_url`] for a URL held as text; text that is not a URL gets [`redact_text`].
pub(crate) fn strip_url_text(url: &str) -> String {
    match Url::parse(url) {
        Ok(parsed) => strip_url(&parsed).to_string(),
        Err(_) => redact_text(url).into_owned(),
    }
}

/// `text` with the user information of every `scheme://user:pass@host` in it replaced by
/// [`MASK`]. Borrowed when there is nothing to redact.
pub(crate) fn redact_text(text: &str) -> Cow<'_, str> {
    if !text.contains("://") || !text.contains('@') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut changed = false;
    while let Some(found) = rest.find("://") {
        let authority_start = found + 3;
        out.push_str(&rest[..authority_start]);
        let after = &rest[authority_start..];
        // The authority ends where the path, query or fragment starts, or where the URL ends
        // inside surrounding text.
        let authority_end = after
            .find(|c: char| {
                matches!(
                    c,
                    '/' | '?' | '#' | '"' | '\'' | '<' | '>' | '`' | ',' | ';' | ')'
                ) || c.is_whitespace()
            })
            .unwrap_or(after.len());
        let authority = &after[..authority_end];
        match authority.rfind('@') {
            Some(at) => {
                out.push_str(MASK);
                out.push_str(&authority[at..]);
                changed = true;
            }
            None => out.push_str(authority),
        }
        rest = &after[authority_end..];
    }
    out.push_str(rest);
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(text)
    }
}

/// Words that announce a secret value after `=` or `:` (compared case-insensitively).
const SECRET_WORDS: [&str; 8] = [
    "password",
    "passwd",
    "secret",
    "token",
    "auth",
    "authorization",
    "credential",
    "key",
];

/// One line of another program's output, fit to show: URL credentials masked, the value after
/// any `password=`, `"Secret": "…"`, `token:` and the like masked, a JSON object withheld
/// whole (a credential helper's answer holds the secret), and at most 200 characters.
pub(crate) fn redact_line(line: &str) -> String {
    let line = line.trim();
    if line.starts_with('{') || line.starts_with('[') {
        return "(output withheld: it looks like data that may hold the credentials)".into();
    }
    let line = redact_text(line);
    let mut out = String::with_capacity(line.len());
    let mut masking = false;
    let mut previous_word = String::new();
    let mut word = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if masking {
            // The value runs to the next separator; quotes around it are kept.
            if c.is_whitespace() || matches!(c, ',' | ';' | '&' | '}') {
                masking = false;
                out.push(c);
            } else if c == '"' || c == '\'' {
                out.push(c);
            }
            continue;
        }
        if c.is_alphanumeric() || c == '_' || c == '-' {
            word.push(c);
            out.push(c);
            continue;
        }
        if !word.is_empty() {
            previous_word = std::mem::take(&mut word);
        }
        out.push(c);
        if matches!(c, '=' | ':') && is_secret_word(&previous_word) {
            // Skip quotes and spaces before the value, then mask it.
            while let Some(next) = chars.peek() {
                if next.is_whitespace() || *next == '"' || *next == '\'' {
                    out.push(*next);
                    chars.next();
                } else {
                    break;
                }
            }
            out.push_str(MASK);
            masking = true;
        }
    }
    if out.chars().count() > MAX_LINE_CHARS {
        let cut: String = out.chars().take(MAX_LINE_CHARS).collect();
        return format!("{cut}…");
    }
    out
}

fn is_secret_word(word: &str) -> bool {
    let word = word.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|secret| {
        word == *secret
            || word.ends_with(&format!("_{secret}"))
            || word.ends_with(&format!("-{secret}"))
    })
}

/// A `tracing` writer that redacts what passes through it, line by line, before `inner`.
pub struct RedactingWriter<W> {
    inner: W,
}

impl<W> RedactingWriter<W> {
    /// Wrap `inner`.
    pub fn new(inner: W) -> Self {
        RedactingWriter { inner }
    }
}

impl<W: std::io::Write> std::io::Write for RedactingWriter<W> {
    fn write(&mut self, buffer: &[u8]) -> std::io::Result<usize> {
        // tracing's fmt layer writes one whole event per call, so a URL is never split.
        let text = String::from_utf8_lossy(buffer);
        self.inner.write_all(redact_text(&text).as_bytes())?;
        Ok(buffer.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_credentials() {
        let url = Url::parse("https://bob:hunter2@mirror.example/dist/").expect("url");
        assert_eq!(redact_url(&url), "https://***@mirror.example/dist/");
        assert_eq!(strip_url(&url).as_str(), "https://mirror.example/dist/");
        let plain = Url::parse("https://mirror.example/dist/").expect("url");
        assert_eq!(redact_url(&plain), "https://mirror.example/dist/");
        let user_only = Url::parse("http://token@127.0.0.1:8080/x").expect("url");
        assert_eq!(redact_url(&user_only), "http://***@127.0.0.1:8080/x");
    }

    #[test]
    fn text_is_redacted_wherever_a_url_sits() {
        assert_eq!(
            redact_text("could not fetch https://u:p@h.example/a (http://x@y:1/b) and ftp://z"),
            "could not fetch https://***@h.example/a (http://***@y:1/b) and ftp://z"
        );
        assert_eq!(
            redact_text("\"url\": \"https://a:b@c/d\""),
            "\"url\": \"https://***@c/d\""
        );
        assert!(matches!(
            redact_text("no secrets at user@host"),
            Cow::Borrowed(_)
        ));
        assert_eq!(
            redact_text("mail me@x.y or https://h/p@q"),
            "mail me@x.y or https://h/p@q"
        );
        assert_eq!(redact_text("https://u:p@w@h/x"), "https://***@h/x");
    }

    #[test]
    fn lines_from_other_programs_are_masked() {
        assert_eq!(
            redact_line("login failed: password=hunter2 for bob"),
            "login failed: password=*** for bob"
        );
        assert_eq!(
            redact_line("error: \"Secret\": \"hunter2\", user bob"),
            "error: \"Secret\": \"***\", user bob"
        );
        assert_eq!(redact_line("GITHUB_TOKEN: abc123"), "GITHUB_TOKEN: ***");
        assert!(!redact_line(r#"{"Username":"bob","Secret":"hunter2"}"#).contains("hunter2"));
        assert_eq!(
            redact_line("cannot reach https://bob:hunter2@reg.example"),
            "cannot reach https://***@reg.example"
        );
        assert_eq!(redact_line(&"x".repeat(500)).chars().count(), 201);
    }
}
