//! A headless Chromium driven over the DevTools protocol (CDP): just what the browser tests
//! need, over the WebSocket client the tests already use (no CDP crate to compile): open a
//! page, evaluate JavaScript (awaiting its promise) and read the value back, save a
//! screenshot.
//!
//! [`launch`] finds Debian's `chromium` (or `$WSPUBSUB_CHROMIUM`); when there is none it
//! fails the test if `CI` is set (the CI runner sets it, `.ci/deps` installs chromium) and
//! otherwise skips it with a printed reason. Each [`Browser`] has its own profile directory
//! and process group, both gone when it is dropped.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use wspubsub_testkit::TIMEOUT;

/// Names of the browser binary looked up in `PATH`, Debian's first.
const BINARIES: &[&str] = &[
    "chromium",
    "chromium-browser",
    "google-chrome-stable",
    "google-chrome",
];

/// What chromium prints on stderr, before the browser endpoint's URL, once it listens.
const DEVTOOLS_LINE: &str = "DevTools listening on ";

/// How [`Browser::uncaught`] finds uncaught exceptions among the console lines.
const UNCAUGHT: &str = "uncaught: ";

/// Bytes of the browser's stderr kept for failure messages (the latest).
const STDERR_KEPT: usize = 64 * 1024;

/// Starts a headless browser, or says why there is none: `None` means "skip this test"
/// (printed, and only when `CI` is unset).
pub(crate) async fn launch() -> Option<Browser> {
    let binary = std::env::var_os("WSPUBSUB_CHROMIUM")
        .map(PathBuf::from)
        .or_else(find_in_path);
    match binary {
        Some(binary) => Some(Browser::start(&binary).await),
        None if std::env::var_os("CI").is_some() => panic!(
            "no chromium in PATH and CI is set: browser tests must run in CI \
             (`.ci/deps` installs Debian's chromium)"
        ),
        None => {
            say("skipped: no chromium in PATH (install it: .ci/deps; with CI set this fails)");
            None
        }
    }
}

/// Writes a line to the test's stderr past the test harness's output capture, so that it is
/// in the log of a passing run too (skips, screenshot paths).
pub(crate) fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// The first [`BINARIES`] name found in `PATH`.
fn find_in_path() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| BINARIES.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// A running headless chromium with one page (tab) attached.
pub(crate) struct Browser {
    /// The browser process, leader of its own process group (its helpers are in it).
    child: Child,
    /// The browser-wide DevTools connection; page commands carry the page's session id.
    cdp: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The page's CDP session.
    session: String,
    /// Id of the last command sent.
    last_id: u64,
    /// Events read while waiting for a command's answer, for [`Browser::wait_event`].
    events: VecDeque<Value>,
    /// The page's console output and uncaught exceptions, for failure messages.
    console: Vec<String>,
    /// The browser's stderr, for failure messages.
    stderr: Arc<Mutex<String>>,
    /// The profile directory, removed on drop.
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts `binary` headless with a fresh profile and attaches to a blank page.
    async fn start(binary: &Path) -> Browser {
        let profile = tempfile::Builder::new()
            .prefix("wspubsub-chromium-")
            .tempdir()
            .expect("a profile directory");
        let mut child = Command::new(binary)
            .args([
                "--headless",
                // The tests load only their own pages from loopback; a sandbox also needs
                // a non-root user and namespaces CI containers often lack.
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--window-size=1024,768",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("start {}: {error}", binary.display()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let endpoint = read_devtools_url(&mut child, Arc::clone(&stderr));
        let url = match tokio::time::timeout(TIMEOUT, endpoint).await {
            Ok(Ok(url)) => url,
            _ => {
                kill_group(&mut child);
                panic!(
                    "{} did not report its DevTools endpoint within {TIMEOUT:?}:\n{}",
                    binary.display(),
                    stderr.lock().unwrap_or_else(PoisonError::into_inner)
                );
            }
        };
        let (cdp, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .unwrap_or_else(|error| panic!("connect to the browser at {url}: {error}"));
        let mut browser = Browser {
            child,
            cdp,
            session: String::new(),
            last_id: 0,
            events: VecDeque::new(),
            console: Vec::new(),
            stderr,
            _profile: profile,
        };
        let target = browser
            .command(None, "Target.createTarget", json!({ "url": "about:blank" }))
            .await;
        let attached = browser
            .command(
                None,
                "Target.attachToTarget",
                json!({ "targetId": target["targetId"], "flatten": true }),
            )
            .await;
        browser.session = attached["sessionId"]
            .as_str()
            .expect("attachToTarget answers a sessionId")
            .to_owned();
        browser.page("Page.enable", json!({})).await;
        browser.page("Runtime.enable", json!({})).await;
        browser
    }

    /// Loads `url` in the page and waits for its `load` event (its module scripts have run).
    pub(crate) async fn open(&mut self, url: &str) {
        self.events.clear();
        let navigated = self.page("Page.navigate", json!({ "url": url })).await;
        if let Some(error) = navigated.get("errorText") {
            panic!("navigate to {url}: {error}");
        }
        self.wait_event("Page.loadEventFired").await;
    }

    /// Evaluates `function(args...)` in the page (each argument as its JSON), awaits the
    /// promise it returns, and returns its value (as JSON); a throw or a rejection fails the
    /// test with the page's console output.
    pub(crate) async fn call(&mut self, function: &str, args: &[Value]) -> Value {
        let args: Vec<String> = args.iter().map(Value::to_string).collect();
        let expression = format!("{function}({})", args.join(", "));
        self.evaluate(&expression).await
    }

    /// Evaluates `expression` in the page, awaiting a promise; its value as JSON.
    pub(crate) async fn evaluate(&mut self, expression: &str) -> Value {
        let params = json!({
            "expression": expression,
            "awaitPromise": true,
            "returnByValue": true,
        });
        let evaluated = tokio::time::timeout(TIMEOUT, self.page("Runtime.evaluate", params)).await;
        let Ok(result) = evaluated else {
            panic!(
                "{expression} did not settle within {TIMEOUT:?}; console:\n{}",
                self.console.join("\n")
            );
        };
        if let Some(details) = result.get("exceptionDetails") {
            let description = details["exception"]["description"]
                .as_str()
                .or_else(|| details["text"].as_str())
                .unwrap_or("(no description)");
            panic!(
                "{expression} failed: {description}; console:\n{}",
                self.console.join("\n")
            );
        }
        result["result"]["value"].clone()
    }

    /// Waits until the JavaScript `expression` is truthy in the page, checking it at once and
    /// after every change to the DOM (no polling); returns its value.
    pub(crate) async fn wait_for_dom(&mut self, expression: &str) -> Value {
        let waiting = format!(
            "new Promise((resolve) => {{
               const value = () => ({expression});
               const observer = new MutationObserver(() => {{
                 const now = value();
                 if (now) {{ observer.disconnect(); resolve(now); }}
               }});
               const now = value();
               if (now) resolve(now);
               else observer.observe(document, {{ subtree: true, childList: true, characterData: true, attributes: true }});
             }})"
        );
        self.evaluate(&waiting).await
    }

    /// Saves a PNG of the page as `name`.png under the test's target directory, prints its
    /// path (the CI log names it as an artifact) and returns it.
    pub(crate) async fn screenshot(&mut self, name: &str) -> PathBuf {
        let shot = self
            .page("Page.captureScreenshot", json!({ "format": "png" }))
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(
                shot["data"]
                    .as_str()
                    .expect("captureScreenshot answers data"),
            )
            .expect("the screenshot is base64");
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-screenshots");
        std::fs::create_dir_all(&dir).expect("the screenshot directory");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write the screenshot");
        say(&format!("screenshot saved: {}", path.display()));
        path
    }

    /// Sends a command to the page.
    async fn page(&mut self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        self.command(Some(&session), method, params).await
    }

    /// Sends a command (to the browser, or to a page's session) and returns its result,
    /// keeping the events that come first.
    async fn command(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.last_id += 1;
        let id = self.last_id;
        let mut request = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            request["sessionId"] = json!(session);
        }
        if let Err(error) = self.cdp.send(Message::text(request.to_string())).await {
            panic!(
                "send {method} to the browser: {error}{}",
                self.diagnostics()
            );
        }
        loop {
            let message = self.read().await;
            if message["id"] == id {
                if let Some(error) = message.get("error") {
                    panic!("{method} failed: {error}{}", self.diagnostics());
                }
                return message["result"].clone();
            }
            self.events.push_back(message);
        }
    }

    /// Waits for the page's event `method`.
    async fn wait_event(&mut self, method: &str) -> Value {
        if let Some(index) = self
            .events
            .iter()
            .position(|event| event["method"] == method)
        {
            return self.events.remove(index).unwrap_or_default();
        }
        loop {
            let message = self.read().await;
            if message["method"] == method {
                return message;
            }
        }
    }

    /// The next message from the browser (console output and exceptions noted on the way).
    async fn read(&mut self) -> Value {
        loop {
            // Longer than `evaluate`'s own bound, which fails with a better message.
            let next = tokio::time::timeout(2 * TIMEOUT, self.cdp.next()).await;
            let text = match next {
                Ok(Some(Ok(Message::Text(text)))) => text,
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(error))) => {
                    panic!("the DevTools connection: {error}{}", self.diagnostics())
                }
                Ok(None) => panic!(
                    "the browser closed its DevTools connection{}",
                    self.diagnostics()
                ),
                Err(_) => panic!(
                    "nothing from the browser within {TIMEOUT:?}{}",
                    self.diagnostics()
                ),
            };
            let message: Value = serde_json::from_str(&text).expect("CDP messages are JSON");
            match message["method"].as_str() {
                Some("Runtime.consoleAPICalled") => {
                    let args = message["params"]["args"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    let words: Vec<String> = args
                        .iter()
                        .map(|arg| arg.get("value").unwrap_or(&arg["description"]).to_string())
                        .collect();
                    self.console.push(words.join(" "));
                }
                Some("Runtime.exceptionThrown") => {
                    let details = &message["params"]["exceptionDetails"];
                    self.console.push(format!(
                        "{UNCAUGHT}{}",
                        details["exception"]["description"]
                            .as_str()
                            .unwrap_or_else(|| details["text"].as_str().unwrap_or("?"))
                    ));
                }
                _ => return message,
            }
        }
    }

    /// Exceptions the page threw and did not catch, so far.
    pub(crate) fn uncaught(&self) -> Vec<&str> {
        self.console
            .iter()
            .filter(|line| line.starts_with(UNCAUGHT))
            .map(String::as_str)
            .collect()
    }

    /// The page's console and the browser's stderr, for a failure message.
    fn diagnostics(&self) -> String {
        format!(
            "\npage console:\n{}\nbrowser stderr:\n{}",
            self.console.join("\n"),
            self.stderr.lock().unwrap_or_else(PoisonError::into_inner)
        )
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}

/// Kills the browser's process group (the browser and its renderers) and reaps the browser.
fn kill_group(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
    let _ = child.wait();
}

/// Reads the browser's stderr on a thread of its own, into `log`; the DevTools endpoint's
/// URL once it is printed.
fn read_devtools_url(child: &mut Child, log: Arc<Mutex<String>>) -> oneshot::Receiver<String> {
    let stderr = child.stderr.take().expect("stderr is piped");
    let (found, url) = oneshot::channel();
    std::thread::spawn(move || {
        let mut found = Some(found);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix(DEVTOOLS_LINE)
                && let Some(found) = found.take()
            {
                let _ = found.send(url.trim().to_owned());
            }
            let mut log = log.lock().unwrap_or_else(PoisonError::into_inner);
            if log.len() > STDERR_KEPT {
                let cut = log.len() - STDERR_KEPT / 2;
                let cut = (cut..log.len())
                    .find(|&at| log.is_char_boundary(at))
                    .unwrap_or(0);
                log.drain(..cut);
            }
            log.push_str(&line);
            log.push('\n');
        }
    });
    url
}
