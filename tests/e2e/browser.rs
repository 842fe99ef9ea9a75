//! A headless Chromium driven through Debian's chromedriver, with waiting and screenshot helpers.

use std::future::Future;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;

/// Runs in every page before its own scripts: records console errors, uncaught exceptions,
/// rejected promises (a failed WASM import is one) and Content-Security-Policy violations.
const CAPTURE_ERRORS: &str = "window.__pageErrors = []; \
    const original = console.error.bind(console); \
    console.error = (...args) => { window.__pageErrors.push(args.map(String).join(' ')); original(...args); }; \
    window.addEventListener('error', (e) => window.__pageErrors.push(String(e.message))); \
    window.addEventListener('unhandledrejection', (e) => window.__pageErrors.push(`unhandled rejection: ${e.reason}`)); \
    document.addEventListener('securitypolicyviolation', (e) => window.__pageErrors.push(`CSP blocked ${e.blockedURI} (${e.violatedDirective})`));";

/// A Chrome DevTools Protocol command sent through chromedriver.
#[derive(Debug)]
struct Cdp {
    cmd: &'static str,
    params: serde_json::Value,
}

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/goog/cdp/execute", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        let body = serde_json::json!({ "cmd": self.cmd, "params": self.params });
        (http::Method::POST, Some(body.to_string()))
    }
}

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long a page may take to hydrate before a test fails.
const HYDRATION_BOUND: Duration = Duration::from_secs(60);

pub struct Browser {
    pub client: Client,
    driver: Child,
    profile: PathBuf,
}

impl Browser {
    pub async fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{CHROMEDRIVER} must be installed (scripts/bootstrap.sh installs it): {e}"));
        let profile = std::env::temp_dir().join(format!("modelgate-chromium-{}", uuid::Uuid::new_v4().simple()));
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--no-first-run", "--disable-quic", "--window-size=1360,1000",
                    format!("--user-data-dir={}", profile.display()),
                ]
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        let client = loop {
            match ClientBuilder::new(HttpConnector::new()).capabilities(caps.clone()).connect(&url).await {
                Ok(client) => break client,
                Err(e) if started.elapsed() > Duration::from_secs(20) => panic!("chromedriver did not start: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        client
            .issue_cmd(Cdp {
                cmd: "Page.addScriptToEvaluateOnNewDocument",
                params: serde_json::json!({ "source": CAPTURE_ERRORS }),
            })
            .await
            .expect("install the console-error recorder");
        Self { client, driver, profile }
    }

    /// Sends a Chrome DevTools Protocol command (`Network.clearBrowserCache`, …).
    pub async fn cdp(&self, cmd: &'static str, params: serde_json::Value) -> serde_json::Value {
        self.client.issue_cmd(Cdp { cmd, params }).await.unwrap_or_else(|e| panic!("{cmd}: {e}"))
    }

    /// What the browser took over the wire for this document once its fetches have settled (no new
    /// one for a second): the document's bytes, then each file's, as Resource Timing reports them
    /// (headers and the encoded body; 0 for a file served from the cache).
    pub async fn transferred(&self) -> Vec<(String, u64)> {
        let script = "const nav = performance.getEntriesByType('navigation')[0]; \
            return [[location.pathname, nav.transferSize]].concat(performance.getEntriesByType('resource') \
                .map(e => [new URL(e.name).pathname, e.transferSize]));";
        let mut last: Vec<(String, u64)> = Vec::new();
        let mut settled_at = Instant::now();
        loop {
            let value = self.client.execute(script, vec![]).await.unwrap_or_default();
            let now: Vec<(String, u64)> = serde_json::from_value(value).unwrap_or_default();
            if now != last {
                last = now;
                settled_at = Instant::now();
            } else if settled_at.elapsed() > Duration::from_secs(1) {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Errors the page logged or threw since it loaded.
    pub async fn page_errors(&self) -> Vec<String> {
        let value = self.client.execute("return window.__pageErrors || [];", vec![]).await.unwrap_or_default();
        serde_json::from_value(value).unwrap_or_default()
    }

    /// The WASM files this document has fetched so far: the main bundle, then each lazy route's chunk.
    pub async fn wasm_fetched(&self) -> Vec<String> {
        let script =
            "return performance.getEntriesByType('resource').map(e => e.name).filter(n => n.endsWith('.wasm'));";
        let value = self.client.execute(script, vec![]).await.unwrap_or_default();
        serde_json::from_value(value).unwrap_or_default()
    }

    /// Waits until the WASM has hydrated the page (the app marks `<html data-hydrated>`). The bound
    /// is generous: four browsers loading at once on two cores hydrate in 1–4 s. A page that never
    /// hydrates fails with the files it fetched (a 404 for its WASM glue was once the cause).
    pub async fn wait_hydrated(&self) {
        let waited = self.client.wait().at_most(HYDRATION_BOUND).for_element(Locator::Css("html[data-hydrated]")).await;
        if waited.is_err() {
            self.screenshot("failed-hydration").await;
            let url = self.client.current_url().await.map(|u| u.to_string()).unwrap_or_default();
            panic!(
                "{url} did not hydrate within {HYDRATION_BOUND:?}; page errors: {:#?}; the page's own files: {:#?}",
                self.page_errors().await,
                self.page_fetches().await
            );
        }
    }

    /// The document's state and every file it fetched from this origin, with status and timing.
    async fn page_fetches(&self) -> serde_json::Value {
        let script = "return [document.readyState].concat(performance.getEntriesByType('resource') \
            .filter(e => e.name.startsWith(location.origin)) \
            .map(e => `${e.name} status ${e.responseStatus} from ${Math.round(e.startTime)} ms \
                for ${Math.round(e.duration)} ms, ${e.transferSize} bytes`));";
        self.client.execute(script, vec![]).await.unwrap_or_default()
    }
}

impl Browser {
    /// Waits up to 10 s for an element, failing with a screenshot, the URL and the page's errors.
    pub async fn wait_for(&self, css: &str) -> fantoccini::elements::Element {
        match self.client.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css(css)).await {
            Ok(element) => element,
            Err(_) => {
                self.screenshot("failed-wait").await;
                let url = self.client.current_url().await.map(|u| u.to_string()).unwrap_or_default();
                panic!("no {css} on {url} within 10 s; page errors: {:#?}", self.page_errors().await);
            }
        }
    }

    /// The text of the element `css` selects once it is there, read again should the page
    /// re-render it between finding and reading it (a stale element).
    pub async fn text_of(&self, css: &str) -> String {
        self.wait_for(css).await;
        self.eventually(&format!("{css} is read"), || async {
            self.client.find(Locator::Css(css)).await.ok()?.text().await.ok()
        })
        .await
    }

    /// Opens `url` or, with `reload`, reloads the page it is on; then waits for it to hydrate.
    pub async fn open_or_reload(&self, url: &str, reload: bool) {
        if reload {
            self.reload().await;
        } else {
            self.client.goto(url).await.unwrap();
            self.wait_hydrated().await;
        }
    }

    /// Reloads the page and waits for it to hydrate.
    pub async fn reload(&self) {
        self.client.refresh().await.unwrap();
        self.wait_hydrated().await;
    }

    /// The text `href` answers the page's own `fetch` (with its session).
    pub async fn fetch_text(&self, href: &str) -> String {
        let text = self
            .client
            .execute_async(
                "const [href, done] = arguments; fetch(href).then(r => r.text()).then(done, e => done(String(e)));",
                vec![serde_json::json!(href)],
            )
            .await
            .unwrap();
        text.as_str().unwrap_or_default().to_string()
    }

    /// Clicks the button labelled `label` inside `scope` once there is one, finding it again
    /// should the page re-render it between finding and clicking (a stale element).
    pub async fn click_button(&self, scope: &str, label: &str) {
        self.eventually(&format!("{label} in {scope} is clicked"), || async {
            for button in self.client.find_all(Locator::Css(&format!("{scope} button"))).await.ok()? {
                if button.text().await.ok()?.trim() == label {
                    return button.click().await.ok();
                }
            }
            None
        })
        .await
    }

    /// Polls `check` until it yields `Some`, failing after 10 seconds with `what`.
    pub async fn eventually<T, F, Fut>(&self, what: &str, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let started = Instant::now();
        loop {
            if let Some(v) = check().await {
                return v;
            }
            if started.elapsed() > Duration::from_secs(10) {
                self.screenshot(&format!("failed-{}", what.replace(' ', "-"))).await;
                panic!("timed out waiting until {what}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Saves a PNG of the current page to `target/screenshots/NAME.png`.
    pub async fn screenshot(&self, name: &str) {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let png = self.client.screenshot().await.expect("screenshot");
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
